"""jwt, translated from Kong's spec/03-plugins/16-jwt/03-access_spec.lua, plus hostile cases.

Each case: a Kong file (service, route ``/``, a jwt plugin, consumers with
``jwt_secrets``) or the GATEWAY_JWT_* variables, a request, Kong's status,
message and WWW-Authenticate.

Skipped cases of the spec, and why:

======================================================  =====================================
gRPC calls ("rejects/accepts gRPC call ...")            no gRPC proxying in this gateway
"anonymous consumer ... doesn't exist" (500)            a file naming a missing anonymous
                                                        consumer is refused when loaded
"finds the JWT in the first header occurrence of a      a repeated header is one value joined
duplicated custom authorization header"                 by ", " here; covered by the Bearer
                                                        search finding the first token only
ES512 with a JWK-produced key (key from fixtures.lua)   the same path as ES256/ES384 below
Admin API / invalidation cases                          no Admin API (DB-less file only)
"ctx.authenticated_jwt_token" (kong.ctx.shared)         Kong-internal state read by a spec-only
                                                        plugin (ctx-checker)
======================================================  =====================================
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from werkzeug.test import Client

from gateway.config import ConfigError
from tests.kong.auth_support import call, from_file, in_process, upstream, upstream_headers

__all__ = ["upstream"]

SECRET = "sUp3r-s3cret-value-0123456789abcdef"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC256 = ec.generate_private_key(ec.SECP256R1())
EC384 = ec.generate_private_key(ec.SECP384R1())
EC521 = ec.generate_private_key(ec.SECP521R1())
ED = ed25519.Ed25519PrivateKey.generate()
ED448 = ed448.Ed448PrivateKey.generate()


def pem(private) -> str:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


CONSUMERS = [
    {"username": "jwt_tests_consumer", "custom_id": "c-1",
     "jwt_secrets": [{"key": "hs-key", "secret": SECRET}]},
    {"username": "jwt_tests_rsa_consumer",
     "jwt_secrets": [{"key": "rs-key", "algorithm": "RS256", "rsa_public_key": pem(RSA_KEY)},
                     {"key": "ps-key", "algorithm": "PS384", "rsa_public_key": pem(RSA_KEY)}]},
    {"username": "jwt_tests_ec_consumer",
     "jwt_secrets": [{"key": "es256-key", "algorithm": "ES256", "rsa_public_key": pem(EC256)},
                     {"key": "es384-key", "algorithm": "ES384", "rsa_public_key": pem(EC384)},
                     {"key": "ed-key", "algorithm": "EdDSA", "rsa_public_key": pem(ED)}]},
    {"username": "jwt_tests_rsa_consumer_2",  # the same public key as rs-key, another key
     "jwt_secrets": [{"key": "rs-key-2", "algorithm": "RS256", "rsa_public_key": pem(RSA_KEY)}]},
    {"username": "jwt_tests_more_consumer", "jwt_secrets": [
        {"key": alg.lower() + "-key", "algorithm": alg, "rsa_public_key": pem(RSA_KEY)}
        for alg in ("RS384", "RS512", "PS256", "PS512")] + [
        {"key": "es512-key", "algorithm": "ES512", "rsa_public_key": pem(EC521)},
        {"key": "ed448-key", "algorithm": "EdDSA", "rsa_public_key": pem(ED448)},
        {"key": "hs512-key", "algorithm": "HS512", "secret": SECRET}]},
    {"username": "no-body", "id": "5e2c1b7a-0d4e-4c3b-9a8f-6e7d8c9b0a14"},
]
ANONYMOUS_ID = "5e2c1b7a-0d4e-4c3b-9a8f-6e7d8c9b0a14"
HS384 = {"consumer": "jwt_tests_consumer", "key": "hs384-key", "secret": SECRET,
         "algorithm": "HS384"}


def token(claims: dict, key=SECRET, algorithm: str = "HS256", headers=None) -> str:
    return pyjwt.encode(claims, key, algorithm=algorithm, headers=headers)


def bearer(value: str) -> dict:
    return {"headers": {"Authorization": f"Bearer {value}"}}


def gateway(upstream, **config):
    plugin = {"name": "jwt", "config": config}
    return from_file(upstream.url, [plugin], CONSUMERS, jwt_secrets=[HS384])


@pytest.fixture(scope="module")
def plain(upstream):
    return gateway(upstream)


def refused(response, message, challenge='Bearer error="invalid_token"'):
    assert response.status_code == 401
    assert response.json["message"] == message
    assert response.headers["WWW-Authenticate"] == challenge


def test_no_jwt_is_401_with_a_bare_bearer_challenge(plain):
    refused(call(plain), "Unauthorized", "Bearer")


@pytest.mark.parametrize("claims, message", [
    ({"sub": "x"}, "No mandatory 'iss' in claims"),
    ({"iss": ""}, "Invalid 'iss' in claims"),
    ({"iss": "nobody"}, "No credentials found for given 'iss'"),
])
def test_the_key_claim_must_name_a_credential(plain, claims, message):
    refused(call(plain, **bearer(token(claims))), message)


def test_a_bad_signature_is_refused(plain):
    refused(call(plain, **bearer(token({"iss": "hs-key"}, key="not-the-secret"))),
            "Invalid signature")


def test_an_alg_other_than_the_credentials_is_refused(plain):
    refused(call(plain, **bearer(token({"iss": "hs-key"}, algorithm="HS512"))),
            "Invalid algorithm")


def test_a_verified_token_goes_upstream_with_the_consumer(plain):
    authorization = f"Bearer {token({'iss': 'hs-key'})}"
    response = call(plain, headers={"Authorization": authorization,
                                    "X-Consumer-Username": "forged", "X-Anonymous-Consumer": "1"})
    assert response.status_code == 200
    seen = upstream_headers(response)
    assert seen["authorization"] == authorization
    assert seen["x-consumer-username"] == "jwt_tests_consumer"
    assert seen["x-consumer-custom-id"] == "c-1"
    assert seen["x-credential-identifier"] == "hs-key"
    assert "x-anonymous-consumer" not in seen


def test_a_top_level_secret_by_consumer_name(plain):
    response = call(plain, **bearer(token({"iss": "hs384-key"}, algorithm="HS384")))
    assert upstream_headers(response)["x-credential-identifier"] == "hs384-key"


@pytest.mark.parametrize("key, algorithm, private, consumer", [
    ("rs-key", "RS256", RSA_KEY, "jwt_tests_rsa_consumer"),
    ("rs-key-2", "RS256", RSA_KEY, "jwt_tests_rsa_consumer_2"),
    ("rs384-key", "RS384", RSA_KEY, "jwt_tests_more_consumer"),
    ("rs512-key", "RS512", RSA_KEY, "jwt_tests_more_consumer"),
    ("ps256-key", "PS256", RSA_KEY, "jwt_tests_more_consumer"),
    ("ps-key", "PS384", RSA_KEY, "jwt_tests_rsa_consumer"),
    ("ps512-key", "PS512", RSA_KEY, "jwt_tests_more_consumer"),
    ("es256-key", "ES256", EC256, "jwt_tests_ec_consumer"),
    ("es384-key", "ES384", EC384, "jwt_tests_ec_consumer"),
    ("es512-key", "ES512", EC521, "jwt_tests_more_consumer"),
    ("ed-key", "EdDSA", ED, "jwt_tests_ec_consumer"),
    ("ed448-key", "EdDSA", ED448, "jwt_tests_more_consumer"),
])
def test_asymmetric_algorithms_verify_and_identify_the_consumer(plain, key, algorithm, private,
                                                                consumer):
    authorization = f"Bearer {token({'iss': key}, private, algorithm)}"
    response = call(plain, headers={"Authorization": authorization})
    assert response.status_code == 200
    seen = upstream_headers(response)
    assert seen["authorization"] == authorization
    assert (seen["x-consumer-username"], seen["x-credential-identifier"]) == (consumer, key)


@pytest.mark.parametrize("key, algorithm", [("hs384-key", "HS384"), ("hs512-key", "HS512")])
def test_hs384_and_hs512_proxy_with_token_and_consumer_headers(plain, key, algorithm):
    authorization = f"Bearer {token({'iss': key}, algorithm=algorithm)}"
    response = call(plain, headers={"Authorization": authorization})
    assert response.status_code == 200
    seen = upstream_headers(response)
    assert seen["authorization"] == authorization
    assert seen["x-credential-identifier"] == key
    assert "x-anonymous-consumer" not in seen


def test_an_rs256_credential_passes_where_secret_is_base64(upstream):
    client = from_file(upstream.url, [{"name": "jwt", "config": {"secret_is_base64": True}}],
                       [CONSUMERS[3]])
    response = call(client, **bearer(token({"iss": "rs-key-2"}, RSA_KEY, "RS256")))
    assert upstream_headers(response)["x-consumer-username"] == "jwt_tests_rsa_consumer_2"


def handmade(header: dict, claims: dict, secret: str = SECRET) -> str:
    """An HS256-signed token whose header says what the test wants (its ``alg`` included)."""
    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    signing = part(json.dumps(header).encode()) + b"." + part(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), signing, hashlib.sha256).digest()
    return (signing + b"." + part(mac)).decode()


def test_an_alg_header_other_than_the_credentials_is_refused(plain):
    forged = handmade({"typ": "JWT", "alg": "RS256"}, {"iss": "hs-key"})
    refused(call(plain, **bearer(forged)), "Invalid algorithm")


def test_rejects_a_query_token_beside_a_different_header_token(plain):
    refused(call(plain, f"/anything?jwt={token({'iss': 'hs-key'})}",
                 **bearer("invalid.jwt.token")), "Multiple tokens provided")


@pytest.mark.parametrize("kwargs, body", [
    ({"method": "OPTIONS"}, '{"message":"Unauthorized"}'),
    ({"headers": {"Accept": "text/html"}}, '{"message":"Unauthorized"}'),  # JSON all the same
    (bearer("no-way-this-works" + token({"iss": "hs-key"})),
     '{"message":"Bad token; invalid JSON"}'),
])
def test_refusals_are_kongs_exit_bodies(plain, kwargs, body):
    """Kong's jwt answers with kong.response.exit: compact JSON, no request_id."""
    response = call(plain, **kwargs)
    assert (response.status_code, response.get_data(as_text=True)) == (401, body)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_multiple_different_tokens_are_refused(plain):
    refused(call(plain, f"/anything?jwt={token({'iss': 'hs-key', 'n': 1})}",
                 **bearer(token({"iss": "hs-key"}))), "Multiple tokens provided")


