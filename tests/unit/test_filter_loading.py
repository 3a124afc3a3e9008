"""Filters that are not built in (issue 11): loaded by entry point or module:Class, configured
by GATEWAY_<NAME>_<FIELD> variables, run by PRIORITY like the built-ins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.config import ConfigError
from gateway.filters import installed
from gateway.server.app import create_app
from tests.support.app import in_process
from tests.support.processes import ROOT

TEAPOT = "tests.support.pdk_filters:Teapot"
LATE = "tests.support.pdk_filters:Late"


def environ(filters: str, **env: str) -> dict[str, str]:
    return {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9", "GATEWAY_FILTERS": filters, **env}


# ---------------------------------------------------------------- loading, three ways

@pytest.mark.parametrize("name", [TEAPOT, "teapot"])
def test_a_pdk_filter_loads_by_module_class_or_entry_point(entry_points, upstream, name):
    client = in_process({**environ(name), "GATEWAY_UPSTREAM_URL": upstream.url,
                         "GATEWAY_TEAPOT_HEADER": "X-Brewed"})
    response = client.get("/echo")
    assert response.status_code == 200
    assert response.headers["X-Brewed"] == "teapot"
    assert client.get("/echo?teapot").status_code == 418


def test_entry_points_are_listed_as_installed(entry_points):
    assert {"teapot", "broken", "misnamed"} <= set(installed())


def test_custom_filters_run_by_priority_among_built_in_ones(upstream):
    client = in_process({**environ(f"{LATE},key-auth,{TEAPOT}"), "GATEWAY_UPSTREAM_URL":
                         upstream.url, "GATEWAY_KEYAUTH_KEYS": "alice:k1"})
    assert client.get("/echo?teapot").status_code == 418  # teapot (1500) before key-auth (1250)
    refused = client.get("/echo")
    assert refused.status_code == 401
    assert refused.headers["X-Order"] == "teapot,late"  # response phase: 1500, then 1


def test_an_unknown_name_lists_built_in_and_installed_filters(entry_points):
    with pytest.raises(ConfigError) as caught:
        create_app(environ("nope"))
    message = str(caught.value)
    assert "\n" not in message
    assert "unknown filter 'nope'" in message
    assert "built in acl, basic-auth, bot-detection, correlation-id, cors" in message
    assert "installed broken, misnamed, teapot" in message


@pytest.mark.parametrize("name, error", [
    ("broken", "filter 'broken' failed to import: ModuleNotFoundError: No module named "
               "'tests.support.no_such_module'"),
    ("tests.support.pdk_filters:Gone", "filter 'tests.support.pdk_filters:Gone' failed to "
                                       "import: AttributeError"),
    ("misnamed", "entry point 'misnamed' loads a filter whose NAME is 'late'; the two must "
                 "match"),
    ("tests.support.pdk_filters:NotAFilter", "is not a subclass of gateway.pdk.Filter"),
    ("tests.support.pdk_filters:NoPriority", "(NoPriority) needs PRIORITY (int)"),
    ("tests.support.pdk_filters:NoConfig", "(NoConfig) needs Config, a dataclass"),
    ("tests.support.pdk_filters:Spelled", "filter 'spelled': setting 'value' declares "
                                          "GATEWAY_SOMETHING_ELSE; a filter that is not built "
                                          "in reads GATEWAY_SPELLED_VALUE"),
    (f"teapot,{TEAPOT}", f"filter {TEAPOT!r} has NAME 'teapot', like another enabled filter"),
])
def test_bad_filters_stop_the_start_in_one_line(entry_points, name, error):
    with pytest.raises(ConfigError) as caught:
        create_app(environ(name))
    assert error in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_filter_named_like_a_built_in_is_refused(monkeypatch):
    from tests.support import pdk_filters

    monkeypatch.setattr(pdk_filters.Teapot, "NAME", "cors")
    with pytest.raises(ConfigError, match="has NAME 'cors', which is a built-in filter's"):
        create_app(environ(TEAPOT))


# ---------------------------------------------------------------- configuration

def test_settings_come_from_derived_variables(upstream):
    client = in_process({**environ(TEAPOT), "GATEWAY_UPSTREAM_URL": upstream.url,
                         "GATEWAY_TEAPOT_MAX_BODY": "4"})
    assert client.post("/echo?read", data=b"12345").status_code == 413


def test_a_bad_value_names_the_derived_variable():
    with pytest.raises(ConfigError, match=r"^GATEWAY_TEAPOT_MAX_BODY='lots': must be an integer"):
        create_app(environ(TEAPOT, GATEWAY_TEAPOT_MAX_BODY="lots"))


def test_a_value_the_filter_itself_refuses_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"^filter 'teapot': ServiceOptions.timeout must be > 0"):
        create_app(environ(TEAPOT, GATEWAY_TEAPOT_LOOKUP_TIMEOUT="0"))


def test_custom_variables_count_as_known_only_when_the_filter_is_enabled():
    create_app(environ(TEAPOT, GATEWAY_TEAPOT_HEADER="X-A"))
    with pytest.raises(ConfigError, match="GATEWAY_TEAPOT_HEADR: unknown setting "
                                          r"\(did you mean GATEWAY_TEAPOT_HEADER\?\)"):
        create_app(environ(TEAPOT, GATEWAY_TEAPOT_HEADR="X-A"))
    with pytest.raises(ConfigError, match="GATEWAY_TEAPOT_HEADER: unknown setting"):
        create_app(environ("", GATEWAY_TEAPOT_HEADER="X-A"))


def run_gateway(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=ROOT,
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_settings_command_lists_the_enabled_custom_filters():
    table = run_gateway("settings", GATEWAY_FILTERS=f"cors,{TEAPOT}").stdout
    assert "| `GATEWAY_TEAPOT_MAX_BODY` | `16` | teapot: largest body read. |" in table
    assert "| `GATEWAY_CORS_ORIGINS` |" in table
    assert "GATEWAY_TEAPOT" not in run_gateway("settings").stdout


def test_check_command_validates_custom_filter_variables():
    ok = run_gateway("check", GATEWAY_UPSTREAM_URL="http://u", GATEWAY_FILTERS=TEAPOT,
                     GATEWAY_TEAPOT_MAX_BODY="8")
    assert ok.returncode == 0, ok.stderr
    bad = run_gateway("check", GATEWAY_UPSTREAM_URL="http://u", GATEWAY_FILTERS=TEAPOT,
                      GATEWAY_TEAPOT_MAX_BODY="-1")
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("gateway: configuration error: GATEWAY_TEAPOT_MAX_BODY='-1': "
                                  "must be an integer >= 0")
