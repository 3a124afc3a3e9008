"""request-size-limiting: refuse request bodies over GATEWAY_MAX_BODY_SIZE (Kong's plugin).

A declared Content-Length over the limit is answered 413 before the upstream is
called. A chunked body has no declared size, so the filter swaps the body
stream for one that counts: the read that passes the limit raises a 413
GatewayError while urllib3 is sending the body, which aborts the upstream
request (urllib3 closes that connection instead of pooling it) and the app
answers the 413 (417 with Expect: 100-continue). The body is never buffered
to be measured, unlike Kong's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from gateway.config import boolean, byte_size, setting
from gateway.filters.base import Filter
from gateway.proxy.errors import GatewayError
from gateway.proxy.exchange import Exchange

LIMIT_EXCEEDED = "Request size limit exceeded"
LENGTH_REQUIRED = "A valid Content-Length header is required"


@dataclass(frozen=True)
class RequestSizeLimitingConfig:
    max_body_size: int = setting(
        "GATEWAY_MAX_BODY_SIZE", byte_size, "128m",
        "request-size-limiting: largest request body in bytes (k, m, g suffixes); larger: 413 "
        "(417 with Expect: 100-continue). Kong's default 128 megabytes.")
    require_length: bool = setting(
        "GATEWAY_MAX_BODY_REQUIRE_LENGTH", boolean, "false",
        "request-size-limiting: answer 411 to a request with neither Content-Length nor a "
        "chunked body (Kong's require_content_length; a chunked body is still measured).")


class LimitedInput:
    """The client's body stream, failing with ``status`` (413, or 417 when the client sent
    Expect: 100-continue) once more than ``limit`` bytes came."""

    def __init__(self, stream: IO[bytes], limit: int, status: int = 413) -> None:
        self.stream = stream
        self.limit = limit
        self.status = status
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        # Ask for one byte past what is still allowed, so an exact-size body passes
        # and a larger one is caught without reading further.
        allowed = self.limit - self.received + 1
        data = self.stream.read(allowed if size is None or size < 0 else min(size, allowed))
        self.received += len(data)
        if self.received > self.limit:
            raise GatewayError(self.status, LIMIT_EXCEEDED)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class RequestSizeLimiting(Filter):
    """Checks Content-Length up front and counts chunked bodies as they stream upstream."""

    NAME = "request-size-limiting"
    PRIORITY = 951  # Kong's
    VERSION = "1.0.0"
    Config = RequestSizeLimitingConfig

    def on_request(self, ex: Exchange) -> None:
        environ = ex.environ
        length = environ.get("CONTENT_LENGTH")
        if length:  # gunicorn has checked it is a number
            if int(length) > self.config.max_body_size:
                ex.outcomes[self.NAME] = "rejected"
                ex.error(self.status(ex), LIMIT_EXCEEDED)
        elif environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            environ["wsgi.input"] = LimitedInput(environ["wsgi.input"],
                                                 self.config.max_body_size, self.status(ex))
        elif self.config.require_length:  # Kong: neither a length nor a chunked body
            ex.outcomes[self.NAME] = "rejected"
            ex.error(411, LENGTH_REQUIRED)

    @staticmethod
    def status(ex: Exchange) -> int:
        """413, or 417 when the client waits for 100-continue (Kong's answer)."""
        expects = ex.environ.get("HTTP_EXPECT", "").strip().lower() == "100-continue"
        return 417 if expects else 413
