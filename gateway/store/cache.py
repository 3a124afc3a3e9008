"""Byte-value caches with a time to live: per worker in memory, or shared in Redis.

Filters that cache (enrichment, proxy-cache) get one from :func:`make_cache`.
The stores only keep bytes; what a value means, single-flight and serving stale
values belong to the caller. A Redis failure raises :class:`~gateway.store.redis.RedisUnavailable`
so the caller can fall back (call the origin) and log it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from gateway.config import Settings
from gateway.store.redis import redis_client, redis_errors


class Cache(Protocol):
    """A key -> bytes store whose entries expire ``ttl`` seconds after they were set."""

    #: True when get and set do no I/O (so a caller need not run them in a greenlet).
    local: bool

    def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired; RedisUnavailable if the store is down."""

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` for ``ttl`` seconds; RedisUnavailable if the store is down."""


class MemoryCache:
    """This worker's memory: least recently used entries go first once ``max_bytes`` is passed.

    Only keys and values count towards ``max_bytes``; a value larger than it is not kept.
    No I/O happens inside a call, so under gevent no other greenlet interleaves.
    """

    local = True

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.clock = clock
        self.size = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._drop(key)
        cost = len(key) + len(value)
        if ttl <= 0 or cost > self.max_bytes:
            return
        while self.size + cost > self.max_bytes:
            self._drop(next(iter(self._entries)))
        self._entries[key] = (self.clock() + ttl, value)
        self.size += cost

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= len(key) + len(entry[1])


class RedisCache:
    """Redis, shared by every worker and instance; Redis expires the keys itself."""

    local = False

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix

    def get(self, key: str) -> bytes | None:
        with redis_errors("GET"):
            return redis_client(self.url).get(self.prefix + key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        milliseconds = int(ttl * 1000)
        if milliseconds <= 0:
            return
        with redis_errors("SET"):
            redis_client(self.url).set(self.prefix + key, value, px=milliseconds)


def make_cache(settings: Settings, prefix: str, max_bytes: int, url: str | None = None) -> Cache:
    """A RedisCache (keys under ``prefix``) in the Redis ``url`` names (a plugin's own), else
    GATEWAY_REDIS_URL's when set; else a MemoryCache."""
    if url or settings.redis_url:
        return RedisCache(url or settings.redis_url, prefix)
    return MemoryCache(max_bytes)
