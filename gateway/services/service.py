"""An external service a filter calls: the guide's ``resty.http`` + ``cjson.safe``, done right.

A :class:`Service` is made once per filter (in ``__init__``) and shared by the
requests of a worker. ``start()`` in ``on_request`` runs the call in its own
greenlet, so it overlaps the upstream call; ``result()`` in ``on_response``
takes what it gave. Every call has connect/read timeouts, a whole-call
deadline (gevent.Timeout), a maximum answer size and verified TLS, and is
decoded (JSON by default) into a value. Optional per service: a cache in
memory or Redis with a TTL (concurrent lookups of one key share one call),
stale values when a refresh fails, and a circuit breaker. Calls are counted
per service in Prometheus and failures logged with the request id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import Greenlet
from gevent.event import AsyncResult
from prometheus_client import Counter, Gauge, Histogram

from gateway.config import Settings
from gateway.jsoncodec import decode_json, encode_json
from gateway.ops import tracing
from gateway.ops.batch import PENDING
from gateway.ops.logjson import REQUEST_ID
from gateway.proxy.wire import HeadLimits
from gateway.services.breaker import Breaker
from gateway.services.client import Answer, HttpClient
from gateway.services.errors import BadAnswer, CallFailed, ServiceError
from gateway.services.singleflight import SingleFlight
from gateway.store.cache import Cache, MemoryCache, make_cache
from gateway.store.redis import OutageWarning, RedisUnavailable

log = logging.getLogger("gateway.services")

CALLS = Counter("gateway_service_calls", "External-service lookups by service and outcome "
                "(hit, miss, stale, error, breaker-open).", ["service", "outcome"])
DURATION = Histogram(
    "gateway_service_call_duration_seconds",
    "Time of external-service lookups that called the service, by service.", ["service"],
    buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
BREAKER_OPEN = Gauge(
    "gateway_service_breaker_open", "1 while a worker's circuit breaker for the service is "
    "open (or half-open, trying one call).", ["service"], multiprocess_mode="livemax")

#: What a lookup can give (see Result.outcome).
OUTCOMES = ("hit", "miss", "stale", "error", "breaker-open")
#: Extra seconds ``result()`` waits past the deadline (the call enforces the deadline itself).
JOIN_GRACE = 0.5

#: Turns a 2xx answer into the value the caller gets (and the cache keeps: JSON-serialisable).
Decoder = Callable[[Answer], Any]


def json_body(answer: Answer) -> Any:
    """The answer's body decoded as JSON; BadAnswer saying what was wrong."""
    try:
        return decode_json(answer.body)
    except ValueError as exc:
        raise BadAnswer(str(exc) or "not JSON") from None


@dataclass(frozen=True)
class ServiceOptions:
    """How a service is called; every limit has a default safe for a request path."""

    #: Seconds for the whole call: connect, answer and body (a gevent.Timeout deadline).
    timeout: float = 2.0
    #: Seconds to open a connection, and for each read; default: ``timeout``.
    connect_timeout: float | None = None
    read_timeout: float | None = None
    #: Largest answer read, in bytes; a larger one is a CallFailed, never read whole.
    max_bytes: int = 1 << 20
    #: Headers sent on every call (API keys): never logged, never in errors.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: PEM file of trusted CAs for https; default: the system's.
    ca_bundle: str | None = None
    #: True turns TLS certificate checks off (logged as a warning).
    insecure: bool = False
    #: Seconds a value is reused for the same method and URL (0: no cache); in Redis when
    #: GATEWAY_REDIS_URL is set. Concurrent lookups of one method and URL then share one
    #: call, so cache only calls whose answer depends on nothing else (no body).
    cache_ttl: float = 0
    #: Memory the in-process cache may use per worker.
    cache_max_bytes: int = 16 << 20
    #: When a call fails, serve the last value if at most this many seconds past its TTL.
    stale_if_error: float = 0
    #: Consecutive failed calls that open the circuit breaker (0: no breaker).
    breaker_failures: int = 0
    #: Seconds the open breaker refuses calls; then one trial call decides.
    breaker_reset: float = 30
    #: Idle connections kept per host per worker; default: GATEWAY_POOL_SIZE.
    pool_size: int | None = None
    #: Statuses that make a call fail; None: every status but 2xx. With a set, every
    #: other status is an answer the decoder gets (request-callout's ``http_statuses``).
    error_statuses: frozenset[int] | None = None
    #: Where the cache lives: "auto" (Redis when GATEWAY_REDIS_URL is set, else this
    #: worker's memory), "memory" (always this worker's), or a redis:// URL of its own.
    cache_store: str = "auto"

    def __post_init__(self) -> None:
        positive = {"timeout": self.timeout, "connect_timeout": self.connect_timeout,
                    "read_timeout": self.read_timeout, "max_bytes": self.max_bytes,
                    "pool_size": self.pool_size}
        for name, value in positive.items():
            if value is not None and value <= 0:
                raise ValueError(f"ServiceOptions.{name} must be > 0, not {value!r}")
        if min(self.cache_ttl, self.stale_if_error, self.breaker_failures,
               self.breaker_reset) < 0:
            raise ValueError("ServiceOptions: cache_ttl, stale_if_error, breaker_failures and "
                             "breaker_reset must be >= 0")


