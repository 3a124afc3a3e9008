"""request-callout's config (Kong 3.10 Enterprise's schema, word for word) as a checked plan.

The same record comes from a declarative file's ``plugins[].config`` or from
GATEWAY_REQUEST_CALLOUT_CONFIG (YAML or JSON). Every problem is one line naming its
place (``plugins[0].config.callouts[1].request.url: ...``). Lua (``by_lua``, any
``$(...)`` that is not a plain reference) and the HTTP options this gateway has no
counterpart for are refused as "not supported by this gateway". The ``response``
record is ours (an extension): client response headers and JSON body fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway import schema as s
from gateway.filters.request_callout import graph
from gateway.filters.request_callout.templates import Template, template
from gateway.proxy.headers import is_header_name
from gateway.schema import REQUIRED, Invalid
from gateway.store.kong_redis import RECORD as REDIS_RECORD
from gateway.store.redis import kong_redis_url

NOT_SUPPORTED = "is not supported by this gateway"
_LUA = f"{NOT_SUPPORTED} (Lua code); use $(...) references in custom values"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_URL_START = re.compile(r"https?://[^/?#$]+(?:[/?#]|$)")
#: Kong Enterprise's Redis fields, accepted at the values Kong writes by default.
_REDIS_ENTERPRISE = {"connect_timeout": 2000, "read_timeout": 2000, "send_timeout": 2000,
                     "keepalive_pool_size": 256, "keepalive_backlog": None,
                     "cluster_max_redirections": 5, "connection_is_proxied": False,
                     "sentinel_master": None, "sentinel_role": None, "sentinel_nodes": None,
                     "sentinel_username": None, "sentinel_password": None,
                     "cluster_nodes": None}
#: Largest upstream body the response section decorates, by default (ours).
DEFAULT_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Part:
    """A headers, query or body record: forward the client's, and custom values."""

    forward: bool
    custom: tuple[tuple[str, Template], ...] = ()
    decode: bool = False


@dataclass(frozen=True)
class ErrorPolicy:
    on_error: str
    http_statuses: frozenset[int]
    retries: int
    error_response_code: int
    error_response_msg: Template


@dataclass(frozen=True)
class Callout:
    """One named call: its request, error policy and what of its response is kept."""

    name: str
    depends_on: tuple[str, ...]
    url: Template
    method: str
    headers: Part
    query: Part
    body: Part
    ssl_verify: bool
    #: Seconds (connect, read) and the whole-call deadline; None: the client's defaults.
    timeouts: tuple[float, float, float] | None
    error: ErrorPolicy
    store_headers: bool
    store_body: bool
    decode_body: bool
    bypass_cache: bool

    @property
    def refs(self) -> set[str]:
        """The callouts its request reads."""
        values = [self.url, *(t for part in (self.headers, self.query, self.body)
                              for _, t in part.custom)]
        return {ref.callout for t in values for ref in t.refs if ref.callout}


@dataclass(frozen=True)
class Cache:
    strategy: str
    cache_ttl: int
    #: A Redis URL from the plugin's own redis record; None: GATEWAY_REDIS_URL's.
    redis_url: str | None
    #: Ours: serve the last good answer this many seconds past its TTL when a call fails.
    stale_if_error: int


@dataclass(frozen=True)
class Decoration:
    """Ours: client response headers and JSON body fields from callout results."""

    headers: tuple[tuple[str, Template], ...] = ()
    body: tuple[tuple[str, Template], ...] = ()
    max_body: int = DEFAULT_MAX_BODY

    @property
    def refs(self) -> set[str]:
        return {ref.callout for _, t in (*self.headers, *self.body) for ref in t.refs
                if ref.callout}


@dataclass(frozen=True)
class Plan:
    """The whole config: callouts in a checked graph, the upstream's and response's shape."""

    callouts: tuple[Callout, ...]
    upstream_headers: Part
    upstream_query: Part
    upstream_body: Part
    cache: Cache
    response: Decoration
    #: name -> the callouts it waits for (depends_on and the ones it references).
    edges: Mapping[str, tuple[str, ...]]
    #: Names joined before the upstream call, and those joined only for the response.
    before_upstream: tuple[str, ...]
    for_response: tuple[str, ...]
    #: Identifies the plugin instance in cache keys (Kong's plugin id).
    plugin_id: str = ""

    @property
    def reads_body(self) -> bool:
        """True when a callout sends the client's body (it is read once, before they start)."""
        return any(c.body.forward or c.body.decode for c in self.callouts)

    def by_name(self) -> dict[str, Callout]:
        return {c.name: c for c in self.callouts}


