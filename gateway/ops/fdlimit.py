"""The open-files limit a gateway needs: raised at start as far as the hard limit allows.

Each client connection is a file descriptor, and so is each upstream connection
of a request in flight: a worker needs about twice GATEWAY_WORKER_CONNECTIONS.
Standard library only: gunicorn.conf.py calls it in the master, before the fork.
"""

from __future__ import annotations

import resource

#: Descriptors a worker uses besides connections: listeners, logs, pipes, Redis, metrics.
SPARE = 64


def needed(worker_connections: int) -> int:
    """Open files one worker may use: a client and an upstream connection per slot, plus spare."""
    return 2 * worker_connections + SPARE


def raise_open_files(wanted: int) -> str | None:
    """Raise the soft RLIMIT_NOFILE to ``wanted`` (at most the hard limit; never lowered).

    Returns a warning for the operator when even the hard limit is below ``wanted``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if ceiling > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
    if ceiling < wanted:
        return (f"the open-files limit ({hard}) is below the {wanted} that "
                f"GATEWAY_WORKER_CONNECTIONS needs: raise `ulimit -n` (LimitNOFILE in systemd) "
                f"or lower GATEWAY_WORKER_CONNECTIONS, or connections past it are refused")
    return None
