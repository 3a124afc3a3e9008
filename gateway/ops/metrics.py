"""Prometheus metrics, aggregated over all gunicorn workers.

prometheus_client's multiprocess mode: each worker writes its values to files
in ``PROMETHEUS_MULTIPROC_DIR`` (set by gunicorn.conf.py in the master before
the workers fork), and a scrape served by any worker reads them all. Without
that variable (tests, ``python -m gateway check``) the values stay in-process.

Generic figures only: requests, latencies, upstream failures, and each
filter's outcomes and time as it reports them in ``ex.outcomes`` and
``ex.latencies``. A filter that needs a metric of its own (enrichment's
breaker, rate-limiting's rejections) declares it in its own module.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from gateway.ops.batch import PENDING

if TYPE_CHECKING:  # annotations only: ops sits below the proxy and reads what it is handed
    from gateway.proxy.exchange import Exchange
    from gateway.proxy.upstream import Upstream

LATENCY_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
# Seconds between two refreshes of the pool gauges by one worker.
POOL_REFRESH = 1.0

REQUESTS = Counter(
    "gateway_http_requests", "Requests answered, by status class and by who answered "
    "(upstream, or gateway: an error or a filter's answer).", ["status_class", "source"])
ROUTE_REQUESTS = Counter(
    "gateway_route_requests", "Requests by the service and route that took them (empty "
    "names for unnamed ones and for requests no route matched) and status class.",
    ["service", "route", "status_class"])
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds", "Time from request received to last byte sent.",
    buckets=LATENCY_BUCKETS)
UPSTREAM_DURATION = Histogram(
    "gateway_upstream_duration_seconds", "Time from request sent upstream to its response "
    "headers.", buckets=LATENCY_BUCKETS)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors", "Upstream failures by kind: refused, timeout, reset, invalid "
    "(an answer the parser refused), client-closed (the client left first).", ["kind"])
FILTER_OUTCOMES = Counter(
    "gateway_filter_outcomes", "What each filter did, as it reports it (e.g. hit, miss, "
    "error, rejected).", ["filter", "outcome"])
FILTER_DURATION = Histogram(
    "gateway_filter_duration_seconds", "Time each filter reports it spent on a request "
    "(e.g. enrichment's third-party lookup).", ["filter"], buckets=LATENCY_BUCKETS)
IN_FLIGHT = Gauge(
    "gateway_requests_in_flight", "Requests being handled now.", multiprocess_mode="livesum")
POOL_IDLE = Gauge(
    "gateway_upstream_idle_connections", "Idle keep-alive connections pooled per upstream "
    "target.", ["target"], multiprocess_mode="livesum")
TUNNELS_OPEN = Gauge(
    "gateway_websocket_tunnels_open", "WebSocket tunnels open now (handshakes under way "
    "included).", multiprocess_mode="livesum")
TUNNELS_CLOSED = Counter(
    "gateway_websocket_tunnels_closed", "WebSocket tunnels ended, by who ended them: client, "
    "upstream, idle (GATEWAY_WEBSOCKET_IDLE_TIMEOUT) or gateway (the worker stopped).",
    ["closed_by"])
POOL_OPENED = Counter(
    "gateway_upstream_connections_opened", "Connections opened to each upstream target.",
    ["target"])


class WorkerMetrics:
    """This worker's request figures, counted in memory (:mod:`gateway.ops.batch`) and
    written at most once a second and whenever the worker has no request in flight,
    before its in-flight gauge drops. A scrape served by this worker writes its pending
    figures first. The pool gauges are copied once a second (summed per target URL
    over the services' upstreams), and so is the open-tunnels gauge (from ``tunnels.open``,
    when given)."""

    def __init__(self, upstreams: Iterable[Upstream], tunnels: Any = None) -> None:
        self.upstreams = list(upstreams)
        self.tunnels = tunnels
        self.tunnels_written = 0
        self.refreshed = 0.0
        self.opened: dict[str, int] = {}
        #: Requests this worker is handling now (the gauge is written on 0 -> 1 and flushes).
        self.in_flight = 0

    def started(self) -> None:
        """A request came in."""
        self.in_flight += 1
        if self.in_flight == 1:
            IN_FLIGHT.set(1)

    def finished(self, ex: Exchange, total: float, now: float) -> None:
        """A request is over (``total`` seconds): count it; write when due or idle."""
        self.in_flight -= 1
        status_class = (ex.status or 0) // 100
        PENDING.count(_requests(status_class, "upstream" if ex.body is None else "gateway"))
        PENDING.count(_route_requests(ex.service or "", ex.route or "", status_class))
        PENDING.observe(REQUEST_DURATION, total)
        upstream_seconds = ex.upstream_seconds
        if upstream_seconds is not None:
            PENDING.observe(UPSTREAM_DURATION, upstream_seconds)
        for name, outcome in ex.outcomes.items():
            PENDING.count(_upstream_errors(outcome) if name == "upstream"
                          else _filter_outcomes(name, outcome))
        for name, seconds in ex.latencies.items():
            PENDING.observe(_filter_duration(name), seconds)
        if now - self.refreshed >= POOL_REFRESH:
            self.refresh(now)
        elif self.in_flight == 0:
            self._write()

    def refresh(self, now: float) -> None:
        """Write the pending figures, the in-flight gauge, the pool and tunnel gauges."""
        self.refreshed = now
        self._write()
        self._refresh_pools()
        self._refresh_upstreams()
        if self.tunnels is not None and self.tunnels.open != self.tunnels_written:
            self.tunnels_written = self.tunnels.open
            TUNNELS_OPEN.set(self.tunnels_written)

    def _refresh_upstreams(self) -> None:
        for refresh in REFRESHERS:
            refresh(self.upstreams)

    def _write(self) -> None:
        PENDING.write()
        IN_FLIGHT.set(self.in_flight)

    def _refresh_pools(self) -> None:
        totals: dict[str, tuple[int, int]] = {}
        for upstream in self.upstreams:
            for url, (idle, opened) in upstream.idle_connections().items():
                before = totals.get(url, (0, 0))
                totals[url] = (before[0] + idle, before[1] + opened)
        for url, (idle, opened) in totals.items():
            POOL_IDLE.labels(url).set(idle)
            POOL_OPENED.labels(url).inc(opened - self.opened.get(url, 0))
            self.opened[url] = opened


# The children of labelled metrics, cached: labels() locks and formats on every call.

@functools.cache
def _requests(status_class: int, source: str) -> Any:
    return REQUESTS.labels(f"{status_class}xx", source)


@functools.cache
def _route_requests(service: str, route: str, status_class: int) -> Any:
    """Names come from the declarative file, so there are few."""
    return ROUTE_REQUESTS.labels(service, route, f"{status_class}xx")


@functools.cache
def _upstream_errors(kind: str) -> Any:
    return UPSTREAM_ERRORS.labels(kind)


@functools.cache
def _filter_outcomes(name: str, outcome: str) -> Any:
    return FILTER_OUTCOMES.labels(name, outcome)


@functools.cache
def _filter_duration(name: str) -> Any:
    return FILTER_DURATION.labels(name)


@functools.cache
def _tunnels_closed(closed_by: str) -> Any:
    return TUNNELS_CLOSED.labels(closed_by)


def tunnel_closed(closed_by: str) -> None:
    """A WebSocket tunnel ended (counted with the next batch)."""
    PENDING.count(_tunnels_closed(closed_by))


#: The Content-Type of exposition().
CONTENT_TYPE = CONTENT_TYPE_LATEST


#: Functions given this worker's upstreams once a second and on each scrape it serves, to
#: write gauges of their state (prometheus's kong_upstream_target_health).
REFRESHERS: list[Callable[[list[Upstream]], None]] = []
#: Collectors of figures derived at scrape time, each made from the source of all the
#: others (a collector of every worker's metrics): filters add theirs (prometheus's
#: kong_nginx_* gauges).
DERIVED: list[Callable[[Any], Any]] = []
#: Rewrites of the exposition text, in order (prometheus's Kong spelling of its series:
#: label order, ``le`` values, a counter name without ``_total``).
TRANSFORMS: list[Callable[[bytes], bytes]] = []


class _Forward:
    """The metrics of a registry, as a collector of another."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Any]:
        return self.registry.collect()


def exposition() -> bytes:
    """All workers' metrics in the Prometheus text format (this process's without multiprocess)."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ and not DERIVED:
        body = generate_latest(REGISTRY)
    else:
        registry = CollectorRegistry()
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            source: Any = multiprocess.MultiProcessCollector(registry)
        else:
            source = _Forward(REGISTRY)
            registry.register(source)
        for derived in DERIVED:
            registry.register(derived(source))
        body = generate_latest(registry)
    for transform in TRANSFORMS:
        body = transform(body)
    return body

