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

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import quote

import gevent
from gevent import Greenlet
from gevent.event import AsyncResult
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
from gateway.filters.enrichment.breaker import Breaker
from gateway.filters.enrichment.client import CallFailed, ThirdPartyClient
from gateway.filters.enrichment.singleflight import SingleFlight
from gateway.jsoncodec import decode_json, encode_json
from gateway.proxy.errors import GatewayError
from gateway.proxy.exchange import DOT_SEGMENTS, Exchange
from gateway.proxy.headers import is_header_name, is_safe_value
from gateway.store.cache import make_cache
from gateway.store.redis import OutageWarning, RedisUnavailable

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
#: Extra seconds a request waits for a call past its deadline (the call enforces the deadline).
JOIN_GRACE = 0.5

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


def header_name(raw: str) -> str:
    if not is_header_name(raw):
        raise ValueError("must be a header name (letters, digits, - and the like)")
    return raw


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
    if not Path(raw).is_file():
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


class BadAnswer(ValueError):
    """The answer is not JSON, or has no usable value at a field path; str() says which."""


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


def render_url(template: str, ex: Exchange) -> str:
    """The template filled from the request, URL-encoded; GatewayError 400 if a value is missing."""

    def fill(match: re.Match[str]) -> str:
        source = match.group(1)
        if source == "path":
            if ex.has_dot_segments:
                raise GatewayError(400, "A path with . or .. segments cannot fill the "
                                   "enrichment URL")
            return quote(ex.path, safe="/")
        kind, _, name = source.partition(".")
        value = (ex.request.args.get(name) if kind == "query"
                 else ex.request.headers.get(name))
        what = "query parameter" if kind == "query" else "header"
        if value is None:
            raise GatewayError(400, f"Missing {what} {name!r} needed by the enrichment URL")
        if value in DOT_SEGMENTS:
            raise GatewayError(400, f"The {what} {name!r} cannot be . or .. in the enrichment URL")
        return quote(value, safe="")

    return _PLACEHOLDER.sub(fill, template)


@dataclass(frozen=True)
class Result:
    """What a lookup gave: header values, or the error message to apply ON_ERROR with."""

    outcome: str  # hit, miss, stale, error, breaker-open
    seconds: float
    values: tuple[tuple[str, str], ...] = ()
    error: str | None = None


