"""request-callout's ``$(...)`` values: Kong's expressions, limited to plain references.

Kong evaluates any Lua inside ``$(...)``; here only references are accepted, so a
config cannot run code: ``callouts.NAME.response.body.a.b``,
``callouts.NAME.response.headers.X``, ``callouts.NAME.response.status``, the client
request's ``headers.X``, ``query.X`` (or Kong's ``query_params.X``), ``uri_captures.X``
and ``consumer.id`` / ``consumer.username``. Kong's ``kong.ctx.shared.callouts.`` prefix
is accepted for ``callouts.``; a name may be written ``headers["x-api-key"]``. Anything
else is refused at load, naming the place.

A value made of one reference alone keeps the referenced JSON value (an object, a
number) where one fits (body fields); in text, values are interpolated (objects as
JSON, a missing value as nothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.jsoncodec import encode_json

_SEGMENT = re.compile(r"""\.?([A-Za-z0-9_-]+)|\[(?:"([^"]*)"|'([^']*)'|([0-9]+))\]""")
_SHARED = "kong.ctx.shared."
#: The client request's sources: name in the reference -> kind.
_REQUEST_SOURCES = {"headers": "header", "query": "query", "query_params": "query",
                    "uri_captures": "capture"}
_CONSUMER_FIELDS = ("id", "username")
_PARTS = ("status", "headers", "body")


class Scope(Protocol):
    """What references read: the client request and the callouts' responses so far."""

    def header(self, name: str) -> str | None: ...
    def query(self, name: str) -> str | None: ...
    def capture(self, name: str) -> str | None: ...
    def consumer(self, field: str) -> str | None: ...
    def callout(self, name: str) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class Ref:
    """One reference: its kind (header, query, capture, consumer, callout) and path."""

    kind: str
    path: tuple[str, ...]

    @property
    def callout(self) -> str | None:
        """The callout this reference reads, if any."""
        return self.path[0] if self.kind == "callout" else None

    def value(self, scope: Scope) -> Any:
        """The referenced value, or None when it is not there."""
        if self.kind != "callout":
            reader: Callable[[str], Any] = getattr(scope, self.kind)
            return reader(self.path[0])
        response = scope.callout(self.path[0])
        if response is None:
            return None
        part, rest = self.path[1], self.path[2:]
        value = response.get(part)
        if part == "headers" and rest:
            wanted = rest[0].lower()
            found = next((v for k, v in (value or {}).items() if k.lower() == wanted), None)
            return found if len(rest) == 1 else None
        for name in rest:
            value = _step(value, name)
        return value


def _step(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return value.get(name)
    if isinstance(value, list) and name.isdigit() and int(name) < len(value):
        return value[int(name)]
    return None


def as_text(value: Any) -> str:
    """A value in text: strings as they are, None as nothing, others as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return encode_json(value).decode()


@dataclass(frozen=True)
class Const:
    """A typed value written in the config (a number, a boolean): kept as it is."""

    constant: Any

    def value(self, scope: Scope) -> Any:
        return self.constant


@dataclass(frozen=True)
class Template:
    """A config value with its references: literal text and Refs in order (or a Const)."""

    parts: tuple[str | Ref | Const, ...]

    @classmethod
    def of(cls, constant: Any) -> Template:
        """A template that is the typed value ``constant``."""
        return cls((Const(constant),))

    @property
    def refs(self) -> tuple[Ref, ...]:
        return tuple(part for part in self.parts if isinstance(part, Ref))

    @property
    def literal(self) -> str | None:
        """The text when the template holds no reference."""
        return None if self.refs else "".join(as_text(p.constant) if isinstance(p, Const)
                                              else p for p in self.parts)  # type: ignore

    def text(self, scope: Scope, escape: Callable[[str], str] | None = None) -> str:
        """The string with each reference's value in its place (``escape``d if given)."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = as_text(part.value(scope))
                out.append(escape(value) if escape and isinstance(part, Ref) else value)
        return "".join(out)

    def value(self, scope: Scope) -> Any:
        """The referenced value itself for a lone reference, else the text."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            return self.parts[0].value(scope)
        return self.text(scope)


def template(raw: str, where: str) -> Template:
    """Parse ``raw``; ValueError naming ``where`` for anything but plain references."""
    parts: list[str | Ref | Const] = []
    at = 0
    while (start := raw.find("$(", at)) >= 0:
        end = _closing(raw, start + 2)
        if end < 0:
            raise ValueError(f"{where}: unbalanced $( ... ); only $(reference) is supported")
        if start > at:
            parts.append(raw[at:start])
        parts.append(reference(raw[start + 2:end].strip(), where))
        at = end + 1
    if raw[at:]:
        parts.append(raw[at:])
    return Template(tuple(parts))


def _closing(raw: str, at: int) -> int:
    """The index of the ``)`` closing a ``$(`` whose body starts at ``at``; -1 if none."""
    depth = 1
    for index in range(at, len(raw)):
        depth += {"(": 1, ")": -1}.get(raw[index], 0)
        if depth == 0:
            return index
    return -1


def reference(expression: str, where: str) -> Ref:
    """One ``$(...)`` body as a Ref; ValueError if it is not a plain reference."""
    path = _path(expression.removeprefix(_SHARED))
    refused = ValueError(
        f"{where}: $({expression}) is not supported by this gateway: only references "
        "(callouts.NAME.response.body.FIELD, .response.headers.NAME, .response.status, "
        "headers.NAME, query.NAME, uri_captures.NAME, consumer.id, consumer.username), "
        "no Lua")
    if path is None or len(path) < 2:
        raise refused
    head, rest = path[0], path[1:]
    if head in _REQUEST_SOURCES and len(rest) == 1:
        return Ref(_REQUEST_SOURCES[head], rest)
    if head == "consumer" and rest in ((f,) for f in _CONSUMER_FIELDS):
        return Ref("consumer", rest)
    if head == "callouts" and len(rest) >= 3 and rest[1] == "response" and rest[2] in _PARTS:
        name, part, tail = rest[0], rest[2], rest[3:]
        if (part == "status" and tail) or (part == "headers" and len(tail) > 1):
            raise refused
        return Ref("callout", (name, part, *tail))
    raise refused


def _path(expression: str) -> tuple[str, ...] | None:
    """``a.b["c d"][0]`` as its names, or None if it is anything else."""
    names: list[str] = []
    at = 0
    while at < len(expression):
        found = _SEGMENT.match(expression, at)
        first = found.group(0)[:1] if found else ""
        if found is None or (first in ".[" if at == 0 else first not in ".["):
            return None
        names.append(next(g for g in found.groups() if g is not None))
        at = found.end()
    return tuple(names) if names else None
