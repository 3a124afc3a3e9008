"""Errors the gateway answers itself, worded and shaped as Kong does.

The body is JSON ``{"message": ..., "request_id": ...}`` unless the client's
Accept prefers HTML or plain text (Kong's error_default_type is JSON).
"""

from __future__ import annotations

import functools
from html import escape
from http import HTTPStatus

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from gateway.jsoncodec import encode_json

BAD_GATEWAY = "An invalid response was received from the upstream server"
GATEWAY_TIMEOUT = "The upstream server is timing out"
UNEXPECTED = "An unexpected error occurred"

_JSON = "application/json; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_OFFERED = ["application/json", "text/html", "text/plain"]
_HTML_PAGE = """<!doctype html>
<html>
  <head>
    <meta charset="utf-8">
    <title>{title}</title>
  </head>
  <body>
    <h1>{title}</h1>
    <p>{message}.</p>
    <p>Request ID: {request_id}</p>
  </body>
</html>
"""


class GatewayError(Exception):
    """An error answered to the client with ``status`` and ``message`` (Kong's words).

    ``kind`` names an upstream failure (refused, timeout, reset) for logs and metrics;
    ``headers`` are sent with the answer (``Allow`` on a 405).
    """

    def __init__(self, status: int, message: str, kind: str | None = None,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.headers = headers


@functools.cache
@functools.lru_cache(maxsize=1024)
def status_line(status: int) -> str:
    """``"502 Bad Gateway"``: gunicorn validates reason phrases, so use the standard ones
    (made once per status: every response asks)."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def error_body(status: int, message: str, request_id: str, accept: str | None) -> tuple[str, bytes]:
    """(content type, body) for an error, in the format the client's Accept prefers."""
    best = parse_accept_header(accept, MIMEAccept).best_match(_OFFERED) if accept else None
    if best == "text/html":
        page = _HTML_PAGE.format(title=escape(status_line(status)), message=escape(message),
                                 request_id=escape(request_id))
        return _HTML, page.encode()
    if best == "text/plain":
        return _TEXT, f"{message}\nRequest ID: {request_id}\n".encode()
    return _JSON, encode_json({"message": message, "request_id": request_id})