def test_the_same_token_twice_is_one_token(plain):
    value = token({"iss": "hs-key"})
    assert call(plain, f"/anything?jwt={value}", **bearer(value)).status_code == 200


def test_uri_param_and_custom_names(upstream):
    client = gateway(upstream, uri_param_names=["token"], header_names=["CustomAuthorization"],
                     cookie_names=["crumble", "silly"], realm="test-jwt")
    value = token({"iss": "hs-key"})
    assert call(client, f"/anything?token={value}").status_code == 200
    assert call(client, headers={"CustomAuthorization": f"bearer {value}"}).status_code == 200
    client.set_cookie("silly", value)
    assert call(client).status_code == 200
    client.set_cookie("silly", "broken.token")
    refused(call(client), "Bad token; invalid JSON",
            'Bearer realm="test-jwt", error="invalid_token"')
    client.delete_cookie("silly")
    refused(call(client, headers={"Authorization": f"Bearer {value}"}), "Unauthorized",
            'Bearer realm="test-jwt"')


def test_proxies_the_request_if_the_key_is_found_in_headers(upstream):
    client = gateway(upstream, key_claim_name="kid")
    kid = token({"sub": "x"}, headers={"kid": "hs-key"})
    assert call(client, **bearer(kid)).status_code == 200


@pytest.mark.parametrize("path", ["/anything/?jwt={}", "/anything/?token={}"])
def test_finds_the_jwt_in_url_parameters(upstream, path):
    client = gateway(upstream, uri_param_names=["token", "jwt"])
    assert call(client, path.format(token({"iss": "hs-key"}))).status_code == 200


