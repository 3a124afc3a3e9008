"""Kong's key-auth access spec, case by case: spec/03-plugins/09-key-auth/02-access_spec.lua
(Kong 3.10), DB-less, httpbin's /anything standing in for mock_upstream's /request.

Skipped cases (spec case: why):

- key in request body (every content type), hide_credentials for bodies, "preserves
  body MIME type", "key_in_body and unsupported content type": `key_in_body` is not
  supported (refused unless false).
- the combinations on routes with `key_in_body = true` (/ttt, /fft, /tft: 72 of 168):
  the same.
- key in gRPC headers: no gRPC here.
- "errors when anonymous user doesn't exist" (500 per request): the file is refused
  when it loads, naming `anonymous` (asserted instead).
- auto-expiring keys (`ttl`): credential TTLs are not supported.
- 01-api_spec, 03-invalidations_spec, 04-hybrid_mode_spec: the Admin API, DB invalidation
  and hybrid mode (DB-less file only).
- "removes apikey in encoded query", Kong's re-encoded rest of the query (`c=value1`):
  the key is removed (asserted), the other parameters go upstream byte for byte as the
  client wrote them (`c=valu%651`).
"""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from tests.kong.plugin_kit import kong_client, seen, send

CRED_ID = "3f4bb1d4-2a2d-4e1b-a1c3-1e4b2f9c0d11"
ANON_ID = "8b3c4a55-7f1e-4a55-9a2f-0c1d2e3f4a5b"
ANONYMOUS_ID = "0f6d2a6e-9d9b-4b8e-8f43-2b7d1c3a5e01"  # the logical AND / OR setup's consumers
MICKEY_ID = "1c9e4f7a-5b2d-4e8f-9a1b-3d4c5e6f7a02"
ALADDIN_ID = "2d8f5e6b-4c3a-4f9e-8b2c-4e5d6f7a8b03"
KONG_YML = """
_format_version: "3.0"
services:
- name: mock
  url: {httpbin}
  routes:
  - {{name: r1, hosts: [key-auth1.test], plugins: [{{name: key-auth}}]}}
  - name: r2
    hosts: [key-auth2.test]
    plugins: [{{name: key-auth, config: {{hide_credentials: true, realm: test-realm}}}}]
  - name: r3
    hosts: [key-auth3.test]
    plugins: [{{name: key-auth, config: {{anonymous: {anon_id}}}}}]
  - name: r7
    hosts: [key-auth7.test]
    strip_path: true
    plugins: [{{name: key-auth, config: {{run_on_preflight: false}}}}]
  - name: r8
    hosts: [key-auth8.test]
    plugins: [{{name: key-auth, config: {{key_names: [api_key]}}}}]
  - name: r9
    hosts: [key-auth9.test]
    plugins: [{{name: key-auth, config: {{key_names: [api-key]}}}}]
  - name: r10
    hosts: [key-auth10.test]
    plugins: [{{name: key-auth, config: {{anonymous: no-body}}}}]
  - name: logical-and
    hosts: [logical-and.test]
    plugins: [{{name: basic-auth}}, {{name: key-auth}}]
  - name: logical-or
    hosts: [logical-or.test]
    plugins:
    - {{name: basic-auth, config: {{anonymous: {anonymous_id}}}}}
    - {{name: key-auth, config: {{anonymous: {anonymous_id}}}}}
- name: status
  url: {httpbin}/status/200
  routes:
  - {{name: ttf, paths: [/ttf], plugins: [{{name: key-auth, config: {ttf}}}]}}
  - {{name: tff, paths: [/tff], plugins: [{{name: key-auth, config: {tff}}}]}}
  - {{name: fff, paths: [/fff], plugins: [{{name: key-auth, config: {fff}}}]}}
  - {{name: ftf, paths: [/ftf], plugins: [{{name: key-auth, config: {ftf}}}]}}
consumers:
- {{username: no-body, id: {anon_id}}}
- username: bob
  keyauth_credentials: [{{key: kong, id: {cred_id}}}, {{key: right}}]
- {{username: Anonymous, id: {anonymous_id}}}
- username: Mickey
  id: {mickey_id}
  keyauth_credentials: [{{key: Mouse}}]
- username: Aladdin
  id: {aladdin_id}
  basicauth_credentials: [{{username: Aladdin, password: OpenSesame}}]
"""


