"""Our ``response.body`` extension: the upstream's JSON object with callout fields merged in.

Only a JSON answer (``application/json`` or ``+json``, not compressed) of at most
``max_size`` bytes is decorated; any other answer passes unchanged, with a log line
saying why. The body is held whole only up to ``max_size``: past it, what was held
and the rest go on unchanged. The decorated body's length differs from the
upstream's, so its Content-Length is dropped before the headers go out (the answer
is sent chunked, or close-delimited to an HTTP/1.0 client).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from gateway.filters.request_callout import calls
from gateway.filters.request_callout.plan import Decoration
from gateway.filters.request_callout.templates import Scope
from gateway.jsoncodec import decode_json, encode_json
from gateway.proxy.exchange import Exchange

log = logging.getLogger("gateway.request_callout")


def _json_type(content_type: str | None) -> bool:
    kind = (content_type or "").partition(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def _refusal(ex: Exchange, max_size: int) -> str | None:
    """Why the answer is not decorated, or None."""
    if ex.method == "HEAD" or ex.status in (204, 304):
        return "it has no body"
    if not _json_type(ex.headers.get("Content-Type")):
        return "it is not JSON"
    if ex.headers.get("Content-Encoding", "identity").lower() != "identity":
        return "it is compressed"
    declared = ex.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_size:
        return f"it is over {max_size} bytes"
    return None


def decorate_body(ex: Exchange, decoration: Decoration, scope: Scope) -> None:
    """Arrange for the upstream's JSON body to get the decoration's fields."""
    why = _refusal(ex, decoration.max_body)
    if why is not None:
        log.info("request %s: response body passed unchanged: %s", ex.request_id, why)
        return
    fields = calls.json_fields({}, decoration.body, scope)
    del ex.headers["Content-Length"]
    request_id = ex.request_id

    def wrap(chunks: Iterator[bytes]) -> Iterator[bytes]:
        held, size = [], 0
        for chunk in chunks:
            held.append(chunk)
            size += len(chunk)
            if size > decoration.max_body:
                log.info("request %s: response body passed unchanged: it is over %d bytes",
                         request_id, decoration.max_body)
                yield from held
                yield from chunks
                return
        yield _merged(b"".join(held), fields, request_id)

    ex.body_wrappers.append(wrap)


def _merged(body: bytes, fields: dict, request_id: str) -> bytes:
    try:
        document = decode_json(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        log.info("request %s: response body passed unchanged: it is not a JSON object",
                 request_id)
        return body
    document.update(fields)
    return encode_json(document)
