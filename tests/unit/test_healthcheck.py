"""Health checks of upstream targets: lua-resty-healthcheck's counters and states, Kong's
balancer threshold, the healthchecks schema's words, and real probes against mock servers."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from gateway.proxy.healthcheck import (
    HTTP,
    SUCCESS,
    TCP,
    TIMEOUT,
    Checker,
    TargetHealth,
    balancer_healthy,
    probe_target,
)
from gateway.routing.healthchecks import DEFAULT, healthchecks
from gateway.schema import Invalid
from gateway.testing.mock import MockService
from gateway.testing.servers import free_port


def checks(**record):
    return healthchecks(record, "upstreams[up].healthchecks")


def target() -> TargetHealth:
    return TargetHealth("127.0.0.1", 80)


# -- counters and states (lua-resty-healthcheck incr_counter)

def test_a_failure_counter_reaching_its_limit_makes_the_target_unhealthy():
    health = target()
    for _ in range(2):
        health.record(HTTP, 3, "passive")
    assert health.up
    health.record(HTTP, 3, "passive")
    assert not health.up and health.state == "unhealthy"


def test_a_limit_of_zero_ignores_the_report():
    health = target()
    for _ in range(300):
        health.record(TCP, 0, "passive")
    assert health.up and health.counts == [0, 0, 0, 0]


def test_a_counted_success_clears_the_failures_so_they_must_be_consecutive():
    health = target()
    health.record(HTTP, 2, "passive")
    assert health.state == "mostly_healthy" and health.up
    health.record(SUCCESS, 1, "passive")
    assert health.counts[HTTP] == 0
    health.record(HTTP, 2, "passive")
    assert health.up


def test_without_a_success_limit_failures_accumulate_across_successes():
    """healthy.successes 0 (Kong's default): success reports are ignored, so nothing
    clears the failure counters."""
    health = target()
    health.record(HTTP, 2, "passive")
    for _ in range(10):
        health.record(SUCCESS, 0, "passive")
    health.record(HTTP, 2, "passive")
    assert not health.up


def test_each_failure_kind_counts_against_its_own_limit():
    health = target()
    health.record(TCP, 2, "passive")
    health.record(TIMEOUT, 2, "passive")
    health.record(HTTP, 2, "passive")
    assert health.up and health.counts == [0, 1, 1, 1]
    health.record(TIMEOUT, 2, "passive")
    assert not health.up


def test_an_unhealthy_target_needs_consecutive_successes_to_recover():
    health = target()
    health.record(TCP, 1, "active")
    assert not health.up
    health.record(TCP, 1, "active")  # fully unhealthy: failures ignored
    assert health.counts[TCP] == 1
    health.record(SUCCESS, 2, "active")
    assert health.state == "mostly_unhealthy" and not health.up
    health.record(TCP, 1, "active")  # clears the success counter
    assert health.counts[SUCCESS] == 0 and health.state == "unhealthy"
    health.record(SUCCESS, 2, "active")
    health.record(SUCCESS, 2, "active")
    assert health.up and health.state == "healthy"


def test_statuses_count_as_the_lists_say():
    rules = checks(passive={"unhealthy": {"http_failures": 1}}).passive
    health = target()
    health.record_status(418, rules, "passive")  # in neither list: ignored
    health.record_status(200, rules, "passive")  # a success, but successes is 0
    assert health.up
    health.record_status(503, rules, "passive")
    assert not health.up


def test_no_valid_status_line_is_an_http_failure():
    rules = checks(active={"unhealthy": {"http_failures": 1}}).active
    assert rules.counter_of(0) == HTTP and rules.counter_of(302) == SUCCESS
    assert rules.counter_of(201) is None


# -- the balancer (kong/runloop/balancer/balancers.lua updateStatus)

@pytest.mark.parametrize("threshold", [0, 25, 75, 99, 100])
def test_the_balancer_is_healthy_while_the_healthy_weight_is_above_the_threshold(threshold):
    """01-healthchecks_spec.lua "threshold for health checks": four addresses of weight 25,
    marked unhealthy one by one."""
    healths = [target() for _ in range(4)]
    for down in range(5):
        for health in healths[:down]:
            health.state = "unhealthy"
        available = (4 - down) * 25
        assert balancer_healthy(healths, threshold) is (available > threshold)


def test_a_balancer_without_targets_is_unhealthy():
    assert not balancer_healthy([], 0)


# -- the schema (kong/db/schema/entities/upstreams.lua)

def test_kong_defaults():
    assert not DEFAULT.in_use and not DEFAULT.probing
    assert DEFAULT.active.healthy_statuses == {200, 302}
    assert DEFAULT.active.unhealthy_statuses == {429, 404, 500, 501, 502, 503, 504, 505}
    assert DEFAULT.passive.unhealthy_statuses == {429, 500, 503}
    assert DEFAULT.passive.healthy_statuses == {200, 201, 202, 203, 204, 205, 206, 207, 208,
                                                226, *range(300, 309)}
    probe = DEFAULT.probe
    assert (probe.type, probe.timeout, probe.concurrency, probe.http_path) == ("http", 1, 10, "/")
    assert probe.https_verify_certificate and probe.https_sni is None and probe.headers == ()
    assert DEFAULT.threshold == 0


def test_in_use_by_kongs_rule():
    """is_upstream_using_healthcheck: an active interval or a passive failure limit."""
    assert checks(active={"unhealthy": {"interval": 5}}).in_use
    assert checks(passive={"unhealthy": {"timeouts": 1}}).in_use
    assert not checks(passive={"healthy": {"successes": 5}}).in_use
    assert not checks(active={"unhealthy": {"http_failures": 3}}).in_use


@pytest.mark.parametrize(("record", "problem"), [
    ({"active": {"timeout": -1}}, "active.timeout: value should be between 0 and 65535"),
    ({"active": {"timeout": "1"}}, "active.timeout: expected a number"),
    ({"active": {"concurrency": 0}}, "active.concurrency: value should be between 1 and "
                                     "2147483648"),
    ({"active": {"healthy": {"successes": 256}}},
     "active.healthy.successes: value should be between 0 and 255"),
    ({"active": {"healthy": {"http_statuses": [200, 99]}}},
     "active.healthy.http_statuses[1]: value should be between 100 and 999"),
    ({"passive": {"unhealthy": {"http_statuses": [1000]}}},
     "passive.unhealthy.http_statuses[0]: value should be between 100 and 999"),
    ({"passive": {"unhealthy": {"interval": 1}}}, "passive.unhealthy.interval: unknown field"),
    ({"active": {"type": "udp"}},
     "active.type: expected one of: tcp, http, https, grpc, grpcs"),
    ({"active": {"http_path": "status"}}, "active.http_path: should start with: /"),
    ({"active": {"http_path": "/a//b"}}, "active.http_path: must not have empty segments"),
    ({"active": {"http_path": "/a b"}}, "active.http_path: invalid path: '/a b' "
                                        "(characters outside of the reserved list of RFC "
                                        "3986 found)"),
    ({"active": {"https_sni": "10.0.0.1"}}, "active.https_sni: must not be an IP"),
    ({"active": {"https_sni": "example.com:443"}}, "active.https_sni: must not have a port"),
    ({"active": {"headers": {"X-A": ["ok\r\nX-B: injected"]}}},
     "active.headers.X-A[0]: must not contain CR, LF or NUL"),
    ({"active": {"headers": {"X A": ["v"]}}},
     "active.headers.X A: bad header name 'X A', allowed characters are A-Z, a-z, 0-9, '_', "
     "and '-'"),
    ({"threshold": 101}, "threshold: value should be between 0 and 100"),
    ({"active": {"type": "grpc", "healthy": {"interval": 5}}},
     "active.type: gRPC health checks are not supported by this gateway"),
])
def test_schema_errors_name_the_field(record, problem):
    with pytest.raises(Invalid) as raised:
        checks(**record)
    assert f"upstreams[up].healthchecks.{problem}" in raised.value.problems


def test_every_bad_field_is_reported():
    with pytest.raises(Invalid) as raised:
        checks(active={"timeout": -1, "concurrency": 0}, threshold=-1)
    assert len(raised.value.problems) == 3


def test_grpc_type_with_probes_off_loads():
    """decK dumps of gRPC upstreams carry type grpc with Kong's default intervals of 0."""
    assert not checks(active={"type": "grpc"}).probing


# -- probes against real servers

@pytest.fixture
def mock():
    service = MockService()
    yield service
    service.stop()


def probe_of(**active):
    return checks(active=active).probe


def test_http_probe_sends_kongs_request_and_reads_the_status():
    """lua-resty-healthcheck 3.1: ``GET <http_path> HTTP/1.0``, the headers one line per
    value, then Host (the target's host name); only the status line is read."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen = []

    def answer():
        conn, _ = listener.accept()
        with conn:
            seen.append(conn.recv(4096))
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=answer)
    thread.start()
    probe = probe_of(http_path="/status", headers={"X-Probe": ["a", "b"]})
    try:
        assert probe_target(probe, "127.0.0.1", listener.getsockname()[1]) == (None, 503)
    finally:
        thread.join(5)
        listener.close()
    assert seen == [b"GET /status HTTP/1.0\r\nX-Probe: a\r\nX-Probe: b\r\n"
                    b"Host: 127.0.0.1\r\n\r\n"]


def test_failed_probes_count_as_tcp_failures_timeouts_or_dns_errors(mock):
    mock.route("/slow", action="stall")
    port = mock.server_address[1]
    assert probe_target(probe_of(), "127.0.0.1", free_port()) == (TCP, None)
    assert probe_target(probe_of(http_path="/slow", timeout=0.2), "127.0.0.1", port) == \
        (TIMEOUT, None)
    assert probe_target(probe_of(), "no-such-host.invalid", port)[0] == "dns_error"


def test_tcp_probe_succeeds_on_connect(mock):
    assert probe_target(probe_of(type="tcp"), "127.0.0.1", mock.server_address[1]) == \
        (SUCCESS, None)


def test_a_round_probes_only_the_targets_on_its_side(mock):
    """The healthy interval checks healthy targets, the unhealthy interval the others."""
    mock.route("/status", status=500)
    port = mock.server_address[1]
    config = checks(active={"http_path": "/status", "healthy": {"interval": 5, "successes": 1},
                            "unhealthy": {"interval": 5, "http_failures": 2}})
    health = TargetHealth("127.0.0.1", port)
    checker = Checker("up", config, [health])
    checker.check(healthy=False)
    assert mock.calls("/status") == []
    checker.check(healthy=True)
    checker.check(healthy=True)
    assert not health.up and len(mock.calls("/status")) == 2
    checker.check(healthy=True)
    assert len(mock.calls("/status")) == 2
    mock.route("/status", status=200)
    checker.check(healthy=False)
    assert health.up


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A TLS server answering 204 to one request per connection, recording the SNI."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    workdir = tmp_path_factory.mktemp("hc-tls")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=orders.test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names = []
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
            except OSError:
                pass  # the probe refused the certificate

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], names
    listener.close()


def test_https_probe_sends_the_sni_and_verifies_the_certificate(tls_server):
    port, names = tls_server
    unverified = probe_of(type="https", https_sni="orders.test", https_verify_certificate=False)
    assert probe_target(unverified, "127.0.0.1", port) == (None, 204)
    assert names[-1] == "orders.test"
    # Verified (the default): a self-signed certificate fails the handshake, a TCP failure.
    assert probe_target(probe_of(type="https"), "localhost", port) == (TCP, None)
    assert names[-1] == "localhost"  # no https_sni: the target's host name


def test_a_deck_dump_record_with_every_default_and_nulls_is_kongs_default():
    passive_ok = [200, 201, 202, 203, 204, 205, 206, 207, 208, 226, *range(300, 309)]
    dumped = {
        "active": {"concurrency": 10, "headers": None, "http_path": "/", "https_sni": None,
                   "https_verify_certificate": True, "timeout": 1, "type": "http",
                   "healthy": {"http_statuses": [200, 302], "interval": 0, "successes": 0},
                   "unhealthy": {"http_failures": 0, "interval": 0, "tcp_failures": 0,
                                 "timeouts": 0, "http_statuses": [429, 404, 500, 501, 502,
                                                                  503, 504, 505]}},
        "passive": {"type": "http",
                    "healthy": {"http_statuses": passive_ok, "successes": 0},
                    "unhealthy": {"http_failures": 0, "tcp_failures": 0, "timeouts": 0,
                                  "http_statuses": [429, 500, 503]}},
        "threshold": 0}
    assert checks(**dumped) == DEFAULT
