"""Fixed-window request counters for rate limiting: in the node's shared memory, or in Redis.

A request is counted in every configured window at once (second, minute, ...)
only if none of them is full, as Kong does: a rejected request uses no quota.
Windows are aligned on the epoch (UTC), so every worker and instance agrees on
where a minute starts.
"""

from __future__ import annotations

import calendar
import itertools
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import redis

from gateway.config import ServerSettings, load
from gateway.store import shared
from gateway.store.redis import redis_client, redis_errors
from gateway.store.shared import Region

log = logging.getLogger("gateway.rate-limiting")

#: Window names and lengths in seconds, shortest first (Kong's periods and its EXPIRATION
#: table: a month counts as 30 days and a year as 365 in RateLimit-Reset, as in Kong).
PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "month": 2592000,
           "year": 31536000}
#: Windows that begin on the calendar (UTC), not every ``seconds``; their longest length.
_CALENDAR = {"month": 31 * 86400, "year": 366 * 86400}
#: Bytes of one slot of the node's counter table (a key word and a value word).
SLOT_BYTES = 16
#: Slots from its home on where a client's counter may sit (probed in turn).
NEIGHBOURHOOD = 32
#: A key's high 61 bits (the client's hash); the low 3 hold its period's code.
_KEY = 0xFFFF_FFFF_FFFF_FFF8
#: The count half of a slot's value (the window's start is the other).
_COUNT = 0xFFFF_FFFF
#: Period -> its code in a key (1-6; 0 is a slot never used).
_CODES = {period: code for code, period in enumerate(PERIODS, 1)}
#: Code -> seconds a window of that period lasts at most.
_LIFETIMES = (0, *(_CALENDAR.get(period, seconds) for period, seconds in PERIODS.items()))
#: Each LocalCounters' place among those this process made: part of its clients' hashes.
_instances = itertools.count()


@dataclass(frozen=True)
class Window:
    """One configured limit: at most ``limit`` requests per ``period``."""

    period: str
    limit: float  # a Kong number: 2.5 lets a third request through, as in Kong

    @cached_property
    def seconds(self) -> int:
        return PERIODS[self.period]

    @cached_property
    def header_names(self) -> tuple[str, str]:
        """Kong's X-RateLimit-Limit-<Period> and X-RateLimit-Remaining-<Period> (made once:
        every response carries them)."""
        name = self.period.title()
        return f"X-RateLimit-Limit-{name}", f"X-RateLimit-Remaining-{name}"

    @cached_property
    def limit_text(self) -> str:
        return str(self.limit)

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


class Count(NamedTuple):
    """The outcome of one request: allowed or not, and each window's usage.

    ``used`` is the usage after this request when allowed, before it when not. (A
    named tuple: one is made per request, at a third of a frozen dataclass's cost.)
    """

    allowed: bool
    used: tuple[int, ...]


