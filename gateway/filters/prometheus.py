"""prometheus: Kong's metric names, labels and buckets on the gateway's metrics endpoint.

Enabled (in a declarative file or GATEWAY_FILTERS), the filter adds Kong's
series to ``<GATEWAY_STATUS_PATH>/metrics`` beside the gateway's own, so a
Grafana dashboard built for Kong keeps working (kong/plugins/prometheus/
exporter.lua):

- always: ``kong_nginx_requests_total{node_id,subsystem}`` and
  ``kong_nginx_connections_total{node_id,subsystem,state}`` (gauges; states
  ``total`` and ``handled``: requests answered by all workers, ``active`` and
  ``writing``: requests in flight), ``kong_node_info{node_id,version}``;
- ``status_code_metrics``: ``kong_http_requests_total{service,route,code,source,
  workspace,consumer}`` (source ``service`` for the upstream's answers, ``kong``
  for the gateway's own);
- ``latency_metrics``: the histograms ``kong_kong_latency_ms``,
  ``kong_upstream_latency_ms`` and ``kong_request_latency_ms`` {service,route,
  workspace} with Kong's bucket bounds (milliseconds);
- ``bandwidth_metrics``: ``kong_bandwidth_bytes{service,route,direction,workspace,
  consumer}`` (direction ingress/egress, estimated head + body sizes);
- ``upstream_health_metrics`` (for all routes once one plugin entry enables it, as
  Kong's): ``kong_upstream_target_health{upstream,target,address,state,subsystem}``
  for the targets of the file's upstream entities: 1 on the target's state, Kong's
  ``healthy`` or ``unhealthy`` when its upstream uses health checks, ``dns_error``
  when its name did not resolve, else ``healthchecks_off``; 0 on the others; each
  worker writes its view once a second and on a scrape it serves, and the most
  recent one is shown;
- ``per_consumer``: the consumer label holds the consumer's username.

Requests no route took are not counted (Kong's exporter returns early). Per
request the filter only updates the worker's pending batch
(:mod:`gateway.ops.batch`).
"""

from __future__ import annotations

import functools
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateway.config import Settings, boolean, setting
from gateway.filters.base import Filter
from gateway.filters.logentry import (
    WORKSPACE,
    latencies,
    proxied,
    request_size,
    response_size,
)
from gateway.ops import metrics
from gateway.ops.batch import PENDING
from gateway.proxy.exchange import Exchange
from gateway.proxy.healthcheck import DNS_ERROR, HEALTHY, OFF, UNHEALTHY

KONG_LATENCY_BUCKETS = (1, 2, 5, 7, 10, 15, 20, 30, 50, 75, 100, 200, 500, 750, 1000, 3000,
                        6000)
UPSTREAM_LATENCY_BUCKETS = (25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000,
                            60000)
#: Kong's node id, stable per host (Kong's is a UUID too).
NODE_ID = str(uuid.uuid5(uuid.NAMESPACE_DNS, socket.gethostname()))
VERSION = "3.10.0"
SUBSYSTEM = "http"
LATENCY_LABELS = ["service", "route", "workspace"]


@dataclass(frozen=True)
class PrometheusConfig:
    per_consumer: bool = setting(
        "GATEWAY_PROMETHEUS_PER_CONSUMER", boolean, "false",
        "prometheus: fill the consumer label of kong_http_requests_total and "
        "kong_bandwidth_bytes.")
    status_code_metrics: bool = setting(
        "GATEWAY_PROMETHEUS_STATUS_CODE_METRICS", boolean, "false",
        "prometheus: export kong_http_requests_total.")
    latency_metrics: bool = setting(
        "GATEWAY_PROMETHEUS_LATENCY_METRICS", boolean, "false",
        "prometheus: export kong_kong_latency_ms, kong_upstream_latency_ms and "
        "kong_request_latency_ms.")
    bandwidth_metrics: bool = setting(
        "GATEWAY_PROMETHEUS_BANDWIDTH_METRICS", boolean, "false",
        "prometheus: export kong_bandwidth_bytes.")
    upstream_health_metrics: bool = setting(
        "GATEWAY_PROMETHEUS_UPSTREAM_HEALTH_METRICS", boolean, "false",
        "prometheus: export kong_upstream_target_health.")


@dataclass(frozen=True)
class KongMetrics:
    """Kong's series, registered once per process on the first prometheus filter."""

    requests: Counter
    kong_latency: Histogram
    upstream_latency: Histogram
    request_latency: Histogram
    bandwidth: Counter


