"""The core proxy under real gunicorn gevent workers: forwarding, headers, streaming, pooling."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import re

import pytest

from tests.support.fixture_server import FixtureServer
from tests.support.net import call, first_piece
from tests.support.processes import reset_peak_rss, rss_kib

MiB = 1 << 20


@pytest.fixture
def proxied(gateway, fixture_server):
    return gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url})


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_and_body_reach_the_upstream(proxied, method):
    body = b"payload-" + method.encode() * 100
    response, data = call(proxied.url, method, "/echo", body=body)
    echo = json.loads(data)
    assert response.status == 200
    assert echo["method"] == method
    assert echo["body_size"] == len(body)


def test_path_and_query_are_forwarded_byte_for_byte(proxied):
    target = "/echo/a%2Fb/~user;p=1/%E2%82%AC?q=%20x&q=y&empty=&flag&enc=%2B%26"
    _, data = call(proxied.url, "GET", target)
    assert json.loads(data)["target"] == target


def test_the_path_is_normalised_as_kong_does_and_the_query_kept(proxied):
    # Unreserved escapes decoded (%7E), reserved ones kept upper-cased (%2f), others kept.
    target = "/echo/a%2fb/%7Euser/%E2%82%AC/./x/..?q=%7E/../"
    _, data = call(proxied.url, "GET", target)
    assert json.loads(data)["target"] == "/echo/a%2Fb/~user/%E2%82%AC/?q=%7E/../"


def test_upstream_path_is_a_prefix(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url + "/echo/base/"})
    _, data = call(gw.url, "GET", "/orders?id=7")
    assert json.loads(data)["target"] == "/echo/base/orders?id=7"


def test_repeated_response_headers_survive_and_hop_by_hop_are_dropped(proxied):
    response, _ = call(proxied.url, "GET", "/cookies")
    assert response.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/",
                                                      "c=3, d; Path=/"]
    assert response.headers.get("X-Secret") is None  # named by the upstream's Connection
    assert response.headers.get("Keep-Alive") is None


def test_hop_by_hop_request_headers_are_dropped(proxied):
    _, data = call(proxied.url, "GET", "/echo", headers={
        "Connection": "X-Drop-Me", "X-Drop-Me": "1", "Keep-Alive": "timeout=5",
        "TE": "trailers", "Upgrade": "websocket", "Proxy-Authorization": "Basic eA==",
        "X-Keep-Me": "yes"})
    names = {name.lower() for name, _ in json.loads(data)["headers"]}
    assert "x-keep-me" in names
    assert not names & {"x-drop-me", "keep-alive", "te", "upgrade", "proxy-authorization"}
    assert "connection" not in names


def headers_seen_upstream(url: str, headers: dict | None = None) -> dict[str, str]:
    _, data = call(url, "GET", "/echo", headers=headers)
    return {name.lower(): value for name, value in json.loads(data)["headers"]}


def test_forwarding_headers_without_trusted_proxies(proxied, fixture_server):
    seen = headers_seen_upstream(proxied.url, {"X-Forwarded-For": "6.6.6.6",
                                               "X-Forwarded-Proto": "https", "Via": "1.0 edge"})
    assert seen["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"  # appended, not trusted
    assert seen["x-real-ip"] == "127.0.0.1"  # the spoofed address is not the client
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == proxied.url.removeprefix("http://")
    assert seen["x-forwarded-port"] == str(proxied.port)
    assert seen["via"] == "1.0 edge, 1.1 gateway"
    assert seen["host"] == f"127.0.0.1:{fixture_server.port}"


def test_trusted_proxy_hop_supplies_the_client_address(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_TRUSTED_PROXIES": "1"})
    seen = headers_seen_upstream(gw.url, {"X-Forwarded-For": "203.0.113.9",
                                          "X-Forwarded-Proto": "https",
                                          "X-Forwarded-Host": "api.example.com"})
    assert seen["x-real-ip"] == "203.0.113.9"
    assert seen["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == "api.example.com"


def test_preserve_host(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_PRESERVE_HOST": "true"})
    assert headers_seen_upstream(gw.url, {"Host": "shop.example"})["host"] == "shop.example"


def test_no_user_agent_or_accept_encoding_is_invented(proxied):
    _, data = call(proxied.url, "GET", "/echo", headers={"Accept-Encoding": "br"})
    seen = {name.lower(): value for name, value in json.loads(data)["headers"]}
    assert "user-agent" not in seen  # http.client sends none unless asked
    assert seen["accept-encoding"] == "br"


def test_request_id_is_generated_kept_and_passed_both_ways(proxied):
    response, data = call(proxied.url, "GET", "/echo")
    generated = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f-]{36}", generated)
    seen = {n.lower(): v for n, v in json.loads(data)["headers"]}
    assert seen["x-request-id"] == generated

    response, data = call(proxied.url, "GET", "/echo", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    response, _ = call(proxied.url, "GET", "/echo", headers={"X-Request-ID": "bad id <x>"})
    assert response.headers["X-Request-ID"] != "bad id <x>"


def test_latency_headers_in_milliseconds(proxied):
    response, _ = call(proxied.url, "GET", "/delay?ms=200")
    assert 200 <= int(response.headers["X-Gateway-Upstream-Latency"]) < 2000
    assert 0 <= int(response.headers["X-Gateway-Proxy-Latency"]) < 200
    assert "1.1 gateway" in response.headers["Via"]


def test_sequential_requests_reuse_upstream_connections(proxied, fixture_server):
    call(proxied.url, "GET", "/echo")  # warm the pool
    before = fixture_server.connections
    for _ in range(20):
        call(proxied.url, "GET", "/echo")
    assert fixture_server.connections - before < 20
    assert fixture_server.connections - before <= 1


def test_gzip_passes_through_untouched(gateway, httpbin):
    gw = gateway({"GATEWAY_UPSTREAM_URL": httpbin})
    response, data = call(gw.url, "GET", "/gzip", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert int(response.headers["Content-Length"]) == len(data)
    assert json.loads(gzip.decompress(data))["gzipped"] is True


def test_seed_path_through_httpbin(gateway, httpbin):
    gw = gateway({"GATEWAY_UPSTREAM_URL": httpbin})
    response, data = call(gw.url, "POST", "/anything/x?y=1", body=b'{"a": 1}',
                          headers={"Content-Type": "application/json"})
    echoed = json.loads(data)
    assert response.status == 200
    assert echoed["json"] == {"a": 1}
    assert echoed["url"].endswith("/anything/x?y=1")


@pytest.mark.parametrize("size", [1, 1024, 256 * 1024, 256 * 1024 + 1])
def test_content_length_bodies_arrive_whole_either_side_of_the_replay_size(proxied, size):
    """Bodies up to 256 KiB are read whole first (sent with the head, replayable), larger
    ones streamed; both arrive byte for byte, the byte read ahead for the 408 check too."""
    body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    response, data = call(proxied.url, "POST", "/sink", body=body)
    assert response.status == 200
    assert json.loads(data) == {"received": size, "sha256": hashlib.sha256(body).hexdigest()}


def test_chunked_upload_is_forwarded_chunked(proxied):
    pieces = [bytes([i]) * 100_000 for i in range(30)]
    # http.client sends an iterable body without Content-Length chunked.
    response, data = call(proxied.url, "POST", "/sink", body=iter(pieces))
    assert response.status == 200
    assert json.loads(data)["received"] == 3_000_000


def test_response_streams_as_it_arrives(proxied):
    _, first, first_at, rest, total = first_piece(proxied.url, "/drip?n=3&ms=400&size=5")
    assert first == b"ddddd"
    assert rest == b"d" * 10
    assert first_at < 0.35 < 0.8 < total  # the first piece came before the others existed


def stream_through(gateway_process, method: str, target: str, body=None,
                   headers=None) -> tuple[int, bytes, float]:
    """Transfer through the worker: (bytes received, last piece, peak RSS growth in MiB)."""
    [worker] = gateway_process.worker_pids()
    call(gateway_process.url, "GET", "/echo")  # pool and imports warmed
    before = rss_kib(worker)
    reset_peak_rss(worker)
    host, port = gateway_process.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request(method, target, body=body, headers=headers or {})
    response = conn.getresponse()
    received, last = 0, b""
    while piece := response.read(1 << 16):
        received += len(piece)
        last = piece
    conn.close()
    grown = (rss_kib(worker, "VmHWM") - before) / 1024
    return received, last, grown


def test_200_mib_download_streams_in_bounded_memory(proxied):
    received, _, grown = stream_through(proxied, "GET", f"/bytes?n={200 * MiB}")
    assert received == 200 * MiB
    assert grown < 50, f"worker RSS grew by {grown:.1f} MiB"


def test_200_mib_upload_streams_in_bounded_memory(proxied):
    def body():
        block = b"u" * MiB
        for _ in range(200):
            yield block

    _, answer, grown = stream_through(proxied, "PUT", "/sink", body=body(),
                                      headers={"Content-Length": str(200 * MiB)})
    assert json.loads(answer)["received"] == 200 * MiB
    assert grown < 50, f"worker RSS grew by {grown:.1f} MiB"


def test_no_monkey_patch_warning(proxied):
    call(proxied.url, "GET", "/echo")
    assert "MonkeyPatchWarning" not in proxied.logs()
    assert "Booting worker" in proxied.logs()


def test_round_robin_over_targets(gateway):
    first, second = FixtureServer(), FixtureServer()
    try:
        gw = gateway({"GATEWAY_UPSTREAM_URL": f"{first.url},{second.url}"}, fresh=True)
        for _ in range(10):
            assert call(gw.url, "GET", "/echo")[0].status == 200
        assert first.hits["/echo"] == second.hits["/echo"] == 5
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize("target", ["/api/../admin", "/api/%2e%2e/admin", "/./admin"])
def test_dot_segments_are_resolved_under_the_prefix(gateway, fixture_server, target):
    """With GATEWAY_UPSTREAM_URL=http://svc/api, /../admin must not reach /admin upstream:
    the path is normalised as Kong's router does (never above its root), then prefixed."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url + "/api"})
    response, body = call(gw.url, target=target)
    assert response.status == 200
    assert json.loads(body)["target"] == "/api/admin"


def test_an_encoded_slash_climbing_out_is_refused(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url + "/api"})
    before = sum(fixture_server.hits.values())
    response, body = call(gw.url, target="/a%2F..%2F..%2Fadmin")
    assert response.status == 400
    assert json.loads(body)["message"].startswith("Bad request path")
    assert sum(fixture_server.hits.values()) == before
