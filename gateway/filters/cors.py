"""cors: Cross-Origin Resource Sharing headers, preflights answered here (Kong's plugin).

A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered
200 by the gateway with the allowed origin, methods, headers, credentials and
max age, and never reaches the upstream (unless GATEWAY_CORS_PREFLIGHT_CONTINUE).
Every other response gets Access-Control-Allow-Origin (and -Credentials,
-Expose-Headers). Origins are matched as Kong does: ``*``, exact origins
(scheme://host[:port], default ports ignored), or regular expressions (an entry
with characters other than letters, digits and ``.:/-``), matched against the
host when the entry has no ``:``; ``Vary: Origin`` whenever the answer depends
on the Origin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from werkzeug.datastructures import Headers

from gateway.config import Settings, boolean, kong_number, names, setting
from gateway.filters.base import Filter
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_safe_value
from gateway.proxy.uri import DEFAULT_PORTS

# Kong's default Access-Control-Allow-Methods.
DEFAULT_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT")
_PLAIN_ORIGIN = re.compile(r"[A-Za-z0-9.:/-]+")


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` lower-cased, the scheme's default port dropped."""
    parts = urlsplit(origin.strip())
    if not parts.scheme or not parts.hostname:
        return origin.strip().lower()
    try:
        port = parts.port
    except ValueError:
        return origin.strip().lower()
    shown = "" if port in (None, DEFAULT_PORTS.get(parts.scheme.lower())) else f":{port}"
    return f"{parts.scheme.lower()}://{parts.hostname}{shown}"


@dataclass(frozen=True)
class OriginRule:
    """One allowed origin: an exact origin, or a regex on the host or the whole origin."""

    exact: str | None = None
    pattern: re.Pattern[str] | None = None
    by_host: bool = False

    def matches(self, origin: str) -> bool:
        if self.exact is not None:
            return origin == self.exact
        assert self.pattern is not None
        subject = (urlsplit(origin).hostname or origin) if self.by_host else origin
        return self.pattern.fullmatch(subject) is not None


def origin_rules(raw: str) -> tuple[str, ...]:
    """Comma-separated origins: ``*``, ``https://app.example.com``, or a regex."""
    entries = names(raw)
    for entry in entries:
        if not _PLAIN_ORIGIN.fullmatch(entry) and entry != "*":
            try:
                re.compile(entry)
            except re.error:
                raise ValueError(f"'{entry}' is not a valid regex") from None  # Kong's words
    return entries


def _compile(entry: str) -> OriginRule:
    if _PLAIN_ORIGIN.fullmatch(entry):
        return OriginRule(exact=normalize_origin(entry))
    return OriginRule(pattern=re.compile(entry.removeprefix("^").removesuffix("$"), re.I),
                      by_host=":" not in entry)


def header_names(raw: str) -> tuple[str, ...]:
    """Comma-separated header or method names, safe to echo in a header."""
    parsed = names(raw)
    if not all(is_safe_value(name) and " " not in name for name in parsed):
        raise ValueError("must be comma-separated names without spaces or control characters")
    return parsed


def methods(raw: str) -> tuple[str, ...]:
    """Comma-separated methods, each one of Kong's nine (its schema's ``one_of``)."""
    parsed = names(raw)
    unknown = [method for method in parsed if method not in DEFAULT_METHODS]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: expected one of: {', '.join(DEFAULT_METHODS)}")
    return parsed


@dataclass(frozen=True)
class CorsConfig:
    origins: tuple[str, ...] = setting(
        "GATEWAY_CORS_ORIGINS", origin_rules, "*",
        "cors: allowed origins, comma-separated: `*`, exact origins such as "
        "`https://app.example.com`, or regular expressions (Kong's rules).")
    methods: tuple[str, ...] = setting(
        "GATEWAY_CORS_METHODS", methods, ",".join(DEFAULT_METHODS),
        "cors: Access-Control-Allow-Methods of preflight answers: of Kong's nine (GET, HEAD, "
        "PUT, PATCH, POST, DELETE, OPTIONS, TRACE, CONNECT), upper case as Kong's schema has them.")
    headers: tuple[str, ...] = setting(
        "GATEWAY_CORS_HEADERS", header_names, "",
        "cors: Access-Control-Allow-Headers of preflight answers; empty: echo the "
        "preflight's Access-Control-Request-Headers.")
    exposed_headers: tuple[str, ...] = setting(
        "GATEWAY_CORS_EXPOSED_HEADERS", header_names, "",
        "cors: Access-Control-Expose-Headers on actual (non-preflight) responses.")
    credentials: bool = setting(
        "GATEWAY_CORS_CREDENTIALS", boolean, "false",
        "cors: send Access-Control-Allow-Credentials: true (then `*` answers with the "
        "request's own Origin).")
    max_age: float | None = setting(
        "GATEWAY_CORS_MAX_AGE", kong_number(), None,
        "cors: Access-Control-Max-Age (seconds browsers cache a preflight), any number as "
        "Kong takes it; unset: not sent.")
    preflight_continue: bool = setting(
        "GATEWAY_CORS_PREFLIGHT_CONTINUE", boolean, "false",
        "cors: pass preflights to the upstream instead of answering them.")
    private_network: bool = setting(
        "GATEWAY_CORS_PRIVATE_NETWORK", boolean, "false",
        "cors: answer a preflight's `Access-Control-Request-Private-Network: true` with "
        "`Access-Control-Allow-Private-Network: true`.")
    allow_origin_absent: bool = setting(
        "GATEWAY_CORS_ALLOW_ORIGIN_ABSENT", boolean, "true",
        "cors: add the CORS headers to responses to requests without an Origin too.")


