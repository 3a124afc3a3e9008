"""HTTP/1.1 on a connected socket: the request head in one send, the body after it, the
answer parsed by httptools (llhttp) and its body read as it arrives.

No pool, no retries, no policy: the upstream exchange and a third-party client both
build on it. llhttp is strict (a bare CR, a NUL or a bad name in a header, obs-fold,
Transfer-Encoding with Content-Length all raise), so an answer that could split a
response or desynchronise the connection never gets past :class:`Response`.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import httptools
from gevent import monkey

from gateway.ops.sockets import send_all

#: Largest piece of an answer read from the socket at once.
CHUNK = 256 * 1024
#: Largest piece of a request body read at once: gunicorn's body reader reads ahead up
#: to 1 MiB and copies what is left on every read, so smaller reads cost copies.
BODY_BLOCK = 1024 * 1024
#: Methods whose request has a body by definition: an empty one is sent as Content-Length: 0.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Statuses that never have a body (RFC 9112 6.3), whatever the headers say.
_NO_BODY = frozenset({204, 304})
# The standard library's poll(), even after gevent patched select: a zero-timeout check
# that never goes through the hub.
_poll = monkey.get_original("select", "poll")
_CLOSED = select.POLLRDHUP | select.POLLHUP | select.POLLERR


@dataclass(frozen=True)
class HeadLimits:
    """Bounds on an answer's header section, past which it is an InvalidResponse."""

    #: Bytes of the header fields (names, values and their separators).
    max_bytes: int = 32 * 1024
    #: Header fields, as gunicorn's limit on requests.
    max_fields: int = 100


#: The bounds of answers whose caller sets none (third-party services).
DEFAULT_LIMITS = HeadLimits()


class InvalidResponse(Exception):
    """The upstream's answer is not well-formed HTTP/1.1 (llhttp refused it)."""


class ClosedEarly(ConnectionError):
    """The connection ended before the answer did (no head, or a body cut short)."""


class ClientGone(Exception):
    """The client closed its connection while the answer's head was awaited."""


