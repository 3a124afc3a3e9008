"""Kong's ``$(...)`` template values, limited to plain references: no code runs.

Kong's request-transformer renders values with Penlight templates in a Lua
sandbox. Here a value is text with ``$(REFERENCE)`` parts, where REFERENCE is
``headers.NAME``, ``headers["NAME"]``, ``query_params.NAME`` (or ``["NAME"]``),
optionally followed by ``or 'default'`` (used when the reference is missing).
Anything else inside ``$(...)`` (a function call, arithmetic, ``shared``,
``uri_captures``) is refused when the configuration is loaded, with the value
quoted. Rendering never produces CR, LF or NUL: such a value counts as missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from gateway.proxy.headers import is_safe_value

_PART = re.compile(r"\$\((.*?)\)")
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_QUOTED = r"""(?:'[^'\\]*'|"[^"\\]*")"""
_REFERENCE = re.compile(
    rf"\s*(headers|query_params)\s*(?:\.({_NAME})|\[\s*({_QUOTED})\s*\])"
    rf"(?:\s+or\s+({_QUOTED}))?\s*")
#: What a reference reads, per source: (source, name) -> value or None.
Lookup = Callable[[str, str], str | None]


@dataclass(frozen=True)
class Template:
    """A value with ``$(...)`` references, parsed once; :meth:`render` fills them in."""

    #: Literal text and (source, name, default) references, in order.
    parts: tuple[str | tuple[str, str, str | None], ...]

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


def parse(value: str) -> Template:
    """A Template; ValueError naming the expression when it is not a plain reference."""
    parts: list[str | tuple[str, str, str | None]] = []
    position = 0
    for found in _PART.finditer(value):
        parts.append(value[position:found.start()])
        reference = _REFERENCE.fullmatch(found[1])
        if reference is None:
            raise ValueError(f"template '{found[0]}' is not supported by this gateway: only "
                             "plain references (headers.NAME, headers[\"NAME\"], "
                             "query_params.NAME, optionally `or 'default'`) are, no code")
        source, dotted, quoted, default = reference.groups()
        parts.append((source, dotted or quoted[1:-1], default[1:-1] if default else None))
        position = found.end()
    parts.append(value[position:])
    return Template(tuple(p for p in parts if p != ""))


def request_lookup(environ: Mapping[str, object]) -> Lookup:
    """References read from the client's request: its headers and query parameters."""
    query: dict[str, str] | None = None

    def lookup(source: str, name: str) -> str | None:
        nonlocal query
        if source == "headers":
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                return environ.get(key)  # type: ignore[return-value]
            return environ.get("HTTP_" + key)  # type: ignore[return-value]
        if query is None:
            query = {}
            for key, value in parse_qsl(str(environ.get("QUERY_STRING", "")),
                                        keep_blank_values=True):
                query.setdefault(key, value)  # the first of repeated names, as Kong's
        return query.get(name)

    return lookup
