"""gunicorn's gevent worker that closes idle keep-alive connections when slots run short.

gunicorn's gevent worker holds at most ``worker_connections`` connections and
idle keep-alive ones count: enough idle clients and a new one waits in the
listen queue until an idle one times out (75 s). nginx instead closes its
idle keep-alive connections when it runs out of connections; so does this
worker, oldest idle first, once fewer than a twentieth of its slots are free.
A client whose idle connection was closed opens a new one (RFC 9112 9.3.1).
As in nginx, only connections that were answered at least once are idle: a new
connection waiting for its first request is not closed (its request may be on
the way, and the client could not tell the close from a failure). It also starts
the app's active health checks before serving.
"""

from __future__ import annotations

import socket
from contextlib import suppress
from typing import Any

from gevent import Timeout, getcurrent
from gunicorn.workers.ggevent import GeventWorker


class GatewayWorker(GeventWorker):
    """The gevent worker, reusing idle keep-alive connections' slots for new clients."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The client socket of each connection's greenlet.
        self.clients: dict[Any, socket.socket] = {}
        #: Greenlets waiting for a further request on their connection, oldest first (dicts
        #: keep order).
        self.idle: dict[Any, None] = {}
        #: Greenlets of connections still waiting for their first request.
        self.fresh: set[Any] = set()
        #: Connections kept below worker_connections so the server keeps accepting.
        self.busy_limit = self.worker_connections - max(1, self.worker_connections // 20)

    def run(self) -> None:
        """Serve; the app's background work (active health checks) starts first, here
        after the fork and gevent's patching, so each worker probes on its own."""
        app = getattr(self.wsgi, "app", self.wsgi)  # under ProxyFix
        start = getattr(app, "start_health_checks", None)
        if start is not None:
            start()
        super().run()

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        current = getcurrent()
        self.clients[current] = client
        self.fresh.add(current)
        try:
            self._close_idle(len(self.clients) - self.busy_limit)
            super().handle(listener, client, addr)
        finally:
            self.clients.pop(current, None)
            self.idle.pop(current, None)
            self.fresh.discard(current)

    def timeout_ctx(self) -> _IdleWait:
        """gunicorn's keep-alive wait for the next request, marked idle while it lasts."""
        return _IdleWait(self)

    def _close_idle(self, count: int) -> None:
        """Close the ``count`` oldest idle connections: their greenlets end quietly."""
        for greenlet in list(self.idle)[:max(count, 0)]:
            del self.idle[greenlet]
            with suppress(OSError):  # the client left already
                self.clients[greenlet].shutdown(socket.SHUT_RDWR)


class _IdleWait:
    """gunicorn's keep-alive timeout around the wait for a request, with the connection's
    greenlet listed in ``worker.idle`` meanwhile (a class: a generator-based context
    manager cost twice as much, on every request of every keep-alive connection)."""

    __slots__ = ("greenlet", "timeout", "worker")

    def __init__(self, worker: GatewayWorker) -> None:
        self.worker = worker
        self.greenlet = getcurrent()
        self.timeout = Timeout(worker.cfg.keepalive, False)

    def __enter__(self) -> None:
        fresh = self.worker.fresh
        if self.greenlet in fresh:
            fresh.discard(self.greenlet)  # the first request: not a keep-alive wait
        else:
            self.worker.idle[self.greenlet] = None
        self.timeout.start()

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        self.timeout.close()
        self.worker.idle.pop(self.greenlet, None)
        # Like gevent.Timeout(seconds, False): its own expiry ends the wait quietly.
        return error is self.timeout
