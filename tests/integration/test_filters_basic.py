"""The shipped small filters end to end under gunicorn: response-headers, request-termination,
ip-restriction, bot-detection, correlation-id."""

from __future__ import annotations

import json

from tests.support.net import call


def test_response_headers_adds_and_removes(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "response-headers",
                  "GATEWAY_RESPONSE_HEADERS_ADD": "X-Frame-Options:DENY,X-Team:edge",
                  "GATEWAY_RESPONSE_HEADERS_REMOVE": "X-Upstream"})
    response, _ = call(gw.url, "GET", "/echo")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Team"] == "edge"
    assert response.headers.get("X-Upstream") is None


def test_request_termination_answers_without_calling_the_upstream(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                  "GATEWAY_FILTERS": "request-termination,response-headers",
                  "GATEWAY_TERMINATION_STATUS": "503", "GATEWAY_TERMINATION_MESSAGE": "Back soon",
                  "GATEWAY_RESPONSE_HEADERS_ADD": "Retry-After:120"})
    before = fixture_server.hits["/echo"]
    response, data = call(gw.url, "GET", "/echo")
    assert response.status == 503
    assert json.loads(data)["message"] == "Back soon"
    assert response.headers["Retry-After"] == "120"  # response phase still ran
    assert fixture_server.hits["/echo"] == before


def test_ip_restriction_sees_the_peer_not_a_forged_x_forwarded_for(gateway, fixture_server):
    """No trusted hop: an X-Forwarded-For claiming an allowed address changes nothing."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "ip-restriction",
                  "GATEWAY_IP_RESTRICTION_ALLOW": "10.0.0.0/8"})
    response, data = call(gw.url, "GET", "/echo", {"X-Forwarded-For": "10.1.1.1"})
    assert response.status == 403
    assert json.loads(data)["message"] == "IP address not allowed: 127.0.0.1"
    trusted = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                       "GATEWAY_FILTERS": "ip-restriction", "GATEWAY_TRUSTED_PROXIES": "1",
                       "GATEWAY_IP_RESTRICTION_ALLOW": "10.0.0.0/8"})
    assert call(trusted.url, "GET", "/echo", {"X-Forwarded-For": "10.1.1.1"})[0].status == 200


def test_bot_detection_and_correlation_id_under_gunicorn(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                  "GATEWAY_FILTERS": "bot-detection,correlation-id",
                  "GATEWAY_CORRELATION_ID_ECHO_DOWNSTREAM": "true"})
    response, _ = call(gw.url, "GET", "/echo", {"User-Agent": "Googlebot/2.1"})
    assert response.status == 403
    first = call(gw.url, "GET", "/echo", {"User-Agent": "curl/8.0"})[0].headers["Kong-Request-ID"]
    second = call(gw.url, "GET", "/echo")[0].headers["Kong-Request-ID"]
    assert first.split("#")[0] == second.split("#")[0]  # one worker: one uuid, counted on
    assert int(second.split("#")[1]) > int(first.split("#")[1])
