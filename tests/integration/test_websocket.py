"""WebSocket tunnels and Server-Sent Events through real gunicorn gevent workers (and nginx).

The ``websockets`` library is both ends: the client here, and the upstream server
(tests/support/ws_upstream.py, its own process). A raw socket server stands in for an
upstream that sends its first frame in the same packet as its 101, and a small
threaded HTTP server sends events one at a time, each only after the test saw the
previous one arrive (so a buffering hop would stall it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import http.client
import json
import os
import queue
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gateway.ops.fdlimit import raise_open_files
from gateway.proxy.websocket import TOO_MANY
from gateway.routing.table import USE_WEBSOCKET
from tests.integration.test_nginx import Nginx
from tests.support.fixture_server import closed_port_url
from tests.support.net import free_port, wait_for_port
from tests.support.processes import ROOT, VENV_BIN, Process, rss_kib

MiB = 1 << 20
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
KEYS = "alice:alice-0f3c-s3cret"


# -- the upstreams

@pytest.fixture(scope="module")
def ws_upstream() -> Iterator[str]:
    """http://127.0.0.1:PORT of the websockets echo server."""
    port = free_port()
    process = Process("ws-upstream", [str(VENV_BIN / "python"), "-m",
                                      "tests.support.ws_upstream", str(port)], cwd=ROOT)
    wait_for_port(port, process.popen)
    yield f"http://127.0.0.1:{port}"
    process.stop()


class _Events(BaseHTTPRequestHandler):
    """GET /sse: three events, each sent after the test took the previous one (GO)."""

    GO: queue.Queue = queue.Queue()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()  # HTTP/1.0: the body ends when the connection does
        for i in range(3):
            self.wfile.write(f"id: {i}\ndata: event {i}\n\n".encode())
            self.wfile.flush()
            if i < 2:
                self.GO.get(timeout=5)


def _accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def _raw_upstream(listener: socket.socket) -> None:
    """Answers each handshake with its 101 and a text frame "hello" in one send, then closes
    once the client sends anything."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = re.search(rb"(?i)sec-websocket-key: *(\S+)", request).group(1).decode()
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                         + _accept_key(key).encode() + b"\r\n\r\n\x81\x05hello")
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(4096)  # the client's close frame: hang up


@pytest.fixture(scope="module")
def side_upstreams() -> Iterator[tuple[str, str]]:
    """(SSE server URL, raw 101 server URL)."""
    sse = ThreadingHTTPServer(("127.0.0.1", 0), _Events)
    threading.Thread(target=sse.serve_forever, daemon=True).start()
    raw = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_raw_upstream, args=(raw,), daemon=True).start()
    yield (f"http://127.0.0.1:{sse.server_address[1]}",
           f"http://127.0.0.1:{raw.getsockname()[1]}")
    sse.shutdown()
    raw.close()


@pytest.fixture(scope="module")
def declaration(ws_upstream, side_upstreams) -> str:
    """Services and routes: the echo server on /, Kong's ws protocols on /ws-only, the SSE
    server on /sse, the raw 101 server on /raw."""
    sse, raw = side_upstreams
    ws_port = ws_upstream.rsplit(":", 1)[1]
    return f"""
_format_version: "3.0"
services:
- name: echo
  url: {ws_upstream}
  routes: [{{name: any, paths: ["/"], strip_path: false}}]
- name: kong-ws
  protocol: ws
  host: 127.0.0.1
  port: {ws_port}
  routes: [{{name: ws-only, paths: ["/ws-only"], protocols: [ws]}}]
- name: sse
  url: {sse}
  routes: [{{name: sse, paths: ["/sse"], strip_path: false}}]
- name: raw
  url: {raw}
  routes: [{{name: raw, paths: ["/raw"]}}]
