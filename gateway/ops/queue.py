"""Kong's plugin queue (kong/tools/queue.lua) for a worker: log entries sent in the background.

The request's log phase only appends to a bounded deque (:meth:`Queue.put`);
one sender greenlet per worker and queue, started on the first entry (so in the
worker, never in the gunicorn master), takes batches of up to
``max_batch_size`` entries, waiting at most ``max_coalescing_delay`` seconds
after the first one for more, and hands each batch to the handler. A batch
the handler fails on is retried with exponential backoff (``initial_retry_delay``
doubled each time, capped at ``max_retry_delay``) until ``max_retry_time`` has
passed, then dropped with an error line naming how many entries were lost.
Entries past ``max_entries`` (or ``max_bytes``) push out the oldest ones, with
a warning at most once a minute saying how many were dropped: memory stays
bounded whatever the collector does. ``concurrency_limit`` -1 sends each
entry in its own greenlet at once (Kong's unqueued mode; still at most
``max_entries`` in flight).

On the worker's exit (gunicorn's graceful stop ends the worker's interpreter
normally, so ``atexit`` runs) the queue stops coalescing and sends what it
holds, for at most :data:`FLUSH_TIMEOUT` seconds.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic

import gevent
from gevent.event import Event

log = logging.getLogger("gateway.queue")

#: Seconds the exiting worker waits for its queues to send what they hold.
FLUSH_TIMEOUT = 5.0
#: Seconds between two "dropping entries" warnings of one queue.
WARNING_INTERVAL = 60.0

#: This process's id, renewed in a forked child (os.getpid() is a system call per request).
_process = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _process.__setitem__(0, os.getpid()))

#: Sends one batch; raises (any exception) when it could not.
Handler = Callable[[list[bytes]], None]


@dataclass(frozen=True)
class QueueSettings:
    """Kong's ``queue`` record (kong/tools/queue_schema.lua), with its defaults."""

    max_batch_size: int = 1
    max_coalescing_delay: float = 1.0
    max_entries: int = 10000
    max_bytes: int | None = None
    max_retry_time: float = 60.0
    initial_retry_delay: float = 0.01
    max_retry_delay: float = 60.0
    concurrency_limit: int = 1


