"""Whole-body transforms of responses (Exchange.transform_body): read, transform, resend.

Kong's response-transformer buffers the body in its body_filter; here the body
is read before the status line goes out, so the new body gets its own
Content-Length and an upstream that fails while it is read is a clean 502.
Only what a filter asked for is buffered, and only up to its bound: past it the
bytes read so far and the rest stream on unchanged. A HEAD answer loses its
Content-Length, which a GET's transformed body would not match (Kong's
header_filter clears it too).
"""

from __future__ import annotations

import itertools
import logging

from gateway.proxy.errors import BAD_GATEWAY, GatewayError
from gateway.proxy.exchange import Exchange, bodiless
from gateway.proxy.wire import InvalidResponse

log = logging.getLogger("gateway")


def transform_body(ex: Exchange) -> None:
    """Apply ``ex.body_transforms`` to the upstream's body (or a cache's replay of it)."""
    if not ex.upstream_answer or bodiless(ex.status):
        return
    if ex.method == "HEAD":  # a GET's transformed length is unknown: say none (RFC 9110 8.6)
        ex.headers.remove("Content-Length")
        return
    encoding = ex.headers.get("Content-Encoding")
    if encoding and encoding.lower() != "identity":
        log.info("request %s: the body is %s-encoded: passed on untransformed",
                 ex.request_id, encoding)
        return
    limit = min(max_bytes for _, max_bytes in ex.body_transforms)
    source = iter(ex.body if ex.body is not None else ex.upstream_response)
    pieces, size = [], 0
    try:
        for piece in source:
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                log.info("request %s: the body is over %d bytes: passed on untransformed",
                         ex.request_id, limit)
                _resend(ex, itertools.chain(pieces, source))
                return
    except (InvalidResponse, OSError) as exc:
        raise GatewayError(502, BAD_GATEWAY, "reset") from exc
    body = b"".join(pieces)
    for transform, _ in ex.body_transforms:
        changed = transform(body)
        if changed is not None:
            body = changed
    ex.headers["Content-Length"] = str(len(body))
    _resend(ex, (body,))


def _resend(ex: Exchange, chunks: itertools.chain[bytes] | tuple[bytes, ...]) -> None:
    if ex.body is not None:  # a replay: it stays one
        ex.body = chunks
    else:
        ex.upstream_body = chunks