def _sources(name: str) -> str:
    header, query, _body = (flag == "t" for flag in name)
    return f"{{key_in_header: {str(header).lower()}, key_in_query: {str(query).lower()}}}"


def _yml(httpbin: str, yml: str = KONG_YML) -> str:
    """The spec's setup with its ids and the key_in_* routes filled in."""
    return yml.format(httpbin=httpbin, anon_id=ANON_ID, cred_id=CRED_ID,
                      anonymous_id=ANONYMOUS_ID, mickey_id=MICKEY_ID, aladdin_id=ALADDIN_ID,
                      **{name: _sources(name) for name in ("ttf", "tff", "fff", "ftf")})


@pytest.fixture(scope="module")
def kong(httpbin):
    return kong_client(_yml(httpbin))


def refused(response, message: str, challenge: str = "Key") -> None:
    assert response.status_code == 401
    assert response.json["message"] == message
    assert response.headers["WWW-Authenticate"] == challenge


# ------------------------------------------------------------------ Unauthorized

def test_returns_200_on_options_requests_if_run_on_preflight_is_false(kong):
    assert send(kong, "OPTIONS", "/status/200", "key-auth7.test").status_code == 200


def test_returns_unauthorized_on_options_requests_if_run_on_preflight_is_true(kong):
    refused(send(kong, "OPTIONS", "/status/200", "key-auth1.test"),
            "No API key found in request")


def test_returns_unauthorized_on_missing_credentials(kong):
    refused(send(kong, "GET", "/status/200", "key-auth1.test"), "No API key found in request")


def test_returns_unauthorized_on_empty_key_header(kong):
    response = send(kong, "GET", "/status/200", "key-auth1.test", {"apikey": ""})
    assert response.status_code == 401
    assert response.json["message"] == "No API key found in request"


def test_returns_unauthorized_on_empty_key_header_with_no_realm(kong):
    refused(send(kong, "GET", "/status/200", "key-auth1.test", {"apikey": ""}),
            "No API key found in request", "Key")


def test_returns_unauthorized_on_empty_key_header_with_configured_realm(kong):
    refused(send(kong, "GET", "/status/200", "key-auth2.test", {"apikey": ""}),
            "No API key found in request", 'Key realm="test-realm"')


def test_returns_unauthorized_on_empty_key_querystring(kong):
    refused(send(kong, "GET", "/status/200?apikey", "key-auth1.test"),
            "No API key found in request")


def test_returns_www_authenticate_header_on_missing_credentials(kong):
    assert send(kong, "GET", "/status/200", "key-auth1.test").headers["WWW-Authenticate"] == "Key"


# ------------------------------------------------------------ key in querystring

def test_querystring_authenticates_valid_credentials(kong):
    assert send(kong, "GET", "/anything?apikey=kong", "key-auth1.test").status_code == 200


def test_querystring_returns_401_on_invalid_key(kong):
    refused(send(kong, "GET", "/status/200?apikey=123", "key-auth1.test"), "Unauthorized")


def test_handles_duplicated_key_in_querystring(kong):
    refused(send(kong, "GET", "/status/200?apikey=kong&apikey=kong", "key-auth1.test"),
            "Duplicate API key found")


# --------------------------------------------------------------- key in headers

def test_header_authenticates_valid_credentials(kong):
    assert send(kong, "GET", "/anything", "key-auth1.test", {"apikey": "kong"}).status_code == 200


def test_header_returns_401_on_invalid_key(kong):
    refused(send(kong, "GET", "/status/200", "key-auth1.test", {"apikey": "123"}), "Unauthorized")


# ------------------------------------------------ underscores or hyphens in key headers

@pytest.mark.parametrize("name", ["api_key", "api-key"])
def test_underscores_or_hyphens_authenticate_valid_credentials(kong, name):
    assert send(kong, "GET", "/anything", "key-auth8.test", {name: "kong"}).status_code == 200


@pytest.mark.parametrize("name", ["api_key", "api-key"])
def test_underscores_or_hyphens_return_401_on_invalid_key(kong, name):
    refused(send(kong, "GET", "/status/200", "key-auth8.test", {name: "123"}), "Unauthorized")


