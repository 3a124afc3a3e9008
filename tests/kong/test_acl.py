"""acl, translated from Kong's spec/03-plugins/18-acl/02-access_spec.lua.

Consumers are identified by key-auth (``?apikey=``), as in the spec.

Skipped cases of the spec, and why:

==============================================  ===========================================
"... with authenticated groups" (X-Authenticated-  authenticated groups come from ldap-auth /
Groups, always_use_authenticated_groups)          oauth2, which this gateway does not have
"... missing (with credential)" (acl1b)           a credential without a consumer is set by
                                                  a spec-only plugin; no filter here does it
"Real-world usage", "cache warmup"                Admin API changes (DB-less file only)
==============================================  ===========================================
"""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from tests.kong.auth_support import call, from_file, in_process, upstream, upstream_headers

__all__ = ["upstream"]

CONSUMERS = [
    {"username": "consumer1", "keyauth_credentials": [{"key": "apikey123"}]},
    {"username": "consumer2", "keyauth_credentials": [{"key": "apikey124"}],
     "acls": [{"group": "admin"}]},
    {"username": "consumer3", "keyauth_credentials": [{"key": "apikey125"}],
     "acls": [{"group": "pro"}, {"group": "hello"}]},
    {"username": "anonymous"},
]
TOP = {"acls": [{"consumer": "anonymous", "group": "anon"}]}


def gateway(upstream, key_auth=None, **acl):
    plugins = [{"name": "key-auth", "config": key_auth or {}}, {"name": "acl", "config": acl}]
    return from_file(upstream.url, plugins, CONSUMERS, **TOP)


def forbidden(response):
    assert response.status_code == 403
    assert response.json["message"] == "You cannot consume this service"


def test_no_consumer_is_401(upstream):
    client = from_file(upstream.url, [{"name": "acl", "config": {"allow": ["admin"]}}],
                       CONSUMERS)
    response = call(client)
    assert (response.status_code, response.json["message"]) == (401, "Unauthorized")


@pytest.fixture(scope="module")
def allow_admin(upstream):
    return gateway(upstream, allow=["admin"])


def test_not_allowed_is_403(allow_admin):
    forbidden(call(allow_admin, "/anything?apikey=apikey123"))
    forbidden(call(allow_admin, "/anything?apikey=apikey125"))


def test_allowed_passes_with_its_groups(allow_admin):
    response = call(allow_admin, "/anything?apikey=apikey124",
                    headers={"X-Consumer-Groups": "forged"})
    assert response.status_code == 200
    assert upstream_headers(response)["x-consumer-groups"] == "admin"


def test_hide_groups_header_also_drops_a_client_copy(upstream):
    client = gateway(upstream, allow=["admin"], hide_groups_header=True)
    response = call(client, "/anything?apikey=apikey124", headers={"X-Consumer-Groups": "x"})
    assert response.status_code == 200
    assert "x-consumer-groups" not in upstream_headers(response)


@pytest.mark.parametrize("key, passes, groups", [
    ("apikey123", True, ""), ("apikey124", False, None), ("apikey125", True, "pro, hello")])
def test_deny(upstream, key, passes, groups):
    response = call(gateway(upstream, deny=["admin"]), f"/anything?apikey={key}")
    if passes:
        assert upstream_headers(response)["x-consumer-groups"] == groups
    else:
        forbidden(response)


@pytest.mark.parametrize("config, key, passes", [
    ({"allow": ["pro", "hello"]}, "apikey125", True),
    ({"allow": ["admin", "hello"]}, "apikey125", True),
    ({"allow": ["admin", "nope"]}, "apikey125", False),
    ({"deny": ["pro", "nope"]}, "apikey125", False),
    ({"deny": ["admin", "nope"]}, "apikey125", True),
])
def test_multi_lists(upstream, config, key, passes):
    response = call(gateway(upstream, **config), f"/anything?apikey={key}")
    assert response.status_code == (200 if passes else 403)


def test_anonymous_consumer(upstream):
    client = gateway(upstream, {"anonymous": "anonymous"}, allow=["admin"])
    forbidden(call(client))  # the anonymous consumer has groups, none allowed
    without_groups = from_file(upstream.url, [
        {"name": "key-auth", "config": {"anonymous": "anonymous"}},
        {"name": "acl", "config": {"allow": ["admin"]}}], CONSUMERS)
    response = call(without_groups)
    assert (response.status_code, response.json["message"]) == (401, "Unauthorized")
    forbidden(call(without_groups, "/anything?apikey=apikey123"))
    denying = from_file(upstream.url, [
        {"name": "key-auth", "config": {"anonymous": "anonymous"}},
        {"name": "acl", "config": {"deny": ["admin"]}}], CONSUMERS)
    assert upstream_headers(call(denying))["x-consumer-groups"] == ""


@pytest.mark.parametrize("config", [{}, {"allow": ["a"], "deny": ["b"]}])
def test_exactly_one_of_allow_or_deny(upstream, config):
    with pytest.raises(ConfigError, match="exactly one of allow or deny"):
        gateway(upstream, **config)


def test_from_variables(upstream, tmp_path):
    groups = tmp_path / "groups"
    groups.write_text("bob gold\n")
    client = in_process({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "key-auth,acl",
                         "GATEWAY_KEYAUTH_KEYS": "alice:ak,bob:bk,eve:ek",
                         "GATEWAY_ACL_GROUPS": "alice:gold,alice:silver",
                         "GATEWAY_ACL_GROUPS_FILE": str(groups),
                         "GATEWAY_ACL_ALLOW": "gold", "GATEWAY_ACCESS_LOG": "off"})
    assert upstream_headers(call(client, "/anything?apikey=ak"))[
        "x-consumer-groups"] == "gold, silver"
    assert call(client, "/anything?apikey=bk").status_code == 200
    forbidden(call(client, "/anything?apikey=ek"))
