"""WebSocket tunnels: the opening handshake proxied as a request, then bytes both ways.

A handshake (RFC 6455 4.1: GET over HTTP/1.1 with ``Upgrade: websocket`` and
``Connection: upgrade``) goes through the request phase like any request, and
upstream with its upgrade headers on a connection that never goes back to the
pool. When the upstream switches protocols (101) and the response phase lets the
101 stand, the gateway writes the 101 on the client's socket itself and copies
bytes unchanged between the two sockets, one greenlet per direction, until
either side closes or neither sends a byte for GATEWAY_WEBSOCKET_IDLE_TIMEOUT
seconds; then both are closed. Frames are not parsed: pings, pongs, close codes
and extensions pass as the two ends wrote them (as in nginx and Kong OSS).

gunicorn's async workers let an application take a connection over by
returning ``ALREADY_HANDLED``: gunicorn then writes nothing. The client's
socket is shut down when the tunnel ends, so gunicorn's wait for a next request
on it ends at once and gunicorn closes it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import gevent
from gunicorn.workers.base_async import ALREADY_HANDLED

from gateway.proxy.errors import GatewayError

__all__ = ["ALREADY_HANDLED", "TOO_MANY", "Tunnel", "Tunnels", "client_read_ahead",
           "is_handshake"]

#: The answer to a handshake past GATEWAY_WEBSOCKET_MAX_TUNNELS.
TOO_MANY = "Too many open WebSocket connections on this gateway worker, try again later"
#: Largest piece read from either side at once.
CHUNK = 256 * 1024


def is_handshake(environ: Mapping[str, Any]) -> bool:
    """True for a WebSocket opening handshake the gateway can tunnel: GET over HTTP/1.1 with
    ``Upgrade: websocket`` and ``upgrade`` among the Connection tokens, on a server that
    exposes the client's socket (gunicorn). Anything else is a plain request, its Upgrade
    dropped as a hop-by-hop header."""
    return (environ.get("HTTP_UPGRADE", "").strip().lower() == "websocket"
            and "upgrade" in {token.strip().lower()
                              for token in environ.get("HTTP_CONNECTION", "").split(",")}
            and environ["REQUEST_METHOD"] == "GET"
            and environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
            and environ.get("gunicorn.socket") is not None)


def client_read_ahead(environ: Mapping[str, Any]) -> bytes:
    """Bytes the client sent after its handshake that gunicorn's parser already read (a
    client that did not wait for the 101): they belong to the tunnel."""
    reader = getattr(environ.get("wsgi.input"), "reader", None)
    take = getattr(getattr(reader, "unreader", None), "take_buffered", None)
    return take() if take is not None else b""


class Tunnels:
    """This worker's tunnel slots: open tunnels and handshakes under way, at most ``limit``."""

    def __init__(self, limit: int, idle_timeout: float) -> None:
        self.limit = limit
        self.idle_timeout = idle_timeout
        #: Slots taken now.
        self.open = 0

    def reserve(self) -> None:
        """Take a slot for a handshake about to go upstream; GatewayError 503 when none is
        left."""
        if self.open >= self.limit:
            raise GatewayError(503, TOO_MANY)
        self.open += 1

    def release(self) -> None:
        """Give a slot back: the handshake failed, or its tunnel ended."""
        self.open -= 1


class Tunnel:
    """Copies bytes between the client's socket and the upstream's until one side closes,
    fails, or both are silent for ``idle_timeout`` seconds; then shuts both down (the caller
    closes them). The byte counts and who ended it are kept for the log."""

    def __init__(self, client: socket.socket, upstream: socket.socket,
                 idle_timeout: float) -> None:
        self.client = client
        self.upstream = upstream
        self.idle_timeout = idle_timeout
        #: Bytes passed on from each side.
        self.moved = {"client": 0, "upstream": 0}
        #: Who ended it: "client" or "upstream" (closed, reset or gone), "idle", or
        #: "gateway" (the worker is stopping).
        self.ended_by: str | None = None
        self.started = self.last = time.monotonic()
        self.seconds = 0.0

    @property
    def up(self) -> int:
        """Bytes from the client to the upstream."""
        return self.moved["client"]

    @property
    def down(self) -> int:
        """Bytes from the upstream to the client (the 101's head not included)."""
        return self.moved["upstream"]

    def run(self, head: bytes, to_client: bytes = b"", to_upstream: bytes = b"") -> None:
        """Send ``head`` (the 101) and ``to_client`` to the client and ``to_upstream`` to the
        upstream, then copy both ways until the tunnel ends."""
        self.client.settimeout(self.idle_timeout)
        self.upstream.settimeout(self.idle_timeout)
        down = gevent.spawn(self._pump, self.upstream, self.client, "upstream", "client",
                            head, to_client)
        try:
            self._pump(self.client, self.upstream, "client", "upstream", b"", to_upstream)
            down.join()
        finally:
            self._end("gateway")  # only when interrupted (GreenletExit: the worker stops)
            down.kill()
            self.seconds = time.monotonic() - self.started

    def _pump(self, source: socket.socket, sink: socket.socket, side: str, other: str,
              head: bytes, first: bytes) -> None:
        """Copy from ``source`` (the ``side`` peer) to the ``other`` peer's ``sink``, after
        ``head`` and ``first``, until the tunnel ends."""
        if (head or first) and not self._send(sink, head + first, other):
            return
        self.moved[side] += len(first)
        while self.ended_by is None:
            try:
                data = source.recv(CHUNK)
            except TimeoutError:
                if time.monotonic() - self.last >= self.idle_timeout:
                    self._end("idle")
                continue
            except OSError:  # reset
                data = b""
            if not data:  # closed, or the other direction shut the sockets down
                self._end(side)
                return
            self.last = time.monotonic()
            if not self._send(sink, data, other):
                return
            self.moved[side] += len(data)

    def _send(self, sink: socket.socket, data: bytes, other: str) -> bool:
        """Write ``data`` to the ``other`` peer; False (the tunnel ended) when that fails."""
        try:
            sink.sendall(data)
        except TimeoutError:  # the peer read nothing for the idle timeout
            self._end("idle")
            return False
        except OSError:
            self._end(other)
            return False
        return True

    def _end(self, by: str) -> None:
        """The first end wins; shutting both sockets down wakes the other direction."""
        if self.ended_by is not None:
            return
        self.ended_by = by
        for sock in (self.client, self.upstream):
            with suppress(OSError):  # already reset
                sock.shutdown(socket.SHUT_RDWR)

    def log_fields(self) -> dict[str, Any]:
        """The access-log fields of the tunnel."""
        return {"websocket": {"bytes_up": self.up, "bytes_down": self.down,
                              "seconds": round(self.seconds, 3), "closed_by": self.ended_by}}
