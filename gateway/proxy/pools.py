"""urllib3 PoolManagers for gevent workers: the upstream's and the third parties'.

Before reusing a pooled connection urllib3 polls its socket with a zero
timeout to see whether the server closed it. gevent's patched poll turns that
into a Timeout raised through the hub: a greenlet switch and an exception on
every request (about 5% of a loaded worker). The standard library's poll()
never blocks with a zero timeout, so asking it directly gives the same answer
for less. Managers are made on first use in a worker, after gevent patched it.
"""

from __future__ import annotations

import select
from typing import Any

import urllib3
from gevent import monkey
from urllib3.connection import HTTPConnection, HTTPSConnection

# The standard library's poll(), even after gevent patched the select module.
_poll = monkey.get_original("select", "poll")


class _IdleCheck:
    """urllib3's "did the server close this pooled connection?" check, without the hub."""

    sock: Any

    @property
    def is_connected(self) -> bool:
        if self.sock is None:
            return False
        poller = _poll()
        poller.register(self.sock, select.POLLIN)
        return not poller.poll(0)


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
