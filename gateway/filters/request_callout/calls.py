"""One callout's HTTP request, built from its config and the request so far, and its answer.

The URL's references are percent-encoded (they fill a path segment or a query
value, never the host); query and headers are the client's when ``forward`` is
set, then the ``custom`` ones; a JSON body is the client's decoded one (when
``decode``) with the ``custom`` fields set. The cache key is Kong's: SHA-256 of the
route, plugin, consumer, callout name, method, URL, sorted query, sorted headers and
body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from gateway.filters.request_callout.plan import Callout, Part
from gateway.filters.request_callout.templates import Scope, Template
from gateway.jsoncodec import decode_json, encode_json
from gateway.proxy.exchange import CalloutResponse, Exchange
from gateway.proxy.headers import is_safe_value
from gateway.services import Answer, BadAnswer, json_body

#: Largest client body a callout or the upstream customization reads (bytes).
MAX_CLIENT_BODY = 1 << 20
#: Client headers never forwarded to a callout (they describe the client's connection).
_NOT_FORWARDED = frozenset({"host", "content-length", "transfer-encoding"})


class ExchangeScope:
    """What references read on one request: its headers, query, consumer, callouts."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex

    def header(self, name: str) -> str | None:
        return self.ex.request.headers.get(name)

    def query(self, name: str) -> str | None:
        return self.ex.request.args.get(name)

    def capture(self, name: str) -> str | None:
        return self.ex.uri_captures.get(name)

    def consumer(self, field: str) -> str | None:
        consumer = self.ex.consumer
        return getattr(consumer, field) if consumer is not None else None

    def callout(self, name: str) -> Mapping[str, Any] | None:
        response = self.ex.callouts.get(name)
        if response is None:
            return None
        return {"status": response.status, "headers": response.headers or {},
                "body": response.body}


@dataclass(frozen=True)
class CalloutRequest:
    """What a callout sends, and the key its answer is cached under."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    key: str


def build(callout: Callout, ex: Exchange, scope: Scope, route: str,
          plugin_id: str) -> CalloutRequest:
    """The callout's request; BadAnswer if a value cannot go in a header."""
    url = callout.url.text(scope, escape=lambda value: quote(value, safe=""))
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if callout.query.forward:
        query += list(ex.request.args.items(multi=True))
    query = merged(query, callout.query, scope)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    headers = {}
    if callout.headers.forward:
        headers = {k: v for k, v in ex.upstream_headers.items()
                   if k.lower() not in _NOT_FORWARDED}
    for name, value in custom_text(callout.headers.custom, scope):
        if not is_safe_value(value):
            raise BadAnswer(f"header {name} would hold characters not allowed in a header")
        headers[name] = value
    body = _body(callout, ex, scope, headers)
    consumer = ex.consumer.id if ex.consumer is not None else ""
    key = "\n".join((route, plugin_id, consumer, callout.name, callout.method,
                     parts._replace(query="").geturl(), urlencode(sorted(query)),
                     encode_json(sorted((k.lower(), v) for k, v in headers.items())).decode(),
                     _sorted_body(body)))
    return CalloutRequest(callout.method, url, headers, body,
                          hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest())


def merged(pairs: list[tuple[str, str]], part: Part, scope: Scope) -> list[tuple[str, str]]:
    """``pairs`` with the custom values in place of any of the same name."""
    custom = custom_text(part.custom, scope)
    names = {name for name, _ in custom}
    return [(k, v) for k, v in pairs if k not in names] + custom


def custom_text(custom: tuple[tuple[str, Template], ...], scope: Scope) -> list[tuple[str, str]]:
    """The custom values as text; one whose lone reference is missing is left out."""
    out = []
    for name, value in custom:
        if _missing(value, scope):
            continue
        out.append((name, value.text(scope)))
    return out


def _missing(value: Template, scope: Scope) -> bool:
    refs = value.refs
    return len(value.parts) == 1 and bool(refs) and refs[0].value(scope) is None


def json_fields(document: dict[str, Any], custom: tuple[tuple[str, Template], ...],
                scope: Scope) -> dict[str, Any]:
    """``document`` with the custom fields set (a lone reference keeps its JSON value)."""
    for name, value in custom:
        document[name] = value.value(scope)
    return document


def _body(callout: Callout, ex: Exchange, scope: Scope, headers: dict[str, str]) -> bytes | None:
    part = callout.body
    raw = ex.read_body(MAX_CLIENT_BODY) if part.forward or part.decode else b""
    if not (part.custom or part.decode):
        return raw if part.forward and raw else None
    document: Any = {}
    if part.decode and raw:
        try:
            document = decode_json(raw)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise BadAnswer("the client's body is not a JSON object, so it cannot be decoded")
    headers["Content-Type"] = "application/json"
    return encode_json(json_fields(document, part.custom, scope))


def _sorted_body(body: bytes | None) -> str:
    """The body for the cache key: a JSON object with its keys sorted, else as it is."""
    if not body:
        return ""
    try:
        document = decode_json(body)
    except ValueError:
        return body.decode("utf-8", "surrogateescape")
    return encode_json(_sort(document)).decode()


def _sort(value: Any) -> Any:
    if isinstance(value, dict):
        return [[k, _sort(value[k])] for k in sorted(value)]
    if isinstance(value, list):
        return [_sort(v) for v in value]
    return value


def decoder(callout: Callout) -> Any:
    """The Service decoder for the callout: its response as Kong keeps it (JSON-ready)."""

    def decode(answer: Answer) -> dict[str, Any]:
        body: Any = None
        if callout.store_body or callout.decode_body:
            if callout.decode_body:
                body = json_body(answer) if answer.body.strip() else None
            else:
                body = answer.body.decode("utf-8", "replace")
        return {"status": answer.status,
                "headers": dict(answer.headers) if callout.store_headers else None,
                "body": body if callout.store_body else None}

    return decode


def response(value: Mapping[str, Any]) -> CalloutResponse:
    """The cached or fresh value as what ``ex.callouts`` holds."""
    return CalloutResponse(value["status"], value["headers"], value["body"])
