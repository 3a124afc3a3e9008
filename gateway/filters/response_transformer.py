"""response-transformer: change the response's headers and JSON body (Kong's plugin).

Headers, in Kong's order: ``remove`` (names), ``rename`` (``old:new``),
``replace`` (``name:value``, only a header that is present), ``add`` (only one
that is absent), ``append`` (another line). JSON body fields the same way, for
a response whose Content-Type is JSON: the body is read whole up to
``max_body`` through :meth:`Exchange.transform_body` (past it, or compressed, it
streams on unchanged and the log says so) and sent with its new
Content-Length. ``json_types`` give the type of the values of add, replace and
append, pair by pair: string (the default), number or boolean.

The env-var filter ``response-headers`` keeps its own simpler rules (add replaces);
this one is the Kong plugin's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gateway.config import Settings, byte_size, setting
from gateway.filters.base import Filter
from gateway.filters.request_transformer import append_value, texts
from gateway.jsoncodec import decode_json, encode_json
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_header_name, is_safe_value

log = logging.getLogger("gateway.filters")
ACTIONS = ("remove", "rename", "replace", "add", "append")
JSON_TYPES = ("string", "number", "boolean")
Pair = tuple[str, str]


def _pairs(raw: str) -> tuple[Pair, ...]:
    pairs = []
    for item in texts(raw):
        name, sep, value = item.partition(":")
        if not sep or not name:
            raise ValueError(f"'{item}' is not a name:value pair")
        pairs.append((name, value))
    return tuple(pairs)


def _types(raw: str) -> tuple[str, ...]:
    types = texts(raw)
    for kind in types:
        if kind not in JSON_TYPES:
            raise ValueError(f"json_types: expected one of: {', '.join(JSON_TYPES)}")
    return types


def _field(action: str, part: str) -> Any:
    env = f"GATEWAY_RESPONSE_TRANSFORMER_{action.upper()}_{part.upper()}"
    if part == "json_types":
        return setting(env, _types, "", f"response-transformer: the types (string, number, "
                       f"boolean) of the {action} JSON values, pair by pair.")
    what = "names removed" if action == "remove" else f"`name:value` pairs to {action}"
    return setting(env, texts if action == "remove" else _pairs, "",
                   f"response-transformer: {part} {what}, comma-separated or a JSON array.")


@dataclass(frozen=True)
class ResponseTransformerConfig:
    remove_headers: tuple[str, ...] = _field("remove", "headers")
    remove_json: tuple[str, ...] = _field("remove", "json")
    rename_headers: tuple[Pair, ...] = _field("rename", "headers")
    rename_json: tuple[Pair, ...] = _field("rename", "json")
    replace_headers: tuple[Pair, ...] = _field("replace", "headers")
    replace_json: tuple[Pair, ...] = _field("replace", "json")
    replace_json_types: tuple[str, ...] = _field("replace", "json_types")
    add_headers: tuple[Pair, ...] = _field("add", "headers")
    add_json: tuple[Pair, ...] = _field("add", "json")
    add_json_types: tuple[str, ...] = _field("add", "json_types")
    append_headers: tuple[Pair, ...] = _field("append", "headers")
    append_json: tuple[Pair, ...] = _field("append", "json")
    append_json_types: tuple[str, ...] = _field("append", "json_types")
    max_body: int = setting("GATEWAY_RESPONSE_TRANSFORMER_MAX_BODY", byte_size, "8m",
                            "response-transformer: largest JSON body transformed; a larger "
                            "one streams on unchanged (logged).")

    def __post_init__(self) -> None:
        names = [*self.remove_headers, *(n for a in ACTIONS[1:]
                                         for n, _ in getattr(self, f"{a}_headers"))]
        names += [new for _, new in self.rename_headers]
        for name in names:
            if not is_header_name(name):
                raise ValueError(f"'{name}' is not a valid header")
        for action in ACTIONS[2:]:
            for _, value in getattr(self, f"{action}_headers"):
                if not is_safe_value(value):
                    raise ValueError(f"{action}.headers: a value has characters not allowed "
                                     "in a header")


def _typed(value: str, kind: str) -> Any:
    """Kong's cast_value: a number (null when it is none), a boolean (true only for
    "true"), or the text."""
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if number.is_integer() and "." not in value else number
    if kind == "boolean":
        return value == "true"
    return value


def is_json(content_type: str | None) -> bool:
    """Kong's is_json_body: some media type of the (comma-separated) value is
    application/json or an application/*+json one (``application/problem+json``: Kong's
    mime_type.includes takes a +json suffix as JSON)."""
    for item in (content_type or "").split(","):
        kind, _, subtype = item.split(";")[0].strip().lower().partition("/")
        if kind == "application" and (subtype == "json" or subtype.endswith("+json")):
            return True
    return False


def _held(document: dict[str, Any], name: str) -> bool:
    """Lua's truth of ``json_body[name]``, which Kong's replace and add test: present and
    not false (a JSON null is cjson.null there, a true value)."""
    return name in document and document[name] is not False


class ResponseTransformer(Filter):
    """Kong's response-transformer on every response, the gateway's own included."""

    NAME = "response-transformer"
    PRIORITY = 800
    VERSION = "1.0.0"
    Config = ResponseTransformerConfig

    def __init__(self, config: ResponseTransformerConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.json_rules = any(getattr(config, f"{a}_json") for a in ACTIONS)
        self.values = {action: self._typed_values(action) for action in ACTIONS[2:]}

    def _typed_values(self, action: str) -> tuple[tuple[str, Any], ...]:
        types = getattr(self.config, f"{action}_json_types")
        return tuple((name, _typed(value, types[i] if i < len(types) else "string"))
                     for i, (name, value) in enumerate(getattr(self.config, f"{action}_json")))

    def on_response(self, ex: Exchange) -> None:
        self._headers(ex)
        if self.json_rules and is_json(ex.headers.get("Content-Type")) and ex.upstream_answer:
            ex.transform_body(self._body, self.config.max_body)

    def _headers(self, ex: Exchange) -> None:
        config, headers = self.config, ex.headers
        for name in config.remove_headers:
            headers.remove(name)
        for old, new in config.rename_headers:
            if old in headers:
                values = headers.getlist(old)
                headers.remove(old)
                headers.setlist(new, values)
        for name, value in config.replace_headers:
            if name in headers:
                headers[name] = value
        for name, value in config.add_headers:
            if name not in headers:
                headers[name] = value
        for name, value in config.append_headers:
            headers.add(name, value)

    def _body(self, body: bytes) -> bytes | None:
        """Kong's transform_json_body; None (unchanged, logged) when it is not a JSON
        object."""
        try:
            document = decode_json(body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            log.warning("response-transformer: body transform failed: failed parsing json "
                        "body")
            return None
        for name in self.config.remove_json:
            document.pop(name, None)
        for old, new in self.config.rename_json:
            if old in document and new:  # Kong's json_body[old] ~= nil: false moves too
                document[new] = document.pop(old)
        for name, value in self.values["replace"]:
            if _held(document, name) and value is not None:
                document[name] = value
        for name, value in self.values["add"]:
            if not _held(document, name) and value is not None:
                document[name] = value
        for name, value in self.values["append"]:
            if value is not None:
                append_value(document, name, value)
        return encode_json(document)
