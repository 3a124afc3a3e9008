"""Kong's redirect specs, case by case: spec/03-plugins/45-redirect/02-access_spec.lua
(routes api1-api4), 03-integration_spec.lua (the plugin on a consumer) and 01-schema_spec.lua,
DB-less, through a declarative file; httpbin stands behind the routes, never reached.

Nothing is skipped. Besides Kong's cases: the upstream is never called, the body and
headers Kong sends (`redirecting`, no Content-Type), a bodiless status, the location's
fragment kept and the path normalised as Kong's get_path() (asserted as facts of Kong's
handler, kong/plugins/redirect/handler.lua), and the variables' path.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.config import ConfigError
from tests.kong.plugin_kit import kong_client, send
from tests.support.app import in_process

#: host prefix -> the plugin's config (the access spec's routes, and ours after them).
CONFIGS: dict[str, dict[str, Any]] = {
    "api1": {"location": "https://example.com"},
    "api2": {"status_code": 302, "location": "https://example.com"},
    "api3": {"location": "https://example.com/path?foo=bar"},
    "api4": {"location": "https://example.com/some_path?foo=bar", "keep_incoming_path": True},
    "api5": {"location": "https://example.com:8443/x?y=1#top", "keep_incoming_path": True},
    "api6": {"status_code": 304, "location": "https://example.com"},
}
SUFFIX = ".redirect.test"


@pytest.fixture(scope="module")
def kong(httpbin):
    routes = [{"name": name, "hosts": [name + SUFFIX],
               "plugins": [{"name": "redirect", "config": config}]}
              for name, config in CONFIGS.items()]
    routes.append({"name": "consumer-route", "hosts": ["consumer.redirect.test"],
                   "plugins": [{"name": "key-auth"}]})
    return kong_client(json.dumps({
        "_format_version": "3.0",
        "services": [{"name": "mock", "url": httpbin, "routes": routes}],
        "consumers": [{"username": "bob", "keyauth_credentials": [{"key": "kong"}],
                       "plugins": [{"name": "redirect", "config": {
                           "location": "https://example.com/path?foo=bar"}}]}]}))


def get(kong, name: str, path: str = "/status/200", **kwargs: Any):
    return send(kong, "GET", path, name + SUFFIX, **kwargs)


# ------------------------------------------------------------------ 02-access_spec

@pytest.mark.parametrize(("name", "status"), [("api1", 301),  # default status code
                                             ("api2", 302)])  # custom status code
def test_status_code(kong, name, status):
    assert get(kong, name).status_code == status


def test_supports_path_and_query_params_in_location(kong):
    assert get(kong, "api3").headers["Location"] == "https://example.com/path?foo=bar"


def test_keeps_the_existing_redirect_url(kong):
    response = get(kong, "api4", "/status/200?keep=this")
    assert response.headers["Location"] == "https://example.com/status/200?keep=this"


# ------------------------------------------------------------- 03-integration_spec

def test_can_be_applied_on_a_consumer(kong):
    response = get(kong, "consumer", "/request", headers={"apikey": "kong"})
    assert response.status_code == 301
    assert response.headers["Location"] == "https://example.com/path?foo=bar"
    assert get(kong, "consumer", "/status/200").status_code == 401  # no key: no consumer


# -------------------------------------------------------------- Kong's handler's facts

def test_the_answer_is_kongs_and_the_upstream_is_not_called(kong):
    response = get(kong, "api1", "/anything")  # httpbin would echo the request
    assert response.get_data() == b"redirecting"
    assert response.headers["Content-Length"] == "11"
    assert "Content-Type" not in response.headers


def test_a_bodiless_status_has_no_body(kong):
    response = get(kong, "api6")
    assert response.status_code == 304 and response.get_data() == b""
    assert "Content-Length" not in response.headers
    assert response.headers["Location"] == "https://example.com"


@pytest.mark.parametrize(("path", "location"), [
    ("/a/../b/./c?q=1", "https://example.com:8443/b/c?q=1#top"),  # get_path() normalised
    ("/%61bc", "https://example.com:8443/abc#top"),  # unreserved escapes decoded
    ("/a%2Fb", "https://example.com:8443/a%2Fb#top"),  # reserved ones kept
    ("/", "https://example.com:8443/#top"),  # no query: none in the location
])
def test_the_incoming_path_is_kongs_get_path_and_the_rest_stays(kong, path, location):
    assert get(kong, "api5", path).headers["Location"] == location


# ----------------------------------------------------------------- 01-schema_spec

def schema_file(config: dict[str, Any]) -> str:
    return json.dumps({"_format_version": "3.0", "services": [{
        "name": "s", "url": "http://127.0.0.1:9", "routes": [{"name": "r", "paths": ["/"]}],
        "plugins": [{"name": "redirect", "config": config}]}]})


@pytest.mark.parametrize("config", [
    {"status_code": 404, "location": "https://example.com"},  # a valid status_code
    {"location": "https://example.com"},  # a valid location
])
def test_schema_accepts(config):
    kong_client(schema_file(config))


@pytest.mark.parametrize(("config", "error"), [
    ({"status_code": "abcd", "location": "https://example.com"},  # only integers
     "config.status_code: expected an integer"),
    ({"status_code": None, "location": "https://example.com"},  # not nullable
     "config.status_code: required field missing"),
    ({"status_code": 99, "location": "https://example.com"},
     "config.status_code: value should be between 100 and 599"),
    ({"status_code": 600, "location": "https://example.com"},
     "config.status_code: value should be between 100 and 599"),
    ({"status_code": 301}, "config.location: required field missing"),
    ({"status_code": 301, "location": "definitely_not_a_url"},
     "config.location: missing host in url"),
    ({"status_code": 301, "location": "https://example.com", "keep_incoming_path": "invalid"},
     "config.keep_incoming_path: expected a boolean"),
    ({"location": "//example.com/x"}, "config.location: missing scheme in url"),
])
def test_schema_errors(config, error):
    with pytest.raises(ConfigError) as refused:
        kong_client(schema_file(config))
    assert f"plugins[redirect].{error}" in str(refused.value)


# -------------------------------------------------------------------- from variables

def test_from_variables(httpbin):
    client = in_process({"GATEWAY_UPSTREAM_URL": httpbin, "GATEWAY_FILTERS": "redirect",
                         "GATEWAY_REDIRECT_LOCATION": "https://new.example/",
                         "GATEWAY_REDIRECT_STATUS_CODE": "308",
                         "GATEWAY_REDIRECT_KEEP_INCOMING_PATH": "true"})
    response = client.get("/old/page?id=7")
    assert response.status_code == 308
    assert response.headers["Location"] == "https://new.example/old/page?id=7"


def test_variables_without_a_location_are_refused(httpbin):
    with pytest.raises(ConfigError) as refused:
        in_process({"GATEWAY_UPSTREAM_URL": httpbin, "GATEWAY_FILTERS": "redirect"})
    assert "GATEWAY_REDIRECT_LOCATION" in str(refused.value)
