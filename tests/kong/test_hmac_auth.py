"""hmac-auth, translated from Kong's spec/03-plugins/19-hmac-auth/03-access_spec.lua.

Skipped cases of the spec, and why:

===============================================  =========================================
gRPC calls (incl. @request-target over HTTP/2)    no gRPC proxying in this gateway
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
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.kong.auth_support import call, from_file, in_process, upstream, upstream_headers

__all__ = ["upstream"]

BOB_ID = "4c0e6b2a-8d1f-4e3a-9b5c-7d6e5f4a3b21"
ANONYMOUS_ID = "6e2a8c4b-0f3d-4a5b-8c7e-9f8a7b6c5d32"
CONSUMERS = [{"username": "bob", "id": BOB_ID,
              "hmacauth_credentials": [{"username": "bob", "secret": "secret"}]},
             {"username": "no-body", "id": ANONYMOUS_ID}]
NOT_VALID = "HMAC signature cannot be verified"
NO_DATE = NOT_VALID + ", a valid date or x-date header is required for HMAC Authentication"
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


# ------------------------------------------------- the spec's cases, header values as written

SIGNED = 'hmac username="bob",algorithm="hmac-sha1",headers="date",signature="{}"'
#: Signed over date, content-md5 and the request line, as the spec's later cases.
LINE = "date content-md5 request-line"


def md5_text(date: str, line: str = "GET /anything HTTP/1.1", first: str = "date") -> str:
    """The spec's signing string over ``first`` (date or x-date), content-md5, request-line."""
    return f"{first}: {date}\ncontent-md5: md5\n{line}"


def spec_call(client, value: str, path: str = "/anything", header="Proxy-Authorization",
              **headers: str):
    """A GET carrying ``value`` in ``header`` with Authorization: hello and content-md5: md5
    (the spec's shape), a fresh Date unless given."""
    sent = {"Date": now(), "Authorization": "hello", "content-md5": "md5", header: value}
    sent.update(headers)
    return call(client, path, headers={k: v for k, v in sent.items() if v is not None})


@pytest.mark.parametrize("header, value", [
    ("Proxy-Authorization", "asd"),
    ("Proxy-Authorization", "hmac :dXNlcm5hbWU6cGFzc3dvcmQ="),  # only the digest
    ("Proxy-Authorization", "hmac username=,algorithm,headers,dXNlcm5hbWU6cGFzc3dvcmQ="),
    ("Authorization", "hmac username=,algorithm,headers,dXNlcm5hbWU6cGFzc3dvcmQ="),
    ("Authorization", "asd"),
    ("Authorization", 'hmac algorithm="hmac-sha1",headers="date",signature="x"'),  # no username
    ("Authorization", 'hmac username="bob",algorithm="hmac-sha1",headers="date"'),  # no signature
])
def test_malformed_hmac_fields_cannot_be_verified(realm, header, value):
    refused(call(realm, method="POST", headers={"Date": now(), header: value}), NOT_VALID)


def test_a_signature_not_properly_base64_encoded_does_not_match(realm):
    value = ('"hmac username="bob",algorithm="hmac-sha1",headers="date",'
             'signature="not really a base64 encoded value!!!"')
    refused(call(realm, method="POST", headers={"Date": now(), "Authorization": value}),
            "HMAC signature does not match")


@pytest.mark.parametrize("template", [
    'hmac username="bobb",  algorithm="hmac-sha1", headers="{h}", signature="{s}"',
    'hmac username="",  algorithm="hmac-sha1", headers="{h}", signature="{s}"',
    'hmac algorithm="hmac-sha1", headers="{h}", signature="{s}"',
    'hmac username="bob",  algorithm="hmac-sha1",   wrong_header="{h}", signature="{s}"',
    'hmac username="bob",  algorithm="hmac-sha1",   headers="{h}", wrong_signature="{s}"',
    'hmac username="bob",  algorithm="hmac-sha1" headers="{h}", signature="{s}"',
    'hmac username="bob",  algorithm="hmac-sha1" headers="  {h}",signature="{s}"',
    'hmac username="bob",algorithm="hmac-sha",  headers="{h}",signature="{s}"',
])
def test_wrong_or_malformed_fields_beside_a_good_signature_are_refused(realm, template):
    date = now()
    value = template.format(h=LINE, s=sign(md5_text(date)))
    refused(spec_call(realm, value, Date=date), NOT_VALID)


def test_should_pass_with_get_and_post_and_send_authorization_upstream(realm):
    for method in ("GET", "POST"):
        date = now()
        value = SIGNED.format(sign(f"date: {date}"))
        response = call(realm, method=method, headers={"Date": date, "Authorization": value})
        assert upstream_headers(response)["authorization"] == value


def test_valid_authorization_and_wrong_proxy_authorization(realm):
    date = now()
    value = SIGNED.format(sign(f"date: {date}"))
    response = call(realm, method="POST", headers={
        "Date": date, "Authorization": value, "Proxy-Authorization": "hmac username"})
    assert upstream_headers(response)["authorization"] == value


