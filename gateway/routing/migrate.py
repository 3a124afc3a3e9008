"""Kong's migration of ``_format_version`` "1.1" and "2.1" files to "3.0", as Kong does on load.

Kong 3.0 changed route paths: before it, a path was a regex when it looked like one
and was percent-decoded; since, a regex path starts with ``~`` and paths are taken as
written. Kong migrates older files on load (kong/db/declarative/migrations/route_path.lua
with kong/db/migrations/migrate_path_280_300.lua), and so does this module, rule for rule:

- the paths of top-level routes and of routes nested in top-level services are migrated;
- a path made only of ``a-z A-Z 0-9 . - _ ~ / %`` is not a regex: it is normalized
  (Kong's ``normalize(path, true)``: percent-encoded characters other than reserved ones
  decoded, dot segments removed, repeated slashes merged);
- any other path is a regex: ``~`` goes in front, and its percent-encoded triplets are
  decoded (a reserved character stays encoded, upper-cased; a regex metacharacter is
  decoded escaped, ``%2E`` to ``\\.``).
"""

from __future__ import annotations

import re
from typing import Any

#: The versions Kong migrates, and the one this gateway reads.
OLD_VERSIONS = ("1.1", "2.1")
VERSION = "3.0"
_NOT_REGEX = re.compile(r"[a-zA-Z0-9.\-_~/%]*")
_TRIPLET = re.compile(r"%([0-9A-Fa-f]{2})")
#: RFC 3986's reserved characters, and %, which Kong's normalize leaves encoded.
_RESERVED = frozenset("!*'();:@&=+$,/?%#[]")
#: Reserved characters Kong's regex migration leaves encoded (its RESERVED_CHARACTERS).
_REGEX_RESERVED = frozenset("!#$%&'()*+,/:;=?@[]")
#: Regex metacharacters Kong's migration decodes escaped.
_REGEX_META = {".": r"\.", "^": r"\^", "-": r"\-", "{": r"\{", "}": r"\}", "\\": "\\\\",
               "|": r"\|"}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a parsed file) as Kong reads it: a 1.1 or 2.1 file's route paths
    migrated and its ``_format_version`` made "3.0"; other files unchanged."""
    if data.get("_format_version") not in OLD_VERSIONS:
        return data
    data = dict(data, _format_version=VERSION)
    routes = list(_records(data.get("routes")))
    for service in _records(data.get("services")):
        routes += _records(service.get("routes"))
    for route in routes:
        if isinstance(route.get("paths"), list):
            route["paths"] = [migrate_path(p) if isinstance(p, str) else p
                              for p in route["paths"]]
    return data


def _records(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def migrate_path(path: str) -> str:
    """One route path of a 1.x/2.x file as Kong 3.x reads it."""
    if _NOT_REGEX.fullmatch(path):
        return normalize(path)
    return "~" + _TRIPLET.sub(_regex_decode, path)


def _regex_decode(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    if char in _REGEX_RESERVED:
        return match.group(0).upper()
    return _REGEX_META.get(char, char)


def _decode(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return match.group(0).upper() if char in _RESERVED else char


def normalize(path: str) -> str:
    """Kong's ``normalize(path, true)`` (kong/tools/uri.lua): percent-decoded but for
    reserved characters, dot segments removed (RFC 3986 5.2.4), ``//`` merged."""
    if path in ("", "/"):
        return path
    if "%" in path:
        path = _TRIPLET.sub(_decode, path)
    if "." not in path and "//" not in path:
        return path
    out: list[str] = []
    rest = path
    while rest:
        if rest in ("/.", "/.."):
            if rest == "/.." and out:
                out.pop()
            rest = "/"
        elif rest in (".", ".."):
            rest = ""
        elif rest.startswith("../"):
            rest = rest[3:]
        elif rest.startswith(("./", "/./")):
            rest = rest[2:]
        elif rest.startswith("/../"):
            rest = rest[3:]
            if out:
                out.pop()
        elif rest.startswith("//"):
            rest = rest[1:]
        else:
            end = rest.find("/", 1)
            end = len(rest) if end < 0 else end
            out.append(rest[:end])
            rest = rest[end:]
    return "".join(out)
