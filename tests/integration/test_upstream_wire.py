"""The upstream's bytes on the wire: framing, informational answers, hostile headers,
pooled connections, clients that leave, and failover between targets.

A real gateway (gunicorn, gevent worker) in front of a scripted upstream that
answers fixed bytes; the client side is raw sockets or http.client.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from tests.integration.test_ops import access_line, scrape
from tests.support.net import call, wait_for_port
from tests.support.processes import ROOT
from tests.support.scripted import Script, ScriptedUpstream

BAD_GATEWAY = "An invalid response was received from the upstream server"


def ok(body: bytes, *headers: str) -> bytes:
    """A keep-alive 200 with ``body`` and extra header lines."""
    head = "".join(f"{line}\r\n" for line in (*headers, f"Content-Length: {len(body)}"))
    return b"HTTP/1.1 200 OK\r\n" + head.encode() + b"\r\n" + body


SCRIPTS = {
    "/ok": Script(ok(b"hello")),
    "/head": Script(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Head: yes\r\n\r\n"),
    "/early": Script(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                     + ok(b"final")),
    "/continue-early": Script(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                              b"Link: </a.css>; rel=preload\r\n\r\n" + ok(b"final")),
    "/until-close": Script(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                           + b"x" * 100_000, close=True),
    "/conn-close": Script(ok(b"bye", "Connection: close")),
    "/trailers": Script(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Trailer"
                        b"\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: secret\r\n\r\n"),
    "/stale": Script(ok(b"fresh"), once_per_connection=True),
    "/slow": Script(ok(b"late"), delay=3),
    "/bare-cr": Script(b"HTTP/1.1 200 OK\r\nX-Evil: a\rSet-Cookie: injected=1\r\n"
                       b"Content-Length: 2\r\n\r\nok"),
    "/nul": Script(b"HTTP/1.1 200 OK\r\nX-Evil: a\0b\r\nContent-Length: 2\r\n\r\nok"),
    "/bad-name": Script(b"HTTP/1.1 200 OK\r\nX Evil: a\r\nContent-Length: 2\r\n\r\nok"),
    "/big-header": Script(ok(b"no", "X-Big: " + "x" * 64 * 1024)),
    "/many-headers": Script(ok(b"no", *(f"X-H{i}: {i}" for i in range(1000)))),
    "/fair-headers": Script(ok(b"yes", "X-Big: " + "x" * 16 * 1024,
                               *(f"X-H{i}: {i}" for i in range(90)))),
    "/te-and-cl": Script(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Length: 50\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
}


@pytest.fixture
def scripted():
    upstream = ScriptedUpstream(SCRIPTS)
    yield upstream
    upstream.close()


@pytest.fixture
def proxied(gateway, scripted):
    """A fresh gateway (one worker, empty pool) in front of the scripted upstream."""
    return gateway({"GATEWAY_UPSTREAM_URL": scripted.url}, fresh=True)


def raw(gw, request: bytes, timeout: float = 5) -> bytes:
    """Send ``request`` on a new connection and read until the gateway closes it."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while piece := sock.recv(65536):
            received += piece
    return received


def get(gw, path: str, method: str = "GET", body: bytes | None = None):
    response, data = call(gw.url, method, path, headers={"X-Request-ID": "wire-1"}, body=body)
    return response, data


# -- issue 12: the cases of the lean exchange that had no test


def test_head_with_content_length_ends_at_the_head(proxied, scripted):
    started = time.monotonic()
    for _ in range(2):
        response, data = get(proxied, "/head", "HEAD")
        assert (response.status, data) == (200, b"")
        assert response.headers["Content-Length"] == "1000"
        assert response.headers["X-Head"] == "yes"
    assert time.monotonic() - started < 2  # no wait for a body that never comes
    assert [seen.connection for seen in scripted.requests] == [1, 1]  # kept and reused


@pytest.mark.parametrize("path", ["/early", "/continue-early"])
def test_informational_answers_are_skipped(proxied, path):
    response, data = get(proxied, path)
    assert (response.status, data) == (200, b"final")
    assert "Link" not in response.headers  # the 103's header is not the final answer's


def test_close_delimited_body_is_passed_whole_and_the_connection_not_reused(proxied,
                                                                           scripted):
    response, data = get(proxied, "/until-close")
    assert (response.status, data) == (200, b"x" * 100_000)
    assert get(proxied, "/ok")[1] == b"hello"
    assert [seen.connection for seen in scripted.requests] == [1, 2]


def test_connection_close_from_the_upstream_is_not_reused(proxied, scripted):
    assert get(proxied, "/conn-close")[1] == b"bye"
    assert get(proxied, "/ok")[1] == b"hello"
    # The scripted upstream kept its side open: only the gateway could choose a new one.
    assert [seen.connection for seen in scripted.requests] == [1, 2]


