"""A circuit breaker for a remote service: stop calling it for a while after repeated failures.

Closed: calls go through and consecutive failures are counted. Open (after
``failures`` in a row): calls are refused at once for ``reset`` seconds.
Half-open (then): one trial call goes through; its success closes the breaker,
its failure opens it again. State is per worker, like nginx's max_fails.
``on_change(open)`` is told when the breaker opens and when it closes again
(half-open counts as open), for a gauge or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Breaker:
    """Counts consecutive failures of one remote service and says whether to call it."""

    def __init__(self, failures: int, reset: float,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.failures = failures
        self.on_change = on_change
        self.reset = reset
        self.clock = clock
        self.failed = 0
        self.opened_at: float | None = None
        self.trial_running = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return CLOSED
        return HALF_OPEN if self.clock() - self.opened_at >= self.reset else OPEN

    def allow(self) -> bool:
        """True if a call may go out now; in half-open, only the one trial call."""
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self.trial_running:
            self.trial_running = True
            return True
        return False

    def succeeded(self) -> None:
        """A call went well: close the breaker."""
        was_open = self.opened_at is not None
        self.failed = 0
        self.opened_at = None
        self.trial_running = False
        if was_open and self.on_change is not None:
            self.on_change(False)

    def failed_call(self) -> None:
        """A call failed: open the breaker after enough in a row, or again after a failed trial."""
        self.failed += 1
        opening = self.opened_at is None and self.failed >= self.failures
        if self.trial_running or self.failed >= self.failures:
            self.opened_at = self.clock()
        self.trial_running = False
        if opening and self.on_change is not None:
            self.on_change(True)

    def cancelled(self) -> None:
        """A call was abandoned before it ended (neither success nor failure): free the trial."""
        self.trial_running = False