@functools.cache
def kong_metrics() -> KongMetrics:
    """Kong's metrics, created on first use so that they exist only with the filter."""
    metrics.DERIVED.append(NginxGauges)
    metrics.TRANSFORMS.append(kong_spelling)
    metrics.REFRESHERS.append(_worker_memory())
    return KongMetrics(
        Counter("kong_http_requests", "HTTP status codes per consumer/service/route in Kong",
                ["service", "route", "code", "source", "workspace", "consumer"]),
        Histogram("kong_kong_latency_ms", "Latency added by Kong and enabled plugins for "
                  "each service/route in Kong", LATENCY_LABELS, buckets=KONG_LATENCY_BUCKETS),
        Histogram("kong_upstream_latency_ms", "Latency added by upstream response for each "
                  "service/route in Kong", LATENCY_LABELS, buckets=UPSTREAM_LATENCY_BUCKETS),
        Histogram("kong_request_latency_ms", "Total latency incurred during requests for "
                  "each service/route in Kong", LATENCY_LABELS,
                  buckets=UPSTREAM_LATENCY_BUCKETS),
        Counter("kong_bandwidth_bytes", "Total bandwidth (ingress/egress) throughput in bytes",
                ["service", "route", "direction", "workspace", "consumer"]),
    )


def _worker_memory() -> Callable[[Any], None]:
    """A refresher writing this worker's resident memory (Kong: its Lua VM's bytes). In
    multiprocess mode prometheus_client adds the ``pid`` label itself (mode liveall)."""
    page = os.sysconf("SC_PAGE_SIZE")
    shared = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    gauge = Gauge("kong_memory_workers_lua_vms_bytes", "Allocated bytes in worker Lua VM",
                  ["node_id", "kong_subsystem"] if shared else ["node_id", "pid",
                                                                "kong_subsystem"],
                  multiprocess_mode="liveall")

    def refresh(_upstreams: Any) -> None:
        try:
            with open("/proc/self/statm", "rb") as statm:
                resident = int(statm.read().split()[1]) * page
        except OSError:  # not Linux
            return
        labels = (NODE_ID, SUBSYSTEM) if shared else (NODE_ID, str(os.getpid()), SUBSYSTEM)
        gauge.labels(*labels).set(resident)

    return refresh


#: Kong's states of a target (gateway.proxy.healthcheck).
STATES = (OFF, HEALTHY, UNHEALTHY, DNS_ERROR)


@functools.cache
def export_target_health() -> None:
    """Write kong_upstream_target_health with this worker's upstream metrics from now on."""
    gauge = Gauge("kong_upstream_target_health", "Health status of targets of upstream. "
                  "States = healthchecks_off|healthy|unhealthy|dns_error, value is 1 when "
                  "state is populated.", ["upstream", "target", "address", "state",
                                          "subsystem"], multiprocess_mode="livemostrecent")

    def refresh(upstreams: list[Any]) -> None:
        for upstream in upstreams:
            if upstream.name is None:
                continue
            for target, state in upstream.target_health().items():
                for label in STATES:
                    gauge.labels(upstream.name, target, target, label, SUBSYSTEM).set(
                        1 if label == state else 0)

    metrics.REFRESHERS.append(refresh)


#: Kong's label order per series (kong/plugins/prometheus/exporter.lua); ``le`` last.
LABEL_ORDER = (b"service", b"route", b"code", b"source", b"direction", b"workspace",
               b"consumer", b"node_id", b"pid", b"kong_subsystem", b"subsystem", b"state",
               b"version", b"le")
HEALTH_ORDER = (b"upstream", b"target", b"address", b"state", b"subsystem")
_SAMPLE = re.compile(rb"^(kong_\w+)(?:\{(.*)\})? (.*)$", re.MULTILINE)
_LABEL = re.compile(rb'(\w+)="((?:[^"\\]|\\.)*)"')


def kong_spelling(body: bytes) -> bytes:
    """The kong_* samples as Kong writes them: labels in Kong's order, ``le="5"`` (not
    ``5.0``), whole values without ``.0``, and ``kong_bandwidth_bytes`` without the
    ``_total`` prometheus_client adds to counters (parsers read both the same; literal
    matches of Kong's text do not)."""
    return _SAMPLE.sub(_respell, body).replace(b"kong_bandwidth_bytes_total",
                                               b"kong_bandwidth_bytes")