"""


@pytest.fixture
def gw(gateway, declaration):
    return gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": declaration})


# -- helpers

def ws(url: str, path: str, **options) -> object:
    """A websockets client connection to ``path`` of the gateway (or nginx) at ``url``."""
    options = {"max_size": None, "ping_interval": None, "compression": None,
               "close_timeout": 5, "open_timeout": 10, **options}
    return connect(url.replace("http://", "ws://", 1) + path, **options)


def access_line(gw, request_id: str, timeout: float = 5) -> dict:
    """The access-log line of ``request_id`` (written when the tunnel ended)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in gw.logs().splitlines():
            if request_id in line and '"type":"access"' in line:
                return json.loads(line)
        assert time.monotonic() < deadline, f"no access line for {request_id}"
        time.sleep(0.05)


def metric(gw, sample: str) -> float:
    """One sample's value from /_gateway/metrics (``name`` or ``name{label="value"}``)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("GET", "/_gateway/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def wait_for_metric(gw, name: str, value: float, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while (seen := metric(gw, name)) != value:
        assert time.monotonic() < deadline, f"{name} is {seen}, not {value}"
        time.sleep(0.05)


def events(ws_upstream: str, ident: str) -> dict:
    """The close code and reason the upstream saw on connection ``ident``."""
    deadline = time.monotonic() + 5
    while True:
        conn = http.client.HTTPConnection(ws_upstream.removeprefix("http://").split(":")[0],
                                          int(ws_upstream.rsplit(":", 1)[1]), timeout=5)
        conn.request("GET", f"/events?id={ident}")
        response = conn.getresponse()
        body = response.read()
        conn.close()
        if response.status == 200:
            return json.loads(body)
        assert time.monotonic() < deadline, f"the upstream never saw {ident} end"
        time.sleep(0.05)


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def text_frame(payload: bytes) -> bytes:
    """A client's (masked) text frame of under 126 bytes."""
    mask = os.urandom(4)
    return (bytes([0x81, 0x80 | len(payload)]) + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


@contextlib.contextmanager
def raw_client(port: int, path: str, after: bytes = b"") -> Iterator[tuple]:
    """A handshake on a raw socket, ``after`` sent in the same packet: (socket, the 101's
    head checked, bytes that came after it)."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     f"Sec-WebSocket-Version: 13\r\n\r\n".encode() + after)
        received = b""
        while b"\r\n\r\n" not in received:
            piece = sock.recv(4096)
            assert piece, received
            received += piece
        head, rest = received.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert f"Sec-WebSocket-Accept: {_accept_key(key)}".encode() in head
        yield sock, head.decode(), rest
    finally:
        sock.close()


# -- the tunnel

def test_echo_text_and_binary_up_to_16_mib(gw, ws_upstream):
    with ws(gw.url, "/headers") as conn:
        sent_upstream = dict(json.loads(conn.recv()))
        for message in ["hi", "é" * 1000, b"\x00\xff" * 10, os.urandom(16 * MiB),
                        "x" * (16 * MiB)]:
            conn.send(message)
            assert conn.recv(timeout=30) == message
        request_id = conn.response.headers["X-Request-ID"]
        assert conn.response.headers["Via"] == "1.1 gateway"
    # The upgrade went upstream with the handshake's own headers, plus a proxy's.
    assert sent_upstream["Upgrade"] == "websocket" and sent_upstream["Connection"] == "upgrade"
    assert sent_upstream["Sec-Websocket-Key"] and sent_upstream["Sec-Websocket-Version"] == "13"
    assert sent_upstream["X-Request-ID"] == request_id
    line = access_line(gw, request_id)
    assert line["status"] == 101 and line["upstream_status"] == 101
    tunnel = line["websocket"]
    assert tunnel["bytes_up"] > 32 * MiB and tunnel["bytes_down"] > 32 * MiB
    assert tunnel["closed_by"] in ("client", "upstream") and tunnel["seconds"] > 0
    assert line["bytes"] == tunnel["bytes_down"]


def test_compression_is_negotiated_end_to_end(gw):
    with ws(gw.url, "/echo", compression="deflate") as conn:
        assert "permessage-deflate" in conn.response.headers["Sec-WebSocket-Extensions"]
        conn.send("a" * MiB)
        assert conn.recv() == "a" * MiB
        request_id = conn.response.headers["X-Request-ID"]
    assert access_line(gw, request_id)["websocket"]["bytes_up"] < 64 * 1024  # compressed


def test_ping_pong_and_close_codes_pass_through(gw, ws_upstream):
    with ws(gw.url, "/echo?id=client-closes") as conn:
        assert conn.ping(b"are you there").wait(5)  # the upstream's pong came back
        conn.close(4001, "client bye")
    assert events(ws_upstream, "client-closes") == {"code": 4001, "reason": "client bye"}
    with ws(gw.url, "/close/4002") as conn:
        conn.send("go")
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=5)
        assert (conn.close_code, conn.close_reason) == (4002, "server bye")


@pytest.mark.parametrize("status", [403, 200])
def test_an_upstream_refusing_the_upgrade_is_a_normal_response(gw, status):
    with pytest.raises(InvalidStatus) as refused:
        ws(gw.url, f"/refuse/{status}")
    response = refused.value.response
    assert response.status_code == status and response.body == b"refused"
    assert response.headers["X-Request-ID"] and "Upgrade" not in response.headers
    # The worker is fine and the connection is reusable for plain requests.
    with ws(gw.url, "/echo") as conn:
        conn.send("after")
        assert conn.recv() == "after"


def test_what_the_upstream_sent_with_its_101_is_forwarded(gw):
    with ws(gw.url, "/raw") as conn:
        assert conn.recv(timeout=5) == "hello"


def test_frames_the_client_sent_before_the_101_are_forwarded(gw):
    with raw_client(gw.port, "/echo", text_frame(b"hi")) as (sock, _, rest):
        while len(rest) < 4:
            rest += sock.recv(4096)
    assert rest == b"\x81\x02hi"  # the upstream's echo, unmasked


def test_upstream_reset_mid_stream_closes_the_client(gw):
    with ws(gw.url, "/reset") as conn:
        request_id = conn.response.headers["X-Request-ID"]
        conn.send("now")
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=5)
        assert conn.close_code == 1006  # no close frame: the connection just ended
    assert access_line(gw, request_id)["websocket"]["closed_by"] == "upstream"


def test_client_reset_mid_stream_closes_the_upstream(gw, ws_upstream):
    with raw_client(gw.port, "/echo?id=client-resets", text_frame(b"one")) as (sock, head, rest):
        while len(rest) < 5:
            rest += sock.recv(4096)
        assert rest == b"\x81\x03one"
        request_id = re.search(r"X-Request-ID: (\S+)", head).group(1)
        reset(sock)
    assert events(ws_upstream, "client-resets")["code"] == 1006
    assert access_line(gw, request_id)["websocket"]["closed_by"] == "client"
    wait_for_metric(gw, "gateway_websocket_tunnels_open", 0)
    with ws(gw.url, "/echo") as again:  # the worker goes on
        again.send("two")
        assert again.recv() == "two"


def test_kong_ws_route_takes_handshakes_only(gw):
    with ws(gw.url, "/ws-only/echo") as conn:  # strip_path: /echo upstream
        conn.send("via ws route")
        assert conn.recv() == "via ws route"
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    conn.request("GET", "/ws-only/echo")
    response = conn.getresponse()
    assert response.status == 426 and json.loads(response.read())["message"] == USE_WEBSOCKET


def test_plain_requests_are_unaffected(gw):
    """A request with another Upgrade (h2c) is a plain request: Upgrade dropped."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
    conn.request("GET", "/events?id=none", headers={"Upgrade": "h2c", "Connection": "Upgrade"})
    response = conn.getresponse()
    assert response.status == 404 and response.read() == b"no such connection\n"


# -- limits

def test_filters_run_on_the_handshake(gateway, ws_upstream):
    """key-auth in the request phase, response-headers in the response phase (on the 101)."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": ws_upstream,
                  "GATEWAY_FILTERS": "key-auth,response-headers",
                  "GATEWAY_KEYAUTH_KEYS": KEYS, "GATEWAY_KEYAUTH_HIDE_CREDENTIALS": "true",
                  "GATEWAY_RESPONSE_HEADERS_ADD": "X-Phase:response",
                  "GATEWAY_RESPONSE_HEADERS_REMOVE": "Server"})
    with pytest.raises(InvalidStatus) as refused:
        ws(gw.url, "/echo")
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["message"] == "No API key found in request"
    assert refused.value.response.headers["X-Phase"] == "response"
    with pytest.raises(InvalidStatus) as refused:
        ws(gw.url, "/echo", additional_headers={"apikey": "wrong"})
    assert refused.value.response.status_code == 401
    with ws(gw.url, "/headers", additional_headers={"apikey": "alice-0f3c-s3cret"}) as conn:
        assert conn.response.headers["X-Phase"] == "response"
        assert "Server" not in conn.response.headers  # the upstream's, removed
        seen = dict(json.loads(conn.recv()))
        conn.send("authenticated")
        assert conn.recv() == "authenticated"
    assert seen["X-Consumer-Username"] == "alice" and "Apikey" not in seen


def test_a_filter_answering_in_place_of_the_101_closes_the_upstream(gateway, ws_upstream):
    """enrichment's 500 (its third party is down) replaces the upstream's 101."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": ws_upstream, "GATEWAY_FILTERS": "enrichment",
                  "GATEWAY_ENRICH_URL": closed_port_url(), "GATEWAY_WEBSOCKET_MAX_TUNNELS": "1"})
    for ident in ("replaced-1", "replaced-2"):  # the slot came back: a 500 again, not a 503
        with pytest.raises(InvalidStatus) as refused:
            ws(gw.url, f"/echo?id={ident}")
        assert refused.value.response.status_code == 500
        message = json.loads(refused.value.response.body)["message"]
        assert message.startswith("Error when trying to access 3rd party service")
        assert events(ws_upstream, ident)["code"] == 1006  # its connection was dropped


