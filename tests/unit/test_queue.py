"""gateway.ops.queue: Kong's plugin queue in a worker (batches, bounds, retries, flush)."""

from __future__ import annotations

import logging
import time

import gevent
import pytest

from gateway.ops.queue import Queue, QueueSettings


class Recorder:
    """A handler that records batches, failing its first ``failures`` calls."""

    def __init__(self, failures: int = 0, delay: float = 0.0) -> None:
        self.batches: list[list[bytes]] = []
        self.failures = failures
        self.delay = delay
        self.calls: list[float] = []

    def __call__(self, batch: list[bytes]) -> None:
        self.calls.append(time.monotonic())
        gevent.sleep(self.delay)
        if self.failures > 0:
            self.failures -= 1
            raise OSError("collector down")
        self.batches.append(list(batch))


def test_batches_up_to_max_batch_size():
    handler = Recorder()
    queue = Queue("q", QueueSettings(max_batch_size=3, max_coalescing_delay=0.2), handler)
    for n in range(7):
        queue.put(b"%d" % n)
    queue.drain()
    assert handler.batches == [[b"0", b"1", b"2"], [b"3", b"4", b"5"], [b"6"]]


def test_coalescing_delay_waits_for_more_entries():
    handler = Recorder()
    queue = Queue("q", QueueSettings(max_batch_size=10, max_coalescing_delay=0.1), handler)
    queue.put(b"a")
    gevent.sleep(0.03)
    queue.put(b"b")
    queue.drain()
    assert handler.batches == [[b"a", b"b"]]


def test_put_never_blocks_on_a_slow_handler():
    handler = Recorder(delay=0.3)
    queue = Queue("q", QueueSettings(max_batch_size=100, max_coalescing_delay=0), handler)
    started = time.monotonic()
    for n in range(100):
        queue.put(b"%d" % n)
    assert time.monotonic() - started < 0.05
    queue.drain()
    assert sum(len(batch) for batch in handler.batches) == 100


def test_oldest_entries_dropped_past_max_entries_with_one_warning(caplog):
    handler = Recorder(delay=0.2)
    queue = Queue("q", QueueSettings(max_entries=5, max_batch_size=100,
                                     max_coalescing_delay=0), handler)
    queue.put(b"first")
    gevent.sleep(0.01)  # the sender took "first" and is busy with it
    with caplog.at_level(logging.WARNING, "gateway.queue"):
        for n in range(20):
            queue.put(b"%d" % n)
    assert len(queue.entries) == 5
    assert queue.dropped == 15
    assert caplog.text.count("queue full, dropping old entries") == 1
    queue.drain()
    assert handler.batches == [[b"first"], [b"15", b"16", b"17", b"18", b"19"]]


def test_max_bytes_bounds_the_queue_and_refuses_a_larger_entry(caplog):
    handler = Recorder()
    queue = Queue("q", QueueSettings(max_bytes=10), handler)
    assert queue.put(b"x" * 11) is False
    assert "longer (11 bytes) than the queue's max_bytes (10 bytes)" in caplog.text
    for n in range(4):  # the sender runs only once this greenlet yields
        queue.put(b"abc%d" % n)
    assert queue.queued_bytes == 8 and queue.dropped == 2
    queue.drain()
    assert handler.batches == [[b"abc2"], [b"abc3"]]


def test_retries_with_exponential_backoff_until_it_works():
    handler = Recorder(failures=3)
    queue = Queue("q", QueueSettings(initial_retry_delay=0.02, max_retry_delay=1), handler)
    queue.put(b"entry")
    queue.drain()
    assert handler.batches == [[b"entry"]]
    gaps = [later - earlier for earlier, later in zip(handler.calls, handler.calls[1:],
                                                        strict=False)]
    assert gaps[0] == pytest.approx(0.02, abs=0.015)
    assert gaps[1] == pytest.approx(0.04, abs=0.015)
    assert gaps[2] == pytest.approx(0.08, abs=0.02)


def test_batch_dropped_after_max_retry_time(caplog):
    handler = Recorder(failures=1000)
    queue = Queue("q", QueueSettings(max_retry_time=0.1, initial_retry_delay=0.01,
                                     max_retry_delay=0.02), handler)
    queue.put(b"a")
    queue.drain()
    assert queue.lost == 1
    assert "could not send entries due to max_retry_time exceeded. 1 queue entries were lost" \
        in caplog.text


def test_flush_sends_without_coalescing():
    handler = Recorder()
    queue = Queue("q", QueueSettings(max_batch_size=100, max_coalescing_delay=60), handler)
    queue.put(b"a")
    queue.put(b"b")
    started = time.monotonic()
    assert queue.flush() is True
    assert time.monotonic() - started < 1
    assert handler.batches == [[b"a", b"b"]]


def test_unqueued_concurrency_sends_each_entry_at_once():
    handler = Recorder(delay=0.05)
    queue = Queue("q", QueueSettings(concurrency_limit=-1), handler)
    started = time.monotonic()
    for n in range(5):
        queue.put(b"%d" % n)
    queue.drain()
    assert sorted(b for batch in handler.batches for b in batch) == [b"0", b"1", b"2", b"3",
                                                                      b"4"]
    assert time.monotonic() - started < 0.2  # in parallel, not one after another
