"""OpenTelemetry traces: one server span per request, its children, trace context (W3C,
b3, jaeger).

Tracing is on when an OTLP endpoint is configured (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or a declarative file has a global
``opentelemetry`` plugin. Off, nothing here runs: the app checks one attribute per
request and the instrumented call sites check :data:`ACTIVE`.

On, the worker builds the SDK's TracerProvider on the first request (after the fork
and gevent's patching, so the BatchSpanProcessor's thread is a greenlet of the
worker) with the OTLP/HTTP exporter. Spans are exported in the background; a
collector that is down only makes exports fail: the spans are dropped and one warning
is logged at most every :data:`WARN_EVERY` seconds. No request waits for an export.

The span names are Kong's (``kong``, ``kong.router``, ``kong.access.plugin.NAME``,
``kong.header_filter.plugin.NAME``, ``kong.balancer``, ``kong.internal.request``),
the attributes the HTTP semantic conventions' (``http.request.method``, ``url.path``,
``server.address``...).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.b3 import B3MultiFormat
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import gateway

log = logging.getLogger("gateway.tracing")

#: Seconds between two warnings that spans were dropped (the collector is down).
WARN_EVERY = 10.0
#: The trace-context formats read from a client (Kong's ``propagation`` names), in the
#: order Kong extracts them by default (its old header_type "preserve"); b3 reads both of
#: its forms, the X-B3-* headers and the single ``b3``.
FORMATS = ("b3", "w3c", "jaeger")
#: The formats written upstream and to third parties (b3-single: the one ``b3`` header).
WRITTEN = ("b3", "b3-single", "w3c", "jaeger")
#: The request headers (WSGI environ keys) that say a client sent a format.
_SENT = {"b3": ("HTTP_B3", "HTTP_X_B3_TRACEID"), "w3c": ("HTTP_TRACEPARENT",),
         "jaeger": ("HTTP_UBER_TRACE_ID",)}
#: The headers each written format sets: a client's own are dropped before ours go in.
FORMAT_HEADERS = {
    "b3": ("x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"),
    "b3-single": ("b3",), "w3c": ("traceparent", "tracestate"), "jaeger": ("uber-trace-id",),
}
#: Kong's default service.name.
SERVICE_NAME = "kong"

#: The worker's tracing when it is on (set by the app at start), else None.
ACTIVE: Tracing | None = None

#: The formats written for the current request, resolved once in its context (``preserve``
#: is the format the client's context came in, else ``default_format``).
_WRITES = otel_context.create_key("gateway.tracing.writes")


def _ids(span: Span) -> tuple[str, str, str | None, bool] | None:
    """(trace id, span id, parent span id or None, sampled) of ``span`` in hex, None when
    it has no valid context. An SDK span knows its parent; one it does not record, not."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    parent = getattr(span, "parent", None)
    return (format_trace_id(context.trace_id), format_span_id(context.span_id),
            None if parent is None else format_span_id(parent.span_id),
            context.trace_flags.sampled)


def _inject_b3_single(carrier: MutableMapping[str, str]) -> None:
    """b3's single header as Kong writes it: ``trace-span-sampled``, then ``-parent`` when
    the span has one (the SDK's B3SingleFormat leaves the parent out)."""
    ids = _ids(trace.get_current_span())
    if ids is not None:
        trace_id, span_id, parent_id, sampled = ids
        fields = [trace_id, span_id, "1" if sampled else "0", *([parent_id] if parent_id else [])]
        carrier["b3"] = "-".join(fields)


def _inject_jaeger(carrier: MutableMapping[str, str]) -> None:
    """``uber-trace-id: trace:span:parent:flags`` as Kong writes it (the SDK's
    JaegerPropagator also sets the debug flag on every sampled trace)."""
    ids = _ids(trace.get_current_span())
    if ids is not None:
        trace_id, span_id, parent_id, sampled = ids
        carrier["uber-trace-id"] = f"{trace_id}:{span_id}:{parent_id or '0'}:" \
                                   f"{'01' if sampled else '00'}"


