"""The upstream service: pooled connections, balanced targets, timeouts, failover.

Connections come from and go back to one urllib3 PoolManager per worker (set-up,
TLS, idle checks), made on first use so that it is built after the fork and after
gevent patched the standard library (urllib3 issue #3289). The bytes on the wire
are the gateway's own (:mod:`gateway.proxy.wire`): the request head in one send,
the answer parsed by httptools. Failover is done here rather than with urllib3's
Retry, because a retry must go to the *next* target and mark the failed one down. Which
target comes first, and which next, is the balancer's (:mod:`gateway.proxy.balancer`).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
)
from werkzeug.datastructures import Headers

from gateway.config import Settings
from gateway.proxy import balancer as balancing
from gateway.proxy import wire
from gateway.proxy.errors import BAD_GATEWAY, GATEWAY_TIMEOUT, GatewayError
from gateway.proxy.headers import fields as header_fields
from gateway.proxy.healthcheck import (
    HTTP,
    NO_PEER,
    OFF,
    TCP,
    TIMEOUT,
    Checker,
    HealthChecks,
    TargetHealth,
    balancer_healthy,
)
from gateway.proxy.pools import Answer, Unanswered, exchange, pool_manager
from gateway.proxy.request import RequestBody

if TYPE_CHECKING:
    from gateway.proxy.exchange import Exchange

log = logging.getLogger("gateway.proxy.upstream")
# Past GATEWAY_POOL_SIZE concurrent requests the pool opens extra connections and
# warns once per request when it discards them; that is expected here, not news.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

# Retrying these is safe: RFC 9110 9.2.2.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: The status and words logged for a client that left before the upstream answered
#: (nginx's and Kong's 499); the client never sees them.
CLIENT_CLOSED = 499
#: Kong's 503 when an upstream host name does not resolve (kong/runloop/balancer).
NAME_RESOLUTION_FAILED = "name resolution failed"
CLIENT_CLOSED_MESSAGE = "Client closed the connection"


@dataclass
class Target:
    """One upstream base URL and its health: the passive cooldown, or Kong's health checks
    when its upstream uses them (``health``, shared by the entries of one address)."""

    url: str
    host_header: str
    base_path: str
    down_until: float = 0.0
    health: TargetHealth | None = None

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        return cls(url=url, host_header=parts.netloc.rpartition("@")[2],
                   base_path=parts.path.rstrip("/"))

    def is_up(self, now: float) -> bool:
        """True when the balancer may pick this target at ``now`` (time.monotonic()): it is
        not cooling down after a failure, nor marked unhealthy by Kong's health checks."""
        return self.down_until <= now and (self.health is None or self.health.up)


def _replayable(body: RequestBody | None, chunked: bool) -> RequestBody | bytes | None:
    """The body read whole when it is small (it can then be sent again, and goes in the
    same send as the head), else the stream itself."""
    if body is None or chunked or body.remaining is None or body.remaining > wire.CHUNK:
        return body
    pieces = []
    while left := body.remaining:  # RequestBody raises 400 if the client sends less
        pieces.append(body.read(left))
    return b"".join(pieces)