def test_idle_tunnels_are_closed(gateway, ws_upstream):
    gw = gateway({"GATEWAY_UPSTREAM_URL": ws_upstream,
                  "GATEWAY_WEBSOCKET_IDLE_TIMEOUT": "0.5"})
    with ws(gw.url, "/echo") as conn:
        for _ in range(4):  # traffic keeps it open past the timeout
            time.sleep(0.25)
            conn.send("still here")
            assert conn.recv() == "still here"
        started = time.monotonic()
        with pytest.raises(ConnectionClosed):
            conn.recv(timeout=5)
        assert 0.4 < time.monotonic() - started < 2.5
        request_id = conn.response.headers["X-Request-ID"]
    assert access_line(gw, request_id)["websocket"]["closed_by"] == "idle"
    assert metric(gw, 'gateway_websocket_tunnels_closed_total{closed_by="idle"}') == 1


def test_tunnels_per_worker_are_capped(gateway, ws_upstream):
    gw = gateway({"GATEWAY_UPSTREAM_URL": ws_upstream, "GATEWAY_WEBSOCKET_MAX_TUNNELS": "2"})
    for _ in range(3):  # a refused handshake gives its slot back
        with pytest.raises(InvalidStatus):
            ws(gw.url, "/refuse/403")
    first, second = ws(gw.url, "/echo"), ws(gw.url, "/echo")
    with pytest.raises(InvalidStatus) as refused:
        ws(gw.url, "/echo")
    assert refused.value.response.status_code == 503
    assert json.loads(refused.value.response.body)["message"] == TOO_MANY
    assert metric(gw, "gateway_websocket_tunnels_open") == 2
    first.close()
    wait_for_metric(gw, "gateway_websocket_tunnels_open", 1)
    with ws(gw.url, "/echo") as third:  # the slot came back
        third.send("in")
        assert third.recv() == "in"
    second.close()


