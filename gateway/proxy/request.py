"""The client's request on its way upstream: checks, the request target and the body stream.

Requests a proxy must not pass on (CONNECT, ``OPTIONS *``, TRACE, a bad Host, a
length past 2^63) are refused before anything goes upstream. The target is sent
as the client wrote it, unless it needs Kong's normalisation (``%``-escapes, ``//``,
dot segments: see :mod:`gateway.proxy.uri`); the body is streamed, never read
whole, with client-side faults (a cut, malformed or stalled body) told apart
from upstream ones.
A filter may ask for the body up to a size (:func:`read_body`): it is then
read once and replayed upstream unchanged.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, MutableMapping
from typing import IO, Any
from urllib.parse import quote, urlsplit

from gunicorn.http.body import ChunkedReader
from gunicorn.http.errors import InvalidChunkSize

from gateway.proxy.errors import GatewayError
from gateway.proxy.uri import needs_normalizing, normalize

#: The answer to a request body the client did not send whole or well-formed.
BAD_BODY = "Bad request body"
#: The answer to a request body in a transfer coding other than plain chunked.
UNSUPPORTED_CODING = "Transfer-Encoding other than chunked is not supported"
#: The answer to a body larger than a filter can read (Kong's request-size-limiting words).
BODY_TOO_LARGE = "Request size limit exceeded"
#: The environ key keeping a body read by a filter, for the next filter that asks.
_READ_BODY = "gateway.request_body"
#: The answer to CONNECT (authority-form) and ``OPTIONS *`` (asterisk-form), as nginx's 400:
#: neither names a path under the upstream's prefix.
BAD_TARGET = "Bad request target: CONNECT and OPTIONS * are not proxied"
#: Kong's answer to TRACE (it would echo the request's headers, credentials included).
METHOD_NOT_ALLOWED = "Method not allowed"
#: The methods the gateway passes on: the Allow header RFC 9110 15.5.6 requires on a 405.
ALLOWED_METHODS = (("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),)
#: The answer to a Host header missing on HTTP/1.1 or not a host[:port] (RFC 9112 3.2).
BAD_HOST = "Bad request: missing or invalid Host header"
#: The answer to a Content-Length that is not a number up to MAX_LENGTH.
BAD_LENGTH = "Bad request: invalid Content-Length"
#: Kong's answer when the body stops arriving for GATEWAY_BODY_TIMEOUT seconds.
REQUEST_TIMEOUT = "Request timeout"
#: Largest Content-Length or chunk size accepted: a signed 64-bit count, as nginx's off_t.
MAX_LENGTH = 2**63 - 1
# RFC 3986 3.2.2-3.2.3: an IP literal or a reg-name, then an optional port.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::[0-9]*)?")


def check_request(environ: Mapping[str, Any]) -> None:
    """Raise GatewayError for a request the gateway must not pass on.

    gunicorn already refuses two Host headers, bad framing and control bytes; this adds
    what a proxy in front of a path prefix needs on top.
    """
    method = environ["REQUEST_METHOD"]
    if method == "TRACE":
        raise GatewayError(405, METHOD_NOT_ALLOWED, headers=ALLOWED_METHODS)
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    if method == "CONNECT" or raw == "*":
        raise GatewayError(400, BAD_TARGET)
    # The Host the client sent, not the one ProxyFix took from X-Forwarded-Host.
    sent = environ.get("werkzeug.proxy_fix.orig", environ).get("HTTP_HOST")
    if sent is None:
        if environ.get("SERVER_PROTOCOL") == "HTTP/1.1":
            raise GatewayError(400, BAD_HOST)
    elif _HOST.fullmatch(sent) is None:
        raise GatewayError(400, BAD_HOST)
    length = environ.get("CONTENT_LENGTH")
    if length and (not length.isdigit() or int(length) > MAX_LENGTH):
        raise GatewayError(400, BAD_LENGTH)


def limit_chunk_sizes() -> None:
    """Make gunicorn refuse a chunk size past MAX_LENGTH (it accepts any size).

    gunicorn has no setting for it, so its chunk-size parser is wrapped; its
    InvalidChunkSize surfaces from the body read as a 400. Called once per worker.
    """
    parse = ChunkedReader.parse_chunk_size
    if getattr(parse, "limited", False):
        return

    def parse_chunk_size(reader: ChunkedReader, unreader: Any, data: bytes | None = None
                         ) -> tuple[int, bytes | None]:
        size, rest = parse(reader, unreader, data)
        if size > MAX_LENGTH:
            raise InvalidChunkSize(b"past 2^63")
        return size, rest

    parse_chunk_size.limited = True  # type: ignore[attr-defined]
    ChunkedReader.parse_chunk_size = parse_chunk_size  # type: ignore[method-assign]


def request_target(environ: Mapping[str, Any], query: str | None = None) -> str:
    """Path and query exactly as the client sent them (gunicorn's RAW_URI), not re-encoded;
    ``query``, when not None, replaces the client's query string."""
    if query is not None:
        path = request_target(environ).partition("?")[0]
        return f"{path}?{query}" if query else path
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw and raw.startswith("/"):
        return raw
    if raw and "://" in raw:  # absolute-form request target
        parts = urlsplit(raw)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    query = environ.get("QUERY_STRING")
    return quote(environ.get("PATH_INFO", "") or "/") + (f"?{query}" if query else "")


def request_path(environ: Mapping[str, Any]) -> str:
    """The path of :func:`request_target`: as the client sent it (escapes kept), no query."""
    return request_target(environ).partition("?")[0]


def routed_path(environ: Mapping[str, Any]) -> str:
    """The client's path (escapes as sent, no query), normalised as Kong's router does (and
    as Kong's ``kong.request.get_path()`` gives it)."""
    raw = request_path(environ)
    return normalize(raw) if needs_normalizing(raw) else raw


class RequestBody:
    """The client's body stream as urllib3 reads it, with client-side failures told apart.

    A malformed chunked body or a client that leaves mid-upload is the client's
    fault (400), not the upstream's (502), so read errors become a GatewayError,
    which urllib3 lets through instead of wrapping (and then drops the upstream
    connection). gunicorn ends a body shorter than its Content-Length quietly,
    so ``length`` bytes are counted: stopping short would leave the upstream
    waiting for the rest until it times out. With the client's socket, a body
    that stops arriving for ``timeout`` seconds is answered 408 (nginx's
    client_body_timeout: the time between two reads, not for the whole body).
    """

    def __init__(self, stream: IO[bytes], length: int | None = None,
                 sock: Any = None, timeout: float | None = None) -> None:
        self.stream = stream
        self.missing = length
        self.sock = sock
        self.timeout = timeout
        #: Bytes read ahead by prime(), handed out by the next read.
        self.pending = b""

    def prime(self) -> None:
        """Wait for the start of the body (gunicorn reads at least 1 KiB, or the whole body if
        shorter), so that a client that sends none, or a bad first chunk size, is answered
        before anything goes upstream."""
        self.pending = self.read(1)

    @property
    def remaining(self) -> int | None:
        """Bytes of a Content-Length body not yet handed out, read-ahead included (None:
        chunked, length unknown)."""
        return None if self.missing is None else self.missing + len(self.pending)

    def read(self, size: int = -1) -> bytes:
        pending, self.pending = self.pending, b""
        if pending and size > 0:
            size -= len(pending)
        if not size:
            return pending
        try:
            data = pending + self._timed_read(size)
        except GatewayError:
            raise  # a filter's own answer from a wrapped stream (request-size-limiting's 413)
        except TimeoutError as exc:
            raise GatewayError(408, REQUEST_TIMEOUT) from exc
        except Exception as exc:
            raise GatewayError(400, BAD_BODY) from exc
        if self.missing is not None:
            self.missing -= len(data) - len(pending)
            if not data and size != 0 and self.missing > 0:
                raise GatewayError(400, BAD_BODY)
        return data

    def _timed_read(self, size: int) -> bytes:
        """One read of the stream, each socket receive in it bounded by ``timeout``."""
        if self.sock is None or self.timeout is None:
            return self.stream.read(size)
        previous = self.sock.gettimeout()
        self.sock.settimeout(self.timeout)
        try:
            return self.stream.read(size)
        finally:
            self.sock.settimeout(previous)


def request_body(environ: Mapping[str, Any], timeout: float | None = None
                 ) -> tuple[RequestBody | None, bool]:
    """(stream, chunked) for the request body: streamed, never read whole, its start
    already received (GatewayError if it does not come)."""
    coding = environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if coding and coding != "chunked":  # e.g. "gzip, chunked": RFC 9112 6.1
        raise GatewayError(501, UNSUPPORTED_CODING)
    length = environ.get("CONTENT_LENGTH", "0")
    if not coding and length in ("", "0"):
        return None, False
    body = RequestBody(environ["wsgi.input"], None if coding else int(length),
                       environ.get("gunicorn.socket"), timeout)
    body.prime()
    return body, bool(coding)


def read_body(environ: MutableMapping[str, Any], max_bytes: int) -> bytes:
    """The whole request body, read once for the filters that ask (Kong's get_body).

    More than ``max_bytes`` is a 413 GatewayError (a declared Content-Length is
    refused before reading); a cut body a 400. The bytes read replace
    ``wsgi.input``, so the body still goes upstream whole, in the client's framing.
    """
    body = environ.get(_READ_BODY)
    if body is None:
        stream, _ = request_body(environ)
        declared = environ.get("CONTENT_LENGTH", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise GatewayError(413, BODY_TOO_LARGE)
        body = _read_at_most(stream, max_bytes) if stream is not None else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ[_READ_BODY] = body
    if len(body) > max_bytes:
        raise GatewayError(413, BODY_TOO_LARGE)
    return body


def replace_body(environ: MutableMapping[str, Any], body: bytes) -> None:
    """Send ``body`` upstream instead of the client's (a filter rewrote it): the client's
    framing is replaced by its Content-Length; :func:`read_body` gives it from now on."""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ[_READ_BODY] = body


def _read_at_most(stream: RequestBody, max_bytes: int) -> bytes:
    """The stream's bytes until its end; GatewayError 413 once past ``max_bytes``."""
    pieces, size = [], 0
    while piece := stream.read(min(max_bytes - size + 1, 64 * 1024)):
        pieces.append(piece)
        size += len(piece)
        if size > max_bytes:
            raise GatewayError(413, BODY_TOO_LARGE)
    return b"".join(pieces)