# -- checks of the record, each with its path


def _lua(value: Any, path: str) -> None:
    raise Invalid(path, _LUA)


def _not_supported(value: Any, path: str) -> None:
    if value not in (None, {}, [], ""):
        raise Invalid(path, NOT_SUPPORTED)


def _custom(header_names: bool = False) -> s.Check:
    """A ``custom`` record: name -> value; strings may hold $(...) references."""

    def check(value: Any, path: str) -> tuple[tuple[str, Template], ...]:
        items = []
        for name, raw in s.mapping(value, path).items():
            where = f"{path}.{name}"
            if header_names and not is_header_name(name):
                raise Invalid(where, "is not a valid header name")
            items.append((name, _value(raw, where)))
        return tuple(items)

    return check


def _value(raw: Any, where: str) -> Template:
    """A custom value as a Template (non-strings: their JSON text, kept typed)."""
    if isinstance(raw, str):
        try:
            return template(raw, where)
        except ValueError as exc:
            raise Invalid(where, str(exc).removeprefix(f"{where}: ")) from None
    if isinstance(raw, (dict, list)):
        raise Invalid(where, "expected a string, number or boolean")
    return Template.of(raw)


def _part(forward: bool, decode: bool | None = None, header_names: bool = False) -> s.Check:
    fields: dict[str, tuple[s.Check, Any]] = {
        "forward": (s.boolean, forward), "custom": (_custom(header_names), ())}
    if decode is not None:
        fields["decode"] = (s.boolean, decode)

    def check(value: Any, path: str) -> Part:
        conf = s.record(value, path, fields)
        return Part(conf["forward"], conf["custom"], conf.get("decode", False))

    return check


def _url(value: Any, path: str) -> Template:
    raw = s.string(value, path)
    try:
        parsed = template(raw, path)
    except ValueError as exc:
        raise Invalid(path, str(exc).removeprefix(f"{path}: ")) from None
    if not _URL_START.match(raw):
        raise Invalid(path, "must start with http:// or https:// and a host written out "
                            "(a host from a reference is not supported by this gateway)")
    return parsed


def _method(value: Any, path: str) -> str:
    method = s.string(value, path).upper()
    if not _TOKEN.fullmatch(method):
        raise Invalid(path, "is not an HTTP method")
    return method


_MS = s.integer(0, 2**31 - 2)


def _timeouts(value: Any, path: str) -> tuple[float, float, float] | None:
    conf = s.record(value, path, {"connect": (_MS, None), "write": (_MS, None),
                                  "read": (_MS, None)})
    given = [conf[name] for name in ("connect", "write", "read")]
    if all(v is None for v in given):
        return None
    if any(v is None for v in given):
        raise Invalid(path, "all or none of connect, write and read must be set")
    if any(v == 0 for v in given):
        raise Invalid(path, "a timeout of 0 (no timeout) is not supported by this gateway")
    connect, write, read = (v / 1000 for v in given)
    return connect, read, connect + write + read


def _http_opts(value: Any, path: str) -> dict[str, Any]:
    return s.record(value, path, {
        "ssl_verify": (s.boolean, False), "ssl_server_name": (_not_supported, None),
        "timeouts": (_timeouts, None), "proxy": (_not_supported, None)})


def _error(value: Any, path: str) -> ErrorPolicy:
    conf = s.record(value, path, {
        "on_error": (s.one_of("continue", "fail", "retry"), "fail"),
        "http_statuses": (s.array(s.integer(100, 999)), ()),
        "retries": (s.integer(0, 100), 2),
        "error_response_code": (s.integer(100, 599), 400),
        "error_response_msg": (_value_string, template("service callout error", path))})
    return ErrorPolicy(conf["on_error"], frozenset(conf["http_statuses"]), conf["retries"],
                       conf["error_response_code"], conf["error_response_msg"])


def _value_string(value: Any, path: str) -> Template:
    return _value(s.string(value, path), path)


def _request(value: Any, path: str) -> dict[str, Any]:
    return s.record(value, path, {
        "url": (_url, REQUIRED), "method": (_method, "GET"),
        "headers": (_part(False, header_names=True), Part(False)),
        "query": (_part(False), Part(False)), "body": (_part(False, False), Part(False)),
        "http_opts": (_http_opts, None), "error": (_error, None), "by_lua": (_lua, None)})


def _response(value: Any, path: str) -> dict[str, Any]:
    return s.record(value, path, {
        "headers": (lambda v, p: s.record(v, p, {"store": (s.boolean, True)}), None),
        "body": (lambda v, p: s.record(v, p, {"store": (s.boolean, True),
                                              "decode": (s.boolean, False)}), None),
        "by_lua": (_lua, None)})