def test_a_dashed_key_name_finds_the_dashed_header(kong):  # route 9 of the spec's setup
    assert send(kong, "GET", "/anything", "key-auth9.test", {"api-key": "kong"}).status_code == 200


# ----------------------------------------------------------------- Consumer headers

def test_sends_consumer_headers_to_upstream(kong):
    headers = seen(send(kong, "GET", "/anything?apikey=kong", "key-auth1.test"))["headers"]
    assert isinstance(headers["x-consumer-id"], str) and headers["x-consumer-id"]
    assert headers["x-consumer-username"] == "bob"
    assert headers["x-credential-identifier"] == CRED_ID
    assert "x-anonymous-consumer" not in headers


# ----------------------------------------------------------- config.hide_credentials

@pytest.mark.parametrize(("host", "kept"), [("key-auth1.test", True), ("key-auth2.test", False)])
def test_hide_credentials_in_querystring(kong, host, kept):
    echo = seen(send(kong, "GET", "/anything?apikey=kong", host))
    assert (echo["args"].get("apikey") == "kong") is kept
    assert ("apikey" in echo["args"]) is kept


@pytest.mark.parametrize(("host", "kept"), [("key-auth1.test", True), ("key-auth2.test", False)])
def test_hide_credentials_in_headers(kong, host, kept):
    headers = seen(send(kong, "GET", "/anything", host, {"apikey": "kong"}))["headers"]
    assert (headers.get("apikey") == "kong") is kept


def test_does_not_remove_apikey_and_preserves_order_of_query_parameters(kong):
    echo = seen(send(kong, "GET", "/anything?c=value1&b=value2&apikey=kong&a=value3",
                     "key-auth1.test"))
    assert echo["url"].endswith("/anything?c=value1&b=value2&apikey=kong&a=value3")


def test_removes_apikey_and_preserves_order_of_query_parameters(kong):
    echo = seen(send(kong, "GET", "/anything?c=value1&b=value2&apikey=kong&a=value3",
                     "key-auth2.test"))
    assert echo["url"].endswith("/anything?c=value1&b=value2&a=value3")


def test_removes_apikey_in_encoded_query(kong):
    echo = seen(send(kong, "GET", "/anything?c=valu%651&b=value2&api%6B%65%79=kong&a=valu%653",
                     "key-auth2.test"))
    assert echo["args"] == {"c": "value1", "b": "value2", "a": "value3"}


# ---------------------------------------------------------------- config.anonymous

def test_works_with_right_credentials_and_anonymous(kong):
    headers = seen(send(kong, "GET", "/anything?apikey=kong", "key-auth3.test"))["headers"]
    assert headers["x-consumer-username"] == "bob"
    assert headers["x-credential-identifier"] == CRED_ID
    assert "x-anonymous-consumer" not in headers


def test_works_with_wrong_credentials_and_anonymous_by_id(kong):
    headers = seen(send(kong, "GET", "/anything", "key-auth3.test"))["headers"]
    assert headers["x-anonymous-consumer"] == "true"
    assert "x-credential-identifier" not in headers
    assert headers["x-consumer-username"] == "no-body"
    assert headers["x-consumer-id"] == ANON_ID


def test_works_with_wrong_credentials_and_username_as_anonymous(kong):
    headers = seen(send(kong, "GET", "/anything", "key-auth10.test"))["headers"]
    assert headers["x-anonymous-consumer"] == "true"
    assert headers["x-consumer-username"] == "no-body"


def test_an_anonymous_consumer_that_does_not_exist_refuses_the_file(httpbin):
    # Kong answers 500 "anonymous consumer ... is configured but doesn't exist" per request.
    yml = KONG_YML.replace("anonymous: no-body", "anonymous: nobody-at-all")
    with pytest.raises(ConfigError, match=r"config.anonymous: no consumer .nobody-at-all."):
        kong_client(_yml(httpbin, yml))


# ------------------------------------- multiple auth (basic-auth 1100 after key-auth 1250)

ALADDIN = {"Authorization": "Basic QWxhZGRpbjpPcGVuU2VzYW1l"}  # Aladdin:OpenSesame
MOUSE = {"apikey": "Mouse"}


