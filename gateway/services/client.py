"""The HTTP client for external services called by filters.

Its own pooled urllib3 PoolManager per worker, made on first use (after the
fork and gevent's patching): keep-alive reuse, no retries, no redirects, TLS
verified against the system's CAs or a given bundle. Bodies are read in
pieces and refused past a size limit, so a huge answer is never held whole.
Errors name what failed without urllib3's object reprs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError

from gateway.proxy.pools import pool_manager
from gateway.services.errors import CallFailed

#: urllib3's "<...Connection object at 0x...>: " and "HTTPConnection(host=..., port=...): ".
_REPR = re.compile(r"^(<[^>]*>|\w+\(host=[^)]*\)): ")
#: Bytes read from the service at once.
PIECE = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """A service's answer, read whole (at most the client's max_bytes)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpClient:
    """Calls external services; ``connect`` and ``read`` bound each connect and each read."""

    def __init__(self, connect: float, read: float, max_bytes: int,
                 ca_bundle: str | None = None, insecure: bool = False,
                 pool_size: int = 100) -> None:
        self.timeout = urllib3.Timeout(connect=connect, read=read)
        self.max_bytes = max_bytes
        self.ca_bundle = ca_bundle
        self.insecure = insecure
        self.pool_size = pool_size
        self._pool: urllib3.PoolManager | None = None

    @property
    def pool(self) -> urllib3.PoolManager:
        """The worker's PoolManager, built lazily so it is made after gevent patched the worker."""
        if self._pool is None:
            self._pool = pool_manager(
                num_pools=16, maxsize=self.pool_size, retries=False,
                cert_reqs="CERT_NONE" if self.insecure else "CERT_REQUIRED",
                ca_certs=self.ca_bundle)
        return self._pool

    def call(self, method: str, url: str, headers: Mapping[str, str],
             body: bytes | None = None) -> Answer:
        """Send the request and read the whole answer (at most max_bytes); CallFailed otherwise."""
        try:
            response = self.pool.request(method, url, headers=dict(headers), body=body,
                                         preload_content=False, redirect=False, retries=False,
                                         timeout=self.timeout)
        except HTTPError as exc:
            raise CallFailed(_reason(exc)) from None
        try:
            return Answer(response.status, response.headers, self._read(response))
        except HTTPError as exc:
            raise CallFailed(_reason(exc)) from None
        finally:
            if not response.isclosed():
                response.close()  # body left unread (too large, timed out): do not reuse
            response.release_conn()

    def _read(self, response: urllib3.BaseHTTPResponse) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise CallFailed(f"answer of {declared} bytes is larger than {self.max_bytes}")
        body = bytearray()
        while piece := response.read(PIECE):
            body += piece
            if len(body) > self.max_bytes:
                raise CallFailed(f"answer is larger than {self.max_bytes} bytes")
        return bytes(body)


def _reason(exc: HTTPError) -> str:
    """A short reason naming what failed, without urllib3's pool and connection reprs."""
    reason = getattr(exc, "reason", None) or exc
    return _REPR.sub("", str(reason))
