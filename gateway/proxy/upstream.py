"""The upstream service: pooled connections, round-robin targets, timeouts, failover.

One urllib3 PoolManager per worker process, made on first use so that it is
built after the fork and after gevent patched the standard library (urllib3
issue #3289: a pool made before patching keeps a real queue and can deadlock).
Failover is done here rather than with urllib3's Retry, because a retry must
go to the *next* target and mark the failed one down.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util import SKIP_HEADER
from werkzeug.datastructures import Headers

from gateway.config import Settings
from gateway.proxy.errors import BAD_GATEWAY, GATEWAY_TIMEOUT, GatewayError
from gateway.proxy.pools import pool_manager

log = logging.getLogger("gateway.proxy.upstream")
# Past GATEWAY_POOL_SIZE concurrent requests urllib3 opens extra connections and
# warns once per request when it discards them; that is expected here, not news.
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

# Retrying these is safe: RFC 9110 9.2.2.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# urllib3 would add its own when the client sent none; a proxy forwards only the client's.
_SKIPPABLE = {"User-Agent": SKIP_HEADER, "Accept-Encoding": SKIP_HEADER}
# Bytes per send() when streaming a request body upstream.
BLOCKSIZE = 64 * 1024


@dataclass
class Target:
    """One upstream base URL and its passive health state."""

    url: str
    host_header: str
    base_path: str
    down_until: float = 0.0

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        return cls(url=url, host_header=parts.netloc.rpartition("@")[2],
                   base_path=parts.path.rstrip("/"))


class Upstream:
    """Sends requests to the upstream targets of this worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.targets = [Target.from_url(url) for url in settings.upstream_urls]
        self._turn = itertools.count()
        #: perf_counter() time a target last answered a request (the readiness probe reads it).
        self.answered_at = float("-inf")
        self._manager: urllib3.PoolManager | None = None
        self._pools: dict[str, urllib3.HTTPConnectionPool] = {}

    @property
    def manager(self) -> urllib3.PoolManager:
        """The worker's PoolManager, created on the first request (after the fork)."""
        if self._manager is None:
            timeout = urllib3.Timeout(connect=self.settings.connect_timeout,
                                      read=self.settings.read_timeout)
            self._manager = pool_manager(
                num_pools=max(10, len(self.targets)), maxsize=self.settings.pool_size,
                timeout=timeout, retries=False, blocksize=BLOCKSIZE)
        return self._manager

    def candidates(self, attempts: int) -> Iterator[Target]:
        """Up to ``attempts`` targets, round-robin, healthy ones before cooling-down ones."""
        start = next(self._turn) % len(self.targets)
        ring = self.targets[start:] + self.targets[:start]
        now = time.monotonic()
        ordered = [t for t in ring if t.down_until <= now] + [t for t in ring if t.down_until > now]
        return iter(ordered[:attempts])

    def send(self, method: str, path: str, headers: Headers,
             body: IO[bytes] | None, chunked: bool) -> tuple[Target, urllib3.BaseHTTPResponse]:
        """Send a request; return the target and its streaming response or raise GatewayError.

        Only requests that never reached a target are tried again, and only idempotent ones.
        """
        attempts = 1 + self.settings.retries if method in IDEMPOTENT else 1
        failure: GatewayError | None = None
        for target in self.candidates(attempts):
            try:
                response = self._urlopen(target, method, path, headers, body, chunked)
            except NewConnectionError as exc:  # refused, DNS failure: before ConnectTimeoutError
                self._mark_down(target, exc)
                failure = GatewayError(502, BAD_GATEWAY, "refused")
            except ConnectTimeoutError as exc:
                self._mark_down(target, exc)
                failure = GatewayError(504, GATEWAY_TIMEOUT, "timeout")
            except ReadTimeoutError as exc:
                log.warning("upstream %s timed out: %s", target.url, exc)
                raise GatewayError(504, GATEWAY_TIMEOUT, "timeout") from exc
            except (HTTPError, OSError) as exc:
                log.warning("upstream %s failed: %s", target.url, exc)
                raise GatewayError(502, BAD_GATEWAY, "reset") from exc
            else:
                self.answered_at = time.perf_counter()
                return target, response
        assert failure is not None
        raise failure

    def _urlopen(self, target: Target, method: str, path: str, headers: Headers,
                 body: IO[bytes] | None, chunked: bool) -> urllib3.BaseHTTPResponse:
        pool = self._pools.get(target.url)
        if pool is None:
            pool = self._pools[target.url] = self.manager.connection_from_url(target.url)
        return pool.urlopen(
            method, target.base_path + path, body=body, headers=self._outgoing(target, headers),
            chunked=chunked, retries=False, redirect=False, assert_same_host=False,
            preload_content=False, decode_content=False, release_conn=False)

    def _outgoing(self, target: Target, headers: Headers) -> dict[str, str]:
        """The headers as a plain dict (cheaper for urllib3 than its HTTPHeaderDict).

        A name a filter added twice is joined with ", ", equivalent per RFC 9110 5.3.
        """
        out = dict(_SKIPPABLE)
        for name, value in headers.items():
            previous = out.get(name)
            out[name] = value if previous in (None, SKIP_HEADER) else f"{previous}, {value}"
        if not self.settings.preserve_host:
            out["Host"] = target.host_header
        return out

    def idle_connections(self) -> dict[str, tuple[int, int]]:
        """Per target URL: (idle pooled connections, connections opened so far) in this worker."""
        # urllib3 fills the pool's queue with None placeholders: count real connections.
        return {url: (sum(c is not None for c in pool.pool.queue) if pool.pool else 0,
                      pool.num_connections)
                for url, pool in self._pools.items()}

    def _mark_down(self, target: Target, exc: Exception) -> None:
        cooldown = self.settings.target_cooldown
        target.down_until = time.monotonic() + cooldown
        log.warning("upstream %s unreachable, skipped for %ss: %s", target.url, cooldown, exc)