class CounterTable:
    """(client, window) counters in a :class:`~gateway.store.shared.Region`: a fixed-size
    open-addressing table, shared by the node's workers when the master reserved it.

    Slot ``i`` is two words: ``2i`` the key (a client's 64-bit hash, its window's
    period code in the low 3 bits; 0 for a slot never used) and ``2i+1`` the value
    (the window's start, epoch seconds, << 32 | the count). A key lives in the
    first usable slot of the :data:`NEIGHBOURHOOD` from its home slot on and keeps
    that slot from window to window (a new window rewrites its value). A slot whose
    window is over is free for another key, so memory stays the table's; when a
    neighbourhood holds only live windows, the oldest is forgotten and it is logged.

    Everything happens under the region's lock, with no I/O. Each write is one
    aligned word, in an order that leaves every intermediate state meaning
    something: a worker killed between two writes can lose only the count of the
    request it was serving (the one that dies with it), never corrupt a slot, and
    the kernel drops its lock.
    """

    def __init__(self, region: Region) -> None:
        self.region = region
        self.words = region.words
        self.slots = len(region.words) // 2
        self._warned = -math.inf

    def take(self, base: int, codes: Sequence[int], starts: Sequence[int],
             limits: Sequence[float], now: int) -> Count:
        """Count one request in the windows ``codes`` (their ``starts`` and ``limits``) of the
        client hashed to ``base`` (low 3 bits 0), unless one of them is full."""
        words = self.words
        self.region.acquire()
        try:
            found, used, full = [], [], False
            for code, start, limit in zip(codes, starts, limits, strict=True):
                index, value = self._find(base | code)
                if value >> 32 < start:  # a window another worker moved on to counts this too
                    value = start << 32
                count = value & _COUNT
                found.append((index, value))
                used.append(count)
                full = full or count >= limit
            if full:
                return Count(False, tuple(used))
            claimed = found[:]  # this request's slots, which a claim must not take
            for code, (index, value) in zip(codes, found, strict=True):
                if value & _COUNT != _COUNT:  # saturated: stays at its maximum
                    value += 1
                if index < 0:
                    index = self._claim(base | code, now, claimed)
                    words[index + 1] = 0  # whatever it held is gone before the key moves in
                    words[index] = base | code
                    claimed.append((index, 0))
                words[index + 1] = value
        finally:
            self.region.release()
        return Count(True, tuple([n + 1 for n in used]))

    def _find(self, key: int) -> tuple[int, int]:
        """The word index of ``key``'s slot and its value; (-1, 0) when it has none."""
        words, size = self.words, len(self.words)
        index = 2 * ((key >> 3) % self.slots)
        for _ in range(NEIGHBOURHOOD):
            held = words[index]
            if held == key:
                return index, words[index + 1]
            if held == 0:  # claims take the first usable slot: the key is not further on
                break
            index += 2
            if index == size:
                index = 0
        return -1, 0

    def _claim(self, key: int, now: int, kept: list[tuple[int, int]]) -> int:
        """The word index of a slot for ``key``: the first never used or past its window in
        its neighbourhood; else the one with the oldest window (not one of the indexes in
        ``kept``: this request's other windows), logged."""
        words, size = self.words, len(self.words)
        index = 2 * ((key >> 3) % self.slots)
        oldest, oldest_start = -1, math.inf
        for _ in range(NEIGHBOURHOOD):
            held = words[index]
            start = words[index + 1] >> 32
            if held == 0 or start + _LIFETIMES[held & 7] <= now:
                return index
            if start < oldest_start and all(index != other for other, _ in kept):
                oldest, oldest_start = index, start
            index += 2
            if index == size:
                index = 0
        self._full()
        return oldest

    def _full(self) -> None:
        """Say (at most once a minute per worker) that live counters are being forgotten."""
        now = time.monotonic()
        if now - self._warned >= 60:
            self._warned = now
            log.warning("rate-limiting: the node's counter table is full (%d slots): "
                        "forgetting the counters of the oldest windows, as Kong's full shm "
                        "drops its least recently used; raise GATEWAY_RATELIMIT_LOCAL_SLOTS",
                        self.slots)


def node_table() -> CounterTable:
    """The node's counter table: the one the gunicorn master reserved for its workers, else
    (no master: the in-process app, the development server) this process's own."""
    global _node_table
    if _node_table is None:
        slots = load(ServerSettings, os.environ).ratelimit_local_slots
        region = shared.region(shared.RATE_LIMITING, SLOT_BYTES * slots)
        if not region.shared and "gunicorn.arbiter" in sys.modules:
            log.warning("rate-limiting: policy local counts in this worker alone: the "
                        "master reserved no shared memory (start gunicorn with the gateway's "
                        "gunicorn.conf.py, or call gateway.store.shared.reserve in its "
                        "on_starting)")
        _node_table = CounterTable(region)
    return _node_table


_node_table: CounterTable | None = None


class LocalCounters:
    """Counters in the node's memory (Kong's ``local`` policy): all workers of one gateway
    count together in the :func:`node_table`, as in Kong's shm.

    Each instance (a plugin entry) has counters of its own: its clients are hashed
    with a salt from its place among the instances a worker builds (the same in
    every worker, as they build the same configuration) and its windows.
    """

    def __init__(self, windows: Sequence[Window], table: CounterTable | None = None) -> None:
        self.windows = tuple(windows)
        self.table = table or node_table()
        self._salt = hash((next(_instances), self.windows))
        self._codes = tuple(_CODES[w.period] for w in self.windows)
        self._limits = tuple(w.limit for w in self.windows)

    def take(self, identifier: str, now: float) -> Count:
        """Count one request of ``identifier`` unless a window is full."""
        base = (hash(identifier) ^ self._salt) & _KEY
        return self.table.take(base, self._codes, [w.start(now) for w in self.windows],
                               self._limits, int(now))


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
