"""opentelemetry: Kong's plugin of that name, its config mapped onto the worker's tracing.

Tracing is worker-wide here (one TracerProvider, one exporter, the server span
starts before routing), so the plugin is accepted only as a global plugin; its
config (traces_endpoint, headers, resource_attributes, sampling_rate, propagation,
queue, timeouts) configures :mod:`gateway.ops.tracing` in place of the OTEL_*
variables. What the filter itself does per request is Kong's header_filter: the
trace id in ``http_response_header_for_traceid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from gateway import schema as s
from gateway.config import Settings, setting
from gateway.filters.base import Filter
from gateway.ops.tracing import FORMATS, WRITTEN, Propagation, TracingConfig
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_header_name
from gateway.schema import Invalid

#: Kong's trace-context formats (kong/observability/tracing/propagation/utils.lua).
KONG_FORMATS = ("w3c", "b3", "b3-single", "jaeger", "ot", "datadog", "aws", "gcp", "instana")
#: Kong's timeouts' bounds (typedefs.timeout), in milliseconds.
_TIMEOUT = s.integer(0, 2**31 - 2)
_UNSUPPORTED = "not supported by this gateway"


def _format(extracting: bool) -> s.Check:
    """One of Kong's formats; those this gateway reads (extract) or writes, the others
    refused as not supported."""
    known = [f for f in KONG_FORMATS if not (extracting and f == "b3-single")]
    if not extracting:
        known.insert(0, "preserve")
    check = s.one_of(*known)
    supported = FORMATS if extracting else ("preserve", *WRITTEN)

    def checked(value: Any, path: str) -> str:
        name = check(value, path)
        if name not in supported:
            raise Invalid(path, f"format {name!r} is {_UNSUPPORTED} (only "
                                f"{', '.join(supported)})")
        return name

    return checked


def _header(value: Any, path: str) -> str:
    name = s.string(value, path)
    if not is_header_name(name):
        raise Invalid(path, "bad header name")
    return name


def _url(value: Any, path: str) -> str:
    url = s.string(value, path)
    if not url.startswith(("http://", "https://")):
        raise Invalid(path, "expected an http:// or https:// URL")
    return url


def _strings(value: Any, path: str) -> dict[str, str]:
    """A map of non-empty strings (resource_attributes, headers); Kong's $(...) templates,
    evaluated per request there, are refused (the resource is the worker's here)."""
    checked = s.mapping(value, path)
    for key, item in checked.items():
        if item == "":
            raise Invalid(f"{path}.{key}", "length must be at least 1")  # Kong's words
        s.string(item, f"{path}.{key}")
        if "$(" in item:
            raise Invalid(f"{path}.{key}", f"a $(...) template is {_UNSUPPORTED}")
    return checked


def _no_logs(value: Any, path: str) -> None:
    raise Invalid(path, f"is {_UNSUPPORTED} (traces only: traces_endpoint)")


def _rate(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise Invalid(path, "value should be between 0 and 1")
    return float(value)


PROPAGATION: s.Fields = {
    "extract": (s.array(_format(True)), None),
    "inject": (s.array(_format(False)), None),
    "clear": (s.array(_header), None),
    "default_format": (_format(False), "w3c"),
}


def _propagation(conf: dict[str, Any] | None, path: str) -> Propagation:
    """Kong's propagation record; all of extract/inject/clear unset is Kong's
    header_type "preserve": extract every format (b3, w3c, jaeger here), inject the one found."""
    given = s.record(conf or {}, path, PROPAGATION)
    if given["default_format"] == "preserve":
        raise Invalid(f"{path}.default_format", "expected one of: " + ", ".join(KONG_FORMATS))
    if given["extract"] is None and given["inject"] is None and given["clear"] is None:
        return Propagation(default_format=given["default_format"])
    return Propagation(given["extract"] or (), given["inject"] or (), given["clear"] or (),
                       given["default_format"])


def tracing_config(config: Any, path: str = "config") -> TracingConfig:
    """The tracing of Kong's opentelemetry ``config`` record; Invalid naming every field."""
    conf = s.record(config, path, {
        "traces_endpoint": (_url, None), "endpoint": (_url, None),
        "logs_endpoint": (_no_logs, None),
        "headers": (_strings, None), "resource_attributes": (_strings, None),
        "queue": (s.mapping, None), "batch_span_count": (s.integer(1, 1000000), None),
        "batch_flush_delay": (s.integer(0, 3600), None),
        "connect_timeout": (_TIMEOUT, 1000), "send_timeout": (_TIMEOUT, 5000),
        "read_timeout": (_TIMEOUT, 5000),
        "http_response_header_for_traceid": (_header, None),
        "header_type": (s.fixed("preserve", f"is {_UNSUPPORTED}; use propagation"), None),
        "sampling_rate": (_rate, None), "propagation": (s.mapping, None),
    })
    endpoint = conf["traces_endpoint"] or conf["endpoint"]
    if endpoint is None:
        raise Invalid(f"{path}.traces_endpoint", "required field missing")
    batch_size = (s.QUEUE_FIELDS["max_batch_size"][0], 200)  # the plugin's own default
    queue = s.record(conf["queue"] or {}, f"{path}.queue",
                     {**s.QUEUE_FIELDS, "max_batch_size": batch_size})
    for name in ("max_bytes", "max_retry_time", "initial_retry_delay", "max_retry_delay",
                 "concurrency_limit"):
        if queue[name] != s.QUEUE_FIELDS[name][1]:
            raise Invalid(f"{path}.queue.{name}", f"is {_UNSUPPORTED} (only the default, "
                                                  f"{s.QUEUE_FIELDS[name][1]!r})")
    batch = conf["batch_span_count"] if queue["max_batch_size"] == 200 else None
    delay = conf["batch_flush_delay"] if queue["max_coalescing_delay"] == 1 else None
    timeouts = (conf["connect_timeout"], conf["send_timeout"], conf["read_timeout"])
    return TracingConfig(
        endpoint=endpoint, headers=conf["headers"] or {},
        resource_attributes=conf["resource_attributes"] or {},
        sampling_rate=conf["sampling_rate"],
        propagation=_propagation(conf["propagation"], f"{path}.propagation"),
        response_header=conf["http_response_header_for_traceid"],
        max_batch_size=min(batch or queue["max_batch_size"], queue["max_entries"]),
        schedule_delay=float(delay if delay is not None else queue["max_coalescing_delay"]),
        max_queue_size=queue["max_entries"],
        export_timeout=max(timeouts) / 1000 or None)


def _config_text(raw: str) -> TracingConfig:
    """GATEWAY_OPENTELEMETRY_CONFIG: the record as YAML or JSON; ValueError saying why not."""
    try:
        return tracing_config(yaml.safe_load(raw))
    except yaml.YAMLError:
        raise ValueError("not YAML or JSON") from None
    except Invalid as exc:
        raise ValueError("; ".join(exc.problems)) from None


@dataclass(frozen=True)
class OpenTelemetryConfig:
    tracing: TracingConfig = setting(
        "GATEWAY_OPENTELEMETRY_CONFIG", _config_text, None,
        "opentelemetry: Kong's opentelemetry `config` record as YAML or JSON "
        "(traces_endpoint, headers, sampling_rate, propagation...), in place of the OTEL_* "
        "variables; see docs/tracing.md.", required=True, secret=True)


class OpenTelemetry(Filter):
    """Sets the trace id on the response (Kong's header_filter); the tracing itself is the
    worker's (:mod:`gateway.ops.tracing`), configured from this plugin's config."""

    NAME = "opentelemetry"
    PRIORITY = 14
    VERSION = "1.0.0"
    Config = OpenTelemetryConfig

    def __init__(self, config: OpenTelemetryConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.header = config.tracing.response_header

    def on_response(self, ex: Exchange) -> None:
        if self.header is not None and ex.trace is not None:
            ex.headers.set(self.header, ex.trace.trace_id)
