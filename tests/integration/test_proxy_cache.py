"""proxy-cache under real gunicorn gevent workers: httpbin, a shared Redis, big bodies."""

from __future__ import annotations

import pytest
import redis
import urllib3

from tests.support.processes import reset_peak_rss, rss_kib

MiB = 1 << 20


@pytest.fixture(scope="module")
def http():
    """A client whose keep-alive connections are closed after the module."""
    manager = urllib3.PoolManager(retries=False)
    yield manager
    manager.clear()


def test_httpbin_response_is_served_from_the_cache(httpbin, gateway, http):
    gw = gateway({"GATEWAY_UPSTREAM_URL": httpbin, "GATEWAY_FILTERS": "proxy-cache"})
    first = http.request("GET", gw.url + "/uuid?case=httpbin")
    second = http.request("GET", gw.url + "/uuid?case=httpbin")
    assert first.headers["X-Cache-Status"] == "Miss"
    assert second.headers["X-Cache-Status"] == "Hit"
    assert second.data == first.data  # httpbin makes a new UUID per call: this one is cached
    assert int(second.headers["Age"]) >= 0
    assert second.headers["X-Cache-Key"] == first.headers["X-Cache-Key"]
    other = http.request("GET", gw.url + "/uuid?case=other")
    assert (other.headers["X-Cache-Status"], other.data != first.data) == ("Miss", True)
    post = http.request("POST", gw.url + "/anything")
    assert post.headers["X-Cache-Status"] == "Bypass"


def test_two_gateways_share_one_redis_cache(gateway, fixture_server, redis_url, http):
    env = {"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "proxy-cache",
           "GATEWAY_REDIS_URL": redis_url, "GATEWAY_CACHE_TTL": "30"}
    one, two = gateway(env), gateway({**env, "GATEWAY_CACHE_MAX_BODY": "2m"})
    host = {"Host": "api.example.com"}  # what a load balancer in front passes to both
    before = fixture_server.hits["/respond/shared"]
    first = http.request("GET", one.url + "/respond/shared?n=1", headers=host)
    second = http.request("GET", two.url + "/respond/shared?n=1", headers=host)
    assert first.headers["X-Cache-Status"] == "Miss"
    assert second.headers["X-Cache-Status"] == "Hit"
    assert second.data == first.data
    assert fixture_server.hits["/respond/shared"] == before + 1
    store = redis.Redis.from_url(redis_url)
    key = "gateway:proxy-cache:" + first.headers["X-Cache-Key"]
    assert 25_000 < store.pttl(key) <= 30_000  # kept for the TTL, as Kong (no storage_ttl)
    assert store.get(key).endswith(b"\n" + first.data)


def test_a_big_body_streams_through_without_being_held(gateway, fixture_server, http):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "proxy-cache",
                  "GATEWAY_CACHE_CONTENT_TYPES": "*/*", "GATEWAY_CACHE_MAX_BODY": "1m"})
    target = gw.url + f"/bytes?n={64 * MiB}&chunked=1"
    http.request("GET", gw.url + "/bytes?n=10")  # warm the worker up
    worker = gw.worker_pids()[0]
    reset_peak_rss(worker)
    baseline = rss_kib(worker)
    for _ in range(2):
        response = http.request("GET", target, preload_content=False)
        size = sum(len(chunk) for chunk in response.stream(MiB))
        assert response.headers["X-Cache-Status"] == "Miss"  # tried, never stored
        assert size == 64 * MiB
    growth_mib = (rss_kib(worker, "VmHWM") - baseline) / 1024
    assert growth_mib < 24, f"worker peak grew {growth_mib:.0f} MiB for a 64 MiB body"