#: Each format read from a client, and its SDK propagator.
_EXTRACTORS: dict[str, TextMapPropagator] = {
    "b3": B3MultiFormat(), "w3c": TraceContextTextMapPropagator(), "jaeger": JaegerPropagator(),
}
#: Each format written, and what writes it into a header mapping.
_INJECTORS: dict[str, Callable[[MutableMapping[str, str]], None]] = {
    "b3": _EXTRACTORS["b3"].inject, "b3-single": _inject_b3_single,
    "w3c": _EXTRACTORS["w3c"].inject, "jaeger": _inject_jaeger,
}


@dataclass(frozen=True)
class Propagation:
    """Kong's ``propagation`` record: formats read from the client (``extract``, first
    found wins; empty: a new trace), headers removed before the upstream (``clear``),
    formats written upstream and to third parties (``inject``; ``preserve``: the one
    extracted, else ``default_format``; empty: none)."""

    extract: tuple[str, ...] = FORMATS
    inject: tuple[str, ...] = ("preserve",)
    clear: tuple[str, ...] = ()
    default_format: str = "w3c"


@dataclass(frozen=True)
class TracingConfig:
    """Where spans go and how requests are traced. None fields: the OTEL_* variables
    (read by the SDK itself) or the SDK's defaults."""

    #: The OTLP/HTTP traces URL (``.../v1/traces``); None: OTEL_EXPORTER_OTLP_*ENDPOINT.
    endpoint: str | None = None
    #: Headers of every export (a collector's token); None: OTEL_EXPORTER_OTLP_HEADERS.
    headers: Mapping[str, str] | None = None
    #: Resource attributes over OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME.
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    #: Share of new traces sampled; None: OTEL_TRACES_SAMPLER(_ARG) (SDK default: all).
    sampling_rate: float | None = None
    propagation: Propagation = Propagation()
    #: Response header carrying the trace id (Kong's http_response_header_for_traceid).
    response_header: str | None = None
    #: Spans per export, seconds between exports, spans queued at most, seconds per export
    #: (None: OTEL_BSP_* and OTEL_EXPORTER_OTLP_TIMEOUT, else the SDK's 512, 5 s, 2048, 10 s).
    max_batch_size: int | None = None
    schedule_delay: float | None = None
    max_queue_size: int | None = None
    export_timeout: float | None = None


def env_config(environ: Mapping[str, str], trust_incoming: bool) -> TracingConfig | None:
    """The configuration of the standard OTEL_* variables, or None when they turn nothing on
    (no OTLP endpoint, OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none). An untrusted
    client's trace context is not read (``extract`` empty): each request starts a trace."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if not (endpoint or base):
        return None
    return TracingConfig(endpoint=endpoint or base.rstrip("/") + "/v1/traces",
                         propagation=Propagation(extract=FORMATS if trust_incoming else ()))


class _EnvironGetter(Getter[Mapping[str, Any]]):
    """Reads request headers from a WSGI environ (``traceparent`` -> HTTP_TRACEPARENT)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


_ENVIRON = _EnvironGetter()


class QuietExporter(SpanExporter):
    """The OTLP exporter, its failures told once every WARN_EVERY seconds (the SDK's own
    log lines are silenced: a collector that is down would log on every batch)."""

    def __init__(self, exporter: SpanExporter, endpoint: str) -> None:
        self.exporter = exporter
        self.endpoint = endpoint
        self._warned_at = float("-inf")
        #: Spans dropped since the last warning.
        self.dropped = 0

    def export(self, spans: Any) -> SpanExportResult:
        try:
            result = self.exporter.export(spans)
        except Exception as exc:  # the exporter should not raise; never let it kill the thread
            result, reason = SpanExportResult.FAILURE, str(exc)
        else:
            reason = "export failed"
        if result is not SpanExportResult.SUCCESS:
            self.dropped += len(spans)
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                log.warning("tracing: %d span(s) dropped, the collector at %s did not take "
                            "them (%s)", self.dropped, self.endpoint, reason)
                self.dropped = 0
        return result

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


