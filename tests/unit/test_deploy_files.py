"""deploy/gateway.service agrees with the quick start's command and the graceful timeout;
deploy/nginx.conf's own answer to TRACE with the gateway's."""

from __future__ import annotations

import configparser
import re

from gateway.config import ServerSettings, load
from gateway.proxy.request import ALLOWED_METHODS
from tests.support.processes import ROOT


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(ROOT / "deploy" / "gateway.service")
    return parser


def test_systemd_unit_runs_the_quick_start_command_and_reloads_with_hup():
    service = unit()["Service"]
    command = re.search(r"^GATEWAY_UPSTREAM_URL=\S+ (gunicorn .+)$",
                        (ROOT / "docs" / "quick-start.md").read_text(), re.M).group(1)
    assert service["ExecStart"].endswith("/" + command)
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Type"] == "notify" and service["User"] != "root"


def test_systemd_waits_longer_than_the_graceful_timeout():
    stop = int(unit()["Service"]["TimeoutStopSec"])
    assert stop > load(ServerSettings, {}).graceful_timeout


def test_nginx_answers_trace_with_the_gateways_allow_list():
    """nginx refuses TRACE itself (tests/integration/test_nginx.py runs it): the named
    location its 405 goes to sends the methods the gateway's own 405 names."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"^\s*error_page 405 = @method_not_allowed;", conf, re.M)
    allow = re.search(r"location @method_not_allowed \{[^}]*add_header Allow \"([^\"]+)\" "
                      r"always;[^}]*return 405 ", conf)
    assert allow and allow.group(1) == dict(ALLOWED_METHODS)["Allow"]
    assert re.search(r"^\s*proxy_intercept_errors off;", conf, re.M)
