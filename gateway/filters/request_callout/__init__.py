"""request-callout: Kong 3.10's declarative third-party calls, in parallel, plus our
``response`` section (see :mod:`.handler`; the config in :mod:`.plan`)."""

from gateway.filters.request_callout.handler import RequestCallout, RequestCalloutConfig

__all__ = ["RequestCallout", "RequestCalloutConfig"]
