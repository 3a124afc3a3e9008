"""enrichment under real gunicorn gevent workers: the seed's test against real httpbin, the
fault matrix for fail and continue, the overlap of the two calls, and header injection.

The third party is the fixture server's /third/<kind> route (tests/support/fixture_server.py); the
gateway's URL template appends the client's path, so each test counts its own calls in
``fixture_server.hits`` and caches under its own key.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.test_key_auth import wait_for_log
from tests.support.fixture_server import FixtureServer, closed_port_url
from tests.support.net import call, first_piece
from tests.support.scripted import Script, ScriptedUpstream

TIMEOUT = 1.5
ACCESS = "Error when trying to access 3rd party service: "
DECODE = "Error when decoding 3rd party service response: "


def timed(url: str, target: str, headers: dict | None = None):
    """(response, body, seconds) of one GET."""
    started = time.perf_counter()
    response, body = call(url, target=target, headers=headers)
    return response, body, time.perf_counter() - started


def access_line(gw, request_id: str) -> dict:
    """The gateway's access-log line for ``request_id`` (written after the response)."""
    wait_for_log(gw, '"type":"access","time":')
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in gw.logs().splitlines():
            if '"type":"access"' in line and f'"request_id":"{request_id}"' in line:
                return json.loads(line)
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id}")


def third_party(fixture_server) -> str:
    return fixture_server.url + "/third/{query.kind}{path}"


@pytest.fixture
def enriched(gateway, fixture_server):
    """A gateway with enrichment against the fixture's /third, ON_ERROR as asked."""
    def start(on_error: str = "fail", url: str | None = None, **env: str):
        return gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                        "GATEWAY_FILTERS": "enrichment",
                        "GATEWAY_ENRICH_URL": url or third_party(fixture_server),
                        "GATEWAY_ENRICH_TIMEOUT": str(TIMEOUT),
                        "GATEWAY_ENRICH_BREAKER_FAILURES": "1000",
                        "GATEWAY_ENRICH_ON_ERROR": on_error, **env})
    return start


def test_seed_header_is_the_url_httpbin_echoes(gateway, httpbin):
    gw = gateway({"GATEWAY_UPSTREAM_URL": httpbin, "GATEWAY_FILTERS": "enrichment",
                  "GATEWAY_ENRICH_URL": httpbin + "/anything"})
    echoed = json.loads(call(httpbin, target="/anything")[1])["url"]
    response, body = call(gw.url, target="/anything")
    assert response.status == 200
    assert echoed == f"{httpbin}/anything"
    assert response.getheader("X-MyPlugin") == echoed
    assert json.loads(body)["url"].endswith("/anything")  # the upstream's own answer, unbuffered
    assert response.getheader("X-Gateway-Enrichment-Latency").isdigit()


# kind of third-party answer -> (message start in fail mode, takes the whole timeout)
FAULTS = {
    "refused": (ACCESS + "Failed to establish a new connection", False),
    "stall": (ACCESS + "timed out after 1.5s", True),
    "error": (ACCESS + "status 500", False),
    "nonjson": (DECODE, False),
    "nofield": (DECODE + "field 'url' is missing", False),
    "big": (ACCESS + "answer of 10485760 bytes is larger than 1048576", False),
    "bigchunked": (ACCESS + "answer is larger than 1048576 bytes", False),
    "crlf": (DECODE + "field 'url' has characters not allowed in a header value", False),
    "drip": (ACCESS + "timed out after 1.5s", True),
}


def fault_gateway(enriched, on_error: str, kind: str):
    if kind == "refused":
        return enriched(on_error, url=closed_port_url() + "/anything")
    return enriched(on_error)


def assert_timing(kind: str, seconds: float) -> None:
    if FAULTS[kind][1]:
        assert TIMEOUT * 0.95 <= seconds < TIMEOUT * 1.2, seconds
    else:
        assert seconds < TIMEOUT, seconds


def assert_next_request_works(enriched, on_error: str) -> None:
    response, _, _ = timed(enriched(on_error).url, "/echo?kind=ok")
    assert response.status == 200
    assert response.getheader("X-MyPlugin") == "/third/ok/echo"


@pytest.mark.parametrize("kind", FAULTS)
def test_fault_with_fail_answers_the_seeds_500(enriched, kind):
    gw = fault_gateway(enriched, "fail", kind)
    response, body, seconds = timed(gw.url, "/echo?kind=" + kind)
    assert response.status == 500
    assert response.getheader("Content-Type").startswith("application/json")
    message = json.loads(body)["message"]
    assert message.startswith(FAULTS[kind][0]), message
    assert response.getheader("X-MyPlugin") is None
    assert response.getheader("X-Injected") is None
    assert_timing(kind, seconds)
    assert_next_request_works(enriched, "fail")


@pytest.mark.parametrize("kind", FAULTS)
def test_fault_with_continue_passes_the_upstream_response(enriched, kind):
    gw = fault_gateway(enriched, "continue", kind)
    response, body, seconds = timed(gw.url, "/echo?kind=" + kind)
    assert response.status == 200
    assert response.getheader("X-Upstream") == "fixture"
    assert json.loads(body)["target"] == "/echo?kind=" + kind
    assert response.getheader("X-MyPlugin") is None
    assert response.getheader("X-Injected") is None
    request_id = response.getheader("X-Request-ID")
    wait_for_log(gw, f"request {request_id}: enrichment left out: {FAULTS[kind][0]}")
    assert access_line(gw, request_id)["outcomes"] == {"enrichment": "error"}
    assert_timing(kind, seconds)
    assert_next_request_works(enriched, "continue")