@pytest.mark.parametrize("template, names, line", [
    ('hmac username="bob",algorithm="hmac-sha1",headers="{h}",signature="{s}"',
     "date content-md5", None),
    ('hmac username="bob",  algorithm="hmac-sha1", headers="{h}", signature="{s}"', LINE,
     "GET /anything HTTP/1.1"),
    ('hmac username="bob",  algorithm="hmac-sha1", headers="{h}", signature="{s}"',
     "date content-md5 @request-target", "@request-target: get /anything"),
    ('hmac username="bob",algorithm="hmac-sha1",  headers="{h}",signature="{s}"', LINE,
     "GET /anything HTTP/1.1"),  # no space or spaces between the fields
])
def test_signed_content_md5_request_line_and_request_target_pass(realm, template, names, line):
    date = now()
    text = f"date: {date}\ncontent-md5: md5" + (f"\n{line}" if line else "")
    response = spec_call(realm, template.format(h=names, s=sign(text)), Date=date)
    assert response.status_code == 200


def test_an_http_1_0_request_line_is_signed_as_http_1_0(realm):
    date = now()
    value = authorization(sign(md5_text(date, "GET /anything HTTP/1.0")), LINE)
    response = call(realm, headers={"Date": date, "Proxy-Authorization": value,
                                    "content-md5": "md5"},
                    environ_overrides={"SERVER_PROTOCOL": "HTTP/1.0"})
    assert response.status_code == 200


def test_should_pass_the_right_headers_to_the_upstream_server(realm):
    date = now()
    value = authorization(sign(md5_text(date), "hmac-sha256"), LINE, "hmac-sha256")
    seen = upstream_headers(spec_call(realm, value, Date=date))
    assert (seen["x-consumer-username"], seen["x-credential-identifier"]) == ("bob", "bob")
    assert "x-anonymous-consumer" not in seen


def test_the_upstream_gets_the_consumers_id(realm):
    date = now()
    value = authorization(sign(md5_text(date)), LINE)
    assert upstream_headers(spec_call(realm, value, Date=date))["x-consumer-id"] == BOB_ID


@pytest.mark.parametrize("x_date, date, signed_first, signed_date", [
    ("now", None, "x-date", "now"),                   # "should pass with GET with x-date header"
    ("wrong date", "now", "date", "now"),             # x-date malformed, date used for signature
    ("wrong date", "now", "x-date", "wrong date"),    # x-date malformed and used, date's skew ok
    ("now", "wrong date", "date", "wrong date"),      # date malformed and used, x-date's skew ok
])
def test_x_date_and_date_either_valid_one_passes_the_skew(realm, x_date, date, signed_first,
                                                          signed_date):
    stamp = now()
    real = {"now": stamp, "wrong date": "wrong date", None: None}
    value = authorization(sign(md5_text(real[signed_date], first=signed_first)),
                          f"{signed_first} content-md5 request-line")
    response = call(realm, headers={k: v for k, v in {
        "X-Date": real[x_date], "Date": real[date], "Authorization": value,
        "content-md5": "md5"}.items() if v is not None})
    assert response.status_code == 200


def test_x_date_malformed_but_date_correct_unsigned(realm):
    value = authorization(sign("content-md5: md5\nGET /anything HTTP/1.1"),
                          "content-md5 request-line")
    response = call(realm, headers={"X-Date": "wrong date", "Date": now(),
                                    "Authorization": value, "content-md5": "md5"})
    assert response.status_code == 200


@pytest.mark.parametrize("dates", [{}, {"X-Date": "wrong date"}])
def test_no_valid_date_or_x_date_is_refused(realm, dates):
    value = authorization(sign("content-md5: md5\nGET /anything? HTTP/1.1"),
                          "content-md5 request-line")
    refused(call(realm, headers={**dates, "Proxy-Authorization": value, "Authorization": "hello",
                                 "content-md5": "md5"}), NO_DATE)


@pytest.mark.parametrize("anonymous", [ANONYMOUS_ID, "no-body"])  # by id, by username
def test_anonymous_by_id_or_username(upstream, anonymous):
    client = gateway(upstream, anonymous=anonymous)
    date = now()
    value = SIGNED.format(sign(f"date: {date}"))
    seen = upstream_headers(call(client, headers={"Date": date, "Authorization": value}))
    assert (seen["authorization"], seen["x-consumer-username"]) == (value, "bob")
    assert seen["x-credential-identifier"] == "bob" and "x-anonymous-consumer" not in seen
    seen = upstream_headers(call(client))
    assert (seen["x-consumer-username"], seen["x-anonymous-consumer"]) == ("no-body", "true")
    assert "x-credential-identifier" not in seen


# ------------------------------------------------ validate_request_body (the spec's hmacauth4)

POST_BODY = b'{"a":"apple","b":"ball"}'


@pytest.fixture(scope="module")
def body_checked(upstream):
    return gateway(upstream, validate_request_body=True)