def test_trailers_are_dropped(proxied):
    answer = raw(proxied, b"GET /trailers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"secret" not in answer and b"X-Trailer" not in head
    assert b"hello" in body


def test_keep_alive_reuse_of_upstream_connections(proxied, scripted):
    assert [get(proxied, "/ok")[1] for _ in range(3)] == [b"hello"] * 3
    assert {seen.connection for seen in scripted.requests} == {1}


def test_pooled_connection_closed_by_the_upstream_is_retried_on_a_new_one(proxied, scripted):
    assert get(proxied, "/stale")[1] == b"fresh"
    response, data = get(proxied, "/stale")  # the pooled connection is closed unanswered
    assert (response.status, data) == (200, b"fresh")
    assert [seen.connection for seen in scripted.requests] == [1, 1, 2]


def test_post_on_a_pooled_connection_closed_by_the_upstream_is_not_sent_again(proxied,
                                                                              scripted):
    assert get(proxied, "/stale", "POST", b"once")[0].status == 200
    response, data = get(proxied, "/stale", "POST", b"once")
    assert (response.status, json.loads(data)["message"]) == (502, BAD_GATEWAY)
    assert [seen.connection for seen in scripted.requests] == [1, 1]


# -- issue 10: hostile answers from the upstream


@pytest.mark.parametrize("path", ["/bare-cr", "/nul", "/bad-name"])
def test_header_that_could_split_the_response_is_502(proxied, path):
    answer = raw(proxied, f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-ID: split-1\r\n"
                          "Connection: close\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 502 ")
    assert b"injected" not in answer and b"Evil" not in answer
    assert json.loads(body) == {"message": BAD_GATEWAY, "request_id": "split-1"}


def test_transfer_encoding_with_content_length_is_502(proxied):
    answer = raw(proxied, b"GET /te-and-cl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = answer.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 502 ")
    assert b"Content-Length: 50" not in head


# -- issue 10 point 8: a client that leaves while the upstream is slow


def _leave_a_slow_request(gw, scripted, path: str) -> dict:
    """Ask ``path`` (the scripted /slow), leave after a second as curl --max-time 1 does;
    the request's access-log line, once the upstream was let go at once."""
    client = socket.create_connection(("127.0.0.1", gw.port))
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-ID: gone-1\r\n\r\n".encode())
    time.sleep(1)
    client.close()
    left = time.monotonic()
    line = access_line(gw, "gone-1")
    assert (line["status"], line["outcomes"]) == (499, {"upstream": "client-closed"})
    assert scripted.hangups and scripted.hangups[0] - left < 1.5  # the upstream was let go
    metrics = scrape(gw.url)
    assert metrics['gateway_upstream_errors_total{kind="client-closed"}'] == 1
    assert metrics['gateway_http_requests_total{source="gateway",status_class="4xx"}'] == 1
    return line


def test_client_that_leaves_is_noticed_and_logged_499(proxied, scripted):
    _leave_a_slow_request(proxied, scripted, "/slow")


def test_client_that_leaves_a_routed_request_is_noticed_on_its_services_upstream(gateway,
                                                                                scripted):
    """A declarative file's service has its own Upstream: it watches the client too."""
    kong = {"_format_version": "3.0", "services": [
        {"name": "scripted", "url": scripted.url, "read_timeout": 10000,
         "routes": [{"name": "slow", "paths": ["/svc"]}]}]}
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(kong)}, fresh=True)
    line = _leave_a_slow_request(gw, scripted, "/svc/slow")
    assert (line["service"], line["route"]) == ("scripted", "slow")
    metrics = scrape(gw.url)
    assert metrics['gateway_route_requests_total{route="slow",service="scripted",'
                   'status_class="4xx"}'] == 1


# -- issue 10 point 13: a target that dies mid-request


def _target_process() -> tuple[subprocess.Popen, str]:
    """The fixture server in a process of its own, to be killed."""
    code = ("import time; from tests.support.fixture_server import FixtureServer; "
            "s = FixtureServer(); print(s.port, flush=True); time.sleep(600)")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                               text=True)
    port = int(process.stdout.readline())
    wait_for_port(port, process)
    return process, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(("method", "status"), [("GET", 200), ("POST", 502)])
def test_target_killed_mid_request(gateway, fixture_server, method, status):
    doomed, doomed_url = _target_process()
    try:
        gw = gateway({"GATEWAY_UPSTREAM_URL": f"{doomed_url},{fixture_server.url}"},
                     fresh=True)
        # Round-robin from the first target: warm both up, the third request goes to the
        # doomed one, on the connection the warm-up left in the pool.
        assert [call(gw.url, "GET", "/echo")[0].status for _ in range(2)] == [200, 200]
        conn_started = time.monotonic()
        killer = subprocess.Popen(["sh", "-c", f"sleep 0.5; kill -9 {doomed.pid}"])
        response, data = call(gw.url, method, "/delay?ms=1500", body=b"x" * 10)
        killer.wait()
    finally:
        doomed.kill()
        doomed.wait()
    assert response.status == status
    if method == "GET":  # sent again to the live target, which answered in full
        assert json.loads(data)["delayed_ms"] == 1500
        assert time.monotonic() - conn_started >= 1.9  # 0.5 s on the killed one first
    else:  # it may have reached the upstream: never sent twice
        assert json.loads(data)["message"] == BAD_GATEWAY


# -- issue 24: upstream answer heads are bounded, as nginx's buffer and gunicorn's count

@pytest.mark.parametrize("path, reason", [
    ("/big-header", "a header section larger than 32768 bytes"),
    ("/many-headers", "more than 100 header fields"),
])
def test_an_oversized_upstream_head_is_a_502_naming_the_upstream(proxied, scripted, path,
                                                                    reason):
    response, data = get(proxied, path)
    assert response.status == 502
    assert json.loads(data)["message"] == BAD_GATEWAY
    assert f"upstream {scripted.url} sent an invalid answer: {reason}" in proxied.logs()


def test_a_head_within_the_bounds_passes(proxied):
    response, data = get(proxied, "/fair-headers")
    assert response.status == 200 and data == b"yes"
    assert len(response.headers["X-Big"]) == 16 * 1024


def test_the_head_bound_is_a_setting(gateway, scripted):
    small = gateway({"GATEWAY_UPSTREAM_URL": scripted.url,
                     "GATEWAY_UPSTREAM_MAX_HEADER_BYTES": "8k"}, fresh=True)
    assert get(small, "/fair-headers")[0].status == 502
