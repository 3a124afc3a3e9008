"""The route table the app asks per request: where it goes and which filters it runs.

Without a declarative file the table is one catch-all route to the service of
GATEWAY_UPSTREAM_URL with the filters of GATEWAY_FILTERS, and the request path
goes upstream after GATEWAY_UPSTREAM_URL's path, normalised as Kong's router normalises it
(:mod:`gateway.proxy.uri`; as sent when there is nothing to normalise). With a file, each
route gets its service's Upstream (targets, retries, timeouts) and its own
chain: for each plugin name, the most specific configuration wins, in Kong's
order (consumer+route+service, consumer+route, consumer+service, route+service,
consumer, route, service, global).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config import ConfigError, Settings, env_names, warn_disabled_filter_settings
from gateway.filters import REGISTRY, build_filters
from gateway.filters.base import Filter
from gateway.proxy.balancer import ROUND_ROBIN, Balancing
from gateway.proxy.errors import GatewayError
from gateway.proxy.exchange import URI_CAPTURES
from gateway.proxy.healthcheck import NO_PEER
from gateway.proxy.request import routed_path
from gateway.proxy.upstream import Upstream
from gateway.proxy.uri import climbs_out, escape, needs_normalizing
from gateway.routing import entities as e
from gateway.routing.chain import ByConsumer, Chain
from gateway.routing.declarative import Declaration, blockers, declaration_source, read_declaration
from gateway.routing.plugins import filter_config
from gateway.routing.router import Router, client_part, upstream_path
from gateway.schema import Invalid, collecting, raise_any

#: Kong's answer when no route matches.
#: What an Upstream is made of: the proxy settings of a service (targets, retries,
#: timeouts, Host rule), its upstream's balancing, and the targets' weights (None:
#: round-robin over targets repeated by weight).
Plan = tuple[Settings, Balancing, tuple[int, ...] | None]
NO_ROUTE = "no Route matched with those values"
#: Kong's answer (503) on a route without a service, once its plugins ran.
NO_SERVICE = "no Service found with those values"
#: The answer to a path whose encoded separators (``%2F``) and ``..`` segments would climb
#: out of the service's path at an upstream that decodes them.
BAD_PATH = "Bad request path: an encoded / with .. segments would leave the service path"
#: Kong's answer to plain http on an https-only route (426).
USE_HTTPS = "Please use HTTPS protocol"
#: The chain of a request no route took, without global plugins.
NO_FILTERS = Chain(())
#: The answer to a request that is not a WebSocket handshake on a ws/wss-only route (426).
USE_WEBSOCKET = "Please use the WebSocket protocol"
#: The WebSocket protocol of a route that takes handshakes on each scheme.
_WEBSOCKET_SCHEME = {http: ws for ws, http in e.WEBSOCKET_PROTOCOLS.items()}
#: Most targets listed per upstream for weighted round-robin (weights are scaled down past it).
MAX_RING = 100
# Kong's plugin precedence: (consumer, route, service) set -> rank, highest wins.
_RANK = {(True, True, True): 7, (True, True, False): 6, (True, False, True): 5,
         (False, True, True): 4, (True, False, False): 3, (False, True, False): 2,
         (False, False, True): 1, (False, False, False): 0}


@dataclass(frozen=True)
class Destination:
    """A route's service, upstream and filters."""

    #: Names for the access log and metrics ("" when unnamed).
    service: str
    route: str
    chain: Chain
    #: None when there is nothing to proxy to: a route without a service, or a service whose
    #: upstream has no live target; then Kong's 503 ``unavailable``, after the plugins ran.
    upstream: Upstream | None
    #: The route of the file; None for the catch-all route (the path is not rewritten).
    spec: e.Route | None = None
    service_path: str | None = None
    unavailable: str = NO_SERVICE

    def upstream_target(self, target: str, path: str, matched: str) -> str:
        """The request target sent upstream, Kong's way: the routed ``path`` (normalised),
        rewritten by the route (strip_path, the service path in front) and escaped, then
        the query of ``target`` (the client's request target, as sent).

        GatewayError 400 when the client's part of it holds an encoded separator
        (``%2F``, ``%5C``) with ``..`` segments that would climb out of the service's path
        (or GATEWAY_UPSTREAM_URL's) once the upstream decodes it; Kong passes those on.
        """
        raw_path, sep, query = target.partition("?")
        if self.spec is None:
            built = part = path
        else:
            built = upstream_path(self.spec, matched, path, self.service_path)
            part = client_part(self.spec, matched, path)
        if needs_normalizing(raw_path):
            if climbs_out(part):
                raise GatewayError(400, BAD_PATH)
            built = escape(built)
        return built + sep + query

    def forwarded_prefix(self, target: str, matched: str) -> str | None:
        """Kong's X-Forwarded-Prefix: what a strip_path route matched (and stripped), None
        when nothing was stripped (or only ``/``). ``target`` is the client's, as sent."""
        if self.spec is None or not self.spec.strip_path or matched in ("", "/"):
            return None
        return escape(matched) if needs_normalizing(target.partition("?")[0]) else matched

    def protocol_refusal(self, environ: Mapping[str, Any], handshake: bool = False
                         ) -> tuple[int, str, str | None] | None:
        """(status, message, Location or None) when the route does not take this scheme
        (Kong's https_redirect_status_code), else None. ``handshake``: the request is a
        WebSocket handshake, which ws and wss routes take as http and https ones. The scheme
        is the connection's or, behind a trusted hop, its X-Forwarded-Proto (Kong's
        forwarded_proto); a route that takes either is not refused."""
        if self.spec is None:
            return None
        scheme = environ.get("wsgi.url_scheme", "http")
        original = environ.get("werkzeug.proxy_fix.orig") or environ
        protocols = self.spec.protocols
        # Kong's router matches the connection's own scheme; only its https refusal reads
        # a trusted hop's X-Forwarded-Proto: either one the route takes lets it through.
        if scheme in protocols or original.get("wsgi.url_scheme", scheme) in protocols:
            return None
        if handshake:
            if _WEBSOCKET_SCHEME.get(scheme) in protocols:
                return None
        elif not any(p in e.HTTP_PROTOCOLS for p in protocols):
            return 426, USE_WEBSOCKET, None
        status = self.spec.https_redirect_status_code
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        location = f"https://{host}{environ.get('RAW_URI') or environ.get('PATH_INFO', '/')}"
        return status, USE_HTTPS if status == 426 else "Moved", location


