"""A request leaves no reference cycles behind: its objects are freed as soon as it ends,
not by the cyclic garbage collector, whose runs cost a loaded worker dearly."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from werkzeug.test import EnvironBuilder

from gateway.server.app import create_app
from tests.support.fixture_server import FixtureServer


@pytest.fixture
def collector_paused() -> Iterator[list]:
    """gc.garbage, collecting what a test leaves for the cyclic collector (nothing runs it
    meanwhile)."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def serve(app, target: str, headers: dict[str, str]) -> int:
    """One request through the WSGI app, body read and closed as a server does; the status."""
    path, _, query = target.partition("?")
    statuses = []
    body = app(EnvironBuilder(path=path, query_string=query, headers=headers).get_environ(),
               lambda status, _headers, exc_info=None: statuses.append(status))
    for _ in body:
        pass
    body.close()
    return int(statuses[0].split()[0])


# Filters that read the request through ex.request (query, headers, Cache-Control) or keep
# per-request state in greenlets, caches and body wrappers.
CHAINS = {
    "plain": {},
    "enrichment": {"GATEWAY_FILTERS": "enrichment", "GATEWAY_ENRICH_CACHE_TTL": "0"},
    "enrichment cached": {"GATEWAY_FILTERS": "enrichment", "GATEWAY_ENRICH_CACHE_TTL": "60"},
    "kong chain": {"GATEWAY_FILTERS": "cors,key-auth,rate-limiting,proxy-cache,response-headers",
                   "GATEWAY_KEYAUTH_KEYS": "alice:k1", "GATEWAY_RATELIMIT_SECOND": "100000",
                   "GATEWAY_CACHE_CONTROL": "true", "GATEWAY_RESPONSE_HEADERS_ADD": "X-A:b"},
}


@pytest.mark.parametrize("chain", CHAINS)
def test_requests_leave_no_reference_cycles(upstream, collector_paused, chain):
    third = FixtureServer()
    try:
        app = create_app({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_ACCESS_LOG": "off",
                          "GATEWAY_ENRICH_URL": third.url + "/third/ok/{query.id}",
                          **CHAINS[chain]})
        headers = {"Origin": "https://app.example.com", "Cache-Control": "max-age=60"}
        statuses = [serve(app, f"/respond/{n % 3}?id=7&apikey=k1", headers) for n in range(30)]
        assert statuses == [200] * 30
        gc.collect()
        leftovers = {type(o).__qualname__ for o in collector_paused}
        assert not collector_paused, f"reference cycles left by {chain}: {sorted(leftovers)}"
    finally:
        third.stop()


@pytest.mark.parametrize("fields", ["algorithm: least-connections", "algorithm: latency",
                                    "hash_on: cookie, hash_on_cookie: c"])
def test_balanced_requests_leave_no_reference_cycles(upstream, collector_paused, fields):
    port = upstream.url.rpartition(":")[2]
    app = create_app({"GATEWAY_ACCESS_LOG": "off", "GATEWAY_DECLARATIVE_CONFIG_STRING": f"""
_format_version: "3.0"
services: [{{name: s, host: u.test, routes: [{{name: r, paths: [/]}}]}}]
upstreams:
- {{name: u.test, {fields},
   targets: [{{target: '127.0.0.1:{port}'}}, {{target: 'localhost:{port}'}}]}}
"""})
    assert [serve(app, f"/respond/{n}", {}) for n in range(20)] == [200] * 20
    gc.collect()
    leftovers = {type(o).__qualname__ for o in collector_paused}
    assert not collector_paused, f"reference cycles left by {fields}: {sorted(leftovers)}"
