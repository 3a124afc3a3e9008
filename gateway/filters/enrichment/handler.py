"""enrichment: set response headers from a third-party JSON service (Kong's guide plugin, improved).

Kong's "Consume External Services" plugin calls a service after the upstream
answered and sets ``response_header_name`` from the JSON's ``url``. Here the
call starts in the request phase in a greenlet, overlapping the upstream call,
and is joined in the response phase with a whole-call deadline; the upstream
body stays streamed. Answers can be cached (in memory or Redis) with one call
per key at a time, served stale when a refresh fails, and a circuit breaker
stops calling a failing service. On error: the seed's 500, or log and continue.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from prometheus_client import Counter, Gauge, Histogram

from gateway.config import (
    ConfigError,
    Settings,
    boolean,
    byte_size,
    choice,
    http_urls,
    number,
    pairs,
    setting,
)
from gateway.filters.base import Filter
from gateway.jsoncodec import encode_json
from gateway.ops.batch import PENDING
from gateway.proxy.errors import GatewayError
from gateway.proxy.exchange import DOT_SEGMENTS, Exchange
from gateway.proxy.headers import header_name, is_safe_value, set_fields
from gateway.services import Answer, BadAnswer, Pending, Result, Service, ServiceOptions, json_body

log = logging.getLogger("gateway.enrichment")

CALLS = Counter("gateway_enrichment_calls", "Enrichment lookups by outcome.", ["outcome"])
CACHE_HITS = Counter(
    "gateway_enrichment_cache_hits", "Enrichment values served from the cache.")
CACHE_MISSES = Counter(
    "gateway_enrichment_cache_misses", "Enrichment values not in the cache.")
DURATION = Histogram(
    "gateway_enrichment_duration_seconds", "Time the enrichment filter spent per request.",
    buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
BREAKER_OPEN = Gauge(
    "gateway_enrichment_breaker_open", "1 while a worker's enrichment circuit breaker is open "
    "(or half-open, trying one call).", multiprocess_mode="livemax")

#: The seed plugin's error prefixes.
ACCESS_ERROR = "Error when trying to access 3rd party service: "
DECODE_ERROR = "Error when decoding 3rd party service response: "
LATENCY_HEADER = "X-Gateway-Enrichment-Latency"

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SOURCE = re.compile(r"path|(query|header)\.([^{}.\s][^{}\s]*)")


def url_template(raw: str) -> str:
    """An http(s) URL that may hold {path}, {query.NAME} and {header.NAME} placeholders."""
    for name in _PLACEHOLDER.findall(raw):
        if not _SOURCE.fullmatch(name):
            raise ValueError(f"unknown placeholder {{{name}}}; use {{path}}, {{query.NAME}} "
                             "or {header.NAME}")
    if "{" in _PLACEHOLDER.sub("", raw) or "}" in _PLACEHOLDER.sub("", raw):
        raise ValueError("has an unbalanced { or }")
    http_urls(_PLACEHOLDER.sub("x", raw).partition("?")[0])
    return raw


def field_path(raw: str) -> tuple[str, ...]:
    """A dotted path into the JSON (``headers.Host``, ``items.0.id``)."""
    parts = tuple(raw.split("."))
    if not all(parts):
        raise ValueError("must be a dotted path like url, headers.Host or items.0.id")
    return parts


def mappings(raw: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``Header=field.path,Header=field.path``."""
    return tuple((header_name(name), field_path(path)) for name, path in pairs("=")(raw))


def headers_out(raw: str) -> tuple[tuple[str, str], ...]:
    """``Name:value,Name:value``; values are secrets, so errors never quote them."""
    parsed = pairs(":")(raw)
    for name, value in parsed:
        header_name(name)
        if not is_safe_value(value):
            raise ValueError(f"the value of {name} has characters not allowed in a header")
    return parsed


def readable_file(raw: str) -> str:
    try:
        found = Path(raw).is_file()
    except OSError:  # a name the system refuses (too long)
        found = False
    if not found:
        raise ValueError("must be a readable file of PEM certificates")
    return raw


