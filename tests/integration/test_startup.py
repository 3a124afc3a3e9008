"""A bad environment stops `gunicorn -c gunicorn.conf.py gateway.wsgi:app` before it serves."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.support.net import free_port
from tests.support.processes import ROOT, VENV_BIN


def start(env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    base.update({"GATEWAY_BIND": f"127.0.0.1:{free_port()}", "GATEWAY_WORKERS": "1", **env})
    return subprocess.run([str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py",
                           "gateway.wsgi:app"], cwd=ROOT, env=base, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "GATEWAY_UPSTREAM_URL is required"),
    ({"GATEWAY_UPSTREAM_URL": "orders:8080"},
     "GATEWAY_UPSTREAM_URL='orders:8080': 'orders:8080' is not an http:// or https:// URL"),
    ({"GATEWAY_UPSTREAM_URL": "http://a:1", "GATEWAY_READ_TIMEOUT": "soon"},
     "GATEWAY_READ_TIMEOUT='soon': must be a number >= 0.001"),
    ({"GATEWAY_UPSTREAM_URL": "http://a:1", "GATEWAY_UPSTRAEM_URL": "x"},
     "GATEWAY_UPSTRAEM_URL: unknown setting (did you mean GATEWAY_UPSTREAM_URL?)"),
    ({"GATEWAY_UPSTREAM_URL": "http://a:1", "GATEWAY_FILTERS": "response-headers,nope"},
     "unknown filter 'nope'; known: "),
    ({"GATEWAY_UPSTREAM_URL": "http://a:1", "GATEWAY_WORKERS": "0"},
     "GATEWAY_WORKERS='0': must be an integer >= 1"),
    ({"GATEWAY_UPSTREAM_URL": "http://a:1", "GATEWAY_PRESERVE_HOST": "maybe"},
     "GATEWAY_PRESERVE_HOST='maybe': must be true or false"),
])
def test_bad_environment_stops_the_start_with_one_line(env, expected):
    result = start(env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Listening at" not in result.stderr + result.stdout



@pytest.mark.parametrize("bind", ["nonsense::", "127.0.0.1", "[::1]:99999"])
def test_bad_bind_stops_the_start_with_status_2_naming_the_variable(bind):
    """gunicorn's own parser would fail later, with exit 1 and without naming the variable."""
    result = start({"GATEWAY_UPSTREAM_URL": "http://a:1", "GATEWAY_BIND": bind})
    assert result.returncode == 2  # systemd's RestartPreventExitStatus=2 catches it
    assert result.stderr.splitlines() == [
        f"gateway: configuration error: GATEWAY_BIND={bind!r}: must be host:port, [IPv6]:port "
        "or unix:PATH, with a port in 1-65535"]


def test_a_good_start_logs_only_json_and_warns_about_an_unused_filter_setting(gateway):
    """The master's check prints nothing (its "configuration OK" is not a log line); each
    worker names the settings of a filter that is not enabled."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:1",
                  "GATEWAY_ENRICH_URL": "http://127.0.0.1:1/lookup{path}"}, workers=2, fresh=True)
    gw.wait_for_workers(2)
    deadline = time.monotonic() + 10
    while gw.logs().count("gateway.config") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    records = [json.loads(line) for line in gw.logs().splitlines() if line.strip()]
    warnings = [r for r in records if r["logger"] == "gateway.config"]
    assert [(r["level"], r["message"]) for r in warnings] == [
        ("warning", "GATEWAY_ENRICH_URL set but the enrichment filter is not in "
                    "GATEWAY_FILTERS: ignored")] * 2
    assert len({r["pid"] for r in warnings}) == 2