@dataclass(frozen=True)
class Result:
    """What a lookup gave: a value, or the error saying why not."""

    #: hit (fresh from the cache), miss (called), stale (cached, the call failed),
    #: error, breaker-open.
    outcome: str
    seconds: float
    value: Any = None
    error: ServiceError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def get(self) -> Any:
        """The value; raises the CallFailed or BadAnswer otherwise."""
        if self.error is not None:
            raise self.error
        return self.value


class Pending:
    """A lookup started by :meth:`Service.start`: take its result, or cancel it."""

    def __init__(self, source: Result | Greenlet | AsyncResult, wait: float) -> None:
        self._source = source
        self._wait = wait

    def result(self) -> Result:
        """The lookup's result, waiting at most the service's deadline (plus a grace)."""
        if isinstance(self._source, Result):
            return self._source
        try:
            return self._source.get(timeout=self._wait)
        except gevent.Timeout:
            seconds = self._wait - JOIN_GRACE
            return Result("error", seconds, error=CallFailed(f"timed out after {seconds:g}s"))

    def cancel(self) -> None:
        """Not needed any more (the request ended early); a shared lookup goes on for others."""
        if isinstance(self._source, Greenlet):
            self._source.kill(block=False)


@dataclass(frozen=True)
class _Call:
    """What one lookup sends."""

    method: str
    url: str
    body: bytes | None
    headers: Mapping[str, str]


def _cache(settings: Settings, name: str, options: ServiceOptions) -> Cache:
    """The service's cache store, as ``options.cache_store`` says."""
    prefix = f"gateway:{name}:"
    if options.cache_store == "memory":
        return MemoryCache(options.cache_max_bytes)
    url = None if options.cache_store == "auto" else options.cache_store
    return make_cache(settings, prefix, options.cache_max_bytes, url)


