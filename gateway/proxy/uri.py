"""Kong's request-path normalisation (kong/tools/uri.lua), and the check that keeps an
upstream path inside its service.

Kong routes on the normalised path and builds the upstream path from it: percent-escapes
of characters that are not reserved (RFC 3986 2.2) are decoded (``%2E`` is ``.``,
``%65`` is ``e``), escapes of reserved ones are kept, upper-cased (``%2f`` is ``%2F``),
``.`` and ``..`` segments are resolved (never above the root: ``/../a`` is ``/a``) and
runs of ``/`` merged. The upstream path is then escaped again (:func:`escape`).

What Kong's normalisation leaves in place is an *encoded* separator: ``/a%2F..%2Fb``
keeps its ``..``, and an upstream that decodes ``%2F`` (nginx does) before it resolves
dot segments would climb out of the service's path. :func:`climbs_out` finds those.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

#: The port of a URL that names none, by scheme.
DEFAULT_PORTS = {"http": 80, "https": 443}
#: RFC 3986 reserved characters (and ``%``): their escapes stay escaped.
RESERVED = frozenset("!*'();:@&=+$,/?%#[]")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
#: What Kong's escape() leaves as it is; anything else goes upstream as %XX.
_UNSAFE = re.compile(r"[^!#$&'()*+,/:;=?@\[\]A-Za-z0-9\-_.~%]")


def needs_normalizing(path: str) -> bool:
    """False when :func:`normalize` would return ``path`` unchanged and it needs no escaping
    a client could abuse: no escape, no ``//``, no ``/.``, no backslash. Four substring
    scans, no regex: the common path pays nothing more."""
    return "%" in path or "//" in path or "/." in path or "\\" in path


def _decode(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return match.group(0).upper() if char in RESERVED else char


def normalize(path: str) -> str:
    """Kong's ``normalize(path, true)``: unreserved escapes decoded, dot segments resolved
    (clamped at the root), ``//`` merged. ``path`` starts with ``/``."""
    if "%" in path:
        path = _ESCAPE.sub(_decode, path)
    if "/." not in path and "//" not in path:
        return path
    out: list[str] = []
    for segment in path[1:].split("/"):
        if segment == "..":
            if out:
                out.pop()
        elif segment not in (".", ""):
            out.append(segment)
    # A trailing "/", "/." or "/.." leaves the path ending with "/" (RFC 3986 5.2.4).
    last = path.rsplit("/", 1)[1]
    trailing = "/" if last in ("", ".", "..") and out else ""
    return "/" + "/".join(out) + trailing


def escape(path: str) -> str:
    """Kong's escape(): characters not allowed raw in a request target as %XX, escapes and
    reserved characters kept. A decoded escape is one character below 256 (the byte it
    stood for), so ``%C3%A9`` decoded goes back as ``%C3%A9``."""
    if _UNSAFE.search(path) is None:
        return path
    return _UNSAFE.sub(_percent, path)


def _percent(match: re.Match[str]) -> str:
    char = match.group(0)
    data = char.encode("latin-1") if ord(char) < 256 else char.encode()
    return "".join(f"%{byte:02X}" for byte in data)


def climbs_out(part: str) -> bool:
    """True when ``part`` (what the client adds after the service's path), once an upstream
    decodes its escapes (``%2F`` as ``/``) and reads ``\\`` as ``/`` as some servers do,
    has more ``..`` segments than segments before them. Empty segments count for nothing
    (an upstream may merge slashes)."""
    if "%" not in part and "\\" not in part:
        return False  # normalised: no dot segment is left that a decoder could reveal
    depth = 0
    for segment in unquote(part).replace("\\", "/").split("/"):
        if segment == "..":
            depth -= 1
            if depth < 0:
                return True
        elif segment not in ("", "."):
            depth += 1
    return False
