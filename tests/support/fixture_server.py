"""The fixture server: an upstream and third party for what httpbin cannot do.

It counts connections and hits per path, stalls, streams 200 MiB, cuts a body,
and answers as the enrichment tests' third party (``/third/<kind>``). Also a
port that never accepts (connect timeouts) and one that refuses.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without TCP_NODELAY the body waits for the client's
    # delayed ACK (40 ms a request).
    disable_nagle_algorithm = True
    server: FixtureServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        """Clients that leave or send a cut body are expected here: end quietly, no traceback."""
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, ValueError):
            self.close_connection = True

    def do_any(self) -> None:
        parts = urlsplit(self.path)
        self.query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.server.hits[parts.path] += 1
        route = getattr(self, "route_" + parts.path.strip("/").split("/")[0], self.route_echo)
        route()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_any

    # -- helpers

    def read_body(self) -> tuple[int, str]:
        """Read the request body (Content-Length or chunked): (size, sha256)."""
        digest, size = hashlib.sha256(), 0
        for piece in self._body_pieces():
            digest.update(piece)
            size += len(piece)
        return size, digest.hexdigest()

    def _body_pieces(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                length = int(self.rfile.readline().split(b";")[0], 16)
                if length == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                remaining = length
                while remaining:
                    piece = self.rfile.read(min(remaining, 1 << 16))
                    if not piece:
                        raise ConnectionResetError("request body cut mid-chunk")
                    remaining -= len(piece)
                    yield piece
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining:
            piece = self.rfile.read(min(remaining, 1 << 16))
            if not piece:
                raise ConnectionResetError("request body cut short of its Content-Length")
            remaining -= len(piece)
            yield piece

    def send_json(self, value: Any, status: int = 200, headers: dict[str, str] | None = None):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, val in (headers or {}).items():
            self.send_header(name, val)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- routes: /<name>[/...]?args

    def route_echo(self) -> None:
        """The request as received: raw target, headers in order (repeats kept), body digest."""
        size, sha = self.read_body()
        self.send_json({"method": self.command, "target": self.path,
                        "headers": list(self.headers.items()),
                        "body_size": size, "body_sha256": sha,
                        "connection": self.server.connection_ids.get(id(self.connection))},
                       headers={"X-Upstream": "fixture"})

    def route_cookies(self) -> None:
        self.send_response(200)
        for cookie in ("a=1; Path=/", "b=2; Path=/", "c=3, d; Path=/"):
            self.send_header("Set-Cookie", cookie)
        self.send_header("Connection", "X-Secret")
        self.send_header("X-Secret", "hop-by-hop")
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def route_delay(self) -> None:
        """Answer after ?ms= milliseconds."""
        self.read_body()
        time.sleep(int(self.query.get("ms", "300")) / 1000)
        self.send_json({"delayed_ms": int(self.query.get("ms", "300")), "url": self.path})

    def route_bytes(self) -> None:
        """Stream ?n= bytes (Content-Length, or chunked with ?chunked=1)."""
        total = int(self.query.get("n", "0"))
        chunked = self.query.get("chunked") == "1"
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(total))
        self.end_headers()
        block = b"\0" * (1 << 16)
        sent = 0
        while sent < total:
            piece = block[: min(len(block), total - sent)]
            self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def route_sink(self) -> None:
        """Read the request body and say how much arrived."""
        size, sha = self.read_body()
        self.send_json({"received": size, "sha256": sha})

    def route_upload(self) -> None:
        """Like /sink, but count bodies read whole (hits["upload:complete"]) and bodies the
        client cut off (hits["upload:cut"]), e.g. a proxy that aborted the upload."""
        try:
            size, sha = self.read_body()
        except (ValueError, ConnectionError):
            self.server.hits["upload:cut"] += 1
            self.close_connection = True
            return
        self.server.hits["upload:complete"] += 1
        self.send_json({"received": size, "sha256": sha})

    def route_respond(self) -> None:
        """200 JSON with the query's pairs as response headers (?Cache-Control=private&Vary=X);
        the body carries how many times this path was called, so a cached copy shows."""
        self.read_body()
        headers = {name: value for name, value in self.query.items() if name[:1].isupper()}
        self.send_json({"calls": self.server.hits[urlsplit(self.path).path]}, headers=headers)

    def route_abort(self) -> None:
        """Promise ?cl= bytes (or chunked), send ?n= of them, then drop the connection."""
        self.send_response(200)
        if "cl" in self.query:
            self.send_header("Content-Length", self.query["cl"])
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        piece = b"x" * int(self.query.get("n", "10"))
        self.wfile.write(piece if "cl" in self.query else b"%x\r\n%b\r\n" % (len(piece), piece))
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def route_hangup(self) -> None:
        """Read the request, then close the connection without answering."""
        self.read_body()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def route_stall(self) -> None:
        """Never answer (until the server stops)."""
        self.server.stopping.wait(60)
        self.close_connection = True

    def route_drip(self) -> None:
        """Send ?n= chunks of ?size= bytes every ?ms= milliseconds, chunked."""
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(int(self.query.get("n", "3"))):
            piece = b"d" * int(self.query.get("size", "10"))
            self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            self.wfile.flush()
            time.sleep(int(self.query.get("ms", "200")) / 1000)
        self.wfile.write(b"0\r\n\r\n")

    def route_third(self) -> None:
        """A third-party JSON service for enrichment, /third/<kind>/...: ok ({"url": target}),
        slow (ok after 300 ms), sleepy (ok after 1 s), flaky (ok the first time, then 500),
        error (500), nonjson, nofield, crlf, big (10 MiB, Content-Length), bigchunked (10 MiB,
        chunked), drip (the ok answer one byte every 100 ms), stall (never answers)."""
        path = urlsplit(self.path).path
        kind = path.split("/")[2]
        delays = {"slow": 0.3, "sleepy": 1.0}
        time.sleep(delays.get(kind, 0))
        if kind == "stall":
            return self.route_stall()
        if kind == "drip":
            return self._drip_json({"url": self.path}, 100)
        if kind in ("big", "bigchunked"):
            self.query.update(n=str(10 << 20), chunked="1" if kind == "bigchunked" else "0")
            return self.route_bytes()
        if kind == "nonjson":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"<html>oops")
            return
        failed = kind == "error" or (kind == "flaky" and self.server.hits[path] > 1)
        bodies = {"nofield": {"other": 1}, "crlf": {"url": "a\r\nX-Injected: yes"}}
        self.send_json(bodies.get(kind, {"url": self.path}), status=500 if failed else 200)

    def _drip_json(self, value: Any, ms: int) -> None:
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for byte in body:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(ms / 1000)

    def route_status(self) -> None:
        """Answer with the status in the path: /status/503."""
        self.send_json({"status": True}, status=int(self.path.split("/")[2].split("?")[0]))


class FixtureServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server that counts connections and hits per path."""

    daemon_threads = True
    allow_reuse_address = True
    #: socketserver's default backlog is 5: the gateway's 200 connections at once overflowed
    #: it, and the dropped SYNs came back after the kernel's 1, 3, 7, 15 s retransmissions
    #: (test_concurrent_misses_make_one_call_per_worker timed out in CI).
    request_queue_size = 1024

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = self.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.connection_ids: dict[int, int] = {}
        self.hits: Counter[str] = Counter()
        self.stopping = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        self.connections += 1
        self.connection_ids[id(request)] = self.connections
        super().process_request(request, client_address)

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class BlackHole:
    """A port that accepts no connection: its listen backlog is full, so connect() hangs.

    Simulates an upstream whose host does not answer (connect timeout) on loopback.
    """

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.fillers = []
        for _ in range(4):  # fill the accept queue; later SYNs are dropped
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.1)

    def close(self) -> None:
        for sock in [*self.fillers, self.listener]:
            sock.close()


#: Sockets bound, never listening, for the test process's life: their ports refuse.
_CLOSED_PORTS: list[socket.socket] = []


def closed_port_url() -> str:
    """An http URL on a loopback port that refuses connections: bound by this process and
    never listening, so no other process (a test run beside this one) can take it meanwhile,
    as it could a port found free and let go."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    _CLOSED_PORTS.append(sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"
