"""The WSGI apps the benchmark runs under gunicorn (one gevent worker each).

- ``ceiling``: answers a fixed JSON body and does nothing else, the most any
  WSGI app on gunicorn + gevent can serve on this machine;
- ``peer``: werkzeug's own ``ProxyMiddleware`` in front of ``BENCH_UPSTREAM_URL``;
- ``floor``: the least a proxy can do on this architecture, in front of
  ``BENCH_UPSTREAM_URL``: a connection from urllib3's pool, the request head in
  one send, the answer parsed by httptools, nothing else (no checks, no
  headers forwarded, no streaming). Not product code: it shows how far the
  gateway is from what gunicorn + gevent + urllib3 + httptools allow;
- ``fixture``: a gevent upstream / third party for the scenarios: it sleeps
  ``BENCH_DELAY_MS`` before answering (latency overlap), counts the calls it
  answered (third-party calls, read at ``/_count``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import httptools
import urllib3
from werkzeug.middleware.http_proxy import ProxyMiddleware

# Also the third party's answer in the scenarios: "url" is what enrichment reads by default.
BODY = b'{"id": 42, "name": "widget", "price": 9.99, "url": "https://example.com/widgets/42"}'
# ProxyMiddleware never matches a "/" mount, so every row is loaded on this prefix.
PREFIX = "/bench/"
StartResponse = Callable[..., Any]


def _json(start_response: StartResponse, body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def ceiling(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """The do-nothing app: the fixed body, nothing read, nothing logged."""
    return _json(start_response, BODY)


def _not_found(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


peer = ProxyMiddleware(_not_found, {PREFIX: {"target": os.environ.get("BENCH_UPSTREAM_URL",
                                                                      "http://127.0.0.1:1")}})


class _Fixture:
    """The counting, sleeping, streaming fixture (one worker, so the count is exact)."""

    def __init__(self, delay_ms: int) -> None:
        self.delay = delay_ms / 1000
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/_count":
            return _json(start_response, json.dumps({"calls": self.calls}).encode())
        self.calls += 1
        if self.delay:
            gevent.sleep(self.delay)
        return _json(start_response, BODY)


fixture = _Fixture(int(os.environ.get("BENCH_DELAY_MS", "0")))


class _Floor:
    """The minimal proxy: pooled connection, one send, httptools, the body read whole.

    Answers with the upstream's status, Content-Type and body; sends only Host upstream.
    """

    def __init__(self, upstream: str) -> None:
        self.pool = urllib3.PoolManager(maxsize=100).connection_from_url(upstream)
        self.host = upstream.removeprefix("http://").encode()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        target = environ["RAW_URI"].encode()
        conn = self.pool._get_conn()
        if conn.sock is None:
            conn.connect()
        conn.sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + self.host + b"\r\n\r\n")
        answer = _Answer()
        parser = httptools.HttpResponseParser(answer)
        while not answer.done:
            data = conn.sock.recv(65536)
            if not data:
                conn.close()
                break
            parser.feed_data(data)
        self.pool._put_conn(conn)
        body = b"".join(answer.body)
        start_response(f"{parser.get_status_code()} OK",
                       [("Content-Type", answer.content_type), ("Content-Length", str(len(body)))])
        return [body]


class _Answer:
    """httptools callbacks: the Content-Type, the body pieces, the end of the message."""

    def __init__(self) -> None:
        self.content_type = "application/octet-stream"
        self.body: list[bytes] = []
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


floor = _Floor(os.environ.get("BENCH_UPSTREAM_URL", "http://127.0.0.1:1"))
