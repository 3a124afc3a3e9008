"""The Filter base class: Kong's plugin handler, one method per phase."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.config import Settings
from gateway.proxy.exchange import Exchange


class Filter:
    """A filter enabled through GATEWAY_FILTERS; override only the phases it needs.

    Filters written outside the gateway import this class, and all else they use,
    from :mod:`gateway.pdk`; their settings come from ``GATEWAY_<NAME>_<FIELD>``.

    Order: every phase runs highest PRIORITY first (Kong's order). The request
    phase stops at the first filter that answers (``ex.respond``/``ex.error``);
    the response and log phases run for every enabled filter, on the gateway's
    own answers (401, 429, 502, 504...) too.

    Response-phase re-run: a filter whose ``on_response`` replaces the response
    (calls ``ex.respond`` or ``ex.error``) makes the filters before it run their
    ``on_response`` again on the new answer, so it still gets their headers
    (CORS, rate-limit). ``on_response`` must therefore be safe to run twice on
    one request: set headers rather than append, pop from ``ex.ctx`` once.

    Body phase: the upstream body streams through after ``on_response``. A
    filter that needs to see it appends a wrapper to ``ex.body_wrappers`` in
    ``on_response``: a function taking the iterator of body chunks and returning
    one (yield each chunk on; never hold the whole body). Wrappers apply in the
    order added; one whose iterator ends normally saw the whole body, and one
    cut short (client gone, upstream failed) is closed early. Bodies the gateway
    answers itself (``ex.body`` set) are not wrapped.

    Whole body (PDK 1.1): ``ex.transform_body(transform, max_bytes)`` in ``on_response``
    replaces the upstream's body with ``transform(body)``, read whole up to ``max_bytes``
    and sent with its new Content-Length (past the bound, or compressed, it streams on
    unchanged). In ``on_request``, ``ex.set_body(body)``, ``ex.upstream_method`` and
    ``ex.upstream_path`` change what goes upstream.

    Contracts between filters are typed attributes of the Exchange, not ``ctx``
    keys: ``ex.consumer`` (set by authentication, read by rate limiting and
    caching), ``ex.upstream_query`` (the query string that goes upstream) and
    ``ex.upstream_response_headers`` (the upstream's headers as received).
    ``ex.ctx`` is the filter's own per-request space, keyed by its NAME.
    ``ex.read_body(max_bytes)`` gives the request body to a filter that needs it
    (413 past the size); it still goes upstream unchanged.
    """

    #: The name used in GATEWAY_FILTERS.
    NAME: ClassVar[str]
    #: Kong's plugin priority: higher runs earlier.
    PRIORITY: ClassVar[int]
    VERSION: ClassVar[str]
    #: The frozen settings dataclass of this filter (Kong's schema), loaded from env.
    Config: ClassVar[type]

    def __init__(self, config: Any, settings: Settings) -> None:
        self.config = config
        self.settings = settings

    def on_request(self, ex: Exchange) -> None:
        """Kong's access phase: read or change the request, or answer with ex.respond/error."""

    def on_response(self, ex: Exchange) -> None:
        """Kong's header_filter: change status and headers before the first byte goes out."""

    def on_log(self, ex: Exchange) -> None:
        """Kong's log phase: after the last byte went out or the client left."""

    @classmethod
    def implements(cls, phase: str) -> bool:
        """True if this filter overrides ``phase``, so the app skips no-op calls."""
        return getattr(cls, phase) is not getattr(Filter, phase)