class Cors(Filter):
    """Answers preflights in the request phase; adds CORS headers in the response phase."""

    NAME = "cors"
    PRIORITY = 2000  # Kong's
    VERSION = "1.0.0"
    Config = CorsConfig

    def __init__(self, config: CorsConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.allow_all = not config.origins or "*" in config.origins
        self.rules = () if self.allow_all else tuple(_compile(e) for e in config.origins)
        # One plain origin is sent as it is, whatever the request's (Kong's shortcut).
        single = self.rules[0].exact if len(self.rules) == 1 else None
        self.single_origin = config.origins[0] if single is not None else None
        self.methods = ",".join(config.methods)

    def on_request(self, ex: Exchange) -> None:
        environ = ex.environ
        if (ex.method != "OPTIONS" or not environ.get("HTTP_ORIGIN")
                or not environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")):
            return
        ex.ctx["cors_preflight"] = True  # the upstream's or our own answer: left as it is
        if self.config.preflight_continue:
            return
        headers = Headers()
        self.allow_origin(headers, environ["HTTP_ORIGIN"])
        requested = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")
        allowed = ",".join(self.config.headers) or requested
        if allowed and is_safe_value(allowed):
            headers["Access-Control-Allow-Headers"] = allowed
        headers["Access-Control-Allow-Methods"] = self.methods
        if self.config.max_age is not None:
            headers["Access-Control-Max-Age"] = str(self.config.max_age)
        if (self.config.private_network
                and environ.get("HTTP_ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK") == "true"):
            headers["Access-Control-Allow-Private-Network"] = "true"
        ex.outcomes[self.NAME] = "preflight"
        ex.respond(200, headers=headers)

    def on_response(self, ex: Exchange) -> None:
        if ex.ctx.get("cors_preflight"):
            return
        origin = ex.environ.get("HTTP_ORIGIN")
        if not origin and not self.config.allow_origin_absent:
            return
        self.allow_origin(ex.headers, origin)
        if self.config.exposed_headers:
            ex.headers["Access-Control-Expose-Headers"] = ",".join(self.config.exposed_headers)

    def allow_origin(self, headers: Headers, origin: str | None) -> None:
        """Set Access-Control-Allow-Origin (and -Credentials) for ``origin``, as Kong does."""
        if origin is not None and not is_safe_value(origin):
            origin = None
        if self.allow_all:
            if self.config.credentials and origin:
                add_vary(headers, "Origin")  # credentials forbid `*`: echo the origin
                headers["Access-Control-Allow-Origin"] = origin
                headers["Access-Control-Allow-Credentials"] = "true"
            else:
                headers["Access-Control-Allow-Origin"] = "*"
            return
        add_vary(headers, "Origin")
        allowed = self.single_origin or self.matching_origin(origin)
        if allowed is None:
            headers.remove("Access-Control-Allow-Origin")
        else:
            headers["Access-Control-Allow-Origin"] = allowed
        if self.config.credentials:  # Kong: whether the origin is allowed or not
            headers["Access-Control-Allow-Credentials"] = "true"

    def matching_origin(self, origin: str | None) -> str | None:
        """The request's origin (normalized) if a rule allows it."""
        if not origin:
            return None
        normalized = normalize_origin(origin)
        return normalized if any(rule.matches(normalized) for rule in self.rules) else None


def add_vary(headers: Headers, name: str) -> None:
    """Add ``name`` to the Vary header unless it is listed already (or Vary is ``*``)."""
    listed = {token.strip().lower() for value in headers.getlist("Vary")
              for token in value.split(",")}
    if name.lower() not in listed and "*" not in listed:
        headers.add("Vary", name)
