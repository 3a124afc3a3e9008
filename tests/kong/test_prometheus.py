"""Kong's spec/03-plugins/26-prometheus/02-access_spec.lua and 07-optional_fields_spec.lua
(Kong 3.10), translated case by case: the gateway in process (metrics in this process),
``/_gw/metrics`` parsed with prometheus_client's parser. Each case has its own service
name, since the process's counters outlive a test. tests/integration/test_logging_plugins.py
runs it under gunicorn with 2 workers.

Skipped cases and why (spec case: reason):

- gRPC, stream (TCP/TLS) cases, datastore_reachable, memory and timer gauges, AI and Wasm
  metrics: no gRPC, stream proxying, database, Lua VM or AI proxy here.
- upstream_target_health with DNS errors of targets resolving to several addresses: one
  address per target here; the states with and without health checks are tested (more in
  tests/kong/test_healthchecks.py).
- 01-api, 03-custom-serve, 04-status_api, 06-hybrid-mode: the metrics are on the gateway's
  own status path, not Kong's admin or status API; no hybrid mode.
"""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import ConfigError
from gateway.testing.mock import MockService
from gateway.testing.servers import free_port
from tests.support.app import get, in_process

ALL = {"status_code_metrics": True, "latency_metrics": True, "bandwidth_metrics": True}


@pytest.fixture(scope="module")
def upstream():
    service = MockService()
    service.route("/status/400", status=400)
    yield service
    service.stop()


def client_for(upstream: MockService, service: str, config: dict, extra: list | None = None,
               consumers: list | None = None):
    decl = {"_format_version": "3.0", "services": [{
        "name": service, "url": upstream.url, "routes": [{"name": f"{service}-route",
                                                          "paths": ["/"]}],
        "plugins": [{"name": "prometheus", "config": config}, *(extra or [])]}],
        "consumers": consumers or []}
    return in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(decl),
                       "GATEWAY_STATUS_PATH": "/_gw", "GATEWAY_ACCESS_LOG": "off"})


def samples(client, name: str, service: str) -> list:
    text = get(client, "/_gw/metrics").get_data(as_text=True)
    return [s for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name and s.labels.get("service") == service]


def test_increments_the_count_for_proxied_requests(upstream):
    client = client_for(upstream, "mock-service", ALL)
    assert get(client, "/status/200").status_code == 200
    [sample] = samples(client, "kong_http_requests_total", "mock-service")
    assert sample.labels == {"service": "mock-service", "route": "mock-service-route",
                             "code": "200", "source": "service", "workspace": "default",
                             "consumer": ""}
    assert sample.value == 1
    assert get(client, "/status/400").status_code == 400
    codes = {s.labels["code"]: s.value
             for s in samples(client, "kong_http_requests_total", "mock-service")}
    assert codes == {"200": 1, "400": 1}
    # Kong's spec matches the text itself: Kong's label order, and its error counter.
    text = get(client, "/_gw/metrics").get_data(as_text=True)
    assert ('kong_http_requests_total{service="mock-service",route="mock-service-route",'
            'code="400",source="service",workspace="default",consumer=""} 1\n') in text
    assert "kong_nginx_metric_errors_total 0\n" in text


def test_scrape_has_comments_and_kong_metrics_in_kong_spelling(upstream):
    """Kong's "scrape response has metrics and comments only", for the kong_* lines."""
    client = client_for(upstream, "spelling-service", ALL)
    get(client, "/status/200")
    text = get(client, "/_gw/metrics").get_data(as_text=True)
    kong_lines = [line for line in text.splitlines() if line.startswith("kong_")
                  and "spelling-service" in line]
    assert 'kong_kong_latency_ms_bucket{service="spelling-service",route="spelling-service-' \
           'route",workspace="default",le="+Inf"} 1' in kong_lines
    assert any(line.startswith('kong_bandwidth_bytes{service="spelling-service",route='
                               '"spelling-service-route",direction="ingress",workspace='
                               '"default",consumer=""} ') for line in kong_lines)


def test_latency_and_bandwidth(upstream):
    client = client_for(upstream, "latency-service", ALL)
    get(client, "/status/200")
    for name in ("kong_kong_latency_ms_count", "kong_upstream_latency_ms_count",
                 "kong_request_latency_ms_count"):
        [count] = samples(client, name, "latency-service")
        assert count.value == 1
    buckets = {s.labels["le"] for s in samples(client, "kong_kong_latency_ms_bucket",
                                               "latency-service")}
    assert {"1", "7", "6000", "+Inf"} <= buckets  # Kong's spelling of le
    directions = {s.labels["direction"] for s in samples(
        client, "kong_bandwidth_bytes_total", "latency-service")}
    assert directions == {"ingress", "egress"}


def test_source_kong_for_the_gateways_own_answer(upstream):
    client = client_for(upstream, "exit-service", ALL, [
        {"name": "request-termination", "config": {"status_code": 503}}])
    assert get(client, "/").status_code == 503
    [sample] = samples(client, "kong_http_requests_total", "exit-service")
    assert sample.labels["code"] == "503" and sample.labels["source"] == "kong"


def test_cache_hit_is_kongs_own_answer(upstream):
    """A proxy-cache hit is Kong's kong.response.exit: source "kong"."""
    client = client_for(upstream, "cache-service", ALL, [
        {"name": "proxy-cache", "config": {"strategy": "memory",
                                           "content_type": ["application/json"]}}])
    for _ in range(2):
        assert get(client, "/cached").status_code == 200
    sources = {s.labels["source"]: s.value
               for s in samples(client, "kong_http_requests_total", "cache-service")}
    assert sources == {"service": 1, "kong": 1}