def digest_signed(body: bytes, digest_header: str | None, method: str = "POST",
                  signed_digest: str | None = None) -> dict:
    """A request signing date and digest (``signed_digest``, default the body's own)."""
    date = now()
    signed = signed_digest or digest(POST_BODY if method == "POST" else b"")
    value = ('"hmac username="bob",algorithm="hmac-sha1",headers="date digest",signature="'
             + sign(f"date: {date}\ndigest: {signed}") + '"')
    headers = {"Date": date, "Authorization": value}
    if digest_header is not None:
        headers["Digest"] = digest_header
    return {"method": method, "data": body, "headers": headers}


SPOOFED = digest(POST_BODY) + "spoofed"


@pytest.mark.parametrize("body, digest_header, method, signed_digest, passes", [
    (POST_BODY, digest(POST_BODY), "POST", None, True),  # digest header present
    (b"", digest(b""), "GET", None, True),               # no body, a digest header
    (POST_BODY, None, "POST", None, False),              # digest header missing
    (b"abc", digest(POST_BODY), "POST", None, False),    # body tampered
    (POST_BODY, SPOOFED, "POST", SPOOFED, False),        # digest header tampered
])
def test_body_validation_with_a_signed_digest(body_checked, body, digest_header, method,
                                              signed_digest, passes):
    response = call(body_checked, **digest_signed(body, digest_header, method, signed_digest))
    if passes:
        assert response.status_code == 200
    else:
        refused(response, "HMAC signature does not match", "hmac")


@pytest.mark.parametrize("method, body, passes", [("POST", POST_BODY, False), ("GET", b"", True)])
def test_body_validation_without_a_digest_header(body_checked, method, body, passes):
    date = now()
    value = SIGNED.format(sign(f"date: {date}"))
    response = call(body_checked, method=method, data=body,
                    headers={"Date": date, "Authorization": value})
    if passes:
        assert response.status_code == 200
    else:
        refused(response, "HMAC signature does not match", "hmac")


# ------------------------- enforce_headers date + request-line (hmacauth5), algorithms (hmacauth6)

@pytest.fixture(scope="module")
def enforced(upstream):
    return gateway(upstream, enforce_headers=["date", "request-line"],
                   validate_request_body=True)


@pytest.fixture(scope="module")
def sha1_or_256(upstream):
    return gateway(upstream, enforce_headers=["date", "request-line"],
                   algorithms=["hmac-sha1", "hmac-sha256"], validate_request_body=True)


def line_call(client, path: str, signed_target: str | None = None,
              algorithm: str = "hmac-sha1", names: str = LINE):
    """A GET to ``path`` with Proxy-Authorization signing its request line (or
    ``signed_target`` in it instead), as the spec's hmacauth5 cases."""
    date = now()
    line = f"GET {signed_target or path} HTTP/1.1" if "request-line" in names else None
    text = f"date: {date}\ncontent-md5: md5" + (f"\n{line}" if line else "")
    value = authorization(sign(text, algorithm), names, algorithm)
    return call(client, path, headers={"Date": date, "Proxy-Authorization": value,
                                       "content-md5": "md5"})


@pytest.mark.parametrize("path, signed", [("/anything?name=foo", "/anything"),
                                          ("/anything/?name=foo", "/anything/")])
def test_a_request_line_signed_without_its_query_is_refused(enforced, path, signed):
    refused(line_call(enforced, path, signed), "HMAC signature does not match", "hmac")


@pytest.mark.parametrize("path, args", [
    ("/anything", {}), ("/anything?name=foo", {"name": ["foo"]}),
    ("/anything/?name=foo", {"name": ["foo"]}),
    ("/anything?name=foo%20bar", {"name": ["foo bar"]}),
    ("/anything?name=foo%20b%C3%A1r", {"name": ["foo bár"]}),
    ("/anything?name=foo%20bar&address=san%20francisco",
     {"name": ["foo bar"], "address": ["san francisco"]}),
    ("/anything?name=foo&name=bar", {"name": ["foo", "bar"]}),
    ("/", {}),
    ("/anything/some%20value/?name=foo&name=bar", {"name": ["foo", "bar"]}),
])
def test_a_request_line_with_its_query_and_escapes_passes(enforced, path, args):
    response = line_call(enforced, path)
    assert response.status_code == 200
    target = urlsplit(response.json["target"])
    assert (unquote(target.path), parse_qs(target.query)) == (unquote(path.split("?")[0]),
                                                              args)


def test_fails_when_the_enforced_request_line_is_not_signed(enforced):
    refused(line_call(enforced, "/anything", names="date content-md5"), NOT_VALID, "hmac")


@pytest.mark.parametrize("client, algorithm, passes", [
    ("enforced", "hmac-sha384", True), ("enforced", "hmac-sha512", True),
    ("sha1_or_256", "hmac-sha512", False), ("sha1_or_256", "hmac-sha1", True),
])
def test_algorithms_accepted(request, client, algorithm, passes):
    response = line_call(request.getfixturevalue(client), "/anything", algorithm=algorithm)
    if passes:
        assert response.status_code == 200
    else:
        refused(response, NOT_VALID, "hmac")


def test_an_invalid_proxy_authorization_without_realm(sha1_or_256):
    refused(call(sha1_or_256, headers={
        "Date": now(), "Proxy-Authorization": "this is no hmac token at all is it?"}),
        NOT_VALID, "hmac")