def _callout(value: Any, path: str) -> Callout:
    conf = s.record(value, path, {
        "name": (s.string, REQUIRED), "depends_on": (s.array(s.string), ()),
        "request": (_request, REQUIRED), "response": (_response, None),
        "cache": (lambda v, p: s.record(v, p, {"bypass": (s.boolean, False)}), None)})
    request = conf["request"]
    http = request["http_opts"] or _http_opts({}, f"{path}.request.http_opts")
    error = request["error"] or _error({}, f"{path}.request.error")
    response = conf["response"] or {}
    headers, body = response.get("headers") or {}, response.get("body") or {}
    return Callout(
        conf["name"], conf["depends_on"], request["url"], request["method"],
        request["headers"], request["query"], request["body"], http["ssl_verify"],
        http["timeouts"], error, headers.get("store", True), body.get("store", True),
        body.get("decode", False), bool((conf["cache"] or {}).get("bypass")))


def _upstream(value: Any, path: str) -> dict[str, Any]:
    return s.record(value, path, {
        "headers": (_part(True, header_names=True), Part(True)),
        "query": (_part(True), Part(True)), "body": (_part(True, True), Part(True, (), True)),
        "by_lua": (_lua, None)})


def _redis(value: Any, path: str) -> str | None:
    """The cache's redis record (Kong Enterprise's shape) as a URL; None without a host."""
    conf = s.mapping(value, path)
    given: dict[str, Any] = {}
    for name, item in conf.items():
        where = f"{path}.{name}"
        if name in _REDIS_ENTERPRISE:
            if item not in (None, [], {}, _REDIS_ENTERPRISE[name]):
                raise Invalid(where, f"{NOT_SUPPORTED} (only {_REDIS_ENTERPRISE[name]!r}); "
                                     "for a Sentinel or a Cluster set GATEWAY_REDIS_URL")
        elif name not in REDIS_RECORD:
            raise Invalid(where, "unknown field")
        elif item is not None:
            given[name] = REDIS_RECORD[name][0](item, where)
    if given.get("host") is None:
        return None
    return kong_redis_url({name: given.get(name, default)
                           for name, (_, default) in REDIS_RECORD.items()})


def _cache(value: Any, path: str) -> Cache:
    conf = s.record(value, path, {
        "strategy": (s.one_of("memory", "off", "redis"), "off"),
        "cache_ttl": (s.integer(0, 2**31), 300),
        "memory": (lambda v, p: s.record(v, p, {"dictionary_name": (s.string, None)}), None),
        "redis": (_redis, None),
        "stale_if_error": (s.integer(0, 2**31), 0)})
    return Cache(conf["strategy"], conf["cache_ttl"], conf["redis"], conf["stale_if_error"])


def _decoration(value: Any, path: str) -> Decoration:
    conf = s.record(value, path, {
        "headers": (lambda v, p: s.record(v, p, {"custom": (_custom(True), ())}), None),
        "body": (lambda v, p: s.record(v, p, {"custom": (_custom(), ()),
                                              "max_size": (s.integer(1, 2**31),
                                                           DEFAULT_MAX_BODY)}), None)})
    headers, body = conf["headers"] or {}, conf["body"] or {}
    return Decoration(headers.get("custom", ()), body.get("custom", ()),
                      body.get("max_size", DEFAULT_MAX_BODY))


def plan(config: Any, path: str = "config", plugin_id: str = "") -> Plan:
    """The checked plan of a request-callout config record; Invalid naming every problem."""
    conf = s.record(config, path, {
        "callouts": (s.array(_callout), REQUIRED), "upstream": (_upstream, None),
        "cache": (_cache, None), "response": (_decoration, None)})
    callouts: tuple[Callout, ...] = conf["callouts"]
    upstream = conf["upstream"] or _upstream({}, f"{path}.upstream")
    response = conf["response"] or Decoration()
    edges, before, after = graph.phases(callouts, _upstream_refs(upstream), response.refs,
                                 f"{path}.callouts")
    return Plan(callouts, upstream["headers"], upstream["query"], upstream["body"],
                conf["cache"] or _cache({}, f"{path}.cache"), response, edges, before, after,
                plugin_id)


def _upstream_refs(upstream: dict[str, Any]) -> set[str]:
    return {ref.callout for name in ("headers", "query", "body")
            for _, t in upstream[name].custom for ref in t.refs if ref.callout}
