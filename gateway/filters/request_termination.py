"""request-termination: answer every request with a fixed status (Kong's plugin of that name).

Useful for maintenance windows; the upstream is never called.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import number, setting, text
from gateway.filters.base import Filter
from gateway.proxy.exchange import Exchange


@dataclass(frozen=True)
class RequestTerminationConfig:
    status: int = setting("GATEWAY_TERMINATION_STATUS", number(int, 100, 599), "503",
                          "request-termination: status answered to every request.")
    message: str = setting("GATEWAY_TERMINATION_MESSAGE", text, "Service unavailable",
                           "request-termination: message in the error body.")


class RequestTermination(Filter):
    """Answers in the request phase, so lower-priority filters and the upstream never run."""

    NAME = "request-termination"
    PRIORITY = 2  # Kong's
    VERSION = "1.0.0"
    Config = RequestTerminationConfig

    def on_request(self, ex: Exchange) -> None:
        ex.error(self.config.status, self.config.message)
