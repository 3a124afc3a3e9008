"""The shipped tiny filters end to end under gunicorn: response-headers, request-termination."""

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
