"""basic-auth, translated from Kong's spec/03-plugins/10-basic-auth/03-access_spec.lua and
05-declarative_spec.lua, with several auth plugins together (logical AND / OR) and hostile
cases.

Skipped cases of the spec, and why:

===========================================  ==============================================
gRPC calls                                   no gRPC proxying in this gateway
"errors when anonymous user doesn't exist"   a file naming a missing anonymous consumer is
                                             refused when loaded (tested below)
"consumer cache consistency", invalidations  no Admin API, no DB (DB-less file only)
01-crypto_spec (sha1(password .. id))        passwords are held as salted HMAC-SHA256 here
"Accepts valid credentials (introduced with  Kong's stored sha1 hashes are not read here
a hashed password)" (05-declarative_spec)
===========================================  ==============================================
"""

from __future__ import annotations

import base64

import pytest

from gateway.config import ConfigError
from tests.kong.auth_support import call, from_file, in_process, upstream, upstream_headers

__all__ = ["upstream"]

CONSUMERS = [
    {"username": "bob", "custom_id": "bob-1", "basicauth_credentials": [
        {"username": "bob", "password": "kong"},
        {"username": "user123", "password": "password123"},
        {"username": "user321", "password": "password:123"}]},
    {"username": "Anonymous"},
    {"username": "Mickey", "keyauth_credentials": [{"key": "Mouse"}]},
    {"username": "Aladdin", "id": "a1b2"},
    {"username": "andru", "custom_id": "donalds", "id": "ad06b77c-0d2f-407a-8d6d-07f272a92d6a"},
]
TOP = {"basicauth_credentials": [
    {"consumer": "a1b2", "username": "Aladdin", "password": "OpenSesame"},
    {"consumer": "ad06b77c-0d2f-407a-8d6d-07f272a92d6a", "username": "james",
     "password": "secret"}]}
BOB_KONG = {"headers": {"Authorization": "Basic Ym9iOmtvbmc="}}  # bob:kong, the spec's


def basic(user: str, password: str, header: str = "Authorization") -> dict:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"headers": {header: f"Basic {raw}"}}


def gateway(upstream, plugins=None, **config):
    return from_file(upstream.url, plugins or [{"name": "basic-auth", "config": config}],
                     CONSUMERS, **TOP)


@pytest.fixture(scope="module")
def realm(upstream):
    return gateway(upstream, realm="test-realm")


def refused(response, realm="test-realm"):
    assert response.status_code == 401
    assert response.json["message"] == "Unauthorized"
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{realm}"'


def test_missing_credentials_with_a_realm_and_the_default_one(upstream, realm):
    refused(call(realm))
    refused(call(gateway(upstream)), "service")


@pytest.mark.parametrize("request_kwargs", [
    basic("user123", "wrong"), basic("user123", "wrong", "Proxy-Authorization"),
    {"headers": {"Authorization": "Basic " + base64.b64encode(b":password123").decode()}},
    {"headers": {"Authorization": "Basic " + base64.b64encode(b"user123").decode()}},
    {"headers": {"Authorization": "Basic adXNlcjEyMzpwYXNzd29yZDEyMw=="}},
    {"headers": {"Authorization": "Basic"}}, basic("nobody", "password123"),
    {"headers": {"Authorization": "foobar"}}, {"headers": {"Proxy-Authorization": "foobar"}},
    {"headers": {"Authorization": "Basic a29uZw=="}},  # "returns 401 ... on password only"
    {"headers": {"Authorization": "Basic Ym9i"}},      # "returns 401 ... on username only"
])
def test_invalid_credentials_are_401(realm, request_kwargs):
    refused(call(realm, **request_kwargs))


@pytest.mark.parametrize("header", ["Authorization", "Proxy-Authorization"])
def test_valid_credentials_pass_with_consumer_headers(realm, header):
    response = call(realm, **basic("user123", "password123", header))
    assert response.status_code == 200
    seen = upstream_headers(response)
    assert seen["x-consumer-username"] == "bob"
    assert seen["x-consumer-custom-id"] == "bob-1"
    assert seen["x-credential-identifier"] == "user123"
    assert ("authorization" in seen) == (header == "Authorization")  # never proxy-auth