class Upstream:
    """Sends requests to the upstream targets of this worker."""

    def __init__(self, settings: Settings, plan: balancing.Balancing = balancing.ROUND_ROBIN,
                 weights: Sequence[int] | None = None) -> None:
        """``settings.upstream_urls`` are the targets; ``weights`` theirs, for an algorithm
        other than round-robin (None: the URLs are already repeated by weight)."""
        self.settings = settings
        self.targets = [Target.from_url(url) for url in settings.upstream_urls]
        #: The name of the declarative file's upstream entity these targets come from (None:
        #: a service's own host), for Kong's kong_upstream_target_health.
        self.name: str | None = None
        #: The upstream's algorithm, chosen at load.
        self.balancer = balancing.balancer(plan, self.targets, weights)
        #: True when a response may carry the balancer's Set-Cookie (a cookie hash).
        self.sets_cookie = self.balancer.sets_cookie
        #: perf_counter() time a target last answered a request (the readiness probe reads it).
        self.answered_at = float("-inf")
        self._manager: urllib3.PoolManager | None = None
        self._pools: dict[str, urllib3.HTTPConnectionPool] = {}
        self.limits = wire.HeadLimits(max_bytes=settings.upstream_max_header_bytes)
        #: Kong's health checks of the targets, when the upstream entity uses them (else
        #: the cooldown of GATEWAY_TARGET_COOLDOWN).
        self.checks: HealthChecks | None = None
        #: The active probes, when the checks have an interval above 0.
        self.checker: Checker | None = None

    def use_healthchecks(self, checks: HealthChecks) -> None:
        """Judge the targets by Kong's ``healthchecks`` record, if it is in use (Kong's rule:
        an active interval or a passive failure limit above 0), instead of the cooldown."""
        if not checks.in_use:
            return
        self.checks = checks
        healths: dict[str, TargetHealth] = {}
        for target in self.targets:
            parts = urlsplit(target.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            target.health = healths.setdefault(target.url,
                                               TargetHealth(parts.hostname or "", port))
        if checks.probing:
            self.checker = Checker(self.name or "", checks, healths.values())

    @property
    def manager(self) -> urllib3.PoolManager:
        """The worker's PoolManager, created on the first request (after the fork)."""
        if self._manager is None:
            timeout = urllib3.Timeout(connect=self.settings.connect_timeout,
                                      read=self.settings.read_timeout)
            self._manager = pool_manager(
                num_pools=max(10, len(self.targets)), maxsize=self.settings.pool_size,
                timeout=timeout, retries=False)
        return self._manager

    def candidates(self, attempts: int, ex: Exchange | None = None) -> Iterator[Target]:
        """Up to ``attempts`` targets for the request ``ex`` in the balancer's order, healthy
        ones before cooling-down ones."""
        return self.balancer.candidates(attempts, ex)

    def send(self, method: str, path: str, headers: Headers, body: RequestBody | None,
             chunked: bool, client: socket.socket | None = None,
             upgrade: bool = False, ex: Exchange | None = None) -> tuple[Target, Answer]:
        """Send a request; return the target and its streaming answer or raise GatewayError.

        A request that never reached a target goes to the next one if idempotent. So does
        an idempotent request whose body can be sent again (none, or one small enough to
        be read whole first) when a target failed before any byte of its answer, within
        GATEWAY_RETRIES (nginx's proxy_next_upstream error). ``client``, the client's
        socket, is watched while the answer is awaited: a client that left ends the wait.
        ``upgrade``: the request asks to switch protocols, and a 101 is a final answer
        (:class:`wire.Response`). ``ex``: the request, for a balancer that hashes it; a
        balancer that counts requests in flight is told when the answer is over through
        the environ's ``BALANCER_DONE`` call (the app makes it).
        """
        payload = _replayable(body, chunked)
        repeatable = method in IDEMPOTENT and not isinstance(payload, RequestBody)
        attempts = 1 + self.settings.retries if method in IDEMPOTENT else 1
        client_gone = partial(wire.peer_closed, client) if client is not None else None
        failure: GatewayError | None = None
        attempt = self._attempt if not self.balancer.tracks else partial(self._tracked, ex)
        checks = self.checks
        if checks is not None:
            self._check_balancer(checks)
            now = time.monotonic()
        for target in self.balancer.candidates(attempts, ex):
            if checks is not None and not target.is_up(now):
                continue  # Kong's balancer never picks an unhealthy target
            try:
                answer = attempt(target, method, path, headers, payload, chunked,
                                 repeatable, client_gone, upgrade)
            except NameResolutionError as exc:  # before NewConnectionError, its base
                self._mark_down(target, exc, TCP)
                if target.health is not None:
                    target.health.dns_error = True
                failure = GatewayError(503, NAME_RESOLUTION_FAILED, "dns")
            except NewConnectionError as exc:  # refused: before ConnectTimeoutError
                self._mark_down(target, exc, TCP)
                failure = GatewayError(502, BAD_GATEWAY, "refused")
            except ConnectTimeoutError as exc:
                self._mark_down(target, exc, TIMEOUT)
                failure = GatewayError(504, GATEWAY_TIMEOUT, "timeout")
            except Unanswered as exc:
                log.warning("upstream %s failed before answering: %s", target.url, exc)
                self._passive(target, TCP)
                failure = GatewayError(502, BAD_GATEWAY, "reset")
                if not repeatable:
                    raise failure from exc
            except wire.ClientGone as exc:
                raise GatewayError(CLIENT_CLOSED, CLIENT_CLOSED_MESSAGE, "client-closed") from exc
            except TimeoutError as exc:
                log.warning("upstream %s timed out: %s", target.url, exc)
                self._passive(target, TIMEOUT)
                raise GatewayError(504, GATEWAY_TIMEOUT, "timeout") from exc
            except wire.InvalidResponse as exc:
                log.warning("upstream %s sent an invalid answer: %s", target.url, exc)
                self._passive(target, HTTP, 502)  # Kong counts its 502 as the status
                raise GatewayError(502, BAD_GATEWAY, "invalid") from exc
            except (HTTPError, OSError) as exc:
                log.warning("upstream %s failed: %s", target.url, exc)
                self._passive(target, TCP)
                raise GatewayError(502, BAD_GATEWAY, "reset") from exc
            else:
                self.answered_at = time.perf_counter()
                if target.health is not None:
                    self._passive(target, HTTP, answer.status)
                return target, answer
        if failure is None:  # every target is unhealthy
            raise GatewayError(503, NO_PEER, "no-peer")
        raise failure

    def _attempt(self, target: Target, method: str, path: str, headers: Headers,
                 payload: RequestBody | bytes | None, chunked: bool, repeatable: bool,
                 client_gone: Callable[[], bool] | None, upgrade: bool) -> Answer:
        head = self._head(target, method, path, headers, payload, chunked)
        return exchange(self._pool(target), head, payload, chunked,
                        timeout=self.settings.read_timeout, head_request=method == "HEAD",
                        repeatable=repeatable, client_gone=client_gone, upgrade=upgrade,
                        limits=self.limits)

    def _tracked(self, ex: Exchange | None, target: Target, *args: Any) -> Answer:
        """An attempt counted by the balancer: begun now, ended when it failed or, once
        answered, by the environ's ``BALANCER_DONE`` call when the request is over."""
        started = self.balancer.begin(target)
        try:
            answer = self._attempt(target, *args)
        except BaseException:
            self.balancer.end(target, started, answered=False)
            raise
        done = partial(self.balancer.end, target, started)
        if ex is not None:
            ex.environ[balancing.BALANCER_DONE] = done
        else:
            done()
        return answer

    def _pool(self, target: Target) -> urllib3.HTTPConnectionPool:
        pool = self._pools.get(target.url)
        if pool is None:
            pool = self._pools[target.url] = self.manager.connection_from_url(target.url)
        return pool

    def _head(self, target: Target, method: str, path: str, headers: Headers,
              payload: RequestBody | bytes | None, chunked: bool) -> bytes:
        """The request head for ``target``. A name a filter added twice is joined with
        ", ", equivalent per RFC 9110 5.3."""
        fields: dict[str, str] = {}
        for name, value in header_fields(headers):
            previous = fields.get(name)
            fields[name] = value if previous is None else f"{previous}, {value}"
        if not self.settings.preserve_host or "Host" not in fields:
            fields["Host"] = target.host_header
        extra = wire.framing(method, payload, chunked)
        if extra is not None:
            fields[extra[0]] = extra[1]
        return wire.request_head(method, target.base_path + path, fields.items())

    def target_health(self) -> dict[str, str]:
        """Per target (host:port), Kong's state in this worker: healthy or unhealthy when
        the upstream uses health checks, else healthchecks_off; dns_error when its name
        did not resolve."""
        return {urlsplit(t.url).netloc: t.health.shown if t.health else OFF
                for t in self.targets}

    def idle_connections(self) -> dict[str, tuple[int, int]]:
        """Per target URL: (idle pooled connections, connections opened so far) in this worker."""
        # urllib3 fills the pool's queue with None placeholders: count real connections.
        return {url: (sum(c is not None for c in pool.pool.queue) if pool.pool else 0,
                      pool.num_connections)
                for url, pool in self._pools.items()}

    def _mark_down(self, target: Target, exc: Exception, counter: int) -> None:
        """A target that could not be reached: counted by the health checks, else skipped
        for GATEWAY_TARGET_COOLDOWN."""
        if target.health is not None:
            log.warning("upstream %s unreachable: %s", target.url, exc)
            self._passive(target, counter)
            return
        cooldown = self.settings.target_cooldown
        target.down_until = time.monotonic() + cooldown
        log.warning("upstream %s unreachable, skipped for %ss: %s", target.url, cooldown, exc)

    def _check_balancer(self, checks: HealthChecks) -> None:
        """GatewayError 503 (Kong's) when the healthy share of the weight is not above the
        threshold (0: no target is healthy)."""
        if not balancer_healthy((t.health for t in self.targets if t.health is not None),
                                checks.threshold):
            raise GatewayError(503, NO_PEER, "no-peer")

    def _passive(self, target: Target, counter: int, status: int | None = None) -> None:
        """A passive report, when the health checks are in use: a failure on ``counter``,
        or an answer's (or Kong's own 502's) ``status``, a 504 counted as a timeout as
        Kong does."""
        health, checks = target.health, self.checks
        if health is None or checks is None:
            return
        if status is None or status == 504:
            counter = TIMEOUT if status == 504 else counter
            health.record(counter, checks.passive.limit(counter), "passive")
        else:
            health.record_status(status, checks.passive, "passive")
        if status is not None:
            health.dns_error = False
