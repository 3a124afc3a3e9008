"""Tracing under a real gunicorn gevent worker: spans exported over OTLP/HTTP to a real
receiver, the span tree across gateway -> upstream (httpbin) -> third party (a
request-callout to httpbin), Redis spans (rate-limiting on Redis), trace context into
httpbin's /headers, trusted and untrusted incoming traceparent, the trace id in the
access log and a response header, and a collector that is down.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from tests.support.net import call
from tests.support.otlp import OtlpReceiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SERVER, CLIENT = 2, 3  # OTLP span kinds


@pytest.fixture(scope="module")
def collector():
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


def kong_file(httpbin: str, redis_url: str, endpoint: str) -> str:
    host, port = redis_url.removeprefix("redis://").rsplit("/", 1)[0].split(":")
    callout = {"callouts": [{"name": "who", "request": {"url": httpbin + "/anything"},
                             "response": {"body": {"decode": True}}}],
               "upstream": {"headers": {"custom": {
                   "X-Callout-Traceparent": "$(callouts.who.response.body.headers.Traceparent)"}}}}
    return yaml.safe_dump({"_format_version": "3.0", "services": [{
        "name": "bin", "url": httpbin,
        "routes": [
            {"name": "called", "paths": ["/called"], "strip_path": True,
             "plugins": [{"name": "request-callout", "config": callout}]},
            {"name": "limited", "paths": ["/limited"], "strip_path": True,
             "plugins": [{"name": "rate-limiting", "config": {
                 "minute": 1000, "policy": "redis",
                 "redis": {"host": host, "port": int(port)}}}]},
            {"name": "plain", "paths": ["/"]}]}],
        "plugins": [{"name": "opentelemetry", "config": {
            "traces_endpoint": endpoint, "queue": {"max_coalescing_delay": 0.1},
            "http_response_header_for_traceid": "X-Trace-Id",
            "resource_attributes": {"service.name": "edge"}}}]})


@pytest.fixture
def gw(gateway, httpbin, redis_url, collector):
    return gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING":
                    kong_file(httpbin, redis_url, collector.endpoint)})


def _traceparent(echo: dict, name: str = "Traceparent") -> tuple[str, str]:
    found = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-0[0-3]", echo["headers"][name])
    assert found, echo["headers"]
    return found.group(1), found.group(2)


def test_span_tree_across_gateway_upstream_and_third_party(gw, collector):
    response, body = call(gw.url, target="/called/headers")
    assert response.status == 200
    echo = json.loads(body)
    trace_id = response.getheader("X-Trace-Id")
    upstream_trace, upstream_parent = _traceparent(echo)
    third_trace, third_parent = _traceparent(echo, "X-Callout-Traceparent")
    assert trace_id == upstream_trace == third_trace
    names = {"kong", "kong.router", "kong.access.plugin.request-callout", "kong.balancer",
             "kong.internal.request"}
    spans = {s.name: s for s in collector.trace(trace_id, names)}
    root = spans["kong"]
    assert root.parent_id == "" and root.kind == SERVER
    for child in ("kong.router", "kong.access.plugin.request-callout", "kong.balancer"):
        assert spans[child].parent_id == root.span_id, child
    internal = spans["kong.internal.request"]
    assert internal.parent_id == spans["kong.access.plugin.request-callout"].span_id
    assert internal.kind == CLIENT and spans["kong.balancer"].kind == CLIENT
    # Each callee's traceparent names the span that called it.
    assert upstream_parent == spans["kong.balancer"].span_id
    assert third_parent == internal.span_id
    assert root.start <= spans["kong.balancer"].start <= spans["kong.balancer"].end <= root.end


def test_attributes(gw, collector):
    response, _ = call(gw.url, target="/called/status/503", headers={"User-Agent": "t/1"})
    assert response.status == 503
    trace_id = response.getheader("X-Trace-Id")
    spans = {s.name: s for s in collector.trace(trace_id, {"kong", "kong.balancer",
                                                           "kong.internal.request"})}
    root = spans["kong"].attributes
    assert root["http.request.method"] == "GET"
    assert root["url.path"] == "/called/status/503"
    assert root["url.scheme"] == "http"
    assert root["http.response.status_code"] == 503
    assert root["network.peer.address"] == "127.0.0.1"
    assert root["user_agent.original"] == "t/1"
    assert root["kong.route.name"] == "called" and root["kong.service.name"] == "bin"
    assert re.fullmatch(r"[0-9a-f-]{36}", root["kong.request.id"])
    assert spans["kong"].status == 2  # ERROR: a 5xx
    assert spans["kong"].resource["service.name"] == "edge"
    upstream = spans["kong.balancer"].attributes
    assert upstream["server.address"] == "127.0.0.1" and upstream["server.port"] > 0
    assert upstream["http.response.status_code"] == 503
    assert upstream["url.full"].endswith("/status/503")
    third = spans["kong.internal.request"].attributes
    assert third["http.response.status_code"] == 200 and third["url.full"].endswith("/anything")


def test_redis_calls_are_spans(gw, collector):
    response, _ = call(gw.url, target="/limited/get")
    assert response.status == 200
    trace_id = response.getheader("X-Trace-Id")
    spans = {s.name: s for s in collector.trace(
        trace_id, {"kong.access.plugin.rate-limiting", "redis EVALSHA"})}
    redis_span = spans["redis EVALSHA"]
    assert redis_span.parent_id == spans["kong.access.plugin.rate-limiting"].span_id
    assert redis_span.attributes["db.system.name"] == "redis"


def test_trusted_incoming_traceparent_continues_the_trace(gw, collector):
    """The plugin's default propagation (Kong's: extract, inject preserve) trusts it."""
    response, body = call(gw.url, target="/headers", headers={
        "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "tracestate": "vendor=x"})
    echo = json.loads(body)
    assert _traceparent(echo)[0] == TRACE_ID == response.getheader("X-Trace-Id")
    assert echo["headers"]["Tracestate"] == "vendor=x"
    root, = [s for s in collector.trace(TRACE_ID, {"kong"}) if s.name == "kong"]
    assert root.parent_id == PARENT_ID


def test_access_log_line_has_the_trace_id(gw):
    response, _ = call(gw.url, target="/get")
    trace_id = response.getheader("X-Trace-Id")
    deadline = time.monotonic() + 5
    while trace_id not in gw.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    line, = [json.loads(x) for x in gw.logs().splitlines() if trace_id in x]
    assert line["type"] == "access" and line["trace_id"] == trace_id


@pytest.mark.parametrize("trusted", [False, True])
def test_otel_variables_and_untrusted_traceparent(gateway, httpbin, collector, trusted):
    """Tracing by the OTEL_* variables alone; GATEWAY_TRACING_TRUST_INCOMING decides
    whether a client's traceparent continues (else a new trace, its tracestate dropped)."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": httpbin,
                  "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint.removesuffix("/v1/traces"),
                  "OTEL_SERVICE_NAME": "from-env", "OTEL_BSP_SCHEDULE_DELAY": "100",
                  "GATEWAY_TRACING_TRUST_INCOMING": str(trusted).lower()})
    client_trace = f"{int(trusted)}" * 32
    _, body = call(gw.url, target="/headers", headers={
        "traceparent": f"00-{client_trace}-{PARENT_ID}-01", "tracestate": "vendor=x"})
    echo = json.loads(body)
    trace_id, _ = _traceparent(echo)
    assert (trace_id == client_trace) is trusted
    assert ("Tracestate" in echo["headers"]) is trusted
    root, = [s for s in collector.trace(trace_id, {"kong"}) if s.name == "kong"]
    assert root.resource["service.name"] == "from-env"
    assert root.parent_id == (PARENT_ID if trusted else "")


