"""The access log: one JSON line per request on stdout, written when the response is done.

Each line is written with a single ``os.write`` so lines from several workers
sharing stdout never interleave (a pipe write up to PIPE_BUF bytes is atomic;
long fields are cut to stay under it). Nothing secret is logged: no request
header but User-Agent, and the path without its query string, where API keys
travel.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.jsoncodec import encode_json
from gateway.ops.logjson import utc_timestamp

if TYPE_CHECKING:  # annotations only: ops sits below the proxy and reads what it is handed
    from gateway.proxy.exchange import Exchange

# This worker's pid (the module is imported after the fork), to tell workers apart.
PID = os.getpid()
# Longest path and User-Agent logged, so that a line stays under PIPE_BUF (4096 bytes).
MAX_FIELD = 1024


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def access_entry(ex: Exchange, sent: int, total: float,
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The access-log fields of a finished request; ``total`` in seconds; ``extra``: more
    fields (a WebSocket tunnel's)."""
    environ = ex.environ
    raw = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    entry = {
        "type": "access",
        "time": utc_timestamp(time.time()),
        "request_id": ex.request_id,
        "pid": PID,
        "client_ip": ex.client_ip,
        "method": ex.method,
        "path": raw.partition("?")[0][:MAX_FIELD],
        "status": ex.status,
        "bytes": sent,
        "total_ms": _ms(total),
        "upstream_ms": _ms(ex.upstream_seconds),
        "enrichment_ms": _ms(ex.latencies.get("enrichment")),
        "service": ex.service,
        "route": ex.route,
        "target": ex.target,
        "upstream_status": ex.upstream_status,
        "outcomes": ex.outcomes,
        "user_agent": environ.get("HTTP_USER_AGENT", "")[:MAX_FIELD],
        "error": ex.error_message,
    }
    if ex.trace is not None:
        entry["trace_id"] = ex.trace.trace_id
    if extra:
        entry.update(extra)
    return entry


def write_access_line(ex: Exchange, sent: int, total: float,
                      extra: Mapping[str, Any] | None = None) -> None:
    """Write the request's access-log line to stdout in one system call."""
    os.write(1, encode_json(access_entry(ex, sent, total, extra)) + b"\n")