class Enrichment(Filter):
    """Starts the lookup in the request phase; joins it and sets headers in the response phase."""

    NAME = "enrichment"
    PRIORITY = 1000  # the guide plugin's
    VERSION = "0.0.1"
    Config = EnrichmentConfig

    def __init__(self, config: EnrichmentConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.client = ThirdPartyClient(config.timeout, config.max_bytes, config.ca_bundle,
                                       config.insecure, settings.pool_size)
        self.headers_out = dict(config.headers_out)
        self.breaker = Breaker(config.breaker_failures, config.breaker_reset,
                               on_change=self._breaker_changed)
        #: Seconds an answer is kept: fresh for cache_ttl, then usable when a refresh fails.
        self.keep = config.cache_ttl + config.stale_if_error
        self.cache = make_cache(settings, "gateway:enrichment:", config.cache_max_bytes)
        self.flights = SingleFlight()
        #: Wall clock for cache ages (shared through Redis between instances).
        self.clock: Callable[[], float] = time.time
        self.cache_outage = OutageWarning(
            log, "enrichment cache (Redis) unavailable, calling the third party: %s")
        if config.insecure:
            log.warning("GATEWAY_ENRICH_INSECURE=true: TLS certificates of the third party "
                        "are NOT verified")

    def on_request(self, ex: Exchange) -> None:
        key = f"{self.config.method.upper()} {render_url(self.config.url, ex)}"
        if self.config.cache_ttl <= 0:
            ex.ctx[self.NAME] = gevent.spawn(self.lookup, key)
        elif self.cache.local and (cached := self._cached(key)) and self._fresh(cached):
            ex.ctx[self.NAME] = Result("hit", 0.0, cached[1])  # in memory: no greenlet needed
        else:
            ex.ctx[self.NAME] = self.flights.start(key, lambda: self.lookup(key))

    def on_response(self, ex: Exchange) -> None:
        pending = ex.ctx.pop(self.NAME, None)
        if pending is None:
            return
        if not ex.upstream_answer:
            self._abandon(ex, pending)  # nothing to enrich: a filter or error answered
            return
        try:
            result = pending if isinstance(pending, Result) else pending.get(
                timeout=self.config.timeout + JOIN_GRACE)
        except gevent.Timeout:
            result = Result("error", self.config.timeout,
                            error=f"{ACCESS_ERROR}timed out after {self.config.timeout:g}s")
        self._apply(ex, result)

    def on_log(self, ex: Exchange) -> None:
        pending = ex.ctx.pop(self.NAME, None)
        if pending is not None:  # the upstream failed, so on_response never ran
            self._abandon(ex, pending)
        outcome = ex.outcomes.get(self.NAME)
        if outcome is not None:
            _count(outcome, ex.latencies.get(self.NAME))

    def _breaker_changed(self, opened: bool) -> None:
        """The breaker opened or closed: the gauge follows, and the log says so."""
        BREAKER_OPEN.set(1 if opened else 0)
        host = self.config.url.partition("://")[2].partition("/")[0]
        if opened:
            log.warning("enrichment circuit breaker open: %d failed calls in a row to %s; "
                        "not calling it for %gs", self.breaker.failed, host,
                        self.config.breaker_reset)
        else:
            log.info("enrichment circuit breaker closed: %s answered again", host)

    def _abandon(self, ex: Exchange, pending: Result | Greenlet | AsyncResult) -> None:
        ex.outcomes[self.NAME] = "skipped"
        if isinstance(pending, Greenlet):
            pending.kill(block=False)  # a shared flight (AsyncResult) serves other requests

    def _apply(self, ex: Exchange, result: Result) -> None:
        ex.outcomes[self.NAME] = result.outcome
        ex.latencies[self.NAME] = result.seconds
        if result.error is not None:
            if self.config.on_error == "fail":
                ex.error(500, result.error)
            else:
                log.warning("request %s: enrichment left out: %s", ex.request_id, result.error)
        for name, value in result.values:
            ex.headers[name] = value
        ex.headers[LATENCY_HEADER] = ("cache" if result.outcome == "hit"
                                      else str(round(result.seconds * 1000)))

    # -- the lookup, run in its own greenlet

    def lookup(self, key: str) -> Result:
        """Cached values, else a call to the third party (stale values if it fails)."""
        started = perf_counter()
        cached = self._cached(key)
        if cached is not None and self._fresh(cached):
            return Result("hit", perf_counter() - started, cached[1])
        return self._refresh(key, cached, started)

    def _fresh(self, cached: tuple[float, tuple]) -> bool:
        """True when cached values are younger than the TTL."""
        return self.clock() - cached[0] < self.config.cache_ttl

    def _refresh(self, key: str, cached: tuple[float, tuple] | None, started: float) -> Result:
        """A call to the third party; the cached values if it fails and stale ones are allowed."""
        if not self.breaker.allow():
            message = (f"{ACCESS_ERROR}circuit breaker open after {self.breaker.failures} "
                       "failed calls")
            return self._fallback(cached, message, "breaker-open", started)
        left = self.config.timeout - (perf_counter() - started)
        try:
            with gevent.Timeout(left, CallFailed(f"timed out after {self.config.timeout:g}s")):
                values = self._call(key)
        except CallFailed as exc:
            self.breaker.failed_call()
            return self._fallback(cached, f"{ACCESS_ERROR}{exc}", "error", started)
        except BadAnswer as exc:
            self.breaker.succeeded()  # the service answered; its answer is the problem
            return self._fallback(cached, f"{DECODE_ERROR}{exc}", "error", started)
        except BaseException:
            self.breaker.cancelled()  # killed: neither a success nor a failure
            raise
        self.breaker.succeeded()
        self._store(key, values)
        return Result("miss", perf_counter() - started, values)

    def _call(self, key: str) -> tuple[tuple[str, str], ...]:
        method, _, url = key.partition(" ")
        answer = self.client.call(method, url, self.headers_out)
        if not 200 <= answer.status < 300:
            raise CallFailed(f"status {answer.status}")
        try:
            document = decode_json(answer.body)
        except ValueError as exc:
            raise BadAnswer(str(exc) or "not JSON") from None
        return tuple((name, extract(document, path, self.config.max_value))
                     for name, path in self.config.targets)

    def _fallback(self, cached: tuple[float, tuple] | None, message: str, outcome: str,
                  started: float) -> Result:
        """Stale values when allowed and young enough, else the error."""
        seconds = perf_counter() - started
        if cached is not None and self.config.stale_if_error > 0 \
                and self.clock() - cached[0] <= self.keep:
            return Result("stale", seconds, cached[1])
        return Result(outcome, seconds, error=message)

    # -- the cache: {"at": epoch seconds fetched, "values": [[header, value], ...]}

    def _cached(self, key: str) -> tuple[float, tuple] | None:
        if self.keep <= 0:
            return None
        try:
            raw = self.cache.get(key)
        except RedisUnavailable as exc:
            self.cache_outage(exc)
            return None
        if raw is None:
            return None
        entry = decode_json(raw)
        return entry["at"], tuple(tuple(pair) for pair in entry["values"])

    def _store(self, key: str, values: tuple[tuple[str, str], ...]) -> None:
        if self.keep <= 0:
            return
        try:
            self.cache.set(key, encode_json({"at": self.clock(), "values": values}), self.keep)
        except RedisUnavailable as exc:
            self.cache_outage(exc)


def _count(outcome: str, seconds: float | None) -> None:
    """The lookup's outcome in the enrichment metrics."""
    CALLS.labels(outcome).inc()
    if outcome == "hit":
        CACHE_HITS.inc()
    elif outcome == "miss":
        CACHE_MISSES.inc()
    if seconds is not None:
        DURATION.observe(seconds)
