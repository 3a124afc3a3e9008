"""Kong's load-balancing algorithms: which target of an upstream a request goes to.

One class per algorithm of Kong's upstreams (kong/runloop/balancer/), chosen once at load
(:func:`balancer`), all with one method: :meth:`Balancer.candidates`, the targets to try
for one request in the order to try them (failover takes the next). A target's health is
asked only through ``Target.is_up(now)``: up ones come first, then the others, so that a
request is still tried when every target is cooling down.

- round-robin: the targets in turn (the list is already expanded by weight).
- consistent-hashing: Kong's ring (a Ketama continuum of ``slots`` points, the xxhash32 of
  ``"<host>::<port> <n>"`` for each of a target's 160-per-target-by-weight points, walked
  down from the xxhash32 of the request's hash value); the value comes from
  :class:`HashRule` (``hash_on`` then ``hash_fallback``). Built once, at load.
- least-connections: fewest requests in flight per weight, in this worker.
- latency: lowest EWMA of response time per weight (Kong's, a 10 s decay), in this worker.

The last two count what is in flight: :meth:`Balancer.begin` before a target is tried and
:meth:`Balancer.end` when its answer is over (or it failed); ``tracks`` says whether a
balancer needs those calls, so round-robin and hashing pay nothing for them.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus, urlsplit

import xxhash
from werkzeug.http import parse_cookie

from gateway.proxy.request import request_path

if TYPE_CHECKING:
    from gateway.proxy.exchange import Exchange
    from gateway.proxy.upstream import Target

#: Kong's algorithms (kong/db/schema/entities/upstreams.lua).
ALGORITHMS = ("consistent-hashing", "least-connections", "round-robin", "latency")
#: Kong's hash_on (and hash_fallback) values.
HASH_ON = ("none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture")
#: Points per target on the ring when all have the same weight (Kong's SERVER_POINTS).
SERVER_POINTS = 160
#: Kong's smallest ring, and the size used for ``slots`` below it.
MIN_POINTS = 1000
#: Kong's EWMA decay time of the latency balancer, in seconds.
DECAY_TIME = 10.0
#: The environ key of the Set-Cookie a cookie hash generated for this request.
HASH_COOKIE = "gateway.hash_cookie"
#: The environ key of the call that ends the request's count in a tracking balancer.
BALANCER_DONE = "gateway.balancer_done"


@dataclass(frozen=True)
class Balancing:
    """An upstream entity's balancing fields, as Kong's schema left them."""

    algorithm: str = "round-robin"
    hash_on: str = "none"
    hash_fallback: str = "none"
    hash_on_header: str | None = None
    hash_fallback_header: str | None = None
    hash_on_cookie: str | None = None
    hash_on_cookie_path: str = "/"
    hash_on_query_arg: str | None = None
    hash_fallback_query_arg: str | None = None
    hash_on_uri_capture: str | None = None
    hash_fallback_uri_capture: str | None = None
    slots: int = 10000


ROUND_ROBIN = Balancing()


class Balancer:
    """The interface: the targets to try for one request, best first."""

    #: True when :meth:`begin` and :meth:`end` must be called around each attempt.
    tracks = False
    #: True when a request may get a Set-Cookie from the balancer (:func:`set_hash_cookie`).
    sets_cookie = False

    def candidates(self, attempts: int, ex: Exchange | None) -> Iterator[Target]:
        """Up to ``attempts`` distinct targets for the request ``ex``, in the order to try."""
        raise NotImplementedError

    def begin(self, target: Target) -> float:
        """``target`` is being tried; returns the time it started (time.monotonic())."""
        return time.monotonic()

    def end(self, target: Target, started: float, answered: bool = True) -> None:
        """The attempt on ``target`` that began at ``started`` is over; ``answered``: it
        got an answer (False: it failed before one)."""


def _up_first(ordered: Sequence[Target], attempts: int) -> Iterator[Target]:
    now = time.monotonic()
    up = [t for t in ordered if t.is_up(now)]
    if len(up) < len(ordered):
        up += [t for t in ordered if not t.is_up(now)]
    return iter(up[:attempts])


class RoundRobin(Balancer):
    """Each request starts at the next target of the (weight-expanded) list."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = list(targets)
        self._turn = itertools.count()

    def candidates(self, attempts: int, ex: Exchange | None) -> Iterator[Target]:
        targets = self.targets
        if len(targets) == 1:
            return iter(targets)
        start = next(self._turn) % len(targets)
        return _up_first(targets[start:] + targets[:start], attempts)


