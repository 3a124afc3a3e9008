"""rate-limiting under real gunicorn gevent workers: Kong's headers and 429, the client IP and
X-Forwarded-For, limits per consumer after key-auth, one exact limit shared by two gateway
processes through a real redis-server, and Redis failures.

Each test sends from its own loopback address (127.0.0.N) so the session's shared gateways
start every test with cold counters for that client.
"""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.test_key_auth import wait_for_log
from tests.support.fixture_server import closed_port_url
from tests.support.net import call


def call_from(url: str, source: str, headers: dict | None = None
              ) -> tuple[http.client.HTTPResponse, bytes]:
    """One GET /echo sent from the loopback address ``source``."""
    return call(url, target="/echo", headers=headers, source=source)


def statuses(url: str, source: str, count: int, **headers: str) -> list[int]:
    """Statuses of ``count`` GETs; ``X_Forwarded_For=`` sends X-Forwarded-For."""
    sent = {name.replace("_", "-"): value for name, value in headers.items()}
    return [call_from(url, source, headers=sent)[0].status for _ in range(count)]


def wait_for_window_room(seconds: int, needed: float) -> None:
    """Sleep into the next window if fewer than ``needed`` seconds are left in this one."""
    left = seconds - time.time() % seconds
    if left < needed:
        time.sleep(left + 0.05)


@pytest.fixture
def by_ip(gateway, fixture_server):
    def start(**env: str):
        return gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                        "GATEWAY_FILTERS": "rate-limiting", "GATEWAY_RATELIMIT_HOUR": "3",
                        "GATEWAY_RATELIMIT_LIMIT_BY": "ip", **env})
    return start


def test_kongs_headers_then_429_with_retry_after(by_ip, fixture_server):
    gw = by_ip()
    remaining = []
    for _ in range(3):
        response, _ = call_from(gw.url, "127.0.0.21")
        assert response.status == 200
        assert response.headers["X-RateLimit-Limit-Hour"] == response.headers[
            "RateLimit-Limit"] == "3"
        remaining.append(response.headers["X-RateLimit-Remaining-Hour"])
        assert response.headers["RateLimit-Remaining"] == remaining[-1]
        assert 0 < int(response.headers["RateLimit-Reset"]) <= 3600
    assert remaining == ["2", "1", "0"]
    before = fixture_server.hits["/echo"]
    response, data = call_from(gw.url, "127.0.0.21")
    assert response.status == 429
    assert json.loads(data)["message"] == "API rate limit exceeded"
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    assert response.headers["RateLimit-Remaining"] == "0"
    assert fixture_server.hits["/echo"] == before
    logs = wait_for_log(gw, response.headers["X-Request-ID"])
    assert '"rate-limiting":"rejected"' in logs


def test_a_spoofed_forwarded_for_does_not_dodge_the_ip_limit(by_ip):
    gw = by_ip()
    codes = [call_from(gw.url, "127.0.0.22", headers={"X-Forwarded-For": f"198.51.100.{n}"})[0]
             .status for n in range(4)]
    assert codes == [200, 200, 200, 429]


def test_trusted_proxies_make_the_forwarded_client_the_one_limited(by_ip):
    gw = by_ip(GATEWAY_TRUSTED_PROXIES="1")
    assert statuses(gw.url, "127.0.0.23", 4, X_Forwarded_For="203.0.113.1") == [200, 200, 200, 429]
    assert statuses(gw.url, "127.0.0.23", 1, X_Forwarded_For="203.0.113.2") == [200]


def test_limit_by_consumer_follows_key_auth(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                  "GATEWAY_FILTERS": "rate-limiting,key-auth", "GATEWAY_RATELIMIT_HOUR": "2",
                  "GATEWAY_KEYAUTH_KEYS": "alice:ka-1,alice:ka-2,bob:kb-1"})
    assert statuses(gw.url, "127.0.0.24", 1, apikey="ka-1") == [200]
    assert statuses(gw.url, "127.0.0.25", 2, apikey="ka-2") == [200, 429]  # alice, other IP
    assert statuses(gw.url, "127.0.0.24", 2, apikey="kb-1") == [200, 200]  # bob's own bucket
    response, _ = call_from(gw.url, "127.0.0.24")
    assert response.status == 401 and "RateLimit-Limit" not in response.headers


def test_two_gateways_share_one_exact_limit_through_redis(gateway, fixture_server, redis_url):
    env = {"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "rate-limiting",
           "GATEWAY_RATELIMIT_MINUTE": "50", "GATEWAY_RATELIMIT_LIMIT_BY": "ip",
           "GATEWAY_REDIS_URL": redis_url}
    first = gateway(env, workers=2)
    second = gateway(env, fresh=True)
    urls = [first.url, second.url] * 40
    wait_for_window_room(60, needed=10)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda url: (url, call_from(url, "127.0.0.26")), urls))
    passed = [url for url, (response, _) in answers if response.status == 200]
    refused = [json.loads(data)["message"] for _, (response, data) in answers
               if response.status == 429]
    assert len(passed) == 50
    assert refused == ["API rate limit exceeded"] * 30
    assert first.url in passed and second.url in passed


def test_redis_down_lets_requests_through_with_a_warning(gateway, fixture_server):
    down = closed_port_url().replace("http://", "redis://")
    env = {"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "rate-limiting",
           "GATEWAY_RATELIMIT_SECOND": "1", "GATEWAY_REDIS_URL": down}
    tolerant = gateway(env)
    assert statuses(tolerant.url, "127.0.0.27", 3) == [200, 200, 200]
    logs = wait_for_log(tolerant, "letting requests through unlimited")
    assert '"level":"warning"' in logs
    strict = gateway({**env, "GATEWAY_RATELIMIT_FAULT_TOLERANT": "false"})
    response, data = call_from(strict.url, "127.0.0.27")
    assert response.status == 500
    assert json.loads(data)["message"] == "An unexpected error occurred"
