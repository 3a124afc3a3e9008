"""Hostile requests sent as raw bytes to a real gateway (issue 10): what must never be
passed upstream, and what must never reach a log line."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from tests.support.net import call, raw_exchange, status_of

CLOSE = b"Connection: close\r\n"


@pytest.fixture(params=["false", "true"], ids=["host-rewritten", "preserve-host"])
def prefixed(request, gateway, fixture_server):
    """A gateway in front of the fixture server's /base prefix."""
    return gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url + "/base",
                    "GATEWAY_PRESERVE_HOST": request.param})


def upstream_calls(fixture_server) -> int:
    return sum(fixture_server.hits.values())


def refused(gw, fixture_server, request: bytes) -> tuple[int, bytes]:
    """(status, body) of ``request``, asserting the upstream saw nothing of it."""
    before = upstream_calls(fixture_server), fixture_server.connections
    response = raw_exchange(gw.url, request)
    assert (upstream_calls(fixture_server), fixture_server.connections) == before
    return status_of(response), response.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("request_line, status", [
    (b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n", 400),
    (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n", 400),
    (b"TRACE / HTTP/1.1\r\nHost: a\r\n", 405),
], ids=["connect", "options-asterisk", "trace"])
def test_targets_outside_the_prefix_and_trace_are_refused(prefixed, fixture_server,
                                                          request_line, status):
    got, body = refused(prefixed, fixture_server, request_line + CLOSE + b"\r\n")
    assert got == status
    assert "request_id" in json.loads(body)


@pytest.mark.parametrize("head", [
    b"GET /echo HTTP/1.1\r\n",
    b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
    b"GET /echo HTTP/1.1\r\nHost: a b/c\r\n",
    b"GET /echo HTTP/1.1\r\nHost: a\tb\r\n",
    b"GET /echo HTTP/1.1\r\nHost: a\xe9b\r\n",
    b"GET /echo HTTP/1.1\r\nHost: \r\n",
], ids=["missing", "repeated", "space-slash", "tab", "non-ascii", "empty"])
def test_a_missing_repeated_or_invalid_host_is_400(prefixed, fixture_server, head):
    status, _ = refused(prefixed, fixture_server, head + CLOSE + b"\r\n")
    assert status == 400


def test_a_valid_host_and_http10_without_host_pass(prefixed):
    for head in (b"GET /echo HTTP/1.1\r\nHost: [::1]:8080\r\n", b"GET /echo HTTP/1.0\r\n"):
        response = raw_exchange(prefixed.url, head + CLOSE + b"\r\n")
        assert status_of(response) == 200


def test_content_length_goes_upstream_as_the_parsed_number(prefixed):
    response = raw_exchange(prefixed.url, b"POST /echo HTTP/1.1\r\nHost: a\r\n"
                            b"Content-Length: 005\r\n" + CLOSE + b"\r\nhello")
    echo = json.loads(response.partition(b"\r\n\r\n")[2])
    assert status_of(response) == 200
    assert ["Content-Length", "5"] in echo["headers"]
    assert echo["body_size"] == 5


@pytest.mark.parametrize("framing", [
    b"Content-Length: 99999999999999999999999\r\n\r\nhello",
    b"Content-Length: 9223372036854775808\r\n\r\nhello",
    b"Transfer-Encoding: chunked\r\n\r\n8000000000000000\r\nhello",
], ids=["length-huge", "length-2^63", "chunk-2^63"])
def test_a_length_or_chunk_size_past_2_63_is_400(prefixed, fixture_server, framing):
    status, _ = refused(prefixed, fixture_server,
                        b"POST /echo HTTP/1.1\r\nHost: a\r\n" + CLOSE + framing)
    assert status == 400


def test_only_kongs_proxy_headers_are_dropped(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url})
    _, data = call(gw.url, "GET", "/echo", headers={
        "Proxy": "http://evil.example", "Proxy-Connection": "keep-alive",
        "Proxy-Authorization": "Basic eA==", "Proxy-Something": "mine"})
    names = {name.lower(): value for name, value in json.loads(data)["headers"]}
    assert names["proxy-something"] == "mine"
    assert not names.keys() & {"proxy", "proxy-connection", "proxy-authorization"}


def test_proxy_authenticate_is_dropped_from_responses(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url})
    response, _ = call(gw.url, "GET", "/respond?Proxy-Authenticate=Basic&Proxy-Mine=kept")
    assert response.headers.get("Proxy-Authenticate") is None
    assert response.headers.get("Proxy-Mine") == "kept"