@pytest.fixture(scope="module")
def crumbs(upstream):
    """The spec's jwt9 route: cookie_names silly and crumble, realm test-jwt; a client that
    sends the Cookie header as written (no cookie jar)."""
    client = gateway(upstream, cookie_names=["silly", "crumble"], realm="test-jwt")
    return Client(client.application, use_cookies=False)


def crumb(name: str, value: str) -> dict:
    return {"headers": {"Cookie": f"{name}={value}; path=/;domain=.jwt9.test"}}


@pytest.mark.parametrize("name", ["crumble", "silly"])
def test_returns_200_if_the_jwt_is_found_in_a_cookie(crumbs, name):
    assert call(crumbs, **crumb(name, token({"iss": "hs-key"}))).status_code == 200


@pytest.mark.parametrize("value, message", [
    (token({"iss": "incorrect-issuer"}), "No credentials found for given 'iss'"),
    ("no-way-this-works" + token({"iss": "hs-key"}), "Bad token; invalid JSON"),
])
def test_returns_401_for_a_cookie_jwt_that_is_unknown_or_corrupted(crumbs, value, message):
    refused(call(crumbs, **crumb("silly", value)), message,
            'Bearer realm="test-jwt", error="invalid_token"')


def test_cookie_names_still_read_the_authorization_header(crumbs):
    assert call(crumbs, **bearer(token({"iss": "hs-key"}))).status_code == 200
    refused(call(crumbs), "Unauthorized", 'Bearer realm="test-jwt"')


