"""Redirects that would leak the upstream: Location, Content-Location and Refresh URLs that
point at an upstream target are rewritten to the client-facing scheme and host.

nginx's ``proxy_redirect default``: ``http://10.0.0.5:8080/base/x`` from an
upstream configured as ``http://10.0.0.5:8080/base`` reaches the client as
``https://api.example.com/x``; an absolute path under the answering target's
prefix (``/base/x``) loses the prefix. Other URLs pass unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import SplitResult, urlsplit

from werkzeug.datastructures import Headers

from gateway.proxy.uri import DEFAULT_PORTS

#: Response headers holding a URL reference (Refresh: after its delay).
URL_HEADERS = ("Location", "Content-Location")
_REWRITTEN = frozenset({"location", "content-location", "refresh"})
# Refresh: "5; url=http://x/y", "0;URL='http://x/y'" (HTML's meta refresh syntax).
_REFRESH = re.compile(r"(\s*[\d.]+\s*[;,]\s*(?:url\s*=\s*)?['\"]?)(.*?)(['\"]?\s*)",
                      re.IGNORECASE)


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in, for comparison."""
    scheme = parts.scheme.lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or ""), port


def _under(path: str, prefix: str) -> str | None:
    """``path`` without ``prefix`` when it is under it (a whole segment), else None."""
    if not prefix:
        return path or "/"
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix):] or "/"
    return None


class RedirectRewriter:
    """Rewrites URL headers that point at any of ``target_urls`` to the client-facing origin."""

    def __init__(self, target_urls: Iterable[str]) -> None:
        self.targets = [(_origin(parts), parts.path.rstrip("/"))
                        for parts in map(urlsplit, target_urls)]

    def rewrite(self, headers: Headers, environ: Mapping[str, Any], answering: str) -> None:
        """Rewrite ``headers`` in place for the request ``environ`` answered by ``answering``.

        Most answers carry none of these headers: they cost one pass over the names.
        """
        if _REWRITTEN.isdisjoint(name.lower() for name, _ in headers):
            return
        # getlist(), not get(): get() raises and catches an exception when absent.
        values = {name: next(iter(headers.getlist(name)), None)
                  for name in (*URL_HEADERS, "Refresh")}
        client = f"{environ['wsgi.url_scheme']}://{_client_host(environ)}"
        answering_path = urlsplit(answering).path.rstrip("/")
        for name in URL_HEADERS:
            if values[name]:
                headers[name] = self._url(values[name], client, answering_path)
        refresh = values["Refresh"]
        if refresh and (match := _REFRESH.fullmatch(refresh)):
            url = self._url(match[2], client, answering_path)
            headers["Refresh"] = match[1] + url + match[3]

    def _url(self, value: str, client: str, answering_path: str) -> str:
        try:
            parts = urlsplit(value)
        except ValueError:  # e.g. an unbalanced [ : not a URL this gateway can map
            return value
        rest = value[value.index(parts.netloc) + len(parts.netloc):] if parts.netloc else value
        if not parts.netloc:
            if not value.startswith("/") or value.startswith("//") or not answering_path:
                return value  # relative, or under no prefix: already the client's
            tail = _under(parts.path, answering_path)
            return value if tail is None else tail + rest[len(parts.path):]
        for target_origin, prefix in self.targets:
            # A scheme-relative URL (//host/x) takes the target's scheme.
            origin = _origin(parts if parts.scheme else parts._replace(scheme=target_origin[0]))
            if origin == target_origin and (tail := _under(parts.path, prefix)) is not None:
                return client + tail + rest[len(parts.path):]
        return value


def _client_host(environ: Mapping[str, Any]) -> str:
    """The host[:port] the client used (ProxyFix's when proxies in front are trusted)."""
    host = environ.get("HTTP_HOST")
    if host:
        return str(host)
    name, port = environ["SERVER_NAME"], str(environ["SERVER_PORT"])
    default = str(DEFAULT_PORTS.get(environ["wsgi.url_scheme"]))
    return name if port == default else f"{name}:{port}"
