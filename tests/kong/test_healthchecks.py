"""Kong's health checks spec (spec/02-integration/05-proxy/10-balancer/01-healthchecks_spec.lua,
Kong 3.10), the cases a DB-less file can state, translated as facts: the gateway in process,
two mock servers as the targets (Kong's ``https_server``: a server told to go unhealthy
answers 500 everywhere), the spec's ``/status`` probes. Active rounds are run by calling
the upstream's checker where Kong waits for its timer (``poll_wait_health``); the timers
themselves run under gunicorn in tests/integration/test_healthchecks.py.

Skipped cases and why (spec case: reason):

- 2-level DNS, targets resolving to 2 IPs, SRV records, the "upstream hostname" mode: the
  gateway does not resolve a target into several addresses; one address per target.
- upstreams removed and re-added, renamed, partially updated; "propagates posted health
  info": DB-less, no Admin API; a reload replaces the workers and their health state.
- manual recovery and manual shutdown (the Admin API's ``/healthy``, ``/unhealthy``): no
  Admin API; a target marked down by passive checks alone stays down until a reload
  (tested below).
- mTLS client certificates: ``client_certificate`` is not supported by this gateway.
- ``#grpc``, ``#stream`` and consistent-hashing cases: an HTTP gateway; the other
  balancing algorithms are another change.
- "in downstream status code was changed": the passive check counts the upstream's
  status as Kong does; no plugin here rewrites it before the count.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.proxy.healthcheck import NO_PEER
from gateway.proxy.upstream import Upstream
from gateway.testing.mock import MockService
from tests.kong.plugin_kit import kong_client, send
from tests.support.app import gateway_of, get

SLOTS = 10


@pytest.fixture
def servers() -> Iterator[tuple[MockService, MockService]]:
    pair = MockService(), MockService()
    yield pair
    for server in pair:
        server.stop()


def unhealthy(server: MockService) -> None:
    """The spec's ``/unhealthy``: the server answers 500 everywhere."""
    server.route("/", status=500)
    server.route("/status", status=500)


def healthy(server: MockService) -> None:
    server.route("/", status=200)
    server.route("/status", status=200)


def client_for(servers, healthchecks, service=None, plugins=(), weights=(100, 100)):
    decl = {"_format_version": "3.0",
            "upstreams": [{"name": "hc.test", "healthchecks": healthchecks,
                           "targets": [{"target": f"127.0.0.1:{s.server_address[1]}",
                                        "weight": w} for s, w in zip(servers, weights,
                                                                     strict=True)]}],
            "services": [{"name": "hc", "host": "hc.test", **(service or {}),
                          "routes": [{"name": "open", "hosts": ["hc.test"]},
                                     {"name": "auth", "hosts": ["auth.test"],
                                      "plugins": list(plugins)}]}]}
    return kong_client(json.dumps(decl), GATEWAY_STATUS_PATH="/_gw")


def upstream_of(client) -> Upstream:
    return next(u for u in gateway_of(client).routes.upstreams if u.name == "hc.test")


def requests(client, count, host="hc.test"):
    """(oks, fails, last status) of ``count`` requests, as the spec's client_requests."""
    statuses = [send(client, "GET", "/", host).status_code for _ in range(count)]
    return statuses.count(200), len(statuses) - statuses.count(200), statuses[-1]


def hits(server: MockService) -> int:
    return len(server.calls("/"))


def states(client) -> dict[str, str]:
    return get(client, "/_gw/ready").json["targets"]["hc.test"]


