"""The gateway's own endpoints under GATEWAY_STATUS_PATH: /health, /ready, /metrics.

Answered before the filter chain and never proxied, so no filter (auth, rate
limit) can block a probe and no upstream path is reached through them. They are
left out of the access log and the request metrics, which probes would swamp.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from gateway.jsoncodec import encode_json
from gateway.ops import metrics
from gateway.proxy.errors import error_body, status_line
from gateway.proxy.upstream import Upstream

# Longest a readiness probe waits for the upstream to accept a connection.
PROBE_TIMEOUT = 2.0
_JSON = "application/json"


class StatusEndpoints:
    """Serves ``<prefix>/health``, ``<prefix>/ready`` and ``<prefix>/metrics``."""

    def __init__(self, prefix: str, upstream: Upstream | None, ready_window: float,
                 worker_metrics: metrics.WorkerMetrics,
                 upstreams: Sequence[Upstream] = ()) -> None:
        self.prefix = prefix
        self.upstream = upstream
        #: The upstream entities whose targets' health /ready shows (this worker's view).
        self.named = [u for u in upstreams if u.name is not None]
        self.ready_window = ready_window
        self.worker_metrics = worker_metrics
        #: perf_counter() time a probe last found a target accepting connections.
        self.probed_at = float("-inf")

    def matches(self, path: str) -> bool:
        """True for the prefix itself and anything under it."""
        rest = path[len(self.prefix):] if path.startswith(self.prefix) else None
        return rest is not None and (rest == "" or rest[0] == "/")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        name = environ.get("PATH_INFO", "")[len(self.prefix):]
        if name == "/health":
            body = encode_json({"status": "ok", "pid": os.getpid()})
            status, content_type = 200, _JSON
        elif name == "/ready":
            status, content_type, body = self.ready()
        elif name == "/metrics":
            self.worker_metrics.refresh(time.perf_counter())
            status, content_type, body = 200, metrics.CONTENT_TYPE, metrics.exposition()
        else:
            status = 404
            content_type, body = error_body(404, "No such status endpoint; try /health, /ready, "
                                            "/metrics", "-", environ.get("HTTP_ACCEPT"))
        start_response(status_line(status), [("Content-Type", content_type),
                                             ("Content-Length", str(len(body))),
                                             ("Cache-Control", "no-store")])
        return [body]

    def ready(self) -> tuple[int, str, bytes]:
        """200 if the upstream answered within the window or accepts a connection now, else 503
        (200 without any: a file with no service has nothing to wait for). The body shows
        the state of each upstream entity's targets in this worker (Kong's states)."""
        status, upstream = self._readiness()
        body: dict[str, Any] = {"status": "ready" if status == 200 else "not ready",
                                "upstream": upstream}
        if self.named:
            body["targets"] = {u.name: u.target_health() for u in self.named}
        return status, _JSON, encode_json(body)

    def _readiness(self) -> tuple[int, str]:
        if self.upstream is None:
            return 200, "none configured"
        now = time.perf_counter()
        if now - max(self.upstream.answered_at, self.probed_at) <= self.ready_window:
            return 200, "answered recently"
        reached = self.probe()
        if reached:
            self.probed_at = time.perf_counter()
            return 200, f"{reached} accepts"
        return 503, "no target accepts connections"

    def probe(self) -> str | None:
        """The first upstream target that accepts a TCP connection, or None."""
        timeout = min(PROBE_TIMEOUT, self.upstream.settings.connect_timeout)
        for target in self.upstream.targets:
            parts = urlsplit(target.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                socket.create_connection((parts.hostname, port), timeout=timeout).close()
            except OSError:
                continue
            return target.url
        return None
