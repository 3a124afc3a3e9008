"""Upstream failures get Kong's statuses and words, within the configured timeouts."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from tests.support.fixture_server import BlackHole, closed_port_url
from tests.support.net import call

BAD_GATEWAY = "An invalid response was received from the upstream server"
TIMING_OUT = "The upstream server is timing out"


def test_refused_connection_is_502_json(gateway):
    gw = gateway({"GATEWAY_UPSTREAM_URL": closed_port_url()})
    response, data = call(gw.url, "GET", "/anything", headers={"X-Request-ID": "req-1"})
    assert response.status == 502
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(data) == {"message": BAD_GATEWAY, "request_id": "req-1"}


@pytest.mark.parametrize(("accept", "content_type", "marker"), [
    ("text/html,application/xhtml+xml;q=0.9,*/*;q=0.8", "text/html", b"<h1>502 Bad Gateway</h1>"),
    ("text/plain", "text/plain", b"Request ID: "),
    ("*/*", "application/json", b'"request_id"'),
])
def test_error_format_follows_accept(gateway, accept, content_type, marker):
    gw = gateway({"GATEWAY_UPSTREAM_URL": closed_port_url()})
    response, data = call(gw.url, "GET", "/", headers={"Accept": accept})
    assert response.headers["Content-Type"].startswith(content_type)
    assert BAD_GATEWAY.encode() in data
    assert marker in data


def test_unresolvable_host_is_kongs_503(gateway):
    """Kong's balancer: 503 "name resolution failed" (issue 18; it was a 502 here)."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": "http://no-such-host.invalid:8080"})
    response, data = call(gw.url, "GET", "/")
    assert (response.status, json.loads(data)["message"]) == (503, "name resolution failed")


def test_connection_closed_before_response_is_502(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url})
    response, data = call(gw.url, "POST", "/hangup", body=b"x")
    assert (response.status, json.loads(data)["message"]) == (502, BAD_GATEWAY)
    assert call(gw.url, "GET", "/echo")[0].status == 200  # the next request is unharmed


def test_read_timeout_is_504_in_time(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_READ_TIMEOUT": "0.5"})
    started = time.monotonic()
    response, data = call(gw.url, "GET", "/stall")
    elapsed = time.monotonic() - started
    assert (response.status, json.loads(data)["message"]) == (504, TIMING_OUT)
    assert 0.4 < elapsed < 2.5


def test_connect_timeout_is_504_in_time(gateway):
    hole = BlackHole()
    try:
        gw = gateway({"GATEWAY_UPSTREAM_URL": hole.url, "GATEWAY_CONNECT_TIMEOUT": "0.5",
                      "GATEWAY_RETRIES": "0"}, fresh=True)
        started = time.monotonic()
        response, data = call(gw.url, "GET", "/")
        elapsed = time.monotonic() - started
    finally:
        hole.close()
    assert (response.status, json.loads(data)["message"]) == (504, TIMING_OUT)
    assert 0.4 < elapsed < 2.5


@pytest.mark.parametrize("framing", ["cl=100000&n=1000", "n=1000"])
def test_failure_after_status_line_cuts_the_client_connection(gateway, fixture_server, framing):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url})
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("GET", f"/abort?{framing}")
    response = conn.getresponse()
    assert response.status == 200  # the status line had gone out
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    assert "failed after" in gw.logs()


def test_idempotent_request_fails_over_to_the_next_target(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": f"{closed_port_url()},{fixture_server.url}"},
                 fresh=True)
    statuses = [call(gw.url, "GET", "/echo")[0].status for _ in range(6)]
    assert statuses == [200] * 6
    # Refused once, then skipped for the cooldown: no further attempts on it.
    assert gw.logs().count("unreachable, skipped") == 1


def test_non_idempotent_request_is_not_retried(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": f"{closed_port_url()},{fixture_server.url}"},
                 fresh=True)
    before = fixture_server.hits["/sink"]
    response, _ = call(gw.url, "POST", "/sink", body=b"order")  # round-robin starts on the dead one
    assert response.status == 502
    assert fixture_server.hits["/sink"] == before
    assert call(gw.url, "POST", "/sink", body=b"order")[0].status == 200  # dead one cooling down


def test_retries_zero_means_one_attempt(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": f"{closed_port_url()},{fixture_server.url}",
                  "GATEWAY_RETRIES": "0"}, fresh=True)
    assert call(gw.url, "GET", "/echo")[0].status == 502


def test_a_body_shorter_than_its_content_length_is_a_400_at_once(gateway, fixture_server):
    """The client stops sending (half-closes) 3 bytes into a 10-byte body: the gateway answers
    400 instead of leaving the upstream waiting for the rest until the read timeout."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url})
    host, port = gw.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        sock.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Bad request body" in answer
    assert time.monotonic() - started < 5



def test_a_transfer_coding_other_than_chunked_is_a_501(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url})
    host, port = gw.url.removeprefix("http://").split(":")
    before = sum(fixture_server.hits.values())
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
                     b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 501 "), answer[:200]
    assert b"Transfer-Encoding other than chunked is not supported" in answer
    assert sum(fixture_server.hits.values()) == before  # the body never went upstream