class RouteTable:
    """Finds the destination of each request."""

    def __init__(self, destinations: Sequence[Destination],
                 router: Router[Destination] | None = None,
                 unrouted: Chain = NO_FILTERS) -> None:
        self.destinations = list(destinations)
        self.router = router
        #: The chain of a request no route took: the global plugins' log phase (Kong's).
        self.unrouted = unrouted

    def find(self, environ: dict[str, Any]) -> tuple[Destination, str, str] | None:
        """(destination, the request path as Kong routes it (normalised, no query), the part
        of it the route matched), or None: Kong's 404. A regex path's captures go in the
        environ, for ``Exchange.uri_captures``."""
        path = routed_path(environ)
        if self.router is None:
            return self.destinations[0], path, ""
        hit = self.router.match(environ["REQUEST_METHOD"],
                                environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""),
                                path, environ)
        if hit is None:
            return None
        if hit.captures:
            environ[URI_CAPTURES] = hit.captures
        return hit.value, path, hit.matched

    @property
    def filters(self) -> list[Filter]:
        """Every filter instance of every route, highest PRIORITY first."""
        seen = {id(f): f for d in self.destinations for f in d.chain.filters}
        return Chain(list(seen.values())).filters

    @property
    def upstreams(self) -> Iterator[Upstream]:
        """Each distinct Upstream once."""
        return iter({id(d.upstream): d.upstream for d in self.destinations
                     if d.upstream is not None}.values())


def single_service(settings: Settings, filters: Sequence[Filter]) -> RouteTable:
    """GATEWAY_UPSTREAM_URL's service behind a catch-all route with GATEWAY_FILTERS."""
    if settings.upstream_urls is None:
        raise ConfigError("GATEWAY_UPSTREAM_URL is required (or a declarative file: "
                          "GATEWAY_DECLARATIVE_CONFIG)")
    return RouteTable([Destination("", "", Chain(filters), Upstream(settings))])


