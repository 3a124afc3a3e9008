"""Batched metric updates (gateway.ops.batch) give the exposition direct updates give."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from gateway.ops.batch import Batch

BUCKETS = (.01, .1, 1)
AMOUNTS = (0.005, 0.01, 0.05, 0.1, 0.5, 2.0, 30.0)


def _metrics() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("things", "Things.", ["kind"], registry=registry)
    histogram = Histogram("seconds", "Seconds.", ["kind"], buckets=BUCKETS, registry=registry)
    return registry, counter, histogram


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if "_created" not in line]


def test_a_batch_writes_what_direct_updates_write():
    direct, counter, histogram = _metrics()
    for amount in AMOUNTS:
        counter.labels("a").inc()
        histogram.labels("a").observe(amount)
    counter.labels("b").inc(3)

    batched, counter, histogram = _metrics()
    batch = Batch()
    for amount in AMOUNTS:
        batch.count(counter.labels("a"))
        batch.observe(histogram.labels("a"), amount)
    batch.count(counter.labels("b"), 3)
    assert 'things_total{kind="a"} 0.0' in _exposition(batched)  # nothing written yet
    batch.write()
    assert _exposition(batched) == _exposition(direct)
    batch.write()  # written once: a second write adds nothing
    assert _exposition(batched) == _exposition(direct)


def test_without_multiprocess_mode_updates_are_made_at_once():
    from gateway.ops.batch import PENDING, Direct

    assert isinstance(PENDING, Direct)  # the test run has no PROMETHEUS_MULTIPROC_DIR
    registry, counter, histogram = _metrics()
    PENDING.count(counter.labels("a"), 2)
    PENDING.observe(histogram.labels("a"), 0.05)
    assert registry.get_sample_value("things_total", {"kind": "a"}) == 2
    assert registry.get_sample_value("seconds_bucket", {"kind": "a", "le": "0.1"}) == 1
