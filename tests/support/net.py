"""Raw HTTP from the test side: one-shot requests (free ports and waiting for a listener come
from the kit, gateway.testing)."""

from __future__ import annotations

import http.client
import socket
import time
from typing import Any

from gateway.testing.servers import free_port, wait_for_port

__all__ = ["call", "first_piece", "free_port", "raw_exchange", "status_of", "wait_for_port"]


def call(url: str, method: str = "GET", target: str = "/", headers: dict | None = None,
         body: Any = None, source: str | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    """One raw request with http.client, the target sent exactly as given (from the loopback
    address ``source`` when given); (response, body)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30,
                                      source_address=(source, 0) if source else None)
    conn.request(method, target, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def first_piece(url: str, target: str) -> tuple[http.client.HTTPResponse, bytes, float, bytes,
                                                 float]:
    """GET ``target`` reading the body as it comes: (response, first piece, its arrival in
    seconds, the rest, the whole time), to show a body streams rather than arrives at once."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    started = time.monotonic()
    conn.request("GET", target)
    response = conn.getresponse()
    first = response.read1(100)
    first_at = time.monotonic() - started
    rest = response.read()
    conn.close()
    return response, first, first_at, rest, time.monotonic() - started


def raw_exchange(url: str, data: bytes, timeout: float = 10, pause: float = 0) -> bytes:
    """Send ``data`` byte for byte on a new connection (the last byte after ``pause``
    seconds when given) and return all the server sent until it closed or went quiet
    for ``timeout`` seconds."""
    host, port = url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data[:-1] if pause else data)
        if pause:
            time.sleep(pause)
            sock.sendall(data[-1:])
        try:
            while piece := sock.recv(65536):
                received += piece
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response (0 when nothing came)."""
    line = response.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 else 0