def upstream_consumer(response) -> dict[str, str]:
    """The consumer headers the upstream saw (a 200 is asserted by ``seen``)."""
    headers = seen(response)["headers"]
    return {name: value for name, value in headers.items() if name.startswith("x-")}


def test_logical_and_passes_with_all_credentials_provided(kong):
    headers = upstream_consumer(send(kong, "GET", "/anything", "logical-and.test",
                                     {**MOUSE, **ALADDIN}))
    assert "x-anonymous-consumer" not in headers
    assert headers["x-consumer-username"] in ("Mickey", "Aladdin")


def test_logical_and_all_credentials_send_one_of_their_consumer_ids(kong):
    headers = upstream_consumer(send(kong, "GET", "/anything", "logical-and.test",
                                     {**MOUSE, **ALADDIN}))
    assert headers["x-consumer-id"] in (MICKEY_ID, ALADDIN_ID)


@pytest.mark.parametrize(("headers", "challenge"), [
    (MOUSE, 'Basic realm="service"'),  # "fails 401, with only the first credential provided"
    (ALADDIN, "Key"),                  # "... with only the second credential provided"
    ({}, "Key"),                       # "... with no credential provided"
])
def test_logical_and_fails_401_without_every_credential(kong, headers, challenge):
    response = send(kong, "GET", "/anything", "logical-and.test", headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == challenge


def test_logical_or_passes_with_all_credentials_provided(kong):
    headers = upstream_consumer(send(kong, "GET", "/anything", "logical-or.test",
                                     {**MOUSE, **ALADDIN}))
    assert "x-anonymous-consumer" not in headers
    assert headers["x-consumer-id"] in (MICKEY_ID, ALADDIN_ID)


def test_logical_or_passes_with_only_the_first_credential_provided(kong):
    headers = upstream_consumer(send(kong, "GET", "/anything", "logical-or.test", MOUSE))
    assert "x-anonymous-consumer" not in headers
    assert headers["x-consumer-id"] == MICKEY_ID


def test_logical_or_passes_with_only_the_second_credential_provided(kong):
    headers = upstream_consumer(send(kong, "GET", "/anything", "logical-or.test", ALADDIN))
    assert "x-anonymous-consumer" not in headers
    assert headers["x-consumer-username"] == "Aladdin"


def test_logical_or_second_credential_sends_its_consumer_id(kong):
    headers = upstream_consumer(send(kong, "GET", "/anything", "logical-or.test", ALADDIN))
    assert headers["x-consumer-id"] == ALADDIN_ID


def test_logical_or_passes_with_no_credential_provided(kong):
    headers = upstream_consumer(send(kong, "GET", "/anything", "logical-or.test"))
    assert headers["x-anonymous-consumer"] == "true"
    assert headers["x-consumer-username"] == "Anonymous"


def test_logical_or_no_credential_sends_the_anonymous_consumer_id(kong):
    headers = upstream_consumer(send(kong, "GET", "/anything", "logical-or.test"))
    assert headers["x-consumer-id"] == ANONYMOUS_ID


# ---------------------------------------------- key_in_header / key_in_query combinations

#: Kong's table: header, query and body keys (right, wrong, none) => route => status.
COMBINATIONS = " ".join([
    "rrr:ttt:200 rrr:ttf:200 rrr:tff:200 rrr:fff:401 rrr:fft:200 rrr:tft:200 rrr:ftf:200 ",
    "rrw:ttt:200 rrw:ttf:200 rrw:tff:200 rrw:fff:401 rrw:fft:401 rrw:tft:200 rrw:ftf:200 ",
    "rww:ttt:200 rww:ttf:200 rww:tff:200 rww:fff:401 rww:fft:401 rww:tft:200 rww:ftf:401 ",
    "www:ttt:401 www:ttf:401 www:tff:401 www:fff:401 www:fft:401 www:tft:401 www:ftf:401 ",
    "wwr:ttt:401 wwr:ttf:401 wwr:tff:401 wwr:fff:401 wwr:fft:200 wwr:tft:401 wwr:ftf:401 ",
    "rwr:ttt:200 rwr:ttf:200 rwr:tff:200 rwr:fff:401 rwr:fft:200 rwr:tft:200 rwr:ftf:401 ",
    "wrw:ttt:401 wrw:ttf:401 wrw:tff:401 wrw:fff:401 wrw:fft:401 wrw:tft:401 wrw:ftf:200 ",
    "nnn:ttt:401 nnn:ttf:401 nnn:tff:401 nnn:fff:401 nnn:fft:401 nnn:tft:401 nnn:ftf:401 ",
    "nnw:ttt:401 nnw:ttf:401 nnw:tff:401 nnw:fff:401 nnw:fft:401 nnw:tft:401 nnw:ftf:401 ",
    "nww:ttt:401 nww:ttf:401 nww:tff:401 nww:fff:401 nww:fft:401 nww:tft:401 nww:ftf:401 ",
    "wwn:ttt:401 wwn:ttf:401 wwn:tff:401 wwn:fff:401 wwn:fft:401 wwn:tft:401 wwn:ftf:401 ",
    "nwn:ttt:401 nwn:ttf:401 nwn:tff:401 nwn:fff:401 nwn:fft:401 nwn:tft:401 nwn:ftf:401 ",
    "wnw:ttt:401 wnw:ttf:401 wnw:tff:401 wnw:fff:401 wnw:fft:401 wnw:tft:401 wnw:ftf:401 ",
    "rrn:ttt:200 rrn:ttf:200 rrn:tff:200 rrn:fff:401 rrn:fft:401 rrn:tft:200 rrn:ftf:200 ",
    "rnn:ttt:200 rnn:ttf:200 rnn:tff:200 rnn:fff:401 rnn:fft:401 rnn:tft:200 rnn:ftf:401 ",
    "nnr:ttt:200 nnr:ttf:401 nnr:tff:401 nnr:fff:401 nnr:fft:200 nnr:tft:200 nnr:ftf:401 ",
    "rnr:ttt:200 rnr:ttf:200 rnr:tff:200 rnr:fff:401 rnr:fft:200 rnr:tft:200 rnr:ftf:401 ",
    "nrn:ttt:200 nrn:ttf:200 nrn:tff:401 nrn:fff:401 nrn:fft:401 nrn:tft:401 nrn:ftf:200 ",
    "nrw:ttt:200 nrw:ttf:200 nrw:tff:401 nrw:fff:401 nrw:fft:401 nrw:tft:401 nrw:ftf:200 ",
    "rwn:ttt:200 rwn:ttf:200 rwn:tff:200 rwn:fff:401 rwn:fft:401 rwn:tft:200 rwn:ftf:401 ",
    "rnw:ttt:200 rnw:ttf:200 rnw:tff:200 rnw:fff:401 rnw:fft:401 rnw:tft:200 rnw:ftf:401 ",
    "nwr:ttt:401 nwr:ttf:401 nwr:tff:401 nwr:fff:401 nwr:fft:200 nwr:tft:200 nwr:ftf:401 ",
    "wrn:ttt:401 wrn:ttf:401 wrn:tff:401 wrn:fff:401 wrn:fft:401 wrn:tft:401 wrn:ftf:200 ",
    "wnr:ttt:401 wnr:ttf:401 wnr:tff:401 wnr:fff:401 wnr:fft:200 wnr:tft:401 wnr:ftf:401 ",
]).split()
KEYS = {"r": "right", "w": "wrong", "n": None}
#: The routes with key_in_body = false (the others are skipped: see the docstring).
TRANSLATED = {"ttf", "tff", "fff", "ftf"}


@pytest.mark.parametrize("case", [c for c in COMBINATIONS if c.split(":")[1] in TRANSLATED])
def test_combination(kong, case):
    sources, route, status = case.split(":")
    header, query, body = (KEYS[flag] for flag in sources)
    response = send(kong, "POST", f"/{route}" + (f"?apikey={query}" if query else ""), "any.test",
                    {"Content-Type": "application/x-www-form-urlencoded",
                     **({"apikey": header} if header else {})},
                    data=f"apikey={body}" if body else None)
    assert response.status_code == int(status)
    if status == "401":
        assert response.headers["WWW-Authenticate"] == "Key"
