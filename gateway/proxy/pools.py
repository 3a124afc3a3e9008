"""urllib3 PoolManagers for gevent workers (the upstream's and the third parties'), and
one request on a pooled connection with the gateway's own wire (:mod:`gateway.proxy.wire`).

Before reusing a pooled connection urllib3 polls its socket with a zero
timeout to see whether the server closed it. gevent's patched poll turns that
into a Timeout raised through the hub: a greenlet switch and an exception on
every request (about 5% of a loaded worker). The standard library's poll()
never blocks with a zero timeout, so asking it directly gives the same answer
for less. Managers are made on first use in a worker, after gevent patched it.
"""

from __future__ import annotations

import logging
import select
from collections.abc import Callable, Iterator
from typing import IO, Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from gateway.proxy import wire

log = logging.getLogger("gateway.proxy.pools")
# A connection that failed in these ways before any byte of the answer: the request
# can go again (on a new connection, or to another target) if it is safe to repeat.
_UNANSWERED = (wire.ClosedEarly, ConnectionError)


class _IdleCheck:
    """urllib3's "did the server close this pooled connection?" check, without the hub."""

    sock: Any

    @property
    def is_connected(self) -> bool:
        return self.sock is not None and not wire.ready_events(self.sock, select.POLLIN)


class _HTTPConnection(_IdleCheck, HTTPConnection):
    pass


class _HTTPSConnection(_IdleCheck, HTTPSConnection):
    pass


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def pool_manager(**options: Any) -> urllib3.PoolManager:
    """A PoolManager (``options`` as urllib3's) whose pools check idle connections cheaply."""
    manager = urllib3.PoolManager(**options)
    manager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}
    return manager


class Unanswered(Exception):
    """The connection failed before any byte of the answer: the request may go again."""


class Answer:
    """An answer being streamed, and the pooled connection it came on.

    Iterate for the body; :meth:`release` gives the connection back to the pool when
    the answer was read whole and may be reused, and closes it otherwise.
    """

    def __init__(self, pool: urllib3.HTTPConnectionPool, conn: Any,
                 response: wire.Response) -> None:
        self.pool = pool
        self.conn = conn
        self.response = response
        self.status = response.status
        self.headers = response.headers

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.response)

    def detach(self) -> Any:
        """Take the connection out of the pool's hands for good (a tunnel after a 101): the
        caller closes it. The pool keeps its slot, as for a connection closed."""
        conn, self.conn = self.conn, None
        self.response.close()
        self.pool._put_conn(None)
        return conn

    def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        self.response.close()
        if not self.response.reusable:
            conn.close()
            conn = None  # the pool keeps its slot
        self.pool._put_conn(conn)


def exchange(pool: urllib3.HTTPConnectionPool, head: bytes, body: IO[bytes] | bytes | None,
             chunked: bool, *, timeout: float | None, head_request: bool = False,
             repeatable: bool = False, client_gone: Callable[[], bool] | None = None,
             upgrade: bool = False, limits: wire.HeadLimits = wire.DEFAULT_LIMITS) -> Answer:
    """Send ``head`` and ``body`` (see :func:`wire.send_request`) on a connection from
    ``pool`` and read the answer's head, waiting at most ``timeout`` seconds per read.

    urllib3 opens the connection (TLS, connect timeout: NewConnectionError,
    ConnectTimeoutError); the bytes are the gateway's. A pooled connection the server
    closed while idle is replaced once by a new one when the request is
    ``repeatable`` (safe to send twice, body in hand); a connection that failed before
    any byte of the answer raises Unanswered. ``client_gone``: see
    :meth:`wire.Response.read_head`; ``upgrade``: see :class:`wire.Response`; ``limits``
    bound the answer's header section (InvalidResponse past them).
    """
    conn = pool._get_conn()
    reused = conn.sock is not None
    try:
        try:
            response = _send(conn, head, body, chunked, timeout, head_request, client_gone,
                             upgrade, limits)
        except Unanswered as exc:
            if not (reused and repeatable):
                raise
            log.info("%s closed a pooled connection, sending again on a new one: %s",
                     pool.host, exc)
            conn.close()
            conn = pool._new_conn()  # counted in the pool's connections opened
            response = _send(conn, head, body, chunked, timeout, head_request, client_gone,
                             upgrade, limits)
    except BaseException:
        conn.close()
        pool._put_conn(None)  # the pool keeps its slot
        raise
    return Answer(pool, conn, response)


def _send(conn: Any, head: bytes, body: IO[bytes] | bytes | None, chunked: bool,
          timeout: float | None, head_request: bool,
          client_gone: Callable[[], bool] | None, upgrade: bool,
          limits: wire.HeadLimits) -> wire.Response:
    """Connect if needed, send, and read the answer's head."""
    if conn.sock is None:
        conn.connect()
    sock = conn.sock
    sock.settimeout(timeout)
    response = wire.Response(sock, head_request, upgrade, limits)
    try:
        try:
            wire.send_request(sock, head, body, chunked)
        except (BrokenPipeError, ConnectionResetError):
            # The server may have answered before reading the whole body (413) and
            # closed: read that answer; the connection is not reused.
            response.close_after()
        response.read_head(timeout, client_gone)
    except BaseException as exc:
        response.close()
        if isinstance(exc, _UNANSWERED) and response.received == 0:
            raise Unanswered(str(exc)) from exc
        raise
    return response
