"""Kong's opentelemetry specs (spec/03-plugins/37-opentelemetry/02-schema_spec.lua,
03-propagation_spec.lua, 04-exporter_spec.lua), the cases that apply, through a
declarative file with a global plugin, httpbin's /anything as the mock upstream and a
real OTLP/HTTP receiver as the collector.

Skipped, and why:

| spec case | why |
|---|---|
| ot, datadog, aws, gcp, instana | b3, b3-single, w3c and jaeger only (others refused) |
| b3-single's parent on an unsampled request | left out: the SDK records no such parent |
| header_type other than preserve (old config) | deprecated; refused, use propagation |
| "accepts variable values" ($(headers.host)) | refused: the resource is per worker |
| 01-otlp_spec, 07-utils_spec | the SDK's encoder; Kong's Lua helpers |
| exports valid logs (with, without tracing) | logs_endpoint not supported |
| those ids at kong.conf's tracing_sampling_rate | no kong.conf: OTEL_TRACES_SAMPLER is the SDK's |
| #scoping for route/service | refused: tracing is worker-wide, global plugin only |
| #race, #referenceable, 05-otelcol, 06-regression | Kong's queue, vaults, a collector |
| instrumentations "off" | every instrumentation is on with tracing |
"""

from __future__ import annotations

import re

import pytest

from gateway.config import ConfigError
from gateway.ops import tracing
from tests.kong.plugin_kit import kong_client, seen, send
from tests.support.otlp import OtlpReceiver

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
AT = "plugins[opentelemetry].config."


@pytest.fixture(autouse=True)
def _tracing_off_after():
    """The app of each case turns the worker's tracing on: off again for later tests."""
    yield
    tracing.ACTIVE = None


@pytest.fixture(scope="module")
def collector():
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


def kong_yml(upstream: str, config: str) -> str:
    return f"""
_format_version: "3.0"
services:
- name: mock
  url: {upstream}/anything
  routes: [{{name: r1, hosts: [otel.test]}}]
plugins:
- name: opentelemetry
  config: {config}
"""


def client(httpbin: str, collector: OtlpReceiver, extra: str = ""):
    config = f"{{traces_endpoint: '{collector.endpoint}', queue: {{max_coalescing_delay: 0.1}}"
    return kong_client(kong_yml(httpbin, config + (", " + extra if extra else "") + "}"))


def traceparent(response) -> tuple[str, str, str]:
    found = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})",
                         seen(response)["headers"]["traceparent"])
    assert found, seen(response)["headers"]["traceparent"]
    return found.group(1), found.group(2), found.group(3)


def sampled(flags: str) -> bool:
    return bool(int(flags, 16) & 1)


@pytest.mark.parametrize("rate", [1, 0])
def test_default_propagation_headers_w3c(httpbin, collector, rate):
    gw = client(httpbin, collector, f"sampling_rate: {rate}")
    trace_id, _, flags = traceparent(send(gw, "GET", "/", "otel.test"))
    assert len(trace_id) == 32
    assert sampled(flags) is (rate == 1)