def xxhash32(text: str) -> int:
    """The hash Kong's ring uses (luaxxhash: xxHash32, seed 0) of ``text`` as UTF-8."""
    return xxhash.xxh32_intdigest(text.encode("utf-8", "surrogateescape"))


def _host_port(target: Target) -> tuple[str, int]:
    parts = urlsplit(target.url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


class ConsistentHashing(Balancer):
    """Kong's consistent-hashing ring: a request's hash value picks a point of the ring,
    the first target at or below it takes the request (the next ones, walking down, are
    the failover order). Adding a target moves only the keys of the points it takes."""

    def __init__(self, targets: Sequence[Target], weights: Sequence[int], slots: int,
                 rule: HashRule) -> None:
        self.rule = rule
        self.sets_cookie = "cookie" in (rule.hash_on, rule.hash_fallback)
        self.points = slots if slots >= MIN_POINTS else MIN_POINTS
        self.slots, self.owners = ring(targets, weights, self.points)
        self.distinct = len(set(map(id, self.owners)))

    def candidates(self, attempts: int, ex: Exchange | None) -> Iterator[Target]:
        value = self.rule.value(ex) if ex is not None else None
        return self.walk(value or "", attempts)

    def walk(self, value: str, attempts: int) -> Iterator[Target]:
        """The targets in ring order from ``value``'s point: up ones, then the others."""
        owners = self.owners
        if not owners:
            return
        start = bisect.bisect_right(self.slots, xxhash32(value) % self.points) - 1
        now = time.monotonic()
        seen: set[int] = set()
        down: list[Target] = []
        given = 0
        for step in range(len(owners)):
            target = owners[(start - step) % len(owners)]
            if id(target) in seen:
                continue
            seen.add(id(target))
            if target.is_up(now):
                yield target
                given += 1
                if given == attempts:
                    return
            else:
                down.append(target)
            if len(seen) == self.distinct:
                break
        yield from down[:attempts - given]


def ring(targets: Sequence[Target], weights: Sequence[int], points: int
         ) -> tuple[list[int], list[Target]]:
    """Kong's continuum (consistent_hashing.lua afterHostUpdate): the taken slots in
    ascending order and their targets. Targets are placed sorted by host then port, each
    on ``floor(weight / total * count * 160)`` points (at least 1; ``count`` includes the
    targets of weight 0, which get none), a point that is taken already moves the problem
    forward to the next name."""
    live = sorted(((t, w) for t, w in zip(targets, weights, strict=True) if w > 0),
                  key=lambda tw: _host_port(tw[0]))
    total = sum(w for _, w in live)
    continuum: dict[int, Target] = {}
    for target, weight in live:
        host, port = _host_port(target)
        entries = max(1, math.floor(weight / total * len(targets) * SERVER_POINTS))
        i = 1
        while i <= entries and i <= points:
            index = xxhash32(f"{host}::{port} {i}") % points
            if index in continuum:
                entries += 1
            else:
                continuum[index] = target
            i += 1
    slots = sorted(continuum)
    return slots, [continuum[slot] for slot in slots]


class _Weighted(Balancer):
    """A balancer that scores each target per weight and tries the lowest first; ties go
    to the target picked least recently."""

    tracks = True

    def __init__(self, targets: Sequence[Target], weights: Sequence[int]) -> None:
        live = [(t, w) for t, w in zip(targets, weights, strict=True) if w > 0]
        self.targets = [t for t, _ in live]
        self.weights = {id(t): w for t, w in live}
        self._picked = {id(t): 0 for t in self.targets}
        self._turn = itertools.count(1)

    def score(self, target: Target, now: float) -> float:
        raise NotImplementedError

    def candidates(self, attempts: int, ex: Exchange | None) -> Iterator[Target]:
        now = time.monotonic()
        picked = self._picked
        ordered = sorted(self.targets, key=lambda t: (self.score(t, now), picked[id(t)]))
        return _up_first(ordered, attempts)

    def begin(self, target: Target) -> float:
        self._picked[id(target)] = next(self._turn)
        return time.monotonic()


class LeastConnections(_Weighted):
    """Kong's least-connections: the target with the lowest (in flight + 1) / weight, the
    +1 so that a heavier target is picked first on an idle balancer."""

    def __init__(self, targets: Sequence[Target], weights: Sequence[int]) -> None:
        super().__init__(targets, weights)
        self.in_flight = {id(t): 0 for t in self.targets}

    def score(self, target: Target, now: float) -> float:
        return (self.in_flight[id(target)] + 1) / self.weights[id(target)]

    def begin(self, target: Target) -> float:
        self.in_flight[id(target)] += 1
        return super().begin(target)

    def end(self, target: Target, started: float, answered: bool = True) -> None:
        self.in_flight[id(target)] -= 1


class Latency(_Weighted):
    """Kong's latency (EWMA) balancer: the target with the lowest decayed moving average of
    its response time, per weight. Every target starts at 0 (Kong's slow start: the mean of
    the others, all 0 at load); the average decays towards 0 with a 10 s time constant, so
    a target that was slow is tried again later."""

    def __init__(self, targets: Sequence[Target], weights: Sequence[int]) -> None:
        super().__init__(targets, weights)
        now = time.monotonic()
        self.ewma = {id(t): 0.0 for t in self.targets}
        self.touched = {id(t): now for t in self.targets}

    def _decayed(self, key: int, rtt: float, now: float) -> float:
        weight = math.exp(-max(now - self.touched[key], 0.0) / DECAY_TIME)
        return self.ewma[key] * weight + rtt * (1.0 - weight)

    def score(self, target: Target, now: float) -> float:
        return self._decayed(id(target), 0.0, now) / self.weights[id(target)]

    def end(self, target: Target, started: float, answered: bool = True) -> None:
        if not answered:
            return
        now = time.monotonic()
        key = id(target)
        self.ewma[key] = self._decayed(key, now - started, now)
        self.touched[key] = now


def balancer(balancing: Balancing, targets: Sequence[Target],
             weights: Sequence[int] | None) -> Balancer:
    """The balancer of ``balancing.algorithm`` over ``targets``; ``weights`` per target
    (None: round-robin over a list already expanded by weight)."""
    algorithm = balancing.algorithm
    if algorithm == "round-robin" or weights is None:
        return RoundRobin(targets)
    if algorithm == "consistent-hashing":
        return ConsistentHashing(targets, weights, balancing.slots, HashRule(balancing))
    if algorithm == "least-connections":
        return LeastConnections(targets, weights)
    return Latency(targets, weights)


class HashRule:
    """Kong's hash value of a request (get_value_to_hash in kong/runloop/balancer/init.lua):
    ``hash_on``, else ``hash_fallback``, else None (then Kong hashes the empty string).

    A value that is present but empty counts as found (``?arg=``), as in Kong. A cookie
    hash without its cookie generates one (a UUID) and asks for Set-Cookie on the
    response (:func:`set_hash_cookie`)."""

    def __init__(self, balancing: Balancing) -> None:
        self.hash_on = balancing.hash_on
        self.hash_fallback = balancing.hash_fallback if balancing.hash_on != "none" else "none"
        self._steps = [step for step in (
            _source(balancing.hash_on, balancing.hash_on_header, balancing.hash_on_query_arg,
                    balancing.hash_on_uri_capture, balancing),
            _source(self.hash_fallback, balancing.hash_fallback_header,
                    balancing.hash_fallback_query_arg, balancing.hash_fallback_uri_capture,
                    balancing),
        ) if step is not None]

    def value(self, ex: Exchange) -> str | None:
        for step in self._steps:
            found = step(ex)
            if found is not None:
                return found
        return None


def _source(hash_on: str, header: str | None, query_arg: str | None, uri_capture: str | None,
            balancing: Balancing) -> Callable[[Exchange], str | None] | None:
    """The reader of one hash_on kind, its name bound; None for ``none``."""
    if hash_on == "none":
        return None
    if hash_on == "consumer":
        return _consumer
    if hash_on == "ip":
        return _client_ip
    if hash_on == "header":
        return lambda ex: _header(ex, header or "")
    if hash_on == "cookie":
        return lambda ex: _cookie(ex, balancing.hash_on_cookie or "",
                                  balancing.hash_on_cookie_path)
    if hash_on == "path":
        return _path
    if hash_on == "query_arg":
        return lambda ex: query_arg_value(ex.upstream_query, query_arg or "")
    return lambda ex: ex.uri_captures.get(uri_capture or "")


def _consumer(ex: Exchange) -> str | None:
    return ex.consumer.id if ex.consumer is not None else None


def _client_ip(ex: Exchange) -> str | None:
    return ex.client_ip or None


def _header(ex: Exchange, name: str) -> str | None:
    """The request header as it goes upstream, repeated values joined with ", " (nginx's
    ``$http_<name>``)."""
    values = ex.upstream_headers.getlist(name)
    return ", ".join(values) if values else None


def _cookie(ex: Exchange, name: str, path: str) -> str:
    """The cookie's value; a new UUID when the request has none, set on the response."""
    value = parse_cookie(ex.environ.get("HTTP_COOKIE", "")).get(name)
    if value is None:
        value = str(uuid.uuid4())
        ex.environ[HASH_COOKIE] = (name, f"{name}={value}; Path={path}; Same-Site=Lax; "
                                         "HttpOnly")
    return value


def _path(ex: Exchange) -> str:
    return nginx_uri(request_path(ex.environ))


def nginx_uri(raw: str) -> str:
    """nginx's ``$uri`` of a raw request path: escapes decoded, ``//`` merged, ``.`` and
    ``..`` segments resolved (never above the root)."""
    decoded = unquote(raw)
    out: list[str] = []
    for segment in decoded.split("/")[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment not in (".", ""):
            out.append(segment)
    trailing = "/" if decoded.rsplit("/", 1)[-1] in ("", ".", "..") and out else ""
    return "/" + "/".join(out) + trailing


def query_arg_value(query: str, name: str) -> str | None:
    """Kong's query-arg hash value: the argument's value (``true`` when it has no ``=``),
    several values sorted and joined with ``,``; None when absent."""
    values = []
    for part in query.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if unquote_plus(key) == name:
            values.append(unquote_plus(value) if sep else "true")
    if not values:
        return None
    return values[0] if len(values) == 1 else ",".join(sorted(values))


def set_hash_cookie(ex: Exchange) -> None:
    """Add the Set-Cookie a cookie hash generated for this request (Kong's, word for word:
    ``name=value; Path=/; Same-Site=Lax; HttpOnly``), replacing the upstream's cookie of
    that name."""
    generated: Any = ex.environ.get(HASH_COOKIE)
    if generated is None:
        return
    name, cookie = generated
    prefix = name + "="
    kept = [c for c in ex.headers.getlist("Set-Cookie") if not c.startswith(prefix)]
    ex.headers.remove("Set-Cookie")
    for value in (*kept, cookie):
        ex.headers.add("Set-Cookie", value)
