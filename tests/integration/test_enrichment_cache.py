"""enrichment's cache, single-flight, stale-if-error, Redis sharing and circuit breaker, and its
TLS checks, under real gunicorn gevent workers with a real redis-server.

Each test uses its own path (a random tag), so its cache keys and its call counts at the
fixture (``fixture_server.hits["/third/<kind>/<path>"]``) start from zero.
"""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.integration.test_enrichment import TIMEOUT, access_line, third_party, timed
from tests.integration.test_key_auth import wait_for_log
from tests.support.net import call, free_port


def tagged(prefix: str) -> str:
    return f"/{prefix}/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def cached(gateway, fixture_server):
    """A gateway with enrichment and its cache on (memory, or Redis with GATEWAY_REDIS_URL)."""
    def start(workers: int = 1, **env: str):
        return gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                        "GATEWAY_FILTERS": "enrichment",
                        "GATEWAY_ENRICH_URL": third_party(fixture_server),
                        "GATEWAY_ENRICH_TIMEOUT": str(TIMEOUT), **env}, workers=workers)
    return start


def test_concurrent_misses_make_one_call_per_worker(cached, fixture_server):
    # The 1 s call must not time out while the fixture serves 200 requests at once.
    gw = cached(workers=2, GATEWAY_ENRICH_CACHE_TTL="30", GATEWAY_ENRICH_TIMEOUT="10")
    path = tagged("sf")
    with ThreadPoolExecutor(200) as pool:
        results = list(pool.map(lambda _: call(gw.url, target=path + "?kind=sleepy"), range(200)))
    assert {r.status for r, _ in results} == {200}
    assert {r.getheader("X-MyPlugin") for r, _ in results} == {"/third/sleepy" + path}
    pids = {access_line(gw, r.getheader("X-Request-ID"))["pid"] for r, _ in results}
    assert fixture_server.hits["/third/sleepy" + path] == len(pids)  # 1 call in each worker


def test_cached_values_expire_after_the_ttl(cached, fixture_server):
    gw = cached(GATEWAY_ENRICH_CACHE_TTL="1")
    path = tagged("ttl")
    first, _, _ = timed(gw.url, path + "?kind=ok")
    second, _, _ = timed(gw.url, path + "?kind=ok")
    assert first.getheader("X-Gateway-Enrichment-Latency").isdigit()
    assert second.getheader("X-Gateway-Enrichment-Latency") == "cache"
    assert second.getheader("X-MyPlugin") == first.getheader("X-MyPlugin") == "/third/ok" + path
    assert fixture_server.hits["/third/ok" + path] == 1
    assert access_line(gw, second.getheader("X-Request-ID"))["outcomes"] == {"enrichment": "hit"}
    time.sleep(1.1)
    third, _, _ = timed(gw.url, path + "?kind=ok")
    assert third.getheader("X-Gateway-Enrichment-Latency").isdigit()
    assert fixture_server.hits["/third/ok" + path] == 2


def test_errors_are_not_cached(cached, fixture_server):
    gw = cached(GATEWAY_ENRICH_CACHE_TTL="30")
    path = tagged("err")
    assert [timed(gw.url, path + "?kind=error")[0].status for _ in range(2)] == [500, 500]
    assert fixture_server.hits["/third/error" + path] == 2


def test_stale_value_is_served_when_a_refresh_fails(cached, fixture_server):
    gw = cached(GATEWAY_ENRICH_CACHE_TTL="0.5", GATEWAY_ENRICH_STALE_IF_ERROR="30")
    path = tagged("stale")
    fresh, _, _ = timed(gw.url, path + "?kind=flaky")
    time.sleep(0.6)
    stale, _, _ = timed(gw.url, path + "?kind=flaky")  # the refresh answers 500
    assert fixture_server.hits["/third/flaky" + path] == 2
    assert (fresh.status, stale.status) == (200, 200)
    assert stale.getheader("X-MyPlugin") == fresh.getheader("X-MyPlugin") == "/third/flaky" + path
    assert access_line(gw, stale.getheader("X-Request-ID"))["outcomes"] == {"enrichment": "stale"}


