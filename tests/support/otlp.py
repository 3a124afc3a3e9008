"""A real OTLP/HTTP trace receiver: decodes ExportTraceServiceRequest (protobuf) posts.

What a collector would get, kept as plain :class:`ReceivedSpan` records so tests can
look at the span tree, ids and attributes. It can be told to answer 503 (a collector
that is unwell) and stopped and started again on the same port (one that is down).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from gateway.testing.servers import free_port


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status: int
    start: int
    end: int


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items}


class OtlpReceiver:
    """Listens on a loopback port; ``endpoint`` is its /v1/traces URL."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/v1/traces"
        self.spans: list[ReceivedSpan] = []
        #: The headers of each post, names lower-cased.
        self.headers: list[dict[str, str]] = []
        #: Answer every post with this status instead of 200 (None: 200).
        self.fail_with: int | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.fail_with is not None:
                    self.send_response(receiver.fail_with)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                receiver._take(body, {k.lower(): v for k, v in self.headers.items()})
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _take(self, body: bytes, headers: dict[str, str]) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(ReceivedSpan(
                        span.name, span.trace_id.hex(), span.span_id.hex(),
                        span.parent_span_id.hex(), span.kind, _attributes(span.attributes),
                        resource, span.status.code, span.start_time_unix_nano,
                        span.end_time_unix_nano))
        with self._lock:
            self.spans.extend(received)
            self.headers.append(headers)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def clear(self) -> None:
        with self._lock:
            self.spans.clear()
            self.headers.clear()

    def wait_for(self, found: Callable[[list[ReceivedSpan]], bool],
                 timeout: float = 10) -> list[ReceivedSpan]:
        """The spans once ``found(spans)`` is true; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                spans = list(self.spans)
            if found(spans):
                return spans
            time.sleep(0.05)
        raise AssertionError(f"spans not received in {timeout}s: {[s.name for s in spans]}")

    def trace(self, trace_id: str, names: set[str], timeout: float = 10) -> list[ReceivedSpan]:
        """The spans of ``trace_id`` once every name of ``names`` arrived."""
        def complete(spans: list[ReceivedSpan]) -> bool:
            return names <= {s.name for s in spans if s.trace_id == trace_id}
        return [s for s in self.wait_for(complete, timeout) if s.trace_id == trace_id]
