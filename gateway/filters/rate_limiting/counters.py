"""Fixed-window request counters for rate limiting: per worker in memory, or shared in Redis.

A request is counted in every configured window at once (second, minute, ...)
only if none of them is full, as Kong does: a rejected request uses no quota.
Windows are aligned on the epoch (UTC), so every worker and instance agrees on
where a minute starts.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from gateway.store.redis import redis_client, redis_errors

#: Window names and lengths in seconds, shortest first (Kong's periods and its EXPIRATION
#: table: a month counts as 30 days and a year as 365 in RateLimit-Reset, as in Kong).
PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "month": 2592000,
           "year": 31536000}
#: Windows that begin on the calendar (UTC), not every ``seconds``; their longest length.
_CALENDAR = {"month": 31 * 86400, "year": 366 * 86400}
#: Most clients one worker tracks per window; past it the oldest entry is forgotten.
LOCAL_MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class Window:
    """One configured limit: at most ``limit`` requests per ``period``."""

    period: str
    limit: int

    @property
    def seconds(self) -> int:
        return PERIODS[self.period]

    @property
    def lifetime(self) -> int:
        """Seconds a counter of this window must outlive its start (a month may have 31 days)."""
        return _CALENDAR.get(self.period, self.seconds)

    def start(self, now: float) -> int:
        """Epoch second at which the window holding ``now`` began (a month or year: its first
        day, 00:00 UTC, as Kong's timestamps)."""
        if self.period in _CALENDAR:
            day = time.gmtime(now)
            month = day.tm_mon if self.period == "month" else 1
            return calendar.timegm((day.tm_year, month, 1, 0, 0, 0))
        return int(now // self.seconds) * self.seconds


@dataclass(frozen=True)
class Count:
    """The outcome of one request: allowed or not, and each window's usage.

    ``used`` is the usage after this request when allowed, before it when not.
    """

    allowed: bool
    used: tuple[int, ...]


class LocalCounters:
    """Counters in this worker's memory: each gunicorn worker limits on its own.

    No I/O happens between reading and writing a count, so under gevent the
    check and the increment cannot interleave with another request.
    """

    def __init__(self, windows: Sequence[Window], max_entries: int = LOCAL_MAX_ENTRIES) -> None:
        self.windows = tuple(windows)
        self.max_entries = max_entries
        self._starts = [-1] * len(self.windows)
        self._counts: list[dict[str, int]] = [{} for _ in self.windows]

    def take(self, identifier: str, now: float) -> Count:
        """Count one request of ``identifier`` unless a window is full."""
        tables = [self._table(i, window.start(now)) for i, window in enumerate(self.windows)]
        used = tuple(table.get(identifier, 0) for table in tables)
        if any(n >= w.limit for n, w in zip(used, self.windows, strict=True)):
            return Count(False, used)
        for table, n in zip(tables, used, strict=True):
            if n == 0 and len(table) >= self.max_entries:
                del table[next(iter(table))]  # forget the client seen first
            table[identifier] = n + 1
        return Count(True, tuple(n + 1 for n in used))

    def _table(self, index: int, start: int) -> dict[str, int]:
        """Window ``index``'s counts for the window beginning at ``start`` (old ones dropped)."""
        if self._starts[index] != start:
            self._starts[index] = start
            self._counts[index] = {}
        return self._counts[index]


# KEYS: one counter per window; ARGV: the limits, then the seconds each key lives.
# Reads every counter; if one is full, answers {0, counts...} without counting;
# else increments all, giving a new key its expiry, and answers {1, counts...}.
_TAKE_SCRIPT = """
local used = redis.call('MGET', unpack(KEYS))
local n = #KEYS
for i = 1, n do
  used[i] = tonumber(used[i]) or 0
end
for i = 1, n do
  if used[i] >= tonumber(ARGV[i]) then
    table.insert(used, 1, 0)
    return used
  end
end
for i = 1, n do
  used[i] = redis.call('INCR', KEYS[i])
  if used[i] == 1 then
    redis.call('EXPIRE', KEYS[i], ARGV[n + i])
  end
end
table.insert(used, 1, 1)
return used
"""


class RedisCounters:
    """Counters in Redis, shared by every worker and instance, checked and counted atomically
    by one Lua script; each key expires one second after its window ends."""

    def __init__(self, url: str, windows: Sequence[Window],
                 prefix: str = "gateway:ratelimit") -> None:
        self.url = url
        self.windows = tuple(windows)
        self.prefix = prefix
        self._script = None

    def take(self, identifier: str, now: float) -> Count:
        """Count one request of ``identifier`` unless a window is full; RedisUnavailable if
        Redis fails."""
        # One hash tag per client keeps its keys in one Redis Cluster slot.
        keys = [f"{self.prefix}:{{{identifier}}}:{w.period}:{w.start(now)}" for w in self.windows]
        args = [w.limit for w in self.windows] + [w.lifetime + 1 for w in self.windows]
        with redis_errors("EVALSHA"):
            answer = self._take_script()(keys=keys, args=args)
        return Count(bool(answer[0]), tuple(int(n) for n in answer[1:]))

    def _take_script(self) -> redis.commands.core.Script:
        """The registered script (EVALSHA, loaded again if Redis restarted), made after the fork."""
        if self._script is None:
            self._script = redis_client(self.url).register_script(_TAKE_SCRIPT)
        return self._script
