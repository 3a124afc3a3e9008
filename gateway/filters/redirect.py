"""redirect: answer every request with a redirect to a configured URL (Kong's plugin).

Kong 3.9's ``redirect``: the upstream is never called; the answer is
``status_code`` (301 by default) with ``Location: location`` and the body
``redirecting`` (with no Content-Type, as Kong's ``default_type ''``). With
``keep_incoming_path`` the location's path and query are the request's: its path
as Kong's ``kong.request.get_path()`` gives it (normalised) and its raw query
string; the location's scheme, host, port and fragment stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from gateway.config import Settings, boolean, number, setting
from gateway.filters.base import Filter
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_safe_value
from gateway.proxy.request import routed_path

#: Kong's body of the answer.
BODY = b"redirecting"


def location_url(raw: str) -> str:
    """A URL with a scheme and a host (Kong's typedefs.url, in its words), fit for a header."""
    parts = urlsplit(raw)
    if not parts.netloc:
        raise ValueError("missing host in url")
    if not parts.scheme:
        raise ValueError("missing scheme in url")
    if not is_safe_value(raw):
        raise ValueError("has characters not allowed in a header value")
    return raw


@dataclass(frozen=True)
class RedirectConfig:
    status_code: int = setting(
        "GATEWAY_REDIRECT_STATUS_CODE", number(int, 100, 599), "301",
        "redirect: status of the answer (Kong's default 301; 302, 307, 308 are the usual "
        "others).")
    location: str = setting(
        "GATEWAY_REDIRECT_LOCATION", location_url, None,
        "redirect: the URL sent as Location (a scheme and a host: `https://example.com/new`).",
        required=True)
    keep_incoming_path: bool = setting(
        "GATEWAY_REDIRECT_KEEP_INCOMING_PATH", boolean, "false",
        "redirect: true puts the request's path and query string in place of the "
        "location's (`/a?b=1` to `https://example.com/a?b=1`).")


class Redirect(Filter):
    """Answers in the request phase; nothing goes upstream."""

    NAME = "redirect"
    PRIORITY = 779  # Kong's: after rate limiting, validation and transformation plugins
    VERSION = "1.0.0"
    Config = RedirectConfig

    def __init__(self, config: RedirectConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        #: The location's parts, split once: keep_incoming_path swaps its path and query.
        self.parts = urlsplit(config.location)

    def on_request(self, ex: Exchange) -> None:
        # a 204, 304 or 1xx goes without body or length (Exchange.respond)
        ex.respond(self.config.status_code, BODY)
        ex.headers["Location"] = self.location(ex)
        ex.outcomes[self.NAME] = "redirected"

    def location(self, ex: Exchange) -> str:
        """The configured location, with the request's path and query when asked (Kong's
        ada set_pathname and set_search: an empty query leaves none)."""
        if not self.config.keep_incoming_path:
            return self.config.location
        return urlunsplit((self.parts.scheme, self.parts.netloc, routed_path(ex.environ),
                           ex.environ.get("QUERY_STRING", ""), self.parts.fragment))