def test_redis_cache_is_shared_by_two_gateways(cached, fixture_server, redis_url):
    one = cached(GATEWAY_REDIS_URL=redis_url, GATEWAY_ENRICH_CACHE_TTL="30")
    two = cached(GATEWAY_REDIS_URL=redis_url, GATEWAY_ENRICH_CACHE_TTL="30", GATEWAY_WORKERS="1")
    assert one.pid != two.pid
    path = tagged("shared")
    first, _, _ = timed(one.url, path + "?kind=ok")
    second, _, _ = timed(two.url, path + "?kind=ok")
    assert first.getheader("X-Gateway-Enrichment-Latency").isdigit()
    assert second.getheader("X-Gateway-Enrichment-Latency") == "cache"
    assert second.getheader("X-MyPlugin") == "/third/ok" + path
    assert fixture_server.hits["/third/ok" + path] == 1
    key = f"gateway:enrichment:GET {fixture_server.url}/third/ok{path}"
    assert 0 < redis.Redis.from_url(redis_url).pttl(key) <= 30_000  # Redis expires it


def test_redis_down_falls_back_to_calling(cached, fixture_server):
    gw = cached(GATEWAY_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                GATEWAY_ENRICH_CACHE_TTL="30")
    path = tagged("noredis")
    responses = [timed(gw.url, path + "?kind=ok")[0] for _ in range(2)]
    assert [r.status for r in responses] == [200, 200]
    assert {r.getheader("X-MyPlugin") for r in responses} == {"/third/ok" + path}
    assert fixture_server.hits["/third/ok" + path] == 2
    wait_for_log(gw, "enrichment cache (Redis) unavailable, calling the third party")


def test_breaker_opens_half_opens_and_closes(cached, fixture_server):
    gw = cached(GATEWAY_ENRICH_BREAKER_FAILURES="2", GATEWAY_ENRICH_BREAKER_RESET="1.5",
                GATEWAY_ENRICH_TIMEOUT="1")
    path = tagged("breaker")
    for _ in range(2):  # closed: two calls time out
        response, body, seconds = timed(gw.url, path + "?kind=stall")
        assert response.status == 500 and seconds >= 0.95
    response, body, seconds = timed(gw.url, path + "?kind=stall")  # open: no call, no wait
    assert response.status == 500 and seconds < 0.3, seconds
    assert "circuit breaker open" in json.loads(body)["message"]
    assert fixture_server.hits["/third/stall" + path] == 2
    assert access_line(gw, response.getheader("X-Request-ID"))["outcomes"] == {
        "enrichment": "breaker-open"}
    time.sleep(1.6)  # half-open: one trial, which fails and opens the breaker again
    assert timed(gw.url, path + "?kind=error")[0].status == 500
    assert fixture_server.hits["/third/error" + path] == 1
    assert timed(gw.url, path + "?kind=ok")[0].status == 500
    assert fixture_server.hits["/third/ok" + path] == 0
    time.sleep(1.6)  # half-open: the trial succeeds and closes it
    for calls in (1, 2):
        response, _, _ = timed(gw.url, path + "?kind=ok")
        assert response.status == 200
        assert fixture_server.hits["/third/ok" + path] == calls


# -- TLS to the third party

class _TLSHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"url": "tls"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls_third_party(tmp_path_factory):
    """(https URL, CA file) of a TLS server with a self-signed certificate for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TLSHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/tls", str(cert)
    server.shutdown()


@pytest.mark.parametrize("env, status", [
    ({}, 500),
    ({"GATEWAY_ENRICH_CA_BUNDLE": "ca"}, 200),
    ({"GATEWAY_ENRICH_INSECURE": "true"}, 200),
])
def test_tls_is_verified_unless_told_otherwise(gateway, fixture_server, tls_third_party,
                                               env, status):
    url, ca = tls_third_party
    env = {name: ca if value == "ca" else value for name, value in env.items()}
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "enrichment",
                  "GATEWAY_ENRICH_URL": url, **env})
    response, body, _ = timed(gw.url, "/echo")
    assert response.status == status
    if status == 500:
        assert "CERTIFICATE_VERIFY_FAILED" in json.loads(body)["message"]
    else:
        assert response.getheader("X-MyPlugin") == "tls"
    insecure_warning = "TLS certificates of the third party are NOT verified"
    assert (insecure_warning in gw.logs()) == ("GATEWAY_ENRICH_INSECURE" in env)