@pytest.mark.parametrize("rate", [1, 0])
def test_propagates_w3c_tracing_headers(httpbin, collector, rate):
    gw = client(httpbin, collector, f"sampling_rate: {rate}")
    response = send(gw, "GET", "/", "otel.test",
                    {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    trace_id, span_id, flags = traceparent(response)
    assert trace_id == TRACE_ID and span_id != PARENT_ID
    assert sampled(flags) is (rate == 1)


def test_ignores_incoming_trace_with_empty_extract(httpbin, collector):
    """Kong's header_type "ignore" / extract {}: a new trace, a traceparent all the same."""
    gw = client(httpbin, collector, "propagation: {extract: [], inject: [preserve]}")
    response = send(gw, "GET", "/", "otel.test",
                    {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert traceparent(response)[0] != TRACE_ID


def test_preserve_plus_w3c(httpbin, collector):
    """header_type "w3c" (inject preserve and w3c): one traceparent, the client's trace."""
    gw = client(httpbin, collector,
                "propagation: {extract: [w3c], inject: [preserve, w3c], default_format: w3c}")
    response = send(gw, "GET", "/", "otel.test",
                    {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert traceparent(response)[0] == TRACE_ID


def test_reflects_the_disabled_sampled_flag_of_the_incoming_header(httpbin, collector):
    gw = client(httpbin, collector, "sampling_rate: 1")
    response = send(gw, "GET", "/", "otel.test",
                    {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    trace_id, _, flags = traceparent(response)
    assert trace_id == TRACE_ID and not sampled(flags)


def test_clears_headers_when_configured(httpbin, collector):
    gw = client(httpbin, collector, "propagation: {extract: [w3c], inject: [preserve], "
                                    "clear: [ot-tracer-traceid, ot-tracer-spanid]}")
    response = send(gw, "GET", "/", "otel.test", {
        "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
        "ot-tracer-traceid": TRACE_ID, "ot-tracer-spanid": PARENT_ID})
    headers = seen(response)["headers"]
    assert traceparent(response)[0] == TRACE_ID
    assert "ot-tracer-traceid" not in headers and "ot-tracer-spanid" not in headers


def test_no_inject_passes_the_client_headers_unchanged(httpbin, collector):
    gw = client(httpbin, collector, "propagation: {extract: [w3c], inject: []}")
    sent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    response = send(gw, "GET", "/", "otel.test", {"traceparent": sent})
    assert seen(response)["headers"]["traceparent"] == sent


SPAN_ID = "a3ce929d0e0e4736"
#: Kong's "every format" extraction order, as in the spec's routes.
EVERY = "[b3, w3c, jaeger]"


def test_propagates_tracing_headers_b3_request(httpbin, collector):
    gw = client(httpbin, collector)
    response = send(gw, "GET", "/", "otel.test",
                    {"x-b3-sampled": "1", "x-b3-traceid": TRACE_ID, "x-b3-spanid": SPAN_ID})
    headers = seen(response)["headers"]
    assert headers["x-b3-traceid"] == TRACE_ID
    assert headers["x-b3-spanid"] != SPAN_ID  # the gateway's span, child of the client's
    assert headers["x-b3-sampled"] == "1"
    assert "traceparent" not in headers  # preserve: the format the client used


@pytest.mark.parametrize("rate", [1, 0])
def test_propagates_b3_single_with_parent_id(httpbin, collector, rate):
    gw = client(httpbin, collector, f"sampling_rate: {rate}")
    response = send(gw, "GET", "/", "otel.test",
                    {"b3": f"{TRACE_ID}-{SPAN_ID}-1-{PARENT_ID}"})
    written = seen(response)["headers"]["b3"]
    if rate == 1:
        assert re.fullmatch(TRACE_ID + r"-[0-9a-f]{16}-1-[0-9a-f]{16}", written)
    else:  # the rate decides, the client's flag aside (Kong's); no parent field here
        assert re.fullmatch(TRACE_ID + r"-[0-9a-f]{16}-0", written)


def test_propagates_b3_single_without_parent_id(httpbin, collector):
    gw = client(httpbin, collector)
    response = send(gw, "GET", "/", "otel.test", {"b3": f"{TRACE_ID}-{SPAN_ID}-1"})
    assert re.match(TRACE_ID + r"-[0-9a-f]{16}-1", seen(response)["headers"]["b3"])


def test_b3_single_reflects_the_disabled_sampled_flag(httpbin, collector):
    gw = client(httpbin, collector)
    response = send(gw, "GET", "/", "otel.test", {"b3": f"{TRACE_ID}-{SPAN_ID}-0"})
    assert re.match(TRACE_ID + r"-[0-9a-f]{16}-0", seen(response)["headers"]["b3"])


def test_ignore_defaults_to_w3c_when_b3_headers_are_sent(httpbin, collector):
    gw = client(httpbin, collector, "propagation: {extract: [], inject: [preserve]}")
    response = send(gw, "GET", "/", "otel.test",
                    {"x-b3-sampled": "1", "x-b3-traceid": TRACE_ID, "x-b3-spanid": SPAN_ID})
    assert traceparent(response)[0] != TRACE_ID


def test_b3_single_when_header_type_is_b3_single(httpbin, collector):
    """header_type "b3-single": extract every format, inject preserve and b3-single."""
    gw = client(httpbin, collector, f"propagation: {{extract: {EVERY}, "
                                    "inject: [preserve, b3-single], default_format: w3c}")
    sent = f"{TRACE_ID}-{SPAN_ID}-1-{PARENT_ID}"
    response = send(gw, "GET", "/", "otel.test", {"b3": sent})
    written = seen(response)["headers"]["b3"]
    assert written != sent
    assert re.fullmatch(TRACE_ID + r"-[0-9a-f]{16}-1-[0-9a-f]{16}", written)


def test_preserve_and_b3_single_on_a_w3c_request(httpbin, collector):
    gw = client(httpbin, collector, f"propagation: {{extract: {EVERY}, "
                                    "inject: [preserve, b3-single], default_format: w3c}")
    response = send(gw, "GET", "/", "otel.test",
                    {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    trace_id, span_id, _ = traceparent(response)
    assert trace_id == TRACE_ID
    assert seen(response)["headers"]["b3"].startswith(f"{TRACE_ID}-{span_id}-1-")


@pytest.mark.parametrize("rate", [1, 0])
def test_propagates_jaeger_tracing_headers(httpbin, collector, rate):
    gw = client(httpbin, collector, f"sampling_rate: {rate}")
    short = TRACE_ID[16:]  # a 64-bit id: left-padded with zeros when written
    response = send(gw, "GET", "/", "otel.test",
                    {"uber-trace-id": f"{short}:{SPAN_ID}:{PARENT_ID}:1"})
    flag = "01" if rate == 1 else "00"
    assert re.fullmatch("0" * 16 + short + r":[0-9a-f]{16}:[0-9a-f]+:" + flag,
                        seen(response)["headers"]["uber-trace-id"])


def test_does_not_preserve_the_incoming_format_unless_asked(httpbin, collector):
    """extract b3, inject w3c: the client's b3 passes unchanged, the trace goes on in w3c."""
    gw = client(httpbin, collector,
                "propagation: {extract: [b3], inject: [w3c], default_format: w3c}")
    sent = f"{TRACE_ID}-{SPAN_ID}-1-{PARENT_ID}"
    response = send(gw, "GET", "/", "otel.test", {"b3": sent})
    assert seen(response)["headers"]["b3"] == sent
    assert traceparent(response)[0] == TRACE_ID


def test_default_format_b3_on_a_request_without_context(httpbin, collector):
    gw = client(httpbin, collector,
                "propagation: {extract: [w3c], inject: [preserve], default_format: b3}")
    headers = seen(send(gw, "GET", "/", "otel.test"))["headers"]
    assert re.fullmatch("[0-9a-f]{32}", headers["x-b3-traceid"])
    assert "traceparent" not in headers


def test_the_spans_continue_a_b3_trace(httpbin, collector):
    gw = client(httpbin, collector)
    b3_trace = "b3" * 16  # this case's own: the collector keeps every case's spans
    send(gw, "GET", "/", "otel.test", {"b3": f"{b3_trace}-{SPAN_ID}-1"})
    server, = [s for s in collector.trace(b3_trace, {"kong"}) if s.name == "kong"]
    assert server.parent_id == SPAN_ID


def test_outgoing_parent_span_id_is_the_balancer_span(httpbin, collector):
    """Issue #11294: the upstream's traceparent names the exported span that called it."""
    gw = client(httpbin, collector)
    trace_id, span_id, _ = traceparent(send(gw, "GET", "/", "otel.test"))
    spans = {s.name: s for s in collector.trace(trace_id, {"kong", "kong.balancer"})}
    assert spans["kong.balancer"].span_id == span_id
    assert spans["kong.balancer"].parent_id == spans["kong"].span_id


def test_disables_sampling_when_the_incoming_header_says_not_sampled(httpbin, collector):
    gw = client(httpbin, collector)
    other = "1" * 32
    send(gw, "GET", "/", "otel.test", {"traceparent": f"00-{other}-{PARENT_ID}-00"})
    trace_id, _, _ = traceparent(send(gw, "GET", "/", "otel.test"))
    collector.trace(trace_id, {"kong"})  # the next request's spans arrived...
    assert not [s for s in collector.spans if s.trace_id == other]  # ...and none of these


SAMPLED_TRACE_ID = "92a54b3e1a7c4f2da9e44b8a6f3e1dab"  # always sampled at rate 0.5 (Kong's)
NON_SAMPLED_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"  # never sampled at rate 0.5


def test_sampling_rate_samples_the_trace_id_kong_samples(httpbin, collector):
    """04-exporter_spec, config.sampling_rate 0.5: a sampled parent's trace is kept or
    dropped by its id as Kong's sampler decides (the SDK's own reading of the id would
    drop both of these)."""
    gw = client(httpbin, collector, "sampling_rate: 0.5")
    response = send(gw, "GET", "/", "otel.test",
                    {"traceparent": f"00-{SAMPLED_TRACE_ID}-0123456789abcdef-01"})
    trace_id, _, flags = traceparent(response)
    assert trace_id == SAMPLED_TRACE_ID and sampled(flags)
    assert collector.trace(SAMPLED_TRACE_ID, {"kong"})


def test_sampling_rate_does_not_sample_the_trace_id_kong_does_not(httpbin, collector):
    gw = client(httpbin, collector, "sampling_rate: 0.5")
    response = send(gw, "GET", "/", "otel.test",
                    {"traceparent": f"00-{NON_SAMPLED_TRACE_ID}-0123456789abcdef-01"})
    trace_id, _, flags = traceparent(response)
    assert trace_id == NON_SAMPLED_TRACE_ID and not sampled(flags)
    send(gw, "GET", "/", "otel.test",  # a kept trace after it: when its spans are in...
         {"traceparent": f"00-{SAMPLED_TRACE_ID}-0123456789abcdef-01"})
    collector.trace(SAMPLED_TRACE_ID, {"kong"})
    assert not [s for s in collector.spans if s.trace_id == NON_SAMPLED_TRACE_ID]  # ...none


def test_exports_valid_traces_with_custom_headers_and_default_resource(httpbin, collector):
    gw = client(httpbin, collector, "headers: {X-Access-Token: token}")
    trace_id, _, _ = traceparent(send(gw, "GET", "/", "otel.test"))
    span, = [s for s in collector.trace(trace_id, {"kong"}) if s.name == "kong"]
    assert span.resource["service.name"] == "kong"
    assert "service.version" in span.resource and "service.instance.id" in span.resource
    assert any(h.get("x-access-token") == "token" and
               h.get("content-type") == "application/x-protobuf" for h in collector.headers)


def test_overwrite_resource_attributes(httpbin, collector):
    gw = client(httpbin, collector,
                "resource_attributes: {service.name: kong_oss, os.version: debian}")
    trace_id, _, _ = traceparent(send(gw, "GET", "/", "otel.test"))
    span = collector.trace(trace_id, {"kong"})[0]
    assert span.resource["service.name"] == "kong_oss"
    assert span.resource["os.version"] == "debian"


def test_http_response_header_for_traceid(httpbin, collector):
    gw = client(httpbin, collector, "http_response_header_for_traceid: X-Trace-Id")
    response = send(gw, "GET", "/", "otel.test")
    assert response.headers["X-Trace-Id"] == traceparent(response)[0]


@pytest.mark.parametrize(("config", "message"), [
    ("{endpoint: 'http://example.dev', resource_attributes: {foo: ''}}",
     AT + "resource_attributes.foo: length must be at least 1"),
    ("{endpoint: 'http://example.dev', resource_attributes: {foo: 1}}",
     AT + "resource_attributes.foo: expected a non-empty string"),
    ("{traces_endpoint: 'http://example.dev', resource_attributes: {foo: '$(headers.host)'}}",
     AT + "resource_attributes.foo: a $(...) template is not supported"),
    ("{sampling_rate: 0.5}", AT + "traces_endpoint: required field missing"),
    ("{traces_endpoint: 'http://x.dev', logs_endpoint: 'http://x.dev'}",
     AT + "logs_endpoint: is not supported by this gateway"),
    ("{traces_endpoint: 'http://x.dev', sampling_rate: 2}",
     AT + "sampling_rate: value should be between 0 and 1"),
    ("{traces_endpoint: 'http://x.dev', propagation: {extract: [ot]}}",
     AT + "propagation.extract[0]: format 'ot' is not supported by this gateway (only b3, "
          "w3c, jaeger)"),
    ("{traces_endpoint: 'http://x.dev', propagation: {inject: [datadog]}}",
     AT + "propagation.inject[0]: format 'datadog' is not supported by this gateway"),
    ("{traces_endpoint: 'http://x.dev', propagation: {extract: [b3-single]}}",
     AT + "propagation.extract[0]: expected one of"),
    ("{traces_endpoint: 'http://x.dev', propagation: {inject: [zipkin]}}",
     AT + "propagation.inject[0]: expected one of"),
    ("{traces_endpoint: 'http://x.dev', queue: {concurrency_limit: -1}}",
     AT + "queue.concurrency_limit: is not supported by this gateway"),
])
def test_schema(httpbin, config, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        kong_client(kong_yml(httpbin, config))


def test_a_route_scoped_plugin_is_refused(httpbin):
    yml = f"""
_format_version: "3.0"
services:
- name: mock
  url: {httpbin}/anything
  routes:
  - name: r1
    paths: [/]
    plugins: [{{name: opentelemetry, config: {{traces_endpoint: 'http://x.dev'}}}}]
"""
    with pytest.raises(ConfigError, match=re.escape(
            "services[mock].routes[r1].plugins[opentelemetry]: opentelemetry on a service, "
            "route or consumer is not supported by this gateway")):
        kong_client(yml)
