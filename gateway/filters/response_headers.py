"""response-headers: add and remove response headers (a slice of Kong's response-transformer)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import names, pairs, setting
from gateway.filters.base import Filter
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_safe_value


def _safe_pairs(raw: str) -> tuple[tuple[str, str], ...]:
    parsed = pairs(":")(raw)
    for name, value in parsed:
        if not is_safe_value(value) or not is_safe_value(name) or " " in name:
            raise ValueError(f"header {name!r} has characters not allowed in a header")
    return parsed


@dataclass(frozen=True)
class ResponseHeadersConfig:
    add: tuple[tuple[str, str], ...] = setting(
        "GATEWAY_RESPONSE_HEADERS_ADD", _safe_pairs, "",
        "response-headers: `Name:value,...` set on every response (replacing the upstream's).")
    remove: tuple[str, ...] = setting(
        "GATEWAY_RESPONSE_HEADERS_REMOVE", names, "",
        "response-headers: comma-separated header names removed from every response.")


class ResponseHeaders(Filter):
    """Removes then sets response headers, on upstream and gateway-made responses alike."""

    NAME = "response-headers"
    PRIORITY = 800  # Kong's response-transformer
    VERSION = "1.0.0"
    Config = ResponseHeadersConfig

    def on_response(self, ex: Exchange) -> None:
        for name in self.config.remove:
            ex.headers.remove(name)
        for name, value in self.config.add:
            ex.headers[name] = value
