"""http-log, file-log and prometheus under real gunicorn gevent workers.

http-log: a few thousand requests through 2 workers to a collector that is up, every
entry delivered; the collector stopped and restarted on its port within max_retry_time,
none lost; a slow collector adds nothing to the requests; the queue flushed on a graceful
stop. prometheus: /metrics parsed with prometheus_client's parser, Kong's names, labels and
types, summed over the 2 workers.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.testing.mock import MockService
from gateway.testing.servers import free_port, http_request


def kong_file(upstream: str, plugins: list[dict], balanced: bool = False) -> str:
    """One service at ``upstream`` (through an upstream entity when ``balanced``)."""
    service = {"name": "mock", "url": upstream, "routes": [{"name": "all", "paths": ["/"]}]}
    entities = {}
    if balanced:
        service = {**service, "url": "http://mock-upstream"}
        entities["upstreams"] = [{"name": "mock-upstream",
                                  "targets": [{"target": upstream[len("http://"):]}]}]
    return json.dumps({"_format_version": "3.0", "services": [service], **entities,
                       "plugins": plugins})


def http_log(collector_url: str, **queue) -> dict:
    return {"name": "http-log", "config": {"http_endpoint": collector_url + "/log",
                                           "queue": queue}}


def received(collector: MockService) -> list[dict]:
    found = []
    for call in collector.calls("/log"):
        body = json.loads(call.body)
        found.extend(body if isinstance(body, list) else [body])
    return found


def wait_for(collector: MockService, count: int, timeout: float = 15) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(entries := received(collector)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return entries


def hammer(url: str, count: int, threads: int = 16) -> list[int]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda i: http_request(f"{url}/r?i={i}").status_code,
                             range(count)))


@pytest.fixture(scope="module")
def upstream():
    service = MockService()
    service.route("/r", body=b"ok")
    yield service
    service.stop()


def test_every_entry_delivered_and_none_lost_across_a_collector_restart(gateway, upstream):
    port = free_port()
    collector = MockService(port)
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(upstream.url, [http_log(
        collector.url, max_batch_size=100, max_coalescing_delay=0.05, max_retry_delay=0.2)]),
        "GATEWAY_ACCESS_LOG": "off"}, workers=2, fresh=True)
    assert set(hammer(gw.url, 2000)) == {200}
    entries = wait_for(collector, 2000)
    assert sorted(int(e["request"]["querystring"]["i"]) for e in entries) == list(range(2000))
    # Down: the port closed, and its kept-alive connections dropped on their next request.
    collector.route("/log", action="drop")
    collector.stop()
    assert set(hammer(gw.url, 500)) == {200}  # the collector is down: requests still answer
    time.sleep(0.5)
    collector = MockService(port)
    try:
        entries = wait_for(collector, 500)
        assert sorted(int(e["request"]["querystring"]["i"]) for e in entries) == \
            list(range(500))
    finally:
        collector.stop()


def test_slow_collector_adds_no_latency(gateway, upstream):
    collector = MockService()
    collector.route("/log", delay=1.0)
    try:
        gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(
            upstream.url, [http_log(collector.url)]), "GATEWAY_ACCESS_LOG": "off"},
            fresh=True)
        started = time.monotonic()
        assert set(hammer(gw.url, 20, threads=4)) == {200}
        assert time.monotonic() - started < 1.0  # 20 entries would take 20 s to send
    finally:
        collector.stop()


def test_queue_flushed_on_graceful_stop(gateway, upstream):
    collector = MockService()
    try:
        gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(upstream.url, [
            http_log(collector.url, max_batch_size=1000, max_coalescing_delay=60)]),
            "GATEWAY_ACCESS_LOG": "off"}, fresh=True)
        assert set(hammer(gw.url, 10, threads=2)) == {200}
        assert received(collector) == []  # coalescing for a minute
        gw.stop()
        assert len(received(collector)) == 10
    finally:
        collector.stop()


def test_file_log_under_two_workers(gateway, upstream, tmp_path):
    path = tmp_path / "gateway.log"
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(upstream.url, [
        {"name": "file-log", "config": {"path": str(path), "reopen": True}}]),
        "GATEWAY_ACCESS_LOG": "off"}, workers=2, fresh=True)
    assert set(hammer(gw.url, 300)) == {200}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
            not path.exists() or len(path.read_text().splitlines()) < 300):
        time.sleep(0.05)
    numbers = sorted(int(json.loads(line)["request"]["querystring"]["i"])
                     for line in path.read_text().splitlines())
    assert numbers == list(range(300))


def families(url: str) -> dict:
    text = http_request(url + "/_gateway/metrics").data.decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_prometheus_kong_metrics_over_two_workers(gateway, upstream):
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(upstream.url, [
        {"name": "prometheus", "config": {"status_code_metrics": True, "latency_metrics": True,
                                          "bandwidth_metrics": True, "per_consumer": True,
                                          "upstream_health_metrics": True}}], balanced=True),
        "GATEWAY_ACCESS_LOG": "off"}, workers=2, fresh=True)
    assert set(hammer(gw.url, 200)) == {200}
    # A client has its answer a moment before the worker's log phase has counted it.
    deadline = time.monotonic() + 5
    while (found := families(gw.url))["kong_nginx_requests_total"].samples[0].value < 200 \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    requests = found["kong_http_requests"]
    assert requests.type == "counter"
    [sample] = [s for s in requests.samples if s.name == "kong_http_requests_total"]
    assert sample.labels == {"service": "mock", "route": "all", "code": "200",
                             "source": "service", "workspace": "default", "consumer": ""}
    assert sample.value == 200
    for name, top in (("kong_kong_latency_ms", "6000"), ("kong_upstream_latency_ms", "60000"),
                      ("kong_request_latency_ms", "60000")):
        histogram = found[name]
        assert histogram.type == "histogram"
        bounds = [s.labels["le"] for s in histogram.samples if s.name == name + "_bucket"]
        assert top in bounds and "+Inf" in bounds
        [count] = [s for s in histogram.samples if s.name == name + "_count"]
        assert count.value == 200 and count.labels["service"] == "mock"
    bandwidth = found["kong_bandwidth_bytes"]
    assert bandwidth.type == "counter"
    # Kong's text has no _total on this counter (the parser adds it back to the samples).
    text = http_request(gw.url + "/_gateway/metrics").data.decode()
    assert "# TYPE kong_bandwidth_bytes counter" in text and "kong_bandwidth_bytes{" in text
    assert "kong_bandwidth_bytes_total" not in text
    directions = {s.labels["direction"]: s.value for s in bandwidth.samples
                  if s.name == "kong_bandwidth_bytes_total"}
    assert directions["ingress"] > 0 and directions["egress"] > 200 * 2
    nginx = found["kong_nginx_requests_total"]
    assert nginx.type == "gauge" and nginx.samples[0].value >= 200
    assert "kong_nginx_connections_total" in found
    memory = found["kong_memory_workers_lua_vms_bytes"].samples
    assert len({s.labels["pid"] for s in memory}) == 2  # one per worker
    assert all(s.value > 1 << 20 for s in memory)
    health = {s.labels["state"]: s.value for s in found["kong_upstream_target_health"].samples}
    # Kong's state of a target whose upstream has no health checks.
    assert health == {"healthy": 0, "unhealthy": 0, "healthchecks_off": 1, "dns_error": 0}


def test_prometheus_defaults_export_no_per_request_series(gateway, upstream):
    """Kong's defaults: every *_metrics flag off, only the node's gauges."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "prometheus",
                  "GATEWAY_ACCESS_LOG": "off"}, workers=2, fresh=True)
    assert set(hammer(gw.url, 20)) == {200}
    found = families(gw.url)
    assert found["kong_nginx_requests_total"].samples[0].value >= 20
    for name in ("kong_http_requests", "kong_kong_latency_ms", "kong_bandwidth_bytes"):
        assert not found.get(name) or not found[name].samples, name
