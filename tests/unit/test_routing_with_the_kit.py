"""Routes beside the other features: request checks on every request, Location rewritten
against the service the request went to, custom filters in a declarative file, and
filter variables beside a file (an error, not also a warning)."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.config import ConfigError
from tests.support.app import get, in_process

TEAPOT = "tests.support.pdk_filters:Teapot"
ELSEWHERE = "http://127.0.0.1:9"
KONG = """
_format_version: "3.0"
services:
- name: fixture
  url: {url}
  routes:
  - name: fixture
    paths: [/fixture]
- name: elsewhere
  url: {elsewhere}
  routes:
  - name: elsewhere
    paths: [/elsewhere]
plugins:
- name: {plugin}
  config: {config}
"""


def declared(upstream_url: str, plugin: str = TEAPOT, config: str = "{header: X-Kettle}",
             **env: str) -> dict[str, str]:
    text = KONG.format(url=upstream_url, elsewhere=ELSEWHERE, plugin=plugin, config=config)
    return {"GATEWAY_DECLARATIVE_CONFIG_STRING": text, "GATEWAY_ACCESS_LOG": "off", **env}


@pytest.fixture(scope="module")
def client(upstream):
    return in_process(declared(upstream.url))


def status(client, path: str, method: str, **kwargs) -> int:
    response = client.open(path, method=method, **kwargs)
    response.close()
    return response.status_code


@pytest.mark.parametrize("path", ["/fixture/respond", "/nowhere"])
def test_trace_connect_and_bad_hosts_are_refused_routed_or_not(client, path):
    assert status(client, path, "TRACE") == 405
    assert status(client, path, "CONNECT") == 400
    star = {"RAW_URI": "*", "REQUEST_URI": "*"}
    assert status(client, path, "OPTIONS", environ_overrides=star) == 400
    refused = get(client, path, headers={"Host": "a b"})
    assert refused.status_code == 400
    assert json.loads(refused.get_data())["message"] == \
        "Bad request: missing or invalid Host header"


@pytest.mark.parametrize("path", ["/fixture/respond", "/nowhere"])
def test_the_405_to_trace_says_which_methods_are_allowed(client, path):
    response = client.open(path, method="TRACE")
    response.close()
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}  # RFC 9110 15.5.6
    assert allowed >= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    assert "TRACE" not in allowed
    assert json.loads(response.data)["message"] == "Method not allowed"


def test_an_unrouted_request_that_passes_the_checks_is_kongs_404(client):
    assert get(client, "/nowhere").status_code == 404


def test_location_at_the_answering_service_is_rewritten(client, upstream):
    response = get(client, f"/fixture/respond?Location={upstream.url}/next")
    assert response.status_code == 200
    assert response.headers["Location"] == "http://localhost/next"


def test_location_at_another_services_target_is_left_alone(client):
    response = get(client, f"/fixture/respond?Location={ELSEWHERE}/next")
    assert response.headers["Location"] == f"{ELSEWHERE}/next"


def test_location_rewrite_can_be_turned_off_with_a_file(upstream):
    client = in_process(declared(upstream.url, GATEWAY_REWRITE_LOCATION="false"))
    response = get(client, f"/fixture/respond?Location={upstream.url}/next")
    assert response.headers["Location"] == f"{upstream.url}/next"


@pytest.mark.parametrize("name", [TEAPOT, "teapot"])
def test_a_custom_filter_is_a_plugin_of_the_file_with_its_field_names(entry_points, upstream,
                                                                     name):
    client = in_process(declared(upstream.url, plugin=name))
    response = get(client, "/fixture/respond")
    assert response.status_code == 200
    assert response.headers["X-Kettle"] == "teapot"  # config key = the Config field's name
    assert get(client, "/fixture/respond?teapot").status_code == 418


@pytest.mark.parametrize("name, reason", [
    ("tests.support.no_such_module:Teapot", "failed to import: ModuleNotFoundError"),
    ("misnamed", "loads a filter whose NAME is 'late'"),
    ("no-such-plugin", "plugin 'no-such-plugin' not enabled; this gateway supports: "),
])
def test_a_bad_custom_plugin_name_names_the_field(entry_points, name, reason):
    with pytest.raises(ConfigError) as caught:
        in_process(declared(ELSEWHERE, plugin=name))
    assert str(caught.value).startswith(
        f"GATEWAY_DECLARATIVE_CONFIG_STRING: plugins[{name}].name: ")
    assert reason in str(caught.value)


def test_a_custom_plugins_field_is_checked_by_its_own_parser():
    where = r"plugins\[tests\.support\.pdk_filters:Teapot\]\.config\.max_body"
    with pytest.raises(ConfigError, match=where + ": must be "):
        in_process(declared(ELSEWHERE, config="{max_body: -1}"))


def test_a_filter_variable_beside_a_file_is_an_error_and_not_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="gateway")
    with pytest.raises(ConfigError, match="GATEWAY_RATELIMIT_MINUTE: a filter setting "
                                          "has no effect with a declarative file"):
        in_process(declared(ELSEWHERE, GATEWAY_RATELIMIT_MINUTE="5"))
    assert not [r for r in caplog.records if "not in GATEWAY_FILTERS" in r.getMessage()]


def test_without_a_file_the_same_variable_is_the_warning(caplog):
    caplog.set_level(logging.WARNING, logger="gateway")
    in_process({"GATEWAY_UPSTREAM_URL": ELSEWHERE, "GATEWAY_RATELIMIT_MINUTE": "5"})
    assert [r.getMessage() for r in caplog.records] == [
        "GATEWAY_RATELIMIT_MINUTE set but the rate-limiting filter is not in "
        "GATEWAY_FILTERS: ignored"]