@dataclass
class RequestTrace:
    """The server span of one request, and the context token to detach at its end."""

    span: Span
    token: object
    #: The format the client's trace context came in (None: a new trace).
    extracted: str | None

    @property
    def trace_id(self) -> str:
        """The trace id in hex (32 digits), as in traceparent."""
        return trace.format_trace_id(self.span.get_span_context().trace_id)


class Tracing:
    """The worker's tracer and the per-request hooks the app and the call sites use."""

    def __init__(self, config: TracingConfig) -> None:
        self.config = config
        self._tracer: trace.Tracer | None = None
        self.provider: TracerProvider | None = None
        #: Header names (lower case) removed from the upstream request after extraction.
        self.clear = tuple(h.lower() for h in config.propagation.clear)

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer, its provider built on first use (in the worker, after the fork)."""
        if self._tracer is None:
            self.provider = provider(self.config)
            self._tracer = self.provider.get_tracer("gateway", gateway.__version__)
        return self._tracer

    # -- the request's server span

    def start_request(self, environ: Mapping[str, Any], request_id: str,
                      upstream_headers: Any) -> RequestTrace:
        """The server span of a request, made current; its trace context read from the
        client when trusted, its trace headers cleared from ``upstream_headers`` as asked."""
        parent, extracted = self._extract(environ)
        writes = self._writes(extracted, extracted == "b3" and "HTTP_B3" in environ)
        scheme = environ.get("wsgi.url_scheme", "http")
        attributes = {
            "http.request.method": environ.get("REQUEST_METHOD", ""),
            "url.path": environ.get("PATH_INFO", ""),
            "url.scheme": scheme,
            "server.address": environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""),
            "network.peer.address": environ.get("REMOTE_ADDR", ""),
            "network.protocol.version": environ.get("SERVER_PROTOCOL", "HTTP/1.1")[5:],
            "user_agent.original": environ.get("HTTP_USER_AGENT", ""),
            "kong.request.id": request_id,
        }
        span = self.tracer.start_span("kong", context=parent, kind=SpanKind.SERVER,
                                      attributes=attributes)
        current = otel_context.set_value(_WRITES, writes, trace.set_span_in_context(span))
        token = otel_context.attach(current)
        for name in self.clear:
            upstream_headers.remove(name)
        for written in writes:  # the client's headers of a format we write are replaced
            for name in FORMAT_HEADERS[written]:
                upstream_headers.remove(name)
        return RequestTrace(span, token, extracted)

    def _writes(self, extracted: str | None, single: bool) -> tuple[str, ...]:
        """The formats ``inject`` writes for a request whose context came in ``extracted``
        (``single``: b3's one-header form), Kong's ``preserve`` resolved."""
        propagation, writes = self.config.propagation, []
        for name in propagation.inject:
            if name == "preserve":
                name = extracted or propagation.default_format
                if name == "b3" and single:
                    name = "b3-single"
            if name not in writes:
                writes.append(name)
        return tuple(writes)

    def _extract(self, environ: Mapping[str, Any]) -> tuple[Context | None, str | None]:
        """The client's trace context, in the first of ``extract``'s formats found."""
        for name in self.config.propagation.extract:
            if any(key in environ for key in _SENT[name]):
                found = _EXTRACTORS[name].extract(environ, getter=_ENVIRON)
                if trace.get_current_span(found).get_span_context().is_valid:
                    return found, name
        return None, None

    @staticmethod
    def end_request(current: RequestTrace, status: int | None, route: str | None,
                    service: str | None, consumer: Any) -> None:
        """The server span's last attributes, its end, and the context as before."""
        span = current.span
        if span.is_recording():
            span.set_attribute("http.response.status_code", status or 0)
            if route:
                span.set_attribute("kong.route.name", route)
            if service:
                span.set_attribute("kong.service.name", service)
            if consumer is not None:
                span.set_attribute("user.name", consumer.username)
                span.set_attribute("user.id", consumer.id)
            if status is not None and status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        span.end()
        otel_context.detach(current.token)

    # -- children

    def span(self, name: str, kind: SpanKind = SpanKind.INTERNAL,
             attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[Span]:
        """A child of the current span, current while the block runs; an exception
        records itself on it, marks it as failed and goes on."""
        return self.tracer.start_as_current_span(name, kind=kind, attributes=attributes)

    def service_call(self, service: str, method: str, url: str,
                     headers: MutableMapping[str, str], call: Callable[[], Any]) -> Any:
        """``call()`` (a third-party call with ``headers``) in a client span
        ``kong.internal.request`` (Kong's name for its HTTP client's calls), the trace
        context injected into ``headers``."""
        parts = urlsplit(url)
        with self.span("kong.internal.request", SpanKind.CLIENT, {
                "http.request.method": method, "url.full": _without_query(parts),
                "server.address": parts.hostname or "", "peer.service": service}) as span:
            self.inject(headers)
            answer = call()
            span.set_attribute("http.response.status_code", answer.status)
            return answer

    @contextmanager
    def redis_call(self, operation: str) -> Iterator[None]:
        """A Redis command's client span."""
        with self.span(f"redis {operation}", SpanKind.CLIENT,
                       {"db.system.name": "redis", "db.operation.name": operation}):
            yield

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Write the current span's trace context into outgoing ``headers`` in each format
        the request's ``inject`` resolved to (outside a request: ``preserve`` is the
        default format)."""
        writes = otel_context.get_value(_WRITES)
        for name in writes if writes is not None else self._writes(None, False):
            _INJECTORS[name](headers)


def _without_query(parts: SplitResult) -> str:
    """A URL without its query string and credentials (keys travel there)."""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def provider(config: TracingConfig) -> TracerProvider:
    """A TracerProvider exporting over OTLP/HTTP in batches, as ``config`` says."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The SDK's own lines would repeat on every failed batch; QuietExporter tells them.
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
    exporter = OTLPSpanExporter(endpoint=config.endpoint, headers=config.headers,
                                timeout=config.export_timeout)
    processor = BatchSpanProcessor(
        QuietExporter(exporter, exporter._endpoint),
        max_queue_size=config.max_queue_size,
        schedule_delay_millis=_millis(config.schedule_delay),
        max_export_batch_size=config.max_batch_size,
        export_timeout_millis=_millis(config.export_timeout))
    sampler = None
    if config.sampling_rate is not None:  # Kong's: a client's "not sampled" holds, else the rate
        ratio = KongRatioSampler(config.sampling_rate)
        sampler = ParentBased(ratio, remote_parent_sampled=ratio)
    result = TracerProvider(resource=resource(config.resource_attributes), sampler=sampler)
    result.add_span_processor(processor)
    return result


class KongRatioSampler(TraceIdRatioBased):
    """The SDK's ratio sampler on the bits Kong's reads, so that Kong and the gateway keep
    and drop the same traces at one rate: Kong's sampler (kong/pdk/tracing.lua) casts the
    trace id's first 8 bytes to a uint64 (little-endian on the machines Kong runs on),
    the SDK takes its low 64 bits; both sample below ``rate * 2**64``."""

    def should_sample(self, parent_context: Any, trace_id: int, *args: Any,
                      **kwargs: Any) -> SamplingResult:
        first_bytes = (trace_id >> 64).to_bytes(8, "big")
        return super().should_sample(parent_context, int.from_bytes(first_bytes, "little"),
                                     *args, **kwargs)

    def get_description(self) -> str:
        return f"KongRatioSampler{{{self.rate}}}"


def _millis(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def resource(attributes: Mapping[str, str]) -> Resource:
    """The resource: ``attributes`` over OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over
    Kong's defaults (service.name ``kong``, service.version; the SDK adds an instance id)."""
    given = Resource({"service.version": gateway.__version__}).merge(
        Resource.create(dict(attributes)))
    if str(given.attributes.get("service.name")).startswith("unknown_service"):
        given = given.merge(Resource({"service.name": SERVICE_NAME}))  # the SDK's placeholder
    return given


def capture() -> Context | None:
    """The current trace context when tracing is on (for a greenlet about to start)."""
    return otel_context.get_current() if ACTIVE is not None else None


def restore(parent: Context | None) -> None:
    """Make ``parent`` (from :func:`capture`) current in a new greenlet."""
    if parent is not None:
        otel_context.attach(parent)
