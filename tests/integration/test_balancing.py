"""Kong's balancing algorithms under gunicorn with a gevent worker, over three real upstream
servers: consistent hashing by header sticks, the hash cookie is set once, and the
least-connections and latency cases of Kong's specs (02-least-connections_spec.lua,
07-latency_spec.lua), which need concurrent clients."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from tests.support.fixture_server import FixtureServer


def delayed(server: FixtureServer, seconds: float) -> FixtureServer:
    """``server`` answering every echo after ``seconds``."""
    base = server.RequestHandlerClass

    def route_echo(handler: object) -> None:
        time.sleep(seconds)
        base.route_echo(handler)

    server.RequestHandlerClass = type("Delayed", (base,), {"route_echo": route_echo})
    return server


@pytest.fixture
def servers() -> Iterator[list[FixtureServer]]:
    started = [FixtureServer() for _ in range(3)]
    yield started
    for server in started:
        server.stop()


def kong_yml(servers: list[FixtureServer], fields: str) -> str:
    targets = ", ".join(f"{{target: '127.0.0.1:{s.port}'}}" for s in servers)
    return f"""
_format_version: "3.0"
services: [{{name: s, host: balanced.test, routes: [{{name: r, paths: [/]}}]}}]
upstreams:
- {{name: balanced.test, {fields}, targets: [{targets}]}}
"""


def get(url: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/echo", headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def hits(servers: list[FixtureServer]) -> list[int]:
    return [sum(s.hits.values()) for s in servers]


def test_consistent_hashing_by_header_sticks_each_value_to_one_server(gateway, servers):
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_yml(
        servers, "hash_on: header, hash_on_header: X-User")})
    homes = set()
    for user in range(10):
        before = hits(servers)
        for _ in range(5):
            assert get(gw.url, {"X-User": f"user-{user}"}).status == 200
        counts = [after - b for after, b in zip(hits(servers), before, strict=True)]
        assert sorted(counts) == [0, 0, 5], (user, counts)
        homes.add(counts.index(5))
    assert len(homes) > 1  # ten users do not all hash to the same server


def test_the_hash_cookie_is_set_once_then_sticks(gateway, servers):
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_yml(
        servers, "hash_on: cookie, hash_on_cookie: lb")})
    before = hits(servers)
    first = get(gw.url)
    cookie = first.getheader("Set-Cookie")
    assert cookie is not None and cookie.endswith("; Path=/; Same-Site=Lax; HttpOnly")
    pair = cookie.split(";")[0]
    for _ in range(9):
        again = get(gw.url, {"Cookie": f"other=1; {pair}"})
        assert again.status == 200 and again.getheader("Set-Cookie") is None
    counts = [after - b for after, b in zip(hits(servers), before, strict=True)]
    assert sorted(counts) == [0, 0, 10]


def load(url: str, clients: int, seconds: float) -> None:
    """``clients`` concurrent clients, each sending one request after another."""
    until = time.monotonic() + seconds
    failures: list[int] = []

    def client() -> None:
        while time.monotonic() < until:
            status = get(url).status
            if status != 200:
                failures.append(status)

    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    assert not failures


def test_least_connections_sends_more_to_the_quicker_server(gateway, servers):
    quick, slow = delayed(servers[0], 0.1), delayed(servers[1], 0.2)
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_yml(
        [quick, slow], "algorithm: least-connections")})
    load(gw.url, 16, 1.5)
    ratio = sum(quick.hits.values()) / sum(slow.hits.values())
    assert 1.0 <= ratio <= 3.0  # Kong's spec: near 2, within 1


def test_latency_sends_almost_everything_to_the_faster_server(gateway, servers):
    fast, slow = delayed(servers[0], 0.01), delayed(servers[1], 0.3)
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_yml(
        [fast, slow], "algorithm: latency")})
    for _ in range(40):
        assert get(gw.url).status == 200
    ratio = sum(fast.hits.values()) / max(1, sum(slow.hits.values()))
    assert ratio > 10  # Kong's spec's bound
