"""The node's shared memory (gateway.store.shared) and rate-limiting's counter table in it,
across real forked processes: what one writes the others see, counts stay exact under
concurrency, a process killed inside the lock or in the middle of an update neither wedges
the others nor corrupts a count."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from gateway.filters.rate_limiting.counters import (
    SLOT_BYTES,
    Count,
    CounterTable,
    LocalCounters,
    Window,
)
from gateway.store import shared
from gateway.store.shared import Region

NOON = 1_700_000_000 - 1_700_000_000 % 86400 + 36000 + 30


def forked(work, count: int = 1) -> list[int]:
    """Run ``work(n)`` in ``count`` child processes at once; their exit statuses."""
    children = []
    for n in range(count):
        pid = os.fork()
        if pid == 0:  # the child: never back into pytest
            code = 1
            try:
                code = work(n) or 0
            finally:
                os._exit(code)
        children.append(pid)
    return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]


@pytest.fixture
def table() -> CounterTable:
    return CounterTable(Region("test", 4096 * SLOT_BYTES, shared=True))


def test_a_reserved_region_is_shared_with_forked_children_a_private_one_is_not():
    mine = Region("private", 64, shared=False)
    node = shared.reserve("test-reserve", 64)
    assert shared.reserve("test-reserve", 128) is node  # a reload keeps the node's memory
    assert shared.region("test-reserve", 1) is node and node.shared

    def write(_n):
        node.words[0], mine.words[0] = 42, 42

    assert forked(write) == [0]
    assert (node.words[0], mine.words[0]) == (42, 0)
    assert not shared.region("test-nobody-reserved", 10).shared
    assert len(shared.region("test-nobody-reserved", 10).words) == 2  # whole words


def test_four_processes_let_exactly_the_limit_through(table):
    counters = LocalCounters([Window("minute", 1000), Window("hour", 5000)], table)
    read, write = os.pipe()

    def hammer(_n):
        allowed = sum(counters.take("client", NOON + 1).allowed for _ in range(400))
        os.write(write, allowed.to_bytes(2, "big"))

    assert forked(hammer, 4) == [0, 0, 0, 0]
    passed = [int.from_bytes(os.read(read, 2), "big") for _ in range(4)]
    assert sum(passed) == 1000
    assert counters.take("client", NOON + 2) == Count(False, (1000, 1000))
    assert counters.take("client", NOON + 60) == Count(True, (1, 1001))  # the next minute


def test_a_process_killed_holding_the_lock_does_not_wedge_the_others(table):
    def die_locked(_n):
        table.region.acquire()
        os.kill(os.getpid(), signal.SIGKILL)

    assert forked(die_locked) == [-signal.SIGKILL]
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("the dead process's lock wedged us"))
    signal.alarm(5)
    try:
        assert LocalCounters([Window("second", 5)], table).take("x", NOON).allowed
    finally:
        signal.alarm(0)


def test_processes_killed_mid_update_lose_at_most_their_own_request(table):
    counters = LocalCounters([Window("hour", 10**9), Window("day", 10**9)], table)
    done = Region("done", 8, shared=True)  # requests the killed children saw counted
    kills = 12

    def count_until_killed(_n):
        while True:
            if counters.take("client", NOON).allowed:
                done.words[0] += 1

    for round_ in range(kills):
        pid = os.fork()
        if pid == 0:
            try:
                count_until_killed(0)
            finally:
                os._exit(1)
        time.sleep(0.01 + 0.003 * round_)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    counted = counters.take("client", NOON).used
    assert done.words[0] > 0
    for used in counted:  # this take's own request is the +1
        assert done.words[0] + 1 <= used <= done.words[0] + 1 + kills
    keys = [key for key in table.words[::2] if key]
    assert len(keys) == len(set(keys)) == 2  # one slot per window, none duplicated or torn


def test_clients_and_instances_do_not_share_counters(table):
    first = LocalCounters([Window("second", 1)], table)
    second = LocalCounters([Window("second", 1)], table)  # another plugin entry, same limits
    assert first.take("a", NOON).allowed
    assert not first.take("a", NOON).allowed
    assert first.take("b", NOON).allowed
    assert second.take("a", NOON).allowed


def test_a_window_reuses_its_clients_slot_and_an_old_one_is_free_again(table):
    counters = LocalCounters([Window("second", 3)], table)
    for second in range(50):
        assert counters.take("a", NOON + second) == Count(True, (1,))
    assert sum(1 for key in table.words[::2] if key) == 1


def test_a_gunicorn_worker_without_the_masters_memory_says_it_counts_alone(monkeypatch, caplog):
    from gateway.filters.rate_limiting import counters as module
    monkeypatch.setattr(module, "_node_table", None)
    monkeypatch.setitem(shared._REGIONS, shared.RATE_LIMITING,
                        Region(shared.RATE_LIMITING, 64 * SLOT_BYTES, shared=False))
    monkeypatch.setitem(sys.modules, "gunicorn.arbiter", sys)  # as in a forked worker
    with caplog.at_level("WARNING", "gateway.rate-limiting"):
        assert not module.node_table().region.shared
    assert "counts in this worker alone" in caplog.text
    assert "gunicorn.conf.py" in caplog.text
