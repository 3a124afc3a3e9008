"""Socket writes shared by the server side (:mod:`gateway.ops.http1`, answering the
client) and the proxy's upstream wire (:mod:`gateway.proxy.wire`).

It sits in ``ops``, the lowest layer that both may import.
"""

from __future__ import annotations

import socket


def send_all(sock: socket.socket, data: bytes) -> None:
    """``sock.sendall(data)`` in one send() when the kernel takes it all, the usual case for
    a head and a small body: gevent's sendall asks for the socket's buffer size first, a
    system call on every send. What the kernel did not take goes through sendall."""
    sent = sock.send(data)
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])
