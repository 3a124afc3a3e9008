"""Kong's log entry (``kong.log.serialize()``) of a finished request, for the logging filters.

http-log and file-log send or write this dict as JSON; prometheus reads its
latencies. The fields and their shapes are Kong 3.x's (kong/pdk/log.lua):
``request`` {id, uri, url, querystring, method, headers, size}, ``upstream_uri``,
``upstream_status``, ``response`` {status, headers, size}, ``latencies`` {kong,
proxy, request, receive} in milliseconds, ``tries``, ``route``, ``service``,
``consumer``, ``authenticated_entity``, ``client_ip``, ``started_at`` (epoch
milliseconds), ``source`` ("upstream" or "kong"), ``workspace``, ``workspace_name``.

Secrets: as Kong, ``Authorization`` and ``Proxy-Authorization`` are logged as
"REDACTED"; besides Kong, so is an API key key-auth found in the request
(``ex.secrets``) wherever it appears (a header, the query, the URI), since the
entry leaves the gateway. Header names are lower-cased and repeated
headers become lists, as Kong's ``get_headers()``. ``service`` and ``route``
carry what the gateway knows of them (name; the service's protocol, host and
port from the upstream target used); there are no entity ids.
"""

from __future__ import annotations

import functools
import time
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from gateway.proxy.exchange import Exchange

REDACTED = "REDACTED"
#: Request headers Kong logs as REDACTED.
REDACTED_HEADERS = frozenset({"authorization", "proxy-authorization"})
#: The workspace Kong OSS requests belong to.
WORKSPACE = "default"


def serialize(ex: Exchange) -> dict[str, Any]:
    """The request's log entry in Kong's format (call in the log phase)."""
    now = time.perf_counter()
    request_ms = round((now - ex.started) * 1000)
    secret = _forms(ex.secrets)
    environ = ex.environ
    request_uri = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    request_headers = _request_headers(ex, secret)
    response_headers = _headers(ex.headers.items())
    entry: dict[str, Any] = {
        "request": {
            "id": ex.request_id,
            "uri": _hide(request_uri, secret),
            "url": _hide(_url(environ, request_uri), secret),
            "querystring": _query(environ.get("QUERY_STRING", ""), secret),
            "method": ex.method,
            "headers": request_headers,
            "size": request_size(environ, request_uri),
        },
        "upstream_uri": _hide(ex.upstream_uri or "", secret),
        "upstream_status": str(ex.upstream_status) if ex.upstream_status is not None else "",
        "response": {
            "status": ex.status,
            "headers": response_headers,
            "size": response_size(ex),
        },
        "latencies": latencies(ex, request_ms),
        "tries": _tries(ex.target),
        "route": {"name": ex.route} if ex.route is not None else None,
        "service": _service(ex),
        "client_ip": ex.client_ip,
        "started_at": round((time.time() - (now - ex.started)) * 1000),
        "source": "upstream" if proxied(ex) else "kong",
        "workspace": WORKSPACE,
        "workspace_name": WORKSPACE,
    }
    if ex.consumer is not None:
        entry["consumer"] = {"username": ex.consumer.username, "id": ex.consumer.id}
        if not ex.consumer.anonymous:
            entry["authenticated_entity"] = {"consumer_id": ex.consumer.id}
    return {key: value for key, value in entry.items() if value is not None}


def proxied(ex: Exchange) -> bool:
    """True when the response is the upstream's, as it answered this request (Kong's
    response source "service"); a filter's answer or a cache hit is Kong's own ("kong")."""
    return ex.upstream_status is not None and ex.body is None


def _forms(secrets: list[str]) -> tuple[str, ...]:
    """Each secret as sent: plain and percent-encoded (a query or a path carries either)."""
    forms = {form for value in secrets for form in (value, quote(value, safe=""),
                                                     quote_plus(value, safe=""))}
    return tuple(sorted(forms, key=len, reverse=True))


