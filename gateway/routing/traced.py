"""Spans around the router, each filter phase and the upstream call, when tracing is on.

Instead of a check at every call site, a route table is instrumented once at start:
its ``find``, each chain's request and response filters and each Upstream's ``send``
are replaced by wrappers that open a child span of the request's server span. With
tracing off nothing is replaced, so nothing of this runs.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind
from urllib3.util import parse_url

from gateway.filters.base import Filter
from gateway.ops.tracing import Tracing
from gateway.proxy.exchange import Exchange
from gateway.routing.chain import Chain
from gateway.routing.table import RouteTable


class TracedFilter:
    """A filter of a chain whose phases each run in a span ``kong.<phase>.plugin.<name>``
    (Kong's names: access for the request phase, header_filter for the response's)."""

    def __init__(self, inner: Filter, tracing: Tracing) -> None:
        self.inner = inner
        self.tracing = tracing
        self.NAME, self.PRIORITY = inner.NAME, inner.PRIORITY
        self._access = f"kong.access.plugin.{inner.NAME}"
        self._header_filter = f"kong.header_filter.plugin.{inner.NAME}"

    def on_request(self, ex: Exchange) -> None:
        with self.tracing.span(self._access):
            self.inner.on_request(ex)

    def on_response(self, ex: Exchange) -> None:
        with self.tracing.span(self._header_filter):
            self.inner.on_response(ex)


def instrument(routes: RouteTable, tracing: Tracing) -> None:
    """Put the router, every chain's filters and every upstream call in spans."""
    find = routes.find

    def traced_find(environ: dict[str, Any]) -> Any:
        with tracing.span("kong.router"):
            return find(environ)

    routes.find = traced_find  # type: ignore[method-assign]
    chains: dict[int, Chain] = {id(d.chain): d.chain for d in routes.destinations}
    for chain in chains.values():
        chain.request_filters = [TracedFilter(f, tracing) for f in chain.request_filters]
        chain.response_filters = [TracedFilter(f, tracing) for f in chain.response_filters]
    for upstream in routes.upstreams:
        upstream.send = _traced_send(upstream.send, tracing)  # type: ignore[method-assign]


def _traced_send(send: Any, tracing: Tracing) -> Any:
    """Upstream.send in a client span ``kong.balancer`` until the response head, the trace
    context injected into the request's headers; the target it went to as attributes."""

    addresses: dict[str, tuple[str, int]] = {}  # per target URL, parsed once

    def traced(method: str, target: str, headers: Any, *args: Any) -> Any:
        with tracing.span("kong.balancer", SpanKind.CLIENT,
                          {"http.request.method": method, "url.path": target}) as span:
            tracing.inject(headers)
            chosen, answer = send(method, target, headers, *args)
            host, port = addresses.get(chosen.url) or addresses.setdefault(
                chosen.url, _address(chosen.url))
            span.set_attributes({"server.address": host, "server.port": port,
                                 "url.full": chosen.url.rstrip("/") + target,
                                 "http.response.status_code": answer.status})
            return chosen, answer

    return traced


def _address(url: str) -> tuple[str, int]:
    parts = parse_url(url)
    return parts.host or "", parts.port or (443 if parts.scheme == "https" else 80)
