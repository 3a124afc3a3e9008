"""Shared state: the Redis clients, for GATEWAY_REDIS_URL and for a plugin's own ``redis``.

Every Redis the gateway talks to is named by a URL (the forms of
:func:`gateway.config.redis_target`: one server, a unix socket, a Sentinel
master, a Cluster); :func:`kong_redis_url` turns a Kong plugin's ``redis``
record into one, so any Redis-backed plugin gets its client the same way.
One client (and so one connection pool) per URL per worker process, made on
first use after the fork. Callers treat every Redis failure as "shared state
is gone" (:class:`RedisUnavailable`) and fall back or fail as their own setting
says; none of them may hang, so the clients have short socket timeouts.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from gateway.config import RedisTarget, redis_target
from gateway.ops import tracing

#: Seconds between two warnings that Redis is down, so an outage does not flood the log.
WARN_EVERY = 10.0
#: Extra attempts of a command whose connection failed: one, on a fresh connection (a pooled
#: one may be stale after a Redis restart or failover). redis-py's default, ten with
#: backoff, held a request 3.7 s against a Redis that refuses connections.
RETRIES = 1


class RedisUnavailable(Exception):
    """Redis could not be reached or answered an error; str() says what happened."""


@contextmanager
def redis_errors(operation: str = "command") -> Iterator[None]:
    """Turn a redis-py error raised in the block into RedisUnavailable; with tracing on,
    the block is a span named after ``operation`` (GET, SET, EVALSHA)."""
    try:
        if tracing.ACTIVE is None:
            yield
        else:
            with tracing.ACTIVE.redis_call(operation):
                yield
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        # Some messages end with the client's repr (" : <redis.client.Redis(...)>"): cut it.
        message = str(exc).split(" : <redis.", 1)[0]
        raise RedisUnavailable(f"{type(exc).__name__}: {message}") from exc


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
def redis_client(url: str) -> redis.Redis | RedisCluster:
    """The worker's client for the Redis ``url`` names (created lazily, reused).

    A Sentinel master's client asks the sentinels where the master is whenever a
    connection is made, so after a failover the next connections go to the
    promoted replica; a Cluster client routes each key to its slot's master.
    """
    target = redis_target(url)
    kwargs = _connection_kwargs(target)
    if target.kind == "unix":
        return redis.Redis(unix_socket_path=target.path, db=target.database,
                           **_plain(kwargs))
    if target.kind == "sentinel":
        sentinels = Sentinel(list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target),
                             **kwargs)
        return sentinels.master_for(target.service, db=target.database)
    if target.kind == "cluster":
        nodes = [ClusterNode(host, port) for host, port in target.nodes]
        return RedisCluster(startup_nodes=nodes, require_full_coverage=False, **kwargs)
    (host, port), = target.nodes
    if target.tls and target.server_name:
        return redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=ServerNameSSLConnection, host=host, port=port,
            db=target.database, server_name=target.server_name, **_plain(kwargs)))
    return redis.Redis(host=host, port=port, db=target.database, **kwargs)


def _connection_kwargs(target: RedisTarget) -> dict[str, Any]:
    """redis-py's keyword arguments for the data connections of ``target``."""
    kwargs: dict[str, Any] = {
        "username": target.username, "password": target.password,
        "socket_timeout": target.timeout, "socket_connect_timeout": target.timeout,
        "health_check_interval": 30, "retry": Retry(NoBackoff(), RETRIES)}
    if target.tls:
        kwargs.update(ssl=True, ssl_cert_reqs="required" if target.tls_verify else "none",
                      ssl_check_hostname=target.tls_verify)
    return kwargs


def _plain(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for a connection class of its own (which is TLS or not by itself)."""
    return {k: v for k, v in kwargs.items() if k != "ssl"}


def _sentinel_kwargs(target: RedisTarget) -> dict[str, Any]:
    """The sentinels' own connections: the same timeouts and TLS, their own credentials."""
    kwargs = _connection_kwargs(target)
    kwargs.update(username=target.sentinel_username, password=target.sentinel_password)
    kwargs.pop("health_check_interval")
    return kwargs


class ServerNameSSLConnection(redis.SSLConnection):
    """A TLS connection that sends ``server_name`` (SNI) and checks the certificate against
    it instead of the host connected to: Kong's ``redis.server_name``."""

    def __init__(self, server_name: str, **kwargs: Any) -> None:
        self.server_name = server_name
        super().__init__(**kwargs)

    def _wrap_socket_with_ssl(self, sock: Any) -> Any:
        host, self.host = self.host, self.server_name
        try:
            return super()._wrap_socket_with_ssl(sock)
        finally:
            self.host = host


#: Kong's ``redis.timeout`` default, in milliseconds (kong/tools/redis/schema.lua).
KONG_REDIS_TIMEOUT_MS = 2000


def kong_redis_url(conf: Mapping[str, Any]) -> str:
    """The URL of a Kong plugin's ``redis`` record (host, port, username, password,
    database, ssl, ssl_verify, server_name, timeout in ms: kong/tools/redis/schema.lua).

    An empty username or password is none (Kong sends no AUTH then); a timeout of 0
    or none is Kong's default, 2 seconds.
    """
    target = RedisTarget(
        "redis", ((conf["host"], conf.get("port") or 6379),),
        database=conf.get("database") or 0, username=conf.get("username") or None,
        password=conf.get("password") or None, tls=bool(conf.get("ssl")),
        tls_verify=bool(conf.get("ssl_verify")), server_name=conf.get("server_name"),
        timeout=(conf.get("timeout") or KONG_REDIS_TIMEOUT_MS) / 1000)
    return target.url()
