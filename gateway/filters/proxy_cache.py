"""proxy-cache: serve repeated requests from a cache of upstream responses (Kong's plugin).

Request phase: a cacheable request (method, and with GATEWAY_CACHE_CONTROL the
client's Cache-Control) is looked up by its key: consumer, method, host, path,
sorted query and the GATEWAY_CACHE_VARY_HEADERS; a fresh entry is answered from
the cache and the upstream is never called. Response phase: a cacheable
response (status, content type, Vary, size, and with GATEWAY_CACHE_CONTROL the
upstream's Cache-Control) is copied as it streams to the client and stored once
it has gone through whole and within GATEWAY_CACHE_MAX_BODY; a bigger one is
passed on and never held. ``X-Cache-Status`` (Miss, Hit, Refresh, Bypass),
``X-Cache-Key`` and ``Age`` as Kong sends them (each one only when
GATEWAY_CACHE_RESPONSE_HEADERS lists it, or the request has ``Kong-Debug``).
Entries live in this worker's memory (LRU, GATEWAY_CACHE_MAX_BYTES) or in
Redis with GATEWAY_REDIS_URL.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from urllib.parse import parse_qsl

from werkzeug.datastructures import Headers, RequestCacheControl, ResponseCacheControl
from werkzeug.http import parse_cache_control_header, parse_date

from gateway.config import Settings, boolean, byte_size, names, number, setting
from gateway.filters.base import Filter
from gateway.jsoncodec import decode_json, encode_json
from gateway.proxy.exchange import Exchange
from gateway.store.cache import Cache, make_cache
from gateway.store.redis import RedisUnavailable

log = logging.getLogger("gateway.proxy_cache")

NOT_CACHED = "The response is not in the cache"  # answer to only-if-cached on a miss
#: Version of the stored entry layout; an entry of another version counts as absent.
ENTRY_VERSION = 1
#: Kong's response_headers: the diagnostic headers that may be sent (lower-case names).
RESPONSE_HEADERS = ("age", "x-cache-status", "x-cache-key")
_CTX = "proxy-cache"
_METHODS = ("GET", "HEAD", "POST", "PATCH", "PUT")  # the ones Kong allows
#: Request headers that identify a user, as (WSGI variable, name): a request carrying one is
#: cached only when the header is part of the key (GATEWAY_CACHE_VARY_HEADERS).
_PERSONAL = (("HTTP_AUTHORIZATION", "authorization"), ("HTTP_COOKIE", "cookie"))


def methods(raw: str) -> tuple[str, ...]:
    parsed = tuple(name.upper() for name in names(raw))
    if not parsed or not set(parsed) <= set(_METHODS):
        raise ValueError(f"must be comma-separated methods among {', '.join(_METHODS)}")
    return parsed


def statuses(raw: str) -> frozenset[int]:
    try:
        parsed = frozenset(int(code) for code in names(raw))
    except ValueError:
        parsed = frozenset()
    if not parsed or not all(100 <= code <= 599 for code in parsed):
        raise ValueError("must be comma-separated HTTP status codes (100-599)")
    return parsed


def response_header_names(raw: str) -> frozenset[str]:
    """Comma-separated names among Age, X-Cache-Status, X-Cache-Key (any case), or ``none``."""
    parsed = frozenset(name.lower() for name in names(raw)) - {"none"}
    if not parsed <= set(RESPONSE_HEADERS):
        raise ValueError("must be comma-separated names among age, X-Cache-Status, X-Cache-Key")
    return parsed


def media_types(raw: str) -> tuple[str, ...]:
    parsed = names(raw)
    if not parsed or not all("/" in name for name in parsed):
        raise ValueError("must be comma-separated media types such as application/json or text/*")
    return parsed


@dataclass(frozen=True)
class ProxyCacheConfig:
    ttl: int = setting(
        "GATEWAY_CACHE_TTL", number(int, 1), "300",
        "proxy-cache: seconds a response is served from the cache (Kong's cache_ttl).")
    storage_ttl: int | None = setting(
        "GATEWAY_CACHE_STORAGE_TTL", number(int, 1), None,
        "proxy-cache: seconds an entry is kept (Kong's storage_ttl): past its TTL but still "
        "kept, the next request says Refresh; unset: kept for its TTL.")
    methods: tuple[str, ...] = setting(
        "GATEWAY_CACHE_METHODS", methods, "GET,HEAD",
        "proxy-cache: request methods whose responses are cached.")
    statuses: frozenset[int] = setting(
        "GATEWAY_CACHE_STATUSES", statuses, "200,301,404",
        "proxy-cache: upstream statuses that are cached.")
    content_types: tuple[str, ...] = setting(
        "GATEWAY_CACHE_CONTENT_TYPES", media_types, "text/plain,application/json",
        "proxy-cache: upstream media types that are cached, as Kong matches them: `*` for a "
        "type or subtype, parameters (charset) equal: `text/plain` does not match "
        "`text/plain; charset=utf-8`.")
    cache_control: bool = setting(
        "GATEWAY_CACHE_CONTROL", boolean, "false",
        "proxy-cache: obey Cache-Control as Kong's cache_control: clients' no-cache/no-store/"
        "max-age/max-stale/min-fresh/only-if-cached; upstreams' private/no-store/"
        "no-cache, with the TTL from s-maxage/max-age/Expires (a response with none of the "
        "three is not stored).")
    vary_headers: tuple[str, ...] = setting(
        "GATEWAY_CACHE_VARY_HEADERS", names, "",
        "proxy-cache: request headers that are part of the cache key; a response whose Vary "
        "names any other header is not cached.")
    vary_query_params: tuple[str, ...] = setting(
        "GATEWAY_CACHE_VARY_QUERY_PARAMS", names, "",
        "proxy-cache: query parameters that are part of the cache key; empty: all of them.")
    ignore_uri_case: bool = setting(
        "GATEWAY_CACHE_IGNORE_URI_CASE", boolean, "false",
        "proxy-cache: the path is lower-cased in the cache key (/A and /a share an entry).")
    response_headers: frozenset[str] = setting(
        "GATEWAY_CACHE_RESPONSE_HEADERS", response_header_names, "age,X-Cache-Status,X-Cache-Key",
        "proxy-cache: which of Age, X-Cache-Status and X-Cache-Key responses carry (Kong's "
        "response_headers), or `none`; a request with a Kong-Debug header gets all three.")
    max_bytes: int = setting(
        "GATEWAY_CACHE_MAX_BYTES", byte_size, "64m",
        "proxy-cache: memory each worker's cache may use (least recently used entries go "
        "first); unused with GATEWAY_REDIS_URL.")
    max_body: int = setting(
        "GATEWAY_CACHE_MAX_BODY", byte_size, "1m",
        "proxy-cache: largest body cached; bigger responses are streamed and not cached.")


@dataclass
class Entry:
    """A stored response. Stored as one JSON line (version, status, stored_at, ttl,
    headers) then the body bytes as they are."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    stored_at: float
    ttl: float

    def encode(self) -> bytes:
        head = [ENTRY_VERSION, self.status, self.stored_at, self.ttl, self.headers]
        return encode_json(head) + b"\n" + self.body

    @classmethod
    def decode(cls, data: bytes) -> Entry | None:
        """The entry, or None for one that is malformed or of another version."""
        head, _, body = data.partition(b"\n")
        try:
            version, status, stored_at, ttl, headers = decode_json(head)
        except (ValueError, TypeError):
            return None
        if version != ENTRY_VERSION:
            return None
        return cls(status, [(name, value) for name, value in headers], body, stored_at, ttl)

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at)


