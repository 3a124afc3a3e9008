"""The WSGI app: builds the Exchange, runs the filter chain around the upstream call, streams.

Flow per request: request phase (filters, highest PRIORITY first) -> upstream
(unless a filter answered) -> response phase -> status and headers out ->
body streamed as it arrives -> log phase when the server closes the body.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from time import perf_counter
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway.config import ServerSettings, Settings, env_names, load, reject_unknown
from gateway.filters import enabled_classes, known_variables
from gateway.filters.base import Filter
from gateway.ops import metrics, tracing
from gateway.ops.accesslog import write_access_line
from gateway.ops.logjson import REQUEST_ID
from gateway.proxy.balancer import BALANCER_DONE, set_hash_cookie
from gateway.proxy.bodies import transform_body
from gateway.proxy.errors import UNEXPECTED, GatewayError, status_line
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import (
    VIA,
    add_forwarding,
    fields,
    is_valid_request_id,
    new_request_id,
    response_headers,
    set_fields,
)
from gateway.proxy.redirects import RedirectRewriter
from gateway.proxy.request import check_request, request_body, request_target
from gateway.proxy.upstream import CLIENT_CLOSED, CLIENT_CLOSED_MESSAGE
from gateway.proxy.websocket import (
    ALREADY_HANDLED,
    Tunnel,
    Tunnels,
    client_read_ahead,
    is_handshake,
)
from gateway.proxy.wire import InvalidResponse, response_head
from gateway.routing.chain import Chain
from gateway.routing.table import NO_ROUTE, Destination, RouteTable, route_table
from gateway.routing.traced import instrument
from gateway.server.status import StatusEndpoints

log = logging.getLogger("gateway")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


class BodyAborted(ConnectionResetError):
    """The upstream failed after the status line went out.

    Raising a ConnectionResetError from the body makes gunicorn drop the client
    connection quietly, so the client sees an incomplete response (no final
    chunk, or fewer bytes than Content-Length), never a clean short one.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(errno.ECONNRESET, reason)