class Service:
    """One external service (its name labels metrics and logs, and keys its cache)."""

    def __init__(self, name: str, settings: Settings, options: ServiceOptions | None = None,
                 on_breaker_change: Callable[[bool], None] | None = None) -> None:
        self.name = name
        self.options = options = options or ServiceOptions()
        self.client = HttpClient(
            options.connect_timeout or options.timeout, options.read_timeout or options.timeout,
            options.max_bytes, options.ca_bundle, options.insecure,
            options.pool_size or settings.pool_size,
            HeadLimits(max_bytes=settings.upstream_max_header_bytes))
        self.breaker = Breaker(options.breaker_failures, options.breaker_reset,
                               on_change=self._breaker_changed) \
            if options.breaker_failures > 0 else None
        self.on_breaker_change = on_breaker_change
        #: Seconds a value is kept: fresh for cache_ttl, then usable when a refresh fails.
        self.keep = options.cache_ttl + options.stale_if_error if options.cache_ttl > 0 else 0
        self.cache = _cache(settings, name, options)
        self.flights = SingleFlight()
        #: Wall clock for cache ages (shared through Redis between instances).
        self.clock: Callable[[], float] = time.time
        self.cache_outage = OutageWarning(
            log, f"{name} cache (Redis) unavailable, calling the third party: %s")
        #: The URL of the last call, for the breaker's log lines (host:port).
        self.last_url = ""
        self._calls = {outcome: CALLS.labels(name, outcome) for outcome in OUTCOMES}
        self._duration = DURATION.labels(name)
        if options.insecure:
            log.warning("service %s: TLS certificates of the third party are NOT verified "
                        "(insecure)", name)

    # -- the API for filters

    def start(self, method: str, url: str, decode: Decoder = json_body,
              body: bytes | None = None, headers: Mapping[str, str] | None = None,
              key: str | None = None) -> Pending:
        """Start a lookup in its own greenlet (a fresh in-memory value needs none); take it
        with ``.result()``. ``decode`` turns a 2xx answer into the value (JSON by default).
        ``key`` names the value in the cache and single-flight (default: method and URL);
        give one when the answer also depends on the headers or body."""
        key = key or f"{method.upper()} {url}"
        wait = self.options.timeout + JOIN_GRACE
        if self.keep > 0 and self.cache.local and (cached := self._cached(key)) \
                and self._fresh(cached):  # a fresh in-memory value: nothing to start
            return Pending(self._record(Result("hit", 0.0, cached[1])), wait)
        request_id = REQUEST_ID.get()
        parent = tracing.capture()
        call = _Call(method.upper(), url, body, headers or {})

        def lookup() -> Result:
            REQUEST_ID.set(request_id)
            tracing.restore(parent)
            return self._lookup(key, call, decode)

        if self.keep <= 0:
            return Pending(gevent.spawn(lookup), wait)
        return Pending(self.flights.start(key, lookup), wait)

    def call(self, method: str, url: str, decode: Decoder = json_body,
             body: bytes | None = None, headers: Mapping[str, str] | None = None,
             key: str | None = None) -> Result:
        """:meth:`start` and wait for the result (no overlap with the upstream call)."""
        return self.start(method, url, decode, body, headers, key).result()

    def get_json(self, url: str) -> Any:
        """GET ``url`` and its JSON answer; CallFailed or BadAnswer saying what went wrong."""
        return self.call("GET", url).get()

    # -- the lookup, in its own greenlet

    def _lookup(self, key: str, call: _Call, decode: Decoder) -> Result:
        """Cached value, else a call (stale value if it fails and that is allowed)."""
        started = perf_counter()
        cached = self._cached(key)
        if cached is not None and self._fresh(cached):
            return self._record(Result("hit", perf_counter() - started, cached[1]))
        return self._record(self._refresh(key, cached, started, call, decode))

    def _refresh(self, key: str, cached: tuple[float, Any] | None, started: float,
                 call: _Call, decode: Decoder) -> Result:
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            error = CallFailed(f"circuit breaker open after {breaker.failures} failed calls")
            return self._fallback(cached, error, "breaker-open", started)
        deadline = self.options.timeout
        try:
            with gevent.Timeout(deadline - (perf_counter() - started),
                                CallFailed(f"timed out after {deadline:g}s")):
                value = self._call(call, decode)
        except CallFailed as exc:
            self._failed(exc)
            if breaker is not None:
                breaker.failed_call()
            return self._fallback(cached, exc, "error", started)
        except BadAnswer as exc:
            self._failed(exc)
            if breaker is not None:
                breaker.succeeded()  # the service answered; its answer is the problem
            return self._fallback(cached, exc, "error", started)
        except BaseException:
            if breaker is not None:
                breaker.cancelled()  # killed: neither a success nor a failure
            raise
        if breaker is not None:
            breaker.succeeded()
        self._store(key, value)
        return Result("miss", perf_counter() - started, value)

    def _call(self, call: _Call, decode: Decoder) -> Any:
        self.last_url = call.url  # split only when the breaker logs it
        headers = {**call.headers, **self.options.headers}
        if tracing.ACTIVE is None:
            answer = self.client.call(call.method, call.url, headers, call.body)
        else:
            answer = tracing.ACTIVE.service_call(self.name, call.method, call.url, headers,
                                                 lambda: self.client.call(
                                                     call.method, call.url, headers, call.body))
        errors = self.options.error_statuses
        if (answer.status in errors) if errors is not None else not 200 <= answer.status < 300:
            raise CallFailed(f"status {answer.status}")
        return decode(answer)

    def _failed(self, error: ServiceError) -> None:
        """A call went out and failed (not a refusal by the open breaker, logged once)."""
        log.warning("service %s: call for request %s failed: %s", self.name, REQUEST_ID.get(),
                    error)

    def _fallback(self, cached: tuple[float, Any] | None, error: ServiceError, outcome: str,
                  started: float) -> Result:
        """The stale value when allowed and young enough, else the error."""
        seconds = perf_counter() - started
        if cached is not None and self.options.stale_if_error > 0 \
                and self.clock() - cached[0] <= self.keep:
            return Result("stale", seconds, cached[1])
        return Result(outcome, seconds, error=error)

    def _record(self, result: Result) -> Result:
        """Count the lookup in the service's metrics."""
        PENDING.count(self._calls[result.outcome])
        if result.outcome not in ("hit", "breaker-open"):
            PENDING.observe(self._duration, result.seconds)
        return result

    def last_host(self) -> str:
        """host:port of the last call."""
        return urlsplit(self.last_url).netloc

    def _breaker_changed(self, opened: bool) -> None:
        """The breaker opened or closed: the gauge follows, and the log says so."""
        BREAKER_OPEN.labels(self.name).set(1 if opened else 0)
        if opened:
            log.warning("%s circuit breaker open: %d failed calls in a row to %s; not calling "
                        "it for %gs", self.name, self.options.breaker_failures, self.last_host(),
                        self.options.breaker_reset)
        else:
            log.info("%s circuit breaker closed: %s answered again", self.name, self.last_host())
        if self.on_breaker_change is not None:
            self.on_breaker_change(opened)

    # -- the cache: {"at": epoch seconds fetched, "value": the decoded value}

    def _fresh(self, cached: tuple[float, Any]) -> bool:
        return self.clock() - cached[0] < self.options.cache_ttl

    def _cached(self, key: str) -> tuple[float, Any] | None:
        if self.keep <= 0:
            return None
        try:
            raw = self.cache.get(key)
        except RedisUnavailable as exc:
            self.cache_outage(exc)
            return None
        if raw is None:
            return None
        try:
            entry = decode_json(raw)
            return float(entry["at"]), entry["value"]
        except (ValueError, KeyError, TypeError):
            return None  # another version's or a damaged entry (shared Redis): a miss

    def _store(self, key: str, value: Any) -> None:
        if self.keep <= 0:
            return
        try:
            self.cache.set(key, encode_json({"at": self.clock(), "value": value}), self.keep)
        except RedisUnavailable as exc:
            self.cache_outage(exc)
