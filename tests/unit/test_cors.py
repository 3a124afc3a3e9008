"""cors in-process: Kong's preflight answer, origin rules, credentials, Vary, settings."""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from gateway.config import ConfigError, load
from gateway.filters.cors import CorsConfig, normalize_origin
from tests.support.app import in_process
from tests.support.fixture_server import closed_port_url

PREFLIGHT = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"}


def client(upstream, **env: str) -> Client:
    environ = {"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "cors", **env}
    return in_process(environ)


def test_preflight_is_answered_by_the_gateway_with_kongs_defaults(upstream):
    before = upstream.hits["/echo"]
    response = client(upstream).options("/echo", headers={
        **PREFLIGHT, "Access-Control-Request-Headers": "X-Custom,Content-Type"})
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == (
        "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT")
    assert response.headers["Access-Control-Allow-Headers"] == "X-Custom,Content-Type"
    assert "Access-Control-Max-Age" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Vary" not in response.headers  # `*` does not depend on the Origin
    assert upstream.hits["/echo"] == before


def test_preflight_uses_configured_methods_headers_max_age_and_credentials(upstream):
    c = client(upstream, GATEWAY_CORS_ORIGINS="https://app.example.com,https://admin.example.com",
               GATEWAY_CORS_METHODS="GET,PUT", GATEWAY_CORS_HEADERS="Authorization,apikey",
               GATEWAY_CORS_MAX_AGE="3600", GATEWAY_CORS_CREDENTIALS="true")
    response = c.options("/echo", headers={**PREFLIGHT, "Access-Control-Request-Headers": "X-Y"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert response.headers["Access-Control-Allow-Methods"] == "GET,PUT"
    assert response.headers["Access-Control-Allow-Headers"] == "Authorization,apikey"
    assert response.headers["Access-Control-Max-Age"] == "3600"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Vary"] == "Origin"


def test_preflight_from_a_refused_origin_gets_no_allow_origin(upstream):
    c = client(upstream, GATEWAY_CORS_ORIGINS="https://app.example.com,https://admin.example.com")
    response = c.options("/echo", headers={**PREFLIGHT, "Origin": "https://evil.example.net"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.headers["Vary"] == "Origin"


def test_options_without_request_method_is_not_a_preflight_and_is_proxied(upstream):
    response = client(upstream).options("/echo", headers={"Origin": "https://a.example"})
    assert response.json["method"] == "OPTIONS"
    assert response.headers["X-Upstream"] == "fixture"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_preflight_continue_passes_the_preflight_to_the_upstream_untouched(upstream):
    response = client(upstream, GATEWAY_CORS_PREFLIGHT_CONTINUE="true").options(
        "/echo", headers=PREFLIGHT)
    assert response.json["method"] == "OPTIONS"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_actual_response_gets_the_matching_origin_exposed_headers_and_vary(upstream):
    c = client(upstream, GATEWAY_CORS_ORIGINS="https://app.example.com,http://localhost:3000",
               GATEWAY_CORS_EXPOSED_HEADERS="X-Request-ID,X-Total", GATEWAY_CORS_CREDENTIALS="1")
    response = c.get("/echo", headers={"Origin": "http://localhost:3000"})
    assert response.json["method"] == "GET"
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Expose-Headers"] == "X-Request-ID,X-Total"
    assert response.headers["Vary"] == "Origin"
    refused = c.get("/echo", headers={"Origin": "http://localhost:3001"})
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert refused.status_code == 200  # CORS is enforced by the browser, not the gateway


def test_default_ports_are_ignored_when_matching(upstream):
    c = client(upstream, GATEWAY_CORS_ORIGINS="https://app.example.com:443,https://b.example")
    response = c.get("/echo", headers={"Origin": "https://APP.example.com"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_regex_origins_match_the_host_or_the_whole_origin(upstream):
    c = client(upstream, GATEWAY_CORS_ORIGINS=r".*\.example\.com,^http://dev[0-9]:8080$")
    allowed = c.get("/echo", headers={"Origin": "https://shop.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    dev = c.get("/echo", headers={"Origin": "http://dev3:8080"})
    assert dev.headers["Access-Control-Allow-Origin"] == "http://dev3:8080"
    suffix = c.get("/echo", headers={"Origin": "https://example.com.evil.net"})
    assert "Access-Control-Allow-Origin" not in suffix.headers


def test_star_with_credentials_echoes_the_origin(upstream):
    c = client(upstream, GATEWAY_CORS_CREDENTIALS="true")
    response = c.get("/echo", headers={"Origin": "https://x.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://x.example"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Vary"] == "Origin"
    without_origin = c.get("/echo")
    assert without_origin.headers["Access-Control-Allow-Origin"] == "*"


def test_single_plain_origin_is_always_sent(upstream):
    response = client(upstream, GATEWAY_CORS_ORIGINS="https://app.example.com").get("/echo")
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert response.headers["Vary"] == "Origin"


def test_gateway_errors_carry_cors_headers_too(upstream):
    environ = {"GATEWAY_FILTERS": "cors,request-termination",
               "GATEWAY_TERMINATION_STATUS": "503"}
    response = client(upstream, **environ).get("/echo", headers={"Origin": "https://a.example"})
    assert response.status_code == 503
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_normalize_origin():
    assert normalize_origin("HTTPS://Example.COM:443") == "https://example.com"
    assert normalize_origin("http://example.com:8080") == "http://example.com:8080"
    assert normalize_origin("null") == "null"


@pytest.mark.parametrize(("env", "value"), [
    ("GATEWAY_CORS_ORIGINS", "https://(unclosed"),
    ("GATEWAY_CORS_MAX_AGE", "soon"),
    ("GATEWAY_CORS_CREDENTIALS", "maybe"),
    ("GATEWAY_CORS_HEADERS", "X-A,X B"),
])
def test_bad_settings_name_the_variable(env, value):
    with pytest.raises(ConfigError, match=env):
        load(CorsConfig, {env: value})


@pytest.mark.parametrize("failure, status", [
    ({"GATEWAY_UPSTREAM_URL": closed_port_url(), "GATEWAY_RETRIES": "0"}, 502),
    ({"GATEWAY_FILTERS": "cors,enrichment",
      "GATEWAY_ENRICH_URL": closed_port_url() + "/anything"}, 500),
])
def test_the_gateways_own_errors_carry_cors_headers(upstream, failure, status):
    """A browser can read the error: the upstream's 502 raised out of the request phase, and
    enrichment's 500 answered in the response phase after cors had run."""
    response = in_process({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "cors",
                           "GATEWAY_CORS_ORIGINS": "https://app.example.com", **failure}).get(
        "/echo", headers={"Origin": "https://app.example.com"})
    assert response.status_code == status
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert response.headers["Vary"] == "Origin"
    assert response.json["request_id"] == response.headers["X-Request-ID"]
