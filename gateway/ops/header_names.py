"""Request header names with ``_`` (``api_key:``) reach the gateway, unambiguously.

Kong (nginx's ``underscores_in_headers on``) accepts them: key-auth's
``key_names: [api_key]`` finds an ``api_key:`` header as well as ``api-key:``.
gunicorn drops them by default (``header_map = "drop"``) because WSGI spells
``api_key`` and ``api-key`` alike (``HTTP_API_KEY``), so two headers would be
read as one. gunicorn.conf.py therefore sets ``header_map = "dangerous"`` and
runs :func:`unambiguous` on each request's headers first (its ``pre_request``
hook, before the environ is built), which keeps a name with ``_`` only when
nothing can be confused by it:

- no other spelling of the same name is in the request (``X_Forwarded_For``
  beside the ``X-Forwarded-For`` nginx sets would be merged into it and read as
  the proxy's: dropped);
- it is not the spelling of a header that frames the body, that gunicorn
  reads itself (``SCRIPT_NAME``), or that a trusted proxy sets
  (``X-Forwarded-*``, ``X-Real-IP``): those are dropped even alone.

What is kept reaches the upstream under its dashed name (``Api-Key``), so a
rule that removes a header by its dashed name removes it in either spelling.
Standard library only: gunicorn.conf.py imports it in the master.
"""

from __future__ import annotations

#: Dashed, upper-case names whose underscore spelling is always dropped.
_GUARDED = frozenset({"CONTENT-LENGTH", "CONTENT-TYPE", "TRANSFER-ENCODING", "SCRIPT-NAME",
                      "X-REAL-IP", "PROXY-CONNECTION", "KEEP-ALIVE"})
_GUARDED_PREFIXES = ("X-FORWARDED-",)


def unambiguous(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` (gunicorn's upper-case names) without the underscore spellings that
    could be confused with another header; the same list when no name has ``_``."""
    if not any("_" in name for name, _ in headers):
        return headers
    spellings: dict[str, set[str]] = {}
    for name, _ in headers:
        spellings.setdefault(name.replace("_", "-"), set()).add(name)
    return [(name, value) for name, value in headers
            if "_" not in name or _safe(name.replace("_", "-"), spellings)]


def _safe(dashed: str, spellings: dict[str, set[str]]) -> bool:
    return (len(spellings[dashed]) == 1 and dashed not in _GUARDED
            and not dashed.startswith(_GUARDED_PREFIXES))
