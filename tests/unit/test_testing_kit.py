"""gateway.testing (issue 11): the pytest plugin's mock service, in-process gateway and
assertion helpers, and a plugin that loads without side effects."""

from __future__ import annotations

import subprocess
import sys
import time
from importlib.metadata import entry_points

import pytest
import urllib3

from gateway.testing import (
    assert_called_once,
    assert_gateway_error,
    assert_header,
    assert_not_called,
    http_request,
)


def test_the_plugin_is_registered_for_pytest():
    assert [ep.value for ep in entry_points(group="pytest11") if ep.name == "gateway"] == [
        "gateway.testing"]


def test_importing_the_plugin_starts_and_patches_nothing():
    code = ("import sys, threading, gateway.testing\n"
            "from gevent import monkey\n"
            "assert not monkey.is_module_patched('socket')\n"
            "assert 'gateway.server.app' not in sys.modules, 'the app was imported'\n"
            "assert threading.active_count() == 1, 'a server thread runs'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_routes_answer_status_json_and_headers_and_record_requests(mock_service):
    url = mock_service.route("/r", status=201, json={"a": 1}, headers={"X-From": "mock"})
    reply = http_request(url + "?q=1", "POST", {"X-Client": "c"}, b"payload")
    assert (reply.status_code, reply.json, reply.headers["X-From"]) == (201, {"a": 1}, "mock")
    received = assert_called_once(mock_service, "/r")
    assert (received.method, received.query, received.body) == ("POST", {"q": "1"}, b"payload")
    assert received.header("x-client") == "c"


def test_paths_without_a_route_are_echoed(mock_service):
    reply = http_request(mock_service.url + "/any/where?x=y", headers={"X-A": "b"})
    assert reply.status_code == 200
    assert reply.json["path"] == "/any/where"
    assert reply.json["query"] == {"x": "y"}
    assert reply.json["headers"]["X-A"] == "b"


def test_a_delay_a_dropped_connection_and_a_stall(mock_service):
    slow = mock_service.route("/slow", json={}, delay=0.3)
    started = time.monotonic()
    assert http_request(slow).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(ConnectionError):
        http_request(mock_service.route("/drop", action="drop"))
    with pytest.raises(TimeoutError):
        http_request(mock_service.route("/stall", action="stall"), timeout=0.3)
    assert [r.path for r in mock_service.requests] == ["/slow", "/drop", "/stall"]


def test_an_unknown_action_is_refused(mock_service):
    with pytest.raises(ValueError, match="action must be drop or stall"):
        mock_service.route("/x", action="explode")


def test_gateway_client_defaults_to_an_echoing_upstream(gateway_client):
    client = gateway_client(["response-headers"], {"GATEWAY_RESPONSE_HEADERS_ADD": "X-Kit:1"})
    response = client.get("/orders?id=7")
    assert_header(response, "X-Kit", "1")
    assert response.json["path"] == "/orders"
    assert_called_once(client.upstream, "/orders")


def test_gateway_client_goes_through_create_app(gateway_client):
    from gateway.pdk import ConfigError

    with pytest.raises(ConfigError, match="GATEWAY_NOPE: unknown setting"):
        gateway_client([], {"GATEWAY_NOPE": "1"})


def test_assertion_helpers_say_what_came_instead(gateway_client, mock_service):
    # key-auth's 401 is a gateway error (request-termination answers Kong's bare body).
    client = gateway_client(["key-auth"], {"GATEWAY_KEYAUTH_KEYS": "a:k1"},
                            upstream=mock_service.url)
    response = client.get("/")
    assert_gateway_error(response, 401, "No API key found in request")
    assert_not_called(mock_service)
    with pytest.raises(AssertionError, match="status: expected 200, got 401"):
        assert_gateway_error(response, 200, "x")
    with pytest.raises(AssertionError, match="header X-Nope: expected 'v', got None"):
        assert_header(response, "X-Nope", "v")
    urllib3.PoolManager().request("GET", mock_service.url + "/hit")
    with pytest.raises(AssertionError, match="1 unexpected request"):
        assert_not_called(mock_service)