@dataclass
class Lookup:
    """What the request phase found, for the response phase."""

    status: str  # Miss, Refresh, Bypass (Hit is answered in the request phase)
    key: str | None = None


def cache_key(ex: Exchange, config: ProxyCacheConfig) -> str:
    """SHA-256 hex (Kong's) of ``prefix|method|host+path|params|headers``: the prefix is the
    consumer's id and the route, the params the query sent upstream sorted by name (or the
    vary_query_params), the headers the vary_headers present (their values' members
    sorted, as Kong sorts a repeated header's lines). Unlike Kong, the Host is in
    the key, so a route with several hosts never serves one host's answer to another."""
    raw = ex.environ.get("RAW_URI") or ""
    path = raw.partition("?")[0] if raw.startswith("/") else ex.path
    if config.ignore_uri_case:
        path = path.lower()
    route = ex.route or ""
    prefix = f"{ex.consumer.id}:{route}" if ex.consumer else route or "default"
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(ex.upstream_query, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    wanted = config.vary_query_params or sorted(params)
    query = ":".join(f"{name}={','.join(sorted(params[name]))}" for name in wanted
                     if name in params)
    # upstream_headers spell `a_b` as `A-B` (WSGI knows the two as one name)
    headers = ":".join(f"{name}={_members(value)}" for name in config.vary_headers
                       if (value := ex.upstream_headers.get(name.replace("_", "-"))) is not None)
    text = f"{prefix}|{ex.method}|{ex.environ.get('HTTP_HOST', '')}{path}|{query}|{headers}"
    return hashlib.sha256(text.encode()).hexdigest()


def _members(value: str) -> str:
    """A vary header's value for the key: Kong sorts a repeated header's lines and joins
    them with ","; WSGI has already joined the lines with ",", so the comma-separated
    members are sorted (lines in any order make one entry, as Kong's)."""
    return ",".join(sorted(member.strip() for member in value.split(",")))


def parse_media_type(value: str) -> tuple[str, str, dict[str, str]] | None:
    """``type/subtype; k=v`` -> (type, subtype, params), names lower-cased; None if malformed
    (as Kong's parse_mime_type: ``application/xml;`` is, and then matches nothing)."""
    media, *params = value.split(";")
    kind, slash, subtype = media.strip().lower().partition("/")
    if not slash or not kind or not subtype:
        return None
    parsed = {}
    for param in params:
        name, equals, val = param.partition("=")
        if not name.strip() or not equals:
            return None
        parsed[name.strip().lower()] = val.strip().strip('"')
    return kind, subtype, parsed


def media_type_allowed(content_type: str | None, allowed: tuple[str, ...]) -> bool:
    """Kong's match: type and subtype equal (or ``*``) and exactly the same parameters, so
    ``text/plain`` does not match ``text/plain; charset=utf-8``."""
    got = parse_media_type(content_type or "")
    if got is None:
        return False
    for pattern in allowed:
        wanted = parse_media_type(pattern)
        if wanted is not None and wanted[0] in ("*", got[0]) and wanted[1] in ("*", got[1]) \
                and wanted[2] == got[2]:
            return True
    return False


class ProxyCache(Filter):
    """Answers hits in the request phase; copies and stores cacheable misses as they stream."""

    NAME = "proxy-cache"
    PRIORITY = 100  # Kong's
    VERSION = "1.0.0"
    Config = ProxyCacheConfig

    def __init__(self, config: ProxyCacheConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.store: Cache = make_cache(settings, "gateway:proxy-cache:", config.max_bytes)
        self.vary = {name.lower() for name in config.vary_headers}
        self.kept = config.storage_ttl  # None: an entry is kept for its own TTL

    def shown(self, ex: Exchange) -> frozenset[str]:
        """The diagnostic headers this response may carry (all of them with Kong-Debug)."""
        if ex.environ.get("HTTP_KONG_DEBUG"):  # Kong: a non-empty Kong-Debug header
            return frozenset(RESPONSE_HEADERS)
        return self.config.response_headers

    # ------------------------------------------------------------ request phase

    def on_request(self, ex: Exchange) -> None:
        control = ex.request.cache_control if self.config.cache_control else None
        if not self.cacheable_request(ex, control):
            ex.ctx[_CTX] = Lookup("Bypass")
            return
        key = cache_key(ex, self.config)
        try:
            found = self.store.get(key)
        except RedisUnavailable as exc:
            log.warning("proxy-cache: cache unavailable, request %s not cached: %s",
                        ex.request_id, exc)
            ex.ctx[_CTX] = Lookup("Bypass")
            return
        entry = Entry.decode(found) if found is not None else None
        if entry is not None and not self.too_old(entry, control, time.time()):
            self.serve(ex, entry, key)
        elif control is not None and control.only_if_cached:
            # Nothing usable and the upstream must not be asked (RFC 9111 5.2.1.7). As
            # Kong: no X-Cache-Status, since nothing is fetched or stored.
            shown = "x-cache-key" in self.shown(ex)
            ex.error(504, NOT_CACHED, Headers([("X-Cache-Key", key)] if shown else []))
        else:
            ex.ctx[_CTX] = Lookup("Miss" if entry is None else "Refresh", key)

    def cacheable_request(self, ex: Exchange, control: RequestCacheControl | None) -> bool:
        if ex.method not in self.config.methods:
            return False
        if any(ex.environ.get(variable) and name not in self.vary
               for variable, name in _PERSONAL):
            return False  # one user's answer must not be served to another
        return control is None or not (control.no_store or control.no_cache)

    @staticmethod
    def too_old(entry: Entry, control: RequestCacheControl | None, now: float) -> bool:
        """True when the entry is past its TTL (unless the client's max-stale accepts that)
        or the client asks for a fresher one: Kong's Refresh."""
        age = entry.age(now)
        staleness = age - entry.ttl
        if control is None:
            return staleness > 0
        max_stale = control.max_stale  # True: "max-stale" without a value, any staleness
        stale_accepted = max_stale is True or (
            isinstance(max_stale, int) and staleness <= max_stale)
        return ((staleness > 0 and not stale_accepted)
                or (control.max_age is not None and age > control.max_age)
                or (control.min_fresh is not None and entry.ttl - age < control.min_fresh))

    def serve(self, ex: Exchange, entry: Entry, key: str) -> None:
        """Answer from the cache: the stored response with Age and X-Cache-Status: Hit."""
        ex.ctx[_CTX] = None
        ex.respond(entry.status, entry.body, Headers(entry.headers))
        ex.replayed = True
        if ex.method == "HEAD":  # no body stored: keep the length the upstream announced
            ex.headers.remove("Content-Length")
            ex.headers.extend((n, v) for n, v in entry.headers if n.lower() == "content-length")
        shown = self.shown(ex)
        for name, value in (("Age", str(int(entry.age(time.time())))),
                            ("X-Cache-Status", "Hit"), ("X-Cache-Key", key)):
            ex.headers.remove(name)  # never the stored ones (Kong's reset_res_header)
            if name.lower() in shown:
                ex.headers[name] = value
        ex.outcomes[self.NAME] = "hit"

    # ----------------------------------------------------------- response phase

    def on_response(self, ex: Exchange) -> None:
        lookup: Lookup | None = ex.ctx.get(_CTX)
        if lookup is None:
            return
        status = lookup.status
        shown = self.shown(ex)
        if lookup.key is not None:
            if "x-cache-key" in shown:
                ex.headers["X-Cache-Key"] = lookup.key
            headers = self.upstream_headers(ex)
            ttl = None if headers is None else self.response_ttl(ex.upstream_status, headers)
            if ttl is None:
                status = "Bypass"
            else:
                ex.body_wrappers.append(partial(self.copy, key=lookup.key, headers=headers,
                                                status=ex.upstream_status, ttl=ttl))
        if "x-cache-status" in shown:
            ex.headers["X-Cache-Status"] = status
        ex.outcomes[self.NAME] = status.lower()

    @staticmethod
    def upstream_headers(ex: Exchange) -> Headers | None:
        """The upstream's own response headers (not those other filters added), or None
        when the gateway answered instead (an error, another filter's response)."""
        received = ex.upstream_response_headers
        return None if ex.body is not None or received is None else Headers(received)

    def response_ttl(self, status: int | None, headers: Headers) -> float | None:
        """Seconds to keep a response with ``status`` and ``headers``; None: do not store it."""
        length = headers.get("Content-Length", type=int)
        varied = {name.strip().lower() for value in headers.getlist("Vary")
                  for name in value.split(",") if name.strip()}
        if (status not in self.config.statuses
                or not media_type_allowed(headers.get("Content-Type"), self.config.content_types)
                or not varied <= self.vary or "Set-Cookie" in headers
                or (length is not None and length > self.config.max_body)):
            return None
        if not self.config.cache_control:
            return self.config.ttl
        control = parse_cache_control_header(headers.get("Cache-Control"), None,
                                             ResponseCacheControl)
        if control.private or control.no_store or control.no_cache:
            return None
        ttl = control.s_maxage if control.s_maxage is not None else control.max_age
        if ttl is None and (expires := parse_date(headers.get("Expires"))) is not None:
            ttl = expires.timestamp() - time.time()
        return ttl if ttl is not None and ttl > 0 else None

    def copy(self, chunks: Iterator[bytes], key: str, status: int,
             headers: Headers, ttl: float) -> Iterator[bytes]:
        """Pass the body on, keeping a copy; store it if it all went through within the limit."""
        kept: list[bytes] | None = []
        size = 0
        for chunk in chunks:
            if kept is not None:
                size += len(chunk)
                if size > self.config.max_body:
                    kept = None  # too big: stop copying, never store
                else:
                    kept.append(chunk)
            yield chunk
        if kept is None:
            return
        entry = Entry(status, list(headers), b"".join(kept), time.time(), ttl)
        try:
            self.store.set(key, entry.encode(), self.kept or ttl)
        except RedisUnavailable as exc:
            log.warning("proxy-cache: cache unavailable, response not stored: %s", exc)
