"""A mock HTTP service for tests: the upstream or the third party a filter calls.

Routes answer a status, JSON or bytes, headers, after a delay; or drop the
connection, or stall until the service stops. A path without a route is
echoed back as JSON. Every request is recorded for assertions. A threaded
standard-library server on a free loopback port; no gevent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Recorded:
    """One request the mock received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """The header's value, whatever the case of ``name``."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass(frozen=True)
class Route:
    """What the mock answers on one path."""

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering.
    delay: float = 0.0
    #: "drop": close the connection without answering; "stall": never answer.
    action: str | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MockService

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are in ``MockService.requests``."""

    def handle_one_request(self) -> None:
        """Clients that leave (a gateway's timeout) are expected: end quietly."""
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def do_any(self) -> None:
        parts = urlsplit(self.path)
        recorded = Recorded(self.command, parts.path, dict(parse_qsl(parts.query)),
                            dict(self.headers.items()), self._body())
        self.server.requests.append(recorded)
        route = self.server.routes.get(parts.path)
        if route is None:
            return self._send(200, json.dumps(_echo(recorded)).encode(),
                              {"Content-Type": "application/json"})
        time.sleep(route.delay)
        if route.action == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return None
        if route.action == "stall":
            self.server.stopping.wait()
            self.close_connection = True
            return None
        body, headers = route.body, dict(route.headers)
        if route.json is not None:
            body = json.dumps(route.json).encode()
            headers.setdefault("Content-Type", "application/json")
        return self._send(route.status, body, headers)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_any

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            pieces = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(pieces)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _echo(recorded: Recorded) -> dict[str, Any]:
    return {"method": recorded.method, "path": recorded.path, "query": recorded.query,
            "headers": recorded.headers, "body": recorded.body.decode(errors="replace")}


class MockService(ThreadingHTTPServer):
    """``mock.route("/lookup", json={"url": "x"})``, then ``mock.url + "/lookup"``."""

    daemon_threads = True

    allow_reuse_address = True

    #: Connections the kernel queues before accept (socketserver's 5 drops the SYNs of a
    #: gateway test firing many requests at once; they come back only after 1-3 s).
    request_queue_size = 1024

    def __init__(self, port: int = 0) -> None:
        """On ``port`` (0: a free one; a given one lets a test restart a stopped mock)."""
        super().__init__(("127.0.0.1", port), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.routes: dict[str, Route] = {}
        self.requests: list[Recorded] = []
        self.stopping = threading.Event()
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def route(self, path: str, status: int = 200, json: Any = None, body: bytes = b"",
              headers: dict[str, str] | None = None, delay: float = 0.0,
              action: str | None = None) -> str:
        """Answer requests to ``path`` so; returns the route's full URL."""
        if action not in (None, "drop", "stall"):
            raise ValueError(f"action must be drop or stall, not {action!r}")
        self.routes[path] = Route(status, json, body, headers or {}, delay, action)
        return self.url + path

    def calls(self, path: str | None = None) -> list[Recorded]:
        """The requests received (on ``path`` only, when given)."""
        return [r for r in self.requests if path is None or r.path == path]

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