@dataclass(frozen=True)
class EnrichmentConfig:
    url: str = setting(
        "GATEWAY_ENRICH_URL", url_template, None,
        "enrichment: the third-party service's URL; may hold {path}, {query.NAME} and "
        "{header.NAME}, filled URL-encoded from the client request (missing: 400).",
        required=True)
    method: str = setting(
        "GATEWAY_ENRICH_METHOD", choice("get", "post", "put", "patch", "delete"), "get",
        "enrichment: HTTP method of the third-party call.")
    headers_out: tuple[tuple[str, str], ...] = setting(
        "GATEWAY_ENRICH_HEADERS_OUT", headers_out, "",
        "enrichment: extra headers sent to the third party, `Name:value,...` (e.g. an API key; "
        "never logged).", secret=True)
    header: str = setting(
        "GATEWAY_ENRICH_HEADER", header_name, "X-MyPlugin",
        "enrichment: response header to set (the guide's `response_header_name`).")
    field: tuple[str, ...] = setting(
        "GATEWAY_ENRICH_FIELD", field_path, "url",
        "enrichment: where the value is in the JSON answer: a dotted path into objects and "
        "list indexes (`headers.Host`, `items.0.id`).")
    map: tuple[tuple[str, tuple[str, ...]], ...] = setting(
        "GATEWAY_ENRICH_MAP", mappings, "",
        "enrichment: several headers at once, `Header=field.path,...`; when set, replaces "
        "GATEWAY_ENRICH_HEADER and GATEWAY_ENRICH_FIELD.")
    timeout: float = setting(
        "GATEWAY_ENRICH_TIMEOUT", number(float, 0.001), "2",
        "enrichment: seconds for the whole third-party call (connect, answer and body).")
    max_bytes: int = setting(
        "GATEWAY_ENRICH_MAX_BYTES", byte_size, "1m",
        "enrichment: largest third-party answer accepted (bytes, or with a k/m suffix); a "
        "larger one is an error and is not read whole.")
    max_value: int = setting(
        "GATEWAY_ENRICH_MAX_VALUE", byte_size, "4096",
        "enrichment: largest header value set, in bytes of its UTF-8 text (nginx in front "
        "answers 502 past its 4-8 KiB header buffer); a longer one is an error naming the "
        "field.")
    on_error: str = setting(
        "GATEWAY_ENRICH_ON_ERROR", choice("fail", "continue"), "fail",
        "enrichment: `fail` answers 500 with the seed's message; `continue` logs a warning "
        "and passes the upstream response on without the header.")
    cache_ttl: float = setting(
        "GATEWAY_ENRICH_CACHE_TTL", number(float, 0), "0",
        "enrichment: seconds an answer is reused for the same method and URL (0: off); "
        "in Redis when GATEWAY_REDIS_URL is set.")
    cache_max_bytes: int = setting(
        "GATEWAY_ENRICH_CACHE_MAX_BYTES", byte_size, "16m",
        "enrichment: memory the in-process cache may use per worker (least recently used "
        "entries go first).")
    stale_if_error: float = setting(
        "GATEWAY_ENRICH_STALE_IF_ERROR", number(float, 0), "0",
        "enrichment: when a call fails, serve the last good values if at most this many "
        "seconds older than their TTL allows (0: never).")
    breaker_failures: int = setting(
        "GATEWAY_ENRICH_BREAKER_FAILURES", number(int, 1), "5",
        "enrichment: consecutive failed calls (unreachable, timeout, non-2xx, too large) "
        "that open the circuit breaker.")
    breaker_reset: float = setting(
        "GATEWAY_ENRICH_BREAKER_RESET", number(float, 0), "30",
        "enrichment: seconds the open breaker applies GATEWAY_ENRICH_ON_ERROR without "
        "calling; then one trial call decides.")
    ca_bundle: str | None = setting(
        "GATEWAY_ENRICH_CA_BUNDLE", readable_file, None,
        "enrichment: PEM file of CAs trusted for an https third party; default: the "
        "system's.")
    insecure: bool = setting(
        "GATEWAY_ENRICH_INSECURE", boolean, "false",
        "enrichment: true turns TLS certificate checks off (logged as a warning at start).")

    def __post_init__(self) -> None:
        if self.insecure and self.ca_bundle:
            raise ConfigError("GATEWAY_ENRICH_INSECURE=true: cannot be used with "
                              "GATEWAY_ENRICH_CA_BUNDLE")

    @property
    def targets(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(response header, field path) pairs to fill."""
        return self.map or ((self.header, self.field),)


def extract(document: Any, path: tuple[str, ...], max_value: int) -> str:
    """The header value at ``path``: strings as they are, numbers and booleans as JSON text.

    Non-ASCII text goes on the wire as its UTF-8 bytes (returned as the latin-1 string
    WSGI servers write byte for byte); ``max_value`` bounds those bytes.
    """
    value, name = document, ".".join(path)
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise BadAnswer(f"field {name!r} is missing")
    if isinstance(value, bool | int | float):
        value = encode_json(value).decode()
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise BadAnswer(f"field {name!r} is {kind}, not a string, number or boolean")
    encoded = value.encode()
    if len(encoded) > max_value:
        raise BadAnswer(f"field {name!r} is {len(encoded)} bytes, over the "
                        f"{max_value} of GATEWAY_ENRICH_MAX_VALUE")
    value = encoded.decode("latin-1")
    if not is_safe_value(value):
        raise BadAnswer(f"field {name!r} has characters not allowed in a header value")
    return value


def query_value(environ: Mapping[str, Any], name: str) -> str | None:
    """The first value of the query parameter ``name``, parsed as werkzeug's
    ``Request.args`` parses it (urllib's parse_qsl with werkzeug's error handler),
    without building a Request for it (a third of a cache hit's cost).

    Fields are split and compared one by one until ``name`` is found, and only a key
    or value holding ``+`` or ``%`` is decoded: parse_qsl decodes every field of the
    query first, a fifth of a cache hit.
    """
    query = environ.get("QUERY_STRING", "")
    if not query.isascii():  # WSGI's latin-1 text of the raw bytes, which are UTF-8
        query = query.encode("latin1").decode()
    for field in query.split("&"):
        key, _, value = field.partition("=")
        if _decoded(key) == name and field:
            return _decoded(value)
    return None


def _decoded(text: str) -> str:
    """A query key or value decoded as parse_qsl decodes it ('+' is a space)."""
    if "+" in text or "%" in text:
        return unquote(text.replace("+", " "), errors="werkzeug.url_quote")
    return text


def header_value(environ: Mapping[str, Any], name: str) -> str | None:
    """The request header ``name`` as werkzeug's ``Request.headers.get`` finds it."""
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return environ.get(key)
    return environ.get("HTTP_" + key)


def render_url(template: str, ex: Exchange) -> str:
    """The template filled from the request, URL-encoded; GatewayError 400 if a value is missing."""

    def fill(source: str) -> str:
        if source == "path":
            if ex.has_dot_segments:
                raise GatewayError(400, "A path with . or .. segments cannot fill the "
                                   "enrichment URL")
            return quote(ex.path, safe="/")
        kind, _, name = source.partition(".")
        value = (query_value(ex.environ, name) if kind == "query"
                 else header_value(ex.environ, name))
        what = "query parameter" if kind == "query" else "header"
        if value is None:
            raise GatewayError(400, f"Missing {what} {name!r} needed by the enrichment URL")
        if value in DOT_SEGMENTS:
            raise GatewayError(400, f"The {what} {name!r} cannot be . or .. in the enrichment URL")
        return quote(value, safe="")

    return "".join([text if source is None else fill(source)
                    for text, source in _pieces(template)])


@functools.lru_cache(maxsize=64)
def _pieces(template: str) -> tuple[tuple[str, str | None], ...]:
    """The template cut once into literal text (source None) and placeholders (their source,
    ``query.id``), left to right as re.sub would fill them."""
    pieces: list[tuple[str, str | None]] = []
    end = 0
    for match in _PLACEHOLDER.finditer(template):
        pieces += [(template[end:match.start()], None), ("", match.group(1))]
        end = match.end()
    pieces.append((template[end:], None))
    return tuple(pieces)


class Enrichment(Filter):
    """Starts the lookup in the request phase; joins it and sets headers in the response phase."""

    NAME = "enrichment"
    PRIORITY = 1000  # the guide plugin's
    VERSION = "0.0.1"
    Config = EnrichmentConfig

    def __init__(self, config: EnrichmentConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        options = ServiceOptions(
            timeout=config.timeout, max_bytes=config.max_bytes, headers=dict(config.headers_out),
            ca_bundle=config.ca_bundle, insecure=config.insecure, cache_ttl=config.cache_ttl,
            cache_max_bytes=config.cache_max_bytes, stale_if_error=config.stale_if_error,
            breaker_failures=config.breaker_failures, breaker_reset=config.breaker_reset)
        self.service = Service(self.NAME, settings, options,
                               on_breaker_change=lambda opened: BREAKER_OPEN.set(int(opened)))

    def on_request(self, ex: Exchange) -> None:
        url = render_url(self.config.url, ex)
        ex.ctx[self.NAME] = self.service.start(self.config.method, url, self.values)

    def on_response(self, ex: Exchange) -> None:
        pending = ex.ctx.pop(self.NAME, None)
        if pending is None:
            return
        if not ex.upstream_answer:
            self._abandon(ex, pending)  # nothing to enrich: a filter or error answered
            return
        self._apply(ex, pending.result())

    def on_log(self, ex: Exchange) -> None:
        pending = ex.ctx.pop(self.NAME, None)
        if pending is not None:  # the upstream failed, so on_response never ran
            self._abandon(ex, pending)
        outcome = ex.outcomes.get(self.NAME)
        if outcome is not None:
            _count(outcome, ex.latencies.get(self.NAME))

    def values(self, answer: Answer) -> list[tuple[str, str]]:
        """The (header, value) pairs the JSON answer gives (what the cache keeps)."""
        document = json_body(answer)
        return [(name, extract(document, path, self.config.max_value))
                for name, path in self.config.targets]

    def _abandon(self, ex: Exchange, pending: Pending) -> None:
        ex.outcomes[self.NAME] = "skipped"
        pending.cancel()

    def _apply(self, ex: Exchange, result: Result) -> None:
        ex.outcomes[self.NAME] = result.outcome
        ex.latencies[self.NAME] = result.seconds
        if result.error is not None:
            prefix = DECODE_ERROR if isinstance(result.error, BadAnswer) else ACCESS_ERROR
            if self.config.on_error == "fail":
                ex.error(500, f"{prefix}{result.error}")
            else:
                log.warning("request %s: enrichment left out: %s%s", ex.request_id, prefix,
                            result.error)
        latency = "cache" if result.outcome == "hit" else str(round(result.seconds * 1000))
        # One pass over the headers (werkzeug's set() scans them per name); a dict keeps one
        # field per name, the last value, as set() would. The values passed extract()'s
        # checks before they were cached.
        fields = dict(result.value or ())
        fields[LATENCY_HEADER] = latency
        set_fields(ex.headers, fields.items(), checked=True)


def _count(outcome: str, seconds: float | None) -> None:
    """The lookup's outcome in the enrichment metrics."""
    for counter in _counters(outcome):
        PENDING.count(counter)
    if seconds is not None:
        PENDING.observe(DURATION, seconds)


@functools.cache
def _counters(outcome: str) -> tuple[Any, ...]:
    """The counters an outcome adds one to: its CALLS child (labels() locks and formats on
    every call), and CACHE_HITS or CACHE_MISSES for a hit or a miss."""
    cache = {"hit": (CACHE_HITS,), "miss": (CACHE_MISSES,)}.get(outcome, ())
    return (CALLS.labels(outcome), *cache)