@pytest.mark.parametrize("header", ["Authorization", "Proxy-Authorization"])
def test_authenticates_the_specs_bob_and_sends_consumer_headers(realm, header):
    response = call(realm, headers={header: BOB_KONG["headers"]["Authorization"]})
    assert response.status_code == 200
    seen = upstream_headers(response)
    assert isinstance(seen["x-consumer-id"], str) and seen["x-consumer-id"]
    assert (seen["x-consumer-username"], seen["x-credential-identifier"]) == ("bob", "bob")


def test_a_password_containing_a_colon(realm):
    seen = upstream_headers(call(realm, headers={
        "Authorization": "Basic dXNlcjMyMTpwYXNzd29yZDoxMjM="}))
    assert (seen["x-consumer-username"], seen["x-credential-identifier"]) == ("bob", "user321")


def test_a_top_level_credential_by_consumer_id(realm):
    assert upstream_headers(call(realm, **basic("Aladdin", "OpenSesame")))[
        "x-consumer-username"] == "Aladdin"


def test_hide_credentials(upstream, realm):
    assert upstream_headers(call(realm, **BOB_KONG))["authorization"] == "Basic Ym9iOmtvbmc="
    hidden = gateway(upstream, hide_credentials=True)
    seen = upstream_headers(call(hidden, **basic("user123", "password123")))
    assert "authorization" not in seen and seen["x-consumer-username"] == "bob"


@pytest.mark.parametrize(("anonymous", "consumer"), [("Anonymous", "Anonymous"),
                                                    ("a1b2", "Aladdin")])  # by name, by id
def test_anonymous(upstream, anonymous, consumer):
    client = gateway(upstream, anonymous=anonymous)
    seen = upstream_headers(call(client, **basic("user123", "password123")))
    assert seen["x-consumer-username"] == "bob" and "x-anonymous-consumer" not in seen
    assert seen["x-credential-identifier"] == "user123"
    for kwargs in (basic("user123", "nope"), {}):  # wrong credentials, none at all
        seen = upstream_headers(call(client, **kwargs))
        assert seen["x-anonymous-consumer"] == "true"
        assert seen["x-consumer-username"] == consumer
        assert "x-credential-identifier" not in seen


# ------------------------------------------------ 05-declarative_spec: the file's entities

@pytest.fixture(scope="module")
def declarative(upstream):
    return gateway(upstream, hide_credentials=True, realm="service")


def test_declarative_refuses_invalid_credentials(declarative):
    refused(call(declarative, headers={"Authorization": "foobar"}), "service")


def test_declarative_accepts_valid_credentials(declarative):
    seen = upstream_headers(call(declarative, **basic("james", "secret")))
    assert seen["x-consumer-username"] == "andru"
    assert seen["x-consumer-custom-id"] == "donalds"
    assert seen["x-credential-identifier"] == "james"
    assert "authorization" not in seen


def test_declarative_sends_the_consumers_id(declarative):
    seen = upstream_headers(call(declarative, **basic("james", "secret")))
    assert seen["x-consumer-id"] == "ad06b77c-0d2f-407a-8d6d-07f272a92d6a"


def test_a_missing_anonymous_consumer_is_refused_when_loaded(upstream):
    with pytest.raises(ConfigError, match=r"config\.anonymous: no consumer"):
        gateway(upstream, anonymous="ghost")


# ------------------------------------------------ several authentication plugins together

def both(upstream, anonymous=None):
    config = {"anonymous": anonymous} if anonymous else {}
    return gateway(upstream, [{"name": "basic-auth", "config": config},
                              {"name": "key-auth", "config": config}])


@pytest.fixture(scope="module")
def logical_and(upstream):
    return both(upstream)


