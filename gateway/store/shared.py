"""Memory shared by all workers of one gateway node, set up by the gunicorn master before it forks.

Kong keeps node-wide state in nginx shared dicts (``lua_shared_dict``): every
worker of a node sees the same counters, and they live as long as the node,
whichever worker dies. This module is that mechanism here: the master reserves
a named region (:func:`reserve`, from gunicorn.conf.py's ``on_starting``) as an
in-memory file (memfd) mapped shared; every worker it forks, a worker respawned
after a crash included, inherits the mapping, so all see the same bytes until
the master exits.

A region is an array of 64-bit words (:attr:`Region.words`) and one lock
across the processes (:meth:`Region.acquire` / :meth:`Region.release`): a POSIX
record lock (``fcntl``) on the memfd, which the kernel releases when its holder
dies, so a worker killed inside the lock never wedges the others. Callers keep
their critical sections free of I/O, so under gevent no greenlet switch happens
inside one (the lock is per process and would not exclude a sibling greenlet).

Without a master that reserved it (the testing kit's in-process app, the
werkzeug development server) :func:`region` gives a private region of the same
shape in this process's memory behind a thread lock: the caller's code is the
same, only shared by nobody.

Standard library only: gunicorn.conf.py imports this in the master, before
gevent patches anything.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import tempfile
import threading
from collections.abc import Callable
from functools import partial

#: Bytes in one word of a region.
WORD = 8
#: The rate-limiting ``local`` policy's counters (gateway.filters.rate_limiting.counters),
#: GATEWAY_RATELIMIT_LOCAL_SLOTS slots of 16 bytes.
RATE_LIMITING = "rate-limiting"

_REGIONS: dict[str, Region] = {}


class Region:
    """``size`` bytes of 64-bit words, zeroed at creation, and the lock that guards them."""

    def __init__(self, name: str, size: int, shared: bool) -> None:
        self.name = name
        self.size = size
        #: True when reserved by the master for all its workers; False: this process only.
        self.shared = shared
        if shared:
            self._fd = _memory_file(name, size)
            self._map = mmap.mmap(self._fd, size)
            # POSIX record locks belong to the process: each worker locks on its own.
            self.acquire = _locker(self._fd, fcntl.LOCK_EX)
            self.release = _locker(self._fd, fcntl.LOCK_UN)
        else:
            self._map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
            lock = threading.Lock()
            self.acquire, self.release = lock.acquire, lock.release
        #: The region as unsigned 64-bit words: an aligned word is read and written whole.
        self.words = memoryview(self._map).cast("Q")

    def __repr__(self) -> str:
        where = "shared by the node's workers" if self.shared else "this process only"
        return f"<Region {self.name!r} {self.size} bytes, {where}>"


def _memory_file(name: str, size: int) -> int:
    """A file descriptor of ``size`` zero bytes in memory (a memfd; an unlinked temporary
    file where the system has none)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(f"gateway-{name}", os.MFD_CLOEXEC)
    else:  # pragma: no cover - not Linux
        fd, path = tempfile.mkstemp(prefix=f"gateway-{name}-")
        os.unlink(path)
    os.ftruncate(fd, size)
    return fd


def _locker(fd: int, command: int) -> Callable[[], None]:
    """A call taking or dropping the whole-file record lock on ``fd`` (blocking)."""
    return partial(fcntl.lockf, fd, command)


def _words(size: int) -> int:
    """``size`` rounded up to whole words, at least one."""
    return max(WORD, -(-size // WORD) * WORD)


def reserve(name: str, size: int) -> Region:
    """Master, before forking: the region ``name`` of ``size`` bytes for every worker to share.

    Pages are only taken from the system when first written, so an unused region
    costs address space, not memory. Reserving a name twice keeps the first region
    (gunicorn runs its config again on reload; the node's state must outlive it).
    """
    if name not in _REGIONS or not _REGIONS[name].shared:
        _REGIONS[name] = Region(name, _words(size), shared=True)
    return _REGIONS[name]


def region(name: str, size: int) -> Region:
    """The region ``name``: the master's when it reserved one, else one private to this
    process of ``size`` bytes (made on first use, then the same for every caller)."""
    found = _REGIONS.get(name)
    if found is None:
        found = _REGIONS[name] = Region(name, _words(size), shared=False)
    return found
