"""WebSocket pieces in-process: the 101 parsed as a final answer, handshake detection, tunnel
slots, the byte pump over gevent socket pairs, and Kong's ws/wss protocols in a declarative
file. tests/integration/test_websocket.py runs them under gunicorn with real clients."""

from __future__ import annotations

import socket

import gevent
import pytest
from gevent import socket as gsocket

from gateway.ops.accesslog import access_entry
from gateway.proxy import wire
from gateway.proxy.errors import GatewayError
from gateway.proxy.exchange import Exchange
from gateway.proxy.websocket import TOO_MANY, Tunnel, Tunnels, is_handshake
from gateway.routing.declarative import parse_declaration
from gateway.routing.table import USE_HTTPS, USE_WEBSOCKET
from tests.support.app import gateway_of, get, in_process

SWITCH = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Accept: abc\r\n\r\n")


def answer(data: bytes, upgrade: bool = True) -> wire.Response:
    """The head of ``data`` as read from a socket, in pieces of 7 bytes."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        response = wire.Response(ours, upgrade=upgrade)
        for start in range(0, len(data), 7):
            response._feed(data[start:start + 7])
            if not response._in_head:
                break
        return response


# -- the upstream's answer

def test_a_101_to_an_upgrade_is_final_and_keeps_what_followed_it():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + SWITCH + b"\x81\x05hello")
        response = wire.Response(ours, upgrade=True)
        response.read_head(2)
    assert (response.status, response.upgraded, response.leftover) == (101, True, b"\x81\x05hello")
    assert ("Sec-WebSocket-Accept", "abc") in response.headers
    assert not response.reusable


def test_the_101_head_split_over_reads():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        response = wire.Response(ours, upgrade=True)
        response._feed(SWITCH[:30])
        response._feed(SWITCH[30:] + b"tail")
    assert response.upgraded and response.leftover == b"tail"


@pytest.mark.parametrize("data, upgrade", [
    (SWITCH, False),  # nobody asked
    (b"HTTP/1.1 101 Switching Protocols\r\nX: y\r\n\r\n", True),  # no Upgrade named
], ids=["not-asked", "no-upgrade-header"])
def test_invalid_switches_are_refused(data, upgrade):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(data)
        with pytest.raises(wire.InvalidResponse):
            wire.Response(ours, upgrade=upgrade).read_head(2)


def test_a_refusal_of_the_upgrade_is_an_ordinary_answer():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
        response = wire.Response(ours, upgrade=True)
        response.read_head(2)
        assert (response.status, response.upgraded) == (403, False)
        assert b"".join(response) == b"no" and response.reusable


def test_response_head_refuses_line_breaks():
    assert wire.response_head("101 Switching Protocols", [("A", "b")]) == (
        b"HTTP/1.1 101 Switching Protocols\r\nA: b\r\n\r\n")
    with pytest.raises(ValueError):
        wire.response_head("101 Switching Protocols", [("A", "b\r\nSet-Cookie: x")])


# -- which requests are handshakes

BASE = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "keep-alive, Upgrade", "gunicorn.socket": object()}


@pytest.mark.parametrize("change, expected", [
    ({}, True),
    ({"HTTP_UPGRADE": "WebSocket"}, True),
    ({"HTTP_UPGRADE": "h2c"}, False),
    ({"HTTP_CONNECTION": "keep-alive"}, False),
    ({"REQUEST_METHOD": "POST"}, False),
    ({"SERVER_PROTOCOL": "HTTP/1.0"}, False),
    ({"gunicorn.socket": None}, False),  # a server without the client's socket
])
def test_is_handshake(change, expected):
    assert is_handshake({**BASE, **change}) is expected


def test_tunnel_slots():
    slots = Tunnels(limit=1, idle_timeout=60)
    slots.reserve()
    with pytest.raises(GatewayError) as full:
        slots.reserve()
    assert (full.value.status, full.value.message) == (503, TOO_MANY)
    slots.release()
    slots.reserve()
    assert slots.open == 1


def test_in_process_handshakes_are_plain_requests(upstream):
    """werkzeug's test client exposes no socket: the Upgrade is dropped as before."""
    client = in_process({"GATEWAY_UPSTREAM_URL": upstream.url})
    response = get(client, "/echo", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert response.status_code == 200
    seen = {k.lower() for k, _ in response.json["headers"]}
    assert "upgrade" not in seen and "connection" not in seen
    assert gateway_of(client).tunnels.open == 0


def test_max_tunnels_defaults_to_half_the_worker_connections(upstream):
    gateway = gateway_of(in_process({"GATEWAY_UPSTREAM_URL": upstream.url,
                                     "GATEWAY_WORKER_CONNECTIONS": "1000"}))
    assert gateway.tunnels.limit == 500
    gateway = gateway_of(in_process({"GATEWAY_UPSTREAM_URL": upstream.url,
                                     "GATEWAY_WEBSOCKET_MAX_TUNNELS": "3"}))
    assert gateway.tunnels.limit == 3


# -- the pump

def pairs():
    """(client end the gateway holds, the client), (upstream end, the upstream)."""
    return gsocket.socketpair(), gsocket.socketpair()


def test_bytes_flow_both_ways_until_the_upstream_closes():
    (client, peer), (upstream, server) = pairs()
    tunnel = Tunnel(client, upstream, idle_timeout=5)
    running = gevent.spawn(tunnel.run, b"HEAD", b"first", b"early")
    assert peer.recv(100) == b"HEADfirst"
    assert server.recv(100) == b"early"
    peer.sendall(b"up" * 1000)
    got = b""
    while len(got) < 2000:
        got += server.recv(65536)
    server.sendall(b"down")
    assert peer.recv(100) == b"down"
    server.close()
    running.get(timeout=5)
    assert peer.recv(100) == b""  # the client's side was shut down too
    assert (tunnel.ended_by, tunnel.up, tunnel.down) == ("upstream", 2005, 9)
    assert tunnel.log_fields()["websocket"]["bytes_up"] == 2005


def test_the_client_leaving_ends_it():
    (client, peer), (upstream, server) = pairs()
    tunnel = Tunnel(client, upstream, idle_timeout=5)
    running = gevent.spawn(tunnel.run, b"HEAD")
    assert peer.recv(100) == b"HEAD"
    peer.close()
    running.get(timeout=5)
    assert tunnel.ended_by == "client" and server.recv(100) == b""


def test_silence_both_ways_ends_it():
    (client, _peer), (upstream, server) = pairs()
    tunnel = Tunnel(client, upstream, idle_timeout=0.2)
    running = gevent.spawn(tunnel.run, b"HEAD")
    for _ in range(3):  # one direction's traffic keeps both open
        gevent.sleep(0.1)
        server.sendall(b"x")
    running.get(timeout=5)
    assert tunnel.ended_by == "idle" and 0.45 < tunnel.seconds < 2
    assert tunnel.down == 3


def test_the_access_line_carries_the_tunnel():
    ex = Exchange({"REQUEST_METHOD": "GET", "PATH_INFO": "/ws"}, "id-1")
    (client, _), (upstream, _) = pairs()
    tunnel = Tunnel(client, upstream, 1)
    tunnel.moved.update(client=3, upstream=4)
    tunnel.ended_by = "client"
    entry = access_entry(ex, 4, 0.5, tunnel.log_fields())
    assert entry["websocket"] == {"bytes_up": 3, "bytes_down": 4, "seconds": 0.0,
                                  "closed_by": "client"}
    assert "websocket" not in access_entry(ex, 4, 0.5)


# -- Kong's ws and wss protocols

WS_FILE = """
_format_version: "3.0"
services:
- name: chat
  url: ws://chat.internal:9000/socket
  routes:
  - {name: chat, paths: [/chat], protocols: [ws]}
  - {name: secure-chat, paths: [/secure-chat], protocols: [wss]}
- name: feed
  protocol: wss
  host: feed.internal
  routes:
  - {name: feed, paths: [/feed], protocols: [http, ws]}
"""


def test_ws_and_wss_services_are_http_and_https():
    declaration = parse_declaration(WS_FILE, "kong.yml", {})
    chat, feed = declaration.services["chat"], declaration.services["feed"]
    assert (chat.url, chat.path) == ("http://chat.internal:9000", "/socket")
    assert feed.url == "https://feed.internal:80"  # Kong's default port, whatever the protocol
    assert [r.protocols for r in declaration.routes] == [("ws",), ("wss",), ("http", "ws")]


def test_ws_routes_take_handshakes_only():
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": WS_FILE})
    destinations = {d.route: d for d in gateway_of(client).routes.destinations}
    plain = {"wsgi.url_scheme": "http", "HTTP_HOST": "gw", "RAW_URI": "/chat"}
    assert destinations["chat"].protocol_refusal(plain, True) is None
    assert destinations["chat"].protocol_refusal(plain) == (426, USE_WEBSOCKET, None)
    assert destinations["feed"].protocol_refusal(plain) is None
    # A wss route wants https for its handshakes, as an https route does for requests.
    status, message, location = destinations["secure-chat"].protocol_refusal(plain, True)
    assert (status, message, location) == (426, USE_HTTPS, "https://gw/chat")
    response = get(client, "/chat")
    assert response.status_code == 426 and response.json["message"] == USE_WEBSOCKET
    assert "Location" not in response.headers
