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

Each request is handled by :class:`gateway.ops.http1.RequestCycle`, gunicorn's own
cycle with less work per request (the head and body in one send).
"""

from __future__ import annotations

import socket
from contextlib import suppress
from typing import Any

import gevent
from gevent import GreenletExit, Timeout, getcurrent
from gunicorn.workers.ggevent import GeventWorker

from gateway.ops.http1 import RequestCycle


class GatewayWorker(GeventWorker):
    """The gevent worker, reusing idle keep-alive connections' slots for new clients."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settle(self.cfg)
        #: The client socket of each connection's greenlet.
        self.clients: dict[Any, socket.socket] = {}
        #: Greenlets waiting for a further request on their connection, oldest first (dicts
        #: keep order).
        self.idle: dict[Any, None] = {}
        #: Greenlets of connections still waiting for their first request.
        self.fresh: set[Any] = set()
        #: Connections kept below worker_connections so the server keeps accepting.
        self.busy_limit = self.worker_connections - max(1, self.worker_connections // 20)
        #: Each connection's keep-alive wait, made once per connection (a gevent Timeout
        #: made per request cost as much as the rest of the wait).
        self.waits: dict[Any, _IdleWait] = {}
        self.cycle: RequestCycle | None = None

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.cycle = RequestCycle(self)

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
        wait = self.waits[current] = _IdleWait(self)
        try:
            self._close_idle(len(self.clients) - self.busy_limit)
            super().handle(listener, client, addr)
        finally:
            self.clients.pop(current, None)
            self.idle.pop(current, None)
            self.fresh.discard(current)
            del self.waits[current]
            wait.timeout.close()

    def handle_request(self, listener_name: Any, req: Any, sock: socket.socket,
                       addr: Any) -> None:
        """One request, by the worker's RequestCycle (a greenlet killed or a timeout abort
        ends it quietly, as in gevent's worker)."""
        with suppress(GreenletExit, SystemExit):
            self.cycle.handle(listener_name, req, sock, addr)

    def handle_usr1(self, sig: Any, frame: Any) -> None:
        """Reopen the log files (in a greenlet, as gevent's worker), then point the
        environ's ``wsgi.errors`` at the new ones."""
        gevent.spawn(self._reopen_logs)

    def _reopen_logs(self) -> None:
        self.log.reopen_files()
        if self.cycle is not None:
            self.cycle.reopened()

    def timeout_ctx(self) -> _IdleWait:
        """gunicorn's keep-alive wait for the next request, marked idle while it lasts."""
        return self.waits[getcurrent()]

    def _close_idle(self, count: int) -> None:
        """Close the ``count`` oldest idle connections: their greenlets end quietly."""
        for greenlet in list(self.idle)[:max(count, 0)]:
            del self.idle[greenlet]
            with suppress(OSError):  # the client left already
                self.clients[greenlet].shutdown(socket.SHUT_RDWR)


def settle(cfg: Any) -> None:
    """Make each of gunicorn's settings a plain attribute of this worker's ``cfg``.

    gunicorn's Config answers ``cfg.name`` through ``__getattr__`` and a settings lookup,
    and its request parser asks fourteen of them per request: 9 us of a request's ~20 us
    parse. A worker's settings never change (a reload starts new workers), so their
    values are copied into the instance once; settings that Config wraps in a property
    of the same name (worker_class, sendfile...) keep their property, which wins over an
    instance attribute.
    """
    for name, setting in cfg.settings.items():
        if not isinstance(getattr(type(cfg), name, None), property):
            cfg.__dict__[name] = setting.get()


class _IdleWait:
    """gunicorn's keep-alive timeout around the wait for a request, with the connection's
    greenlet listed in ``worker.idle`` meanwhile (a class: a generator-based context
    manager cost twice as much, on every request of every keep-alive connection). One per
    connection, its Timeout started for each wait and cancelled after it."""

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
        self.timeout.cancel()
        self.worker.idle.pop(self.greenlet, None)
        # Like gevent.Timeout(seconds, False): its own expiry ends the wait quietly.
        return error is self.timeout