def test_a_thousand_idle_tunnels_in_one_worker(gw):
    raise_open_files(4096)
    (worker,) = gw.worker_pids()

    async def open_many(count: int) -> list:
        gate = asyncio.Semaphore(100)

        async def one(_: int) -> object:
            async with gate:
                return await async_connect(gw.url.replace("http", "ws") + "/echo",
                                           ping_interval=None, compression=None,
                                           open_timeout=30)

        return await asyncio.gather(*map(one, range(count)))

    async def scenario() -> tuple[int, int, float]:
        warm = await open_many(20)  # the worker's lazily built parts exist already
        before = rss_kib(worker)
        started = time.monotonic()
        conns = await open_many(1000)
        opened = time.monotonic() - started
        after = rss_kib(worker)
        open_now = await asyncio.to_thread(metric, gw, "gateway_websocket_tunnels_open")
        for conn in conns[::100]:
            await conn.send("alive")
            assert await conn.recv() == "alive"
        await asyncio.gather(*(conn.close() for conn in conns + warm))
        return after - before, open_now, opened

    grown, open_now, opened = asyncio.run(scenario())
    assert open_now == 1020
    per_tunnel = grown / 1000
    print(f"1,000 tunnels opened in {opened:.1f}s; worker RSS grew {grown / 1024:.1f} MiB "
          f"({per_tunnel:.1f} KiB per tunnel)")
    assert per_tunnel < 64, f"{per_tunnel:.1f} KiB per idle tunnel"
    wait_for_metric(gw, "gateway_websocket_tunnels_open", 0, timeout=15)


