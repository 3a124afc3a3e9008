"""The HTTP client for external services called by filters.

Its own pooled urllib3 PoolManager per worker, made on first use (after the
fork and gevent's patching): keep-alive reuse, no retries, no redirects, TLS
verified against the system's CAs or a given bundle. urllib3 opens and pools
the connections; the bytes on the wire are the gateway's own, as upstream
(:mod:`gateway.proxy.wire`: the head in one send, the answer parsed by
httptools). Bodies are read in pieces and refused past a size limit, so a huge
answer is never held whole. Errors name what failed without urllib3's object
reprs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError
from urllib3.util import Url, parse_url

from gateway.proxy import pools, wire
from gateway.proxy.pools import Unanswered, exchange, pool_manager
from gateway.proxy.upstream import IDEMPOTENT
from gateway.services.errors import CallFailed

#: urllib3's "<...Connection object at 0x...>: " and "HTTPConnection(host=..., port=...): ".
_REPR = re.compile(r"^(<[^>]*>|\w+\(host=[^)]*\)): ")
#: Headers sent unless the caller gives its own (those urllib3 and http.client sent).
_DEFAULTS = (("User-Agent", f"python-urllib3/{urllib3.__version__}"),
             ("Accept-Encoding", "identity"))
#: Headers the client sets from the body, never the caller's.
_FRAMING = frozenset({"content-length", "transfer-encoding"})
#: What a call can fail with on the way (urllib3's connect and TLS errors, socket errors,
#: an answer llhttp refused, a connection that ended before any answer).
_FAILURES = (wire.InvalidResponse, Unanswered, HTTPError, OSError)


@dataclass(frozen=True)
class Answer:
    """A service's answer, read whole (at most the client's max_bytes)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpClient:
    """Calls external services; ``connect`` and ``read`` bound each connect and each read,
    ``limits`` an answer's header section (as the upstream's: CallFailed past them)."""

    def __init__(self, connect: float, read: float, max_bytes: int,
                 ca_bundle: str | None = None, insecure: bool = False,
                 pool_size: int = 100, limits: wire.HeadLimits = wire.DEFAULT_LIMITS) -> None:
        self.connect_timeout = connect
        self.read_timeout = read
        self.max_bytes = max_bytes
        self.limits = limits
        self.ca_bundle = ca_bundle
        self.insecure = insecure
        self.pool_size = pool_size
        self._pool: urllib3.PoolManager | None = None
        #: (scheme, host, port) -> its pool, sparing urllib3's key normalising on every call.
        self._pools: dict[tuple[str | None, str | None, int | None],
                          urllib3.HTTPConnectionPool] = {}

    @property
    def pool(self) -> urllib3.PoolManager:
        """The worker's PoolManager, built lazily so it is made after gevent patched the worker."""
        if self._pool is None:
            self._pool = pool_manager(
                num_pools=16, maxsize=self.pool_size, retries=False,
                timeout=urllib3.Timeout(connect=self.connect_timeout),
                cert_reqs="CERT_NONE" if self.insecure else "CERT_REQUIRED",
                ca_certs=self.ca_bundle)
        return self._pool

    def call(self, method: str, url: str, headers: Mapping[str, str],
             body: bytes | None = None) -> Answer:
        """Send the request and read the whole answer (at most max_bytes); CallFailed otherwise.

        A pooled connection the service closed while idle is replaced once for an
        idempotent method; a connection goes back to the pool only after a whole
        keep-alive answer. ValueError for a CR, LF or NUL in a header (injection)."""
        try:
            parts = _parsed(url)
            pool = self._host_pool(parts.scheme, parts.host, parts.port)
        except HTTPError as exc:
            raise self._failure(exc) from None
        head = wire.request_head(method, parts.request_uri,
                                 _fields(parts.netloc or "", headers, method, body))
        try:
            answer = exchange(pool, head, body, False, timeout=self.read_timeout,
                              head_request=method == "HEAD", repeatable=method in IDEMPOTENT,
                              limits=self.limits)
        except _FAILURES as exc:
            raise self._failure(exc) from None
        try:
            received = urllib3.HTTPHeaderDict(answer.headers)
            return Answer(answer.status, received, self._read(answer, received))
        except _FAILURES as exc:
            raise self._failure(exc) from None
        finally:
            answer.release()

    def _host_pool(self, scheme: str | None, host: str | None,
                   port: int | None) -> urllib3.HTTPConnectionPool:
        """The manager's pool for the host, remembered while the manager keeps it open (it
        closes the pools it evicts past num_pools: then it is asked again)."""
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None or pool.pool is None:
            if len(self._pools) >= 64:
                self._pools.clear()
            pool = self._pools[key] = self.pool.connection_from_host(host, port, scheme)
        return pool

    def _read(self, answer: pools.Answer, headers: Mapping[str, str]) -> bytes:
        declared = headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise CallFailed(f"answer of {declared} bytes is larger than {self.max_bytes}")
        body = bytearray()
        for piece in answer:
            body += piece
            if len(body) > self.max_bytes:
                raise CallFailed(f"answer is larger than {self.max_bytes} bytes")
        return bytes(body)

    def _failure(self, exc: Exception) -> CallFailed:
        """A CallFailed naming what failed in a few words, without urllib3's pool and
        connection reprs."""
        if isinstance(exc, Unanswered):
            cause = exc.__cause__
            return CallFailed("Connection aborted without an answer" + (
                "" if isinstance(cause, wire.ClosedEarly) else f" ({cause})"))
        if isinstance(exc, wire.ClosedEarly):
            return CallFailed("Connection aborted before the answer ended")
        if isinstance(exc, wire.InvalidResponse):
            return CallFailed(f"invalid answer ({exc})")
        if isinstance(exc, TimeoutError):
            return CallFailed(f"read timed out after {self.read_timeout:g}s")
        reason = getattr(exc, "reason", None) or exc
        return CallFailed(_REPR.sub("", str(reason)) or type(exc).__name__)


@functools.lru_cache(maxsize=256)
def _parsed(url: str) -> Url:
    """urllib3's parse of a third party's URL (validated, invalid characters escaped),
    remembered: a service is called at the same few URLs over and over, and parse_url was
    a twentieth of a call's CPU. A Url is an immutable tuple; a URL that does not parse
    raises each time (exceptions are not cached)."""
    return parse_url(url)


def _fields(host: str, headers: Mapping[str, str], method: str,
            body: bytes | None) -> list[tuple[str, str]]:
    """The request's header fields: Host from the URL unless the caller gives one, the
    caller's, urllib3's defaults the caller did not replace, and the body's framing (never
    the caller's, which could contradict the body)."""
    given = {name.lower() for name in headers}
    fields = [] if "host" in given else [("Host", host)]
    fields += [(name, value) for name, value in headers.items()
               if name.lower() not in _FRAMING]
    fields += [(name, value) for name, value in _DEFAULTS if name.lower() not in given]
    if body is not None:
        fields.append(("Content-Length", str(len(body))))
    elif (extra := wire.framing(method, None, False)) is not None:
        fields.append(extra)
    return fields