def declared(settings: Settings, decl: Declaration, extra: Sequence[Filter] = ()) -> RouteTable:
    """The routes of a declarative file; Invalid names the entity and field at fault, for
    every plugin and service at fault.

    A file without routes loads (``kong config init``'s): every request is a 404. A route
    without a service loads: its plugins run, then Kong's 503.
    """
    problems: list[str] = []
    instances = [_instance(p, decl, settings, problems) for p in decl.plugins]
    # Services with the same targets, retries, timeouts, Host rule, balancing and upstream
    # entity share one Upstream (_shared_upstream).
    upstreams: dict[tuple[Plan, str | None], Upstream] = {}
    routes = []
    for route in decl.routes:
        service = decl.services.get(route.service)  # None: a route without a service
        if route.service is not None and (service is None or not service.enabled):
            continue  # disabled, or refused (read_declaration reported it)
        upstream, unavailable = None, NO_SERVICE
        if service is not None:
            with collecting(problems):
                plan = _service_settings(settings, service, decl, route)
                if plan is None:
                    # Kong's 503 also when no target has a weight above 0 (the Ingress
                    # Controller's upstreams of Services without ready endpoints).
                    unavailable = NO_PEER
                else:
                    upstream = _shared_upstream(upstreams, plan, decl.upstreams.get(
                        service.host))
        chain = Chain([*_scoped(decl, instances, route.key, route.service), *extra])
        routes.append((route, Destination(
            (service.name or "") if service else "", route.name or "", chain, upstream, route,
            service.path if service else None, unavailable)))
    raise_any(problems)
    global_filters = [instance for plugin, instance in zip(decl.plugins, instances, strict=True)
                      if instance is not None and plugin.route is None
                      and plugin.service is None and plugin.consumer is None]
    return RouteTable([d for _, d in routes], Router(routes), Chain.log_only(global_filters))


def _shared_upstream(upstreams: dict[tuple[Plan, str | None], Upstream], plan: Plan,
                     entity: e.Upstream | None) -> Upstream:
    """The Upstream of ``plan`` and upstream entity (None: a service's own host), made on
    first use: services with the same ones share it, so its pools and the entity's health
    checks."""
    key = (plan, entity.name if entity else None)
    if key not in upstreams:
        upstreams[key] = upstream = Upstream(*plan)
        if entity is not None:
            upstream.name = entity.name
            upstream.use_healthchecks(entity.healthchecks)
    return upstreams[key]


def _instance(plugin: e.Plugin, decl: Declaration, settings: Settings,
              problems: list[str]) -> Filter | None:
    """The plugin's filter; None for a disabled plugin (its config checked all the same)
    or one whose config is wrong (added to ``problems``)."""
    with collecting(problems):
        cls, config = filter_config(plugin, decl)
        if not plugin.enabled:
            return None
        try:
            return cls(config, settings)
        except (ConfigError, ValueError) as exc:
            raise Invalid(f"{plugin.label}.config", str(exc)) from None
    return None


def _scoped(decl: Declaration, instances: list[Filter | None], route: str,
            service: str) -> list[Filter]:
    """The route's filters: per plugin name the most specific configuration, per consumer."""
    best: dict[str, dict[str | None, tuple[int, Filter]]] = {}
    for plugin, instance in zip(decl.plugins, instances, strict=True):
        if instance is None or plugin.route not in (None, route) or \
                plugin.service not in (None, service):
            continue
        rank = _RANK[plugin.consumer is not None, plugin.route is not None,
                     plugin.service is not None]
        # a consumer the file got wrong is missing (its problem is reported): its key stands
        found = decl.consumers.get(plugin.consumer) if plugin.consumer else None
        consumer = found.username if found else plugin.consumer
        slot = best.setdefault(plugin.name, {})
        if consumer not in slot or rank > slot[consumer][0]:
            slot[consumer] = rank, instance
    filters: list[Filter] = []
    for slot in best.values():
        default = slot.pop(None, (-1, None))
        overrides = {c: f for c, (rank, f) in slot.items() if rank > default[0]}
        filters.append(ByConsumer(default[1], overrides) if overrides else default[1])
    return [f for f in filters if f is not None]