def request_head(method: str, target: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The request line and header lines, ready for one send.

    ValueError for a CR, LF or NUL inside a line (header injection by a filter) or a
    value outside Latin-1, as http.client refused them.
    """
    return _head(f"{method} {target} HTTP/1.1", headers)


def response_head(status: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """An HTTP/1.1 status line (``status``: "101 Switching Protocols") and header lines, for
    a response the gateway writes on the client's socket itself; ValueError as
    :func:`request_head`."""
    return _head(f"HTTP/1.1 {status}", headers)


def _head(first: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [first]
    lines += [f"{name}: {value}" for name, value in headers]  # no generator to unpack
    text = "\r\n".join(lines)
    breaks = len(lines) - 1
    if text.count("\r") != breaks or text.count("\n") != breaks or "\0" in text:
        raise ValueError("CR, LF or NUL inside a request header line")
    return (text + "\r\n\r\n").encode("latin-1")


def framing(method: str, body: IO[bytes] | bytes | None, chunked: bool) -> tuple[str, str] | None:
    """The framing header a request needs beside the client's own Content-Length, if any."""
    if chunked:
        return "Transfer-Encoding", "chunked"
    if body is None and method in _BODY_METHODS:
        return "Content-Length", "0"
    return None


def send_request(sock: socket.socket, head: bytes, body: IO[bytes] | bytes | None,
                 chunked: bool) -> None:
    """Write the head (with a body given as bytes, in the same send), then stream the body."""
    if isinstance(body, bytes):
        send_all(sock, head + _chunk(body) + b"0\r\n\r\n" if chunked else head + body)
        return
    send_all(sock, head)
    if body is None:
        return
    while piece := body.read(BODY_BLOCK):
        sock.sendall(_chunk(piece) if chunked else piece)
    if chunked:
        sock.sendall(b"0\r\n\r\n")


def _chunk(piece: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(piece), piece) if piece else b""


class Response:
    """An answer read from ``sock``: :meth:`read_head` for status and headers, then
    iterate for the body as it arrives; ``reusable`` afterwards says whether the
    connection may carry another request.

    Informational answers (1xx) are skipped; trailers are dropped. The body is read
    straight from the socket when its length is known (Content-Length, or up to the
    connection's end), and through the parser only when chunked.

    With ``upgrade`` (the request asked to switch protocols), a 101 naming the new
    protocol in Upgrade is the final answer: ``upgraded`` is then True, ``leftover``
    holds the bytes of the new protocol that came in the same read as the head, and
    the connection is never reused. Without it, a 101 is an invalid answer.
    """

    #: True when the upstream switched protocols (a 101 to an upgrade request).
    upgraded = False
    #: Bytes after a 101's head, read with it: the new protocol's first ones.
    leftover = b""

    def __init__(self, sock: socket.socket, head_request: bool = False,
                 upgrade: bool = False, limits: HeadLimits = DEFAULT_LIMITS) -> None:
        self.sock = sock
        self.limits = limits
        #: Header bytes and fields of the head being read, against ``limits``.
        self._head_bytes = 0
        self.head_request = head_request
        self.upgrade = upgrade
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        #: Final status; 0 until the head was read.
        self.status = 0
        #: Header fields in order, repeats kept, names as sent, Latin-1 decoded.
        self.headers: list[tuple[str, str]] = []
        #: The Connection header's value, if any (it names more hop-by-hop headers).
        self.connection: str | None = None
        #: Bytes received up to the head's end (0: the upstream sent nothing at all).
        self.received = 0
        #: True once the whole answer was read.
        self.complete = False
        self._keep_alive = False
        self._length: int | None = None
        self._chunked = False
        self._in_head = True
        self._extra = False
        self._pieces: list[bytes] = []

    def close(self) -> None:
        """Drop the parser, which refers back to this object (a cycle left to the cyclic GC
        otherwise). The socket is the caller's."""
        self.parser = None

    def close_after(self) -> None:
        """Never reuse the connection (the request was not sent whole)."""
        self._extra = True

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            self._extra = True  # bytes after the answer: the connection is not reused

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a trailer field: dropped
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        lowered = name.lower()
        text = value.decode("latin-1")
        if lowered == b"content-length":
            self._length = int(text)
        elif lowered == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()
        elif lowered == b"connection":
            self.connection = text
        self.headers.append((name.decode("latin-1"), text))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status == 101 and self.upgrade and self.parser.should_upgrade():
            self.status, self._in_head, self.complete = status, False, True
            self.upgraded = self._extra = True  # what follows is not HTTP: never reused
            return
        if status < 200:
            return
        self.status = status
        self._in_head = False
        self._keep_alive = self.parser.should_keep_alive()
        if self.head_request or status in _NO_BODY or self._length == 0:
            self.complete = True

    def on_body(self, body: bytes) -> None:
        self._pieces.append(body)

    def on_message_complete(self) -> None:
        if self._in_head:  # an informational answer ended: the final one follows
            self._head_bytes = 0
            self.headers.clear()
            self.connection = None
            self._length = None
            self._chunked = False
        else:
            self.complete = True

    # -- reading

    def _recv(self) -> bytes:
        data = self.sock.recv(CHUNK)
        self.received += len(data)
        return data

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if not self.upgraded:
                raise InvalidResponse("an upgrade nobody asked for") from exc
            self.leftover = data[exc.args[0]:]  # llhttp stopped where the new protocol starts
        except httptools.HttpParserError as exc:
            if not self.complete:
                raise InvalidResponse(str(exc)) from exc
            self._extra = True

    def read_head(self, timeout: float | None,
                  client_gone: Callable[[], bool] | None = None, check_every: float = 0.25,
                  ) -> None:
        """Read until the final answer's head is in: at most ``timeout`` seconds between
        two pieces (TimeoutError). With ``client_gone``, asked every ``check_every``
        seconds of waiting, ClientGone when it says the client left. The socket keeps
        ``timeout`` for the rest of the body, if any."""
        watch = client_gone is not None and (timeout is None or timeout > check_every)
        self.sock.settimeout(check_every if watch else timeout)
        while self._in_head:
            data = self._recv_watching(timeout, client_gone) if watch else self._recv()
            if not data:
                raise ClosedEarly("the upstream closed the connection before answering")
            self._feed(data)
            self._check_limits()
        if watch and not self.complete:
            self.sock.settimeout(timeout)

    def _check_limits(self) -> None:
        """InvalidResponse for a header section past ``limits``: a head still open past the
        byte bound (while in the head, every byte received is the head's), or one whose
        fields add up past it or number more than allowed."""
        limits = self.limits
        if self._head_bytes > limits.max_bytes or \
                (self._in_head and self.received > limits.max_bytes + 8192):
            raise InvalidResponse(f"a header section larger than {limits.max_bytes} bytes")
        if len(self.headers) > limits.max_fields:
            raise InvalidResponse(f"more than {limits.max_fields} header fields")

    def _recv_watching(self, timeout: float | None, client_gone: Callable[[], bool]) -> bytes:
        started = time.monotonic()
        while True:
            try:
                return self._recv()
            except TimeoutError:
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise
                if client_gone():
                    raise ClientGone from None

    def __iter__(self) -> Iterator[bytes]:
        """The body, piece by piece as it arrives; ClosedEarly if the connection ends first."""
        pieces, self._pieces = self._pieces, []
        yield from pieces
        if self.complete:
            return
        if self._chunked:
            yield from self._parsed()
        elif self._length is not None:
            yield from self._counted(self._length - sum(map(len, pieces)))
        else:
            yield from self._until_close()

    def _parsed(self) -> Iterator[bytes]:
        while not self.complete:
            data = self._recv()
            if not data:
                raise ClosedEarly("the upstream closed the connection mid-body")
            self._feed(data)
            pieces, self._pieces = self._pieces, []
            yield from pieces

    def _counted(self, remaining: int) -> Iterator[bytes]:
        recv = self.sock.recv
        while remaining > 0:
            data = recv(min(CHUNK, remaining))
            if not data:
                raise ClosedEarly(f"the upstream closed the connection {remaining} bytes short")
            remaining -= len(data)
            yield data
        self.complete = True

    def _until_close(self) -> Iterator[bytes]:
        self._keep_alive = False
        while data := self._recv():
            yield data
        self.complete = True

    @property
    def reusable(self) -> bool:
        """True when the answer was read whole and the connection may carry another request."""
        return self.complete and self._keep_alive and not self._extra


def ready_events(sock: Any, events: int) -> int:
    """The ``events`` (select.POLL*, plus hang-up and error) ready on ``sock`` now: the
    standard poll() with a zero timeout, no switch through the gevent hub."""
    poller = _poll()
    poller.register(sock, events)
    return next((ready for _, ready in poller.poll(0)), 0)


def peer_closed(sock: socket.socket) -> bool:
    """True when the peer of ``sock`` closed (or half-closed) its side: nginx's
    broken-connection check, which a pipelined request does not trip."""
    return bool(ready_events(sock, select.POLLRDHUP) & _CLOSED)