SECRET = "s3cr3t"


def test_no_query_or_header_value_reaches_any_log(gateway, fixture_server):
    """gunicorn logs what it refuses (request line, header lines, values): scrubbed."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url}, fresh=True)
    secret = SECRET.encode()
    for request in (
        b"GET /k?apikey=" + secret + b"1&x=\x01 HTTP/1.1\r\nHost: a\r\n",
        b"GET /k?apikey=" + secret + b"2 HTTP/1.1\r\nHost: a\r\nX-Key: " + secret + b"\x01\r\n",
        b"GET /k HTTP/1.1\r\nHost: a\r\nExpect: " + secret + b"3\r\n",
        b"GET /k HTTP/1.1\r\nHost: a\r\n" + secret + b"4 name: x\r\n",
        b"GET /k HTTP/1.1\r\nHost: a\r\nX-Key: " + secret + b"5\r\n folded\r\n",
        b"GET /k HTTP/1.1\r\nHost: " + secret + b"6 x\r\n",
        b"GET /k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + secret + b"7\r\n",
        b"GET /echo?apikey=" + secret + b"8 HTTP/1.1\r\nHost: a\r\nX-Key: " + secret + b"9\r\n",
    ):
        assert status_of(raw_exchange(gw.url, request + CLOSE + b"\r\n")) != 0
    gw.stop()
    logs = gw.logs()
    assert "Invalid request from ip=" in logs  # gunicorn did log the refusals
    assert SECRET not in logs


def enriched_by_httpbin(gateway, httpbin, field: str, **env: str):
    """A gateway whose enrichment sets X-MyPlugin from ``field`` of httpbin's echo."""
    return gateway({"GATEWAY_UPSTREAM_URL": httpbin, "GATEWAY_FILTERS": "enrichment",
                    "GATEWAY_ENRICH_URL": httpbin + "/anything?v={query.v}",
                    "GATEWAY_ENRICH_FIELD": field, **env})


def test_an_enrichment_value_over_the_limit_is_refused_naming_the_field(gateway, httpbin):
    big = {"GATEWAY_ENRICH_HEADERS_OUT": "X-Big:" + "x" * 5000}
    gw = enriched_by_httpbin(gateway, httpbin, "headers.X-Big", **big)
    response, body = call(gw.url, "GET", "/get?v=1")
    assert response.status == 500
    assert "field 'headers.X-Big' is 5000 bytes, over the 4096" in json.loads(body)["message"]
    gw = enriched_by_httpbin(gateway, httpbin, "headers.X-Big", GATEWAY_ENRICH_MAX_VALUE="5000",
                             **big)
    response, _ = call(gw.url, "GET", "/get?v=1")
    assert response.status == 200
    assert response.headers["X-MyPlugin"] == "x" * 5000


def test_a_non_ascii_enrichment_value_goes_as_utf8(gateway, httpbin):
    gw = enriched_by_httpbin(gateway, httpbin, "args.v")
    response = raw_exchange(gw.url, b"GET /get?v=caf%C3%A9%E2%82%AC HTTP/1.1\r\nHost: a\r\n"
                            + CLOSE + b"\r\n")
    assert status_of(response) == 200
    assert b"\r\nX-MyPlugin: caf\xc3\xa9\xe2\x82\xac\r\n" in response


def test_absolute_redirects_come_back_through_the_gateway(gateway, httpbin):
    gw = gateway({"GATEWAY_UPSTREAM_URL": httpbin})
    response, _ = call(gw.url, "GET", "/absolute-redirect/2")
    assert response.status == 302
    assert response.headers["Location"] == gw.url + "/absolute-redirect/1"
    target = f"/redirect-to?url={httpbin}/get%3Fa%3D1&status_code=307"
    response, _ = call(gw.url, "GET", target)
    assert response.headers["Location"] == gw.url + "/get?a=1"


def test_the_rewrite_is_off_with_rewrite_location_false(gateway, httpbin):
    gw = gateway({"GATEWAY_UPSTREAM_URL": httpbin, "GATEWAY_REWRITE_LOCATION": "false"})
    response, _ = call(gw.url, "GET", "/absolute-redirect/2")
    assert response.headers["Location"] == httpbin + "/absolute-redirect/1"


