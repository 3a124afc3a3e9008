"""`python -m gateway check` validates what gunicorn.conf.py reads; unused filter settings warn."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from gateway.config import ConfigError, ServerSettings, bind_address, load
from gateway.server.app import create_app
from tests.support.processes import ROOT

UPSTREAM = {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:1"}


def check(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([sys.executable, "-m", "gateway", "check", *args], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("env", "message"), [
    ({"GATEWAY_WORKERS": "0"}, "GATEWAY_WORKERS='0': must be an integer >= 1"),
    ({"GATEWAY_TIMEOUT": "x"}, "GATEWAY_TIMEOUT='x': must be an integer >= 1"),
    ({"GATEWAY_KEEPALIVE": "-3"}, "GATEWAY_KEEPALIVE='-3': must be an integer >= 0"),
    ({"GATEWAY_WORKER_CONNECTIONS": "0"},
     "GATEWAY_WORKER_CONNECTIONS='0': must be an integer >= 1"),
    ({"GATEWAY_BIND": "nonsense::"},
     "GATEWAY_BIND='nonsense::': must be host:port, [IPv6]:port or unix:PATH"),
])
def test_check_refuses_what_gunicorn_would_refuse_with_one_line_and_status_2(env, message):
    result = check(**UPSTREAM, **env)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"gateway: configuration error: {message}")
    assert result.stdout == ""


def test_check_says_configuration_ok():
    result = check(**UPSTREAM, GATEWAY_BIND="[::1]:8000", GATEWAY_WORKERS="3")
    assert (result.returncode, result.stdout, result.stderr) == (0, "configuration OK\n", "")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_check_answers_help_without_checking(flag):
    result = check(flag)  # no GATEWAY_UPSTREAM_URL: a check would fail
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m gateway check")
    assert "configuration OK" in result.stdout and "exits 2" in result.stdout


def test_check_refuses_unknown_arguments():
    result = check("--verbose", **UPSTREAM)
    assert result.returncode == 64
    assert result.stderr.startswith("usage: python -m gateway check")


@pytest.mark.parametrize("good", [
    "127.0.0.1:8000", "0.0.0.0:80", "localhost:65535", "gw-1.example.com:8000",
    "[::1]:8000", "[::]:8000", "unix:/run/gateway.sock", "unix:///run/gateway.sock",
])
def test_bind_addresses_accepted(good):
    assert bind_address(good) == good


@pytest.mark.parametrize("bad", [
    "nonsense::", "8000", "localhost", ":8000", "host:0", "host:65536", "host:80x", "host:+80",
    "[::1]", "[nohost]:80", "::1:8000", "a b:80", "a..b:80", "-a:80", "unix:", "unix://",
])
def test_bind_addresses_refused(bad):
    with pytest.raises(ConfigError, match=r"GATEWAY_BIND=.*must be host:port"):
        load(ServerSettings, {"GATEWAY_BIND": bad})


def test_settings_of_a_filter_not_enabled_are_named_in_a_warning(caplog):
    env = {**UPSTREAM, "GATEWAY_ENRICH_URL": "http://127.0.0.1:1/x", "GATEWAY_ENRICH_TIMEOUT": "1",
           "GATEWAY_CACHE_TTL": "5", "GATEWAY_FILTERS": "proxy-cache"}
    with caplog.at_level(logging.WARNING, logger="gateway"):
        create_app(env)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["GATEWAY_ENRICH_TIMEOUT, GATEWAY_ENRICH_URL set but the enrichment "
                        "filter is not in GATEWAY_FILTERS: ignored"]


def test_no_warning_when_the_filter_is_enabled_or_nothing_is_set(caplog):
    with caplog.at_level(logging.WARNING, logger="gateway"):
        create_app({**UPSTREAM, "GATEWAY_ENRICH_URL": "http://127.0.0.1:1/x",
                    "GATEWAY_FILTERS": "enrichment"})
        create_app({**UPSTREAM, "GATEWAY_ENRICH_URL": " "})
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_check_prints_the_warning_and_still_passes():
    result = check(**UPSTREAM, GATEWAY_RATELIMIT_MINUTE="10")
    assert result.returncode == 0
    assert result.stdout == "configuration OK\n"
    assert result.stderr == ("gateway: WARNING: GATEWAY_RATELIMIT_MINUTE set but the "
                             "rate-limiting filter is not in GATEWAY_FILTERS: ignored\n")
