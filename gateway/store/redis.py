"""Shared state: the Redis client used when GATEWAY_REDIS_URL is set.

One client (and so one connection pool) per worker process, made on first use
after the fork. Callers treat every Redis failure as "shared state is gone"
(:class:`RedisUnavailable`) and fall back or fail as their own setting says;
none of them may hang, so the client has short socket timeouts.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

# Seconds for connecting to and waiting on Redis: it is on the request path.
REDIS_TIMEOUT = 0.5
#: Seconds between two warnings that Redis is down, so an outage does not flood the log.
WARN_EVERY = 10.0


class RedisUnavailable(Exception):
    """Redis could not be reached or answered an error; str() says what happened."""


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn a redis-py error raised in the block into RedisUnavailable."""
    try:
        yield
    except redis.RedisError as exc:
        raise RedisUnavailable(f"{type(exc).__name__}: {exc}") from exc


class OutageWarning:
    """Logs ``message`` (with the error as ``%s``) at most once every WARN_EVERY seconds per
    worker: while Redis is down every request would log it."""

    def __init__(self, logger: logging.Logger, message: str) -> None:
        self.logger = logger
        self.message = message
        self._warned_at = float("-inf")

    def __call__(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            self.logger.warning(self.message, exc)


@functools.cache
def redis_client(url: str) -> redis.Redis:
    """The worker's Redis client for ``url`` (created lazily, reused)."""
    return redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                socket_connect_timeout=REDIS_TIMEOUT,
                                health_check_interval=30)