def test_redirects_under_the_upstream_prefix_lose_the_prefix(gateway, fixture_server):
    upstream = fixture_server.url + "/respond"
    gw = gateway({"GATEWAY_UPSTREAM_URL": upstream})
    response, _ = call(gw.url, "GET", f"/?Location={upstream}/x&Content-Location=/respond/y"
                                      f"&Refresh=0;url={upstream}/z")
    assert response.headers["Location"] == gw.url + "/x"
    assert response.headers["Content-Location"] == "/y"
    assert response.headers["Refresh"] == f"0;url={gw.url}/z"


def send_slowly(url: str, pieces: list[bytes], pause: float, timeout: float = 15) -> bytes:
    """Send ``pieces`` with ``pause`` seconds between them; all the server sent back."""
    host, port = url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        for index, piece in enumerate(pieces):
            if index:
                time.sleep(pause)
            try:
                sock.sendall(piece)
            except OSError:
                break  # the gateway answered and closed already
        try:
            while data := sock.recv(65536):
                received += data
        except (TimeoutError, ConnectionResetError):
            pass
    return received


@pytest.fixture
def body_timeout(gateway, fixture_server):
    return gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_BODY_TIMEOUT": "1"})


UPLOAD = b"POST /upload HTTP/1.1\r\nHost: a\r\n"


@pytest.mark.parametrize("framing", [b"Content-Length: 10\r\n\r\n",
                                     b"Transfer-Encoding: chunked\r\n\r\n"],
                         ids=["length", "chunked"])
def test_a_body_that_never_starts_is_408_and_nothing_goes_upstream(body_timeout, fixture_server,
                                                                  framing):
    before = upstream_calls(fixture_server), fixture_server.connections
    response = raw_exchange(body_timeout.url, UPLOAD + framing, timeout=15)
    assert status_of(response) == 408
    assert json.loads(response.partition(b"\r\n\r\n")[2])["message"] == "Request timeout"
    assert (upstream_calls(fixture_server), fixture_server.connections) == before


def test_a_small_body_that_stops_midway_is_408_and_nothing_goes_upstream(body_timeout,
                                                                         fixture_server):
    """A body up to 256 KiB is read whole before the upstream is called (it is then sent
    with the head, and can be sent again), so a stalled one never reaches the upstream."""
    before = upstream_calls(fixture_server), fixture_server.connections
    response = raw_exchange(body_timeout.url, UPLOAD + b"Content-Length: 9000\r\n\r\n"
                            + b"x" * 3000, timeout=15)
    assert status_of(response) == 408
    assert (upstream_calls(fixture_server), fixture_server.connections) == before


def test_a_body_that_stops_midway_drops_the_upstream_connection(body_timeout, fixture_server):
    """A larger body streams; when it stops, the upstream sees it cut."""
    cut = fixture_server.hits["upload:cut"]
    response = raw_exchange(body_timeout.url, UPLOAD + b"Content-Length: 1048576\r\n\r\n"
                            + b"x" * 300_000, timeout=15)
    assert status_of(response) == 408
    deadline = time.monotonic() + 10
    while fixture_server.hits["upload:cut"] == cut and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fixture_server.hits["upload:cut"] == cut + 1  # the upstream saw its body cut


def test_the_body_timeout_is_between_pieces_not_for_the_whole_body(body_timeout):
    """Six pieces 0.4 s apart take longer than the 1 s timeout, and arrive whole."""
    pieces = [UPLOAD + b"Content-Length: 6\r\n" + CLOSE + b"\r\n"] + [b"x"] * 6
    response = send_slowly(body_timeout.url, pieces, 0.4)
    assert status_of(response) == 200
    assert json.loads(response.partition(b"\r\n\r\n")[2])["received"] == 6


def one_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) read from a keep-alive ``sock``."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)\r\nContent-Length: *(\d+)", head)[1])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_idle_keepalive_connections_make_room_for_new_clients(gateway, fixture_server):
    """Twice as many idle keep-alive clients as connection slots: each one is still
    answered, the oldest idle connections are closed to make room, the newest stay."""
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                  "GATEWAY_WORKER_CONNECTIONS": "20"}, fresh=True)
    held = []
    for _ in range(40):
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
        assert one_response(sock).startswith(b"HTTP/1.1 200 ")  # answered, not queued
        held.append(sock)
    response, _ = call(gw.url, "GET", "/echo")
    assert response.status == 200
    oldest, newest = held[0], held[-1]
    assert oldest.recv(1) == b""  # closed by the gateway
    newest.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
    assert one_response(newest).startswith(b"HTTP/1.1 200 ")
    for sock in held:
        sock.close()
