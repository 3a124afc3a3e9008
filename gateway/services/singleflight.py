"""Single-flight: concurrent callers asking for one key in a worker share one call.

The call runs in its own greenlet, so a caller that stops waiting (its client
left, its upstream failed) never cancels it for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult


class SingleFlight:
    """Keeps at most one running call per key; later callers get the same AsyncResult."""

    def __init__(self) -> None:
        self._flights: dict[str, AsyncResult] = {}

    def start(self, key: str, call: Callable[[], Any]) -> AsyncResult:
        """The result of the running call for ``key``, or of ``call`` started now."""
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = AsyncResult()
            gevent.spawn(self._run, key, flight, call)
        return flight

    def _run(self, key: str, flight: AsyncResult, call: Callable[[], Any]) -> None:
        try:
            flight.set(call())
        except Exception as exc:
            flight.set_exception(exc)
        finally:
            del self._flights[key]
