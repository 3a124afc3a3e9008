"""The Exchange: one request and its response on their way through the gateway.

It is what filters get in every phase (Kong's PDK): the client request, the
headers that will go upstream, the response status and headers, a per-request
``ctx`` dict, the request id and timings, and ``respond``/``error`` to answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request

from gateway.proxy.errors import error_body
from gateway.proxy.headers import request_headers
from gateway.proxy.request import read_body, replace_body

#: The environ key of a regex route's captures (set by the route table when it matched).
URI_CAPTURES = "gateway.uri_captures"
#: Path segments that climb up a path (RFC 3986 dot segments).
DOT_SEGMENTS = frozenset({".", ".."})


def bodiless(status: int) -> bool:
    """True for a status whose response has no body, hence no Content-Length: 1xx, 204 and
    304 (RFC 9110 6.4.1, 8.6)."""
    return status < 200 or status in (204, 304)


@dataclass(frozen=True)
class Consumer:
    """Who the client is, as an authentication filter found it (Kong's consumer)."""

    #: The consumer's name: the key in rate limits and cache keys by consumer.
    username: str
    #: A stable id for the upstream (X-Consumer-ID).
    id: str
    #: The credential that identified it; None for the anonymous consumer.
    credential: str | None = None
    #: The consumer's custom_id (X-Consumer-Custom-ID), when it has one.
    custom_id: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.credential is None


@dataclass(frozen=True)
class CalloutResponse:
    """What a request-callout call answered (Kong's ``kong.ctx.shared.callouts.NAME.response``).

    ``headers`` is None and ``body`` None when the callout does not store them; ``body`` is
    the decoded JSON when the callout decodes it, else the text.
    """

    status: int
    headers: dict[str, str] | None
    body: Any


class Exchange:
    """Per-request state shared by the app and the filters."""

    #: The request's trace when tracing is on (``trace.trace_id``: 32 hex digits), else None.
    trace: Any = None

    def __init__(self, environ: dict[str, Any], request_id: str) -> None:
        self.environ = environ
        self.request_id = request_id
        #: Free space for filters to pass data between phases (Kong's kong.ctx.plugin).
        self.ctx: dict[str, Any] = {}
        #: Headers sent to the upstream; request-phase filters may edit them.
        self.upstream_headers: Headers = request_headers(environ)
        #: Who the client is, once an authentication filter (key-auth) identified it.
        self.consumer: Consumer | None = None
        #: Credentials found in the request (an API key, known or not): the logging filters
        #: write "REDACTED" wherever one appears.
        self.secrets: list[str] = []
        self._upstream_query: str | None = None
        #: The method sent upstream when a filter changed it (Kong's kong.service.request
        #: .set_method); None: the client's.
        self.upstream_method: str | None = None
        #: The whole upstream path when a filter set it (Kong's set_path), replacing the one
        #: the route builds; None: the route's.
        self.upstream_path: str | None = None
        #: Response status; None until the upstream or a filter answered.
        self.status: int | None = None
        #: Response headers sent to the client; response-phase filters may edit them.
        self.headers = Headers()
        #: The response body when the gateway answers itself; None streams the upstream's.
        self.body: Iterable[bytes] | None = None
        #: Wrappers of the streamed upstream body, applied in order: each takes the chunk
        #: iterator and returns one; response-phase filters add them to see the body go by
        #: (proxy-cache copies it). A wrapped iterator that ends normally saw the whole body.
        self.body_wrappers: list[Callable[[Iterator[bytes]], Iterator[bytes]]] = []
        #: Whole-body transforms asked for in the response phase (:meth:`transform_body`).
        self.body_transforms: list[tuple[Callable[[bytes], bytes | None], int]] = []
        #: The upstream body as the app streams it once a transform read it (internal).
        self.upstream_body: Iterable[bytes] | None = None
        #: True when ``body`` is an upstream response replayed from a cache (a proxy-cache
        #: hit): filters that decorate upstream responses treat it as the upstream's.
        self.replayed = False
        #: The upstream's status, or None if the upstream was not reached.
        self.upstream_status: int | None = None
        #: Names of the service and route that took the request ("" unnamed; None: no route).
        self.service: str | None = None
        self.route: str | None = None
        #: The upstream target URL used, if any.
        self.target: str | None = None
        #: The request target sent upstream (path and query), once it was sent.
        self.upstream_uri: str | None = None
        #: Response body bytes handed to the server (set before the log phase).
        self.bytes_sent = 0
        #: The upstream answer being streamed (proxy.upstream.Answer); the app releases it.
        self.upstream_response: Any = None
        #: The upstream's end-to-end response headers as received (before any filter edited
        #: ``headers``); None when the upstream was not reached.
        self.upstream_response_headers: tuple[tuple[str, str], ...] | None = None
        #: The message of an error the gateway answered, for the log phase.
        self.error_message: str | None = None
        #: Per-filter outcome for logs and metrics, e.g. {"enrichment": "hit"}.
        self.outcomes: dict[str, str] = {}
        #: Per-filter time spent in seconds, e.g. {"enrichment": 0.012}.
        self.latencies: dict[str, float] = {}
        self.started = time.perf_counter()
        self.upstream_started: float | None = None
        self.upstream_finished: float | None = None

    @cached_property
    def callouts(self) -> dict[str, CalloutResponse]:
        """The request-callout results so far, by callout name (Kong's
        ``kong.ctx.shared.callouts``); a callout that failed under ``on_error: continue``
        is not there. Made on first use, so requests without callouts pay nothing."""
        return {}

    @cached_property
    def uri_captures(self) -> dict[str, str]:
        """The named and numbered groups of the route's regex path that matched, "0" the
        whole match (Kong's ``kong.request.get_uri_captures``); empty for a prefix path."""
        return dict(self.environ.get(URI_CAPTURES, {}))

    @cached_property
    def request(self) -> Request:
        """The Werkzeug request, built on first use (the body stream is left unread).

        Not stored in the environ (``populate_request``): that would be a reference
        cycle, leaving every request's objects to the cyclic garbage collector.
        """
        return Request(self.environ, populate_request=False)

    def read_body(self, max_bytes: int) -> bytes:
        """The request body, read whole up to ``max_bytes`` (Kong's kong.request.get_body).

        It still goes upstream whole and unchanged. Larger: a 413 answer (GatewayError),
        nothing sent upstream; a body the client cut: 400. Filters that never ask
        leave the body streamed.
        """
        return read_body(self.environ, max_bytes)

    def transform_body(self, transform: Callable[[bytes], bytes | None], max_bytes: int) -> None:
        """Replace the response body with ``transform(body)``, the body read whole (Kong's
        kong.response.get_raw_body / set_raw_body). Call it in ``on_response``.

        After the response phase the app reads the upstream's body (or a cache's replay)
        up to ``max_bytes``, calls each transform in the order asked with the body so far
        (None keeps it), and sends the result with its own Content-Length. A body past
        ``max_bytes``, or compressed (a Content-Encoding other than identity), streams on
        unchanged and the log says so; an upstream failing while it is read is a 502.
        Bodies the gateway answers itself are not transformed.
        """
        self.body_transforms.append((transform, max_bytes))

    def set_body(self, body: bytes) -> None:
        """Send ``body`` upstream instead of the client's, with its own Content-Length
        (Kong's kong.service.request.set_raw_body). Later ``read_body`` calls see it."""
        replace_body(self.environ, body)
        self.upstream_headers.remove("Transfer-Encoding")
        self.upstream_headers["Content-Length"] = str(len(body))

    @property
    def method(self) -> str:
        return self.environ["REQUEST_METHOD"]

    @property
    def path(self) -> str:
        """The request path, percent-decoded (WSGI PATH_INFO)."""
        return self.environ.get("PATH_INFO", "")

    @property
    def upstream_query(self) -> str:
        """The raw query string that goes upstream: the client's, unless a filter set one.

        Request-phase filters assign it to drop or add parameters (key-auth hides keys).
        """
        if self._upstream_query is None:
            return self.environ.get("QUERY_STRING", "")
        return self._upstream_query

    @upstream_query.setter
    def upstream_query(self, query: str) -> None:
        self._upstream_query = query

    @property
    def query_replaced(self) -> bool:
        """True when a filter set ``upstream_query`` (else the client's target goes as sent)."""
        return self._upstream_query is not None

    @property
    def has_dot_segments(self) -> bool:
        """True when the decoded path (``%2F`` as ``/``) has a . or .. segment, which could
        climb out of a path prefix it is put under (the enrichment URL's). The upstream
        path is normalised as Kong's instead (:mod:`gateway.proxy.uri`)."""
        return not DOT_SEGMENTS.isdisjoint(self.path.split("/"))

    @property
    def client_ip(self) -> str:
        """The client address, from X-Forwarded-For only when GATEWAY_TRUSTED_PROXIES allows."""
        return self.environ.get("REMOTE_ADDR", "")

    @property
    def answered(self) -> bool:
        """True once a filter or the upstream set the response status."""
        return self.status is not None

    @property
    def upstream_answer(self) -> bool:
        """True when the response is the upstream's: streamed now, or replayed from a cache."""
        return self.replayed or (self.upstream_status is not None and self.body is None)

    def respond(self, status: int, body: bytes = b"", headers: Headers | None = None,
                content_type: str | None = None) -> None:
        """Answer with this response instead of (or in place of) the upstream's. A status
        that has no body (:func:`bodiless`: 1xx, 204, 304) goes without ``body``, its
        Content-Type and a Content-Length."""
        self.status = status
        self.replayed = False
        self.headers = Headers(headers) if headers is not None else Headers()
        if bodiless(status):
            self.headers.remove("Content-Length")
            self.body = (b"",)
            return
        if content_type:
            self.headers["Content-Type"] = content_type
        self.headers["Content-Length"] = str(len(body))
        self.body = (body,)

    def error(self, status: int, message: str, headers: Headers | None = None) -> None:
        """Answer an error in the contract's shape: JSON, HTML or text by the client's Accept,
        or by a Content-Type in ``headers`` (as Kong's kong.response.error)."""
        wanted = headers.get("Content-Type") if headers is not None else None
        content_type, body = error_body(status, message, self.request_id,
                                        wanted or self.environ.get("HTTP_ACCEPT"))
        self.error_message = message
        self.respond(status, body, headers, content_type)

    @property
    def upstream_seconds(self) -> float | None:
        """Seconds from sending the request upstream to its response headers (None: not sent)."""
        if self.upstream_started is None or self.upstream_finished is None:
            return None
        return self.upstream_finished - self.upstream_started

    @property
    def proxy_latency_ms(self) -> int:
        """Milliseconds the gateway spent before calling the upstream (Kong's proxy latency)."""
        until = self.upstream_started if self.upstream_started is not None else time.perf_counter()
        return round((until - self.started) * 1000)