def test_collector_down_never_slows_a_request(gateway, httpbin):
    """Spans to a port nobody listens on (the plugin's timeouts: each export gives up after
    0.5 s): requests as fast as without tracing, one warning for the whole run."""
    down = OtlpReceiver()
    down.stop()  # the port is free again: connections are refused
    plain = gateway({"GATEWAY_UPSTREAM_URL": httpbin})
    traced = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": yaml.safe_dump({
        "_format_version": "3.0",
        "services": [{"name": "bin", "url": httpbin, "routes": [{"paths": ["/"]}]}],
        "plugins": [{"name": "opentelemetry", "config": {
            "traces_endpoint": down.endpoint, "queue": {"max_coalescing_delay": 0.05},
            "connect_timeout": 200, "send_timeout": 200, "read_timeout": 500}}]})},
        fresh=True)

    def slowest(gw) -> float:
        times = []
        for _ in range(40):
            started = time.perf_counter()
            response, _ = call(gw.url, target="/get")
            times.append(time.perf_counter() - started)
            assert response.status == 200
            time.sleep(0.02)
        return sorted(times)[-3]

    slowest(plain), slowest(traced)  # warm both
    assert slowest(traced) < max(0.25, 3 * slowest(plain))
    time.sleep(1.5)  # the exports under way give up
    warnings = [x for x in traced.logs().splitlines() if "span(s) dropped" in x]
    assert len(warnings) == 1, warnings