def test_key_claim_name_in_another_claim_or_the_header(upstream):
    client = gateway(upstream, key_claim_name="aud")
    assert call(client, **bearer(token({"aud": "hs-key"}))).status_code == 200
    assert call(client, **bearer(token({}, headers={"aud": "hs-key"}))).status_code == 200


def test_secret_is_base64(upstream):
    raw = b"\x00binary secret\xff"
    consumers = [{"username": "jwt_tests_base64_consumer", "jwt_secrets": [
        {"key": "b64", "secret": base64.b64encode(raw).decode()}]}]
    client = from_file(upstream.url, [{"name": "jwt", "config": {"secret_is_base64": True}}],
                       consumers)
    assert call(client, **bearer(token({"iss": "b64"}, raw))).status_code == 200


def test_preflight_follows_run_on_preflight(upstream, plain):
    assert call(gateway(upstream, run_on_preflight=False), method="OPTIONS").status_code == 200
    refused(call(plain, method="OPTIONS"), "Unauthorized", "Bearer")


@pytest.mark.parametrize("verified, claims, body", [
    (["nbf", "exp"], {"exp": time.time() - 10, "nbf": time.time() - 10},
     {"exp": "token expired"}),
    (["exp"], {"exp": 1}, {"exp": "token expired"}),
    (["nbf", "exp"], {"nbf": time.time() + 3600, "exp": time.time() + 86400},
     {"nbf": "token not valid yet"}),
    (["exp"], {"exp": "tomorrow"}, {"exp": "must be a number"}),
    (["exp", "nbf"], {}, {"exp": "must be a number", "nbf": "must be a number"}),
])
def test_claims_to_verify(upstream, verified, claims, body):
    client = gateway(upstream, claims_to_verify=verified)
    response = call(client, f"/anything/?jwt={token({'iss': 'hs-key', **claims})}")
    assert response.status_code == 401
    assert response.json == body
    if len(body) == 1:  # Kong's compact JSON, byte for byte
        assert response.get_data(as_text=True) == json.dumps(body, separators=(",", ":"))
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_maximum_expiration_as_the_specs_route(upstream):
    client = gateway(upstream, claims_to_verify=["nbf", "exp"], maximum_expiration=300)
    now = time.time()
    over = token({"iss": "hs-key", "exp": now + 3600, "nbf": now - 30})
    response = call(client, f"/anything/?jwt={over}")
    assert response.status_code == 401
    assert response.get_data(as_text=True) == '{"exp":"exceeds maximum allowed expiration"}'
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    within = token({"iss": "hs-key", "exp": now + 270, "nbf": now - 30})
    assert call(client, f"/anything/?jwt={within}").status_code == 200


def test_maximum_expiration(upstream):
    client = gateway(upstream, claims_to_verify=["exp"], maximum_expiration=100)
    response = call(client, **bearer(token({"iss": "hs-key", "exp": time.time() + 1000})))
    assert (response.status_code, response.json) == (
        401, {"exp": "exceeds maximum allowed expiration"})
    assert call(client, **bearer(token({"iss": "hs-key", "exp": time.time() + 50}))
                ).status_code == 200


