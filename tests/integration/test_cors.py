"""cors under real gunicorn gevent workers in front of httpbin: preflight and actual requests."""

from __future__ import annotations

import pytest
import urllib3

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def http():
    """A client whose keep-alive connections are closed after the module, so the
    gateways stop at once at the end of the session."""
    manager = urllib3.PoolManager(retries=False)
    yield manager
    manager.clear()


def test_preflight_is_answered_by_the_gateway_and_actual_requests_get_cors_headers(
        gateway, fixture_server, http):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "cors",
                  "GATEWAY_CORS_ORIGINS": f"{ORIGIN},https://admin.example.com",
                  "GATEWAY_CORS_CREDENTIALS": "true", "GATEWAY_CORS_MAX_AGE": "600",
                  "GATEWAY_CORS_EXPOSED_HEADERS": "X-Request-ID"})
    before = fixture_server.hits["/echo"]
    preflight = http.request("OPTIONS", gw.url + "/echo", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "DELETE",
        "Access-Control-Request-Headers": "Authorization"})
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    assert "DELETE" in preflight.headers["Access-Control-Allow-Methods"].split(",")
    assert preflight.headers["Access-Control-Allow-Headers"] == "Authorization"
    assert preflight.headers["Access-Control-Max-Age"] == "600"
    assert preflight.headers["Vary"] == "Origin"
    assert fixture_server.hits["/echo"] == before  # never reached the upstream

    actual = http.request("GET", gw.url + "/echo", headers={"Origin": ORIGIN})
    assert actual.status == 200
    assert actual.headers["X-Upstream"] == "fixture"
    assert actual.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert actual.headers["Access-Control-Expose-Headers"] == "X-Request-ID"
    assert actual.headers["Vary"] == "Origin"

    refused = http.request("GET", gw.url + "/echo", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_default_cors_allows_any_origin_on_httpbin(httpbin, gateway, http):
    gw = gateway({"GATEWAY_UPSTREAM_URL": httpbin, "GATEWAY_FILTERS": "cors"})
    response = http.request("GET", gw.url + "/get", headers={"Origin": "https://x.example"})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