def test_the_seeds_error_body_follows_accept(enriched):
    gw = enriched("fail")
    response, body, _ = timed(gw.url, "/echo?kind=error", headers={"Accept": "text/html"})
    assert response.status == 500
    assert response.getheader("Content-Type").startswith("text/html")
    assert ACCESS + "status 500" in body.decode()


def test_calls_overlap_with_the_upstream(enriched):
    gw = enriched("fail")
    timed(gw.url, "/delay?ms=10&kind=ok")  # warm the connections
    response, body, seconds = timed(gw.url, "/delay?ms=300&kind=slow")
    assert response.status == 200
    assert response.getheader("X-MyPlugin") == "/third/slow/delay"
    assert json.loads(body)["delayed_ms"] == 300
    assert int(response.getheader("X-Gateway-Enrichment-Latency")) >= 300
    assert int(response.getheader("X-Gateway-Upstream-Latency")) >= 300
    assert seconds < 0.5, seconds  # in series it would take 600 ms or more


def test_missing_placeholder_value_is_a_400_without_a_call(enriched, fixture_server):
    gw = enriched("fail")
    before = sum(fixture_server.hits.values())
    response, body, _ = timed(gw.url, "/echo")
    assert response.status == 400
    assert "query parameter 'kind'" in json.loads(body)["message"]
    assert sum(fixture_server.hits.values()) == before


def test_placeholders_are_url_encoded(enriched, fixture_server):
    gw = enriched("fail")
    response, _, _ = timed(gw.url, "/echo?kind=ok%2F..%3Fx%3D1%0d%0a")
    assert response.status == 200
    assert response.getheader("X-MyPlugin") == "/third/ok%2F..%3Fx%3D1%0D%0A/echo"


def test_headers_out_are_sent_and_never_logged(gateway, fixture_server, httpbin):
    secret = "s3cr3t-enrich-key"
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "enrichment",
                  "GATEWAY_ENRICH_URL": httpbin + "/anything",
                  "GATEWAY_ENRICH_HEADERS_OUT": f"X-Api-Key:{secret}",
                  "GATEWAY_ENRICH_MAP": "X-Key=headers.X-Api-Key,X-Method=method",
                  "GATEWAY_ENRICH_ON_ERROR": "continue"})
    response, _, _ = timed(gw.url, "/echo")
    assert response.status == 200
    assert response.getheader("X-Method") == "GET"
    assert response.getheader("X-Key") == secret  # what httpbin received
    access_line(gw, response.getheader("X-Request-ID"))
    assert secret not in gw.logs()


def test_upstream_failure_skips_the_enrichment(gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": closed_port_url(), "GATEWAY_FILTERS": "enrichment",
                  "GATEWAY_ENRICH_URL": third_party(fixture_server), "GATEWAY_RETRIES": "0"})
    response, _, _ = timed(gw.url, "/skip?kind=slow")
    assert response.status == 502
    assert response.getheader("X-MyPlugin") is None
    line = access_line(gw, response.getheader("X-Request-ID"))
    assert line["outcomes"]["enrichment"] == "skipped"


def test_the_upstream_body_streams_while_enriched(enriched):
    """The header is set before the first byte, and the body is not held until it all came."""
    response, first, first_at, rest, total = first_piece(enriched("fail").url,
                                                         "/drip?n=3&ms=400&size=5&kind=ok")
    assert response.getheader("X-MyPlugin") == "/third/ok/drip"
    assert (first, rest) == (b"ddddd", b"d" * 10)
    assert first_at < 0.35 < 0.8 < total


def test_third_party_connections_are_kept_alive(enriched):
    third = FixtureServer()
    try:
        gw = enriched("fail", url=third.url + "/third/ok{path}")
        statuses = [timed(gw.url, f"/echo/{n}")[0].status for n in range(10)]
        assert statuses == [200] * 10
        assert sum(third.hits.values()) == 10
        assert third.connections == 1  # ten calls, one pooled connection
    finally:
        third.stop()


@pytest.mark.parametrize("answer, reason", [
    (b"HTTP/1.1 200 OK\r\nX-Evil: a\rSet-Cookie: x=1\r\nContent-Length: 13\r\n\r\n"
     b'{"url": "ok"}', "invalid answer (Missing expected LF after header value)"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 13\r\n\r\n"
     b'd\r\n{"url": "ok"}\r\n0\r\n\r\n',
     "invalid answer (Content-Length can't be present with Transfer-Encoding)"),
])
def test_an_invalid_third_party_answer_is_the_access_error(enriched, answer, reason):
    third = ScriptedUpstream({"/bad": Script(answer)})
    try:
        gw = enriched("fail", url=third.url + "/bad")
        response, body, _ = timed(gw.url, "/echo")
        assert response.status == 500
        assert json.loads(body)["message"] == ACCESS + reason
        assert response.getheader("X-MyPlugin") is None
        assert response.getheader("Set-Cookie") is None
        assert third.paths() == ["/bad"]
    finally:
        third.close()
