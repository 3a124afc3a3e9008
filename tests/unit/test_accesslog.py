"""Access-log lines, JSON error-log lines, the status path setting and metrics, in-process."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from prometheus_client import REGISTRY

from gateway.config import ConfigError, Settings, load
from gateway.jsoncodec import encode_json
from gateway.ops.accesslog import access_entry
from gateway.ops.logjson import REQUEST_ID, JsonFormatter
from gateway.proxy.exchange import Exchange
from gateway.server.status import StatusEndpoints
from tests.support.app import in_process
from tests.support.fixture_server import FixtureServer


def exchange(**environ: str) -> Exchange:
    base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/orders", "REMOTE_ADDR": "198.51.100.7"}
    return Exchange({**base, **environ}, "req-1")


def test_access_entry_fields_and_no_query_or_credentials():
    ex = exchange(RAW_URI="/orders?apikey=SECRET&page=2", HTTP_AUTHORIZATION="Bearer SECRET",
                  HTTP_APIKEY="SECRET", HTTP_USER_AGENT="curl/8")
    ex.status, ex.target, ex.upstream_status = 200, "http://orders:8080", 200
    ex.upstream_started, ex.upstream_finished = 1.0, 1.0125
    ex.outcomes["enrichment"], ex.latencies["enrichment"] = "hit", 0.002
    entry = access_entry(ex, 1234, 0.02)
    assert entry["path"] == "/orders" and entry["method"] == "GET" and entry["status"] == 200
    assert entry["client_ip"] == "198.51.100.7" and entry["request_id"] == "req-1"
    assert (entry["total_ms"], entry["upstream_ms"], entry["enrichment_ms"]) == (20.0, 12.5, 2.0)
    assert entry["bytes"] == 1234 and entry["outcomes"] == {"enrichment": "hit"}
    assert entry["user_agent"] == "curl/8"
    assert "SECRET" not in encode_json(entry).decode()


def test_access_line_stays_under_pipe_buf_with_huge_fields():
    ex = exchange(RAW_URI="/" + "p" * 10000, HTTP_USER_AGENT="u" * 10000)
    ex.status = 200
    assert len(encode_json(access_entry(ex, 0, 0.001))) < 4096


def test_error_log_line_is_json_with_the_current_request_id():
    record = logging.LogRecord("gateway", logging.WARNING, __file__, 1, "upstream %s failed",
                               ("u",), None)
    REQUEST_ID.set("req-42")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.set(None)
    assert line["message"] == "upstream u failed" and line["level"] == "warning"
    assert line["request_id"] == "req-42" and line["logger"] == "gateway"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exception"]


@pytest.mark.parametrize(("raw", "prefix"), [("/ops/", "/ops"), ("/_gateway", "/_gateway"),
                                             ("off", None), ("OFF", None)])
def test_status_path_setting(raw, prefix):
    settings = load(Settings, {"GATEWAY_UPSTREAM_URL": "http://u", "GATEWAY_STATUS_PATH": raw})
    assert settings.status_path == prefix


@pytest.mark.parametrize("raw", ["ops", "/", "/a?b", "/a b"])
def test_bad_status_path_names_the_variable(raw):
    with pytest.raises(ConfigError, match="GATEWAY_STATUS_PATH"):
        load(Settings, {"GATEWAY_UPSTREAM_URL": "http://u", "GATEWAY_STATUS_PATH": raw})


def test_status_prefix_matches_whole_segments_only():
    status = StatusEndpoints("/_gateway", None, 10, None)
    assert status.matches("/_gateway/health") and status.matches("/_gateway")
    assert not status.matches("/_gatewayx/health") and not status.matches("/api/_gateway")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_and_in_flight_returns_to_zero():
    upstream = FixtureServer()
    try:
        client = in_process({"GATEWAY_UPSTREAM_URL": upstream.url,
                             "GATEWAY_ACCESS_LOG": "off"})
        ok = sample("gateway_http_requests_total", status_class="2xx", source="upstream")
        resets = sample("gateway_upstream_errors_total", kind="reset")
        client.get("/echo").close()
        client.get("/hangup").close()
        assert client.get("/_gateway/health").status_code == 200  # not counted
    finally:
        upstream.stop()
    assert sample("gateway_http_requests_total", status_class="2xx", source="upstream") == ok + 1
    assert sample("gateway_upstream_errors_total", kind="reset") == resets + 1
    assert sample("gateway_requests_in_flight") == 0
