"""Route matching with Kong 3.x ``traditional_compatible`` semantics, and Kong's path rewrite.

Each (route, path) pair is a candidate with Kong's priority (kong/router/transform.lua
``get_priority``): the number of fields set (methods, hosts, headers, paths), then
hosts without wildcards, then the header count, then regex paths before prefixes,
``regex_priority``, and the prefix length; the earlier route in the file wins a tie.
Paths are matched on the request path as Kong normalises it (:mod:`.uri`): ``/a/../b``,
``/a//b`` and ``/%61/b`` all match the route ``/a/b``, ``/a%2Fb`` does not.
Hosts are exact (the port ignored unless the route names one) or have one leftmost
(``*.example.com``) or rightmost (``example.*``) wildcard. A prefix matches the start
of the normalised path as a string; a regex path ``~/...`` matches from its start.

The cost of a match does not grow with the number of plain host and prefix routes:
candidates are indexed by host, then by prefix (one dictionary look-up per distinct
prefix length). Only regex and path-less routes are tried one by one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from gateway.routing.entities import Route, path_regex

T = TypeVar("T")


@dataclass(frozen=True)
class Candidate(Generic[T]):
    """One path of one route (or the route, when it has no path)."""

    value: T
    route: Route
    regex: re.Pattern[str] | None
    methods: frozenset[str]
    #: (WSGI environ key, exact values lower-cased, regexes) per header the route requires.
    headers: tuple[tuple[str, frozenset[str], tuple[re.Pattern[str], ...]], ...]
    #: Kong's priority, then the route's position (earlier first): the highest wins.
    priority: tuple[int, ...]

    def accepts(self, method: str, environ: Mapping[str, Any]) -> bool:
        if self.methods and method not in self.methods:
            return False
        for key, values, patterns in self.headers:
            given = environ.get(key)
            if given is None or not any(_header_value_matches(v.strip(), values, patterns)
                                        for v in (given, *given.split(","))):
                return False
        return True


def _header_value_matches(value: str, values: frozenset[str],
                          patterns: tuple[re.Pattern[str], ...]) -> bool:
    return value.lower() in values or any(p.search(value) for p in patterns)


@dataclass(frozen=True)
class Hit(Generic[T]):
    """The route that matched and how much of the normalised path its path matched."""

    value: T
    route: Route
    matched: str
    #: A regex path's groups that matched, named and numbered ("1", "2"...); else empty.
    captures: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Bucket(Generic[T]):
    """The candidates of one host key: prefixes by their text, the others in a list."""

    prefixes: dict[str, list[Candidate[T]]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)
    scanned: list[Candidate[T]] = field(default_factory=list)

    def add(self, candidate: Candidate[T], prefix: str | None) -> None:
        if prefix is None:
            self.scanned.append(candidate)
            return
        self.prefixes.setdefault(prefix, []).append(candidate)
        if len(prefix) not in self.lengths:
            self.lengths = sorted({*self.lengths, len(prefix)}, reverse=True)

    def matching(self, path: str) -> Iterator[tuple[Candidate[T], str]]:
        """Candidates whose path matches ``path``, with the text their path matched."""
        for candidate in self.scanned:
            if candidate.regex is None:
                yield candidate, ""
            elif found := candidate.regex.match(path):
                yield candidate, found.group(0)
        for length in self.lengths:
            if length <= len(path):
                for candidate in self.prefixes.get(path[:length], ()):
                    yield candidate, path[:length]


class Router(Generic[T]):
    """Finds the route of a request among ``routes`` (each with its value, e.g. its chain)."""

    def __init__(self, routes: Sequence[tuple[Route, T]]) -> None:
        self.exact: dict[str, _Bucket[T]] = {}
        #: ``*.example.com`` under ``.example.com``; ``example.*`` under ``example.``.
        self.suffix: dict[str, _Bucket[T]] = {}
        self.prefix: dict[str, _Bucket[T]] = {}
        self.any_host: _Bucket[T] = _Bucket()
        for order, (route, value) in enumerate(routes):
            for path in route.paths or (None,):
                self._add(route, value, path, order)

    def _add(self, route: Route, value: T, path: str | None, order: int) -> None:
        regex = path_regex(path) if path and path.startswith("~") else None
        candidate = Candidate(value, route, regex, frozenset(route.methods),
                              tuple(_header_rule(name, values) for name, values in route.headers),
                              _priority(route, path, order))
        prefix = path if path is not None and regex is None else None
        if not route.hosts:
            self.any_host.add(candidate, prefix)
        for host in route.hosts:
            if host.startswith("*"):
                bucket = self.suffix.setdefault(host[1:], _Bucket())
            elif host.endswith("*"):
                bucket = self.prefix.setdefault(host[:-1], _Bucket())
            else:
                bucket = self.exact.setdefault(host, _Bucket())
            bucket.add(candidate, prefix)

    def match(self, method: str, host: str, path: str,
              environ: Mapping[str, Any]) -> Hit[T] | None:
        """The best route for the request, or None (Kong's "no Route matched")."""
        best: tuple[Candidate[T], str] | None = None
        for bucket in self._buckets(host.lower()):
            for candidate, matched in bucket.matching(path):
                if (best is None or candidate.priority > best[0].priority) and \
                        candidate.accepts(method, environ):
                    best = candidate, matched
        if best is None:
            return None
        return Hit(best[0].value, best[0].route, best[1], _captures(best[0], path))

    def _buckets(self, host: str) -> Iterator[_Bucket[T]]:
        yield self.any_host
        name = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
        for key in {host, name}:
            if bucket := self.exact.get(key):
                yield bucket
            for i, char in enumerate(key):
                if char == ".":
                    if self.suffix and (bucket := self.suffix.get(key[i:])):
                        yield bucket
                    if self.prefix and (bucket := self.prefix.get(key[:i + 1])):
                        yield bucket


def _captures(candidate: Candidate[Any], path: str) -> dict[str, str]:
    """The groups of a regex path that matched (Kong's ``get_uri_captures``): "0" the whole
    match, "1"... the numbered groups, and the named ones; none for a regex without groups."""
    found = candidate.regex.match(path) if candidate.regex is not None else None
    if found is None or not found.re.groups:
        return {}
    captures = {str(i): group for i, group in enumerate(found.groups(), 1) if group is not None}
    captures["0"] = found[0]
    captures.update((name, group) for name, group in found.groupdict().items()
                    if group is not None)
    return captures


def _header_rule(name: str, values: tuple[str, ...]
                 ) -> tuple[str, frozenset[str], tuple[re.Pattern[str], ...]]:
    key = "HTTP_" + name.upper().replace("-", "_")
    exact = frozenset(v.lower() for v in values if not v.startswith("~*"))
    patterns = tuple(re.compile(v[2:], re.I) for v in values if v.startswith("~*"))
    return key, exact, patterns


def _priority(route: Route, path: str | None, order: int) -> tuple[int, ...]:
    """Kong's get_priority() fields, most significant first, then the file order."""
    weight = sum(bool(f) for f in (route.methods, route.hosts, route.headers, route.paths))
    plain_hosts = bool(route.hosts) and not any("*" in h for h in route.hosts)
    regex = path is not None and path.startswith("~")
    return (weight, plain_hosts, len(route.headers), regex,
            route.regex_priority if regex else 0,
            len(path) if path is not None and not regex else 0, -order)


def client_part(route: Route, matched: str, path: str) -> str:
    """What the request adds to the service's path: with ``strip_path``, the rest of the
    path after what the route matched (a leading ``.`` or ``..`` left by the strip
    dropped, Kong's sanitize_uri_postfix), else the whole path."""
    if not route.strip_path:
        return path
    postfix = path[len(matched):] if matched else path[1:]
    if postfix in (".", ".."):
        return ""
    for lead in ("./", "../"):
        if postfix.startswith(lead):
            return postfix[len(lead):]
    return postfix


def upstream_path(route: Route, matched: str, path: str, service_path: str | None) -> str:
    """The path sent upstream (Kong's get_upstream_uri_v0): with ``strip_path`` what the
    route matched is dropped, and the service's path goes in front.

    ``path`` is the request path as Kong routes it (normalised, :mod:`.uri`); ``matched``
    is the part of it the route's path matched.
    """
    base = service_path or "/"
    if not route.strip_path:
        if base.endswith("/"):
            return base + path[1:]
        return base if path == "/" else base + path
    postfix = client_part(route, matched, path)
    if base.endswith("/"):
        if not postfix:
            return base if base == "/" or path.endswith("/") else base[:-1]
        return base[:-1] + postfix if postfix.startswith("/") else base + postfix
    if not postfix:
        return base + "/" if len(path) > 1 and path.endswith("/") else base
    return base + postfix if postfix.startswith("/") else base + "/" + postfix
