"""hmac-auth, translated from Kong's spec/03-plugins/19-hmac-auth/03-access_spec.lua.

Skipped cases of the spec, and why:

===============================================  =========================================
gRPC calls (incl. @request-target over HTTP/2)    no gRPC proxying in this gateway
"should encode http-1 requests as http/1.0"      the test client speaks HTTP/1.1 only; the
                                                 request-line uses SERVER_PROTOCOL as sent
"errors when anonymous user doesn't exist"       refused when the file is loaded
logical AND / OR with key-auth                   the same shared code as basic-auth's, tested
                                                 in test_basic_auth.py
Admin API / invalidations                        no Admin API (DB-less file only)
===============================================  =========================================
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate

import pytest

from tests.kong.auth_support import call, from_file, in_process, upstream, upstream_headers

__all__ = ["upstream"]

CONSUMERS = [{"username": "bob", "hmacauth_credentials": [{"username": "bob",
                                                            "secret": "secret"}]},
             {"username": "no-body"}]
DIGESTS = {"hmac-sha1": hashlib.sha1, "hmac-sha256": hashlib.sha256,
           "hmac-sha384": hashlib.sha384, "hmac-sha512": hashlib.sha512}


def sign(text: str, algorithm: str = "hmac-sha1", secret: str = "secret") -> str:
    mac = hmac.digest(secret.encode(), text.encode(), DIGESTS[algorithm])
    return base64.b64encode(mac).decode()


def authorization(signature: str, headers: str = "date", algorithm: str = "hmac-sha1",
                  username: str = "bob") -> str:
    return (f'hmac username="{username}", algorithm="{algorithm}", headers="{headers}", '
            f'signature="{signature}"')


def now() -> str:
    return formatdate(usegmt=True)


def gateway(upstream, **config):
    return from_file(upstream.url, [{"name": "hmac-auth", "config": config}], CONSUMERS)


@pytest.fixture(scope="module")
def realm(upstream):
    return gateway(upstream, realm="test-realm")


def refused(response, message, challenge='hmac realm="test-realm"'):
    assert response.status_code == 401
    assert response.json["message"] == message
    assert response.headers["WWW-Authenticate"] == challenge


def signed_date(algorithm="hmac-sha1", header="Authorization", **extra) -> dict:
    date = now()
    value = authorization(sign(f"date: {date}", algorithm), algorithm=algorithm)
    return {"headers": {"Date": date, header: value, **extra}}


def test_missing_credentials(realm, upstream):
    refused(call(realm, headers={"Date": now()}), "Unauthorized")
    refused(call(gateway(upstream), headers={"Date": now(), "Authorization": "asd"}),
            "HMAC signature cannot be verified", "hmac")


@pytest.mark.parametrize("value, message", [
    (authorization("dXNlcm5hbWU6cGFzc3dvcmQ="), "HMAC signature does not match"),
    (authorization("not base64!"), "HMAC signature does not match"),
    ("hmac username", "HMAC signature cannot be verified"),
    ('hmac username="bob"', "HMAC signature cannot be verified"),
    (authorization("x", username=""), "HMAC signature cannot be verified"),
    (authorization("x", username="alice"), "HMAC signature cannot be verified"),
    (authorization("x", algorithm="hmac-sha666"), "HMAC signature cannot be verified"),
    ('hmac username="bob", algorithm="hmac-sha1", header="date", signature="x"',
     "HMAC signature cannot be verified"),
])
def test_bad_authorization(realm, value, message):
    refused(call(realm, headers={"Date": now(), "Authorization": value}), message)


def test_a_date_is_required(realm):
    refused(call(realm, headers={"Authorization": authorization("x")}),
            "HMAC signature cannot be verified, a valid date or x-date header is required for "
            "HMAC Authentication")
    refused(call(realm, headers={"Authorization": authorization("x"), "X-Date": "bad",
                                 "Date": "Thu, 01 Jan 1970 00:00:00 GMT"}),
            "HMAC signature cannot be verified, a valid date or x-date header is required for "
            "HMAC Authentication")


@pytest.mark.parametrize("algorithm", list(DIGESTS))
def test_passes_with_each_algorithm(realm, algorithm):
    response = call(realm, **signed_date(algorithm))
    assert response.status_code == 200
    seen = upstream_headers(response)
    assert (seen["x-consumer-username"], seen["x-credential-identifier"]) == ("bob", "bob")


def test_proxy_authorization_and_a_wrong_authorization(realm):
    assert call(realm, **signed_date(header="Proxy-Authorization")).status_code == 200
    kwargs = signed_date(header="Proxy-Authorization", Authorization="hmac junk")
    assert call(realm, **kwargs).status_code == 200
    kwargs = signed_date(Authorization=None)
    kwargs["headers"]["Proxy-Authorization"] = authorization("wrong")
    refused(call(realm, **kwargs), "HMAC signature does not match")


def test_x_date_and_request_line_and_request_target(realm):
    date = now()
    line = "GET /anything?a=1&b=%20 HTTP/1.1"
    text = f"x-date: {date}\n{line}"
    response = call(realm, "/anything?a=1&b=%20", headers={
        "X-Date": date, "Authorization": authorization(sign(text), "x-date request-line")})
    assert response.status_code == 200
    target = "@request-target: get /anything?a=1"
    response = call(realm, "/anything?a=1", headers={
        "X-Date": date, "Authorization": authorization(
            sign(f"x-date: {date}\n{target}"), "x-date @request-target")})
    assert response.status_code == 200
    refused(call(realm, "/anything?a=2", headers={
        "X-Date": date, "Authorization": authorization(
            sign(f"x-date: {date}\n{target}"), "x-date @request-target")}),
        "HMAC signature does not match")


def test_enforce_headers_and_algorithms(upstream):
    client = gateway(upstream, enforce_headers=["date", "request-line"],
                     algorithms=["hmac-sha256"])
    refused(call(client, **signed_date("hmac-sha256")), "HMAC signature cannot be verified",
            "hmac")
    date = now()
    text = f"date: {date}\nGET /anything HTTP/1.1"
    ok = call(client, headers={"Date": date, "Authorization": authorization(
        sign(text, "hmac-sha256"), "date request-line", "hmac-sha256")})
    assert ok.status_code == 200
    refused(call(client, headers={"Date": date, "Authorization": authorization(
        sign(text), "date request-line")}), "HMAC signature cannot be verified", "hmac")


def test_hide_credentials(upstream, realm):
    assert "authorization" in upstream_headers(call(realm, **signed_date()))
    hidden = gateway(upstream, hide_credentials=True)
    assert "authorization" not in upstream_headers(call(hidden, **signed_date()))


def test_anonymous(upstream):
    client = gateway(upstream, anonymous="no-body")
    seen = upstream_headers(call(client, headers={"Date": now(), "Authorization": "x"}))
    assert (seen["x-consumer-username"], seen["x-anonymous-consumer"]) == ("no-body", "true")


def digest(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()


@pytest.mark.parametrize("body, digest_header, passes", [
    (b"", None, True), (b"", digest(b""), True), (b"abc", None, False),
    (b"abc", digest(b"abc"), True), (b"abd", digest(b"abc"), False),
    (b"abc", digest(b"abd"), False),
])
def test_validate_request_body(upstream, body, digest_header, passes):
    client = gateway(upstream, validate_request_body=True)
    date = now()
    headers = {"Date": date, "Authorization": authorization(sign(f"date: {date}"))}
    if digest_header:
        headers["Digest"] = digest_header
    response = call(client, method="POST", data=body, headers=headers)
    if passes:
        assert response.status_code == 200
    else:
        refused(response, "HMAC signature does not match", "hmac")


def test_from_variables(upstream):
    client = in_process({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "hmac-auth",
                         "GATEWAY_HMACAUTH_CREDENTIALS": "carol:carol-user:k3y",
                         "GATEWAY_HMACAUTH_CLOCK_SKEW": "10", "GATEWAY_ACCESS_LOG": "off"})
    date = now()
    value = authorization(sign(f"date: {date}", secret="k3y"), username="carol-user")
    seen = upstream_headers(call(client, headers={"Date": date, "Authorization": value}))
    assert seen["x-consumer-username"] == "carol"
    old = "Thu, 01 Jan 2026 00:00:00 GMT"
    value = authorization(sign(f"date: {old}", secret="k3y"), username="carol-user")
    assert call(client, headers={"Date": old, "Authorization": value}).status_code == 401
