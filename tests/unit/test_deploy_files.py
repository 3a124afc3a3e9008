"""deploy/gateway.service agrees with the quick start's command and the graceful timeout."""

from __future__ import annotations

import configparser
import re

from gateway.config import ServerSettings, load
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
