"""Operations under real gunicorn gevent workers: status endpoints, metrics, JSON logs."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.fixture_server import closed_port_url
from tests.support.processes import ROOT, VENV_BIN


def call(url: str, target: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", target, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), body


def log_lines(gateway, kind: str | None = None) -> list[dict]:
    """The gateway's JSON log lines (access lines with kind="access")."""
    lines = [json.loads(line) for line in gateway.logs().splitlines() if line.startswith("{")]
    return [line for line in lines if kind is None or line.get("type") == kind]


def access_line(gateway, request_id: str, timeout: float = 5) -> dict:
    """The access-log line of a request; written after its last byte, so maybe a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in log_lines(gateway, "access") if line["request_id"] == request_id]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, f"{len(found)} access lines for {request_id}"
            return found[0]
        time.sleep(0.05)


def scrape(url: str) -> dict[str, float]:
    """The metrics as {'name{labels}': value}, labels in the exposition's order."""
    status, headers, body = call(url, "/_gateway/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


# ---------------------------------------------------------------- health and readiness

def test_health_and_ready_with_a_live_upstream(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url})
    status, headers, body = call(gw.url, "/_gateway/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert headers["Cache-Control"] == "no-store"
    status, _, body = call(gw.url, "/_gateway/ready")
    assert status == 200 and json.loads(body)["status"] == "ready"
    hits = fixture_server.hits.copy()
    call(gw.url, "/_gateway/nothing-here")
    assert call(gw.url, "/_gateway/nothing-here")[0] == 404
    assert fixture_server.hits == hits  # never proxied


def test_not_ready_while_the_upstream_refuses(gateway):
    gw = gateway({"GATEWAY_UPSTREAM_URL": closed_port_url(), "GATEWAY_ACCESS_LOG": "off"})
    status, _, body = call(gw.url, "/_gateway/ready")
    assert status == 503 and json.loads(body)["status"] == "not ready"
    assert call(gw.url, "/_gateway/health")[0] == 200  # alive all the same
    assert call(gw.url, "/anything")[0] == 502
    assert settled(gw.url)['gateway_upstream_errors_total{kind="refused"}'] >= 1
    assert log_lines(gw, "access") == []  # GATEWAY_ACCESS_LOG=off


def test_status_path_is_configurable_and_can_be_turned_off(gateway, fixture_server):
    moved = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_STATUS_PATH": "/ops/"})
    assert call(moved.url, "/ops/health")[0] == 200
    _, _, body = call(moved.url, "/_gateway/health")
    assert json.loads(body)["target"] == "/_gateway/health"  # the upstream's path now
    off = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_STATUS_PATH": "off"})
    _, _, body = call(off.url, "/_gateway/health")
    assert json.loads(body)["target"] == "/_gateway/health"


def test_status_endpoints_pass_no_filter(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                  "GATEWAY_FILTERS": "request-termination"})
    assert call(gw.url, "/echo")[0] == 503
    assert call(gw.url, "/_gateway/health")[0] == 200


# ---------------------------------------------------------------- metrics and logs

@pytest.fixture
def metrics_dir():
    """A metrics directory holding a stale, unreadable file: the start must empty it."""
    with tempfile.TemporaryDirectory(prefix="metrics-") as path:
        (Path(path) / "counter_999999.db").write_bytes(b"stale garbage")
        yield path


def settled(url: str) -> dict[str, float]:
    """A scrape once no request is in flight (the last ones are counted after their last byte)."""
    deadline = time.monotonic() + 5
    while (samples := scrape(url))["gateway_requests_in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return samples


def test_metrics_add_up_across_two_workers(gateway, fixture_server, metrics_dir):
    # At most 5 connections per worker: with 20 concurrent slow requests both workers take
    # some (one gevent worker would otherwise accept them all).
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_READ_TIMEOUT": "1",
                  "GATEWAY_METRICS_DIR": metrics_dir, "GATEWAY_WORKER_CONNECTIONS": "5"},
                 workers=2, fresh=True)
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: call(gw.url, "/delay?ms=150")[0], range(40)))
    assert statuses == [200] * 40
    assert call(gw.url, "/status/503")[0] == 503
    assert call(gw.url, "/hangup")[0] == 502
    slow = threading.Thread(target=call, args=(gw.url, "/delay?ms=3000"))
    slow.start()
    time.sleep(0.4)
    during = scrape(gw.url)
    slow.join()
    after = settled(gw.url)

    workers = {line["pid"] for line in log_lines(gw, "access") if line["path"] == "/delay"}
    assert len(workers) == 2, "traffic did not reach both workers"
    assert during["gateway_requests_in_flight"] == 1
    assert after["gateway_requests_in_flight"] == 0
    assert after['gateway_http_requests_total{source="upstream",status_class="2xx"}'] == 40
    assert after['gateway_http_requests_total{source="upstream",status_class="5xx"}'] == 1
    assert after['gateway_http_requests_total{source="gateway",status_class="5xx"}'] == 2
    assert after['gateway_upstream_errors_total{kind="reset"}'] == 1
    assert after['gateway_upstream_errors_total{kind="timeout"}'] == 1
    assert after["gateway_request_duration_seconds_count"] == 43
    assert after['gateway_request_duration_seconds_bucket{le="0.1"}'] <= 3
    assert after["gateway_upstream_duration_seconds_count"] == 41  # the two failures had none
    assert after["gateway_upstream_duration_seconds_sum"] >= 40 * 0.15
    opened = [v for k, v in after.items() if k.startswith("gateway_upstream_connections_opened")]
    assert opened and sum(opened) >= 2


def test_access_log_lines_carry_the_request_and_no_secrets(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url})
    status, headers, _ = call(gw.url, "/echo/a?apikey=SECRET-KEY&x=1", {
        "Authorization": "Bearer SECRET-TOKEN", "User-Agent": "ops-test/1", "apikey": "SECRET-H"})
    assert status == 200
    line = access_line(gw, headers["X-Request-ID"])
    assert line["method"] == "GET" and line["path"] == "/echo/a" and line["status"] == 200
    assert line["client_ip"] == "127.0.0.1" and line["user_agent"] == "ops-test/1"
    assert line["bytes"] == int(headers["Content-Length"])
    assert line["target"] == fixture_server.url and line["upstream_status"] == 200
    assert line["total_ms"] >= line["upstream_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert "SECRET" not in gw.logs()


def test_error_log_is_json_with_the_request_id(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url})
    _, headers, _ = call(gw.url, "/hangup")
    lines = log_lines(gw)
    assert any(line.get("logger") == "gunicorn.error" for line in lines)
    warning = next(line for line in lines if line.get("level") == "warning"
                   and line.get("request_id") == headers["X-Request-ID"])
    assert "failed" in warning["message"] and warning["logger"].startswith("gateway")
    access = access_line(gw, headers["X-Request-ID"])
    assert access["status"] == 502 and access["outcomes"] == {"upstream": "reset"}


def test_a_bad_setting_exits_with_status_2():
    """The status deploy/gateway.service's RestartPreventExitStatus names: no restart loop."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
           "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9", "GATEWAY_ACCESS_LOG": "yaml"}
    result = subprocess.run([str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py",
                             "gateway.wsgi:app"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "GATEWAY_ACCESS_LOG='yaml': must be one of json, off" in result.stderr
