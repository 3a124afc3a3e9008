"""Metric updates kept in the worker's memory and written to prometheus_client in batches.

In multiprocess mode (every gunicorn worker) each ``inc``/``observe`` of
prometheus_client is a write into an mmap'd file under a lock, and a histogram
observation writes its sum and a bucket: a plain request made eight of them, an
enrichment cache hit fifteen. Code on the request path instead calls
:data:`PENDING` (``count``, ``observe``: a dictionary update each), and the app
writes the batch at most once a second and whenever the worker has no request
left in flight (:class:`gateway.ops.metrics.WorkerMetrics`), so a scrape that
sees no request in flight sees every finished request counted.

Histograms are written through prometheus_client's private ``_sum``, ``_buckets``
and ``_upper_bounds`` (a batched observe it does not offer); setup.cfg pins
prometheus_client below 1.0 for that, and tests/unit/test_metrics_batch.py
checks the exposition matches direct observations. Without multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` unset: tests, a filter's own test suite,
``python -m gateway check``) an update is cheap and is made at once
(:class:`Direct`), so metrics read in the same process are never behind. No
gateway imports: any layer may count.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any


class Batch:
    """Pending counter increments and histogram observations of one process."""

    def __init__(self) -> None:
        #: Pending increments per counter (or counter child).
        self.counts: dict[Any, float] = {}
        #: Pending observations per histogram (or child): [sum, count per bucket].
        self.observed: dict[Any, list[Any]] = {}

    def count(self, counter: Any, amount: float = 1) -> None:
        """``counter.inc(amount)``, later."""
        self.counts[counter] = self.counts.get(counter, 0) + amount

    def observe(self, histogram: Any, amount: float) -> None:
        """``histogram.observe(amount)``, later."""
        pending = self.observed.get(histogram)
        if pending is None:
            pending = self.observed[histogram] = [0.0] + [0] * len(histogram._upper_bounds)
        pending[0] += amount
        pending[1 + bisect_left(histogram._upper_bounds, amount)] += 1

    def write(self) -> None:
        """Apply the pending updates to the metrics, and forget them."""
        counts, self.counts = self.counts, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        observed, self.observed = self.observed, {}
        for histogram, (total, *buckets) in observed.items():
            histogram._sum.inc(total)
            for bucket, count in zip(histogram._buckets, buckets, strict=True):
                if count:
                    bucket.inc(count)


class Direct:
    """The same calls as :class:`Batch`, made at once (in-process metrics are cheap)."""

    @staticmethod
    def count(counter: Any, amount: float = 1) -> None:
        counter.inc(amount)

    @staticmethod
    def observe(histogram: Any, amount: float) -> None:
        histogram.observe(amount)

    def write(self) -> None:
        """Nothing is pending."""


#: This process's pending updates (one per worker, as prometheus_client's own registry),
#: batched where prometheus_client writes files (it decides at import from the same
#: variable, which gunicorn.conf.py sets in the master before the workers fork).
PENDING: Batch | Direct = Batch() if "PROMETHEUS_MULTIPROC_DIR" in os.environ else Direct()