def _request_headers(ex: Exchange, secret: tuple[str, ...]) -> dict[str, Any]:
    environ = ex.environ
    pairs = [(key[5:].replace("_", "-"), value) for key, value in environ.items()
             if key.startswith("HTTP_")]
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            pairs.append((key.replace("_", "-"), environ[key]))
    headers = _headers(pairs)
    for name, value in headers.items():
        if name in REDACTED_HEADERS or _holds(value, secret):
            headers[name] = REDACTED
    return headers


def _holds(value: Any, secret: tuple[str, ...]) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(form in item for item in values for form in secret)


def _headers(pairs: Any) -> dict[str, Any]:
    """Lower-cased names; a repeated header's values as a list (Kong's get_headers)."""
    headers: dict[str, Any] = {}
    for name, value in pairs:
        _collect(headers, name.lower(), value)
    return headers


def _query(raw: str, secret: tuple[str, ...]) -> dict[str, Any]:
    """Kong's get_query(): a value, a list for repeats, true for a bare key."""
    query: dict[str, Any] = {}
    for item in raw.split("&"):
        if not item:
            continue
        name, sep, _ = item.partition("=")
        pairs = parse_qsl(item, keep_blank_values=True)
        value: Any = pairs[0][1] if pairs else ""
        key = pairs[0][0] if pairs else name
        if not sep:
            value = True
        elif value in secret:
            value = REDACTED
        _collect(query, key, value)
    return query


def _collect(mapping: dict[str, Any], key: str, value: Any) -> None:
    """A value under ``key``; a repeated key's values as a list, in order (Kong's tables)."""
    before = mapping.get(key)
    if before is None:
        mapping[key] = value
    elif isinstance(before, list):
        before.append(value)
    else:
        mapping[key] = [before, value]


def _hide(text: str, secret: tuple[str, ...]) -> str:
    for form in secret:
        text = text.replace(form, REDACTED)
    return text


def _url(environ: dict[str, Any], request_uri: str) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    if ":" not in host.rpartition("]")[2]:
        host = f"{host}:{environ.get('SERVER_PORT', '80')}"
    return f"{scheme}://{host}{request_uri}"


def request_size(environ: dict[str, Any], request_uri: str) -> int:
    """Bytes of the request line, headers and body (nginx's $request_length, estimated)."""
    line = len(environ["REQUEST_METHOD"]) + len(request_uri) + 11
    heads = sum(len(key) - 1 + len(value) + 4 for key, value in environ.items()
                if key.startswith("HTTP_"))
    return line + heads + 2 + int(environ.get("CONTENT_LENGTH") or 0)


def response_size(ex: Exchange) -> int:
    """Bytes of the status line, headers and body sent (nginx's $bytes_sent, estimated)."""
    heads = sum(len(name) + len(value) + 4 for name, value in ex.headers.items())
    return 17 + heads + 2 + ex.bytes_sent


def latencies(ex: Exchange, request_ms: int) -> dict[str, int]:
    kong = ex.proxy_latency_ms
    upstream = ex.upstream_seconds
    proxy = round(upstream * 1000) if upstream is not None else -1
    receive = max(request_ms - kong - max(proxy, 0), 0) if proxy >= 0 else 0
    return {"kong": kong, "proxy": proxy, "request": request_ms, "receive": receive}


@functools.lru_cache(maxsize=256)
def _target(url: str) -> tuple[str, str | None, int | None]:
    """(scheme, host, port) of an upstream target URL (few: parsed once each)."""
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


def _tries(target: str | None) -> list[dict[str, Any]] | None:
    if not target:
        return None
    _, host, port = _target(target)
    return [{"ip": host, "port": port, "balancer_latency": 0}]


def _service(ex: Exchange) -> dict[str, Any] | None:
    if ex.service is None:
        return None
    service: dict[str, Any] = {"name": ex.service}
    if ex.target:
        scheme, host, port = _target(ex.target)
        service.update(protocol=scheme, host=host, port=port)
    return service
