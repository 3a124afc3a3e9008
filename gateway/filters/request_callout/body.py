"""Our ``response.body`` extension: the upstream's JSON object with callout fields merged in.

Only a JSON answer (``application/json`` or ``+json``, not compressed) of at most
``max_size`` bytes is decorated; any other answer passes unchanged, with a log line
saying why. The body is read whole through :meth:`Exchange.transform_body`, so the
decorated answer goes with its own Content-Length (as Kong's body transforms do);
past ``max_size`` it streams on unchanged.
"""

from __future__ import annotations

import logging

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
    """Why the answer is not decorated, or None (no body, or compressed: transform_body's)."""
    if not _json_type(ex.headers.get("Content-Type")):
        return "it is not JSON"
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
    request_id = ex.request_id
    ex.transform_body(lambda body: _merged(body, fields, request_id), decoration.max_body)


def _merged(body: bytes, fields: dict, request_id: str) -> bytes | None:
    """The body with ``fields`` merged in; None (unchanged) when it is not a JSON object."""
    try:
        document = decode_json(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        log.info("request %s: response body passed unchanged: it is not a JSON object",
                 request_id)
        return None
    document.update(fields)
    return encode_json(document)
