"""The client's request on its way upstream: the request target and the body stream.

The target is sent as the client wrote it (no re-encoding); the body is
streamed, never read whole, with client-side faults (a cut or malformed body)
told apart from upstream ones. A filter may ask for the body up to a size
(:func:`read_body`): it is then read once and replayed upstream unchanged.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, MutableMapping
from typing import IO, Any
from urllib.parse import quote, urlsplit

from gateway.proxy.errors import GatewayError

#: The answer to a request body the client did not send whole or well-formed.
BAD_BODY = "Bad request body"
#: The answer to a request body in a transfer coding other than plain chunked.
UNSUPPORTED_CODING = "Transfer-Encoding other than chunked is not supported"
#: The answer to a body larger than a filter can read (Kong's request-size-limiting words).
BODY_TOO_LARGE = "Request size limit exceeded"
#: The environ key keeping a body read by a filter, for the next filter that asks.
_READ_BODY = "gateway.request_body"


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


class RequestBody:
    """The client's body stream as urllib3 reads it, with client-side failures told apart.

    A malformed chunked body or a client that leaves mid-upload is the client's
    fault (400), not the upstream's (502), so read errors become a GatewayError,
    which urllib3 lets through instead of wrapping. gunicorn ends a body shorter
    than its Content-Length quietly, so ``length`` bytes are counted: stopping
    short would leave the upstream waiting for the rest until it times out.
    """

    def __init__(self, stream: IO[bytes], length: int | None = None) -> None:
        self.stream = stream
        self.missing = length

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.stream.read(size)
        except GatewayError:
            raise  # a filter's own answer from a wrapped stream (request-size-limiting's 413)
        except Exception as exc:
            raise GatewayError(400, BAD_BODY) from exc
        if self.missing is not None:
            self.missing -= len(data)
            if not data and size != 0 and self.missing > 0:
                raise GatewayError(400, BAD_BODY)
        return data


def request_body(environ: Mapping[str, Any]) -> tuple[RequestBody | None, bool]:
    """(stream, chunked) for the request body: streamed, never read whole."""
    coding = environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if coding == "chunked":
        return RequestBody(environ["wsgi.input"]), True
    if coding:  # e.g. "gzip, chunked": not forwarded decoded nor as sent (RFC 9112 6.1)
        raise GatewayError(501, UNSUPPORTED_CODING)
    if environ.get("CONTENT_LENGTH", "0") not in ("", "0"):
        return RequestBody(environ["wsgi.input"], int(environ["CONTENT_LENGTH"])), False
    return None, False


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


def _read_at_most(stream: RequestBody, max_bytes: int) -> bytes:
    """The stream's bytes until its end; GatewayError 413 once past ``max_bytes``."""
    pieces, size = [], 0
    while piece := stream.read(min(max_bytes - size + 1, 64 * 1024)):
        pieces.append(piece)
        size += len(piece)
        if size > max_bytes:
            raise GatewayError(413, BODY_TOO_LARGE)
    return b"".join(pieces)