def _service_settings(settings: Settings, service: e.Service, decl: Declaration,
                      route: e.Route) -> Plan | None:
    """The proxy settings of one service (its targets, retries, timeouts, Host rule), its
    upstream's balancing and the targets' weights (None: round-robin, the targets repeated
    by weight); None when its upstream has no target with a weight above 0."""
    upstream = decl.upstreams.get(service.host)
    balancing, weights = ROUND_ROBIN, None
    if upstream is None:
        urls: tuple[str, ...] = (service.url,)
    else:
        balancing = upstream.balancing
        if not any(t.weight > 0 for t in upstream.targets):
            return None
        if balancing.algorithm == "round-robin":
            targets: Sequence[e.Target] = weighted_ring(upstream.targets)
        else:  # weight-0 targets too: Kong's ring counts them (and gives them no point)
            targets = upstream.targets
            weights = tuple(t.weight for t in targets)
        urls = tuple(f"{service.protocol}://{t.host}:{t.port}" for t in targets)
    return dataclasses.replace(
        settings, upstream_urls=urls, retries=service.retries,
        connect_timeout=service.connect_timeout, read_timeout=service.read_timeout,
        preserve_host=route.preserve_host), balancing, weights


def weighted_ring(targets: Sequence[e.Target]) -> list[e.Target]:
    """Targets repeated in proportion to their weights, spread out (smooth weighted
    round-robin, as nginx's), so round-robin over the list honours the weights."""
    live = [t for t in targets if t.weight > 0]
    if not live:
        return []
    divisor = math.gcd(*(t.weight for t in live))
    shares = [t.weight // divisor for t in live]
    if sum(shares) > MAX_RING:
        total = sum(shares)
        shares = [max(1, round(share * MAX_RING / total)) for share in shares]
    current = [0] * len(live)
    ring = []
    for _ in range(sum(shares)):
        current = [c + share for c, share in zip(current, shares, strict=True)]
        chosen = max(range(len(live)), key=current.__getitem__)
        current[chosen] -= sum(shares)
        ring.append(live[chosen])
    return ring


def route_table(settings: Settings, environ: Mapping[str, str],
                classes: Sequence[type[Filter]], extra: Sequence[Filter] = ()) -> RouteTable:
    """The table the settings describe: the declarative file's routes, else one service
    with the filters ``classes`` (GATEWAY_FILTERS' classes, as the registry resolved them).

    ``extra`` filters run on every route (tests). ConfigError names the file, the entity
    and the field path. Settings of filters that are not enabled are a warning without a
    file (they are ignored) and an error beside one (the file's plugins configure filters).
    """
    source = declaration_source(environ, settings.declarative_config,
                                settings.declarative_config_string)
    if source is None:
        warn_disabled_filter_settings(environ, REGISTRY, settings.filters)
        return single_service(settings, [*build_filters(settings, environ, classes), *extra])
    if settings.filters:
        raise ConfigError("GATEWAY_FILTERS cannot be combined with a declarative file: "
                          "declare the plugins in the file")
    filter_variables = env_names(cls.Config for cls in REGISTRY.values())
    for name in sorted(filter_variables.intersection(environ)):
        if environ[name].strip():
            raise ConfigError(f"{name}: a filter setting has no effect with a declarative "
                              "file; set it in the plugin's config there")
    text, origin = source
    table, problems = _declared_table(settings, read_declaration(text, origin, environ), extra)
    if table is None or problems:
        raise blockers(origin, problems)
    return table


def file_problems(settings: Settings, text: str, origin: str,
                  environ: Mapping[str, str]) -> tuple[str, ...]:
    """Every blocker of a declarative file, one ``path: message`` line each (kong-check);
    ConfigError only for text that is not YAML or JSON."""
    return _declared_table(settings, read_declaration(text, origin, environ), ())[1]


def _declared_table(settings: Settings, decl: Declaration, extra: Sequence[Filter]
                    ) -> tuple[RouteTable | None, tuple[str, ...]]:
    """The table of a read file, and the problems of the file and of its plugins."""
    try:
        table = declared(settings, decl, extra)
    except Invalid as exc:
        return None, decl.problems + exc.problems
    return table, decl.problems
