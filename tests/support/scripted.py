"""A scripted upstream: a socket server answering fixed bytes per request path.

For the answers no real server sends on purpose (a bare CR in a header, 1xx before
the final answer, Transfer-Encoding with Content-Length, a pooled connection closed
at the worst moment). It records every request with the connection it came on, and
when a client hung up while an answer was being delayed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Script:
    """How to answer one path."""

    #: The bytes sent back, exactly.
    answer: bytes
    #: Close the connection after answering.
    close: bool = False
    #: Seconds to wait before answering (a client hanging up meanwhile is recorded).
    delay: float = 0.0
    #: Answer only a connection's first request; close a reused one without answering
    #: (an upstream that closed an idle keep-alive connection as the request arrived).
    once_per_connection: bool = False


@dataclass(frozen=True)
class Seen:
    """A request as the scripted upstream read it."""

    connection: int
    method: str
    path: str
    body: bytes


class ScriptedUpstream:
    """Threaded loopback server answering ``scripts[path]`` (404 for other paths)."""

    def __init__(self, scripts: dict[str, Script]) -> None:
        self.scripts = scripts
        self.requests: list[Seen] = []
        #: monotonic() times at which a client hung up during a delayed answer.
        self.hangups: list[float] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock, self.connections),
                             daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        # A client may drop an answer it did not read whole (a reset): not an error here.
        with contextlib.suppress(ConnectionResetError):
            self._answer(sock, number)

    def _answer(self, sock: socket.socket, number: int) -> None:
        with sock:
            reader = sock.makefile("rb")
            served = 0
            while seen := _read_request(reader, number):
                self.requests.append(seen)
                script = self.scripts.get(seen.path, Script(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
                if script.once_per_connection and served:
                    return
                if script.delay and _hung_up_within(sock, script.delay):
                    self.hangups.append(time.monotonic())
                    return
                sock.sendall(script.answer)
                served += 1
                if script.close:
                    return

    def paths(self) -> list[str]:
        return [seen.path for seen in self.requests]

    def close(self) -> None:
        self.listener.close()


def _read_request(reader, connection: int) -> Seen | None:
    line = reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    length, chunked = 0, False
    while (header := reader.readline()) not in (b"\r\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding":
            chunked = "chunked" in value.lower()
    body = b""
    if chunked:
        while size := int(reader.readline().split(b";")[0], 16):
            body += reader.read(size)
            reader.readline()
        reader.readline()
    elif length:
        body = reader.read(length)
    return Seen(connection, method, target.partition("?")[0], body)


def _hung_up_within(sock: socket.socket, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as the peer closes its side instead."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if readable and not sock.recv(1, socket.MSG_PEEK):
            return True
        if readable:
            time.sleep(min(left, 0.05))  # more request bytes: not a hang-up
    return False
