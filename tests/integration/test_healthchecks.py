"""Active health checks under gunicorn: the worker's probe greenlets mark a target whose
``/status`` fails as unhealthy within interval x failures, skip it, take it back once it
recovers, and answer Kong's 503 when every target is down; a round probes at most
``concurrency`` targets at a time."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from gateway.proxy.healthcheck import NO_PEER
from gateway.testing.mock import MockService
from tests.support.net import call

INTERVAL = 0.3
FAILURES = 2
SUCCESSES = 2
#: Allowance for a loaded machine on top of interval x count.
SLACK = 0.7


@pytest.fixture
def servers() -> Iterator[tuple[MockService, MockService]]:
    pair = MockService(), MockService()
    yield pair
    for server in pair:
        server.stop()


def kong_file(servers, **active) -> str:
    return json.dumps({
        "_format_version": "3.0",
        "upstreams": [{"name": "hc.test", "healthchecks": {"active": {
            "http_path": "/status", "timeout": 0.5,
            "healthy": {"interval": INTERVAL, "successes": SUCCESSES},
            "unhealthy": {"interval": INTERVAL, "http_failures": FAILURES}, **active}},
            "targets": [{"target": f"127.0.0.1:{s.server_address[1]}"} for s in servers]}],
        "services": [{"name": "hc", "host": "hc.test", "routes": [{"paths": ["/"]}]}]})


def address(server: MockService) -> str:
    return f"127.0.0.1:{server.server_address[1]}"


def wait_for(gw, server: MockService, state: str, within: float) -> float:
    """Seconds until /ready shows ``state`` for the server's target (fails past ``within``)."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        _, body = call(gw.url, "GET", "/_gw/ready")
        if json.loads(body)["targets"]["hc.test"][address(server)] == state:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{address(server)} not {state} within {within}s")


def answered(gw, count: int) -> list[int]:
    return [call(gw.url, "GET", "/")[0].status for _ in range(count)]


def test_probes_skip_a_failing_target_take_it_back_and_503_when_all_are_down(gateway,
                                                                             servers):
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(servers),
                  "GATEWAY_STATUS_PATH": "/_gw"}, fresh=True)
    first, second = servers
    wait_for(gw, second, "healthy", 1)
    assert answered(gw, 6) == [200] * 6
    assert len(first.calls("/")) == len(second.calls("/")) == 3
    deadline = time.monotonic() + INTERVAL + SLACK
    while not (first.calls("/status") and second.calls("/status")):  # probed every interval
        assert time.monotonic() < deadline, "no probe"
        time.sleep(0.05)

    second.route("/status", status=500)  # the proxied path still answers 200
    assert wait_for(gw, second, "unhealthy", INTERVAL * FAILURES + SLACK)
    before = len(second.calls("/"))
    assert answered(gw, 6) == [200] * 6
    assert len(second.calls("/")) == before

    second.route("/status", status=200)
    assert wait_for(gw, second, "healthy", INTERVAL * SUCCESSES + SLACK)
    assert answered(gw, 6) == [200] * 6
    assert len(second.calls("/")) == before + 3

    for server in servers:
        server.route("/status", status=503)
    for server in servers:
        wait_for(gw, server, "unhealthy", INTERVAL * FAILURES + SLACK)
    response, body = call(gw.url, "GET", "/")
    assert response.status == 503 and json.loads(body)["message"] == NO_PEER


def test_probes_that_hang_never_delay_requests(gateway, servers):
    """A target whose /status never answers: its probes wait for their timeout in their
    own greenlets while the worker goes on serving."""
    for server in servers:
        server.route("/status", action="stall")
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(servers),
                  "GATEWAY_STATUS_PATH": "/_gw"}, fresh=True)
    deadline = time.monotonic() + INTERVAL + SLACK
    while not servers[0].calls("/status"):  # a probe is waiting on the stalled answer
        assert time.monotonic() < deadline, "no probe"
        time.sleep(0.02)
    for _ in range(5):
        start = time.monotonic()
        assert answered(gw, 1) == [200]
        assert time.monotonic() - start < 0.4  # less than the probes' 0.5 s timeout


@pytest.mark.parametrize("concurrency", [2, 4])
def test_a_round_probes_at_most_concurrency_targets_at_a_time(gateway, concurrency):
    """Four targets whose /status never answers, probes with a 1 s timeout: the first
    ``concurrency`` are probed at once, the others only when those probes time out."""
    four = [MockService() for _ in range(4)]
    try:
        for server in four:
            server.route("/status", action="stall")
        gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(
            four, timeout=1, concurrency=concurrency), "GATEWAY_STATUS_PATH": "/_gw"},
            fresh=True)

        def probed() -> int:
            return sum(1 for server in four if server.calls("/status"))

        deadline = time.monotonic() + INTERVAL + SLACK
        while not probed():
            assert time.monotonic() < deadline, "no probe"
            time.sleep(0.02)
        time.sleep(0.5)  # half the probes' timeout: the first ones are still waiting
        assert probed() == concurrency
        deadline = time.monotonic() + 1 + SLACK
        while probed() < 4:  # the rest of the round, once the first probes timed out
            assert time.monotonic() < deadline, "the round did not go on"
            time.sleep(0.02)
        assert answered(gw, 2) == [200, 200]  # a timeout alone marks nothing (Kong: 0)
    finally:
        for server in four:
            server.stop()