class Gateway:
    """The gateway as a WSGI application."""

    def __init__(self, settings: Settings, routes: RouteTable,
                 tracer: tracing.Tracing | None = None) -> None:
        self.settings = settings
        self.routes = routes
        #: The worker's tracing (None: off, and no request pays for it).
        self.tracing = tracer
        #: Every route's filters, highest PRIORITY first (Kong's order).
        self.filters = routes.filters
        #: The upstream the readiness probe watches: the first service's (None: no service).
        self.upstream = next(routes.upstreams, None)
        #: WebSocket tunnel slots (create_app fills in the default cap from the server's).
        self.tunnels = Tunnels(settings.websocket_max_tunnels or 0,
                               settings.websocket_idle_timeout)
        self.metrics = metrics.WorkerMetrics(routes.upstreams, self.tunnels)
        #: Per service Upstream, the rewriter of URLs pointing at its targets.
        self.redirects = ({upstream: RedirectRewriter(upstream.settings.upstream_urls or ())
                           for upstream in routes.upstreams}
                          if settings.rewrite_location else {})
        self.status: StatusEndpoints | None = None
        if settings.status_path:
            self.status = StatusEndpoints(settings.status_path, self.upstream,
                                          settings.ready_window, self.metrics,
                                          list(routes.upstreams))
        self.access_log = settings.access_log == "json"

    def start_health_checks(self) -> None:
        """Start the active health checks of the upstreams that have them, in this worker
        (after the fork: the worker calls it before serving)."""
        for upstream in self.routes.upstreams:
            if upstream.checker is not None:
                upstream.checker.start()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.status is not None and self.status.matches(environ.get("PATH_INFO", "")):
            return self.status(environ, start_response)
        upgrade = "HTTP_UPGRADE" in environ and is_handshake(environ)
        ex = Exchange(environ, _request_id(environ))
        if self.tracing is not None:
            ex.trace = self.tracing.start_request(environ, ex.request_id, ex.upstream_headers)
        REQUEST_ID.set(ex.request_id)
        self.metrics.started()
        found = self.routes.find(environ)
        if found is None:
            chain = self.routes.unrouted
            self._guarded(ex, self._unrouted)
        else:
            chain = found[0].chain
            self._guarded(ex, lambda ex: self._request_phase(ex, *found, upgrade))
        if chain.response_filters:
            self._guarded(ex, lambda ex: self._response_phase(ex, chain))
        if ex.body_transforms:
            self._guarded(ex, transform_body)
        self._stamp(ex)
        if upgrade and (head := self._switch_head(ex)) is not None:
            return self._tunnel(ex, chain, head)
        body = ResponseBody(ex, self, chain)
        try:
            start_response(status_line(ex.status), fields(ex.headers))
        except Exception:
            body.close()
            raise
        return body

    @staticmethod
    def _unrouted(ex: Exchange) -> None:
        """No route matched: Kong's 404, unless the request is one no proxy passes on."""
        check_request(ex.environ)
        ex.error(404, NO_ROUTE)

    def _request_phase(self, ex: Exchange, destination: Destination, path: str,
                       matched: str, upgrade: bool) -> None:
        ex.service, ex.route = destination.service, destination.route
        check_request(ex.environ)
        refusal = destination.protocol_refusal(ex.environ, upgrade)
        if refusal is not None:
            status, message, location = refusal
            ex.error(status, message, Headers({"Location": location}) if location else None)
            return
        for f in destination.chain.request_filters:
            f.on_request(ex)
            if ex.answered:
                return
        if destination.upstream is None:  # no service, or no live target: Kong's 503
            ex.error(503, destination.unavailable)
            return
        if upgrade:
            self._handshake(ex, destination, path, matched)
        else:
            self.proxy(ex, destination, path, matched)

    def _handshake(self, ex: Exchange, destination: Destination, path: str,
                   matched: str) -> None:
        """A WebSocket handshake upstream, with its upgrade headers, in one of this worker's
        tunnel slots (503 when none is left). The slot stays taken when the upstream
        switched protocols (a 101), until _tunnel or _switch_head gives it back."""
        self.tunnels.reserve()
        try:
            ex.upstream_headers.extend([("Upgrade", ex.environ["HTTP_UPGRADE"]),
                                        ("Connection", "upgrade")])
            self.proxy(ex, destination, path, matched, upgrade=True)
        finally:
            if not self._upgraded(ex):
                self.tunnels.release()

    @staticmethod
    def _upgraded(ex: Exchange) -> bool:
        """True when the upstream switched protocols for this request."""
        return ex.upstream_response is not None and ex.upstream_response.response.upgraded

    def _switch_head(self, ex: Exchange) -> bytes | None:
        """After the response phase of a handshake: the 101's head (with the response
        phase's headers) when the upstream's 101 stands and the tunnel can start. Else None:
        the answer goes out as usual (the upstream's refusal: 403, 200...; or a filter's
        answer in place of the 101, whose slot is then given back)."""
        if not self._upgraded(ex):
            return None
        if ex.status == 101 and ex.body is None:
            answer = ex.upstream_response
            upgrade = next((v for k, v in answer.headers if k.lower() == "upgrade"), "")
            try:
                return response_head(status_line(101), [*ex.headers.items(),
                                                        ("Upgrade", upgrade),
                                                        ("Connection", "Upgrade")])
            except ValueError:  # a filter's header value that cannot go on the wire
                log.exception("request %s: the 101 cannot be written", ex.request_id)
                ex.error(500, UNEXPECTED)
        self.tunnels.release()  # the upstream connection is closed with the answer
        return None

    def _response_phase(self, ex: Exchange, chain: Chain) -> None:
        """Every response, the gateway's own errors included (CORS and rate-limit headers).

        A filter that answers here (enrichment's 500) replaces the response, so the
        filters that ran before it run again on the new one, as Kong's header_filter
        runs after its response phase.
        """
        for index, f in enumerate(chain.response_filters):
            body = ex.body
            f.on_response(ex)
            if ex.body is not body:
                for earlier in chain.response_filters[:index]:
                    earlier.on_response(ex)

    @staticmethod
    def _guarded(ex: Exchange, phase: Callable[[Exchange], None]) -> None:
        """Run a phase; a GatewayError becomes its answer, any other exception a logged 500."""
        try:
            phase(ex)
        except GatewayError as exc:
            if exc.kind:
                ex.outcomes["upstream"] = exc.kind
            ex.error(exc.status, exc.message, Headers(exc.headers) if exc.headers else None)
        except Exception:
            log.exception("request %s failed inside the gateway", ex.request_id)
            ex.error(500, UNEXPECTED)

    def proxy(self, ex: Exchange, destination: Destination, path: str, matched: str,
              upgrade: bool = False) -> None:
        """Send the request to the route's upstream and take its status and headers;
        GatewayError on failure. ``path`` is the request path as routed (normalised) and
        ``matched`` the part of it the route matched; ``upgrade``: a 101 is a final answer."""
        query = ex.upstream_query if ex.query_replaced else None
        sent = request_target(ex.environ, query)
        upstream_target = destination.upstream_target(sent, path, matched)
        if ex.upstream_path is not None:  # a filter set the whole path (Kong's set_path)
            _, sep, upstream_query = upstream_target.partition("?")
            upstream_target = ex.upstream_path + sep + upstream_query
        headers = ex.upstream_headers
        add_forwarding(headers, ex.environ, ex.request_id, sent.partition("?")[0],
                       destination.forwarded_prefix(sent, matched))
        body, chunked = request_body(ex.environ, self.settings.body_timeout)
        ex.upstream_uri = upstream_target
        ex.upstream_started = perf_counter()
        target, answer = destination.upstream.send(ex.upstream_method or ex.method,
                                                   upstream_target, headers, body, chunked,
                                                   ex.environ.get("gunicorn.socket"), upgrade,
                                                   ex)
        ex.upstream_finished = perf_counter()
        ex.target = target.url
        ex.upstream_response = answer
        ex.status = ex.upstream_status = answer.status
        ex.headers = response_headers(answer.headers, answer.response.connection)
        ex.upstream_response_headers = tuple(fields(ex.headers))  # 5x cheaper than a copy
        if destination.upstream.sets_cookie:  # a cookie hash without its cookie: Kong's
            set_hash_cookie(ex)
        redirects = self.redirects.get(destination.upstream)
        if redirects is not None:
            redirects.rewrite(ex.headers, ex.environ, target.url)

    def _stamp(self, ex: Exchange) -> None:
        """Headers every response carries: request id, Via, Kong-style latencies."""
        stamps = [("X-Request-ID", ex.request_id),
                  ("X-Gateway-Proxy-Latency", str(ex.proxy_latency_ms))]
        upstream_seconds = ex.upstream_seconds
        if upstream_seconds is not None:
            stamps.append(("X-Gateway-Upstream-Latency", str(round(upstream_seconds * 1000))))
        elif ex.replayed:  # a cache hit: Kong counts it proxied, waiting for nothing
            stamps.append(("X-Gateway-Upstream-Latency", "0"))
        set_fields(ex.headers, stamps, [("Via", VIA)], checked=True)

    def _tunnel(self, ex: Exchange, chain: Chain, head: bytes) -> Any:
        """The 101's ``head`` written on the client's socket, then the tunnel until it ends;
        gunicorn is told the connection was handled."""
        answer = ex.upstream_response
        leftover = answer.response.leftover
        conn = answer.detach()  # never back in the pool: closed below
        tunnel = Tunnel(ex.environ["gunicorn.socket"], conn.sock, self.tunnels.idle_timeout)
        body = ResponseBody(ex, self, chain)
        try:
            tunnel.run(head, leftover, client_read_ahead(ex.environ))
        finally:
            conn.close()
            self.tunnels.release()
            body.sent, body.tunnel = tunnel.down, tunnel
            body.close()
        return ALREADY_HANDLED

    def finish(self, ex: Exchange, sent: int, tunnel: Tunnel | None = None) -> None:
        """The request is over (``sent`` body bytes out; ``tunnel``: the WebSocket tunnel it
        became): metrics and the access-log line."""
        now = perf_counter()
        total = now - ex.started
        self.metrics.finished(ex, total, now)
        if tunnel is not None:
            metrics.tunnel_closed(tunnel.ended_by or "")
        if self.access_log:
            write_access_line(ex, sent, total, tunnel.log_fields() if tunnel else None)
        if ex.trace is not None:
            tracing.Tracing.end_request(ex.trace, ex.status, ex.route, ex.service, ex.consumer)
        REQUEST_ID.set(None)


