"""The external-service client on the gateway's own wire (issue 12 point 2): pooled
keep-alive connections reused only after a whole answer, a pooled connection the service
closed replaced for an idempotent call only, invalid answers refused (a header section past
the upstream's bounds too), the request's framing. Against a scripted third party that
answers fixed bytes."""

from __future__ import annotations

import time

import pytest

from gateway.config import Settings, load
from gateway.pdk import CallFailed, Service, ServiceOptions
from gateway.proxy.wire import DEFAULT_LIMITS
from tests.support.scripted import Script, ScriptedUpstream

SETTINGS = load(Settings, {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9"})


def json_answer(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in (*headers, f"Content-Length: {len(body)}"))
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + head.encode() + b"\r\n" \
        + body


#: The fields json_answer(b"{}") writes itself.
OWN_FIELDS = ("Content-Type: application/json", "Content-Length: 2")


def head_bytes(*lines: str) -> int:
    """A header section's size as the gateway counts it: each field's line and its CRLF."""
    return sum(len(line) + 2 for line in lines)


def padded_to(size: int) -> str:
    """The one field that brings json_answer(b"{}")'s header section to ``size`` bytes."""
    return "X-Pad: " + "x" * (size - head_bytes(*OWN_FIELDS, "X-Pad: "))


def fields(count: int) -> list[str]:
    """Fields that bring json_answer(b"{}")'s header section to ``count`` fields."""
    return [f"X-Field-{i}: v" for i in range(count - len(OWN_FIELDS))]


LIMITS = DEFAULT_LIMITS  # GATEWAY_UPSTREAM_MAX_HEADER_BYTES (32k) and 100 fields

SCRIPTS = {
    "/ok": Script(json_answer(b'{"url": "ok"}')),
    "/close": Script(json_answer(b'{"url": "bye"}', "Connection: close")),
    "/early": Script(b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
                     + json_answer(b'{"url": "final"}')),
    "/chunked": Script(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"4\r\n{\"ur\r\n9\r\nl\": \"ch\"}\r\n0\r\nX-Trailer: t\r\n\r\n"),
    "/stale": Script(json_answer(b'{"url": "fresh"}'), once_per_connection=True),
    "/short": Script(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"url\"", close=True),
    "/big": Script(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"  # 1 MiB
                   + (b"10000\r\n" + b"x" * 0x10000 + b"\r\n") * 16 + b"0\r\n\r\n"),
    "/bare-cr": Script(b"HTTP/1.1 200 OK\r\nX-Evil: a\rSet-Cookie: x=1\r\n"
                       b"Content-Length: 2\r\n\r\n{}"),
    "/te-and-cl": Script(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Length: 50\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
    "/not-http": Script(b"SSH-2.0-OpenSSH_9.6\r\n", close=True),
    "/head-at-limit": Script(json_answer(b"{}", padded_to(LIMITS.max_bytes))),
    "/head-over": Script(json_answer(b"{}", padded_to(LIMITS.max_bytes + 1))),
    "/fields-at-limit": Script(json_answer(b"{}", *fields(LIMITS.max_fields))),
    "/fields-over": Script(json_answer(b"{}", *fields(LIMITS.max_fields + 1))),
    # A head that never ends, on a connection left open: refused on its size, not a timeout.
    "/head-unended": Script(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"x" * (2 * LIMITS.max_bytes)),
}


@pytest.fixture
def third():
    server = ScriptedUpstream(SCRIPTS)
    yield server
    server.close()


def service(**options) -> Service:
    return Service("svc-wire", SETTINGS, ServiceOptions(**options))


def connections(third: ScriptedUpstream) -> list[int]:
    return [seen.connection for seen in third.requests]


def test_connections_are_kept_and_reused(third):
    svc = service()
    assert [svc.get_json(third.url + "/ok") for _ in range(3)] == [{"url": "ok"}] * 3
    assert connections(third) == [1, 1, 1]


@pytest.mark.parametrize("path, value", [("/early", "final"), ("/chunked", "ch")])
def test_informational_answers_and_trailers_are_skipped(third, path, value):
    svc = service()
    assert svc.get_json(third.url + path) == {"url": value}
    svc.get_json(third.url + "/ok")
    assert connections(third) == [1, 1]


def test_connection_close_from_the_service_is_not_reused(third):
    svc = service()
    assert svc.get_json(third.url + "/close") == {"url": "bye"}
    svc.get_json(third.url + "/ok")
    assert connections(third) == [1, 2]


def test_a_pooled_connection_the_service_closed_is_replaced_for_a_get(third):
    svc = service()
    assert [svc.get_json(third.url + "/stale") for _ in range(2)] == [{"url": "fresh"}] * 2
    assert connections(third) == [1, 1, 2]  # the closed one, then a new one


def test_a_post_on_a_pooled_connection_the_service_closed_is_not_sent_again(third):
    svc = service()
    svc.call("POST", third.url + "/stale", body=b"{}").get()
    result = svc.call("POST", third.url + "/stale", body=b"{}")
    assert str(result.error) == "Connection aborted without an answer"
    assert connections(third) == [1, 1]


@pytest.mark.parametrize("path, reason", [
    ("/bare-cr", "invalid answer (Missing expected LF after header value)"),
    ("/te-and-cl", "invalid answer (Content-Length can't be present with Transfer-Encoding)"),
    ("/not-http", "invalid answer (Expected HTTP/"),
    ("/short", "Connection aborted before the answer ended"),
])
def test_an_invalid_or_cut_answer_fails_and_its_connection_is_dropped(third, path, reason):
    svc = service()
    with pytest.raises(CallFailed) as caught:
        svc.get_json(third.url + path)
    assert str(caught.value).startswith(reason)
    assert svc.get_json(third.url + "/ok") == {"url": "ok"}
    assert connections(third) == [1, 2]


@pytest.mark.parametrize("path, reason", [
    ("/head-over", f"invalid answer (a header section larger than {LIMITS.max_bytes} bytes)"),
    ("/head-unended", f"invalid answer (a header section larger than {LIMITS.max_bytes} bytes)"),
    ("/fields-over", f"invalid answer (more than {LIMITS.max_fields} header fields)"),
])
def test_a_header_section_past_the_upstreams_bounds_fails_at_once(third, path, reason):
    """As an upstream's answer: past GATEWAY_UPSTREAM_MAX_HEADER_BYTES or 100 fields, a
    CallFailed naming the bound, well before the read timeout; the connection is dropped."""
    svc = service(timeout=5)
    started = time.monotonic()
    with pytest.raises(CallFailed) as caught:
        svc.get_json(third.url + path)
    assert time.monotonic() - started < 1
    assert str(caught.value) == reason
    assert svc.get_json(third.url + "/ok") == {"url": "ok"}
    assert connections(third) == [1, 2]


@pytest.mark.parametrize("path", ["/head-at-limit", "/fields-at-limit"])
def test_a_header_section_at_the_bounds_passes(third, path):
    assert service().get_json(third.url + path) == {}


def test_the_header_bytes_bound_is_the_upstreams_setting(third):
    settings = load(Settings, {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9",
                               "GATEWAY_UPSTREAM_MAX_HEADER_BYTES": "64k"})
    svc = Service("svc-wire", settings, ServiceOptions())
    assert svc.get_json(third.url + "/head-over") == {}


def test_an_answer_refused_as_too_large_drops_its_connection(third):
    """The rest of the answer is not read: the connection cannot carry another call."""
    svc = service(max_bytes=512)
    with pytest.raises(CallFailed, match="answer is larger than 512 bytes"):
        svc.get_json(third.url + "/big")
    svc.get_json(third.url + "/ok")
    assert connections(third) == [1, 2]


def test_the_request_head_and_body_as_the_service_receives_them(mock_service):
    svc = Service("svc-head", SETTINGS, ServiceOptions(headers={"X-Api-Key": "k"}))
    svc.call("POST", mock_service.url + "/post?q=a%20b", body=b'{"a": 1}',
             headers={"content-length": "999", "Accept-Encoding": "gzip"}).get()
    svc.call("POST", mock_service.url + "/empty").get()
    sent, empty = mock_service.requests
    assert (sent.method, sent.path, sent.query, sent.body) == ("POST", "/post", {"q": "a b"},
                                                               b'{"a": 1}')
    assert sent.header("Host") == mock_service.url.removeprefix("http://")
    assert sent.header("Content-Length") == "8"  # the body's, not the caller's
    assert sent.header("X-Api-Key") == "k"
    assert sent.header("Accept-Encoding") == "gzip"
    assert sent.header("User-Agent").startswith("python-urllib3/")
    assert (empty.header("Content-Length"), empty.header("Accept-Encoding")) == ("0", "identity")


def test_the_answers_headers_are_looked_up_whatever_the_case(mock_service):
    url = mock_service.route("/typed", json={}, headers={"X-Kind": "a"})
    result = service().call("GET", url, decode=lambda a: (a.headers["x-kind"],
                                                          a.headers["CONTENT-TYPE"]))
    assert result.get() == ("a", "application/json")


def test_a_header_that_would_inject_a_line_is_refused(mock_service):
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        service().client.call("GET", mock_service.url + "/x", {"X-A": "a\r\nX-B: b"})
    assert mock_service.requests == []


def test_a_read_past_the_read_timeout_fails_naming_it(mock_service):
    url = mock_service.route("/slow", json={}, delay=0.5)
    with pytest.raises(CallFailed) as caught:
        service(timeout=5, read_timeout=0.2).get_json(url)
    assert str(caught.value) == "read timed out after 0.2s"