def _respell(match: re.Match[bytes]) -> bytes:
    name, labels, value = match.groups()
    number = float(value)
    if number.is_integer() and abs(number) < 2**53:
        value = b"%d" % number
    if labels is None:
        return name + b" " + value
    pairs = dict(_LABEL.findall(labels))
    if b"le" in pairs and pairs[b"le"] != b"+Inf":
        pairs[b"le"] = b"%g" % float(pairs[b"le"])
    order = HEALTH_ORDER if name.startswith(b"kong_upstream_target_health") else LABEL_ORDER
    keys = [key for key in order if key in pairs] + [key for key in pairs if key not in order]
    return b"%s{%s} %s" % (name, b",".join(b'%s="%s"' % (key, pairs[key]) for key in keys),
                           value)


class NginxGauges:
    """Kong's kong_nginx_* gauges and kong_node_info, derived at scrape time from the
    gateway's own request counter and in-flight gauge (all workers')."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        total = in_flight = 0.0
        for family in self.source.collect():
            if family.name == "gateway_http_requests":
                total = sum(s.value for s in family.samples if s.name.endswith("_total"))
            elif family.name == "gateway_requests_in_flight":
                in_flight = sum(s.value for s in family.samples)
        connections = GaugeMetricFamily("kong_nginx_connections_total",
                                        "Number of connections by subsystem",
                                        labels=["node_id", "subsystem", "state"])
        for state, value in (("accepted", total), ("handled", total), ("total", total),
                             ("active", in_flight), ("reading", 0), ("writing", in_flight),
                             ("waiting", 0)):
            connections.add_metric([NODE_ID, SUBSYSTEM, state], value)
        yield connections
        requests = GaugeMetricFamily("kong_nginx_requests_total", "Number of requests total",
                                     labels=["node_id", "subsystem"])
        requests.add_metric([NODE_ID, SUBSYSTEM], total)
        yield requests
        info = GaugeMetricFamily("kong_node_info", "Kong Node metadata information",
                                 labels=["node_id", "version"])
        info.add_metric([NODE_ID, VERSION], 1)
        yield info
        # Kong's count of errors of its metrics library: this one has none.
        yield CounterMetricFamily("kong_nginx_metric_errors",
                                  "Number of nginx-lua-prometheus errors", value=0)


class Prometheus(Filter):
    """Counts each routed request in Kong's series, as the config asks."""

    NAME = "prometheus"
    PRIORITY = 13  # Kong's
    VERSION = "1.0.0"
    Config = PrometheusConfig

    def __init__(self, config: PrometheusConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.metrics = kong_metrics()
        if config.upstream_health_metrics:
            export_target_health()

    def on_log(self, ex: Exchange) -> None:
        if ex.route is None:
            return
        config = self.config
        service, route = ex.service or "", ex.route
        consumer = ex.consumer.username if config.per_consumer and ex.consumer else ""
        if config.status_code_metrics:
            source = "service" if proxied(ex) else "kong"
            PENDING.count(self._requests(service, route, ex.status or 0, source, consumer))
        if config.latency_metrics:
            figures = latencies(ex, round((time.perf_counter() - ex.started) * 1000))
            kong, upstream, request = self._latency(service, route)
            PENDING.observe(request, figures["request"])
            if figures["proxy"] >= 0:
                PENDING.observe(upstream, figures["proxy"])
            PENDING.observe(kong, figures["kong"])
        if config.bandwidth_metrics:
            raw = ex.environ.get("RAW_URI") or ex.environ.get("PATH_INFO", "")
            ingress, egress = self._bandwidth(service, route, consumer)
            PENDING.count(ingress, request_size(ex.environ, raw))
            PENDING.count(egress, response_size(ex))

    @functools.cache  # noqa: B019 (one filter per plugin entry, as long-lived as the app)
    def _requests(self, service: str, route: str, code: int, source: str,
                  consumer: str) -> Any:
        return self.metrics.requests.labels(service, route, str(code), source, WORKSPACE,
                                            consumer)

    @functools.cache  # noqa: B019
    def _latency(self, service: str, route: str) -> tuple[Any, Any, Any]:
        names = (service, route, WORKSPACE)
        return (self.metrics.kong_latency.labels(*names),
                self.metrics.upstream_latency.labels(*names),
                self.metrics.request_latency.labels(*names))

    @functools.cache  # noqa: B019
    def _bandwidth(self, service: str, route: str, consumer: str) -> tuple[Any, Any]:
        return tuple(self.metrics.bandwidth.labels(service, route, direction, WORKSPACE,
                                                   consumer)
                     for direction in ("ingress", "egress"))