class ResponseBody:
    """The WSGI response iterable: streams the body, then frees the upstream, runs on_log,
    and counts and logs the request."""

    #: The WebSocket tunnel the request became, if it did (set before close()).
    tunnel: Tunnel | None = None

    def __init__(self, ex: Exchange, gateway: Gateway, chain: Chain) -> None:
        self.ex = ex
        self.gateway = gateway
        self.chain = chain
        #: Body bytes handed to the server so far.
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        if self.ex.status == CLIENT_CLOSED:
            raise BodyAborted(CLIENT_CLOSED_MESSAGE)  # nothing to write, nobody to read it
        if self.ex.body is not None:
            for chunk in self.ex.body:
                self.sent += len(chunk)
                yield chunk
            return
        chunks = self._upstream_chunks()
        for wrap in self.ex.body_wrappers:
            chunks = wrap(chunks)
        for chunk in chunks:
            self.sent += len(chunk)
            yield chunk

    def _upstream_chunks(self) -> Iterator[bytes]:
        """The upstream body as it arrives; BodyAborted if the upstream fails mid-body."""
        ex = self.ex
        try:
            yield from ex.upstream_body if ex.upstream_body is not None else ex.upstream_response
        except (InvalidResponse, OSError) as exc:
            self.ex.error_message = f"upstream failed mid-body: {exc}"
            timed_out = isinstance(exc, TimeoutError)
            self.ex.outcomes["upstream"] = "timeout" if timed_out else "reset"
            log.warning("request %s: upstream %s failed after %d body bytes, closing the "
                        "client connection: %s", self.ex.request_id, self.ex.target, self.sent, exc)
            raise BodyAborted(self.ex.error_message) from exc

    def close(self) -> None:
        """Called by the server after the last byte or when the client left."""
        answer = self.ex.upstream_response
        if answer is not None:
            answer.release()  # back to the pool if read whole, else closed
            done = self.ex.environ.pop(BALANCER_DONE, None)  # least-connections, latency
            if done is not None:
                done()
        self.ex.bytes_sent = self.sent
        for f in self.chain.log_filters:
            try:
                f.on_log(self.ex)
            except Exception:
                log.exception("filter %s failed in the log phase", f.NAME)
        self.gateway.finish(self.ex, self.sent, self.tunnel)