class Queue:
    """A named queue of encoded entries (bytes) and the handler that sends them."""

    def __init__(self, name: str, settings: QueueSettings, handler: Handler) -> None:
        self.name = name
        self.settings = settings
        self.handler = handler
        self.entries: deque[bytes] = deque()
        self.queued_bytes = 0
        self.wakeup = Event()
        #: Entries the sender waits for before it wants waking (0: it is busy sending), so
        #: that a put wakes it only when there is something for it to do.
        self.wanted = 0
        self.sender: gevent.Greenlet | None = None
        #: The process whose sender runs (a queue copied into a forked child starts anew).
        self.pid: int | None = None
        self.closing = False
        #: Entries being sent by unqueued greenlets (concurrency_limit -1).
        self.unqueued = 0
        self.dropped = 0
        self.warned_at = -WARNING_INTERVAL
        #: Entries the handler took, and entries lost after max_retry_time (for tests, logs).
        self.sent = 0
        self.lost = 0
        #: Batches being handed to the handler now.
        self.delivering = 0

    # -- the request's side: cheap, never blocks

    def put(self, entry: bytes) -> bool:
        """Queue one entry; False (logged) when it can never fit (larger than max_bytes)."""
        settings = self.settings
        if settings.max_bytes is not None and len(entry) > settings.max_bytes:
            log.error("queue %s: string to be queued is longer (%d bytes) than the queue's "
                      "max_bytes (%d bytes)", self.name, len(entry), settings.max_bytes)
            return False
        self._ensure_running()
        if settings.concurrency_limit == -1:
            return self._send_now(entry)
        while len(self.entries) >= settings.max_entries or (
                settings.max_bytes is not None
                and self.queued_bytes + len(entry) > settings.max_bytes):
            self.queued_bytes -= len(self.entries.popleft())
            self._dropped(1)
        self.entries.append(entry)
        self.queued_bytes += len(entry)
        if self.wanted and len(self.entries) >= self.wanted:
            self.wakeup.set()
        return True

    def _send_now(self, entry: bytes) -> bool:
        if self.unqueued >= self.settings.max_entries:
            self._dropped(1)
            return False
        self.unqueued += 1
        gevent.spawn(self._unqueued, entry)
        return True

    def _unqueued(self, entry: bytes) -> None:
        try:
            self._deliver([entry])
        finally:
            self.unqueued -= 1

    def _dropped(self, count: int) -> None:
        self.dropped += count
        now = monotonic()
        if now - self.warned_at >= WARNING_INTERVAL:
            self.warned_at = now
            log.warning("queue %s: queue full, dropping old entries until processing is "
                        "successful again (%d dropped so far)", self.name, self.dropped)

    def _ensure_running(self) -> None:
        pid = _process[0]
        if self.pid == pid:
            return
        self.pid = pid
        self.closing = False
        if self.settings.concurrency_limit != -1:
            self.sender = gevent.spawn(self._run)
        atexit.register(self.flush)

    # -- the sender greenlet

    def _run(self) -> None:
        while True:
            if not self.entries:
                if self.closing:
                    return
                self._wait(1, None)
                continue
            self._deliver(self._collect())

    def _collect(self) -> list[bytes]:
        """Up to max_batch_size entries, waiting up to max_coalescing_delay for them."""
        size = self.settings.max_batch_size
        deadline = monotonic() + self.settings.max_coalescing_delay
        while len(self.entries) < size and not self.closing:
            remaining = deadline - monotonic()
            if remaining <= 0:
                break
            self._wait(size, remaining)
        batch = [self.entries.popleft() for _ in range(min(size, len(self.entries)))]
        self.queued_bytes -= sum(len(entry) for entry in batch)
        return batch

    def _wait(self, entries: int, timeout: float | None) -> None:
        """Sleep until ``entries`` are queued, the queue closes, or ``timeout`` passed."""
        self.wanted = entries
        self.wakeup.clear()
        try:
            self.wakeup.wait(timeout)
        finally:
            self.wanted = 0

    def _deliver(self, batch: list[bytes]) -> None:
        """Hand ``batch`` to the handler, retrying with backoff until max_retry_time."""
        self.delivering += 1
        try:
            self._attempts(batch)
        finally:
            self.delivering -= 1

    def _attempts(self, batch: list[bytes]) -> None:
        settings = self.settings
        started = monotonic()
        retries = 0
        while True:
            try:
                self.handler(batch)
            except Exception as exc:
                log.warning("queue %s: handler could not process entries: %s", self.name, exc)
            else:
                self.sent += len(batch)
                return
            if monotonic() - started > settings.max_retry_time:
                self.lost += len(batch)
                log.error("queue %s: could not send entries due to max_retry_time exceeded. "
                          "%d queue entries were lost", self.name, len(batch))
                return
            gevent.sleep(min(settings.max_retry_delay,
                             2 ** retries * settings.initial_retry_delay))
            retries += 1

    # -- the end

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Send what is queued now, without coalescing; True if all went within ``timeout``."""
        if self.pid != _process[0]:
            return True
        self.closing = True
        self.wakeup.set()
        if self.sender is not None:
            self.sender.join(timeout)
            done = self.sender.dead
        else:
            done = gevent.wait(timeout=timeout) if self.unqueued else True
        if not done:
            log.error("queue %s: exiting with %d entries not sent", self.name,
                      len(self.entries))
        return bool(done)

    def drain(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Wait until every entry queued so far was handled (tests); the sender goes on."""
        deadline = monotonic() + timeout
        while (self.entries or self.unqueued or self.delivering) and monotonic() < deadline:
            gevent.sleep(0.005)
