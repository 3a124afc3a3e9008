"""acl, translated from Kong's spec/03-plugins/18-acl/02-access_spec.lua.

Consumers are identified by key-auth (``?apikey=``), as in the spec.

Skipped cases of the spec, and why:

==============================================  ===========================================
"... with authenticated groups" (X-Authenticated-  authenticated groups come from ldap-auth /
Groups, always_use_authenticated_groups)          oauth2, which this gateway does not have
"... missing (with credential)" (acl1b)           a credential without a consumer is set by
                                                  a spec-only plugin; no filter here does it
"Permits with" / "Forbids with" (acl11-13)        the same: authenticated groups beside a
                                                  consumer
"Real-world usage", "cache warmup",              Admin API changes (DB-less file only)
01-api_spec, 03-invalidations_spec
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
    {"username": "consumer4", "keyauth_credentials": [{"key": "apikey126"}],
     "acls": [{"group": "free"}, {"group": "hello"}]},
    {"username": "anonymous", "id": "3b5d7f9a-1c2e-4f6a-8b0d-2e4f6a8c0e43"},
    {"username": "anonymous_nogroup"},
    {"username": "anonymous_with_group", "id": "4c6e8a0b-2d3f-4a7b-9c1e-3f5a7b9d1f54",
     "acls": [{"group": "everyone"}]},
]
ANONYMOUS_ID, WITH_GROUP_ID = CONSUMERS[4]["id"], CONSUMERS[6]["id"]
TOP = {"acls": [{"consumer": "anonymous", "group": "anonymous"}]}


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
    assert "x-authenticated-groups" not in upstream_headers(response)


def test_fails_denied_and_without_an_authentication_plugin(upstream):  # acl3d
    client = from_file(upstream.url, [{"name": "acl", "config": {"deny": ["none"]}}], CONSUMERS)
    response = call(client)
    assert (response.status_code, response.json["message"]) == (401, "Unauthorized")


def test_works_with_a_consumer_without_credentials(upstream):  # acl8: the anonymous one
    client = gateway(upstream, {"anonymous": ANONYMOUS_ID}, allow=["anonymous"])
    seen = upstream_headers(call(client))
    assert (seen["x-consumer-groups"], seen["x-anonymous-consumer"]) == ("anonymous", "true")
    assert "x-authenticated-groups" not in seen


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
    ({"allow": ["admin", "pro"]}, "apikey126", False),          # acl4: not allowed
    ({"deny": ["admin", "pro"]}, "apikey125", False),           # acl5: denied
    ({"deny": ["admin", "pro"]}, "apikey126", True),            # acl5: not denied
    ({"deny": ["admin", "pro", "hello"]}, "apikey126", False),  # acl6: one of them denied
    ({"deny": ["admin", "pro", "hello"]}, "apikey125", False),  # acl6: at least one denied
    ({"allow": ["admin", "pro", "hello"]}, "apikey126", True),  # acl7: one of them allowed
    ({"allow": ["pro", "hello"]}, "apikey125", True),
    ({"allow": ["admin", "hello"]}, "apikey125", True),
    ({"allow": ["admin", "nope"]}, "apikey125", False),
    ({"deny": ["pro", "nope"]}, "apikey125", False),
    ({"deny": ["admin", "nope"]}, "apikey125", True),
])
def test_multi_lists(upstream, config, key, passes):
    response = call(gateway(upstream, **config), f"/anything?apikey={key}")
    if passes:
        assert response.status_code == 200
    else:
        forbidden(response)


def test_multi_lists_allowed_sends_every_group(upstream):  # acl4, apikey125
    response = call(gateway(upstream, allow=["admin", "pro"]), "/anything?apikey=apikey125")
    seen = upstream_headers(response)
    assert seen["x-consumer-groups"] == "pro, hello"
    assert "x-authenticated-groups" not in seen


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


# -------------------------------- the spec's "anonymous" describe: allow / deny everyone / none

def anonymous_route(upstream, anonymous, **acl):
    """acl alone (``anonymous`` None), or after key-auth passing failures as ``anonymous``."""
    plugins = [{"name": "acl", "config": acl}]
    if anonymous is not None:
        plugins.insert(0, {"name": "key-auth", "config": {"anonymous": anonymous}})
    return from_file(upstream.url, plugins, CONSUMERS, **TOP)


@pytest.mark.parametrize("acl", [{"allow": ["everyone"]}, {"allow": ["none"]},
                                 {"deny": ["everyone"]}, {"deny": ["none"]}])
def test_without_authentication_returns_401(upstream, acl):
    response = call(anonymous_route(upstream, None, **acl))
    assert (response.status_code, response.json["message"]) == (401, "Unauthorized")


@pytest.mark.parametrize("acl", [{"allow": ["everyone"]}, {"allow": ["none"]}])
def test_authentication_without_groups_returns_401_with_allow_groups(upstream, acl):
    response = call(anonymous_route(upstream, "anonymous_nogroup", **acl))
    assert (response.status_code, response.json["message"]) == (401, "Unauthorized")


@pytest.mark.parametrize("acl", [{"deny": ["everyone"]}, {"deny": ["none"]}])
def test_authentication_without_groups_returns_200_with_deny_groups(upstream, acl):
    seen = upstream_headers(call(anonymous_route(upstream, "anonymous_nogroup", **acl)))
    assert seen["x-consumer-groups"] == ""


@pytest.mark.parametrize("acl", [{"allow": ["everyone"]}, {"deny": ["none"]}])
def test_authentication_with_group_returns_200(upstream, acl):
    seen = upstream_headers(call(anonymous_route(upstream, WITH_GROUP_ID, **acl)))
    assert seen["x-consumer-groups"] == "everyone"
    assert "x-authenticated-groups" not in seen


@pytest.mark.parametrize("acl", [{"allow": ["none"]}, {"deny": ["everyone"]}])
def test_authentication_with_group_returns_403(upstream, acl):
    forbidden(call(anonymous_route(upstream, WITH_GROUP_ID, **acl)))
