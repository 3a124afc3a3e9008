"""Header names with `_` under real gunicorn: key-auth's `key_names: [api_key]` finds `api_key:`
and `api-key:` (Kong), and no underscore spelling passes for another header (gunicorn's
`header_map = "dangerous"` behind gateway/ops/header_names.py)."""

from __future__ import annotations

import json

import pytest

from tests.support.net import call

KONG_YML = """
_format_version: "3.0"
services:
- name: echo
  url: {upstream}
  routes:
  - name: keyed
    paths: [/keyed]
    plugins:
    - name: key-auth
      config: {{key_names: [api_key], hide_credentials: true}}
  - name: open
    paths: [/open]
consumers:
- username: bob
  keyauth_credentials:
  - key: kong
"""


@pytest.fixture
def gw(gateway, fixture_server):
    return gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": KONG_YML.format(
        upstream=fixture_server.url + "/echo"), "GATEWAY_TRUSTED_PROXIES": "1"})


def upstream_headers(gw, target: str, headers: dict[str, str]) -> dict[str, str]:
    response, data = call(gw.url, "GET", target, headers)
    assert response.status == 200, data
    return {name.lower(): value for name, value in json.loads(data)["headers"]}


@pytest.mark.parametrize("name", ["api_key", "api-key", "API_KEY"])
def test_both_spellings_of_a_key_name_with_underscore_authenticate_and_are_hidden(gw, name):
    seen = upstream_headers(gw, "/keyed", {name: "kong"})
    assert seen["x-consumer-username"] == "bob"
    assert "api-key" not in seen and "api_key" not in seen


def test_a_wrong_key_under_the_underscore_name_is_refused(gw):
    response, data = call(gw.url, "GET", "/keyed", {"api_key": "123"})
    assert (response.status, json.loads(data)["message"]) == (401, "Unauthorized")
    assert response.headers["WWW-Authenticate"] == "Key"


def test_two_spellings_of_one_name_keep_only_the_dashed_one(gw):
    seen = upstream_headers(gw, "/open", {"X-Tenant": "a", "X_Tenant": "b"})
    assert seen["x-tenant"] == "a"


def test_an_underscore_forwarded_for_cannot_pass_for_the_trusted_proxys(gw):
    seen = upstream_headers(gw, "/open", {"X-Forwarded-For": "10.9.9.9",
                                          "X_Forwarded_For": "6.6.6.6"})
    assert "6.6.6.6" not in seen["x-forwarded-for"]
    assert seen["x-forwarded-for"].startswith("10.9.9.9")


@pytest.mark.parametrize("name", ["X_Forwarded_Host", "Content_Length", "Content_Type",
                                  "X_Real_IP", "SCRIPT_NAME"])
def test_guarded_names_are_dropped_even_alone(gw, name):
    response, data = call(gw.url, "GET", "/open/x", {name: "/open"})
    assert response.status == 200, data
    seen = json.loads(data)
    assert seen["target"] == "/echo/x"
    # X-Forwarded-Prefix is the /open strip_path removed (Kong's); no other header has it.
    assert "/open" not in {value for name, value in seen["headers"]
                           if name.lower() != "x-forwarded-prefix"}


def test_an_underscore_name_alone_reaches_the_upstream_dashed(gw):
    seen = upstream_headers(gw, "/open", {"X_Trace_Token": "t1"})
    assert seen["x-trace-token"] == "t1"