@pytest.fixture(scope="module")
def logical_or(upstream):
    return both(upstream, "Anonymous")


def with_key(kwargs: dict) -> dict:
    return {"headers": {**kwargs["headers"], "apikey": "Mouse"}}


def test_and_passes_with_all_credentials(logical_and):
    response = call(logical_and, **with_key(basic("Aladdin", "OpenSesame")))
    assert response.status_code == 200
    # key-auth (1250) runs before basic-auth (1100): the last one sets the consumer
    assert upstream_headers(response)["x-consumer-username"] == "Aladdin"


@pytest.mark.parametrize("kwargs, challenge", [
    ({"headers": {"apikey": "Mouse"}}, 'Basic realm="service"'),
    (basic("Aladdin", "OpenSesame"), "Key"),
    ({}, "Key"),  # key-auth (1250) refuses first
])
def test_and_fails_without_one_of_them(logical_and, kwargs, challenge):
    response = call(logical_and, **kwargs)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == challenge


@pytest.mark.parametrize("kwargs, consumer", [
    (with_key(basic("Aladdin", "OpenSesame")), "Mickey"),
    ({"headers": {"apikey": "Mouse"}}, "Mickey"),
    (basic("Aladdin", "OpenSesame"), "Aladdin"),
])
def test_or_passes_with_any_credential(logical_or, kwargs, consumer):
    response = call(logical_or, **kwargs)
    assert response.status_code == 200
    seen = upstream_headers(response)
    assert seen["x-consumer-username"] == consumer
    assert "x-anonymous-consumer" not in seen


def test_or_passes_with_no_credential_as_anonymous(logical_or):
    seen = upstream_headers(call(logical_or, headers={"X-Consumer-Username": "forged",
                                                      "X-Credential-Identifier": "forged"}))
    assert seen["x-anonymous-consumer"] == "true"
    assert seen["x-consumer-username"] == "Anonymous"
    assert "x-credential-identifier" not in seen


# ---------------------------------------------------------------- hostile cases

@pytest.mark.parametrize("value", ["Basic  " + base64.b64encode(b"user123:password123").decode(),
                                   "basic " + base64.b64encode(b"user123:password123").decode()])
def test_case_and_whitespace_tricks_as_kong(realm, value):
    assert call(realm, headers={"Authorization": value}).status_code == 200


def test_a_password_never_appears_in_errors(upstream):
    with pytest.raises(ConfigError) as caught:
        from_file(upstream.url, [{"name": "basic-auth"}], [{
            "username": "u", "basicauth_credentials": [
                {"username": "dup", "password": "s3cr3t-one"},
                {"username": "dup", "password": "s3cr3t-two"}]}])
    assert "listed twice" in str(caught.value) and "s3cr3t" not in str(caught.value)


def test_from_variables(upstream, tmp_path):
    lines = tmp_path / "basic"
    lines.write_text("# consumer username password\ncarol carol-user c4r0l\n")
    client = in_process({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "basic-auth",
                         "GATEWAY_BASICAUTH_CREDENTIALS": "alice:alice:pa:ss",
                         "GATEWAY_BASICAUTH_CREDENTIALS_FILE": str(lines),
                         "GATEWAY_BASICAUTH_HIDE_CREDENTIALS": "true",
                         "GATEWAY_ACCESS_LOG": "off"})
    seen = upstream_headers(call(client, **basic("alice", "pa:ss")))
    assert seen["x-consumer-username"] == "alice" and "authorization" not in seen
    assert upstream_headers(call(client, **basic("carol-user", "c4r0l")))[
        "x-consumer-username"] == "carol"
    refused(call(client, **basic("carol-user", "wrong")), "service")


def test_bad_variables_never_echo_the_password():
    with pytest.raises(ConfigError) as caught:
        in_process({"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9", "GATEWAY_FILTERS": "basic-auth",
                    "GATEWAY_BASICAUTH_CREDENTIALS": "alice:al:ice:topsecret,alice:al:again"})
    assert "topsecret" not in str(caught.value)