def test_per_consumer(upstream):
    client = client_for(upstream, "consumer-service", {**ALL, "per_consumer": True}, [
        {"name": "key-auth", "config": {}}],
        [{"username": "alice", "keyauth_credentials": [{"key": "alice-key"}]}])
    assert get(client, "/", headers={"apikey": "alice-key"}).status_code == 200
    assert get(client, "/").status_code == 401
    consumers = {(s.labels["code"], s.labels["consumer"]) for s in samples(
        client, "kong_http_requests_total", "consumer-service")}
    assert consumers == {("200", "alice"), ("401", "")}


def test_does_not_expose_per_consumer_metrics_by_default(upstream):
    client = client_for(upstream, "no-consumer-service", ALL, [
        {"name": "key-auth", "config": {}}],
        [{"username": "bob", "keyauth_credentials": [{"key": "bob-key"}]}])
    assert get(client, "/", headers={"apikey": "bob-key"}).status_code == 200
    [sample] = samples(client, "kong_http_requests_total", "no-consumer-service")
    assert sample.labels["consumer"] == ""


def test_does_not_log_error_if_no_service_was_matched(upstream, caplog):
    """A global prometheus and a request no route took: a 404, no error, nothing counted."""
    decl = {"_format_version": "3.0", "services": [{"name": "unmatched-service",
            "url": upstream.url, "routes": [{"paths": ["/only"]}]}],
            "plugins": [{"name": "prometheus", "config": ALL}]}
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(decl),
                         "GATEWAY_STATUS_PATH": "/_gw", "GATEWAY_ACCESS_LOG": "off"})
    assert get(client, "/no-route-match-in-kong").status_code == 404
    assert "ERROR" not in caplog.text and "Traceback" not in caplog.text
    text = get(client, "/_gw/metrics").get_data(as_text=True)
    assert 'code="404"' not in text


def test_optional_fields_off_by_default(upstream):
    """07-optional_fields_spec: with Kong's defaults no per-request series are exported."""
    client = client_for(upstream, "defaults-service", {})
    get(client, "/")
    for name in ("kong_http_requests_total", "kong_kong_latency_ms_count",
                 "kong_bandwidth_bytes_total"):
        assert samples(client, name, "defaults-service") == []


def test_direct_from_variables(upstream):
    client = in_process({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "prometheus",
                         "GATEWAY_PROMETHEUS_STATUS_CODE_METRICS": "true",
                         "GATEWAY_STATUS_PATH": "/_gw", "GATEWAY_ACCESS_LOG": "off"})
    get(client, "/status/200")
    text = get(client, "/_gw/metrics").get_data(as_text=True)
    assert "kong_http_requests_total{" in text
    assert "kong_nginx_requests_total{" in text


@pytest.mark.parametrize(("healthchecks", "down_state", "up_state"), [
    (None, "healthchecks_off", "healthchecks_off"),
    ({"passive": {"unhealthy": {"tcp_failures": 1}}}, "unhealthy", "healthy"),
], ids=["no-checks", "passive-checks"])
def test_upstream_target_health(upstream, healthchecks, down_state, up_state):
    """Kong's states: healthchecks_off for an upstream without health checks (the gateway's
    cooldown still skips the refused target), healthy and unhealthy with them."""
    closed = free_port()
    decl = {"_format_version": "3.0",
            "upstreams": [{"name": "mock-upstream", "healthchecks": healthchecks, "targets": [
                {"target": f"127.0.0.1:{closed}"},
                {"target": f"127.0.0.1:{upstream.server_address[1]}"}]}],
            "services": [{"name": "health-service", "host": "mock-upstream",
                          "routes": [{"name": "health-route", "paths": ["/"]}],
                          "plugins": [{"name": "prometheus",
                                       "config": {"upstream_health_metrics": True}}]}]}
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(decl),
                         "GATEWAY_STATUS_PATH": "/_gw", "GATEWAY_ACCESS_LOG": "off"})
    for _ in range(2):  # round-robin: one of them meets the closed port
        assert get(client, "/").status_code == 200
    text = get(client, "/_gw/metrics").get_data(as_text=True)
    states = {(s.labels["target"], s.labels["state"]): s.value
              for family in text_string_to_metric_families(text) for s in family.samples
              if s.name == "kong_upstream_target_health"
              and s.labels["upstream"] == "mock-upstream"}
    down, up = f"127.0.0.1:{closed}", f"127.0.0.1:{upstream.server_address[1]}"
    states = {key: value for key, value in states.items() if key[0] in (down, up)}
    assert states == {(target, label): float(label == state)
                      for target, state in ((down, down_state), (up, up_state))
                      for label in ("healthy", "unhealthy", "healthchecks_off", "dns_error")}


@pytest.mark.parametrize(("config", "message"), [
    ({"ai_metrics": True}, "config.ai_metrics: is not supported by this gateway"),
    ({"per_consumer": "yes"}, "config.per_consumer: expected a boolean"),
    ({"bogus": True}, "config.bogus: unknown field"),
])
def test_schema_refusals(upstream, config, message):
    with pytest.raises(ConfigError) as raised:
        client_for(upstream, "schema-service", config)
    assert message in str(raised.value)
