"""rate-limiting's `local` policy counts per node, as Kong's shm: four real gunicorn gevent
workers share one set of counters, the limit holds exactly under concurrent clients, and the
counts survive workers killed and respawned and a reload (only the node's restart resets
them), and each plugin entry of a declarative file counts apart, alike in every worker."""

from __future__ import annotations

import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor

from tests.integration.test_ops_reload import wait_for_new_workers
from tests.integration.test_rate_limiting import call_from, wait_for_window_room
from tests.support.net import call

LIMIT = 40
WORKERS = 4


def send(url: str, source: str, count: int, clients: int) -> list:
    """``count`` GETs from ``source`` by ``clients`` threads at once, a connection each."""
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(lambda _: call_from(url, source), range(count)))


def only(pids: list[int], serving: int):
    """Context: every worker of ``pids`` but ``serving`` stopped (SIGSTOP), so it alone
    accepts; a gevent worker otherwise takes nearly every connection of a light load."""
    class Only:
        def __enter__(self):
            for pid in pids:
                if pid != serving:
                    os.kill(pid, signal.SIGSTOP)

        def __exit__(self, *_):
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
    return Only()


def test_four_workers_let_exactly_the_limit_through_and_keep_counting_after_restarts(
        gateway, fixture_server):
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "rate-limiting",
                  "GATEWAY_RATELIMIT_HOUR": str(LIMIT), "GATEWAY_RATELIMIT_LIMIT_BY": "ip",
                  "GATEWAY_RATELIMIT_POLICY": "local"}, workers=WORKERS, fresh=True)
    source = "127.0.0.41"
    wait_for_window_room(3600, 60)
    workers = gw.worker_pids()
    assert len(workers) == WORKERS
    remaining = []
    for worker in workers:  # each worker in turn counts on from the others' counts
        with only(workers, worker):
            answers = send(gw.url, source, 6, 3)
        assert [response.status for response, _ in answers] == [200] * 6
        remaining += [int(response.headers["RateLimit-Remaining"]) for response, _ in answers]
    assert sorted(remaining) == list(range(LIMIT - 6 * WORKERS, LIMIT))

    answers = send(gw.url, source, 60, 16)  # all workers at once, 16 clients
    passed = [response for response, _ in answers if response.status == 200]
    refused = [(response, data) for response, data in answers if response.status != 200]
    assert len(passed) == LIMIT - 6 * WORKERS
    assert sorted(int(r.headers["RateLimit-Remaining"]) for r in passed) == list(
        range(LIMIT - 6 * WORKERS))
    assert len(refused) == 60 - len(passed)
    for response, data in refused:
        assert response.status == 429
        assert json.loads(data)["message"] == "API rate limit exceeded"
        assert response.headers["X-RateLimit-Limit-Hour"] == str(LIMIT)
        assert response.headers["X-RateLimit-Remaining-Hour"] == "0"
        assert response.headers["RateLimit-Remaining"] == "0"
        assert 0 < int(response.headers["Retry-After"]) <= 3600

    old = set(workers)
    for pid in old:  # every worker dies at once, none cleanly: the master respawns them
        os.kill(pid, signal.SIGKILL)
    wait_for_new_workers(gw, old, WORKERS)
    response, _ = call_from(gw.url, source)
    assert response.status == 429
    assert response.headers["RateLimit-Remaining"] == "0"
    other, _ = call_from(gw.url, "127.0.0.42")  # another client still has its whole limit
    assert other.status == 200
    assert other.headers["RateLimit-Remaining"] == str(LIMIT - 1)

    old = set(gw.worker_pids())
    gw.popen.send_signal(signal.SIGHUP)  # a reload, as Kong's, keeps the node's counters
    wait_for_new_workers(gw, old, WORKERS)
    assert call_from(gw.url, source)[0].status == 429
    assert call_from(gw.url, "127.0.0.42")[0].headers["RateLimit-Remaining"] == str(LIMIT - 2)
    assert "counts in this worker alone" not in gw.logs()


KONG_YML = """
_format_version: "3.0"
services:
- name: echo
  url: {upstream}
  routes:
  - name: a
    paths: [/a]
    plugins:
    - name: rate-limiting
      config: {{hour: 3, limit_by: ip, policy: local}}
  - name: b
    paths: [/b]
    plugins:
    - name: rate-limiting
      config: {{hour: 3, limit_by: ip, policy: local}}
"""


def test_each_plugin_entry_counts_apart_and_the_same_in_every_worker(gateway, fixture_server):
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": KONG_YML.format(
        upstream=fixture_server.url + "/echo")}, workers=2, fresh=True)
    source = "127.0.0.43"
    wait_for_window_room(3600, 30)
    first, second = workers = gw.worker_pids()
    statuses = []
    for worker, count in ((first, 2), (second, 2)):
        with only(workers, worker):
            statuses += [call(gw.url, target="/a", source=source)[0].status
                         for _ in range(count)]
    assert statuses == [200, 200, 200, 429]  # route a's entry, counted by both workers
    with only(workers, second):  # as Kong's key holds the route: b's entry counts alone
        response, _ = call(gw.url, target="/b", source=source)
    assert response.status == 200
    assert response.headers["RateLimit-Remaining"] == "2"
