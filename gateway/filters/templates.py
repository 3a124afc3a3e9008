"""Kong's ``$(...)`` template values, limited to plain references: no code runs.

Kong's request-transformer renders values with Penlight templates in a Lua
sandbox. Here a value is text with ``$(...)`` parts (the parentheses balanced, as
Penlight finds them), each one of:

- a reference: ``headers.NAME`` or ``headers["NAME"]``, ``query_params.NAME`` (or
  ``["NAME"]``), ``uri_captures.NAME`` or ``uri_captures[N]`` (a regex route's named
  or numbered group, ``[0]`` the whole match), optionally followed by
  ``or 'default'`` (used when the reference is missing);
- a quoted string, rendered as it is (``$('$(x)')`` is the text ``$(x)``: Kong's way
  to escape a template).

Anything else inside ``$(...)`` (a function call, arithmetic, ``shared``) is
refused when the configuration is loaded, with the value quoted. Rendering never
produces CR, LF or NUL: such a value counts as missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl

from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_safe_value

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_QUOTED = r"""(?:'[^'\\]*'|"[^"\\]*")"""
_REFERENCE = re.compile(
    rf"\s*(?:(headers|query_params|uri_captures)\s*(?:\.({_NAME})|\[\s*({_QUOTED})\s*\])"
    rf"|(uri_captures)\s*\[\s*(\d+)\s*\])"
    rf"(?:\s+or\s+({_QUOTED}))?\s*")
_LITERAL = re.compile(rf"\s*({_QUOTED})\s*")
#: What a reference reads, per source: (source, name) -> value or None.
Lookup = Callable[[str, str], str | None]
Part = str | tuple[str, str, str | None]


@dataclass(frozen=True)
class Template:
    """A value with ``$(...)`` references, parsed once; :meth:`render` fills them in."""

    #: Literal text and (source, name, default) references, in order.
    parts: tuple[Part, ...]

    @property
    def literal(self) -> str | None:
        """The value when it has no reference, else None."""
        return "".join(self.parts) if all(isinstance(p, str) for p in self.parts) else None

    def render(self, lookup: Lookup) -> str | None:
        """The value with its references filled in; None when one is missing (and has no
        default) or would put a control character into a header."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            source, name, default = part
            value = lookup(source, name)
            if value is None:
                value = default
            if value is None or not is_safe_value(value):
                return None
            out.append(value)
        return "".join(out)


def _expressions(value: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each ``$(...)`` with balanced parentheses (Penlight's ``%b()``); an
    unclosed one is text."""
    position = value.find("$(")
    while position != -1:
        depth, end = 0, None
        for i in range(position + 1, len(value)):
            depth += {"(": 1, ")": -1}.get(value[i], 0)
            if depth == 0:
                end = i + 1
                break
        if end is None:
            return
        yield position, end
        position = value.find("$(", end)


def _part(expression: str) -> Part:
    """One ``$(...)``'s part: the literal text of a quoted string, or a reference."""
    inner = expression[2:-1]
    if (literal := _LITERAL.fullmatch(inner)) is not None:
        return literal[1][1:-1]
    reference = _REFERENCE.fullmatch(inner)
    if reference is None:
        raise ValueError(f"template '{expression}' is not supported by this gateway: only "
                         "plain references (headers.NAME, headers[\"NAME\"], "
                         "query_params.NAME, uri_captures.NAME, uri_captures[N], optionally "
                         "`or 'default'`) and quoted strings are, no code")
    source, dotted, quoted, captures, index, default = reference.groups()
    name = dotted or (quoted[1:-1] if quoted else index)
    return (source or captures, name, default[1:-1] if default else None)


def parse(value: str) -> Template:
    """A Template; ValueError naming the expression when it is not a plain reference."""
    parts: list[Part] = []
    position = 0
    for start, end in _expressions(value):
        parts += [value[position:start], _part(value[start:end])]
        position = end
    parts.append(value[position:])
    return Template(tuple(p for p in parts if p != ""))


def request_lookup(ex: Exchange) -> Lookup:
    """References read from the client's request: its headers, query parameters and the
    route's captures (all as the client sent them, whatever the filters change)."""
    environ = ex.environ
    query: dict[str, str] | None = None

    def lookup(source: str, name: str) -> str | None:
        nonlocal query
        if source == "headers":
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                return environ.get(key)
            return environ.get("HTTP_" + key)
        if source == "uri_captures":
            return ex.uri_captures.get(name)
        if query is None:
            query = {}
            for key, value in parse_qsl(str(environ.get("QUERY_STRING", "")),
                                        keep_blank_values=True):
                query.setdefault(key, value)  # the first of repeated names, as Kong's
        return query.get(name)

    return lookup
