"""request-size-limiting under real gunicorn gevent workers: declared and chunked bodies."""

from __future__ import annotations

import http.client
import json
import time

import pytest

LIMIT = 64 * 1024


def send(url: str, target: str, body=None, headers: dict | None = None, chunked: bool = False,
         method: str = "POST") -> tuple[int, dict]:
    """One request on a new connection: (status, JSON body)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data)


def blocks(total: int, size: int = 16 * 1024):
    """A body of ``total`` bytes as an iterator, so http.client sends it chunked."""
    for start in range(0, total, size):
        yield b"u" * min(size, total - start)


@pytest.fixture
def limited(gateway, fixture_server):
    return gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                    "GATEWAY_FILTERS": "request-size-limiting",
                    "GATEWAY_MAX_BODY_SIZE": "64k"})


def test_declared_body_over_the_limit_is_refused_before_the_upstream(limited, fixture_server):
    before = fixture_server.hits["/upload"]
    status, body = send(limited.url, "/upload", b"x" * (LIMIT + 1))
    assert status == 413
    assert body["message"] == "Request size limit exceeded"
    assert fixture_server.hits["/upload"] == before
    status, body = send(limited.url, "/upload", b"x" * LIMIT)
    assert (status, body["received"]) == (200, LIMIT)


def test_chunked_body_within_the_limit_streams_through(limited):
    status, body = send(limited.url, "/upload", blocks(LIMIT), chunked=True)
    assert (status, body["received"]) == (200, LIMIT)


def test_chunked_body_past_the_limit_is_cut_and_the_upstream_connection_dropped(
        limited, fixture_server):
    _, first = send(limited.url, "/echo", method="GET")
    cut, complete = fixture_server.hits["upload:cut"], fixture_server.hits["upload:complete"]
    status, body = send(limited.url, "/upload", blocks(4 * LIMIT), chunked=True)
    assert status == 413
    assert body["message"] == "Request size limit exceeded"
    deadline = time.monotonic() + 5
    while fixture_server.hits["upload:cut"] == cut and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fixture_server.hits["upload:cut"] == cut + 1  # the upstream saw the upload aborted
    assert fixture_server.hits["upload:complete"] == complete
    # The aborted connection was the pooled one the first request used; it is not reused.
    _, after = send(limited.url, "/echo", method="GET")
    assert after["connection"] != first["connection"]
    status, body = send(limited.url, "/upload", b"y" * 10)
    assert (status, body["received"]) == (200, 10)