@pytest.mark.parametrize("anonymous", [ANONYMOUS_ID, "no-body"])  # by id, by username
def test_anonymous_by_id_or_username(upstream, anonymous):
    client = gateway(upstream, anonymous=anonymous)
    seen = upstream_headers(call(client, **bearer(token({"iss": "hs-key"}))))
    assert (seen["x-consumer-username"], seen["x-credential-identifier"]) == (
        "jwt_tests_consumer", "hs-key")
    assert "x-anonymous-consumer" not in seen
    seen = upstream_headers(call(client))
    assert (seen["x-consumer-username"], seen["x-anonymous-consumer"]) == ("no-body", "true")
    assert "x-credential-identifier" not in seen


def test_anonymous_passes_failed_requests_as_that_consumer(upstream):
    client = gateway(upstream, anonymous="no-body")
    seen = upstream_headers(call(client, **bearer(token({"iss": "nobody"}))))
    assert seen["x-consumer-username"] == "no-body"
    assert seen["x-anonymous-consumer"] == "true"
    assert "x-credential-identifier" not in seen


# ------------------------------------------ multiple auth (key-auth 1250 after jwt 1450)

MULTI = [{"username": "Anonymous", "id": "7a1d3c5e-2b4f-4e6a-8c9d-0e1f2a3b4c15"},
         {"username": "Mickey", "id": "8b2e4d6f-3c5a-4f7b-9d0e-1f2a3b4c5d16",
          "keyauth_credentials": [{"key": "Mouse", "id": "9c3f5e7a-4d6b-4a8c-8e1f-2a3b4c5d6e17"}]},
         {"username": "Aladdin", "id": "ad4a6f8b-5e7c-4b9d-9f2a-3b4c5d6e7f18",
          "jwt_secrets": [{"key": "aladdin-key", "secret": SECRET}]}]
ANON, MICKEY, ALADDIN = (consumer["id"] for consumer in MULTI)
MOUSE_ID = MULTI[1]["keyauth_credentials"][0]["id"]


def both(upstream, anonymous=None):
    config = {"anonymous": anonymous} if anonymous else {}
    return from_file(upstream.url, [{"name": "jwt", "config": config},
                                    {"name": "key-auth", "config": config}], MULTI)


@pytest.fixture(scope="module")
def logical_and(upstream):
    return both(upstream)


@pytest.fixture(scope="module")
def logical_or(upstream):
    return both(upstream, ANON)


def credentials(apikey: bool, jwt_token: bool) -> dict:
    headers = {"apikey": "Mouse"} if apikey else {}
    if jwt_token:
        headers["Authorization"] = f"Bearer {token({'iss': 'aladdin-key'})}"
    return {"headers": headers}


def test_and_passes_with_all_credentials_provided(logical_and):
    seen = upstream_headers(call(logical_and, **credentials(True, True)))
    assert "x-anonymous-consumer" not in seen
    assert seen["x-consumer-id"] in (MICKEY, ALADDIN)
    assert seen["x-credential-identifier"] == MOUSE_ID  # key-auth ran last


@pytest.mark.parametrize("apikey, jwt_token, challenge", [
    (True, False, "Bearer"), (False, True, "Key"), (False, False, "Bearer")])