# -- Server-Sent Events

def read_events(url: str) -> list[str]:
    """GET /sse at ``url``, taking each event as it arrives and only then letting the
    server send the next one."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", "/sse")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    got, buffer = [], b""
    while len(got) < 3:
        piece = response.read1(65536)  # TimeoutError if the event is held back
        assert piece, got
        buffer += piece
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            got.append(event.decode())
            _Events.GO.put(None)
    conn.close()
    return got


def test_server_sent_events_arrive_one_by_one(gw):
    assert read_events(gw.url) == [f"id: {i}\ndata: event {i}" for i in range(3)]


# -- behind nginx

@pytest.fixture
def nginx(gw) -> Iterator[Nginx]:
    proxy = Nginx(gw.port)
    yield proxy
    proxy.stop()


def gateway_connections(port: int) -> tuple[int, int]:
    """(established, time-wait) TCP connections whose local port is ``port`` (IPv4)."""
    states = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            states.append(fields[3])
    return states.count("01"), states.count("06")


def test_through_nginx(nginx, gw):
    with ws(nginx.url, "/echo") as conn:
        conn.send(b"\x01" * MiB)
        assert conn.recv(timeout=10) == b"\x01" * MiB
        conn.send("text")
        assert conn.recv() == "text"
        assert conn.response.headers["X-Request-ID"]
    assert read_events(nginx.url) == [f"id: {i}\ndata: event {i}" for i in range(3)]
    # Plain requests keep nginx's keep-alive connection to the gateway: no Connection
    # header when the client sent no Upgrade.
    _, closed_before = gateway_connections(gw.port)
    for _ in range(5):
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=5)
        conn.request("GET", "/events?id=none")
        response = conn.getresponse()
        # Read whole: a client that leaves first can make nginx drop its upstream connection.
        assert (response.status, response.read()) == (404, b"no such connection\n")
        conn.close()
    established, closed = gateway_connections(gw.port)
    assert established == 1
    assert closed <= closed_before  # the gateway closed none (old TIME_WAITs may expire)


def test_nothing_above_info_was_logged(gw):
    """After every tunnel above (resets included), the worker logged no warning or error."""
    noisy = [line for line in gw.logs().splitlines()
             if '"level":"warning"' in line or '"level":"error"' in line]
    assert noisy == []
