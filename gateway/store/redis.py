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
from contextlib import contextmanager, suppress
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelConnectionPoolProxy,
)

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
        return _sentinel_client(target, kwargs)
    if target.kind == "cluster":
        return _cluster_client(target, kwargs)
    (host, port), = target.nodes
    if target.tls and target.server_name:
        return redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=ServerNameSSLConnection, host=host, port=port,
            db=target.database, server_name=target.server_name, **_plain(kwargs)))
    return redis.Redis(host=host, port=port, db=target.database, **kwargs)


class _AnyRoleProxy(SentinelConnectionPoolProxy):
    """The replica pool's view of the sentinels, the master first in its rotation."""

    def rotate_slaves(self) -> Iterator[tuple[str, int]]:
        with suppress(MasterNotFoundError):
            yield self.get_master_address()
        yield from super().rotate_slaves()


class AnyRolePool(SentinelConnectionPool):
    """Kong Enterprise's ``sentinel_role: any``: the master while the sentinels name one,
    else one of its replicas. redis-py's replica pool (which tries the master last) with
    its proxy, the object its connections ask for addresses, replaced by one that tries
    the master first."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)
        self.proxy = _AnyRoleProxy(
            connection_pool=self, is_master=False, check_connection=self.check_connection,
            service_name=service_name, sentinel_manager=sentinel_manager)
        self.connection_kwargs["connection_pool"] = self.proxy


def _sentinel_client(target: RedisTarget, kwargs: dict[str, Any]) -> redis.Redis:
    """The client of the server of ``target.sentinel_role`` in the sentinels' set."""
    sentinels = Sentinel(list(target.nodes), sentinel_kwargs=_sentinel_kwargs(target),
                         **kwargs)
    if target.sentinel_role == "master":
        return sentinels.master_for(target.service, db=target.database)
    pool = AnyRolePool if target.sentinel_role == "any" else SentinelConnectionPool
    return sentinels.slave_for(target.service, db=target.database, connection_pool_class=pool)


def _cluster_client(target: RedisTarget, kwargs: dict[str, Any]) -> RedisCluster:
    """A Cluster client from the startup nodes; a command follows at most
    ``max_redirections`` MOVED/ASK answers (redis-py counts attempts: one more)."""
    nodes = [ClusterNode(host, port) for host, port in target.nodes]
    client = RedisCluster(startup_nodes=nodes, require_full_coverage=False, **kwargs)
    if target.max_redirections is not None:
        client.RedisClusterRequestTTL = target.max_redirections + 1
    return client


def _connection_kwargs(target: RedisTarget) -> dict[str, Any]:
    """redis-py's keyword arguments for the data connections of ``target``."""
    connect = target.timeout if target.connect_timeout is None else target.connect_timeout
    kwargs: dict[str, Any] = {
        "username": target.username, "password": target.password,
        "socket_timeout": target.timeout, "socket_connect_timeout": connect,
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
    database, ssl, ssl_verify, server_name, timeout in ms: kong/tools/redis/schema.lua),
    or of Kong Enterprise's Sentinel (``sentinel_master``, ``sentinel_nodes`` as
    ((host, port), ...), ``sentinel_role``, ``sentinel_username``, ``sentinel_password``)
    or Cluster (``cluster_nodes``, ``cluster_max_redirections``) forms of it.

    An empty username or password is none (Kong sends no AUTH then); a timeout of 0
    or none is Kong's default, 2 seconds. Kong Enterprise's ``connect_timeout``, and
    ``read_timeout``/``send_timeout`` (redis-py has one socket timeout for both: the
    larger), replace ``timeout`` where given.
    """
    timeout = _kong_seconds(conf, "timeout") or KONG_REDIS_TIMEOUT_MS / 1000
    socket = max(_kong_seconds(conf, "read_timeout"), _kong_seconds(conf, "send_timeout"))
    target = RedisTarget(
        database=conf.get("database") or 0, username=conf.get("username") or None,
        password=conf.get("password") or None, tls=bool(conf.get("ssl")),
        tls_verify=bool(conf.get("ssl_verify")), timeout=socket or timeout,
        connect_timeout=_kong_seconds(conf, "connect_timeout") or None,
        **_kong_topology(conf))
    return target.url()


def _kong_seconds(conf: Mapping[str, Any], name: str) -> float:
    """A Kong timeout field (milliseconds) in seconds; 0 when not given."""
    return (conf.get(name) or 0) / 1000


def _kong_topology(conf: Mapping[str, Any]) -> dict[str, Any]:
    """RedisTarget's fields for the record's kind: a Sentinel set, a Cluster or one host."""
    if conf.get("sentinel_nodes"):
        return {"kind": "sentinel", "nodes": tuple(conf["sentinel_nodes"]),
                "service": conf["sentinel_master"],
                "sentinel_role": conf.get("sentinel_role") or "master",
                "sentinel_username": conf.get("sentinel_username") or None,
                "sentinel_password": conf.get("sentinel_password") or None}
    if conf.get("cluster_nodes"):
        return {"kind": "cluster", "nodes": tuple(conf["cluster_nodes"]),
                "max_redirections": conf.get("cluster_max_redirections")}
    return {"kind": "redis", "nodes": ((conf["host"], conf.get("port") or 6379),),
            "server_name": conf.get("server_name")}
