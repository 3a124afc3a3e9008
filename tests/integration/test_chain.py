"""The whole chain in Kong's order under real gunicorn gevent workers, httpbin upstream and
third party: cors, key-auth, enrichment, rate-limiting, proxy-cache working together."""

from __future__ import annotations

import json

import pytest
import urllib3

ORIGIN = "https://app.example.com"
ALICE = {"Origin": ORIGIN, "apikey": "alice-key"}


@pytest.fixture(scope="module")
def http():
    manager = urllib3.PoolManager(retries=False)
    yield manager
    manager.clear()


@pytest.fixture
def chain(httpbin, gateway):
    # Listed in no particular order: the gateway runs them by PRIORITY, as Kong does.
    return gateway({
        "GATEWAY_UPSTREAM_URL": httpbin,
        "GATEWAY_FILTERS": "proxy-cache,enrichment,rate-limiting,cors,key-auth",
        "GATEWAY_CORS_ORIGINS": ORIGIN,
        "GATEWAY_KEYAUTH_KEYS": "alice:alice-key,bob:bob-key,carol:carol-key",
        "GATEWAY_RATELIMIT_DAY": "4",
        "GATEWAY_ENRICH_URL": httpbin + "/anything/enrich",
    })


def test_the_filters_work_together_in_kong_order(chain, httpbin, http):
    url = chain.url + "/anything/chain"
    preflight = http.request("OPTIONS", url, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert preflight.status == 200  # cors (2000) answers before key-auth (1250) asks for a key
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Cache-Status" not in preflight.headers

    anonymous = http.request("GET", url, headers={"Origin": ORIGIN})
    assert anonymous.status == 401
    assert json.loads(anonymous.data)["message"] == "No API key found in request"
    assert anonymous.headers["Access-Control-Allow-Origin"] == ORIGIN  # cors on errors too

    first = http.request("GET", url, headers=ALICE)
    assert first.status == 200
    assert first.headers["X-Cache-Status"] == "Miss"
    assert first.headers["X-MyPlugin"] == httpbin + "/anything/enrich"  # enrichment
    assert first.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert first.headers["X-RateLimit-Remaining-Day"] == "3"
    assert json.loads(first.data)["headers"]["X-Consumer-Username"] == "alice"

    hit = http.request("GET", url, headers=ALICE)
    assert hit.headers["X-Cache-Status"] == "Hit"
    assert hit.data == first.data  # httpbin echoes the request id: the very same bytes
    assert hit.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert hit.headers["X-RateLimit-Remaining-Day"] == "2"  # a hit still counts (910 > 100)

    bob = http.request("GET", url, headers={**ALICE, "apikey": "bob-key"})
    assert bob.headers["X-Cache-Status"] == "Miss"  # the consumer is part of the cache key
    assert json.loads(bob.data)["headers"]["X-Consumer-Username"] == "bob"
    assert bob.headers["X-RateLimit-Remaining-Day"] == "3"

    statuses = [http.request("GET", url, headers=ALICE).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = http.request("GET", url, headers=ALICE)
    assert limited.status == 429
    assert json.loads(limited.data)["message"] == "API rate limit exceeded"
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Cache-Status" not in limited.headers  # refused before proxy-cache ran


def test_cache_hits_are_enriched_too(chain, httpbin, http):
    carol = {"apikey": "carol-key"}
    miss = http.request("GET", chain.url + "/anything/enriched", headers=carol)
    hit = http.request("GET", chain.url + "/anything/enriched", headers=carol)
    assert (miss.headers["X-Cache-Status"], hit.headers["X-Cache-Status"]) == ("Miss", "Hit")
    assert miss.headers["X-MyPlugin"] == httpbin + "/anything/enrich"
    assert hit.headers.get("X-MyPlugin") == miss.headers["X-MyPlugin"]
