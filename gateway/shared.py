"""Shared state: the Redis client used when GATEWAY_REDIS_URL is set.

One client (and so one connection pool) per worker process, made on first use
after the fork. Callers treat every Redis failure as "shared state is gone"
and fall back or fail as their own setting says; none of them may hang, so the
client has short socket timeouts.
"""

from __future__ import annotations

import functools

import redis

# Seconds for connecting to and waiting on Redis: it is on the request path.
REDIS_TIMEOUT = 0.5


@functools.cache
def redis_client(url: str) -> redis.Redis:
    """The worker's Redis client for ``url`` (created lazily, reused)."""
    return redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                socket_connect_timeout=REDIS_TIMEOUT,
                                health_check_interval=30)