def test_does_not_perform_health_checks_when_disabled(servers):
    """#3304: Kong's default record (what decK writes) changes nothing: no probes, and the
    gateway's cooldown stays the passive check; the targets show healthchecks_off."""
    defaults = {"active": {"type": "http", "http_path": "/", "timeout": 1, "concurrency": 10,
                           "healthy": {"interval": 0, "successes": 0,
                                       "http_statuses": [200, 302]},
                           "unhealthy": {"interval": 0, "http_failures": 0, "tcp_failures": 0,
                                         "timeouts": 0, "http_statuses": [429, 404, 500]}},
                "passive": {"healthy": {"successes": 0}, "unhealthy": {"http_failures": 0}},
                "threshold": 0}
    client = client_for(servers, defaults)
    unhealthy(servers[1])
    assert upstream_of(client).checker is None and upstream_of(client).checks is None
    oks, fails, _ = requests(client, SLOTS)
    assert (oks, fails) == (SLOTS // 2, SLOTS // 2)  # a 500 marks nothing down
    assert servers[0].calls("/status") == servers[1].calls("/status") == []
    assert set(states(client).values()) == {"healthchecks_off"}


def test_do_not_count_kong_generated_errors_as_failures(servers):
    passive = {"healthy": {"successes": 1},
               "unhealthy": {"http_statuses": [401, 500], "http_failures": 1,
                             "tcp_failures": 1, "timeouts": 1}}
    client = client_for(servers, {"passive": passive}, plugins=[
        {"name": "request-termination", "config": {"status_code": 401}}])
    assert requests(client, 1, host="auth.test") == (0, 1, 401)
    oks, fails, last = requests(client, SLOTS * 2)
    assert (oks, fails, last) == (SLOTS * 2, 0, 200)
    assert hits(servers[0]) > 0 and hits(servers[1]) > 0


@pytest.mark.parametrize("nfails", [1, 2, 3])
def test_perform_passive_health_checks(servers, nfails):
    client = client_for(servers, {"passive": {"unhealthy": {"http_failures": nfails}}})
    oks1, fails1, _ = requests(client, SLOTS)
    unhealthy(servers[1])
    oks2, fails2, _ = requests(client, SLOTS)
    assert fails1 + fails2 == nfails
    assert oks1 + oks2 == SLOTS * 2 - nfails
    assert hits(servers[1]) == SLOTS // 2 + nfails  # its oks, then its nfails failures
    assert states(client)[f"127.0.0.1:{servers[1].server_address[1]}"] == "unhealthy"


def test_passive_only_a_target_marked_down_stays_down(servers):
    """Kong's "manual recovery": without active checks only the Admin API brings a target
    back. There is none here: it stays down until a reload, even once it recovers."""
    client = client_for(servers, {"passive": {"unhealthy": {"http_failures": 1}}})
    unhealthy(servers[0])
    requests(client, 4)
    healthy(servers[0])
    before = hits(servers[0])
    assert requests(client, SLOTS)[:2] == (SLOTS, 0)
    assert hits(servers[0]) == before


def test_perform_passive_health_checks_read_timeouts(servers):
    """"connection #timeouts": a target that times out once (timeouts = 1) is skipped."""
    client = client_for(servers, {"passive": {"unhealthy": {"timeouts": 1}}},
                        service={"read_timeout": 300})
    requests(client, 2)
    servers[1].route("/", delay=1)
    _, fails, _ = requests(client, SLOTS)
    assert fails == 1  # its one 504, then never tried again
    assert states(client)[f"127.0.0.1:{servers[1].server_address[1]}"] == "unhealthy"


def test_a_refused_target_counts_as_a_tcp_failure(servers):
    client = client_for(servers, {"passive": {"unhealthy": {"tcp_failures": 1}}})
    servers[1].stop()
    assert requests(client, SLOTS)[:2] == (SLOTS, 0)  # the refused attempt fails over
    assert states(client)[f"127.0.0.1:{servers[1].server_address[1]}"] == "unhealthy"


def test_a_target_whose_name_does_not_resolve_shows_dns_error(servers):
    decl = {"_format_version": "3.0",
            "upstreams": [{"name": "hc.test",
                           "healthchecks": {"passive": {"unhealthy": {"tcp_failures": 1}}},
                           "targets": [{"target": "no-such-host.invalid:80"},
                                       {"target": f"127.0.0.1:{servers[0].server_address[1]}"}]}],
            "services": [{"name": "hc", "host": "hc.test", "routes": [{"hosts": ["hc.test"]}]}]}
    client = kong_client(json.dumps(decl), GATEWAY_STATUS_PATH="/_gw")
    assert requests(client, 4)[:2] == (4, 0)  # the unresolved attempt fails over
    assert states(client)["no-such-host.invalid:80"] == "dns_error"


ACTIVE = {"http_path": "/status", "healthy": {"interval": 60, "successes": 1},
          "unhealthy": {"interval": 60}}


def active(**unhealthy_limits):
    return {"active": {**ACTIVE, "unhealthy": {**ACTIVE["unhealthy"], **unhealthy_limits}}}


@pytest.mark.parametrize("nfails", [1, 2, 3])
def test_perform_active_health_checks_up_then_down(servers, nfails):
    client = client_for(servers, active(http_failures=nfails), service={"connect_timeout": 50})
    checker = upstream_of(client).checker
    oks, fails, _ = requests(client, 4)
    unhealthy(servers[1])
    for _ in range(nfails - 1):
        checker.check(healthy=True)
        assert states(client)[f"127.0.0.1:{servers[1].server_address[1]}"] == "healthy"
    checker.check(healthy=True)
    assert states(client)[f"127.0.0.1:{servers[1].server_address[1]}"] == "unhealthy"
    more_oks, more_fails, _ = requests(client, SLOTS)
    assert (oks + more_oks, fails + more_fails) == (4 + SLOTS, 0)
    assert hits(servers[1]) == 2 and hits(servers[0]) == 2 + SLOTS


def test_perform_active_health_checks_automatic_recovery(servers):
    client = client_for(servers, active(http_failures=1))
    checker = upstream_of(client).checker
    unhealthy(servers[1])
    checker.check(healthy=True)
    requests(client, SLOTS)
    assert hits(servers[1]) == 0
    healthy(servers[1])
    checker.check(healthy=False)
    assert requests(client, SLOTS)[:2] == (SLOTS, 0)
    assert hits(servers[1]) == SLOTS // 2


def test_perform_active_health_checks_can_detect_before_any_proxy_traffic(servers):
    client = client_for(servers, active(http_failures=2, tcp_failures=2))
    checker = upstream_of(client).checker
    unhealthy(servers[1])
    checker.check(healthy=True)
    checker.check(healthy=True)
    assert requests(client, SLOTS * 2)[:2] == (SLOTS * 2, 0)
    assert hits(servers[0]) == SLOTS * 2 and hits(servers[1]) == 0


def test_an_unhealthy_interval_of_0_never_probes_a_target_back(servers):
    checks = {"active": {**ACTIVE, "unhealthy": {"interval": 0, "http_failures": 1}}}
    client = client_for(servers, checks)
    checker = upstream_of(client).checker
    unhealthy(servers[1])
    checker.check(healthy=True)
    healthy(servers[1])
    checker.start()
    try:
        assert len(checker.greenlets) == 1  # the healthy side's loop only
    finally:
        checker.stop()
    requests(client, SLOTS)
    assert hits(servers[1]) == 0


def test_all_targets_down_is_kongs_503(servers):
    client = client_for(servers, {"passive": {"unhealthy": {"http_failures": 1}}})
    for server in servers:
        unhealthy(server)
    requests(client, 2)
    response = send(client, "GET", "/", "hc.test")
    assert response.status_code == 503 and response.json["message"] == NO_PEER
    assert hits(servers[0]) + hits(servers[1]) == 2


@pytest.mark.parametrize(("threshold", "status"), [(49, 200), (50, 503)])
def test_threshold_for_health_checks(servers, threshold, status):
    """The balancer is healthy while the healthy weight is above the threshold (%)."""
    client = client_for(servers, {"passive": {"unhealthy": {"http_failures": 1}},
                                  "threshold": threshold})
    unhealthy(servers[1])
    requests(client, 2)
    assert send(client, "GET", "/", "hc.test").status_code == status


def test_weights_count_in_the_threshold(servers):
    """With weights 75/25, the heavy target down leaves 25% of the weight."""
    client = client_for(servers, {"passive": {"unhealthy": {"http_failures": 1}},
                                  "threshold": 30}, weights=(75, 25))
    unhealthy(servers[0])
    requests(client, 1)
    assert send(client, "GET", "/", "hc.test").status_code == 503


def test_target_health_in_the_prometheus_metrics(servers):
    """kong_upstream_target_health: 1 on the state of each target, 0 on the others."""
    client = client_for(servers, {"passive": {"unhealthy": {"http_failures": 1}}},
                        plugins=[{"name": "prometheus",
                                  "config": {"upstream_health_metrics": True}}])
    unhealthy(servers[1])
    requests(client, 2)
    text = get(client, "/_gw/metrics").get_data(as_text=True)
    down = f"127.0.0.1:{servers[1].server_address[1]}"
    up = f"127.0.0.1:{servers[0].server_address[1]}"
    # this process's other gateways (earlier tests) report their own hc.test targets
    found = {(s.labels["target"], s.labels["state"]): s.value
             for family in text_string_to_metric_families(text) for s in family.samples
             if s.name == "kong_upstream_target_health" and s.labels["upstream"] == "hc.test"
             and s.labels["target"] in (down, up)}
    assert found == {(target, label): float(label == state)
                     for target, state in ((down, "unhealthy"), (up, "healthy"))
                     for label in ("healthy", "unhealthy", "healthchecks_off", "dns_error")}