def _request_id(environ: Mapping[str, Any]) -> str:
    """The client's X-Request-ID when well-formed, else a new UUID."""
    given = environ.get("HTTP_X_REQUEST_ID")
    return given if given and is_valid_request_id(given) else new_request_id()


def create_app(environ: Mapping[str, str] = os.environ,
               extra_filters: Sequence[Filter] = ()) -> WSGIApp:
    """Build the app from GATEWAY_* settings; ConfigError names the first bad variable.

    ``extra_filters`` are filter instances run beside the configured ones (tests).
    """
    settings = load(Settings, environ)
    if settings.websocket_max_tunnels is None:
        half = load(ServerSettings, environ).worker_connections // 2
        settings = dataclasses.replace(settings, websocket_max_tunnels=half)
    classes = enabled_classes(settings.filters)
    reject_unknown(environ, env_names([Settings, ServerSettings]) | known_variables(classes))
    logging.getLogger("gateway").setLevel(settings.log_level.upper())
    routes = route_table(settings, environ, classes, extra_filters)
    tracer = worker_tracing(settings, environ, routes)
    app: WSGIApp = Gateway(settings, routes, tracer)
    hops = settings.trusted_proxies
    if hops:
        app = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    return app


def worker_tracing(settings: Settings, environ: Mapping[str, str],
                   routes: RouteTable) -> tracing.Tracing | None:
    """The worker's tracing (the opentelemetry plugin's config, global by its schema, else
    the OTEL_* variables'), its spans put around the routes' parts; None when off."""
    plugins = [f for f in routes.filters if f.NAME == "opentelemetry"]
    config = (plugins[0].config.tracing if plugins
              else tracing.env_config(environ, settings.tracing_trust_incoming))
    tracer = tracing.ACTIVE = tracing.Tracing(config) if config is not None else None
    if tracer is not None:
        instrument(routes, tracer)
    return tracer
