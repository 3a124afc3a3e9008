"""The Filter base class: Kong's plugin handler, one method per phase."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.config import Settings
from gateway.exchange import Exchange


class Filter:
    """A filter enabled through GATEWAY_FILTERS; override only the phases it needs.

    Request phase runs highest PRIORITY first (Kong's order), and stops at the
    first filter that answers; response and log phases run for every enabled
    filter in the same order.
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
