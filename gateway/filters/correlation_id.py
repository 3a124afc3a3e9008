"""correlation-id: a request id in a header of your choosing (Kong's plugin of that name).

The client's value of ``header_name`` (Kong-Request-ID by default) goes upstream
as sent; without one, a new id is made by ``generator`` and sent upstream. With
``echo_downstream`` the id is also set on the response to the client.

Beside the gateway's own X-Request-ID, which every request and response carries
anyway (the client's when well-formed, else a new UUID; it is also the
``request_id`` of the access log and of error bodies), this plugin is for
deployments whose services already expect Kong's header and id formats. With
``header_name: X-Request-ID`` the gateway's own id wins: it is set upstream and
on the response after the plugin ran, and is already what the uuid generator
would give.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from gateway.config import Settings, boolean, choice, setting
from gateway.filters.base import Filter
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import header_name

GENERATORS = ("uuid", "uuid#counter", "tracker")


@dataclass(frozen=True)
class CorrelationIdConfig:
    header_name: str = setting("GATEWAY_CORRELATION_ID_HEADER_NAME", header_name,
                               "Kong-Request-ID",
                               "correlation-id: the header carrying the id.")
    generator: str = setting(
        "GATEWAY_CORRELATION_ID_GENERATOR", choice(*GENERATORS), "uuid#counter",
        "correlation-id: how a missing id is made: `uuid`, `uuid#counter` (a UUID per "
        "worker and a counter) or `tracker` (server address, port, pid, connection, "
        "request count and time).")
    echo_downstream: bool = setting(
        "GATEWAY_CORRELATION_ID_ECHO_DOWNSTREAM", boolean, "false",
        "correlation-id: also set the id on the response to the client.")


class CorrelationId(Filter):
    """Sends ``header_name`` upstream, the client's value or a new one; echoes it if asked."""

    NAME = "correlation-id"
    PRIORITY = 100001
    VERSION = "1.0.0"
    Config = CorrelationIdConfig

    def __init__(self, config: CorrelationIdConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.environ_key = "HTTP_" + config.header_name.upper().replace("-", "_")
        self._worker_uuid = str(uuid.uuid4())  # Kong's init_worker: one per worker
        self._counter = itertools.count(1)
        generators: dict[str, Callable[[Exchange], str]] = {
            "uuid": lambda ex: str(uuid.uuid4()),
            "uuid#counter": lambda ex: f"{self._worker_uuid}#{next(self._counter)}",
            "tracker": self._tracker,
        }
        self.generate = generators[config.generator]

    def _tracker(self, ex: Exchange) -> str:
        """Kong's tracker: server address and port, worker pid, connection serial, the
        request's number, time. Here the connection is the client socket's descriptor and
        the number counts the worker's requests (gunicorn keeps no per-connection count)."""
        environ = ex.environ
        sock = environ.get("gunicorn.socket")
        connection = sock.fileno() if sock is not None else 0
        return (f"{environ.get('SERVER_NAME', '')}-{environ.get('SERVER_PORT', '')}-"
                f"{os.getpid()}-{connection}-{next(self._counter)}-{time.time():.3f}")

    def on_request(self, ex: Exchange) -> None:
        given = ex.environ.get(self.environ_key)
        if given and not given.isspace():
            correlation_id = given
        else:
            correlation_id = self.generate(ex)
            ex.upstream_headers[self.config.header_name] = correlation_id
        ex.ctx[self.NAME] = correlation_id

    def on_response(self, ex: Exchange) -> None:
        if not self.config.echo_downstream:
            return
        correlation_id = ex.ctx.get(self.NAME) or ex.environ.get(self.environ_key)
        if not correlation_id:  # the request phase did not run (no route matched...)
            correlation_id = ex.ctx[self.NAME] = self.generate(ex)
        ex.headers[self.config.header_name] = correlation_id
