"""request-termination: answer requests with a fixed response (Kong's plugin of that name).

Useful for maintenance windows; the upstream is never called. The answer is
Kong's: ``{"message": ...}`` (the configured message, else Kong's default for the
status), or a raw ``body`` with its ``content_type``, or with ``echo`` a JSON copy
of the request (for debugging). With ``trigger``, only requests carrying that
header or query parameter are terminated; the others pass on.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.config import ConfigError, boolean, number, setting, text
from gateway.filters.base import Filter
from gateway.jsoncodec import encode_json
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import header_name, is_safe_value

#: Kong's DEFAULT_RESPONSE: the message of a status when none is configured.
DEFAULT_MESSAGES = {401: "Unauthorized", 404: "Not found", 405: "Method not allowed",
                    500: "An unexpected error occurred", 502: "Bad Gateway",
                    503: "Service unavailable"}
JSON = "application/json; charset=utf-8"  # kong.response.exit's for a table body
#: Largest request body an echo copies (a debugging aid, not an upload path).
ECHO_MAX_BODY = 1024 * 1024
#: This process's stand-in for Kong's node id, in echoes.
_NODE_ID = str(uuid.uuid4())


def content_type(raw: str) -> str:
    if not raw or not is_safe_value(raw):
        raise ValueError("must be a media type without control characters")
    return raw


@dataclass(frozen=True)
class RequestTerminationConfig:
    status: int = setting("GATEWAY_TERMINATION_STATUS", number(int, 100, 599), "503",
                          "request-termination: status answered to every request.")
    message: str | None = setting(
        "GATEWAY_TERMINATION_MESSAGE", text, None,
        "request-termination: message of the `{\"message\": ...}` body; unset: Kong's default "
        "for the status (404 `Not found`, 503 `Service unavailable`...; none for others).")
    body: str | None = setting(
        "GATEWAY_TERMINATION_BODY", text, None,
        "request-termination: a raw body answered instead of the message.")
    content_type: str | None = setting(
        "GATEWAY_TERMINATION_CONTENT_TYPE", content_type, None,
        "request-termination: Content-Type of GATEWAY_TERMINATION_BODY.")
    echo: bool = setting(
        "GATEWAY_TERMINATION_ECHO", boolean, "false",
        "request-termination: answer a JSON copy of the request (headers included: for "
        "debugging only).")
    trigger: str | None = setting(
        "GATEWAY_TERMINATION_TRIGGER", header_name, None,
        "request-termination: terminate only requests with this header or query parameter; "
        "others pass on.")

    def __post_init__(self) -> None:
        # Kong's custom_validator, word for word.
        if self.message and (self.content_type or self.body):
            raise ConfigError("request-termination: message cannot be used with content_type "
                              "or body")
        if self.content_type and not self.body:
            raise ConfigError("request-termination: content_type requires a body")
        if self.echo and (self.content_type or self.body):
            raise ConfigError("request-termination: echo cannot be used with content_type and "
                              "body")


class RequestTermination(Filter):
    """Answers in the request phase, so lower-priority filters and the upstream never run."""

    NAME = "request-termination"
    PRIORITY = 2  # Kong's
    VERSION = "1.0.0"
    Config = RequestTerminationConfig

    def on_request(self, ex: Exchange) -> None:
        config = self.config
        if config.trigger is not None and not self.triggered(ex, config.trigger):
            return
        message = config.message or DEFAULT_MESSAGES.get(config.status)
        if config.echo:
            self.answer(ex, encode_json(echo(ex, message)), JSON)
        elif config.body is not None:
            self.answer(ex, config.body.encode(), config.content_type)
        else:
            self.answer(ex, encode_json({"message": message}) if message else b"", JSON)

    @staticmethod
    def triggered(ex: Exchange, name: str) -> bool:
        """True when the client sent the trigger as a header or a query parameter."""
        return name in ex.request.headers or name in ex.request.args

    def answer(self, ex: Exchange, body: bytes, media_type: str | None) -> None:
        # a 204, 304 or 1xx goes without body or length (Exchange.respond)
        ex.respond(self.config.status, body, content_type=media_type if body else None)
        ex.outcomes[self.NAME] = "terminated"


def echo(ex: Exchange, message: str | None) -> dict[str, Any]:
    """Kong's echo: the request as the gateway received it, and who answered."""
    request = ex.request
    host = urlsplit("//" + request.host).hostname or ""  # as Kong's get_host: no port
    port = ex.environ.get("SERVER_PORT", "")  # the port the client reached (get_port)
    args: dict[str, Any] = {}
    for name in request.args:
        values = [value or True for value in request.args.getlist(name)]
        args[name] = values[0] if len(values) == 1 else values
    headers: dict[str, Any] = {}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    return {
        "message": message,
        "kong": {"node_id": _NODE_ID, "worker_pid": os.getpid(),
                 "hostname": socket.gethostname()},
        "request": {
            "scheme": request.scheme, "host": host,
            "port": int(port) if port.isdigit() else (443 if request.scheme == "https" else 80),
            "headers": {k: v[0] if len(v) == 1 else v for k, v in headers.items()},
            "query": args, "raw_body": ex.read_body(ECHO_MAX_BODY).decode("utf-8", "replace"),
            "method": ex.method, "path": ex.path,
        },
        "matched_route": {"name": ex.route} if ex.route else None,
        "matched_service": {"name": ex.service} if ex.service else None,
    }