def test_and_fails_401_without_every_credential(logical_and, apikey, jwt_token, challenge):
    response = call(logical_and, **credentials(apikey, jwt_token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == challenge


def test_or_passes_with_all_credentials_provided(logical_or):
    seen = upstream_headers(call(logical_or, **credentials(True, True)))
    assert "x-anonymous-consumer" not in seen
    assert seen["x-credential-identifier"] == "aladdin-key"  # jwt ran first; key-auth skipped


def test_or_all_credentials_send_one_of_their_consumer_ids(logical_or):
    seen = upstream_headers(call(logical_or, **credentials(True, True)))
    assert seen["x-consumer-id"] in (MICKEY, ALADDIN)


def test_or_passes_with_only_the_first_credential_provided(logical_or):
    seen = upstream_headers(call(logical_or, **credentials(True, False)))
    assert "x-anonymous-consumer" not in seen
    assert seen["x-consumer-id"] == MICKEY
    assert seen["x-credential-identifier"] != "aladdin-key"


def test_or_passes_with_only_the_second_credential_provided(logical_or):
    seen = upstream_headers(call(logical_or, **credentials(False, True)))
    assert "x-anonymous-consumer" not in seen
    assert (seen["x-consumer-username"], seen["x-credential-identifier"]) == (
        "Aladdin", "aladdin-key")


def test_or_second_credential_sends_its_consumer_id(logical_or):
    assert upstream_headers(call(logical_or, **credentials(False, True)))[
        "x-consumer-id"] == ALADDIN


def test_or_passes_with_no_credential_provided(logical_or):
    seen = upstream_headers(call(logical_or))
    assert seen["x-anonymous-consumer"] == "true"
    assert seen["x-consumer-id"] == ANON  # key-auth, last, set the anonymous consumer
    assert "x-credential-identifier" not in seen


# ---------------------------------------------------------------- hostile cases

def unsigned(claims: dict, alg: str = "none") -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_never_passes(plain, alg):
    response = call(plain, **bearer(unsigned({"iss": "hs-key"}, alg)))
    refused(response, "Bad token; invalid alg")


def test_hs256_signed_with_the_rsa_public_key_is_refused(plain):
    def part(data):  # the attack is hand-built on purpose
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    signing = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + part(
        json.dumps({"iss": "rs-key"}).encode())
    mac = hmac.new(pem(RSA_KEY).encode(), signing, hashlib.sha256).digest()
    forged = (signing + b"." + part(mac)).decode()
    refused(call(plain, **bearer(forged)), "Invalid algorithm")


def test_an_empty_signature_is_refused(plain):
    head, body, _ = token({"iss": "hs-key"}).split(".")
    refused(call(plain, **bearer(f"{head}.{body}.")), "Invalid signature")


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Basic abc", "bearer\t", "Token x"])
def test_headers_without_a_bearer_token_count_as_no_token(plain, value):
    refused(call(plain, headers={"Authorization": value}), "Unauthorized", "Bearer")


def test_case_and_whitespace_around_bearer(plain):
    value = token({"iss": "hs-key"})
    assert call(plain, headers={"Authorization": f"  bearer   {value}"}).status_code == 200
    assert call(plain, headers={"authorization": f"Bearer {value}"}).status_code == 200
    refused(call(plain, headers={"Authorization": f"Bearer {value} trailing"}),
            "Bad token; invalid JSON")


def test_a_duplicate_key_in_the_file_is_refused_when_loaded(upstream):
    where = r"jwt_secrets\[0\]: jwt_secrets credential 'hs-key' is listed twice"
    with pytest.raises(ConfigError, match=where):
        from_file(upstream.url, [{"name": "jwt"}], CONSUMERS,
                  jwt_secrets=[{"consumer": "no-body", "key": "hs-key", "secret": "x"}])


def test_a_bad_public_key_names_the_entity(upstream):
    where = r"jwt_secrets\[0\]: rsa_public_key: not a RS256 public key in PEM"
    with pytest.raises(ConfigError, match=where):
        from_file(upstream.url, [{"name": "jwt"}], [{"username": "u", "id": "x"}], jwt_secrets=[
            {"consumer": "x", "key": "k", "algorithm": "RS256", "rsa_public_key": "not a pem"}])


# ---------------------------------------------------------------- from variables

def test_from_variables(upstream, tmp_path):
    secrets = tmp_path / "jwt.json"
    secrets.write_text(json.dumps([{"consumer": "carol", "key": "rs", "algorithm": "RS256",
                                    "rsa_public_key": pem(RSA_KEY)}]))
    client = in_process({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "jwt",
                         "GATEWAY_JWT_SECRETS": f"alice:a-key:{SECRET}",
                         "GATEWAY_JWT_SECRETS_FILE": str(secrets),
                         "GATEWAY_JWT_REALM": "api", "GATEWAY_ACCESS_LOG": "off"})
    seen = upstream_headers(call(client, **bearer(token({"iss": "a-key"}))))
    assert seen["x-consumer-username"] == "alice"
    seen = upstream_headers(call(client, **bearer(token({"iss": "rs"}, RSA_KEY, "RS256"))))
    assert seen["x-consumer-username"] == "carol"
    refused(call(client), "Unauthorized", 'Bearer realm="api"')


@pytest.mark.parametrize("extra", [".x", ".", "..", ".a.b"])
def test_a_token_with_more_than_three_parts_is_malformed(plain, extra):
    refused(call(plain, **bearer(token({"iss": "hs-key"}) + extra)), "Bad token; invalid JSON")
