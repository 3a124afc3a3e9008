"""The client's request on its way upstream: the request target and the body stream.

The target is sent as the client wrote it (no re-encoding); the body is
streamed, never read whole, with client-side faults (a cut or malformed body)
told apart from upstream ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any
from urllib.parse import quote, urlsplit

from gateway.proxy.errors import GatewayError

#: The answer to a request body the client did not send whole or well-formed.
BAD_BODY = "Bad request body"
#: The answer to a request body in a transfer coding other than plain chunked.
UNSUPPORTED_CODING = "Transfer-Encoding other than chunked is not supported"


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
