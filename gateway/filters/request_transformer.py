"""request-transformer: change the request before it goes upstream (Kong's plugin).

Kong's order: the URI (``replace.uri``), the method (``http_method``), headers,
body, query string; within each, remove, rename, replace, add, append:

- remove: the names go; rename ``old:new``: the value moves to the new name (replacing
  what the new name held);
- replace ``name:value``: only a name that is present gets the value;
- add ``name:value``: only a name that is absent gets it;
- append ``name:value``: another value for the name (a header repeated, a query
  parameter or form field repeated, a JSON field made an array).

Values may hold plain references (``$(headers.x)``, ``$(query_params.y)``,
``$(uri_captures.z)``, see :mod:`gateway.filters.templates`); a rule whose reference
is missing is skipped.
Bodies are changed for JSON, ``multipart/form-data`` (rename, remove, replace and
add of its parts, as Kong's; :mod:`gateway.filters.multipart`) and
``application/x-www-form-urlencoded`` requests, read whole up to ``max_body`` (413
past it) and sent with their new length; other bodies stream unchanged. With
``http_method`` GET, HEAD or TRACE, a form-encoded body's fields join the query
string, as Kong's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from gateway.config import Settings, byte_size, setting
from gateway.filters import multipart
from gateway.filters.base import Filter
from gateway.filters.templates import Lookup, Template, parse, request_lookup
from gateway.jsoncodec import decode_json, encode_json
from gateway.proxy.errors import GatewayError
from gateway.proxy.exchange import Exchange
from gateway.proxy.headers import is_header_name

log = logging.getLogger("gateway.request_transformer")
#: The 400 for a multipart/form-data body that cannot be read.
BAD_MULTIPART = "Bad request: the multipart/form-data body cannot be read"

ACTIONS = ("remove", "rename", "replace", "add", "append")
PARTS = ("headers", "querystring", "body")
#: Methods Kong's typedefs.http_method allows.
METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT")
Rule = tuple[str, Template | None]


def texts(raw: str) -> tuple[str, ...]:
    """A JSON array of strings (values may hold commas), or a comma-separated list."""
    if raw.lstrip().startswith("["):
        items = json.loads(raw)
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError("must be a JSON array of strings")
        return tuple(items)
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def names(raw: str) -> tuple[Rule, ...]:
    """remove rules: names."""
    return tuple((name, None) for name in texts(raw))


def pairs(raw: str) -> tuple[Rule, ...]:
    """rename/replace/add/append rules: ``name:value``, the value a template."""
    rules = []
    for item in texts(raw):
        name, sep, value = item.partition(":")
        if not sep or not name or not value:
            raise ValueError(f"key '{name}' has no value")  # Kong's check_for_value
        rules.append((name, parse(value)))
    return tuple(rules)


def _method(raw: str) -> str:
    if raw.upper() not in METHODS:
        raise ValueError(f"invalid value: {raw}")  # Kong's typedefs.http_method
    return raw.upper()


def _field(action: str, part: str) -> object:
    env = f"GATEWAY_REQUEST_TRANSFORMER_{action.upper()}_{part.upper()}"
    what = "names removed" if action == "remove" else f"`name:value` rules to {action}"
    return setting(env, names if action == "remove" else pairs, "",
                   f"request-transformer: {part} {what}, comma-separated or a JSON array.")


@dataclass(frozen=True)
class RequestTransformerConfig:
    http_method: str | None = setting(
        "GATEWAY_REQUEST_TRANSFORMER_HTTP_METHOD", _method, None,
        "request-transformer: the method sent upstream instead of the client's.")
    replace_uri: Template | None = setting(
        "GATEWAY_REQUEST_TRANSFORMER_REPLACE_URI", parse, None,
        "request-transformer: the whole upstream path, instead of the route's (Kong's "
        "replace.uri; may hold references).")
    remove_headers: tuple[Rule, ...] = _field("remove", "headers")
    remove_querystring: tuple[Rule, ...] = _field("remove", "querystring")
    remove_body: tuple[Rule, ...] = _field("remove", "body")
    rename_headers: tuple[Rule, ...] = _field("rename", "headers")
    rename_querystring: tuple[Rule, ...] = _field("rename", "querystring")
    rename_body: tuple[Rule, ...] = _field("rename", "body")
    replace_headers: tuple[Rule, ...] = _field("replace", "headers")
    replace_querystring: tuple[Rule, ...] = _field("replace", "querystring")
    replace_body: tuple[Rule, ...] = _field("replace", "body")
    add_headers: tuple[Rule, ...] = _field("add", "headers")
    add_querystring: tuple[Rule, ...] = _field("add", "querystring")
    add_body: tuple[Rule, ...] = _field("add", "body")
    append_headers: tuple[Rule, ...] = _field("append", "headers")
    append_querystring: tuple[Rule, ...] = _field("append", "querystring")
    append_body: tuple[Rule, ...] = _field("append", "body")
    max_body: int = setting("GATEWAY_REQUEST_TRANSFORMER_MAX_BODY", byte_size, "8m",
                            "request-transformer: largest body read to transform (413 past it).")

    def __post_init__(self) -> None:
        for action in ACTIONS:
            for name, _ in getattr(self, f"{action}_headers"):
                if not is_header_name(name):
                    raise ValueError(f"'{name}' is not a valid header")
        if self.replace_uri is not None and (self.replace_uri.literal or "/")[:1] != "/":
            raise ValueError("replace.uri must start with /")

    def rules(self, part: str) -> dict[str, tuple[Rule, ...]]:
        return {action: getattr(self, f"{action}_{part}") for action in ACTIONS}


#: Ordered (name, value) pairs; a multipart part's value is its Part until a rule sets one.
Fields = list[tuple[Any, Any]]


def transform(fields: Fields, rules: dict[str, tuple[Rule, ...]], lookup: Lookup,
              same: Callable[[str, str], bool], has_content: bool = True) -> bool:
    """Apply the rules to ordered (name, value) pairs in place, Kong's way; True if any
    applied. ``same`` compares names (case-insensitive for headers). remove, rename and
    replace need ``has_content`` (Kong skips them on an empty body)."""
    changed = False

    def present(name: str) -> list[int]:
        return [i for i, (n, _) in enumerate(fields) if same(n, name)]

    def rendered(template: Template | None) -> str | None:
        return template.render(lookup) if template is not None else None

    for name, _ in rules["remove"] if has_content else ():
        found = present(name)
        fields[:] = [f for i, f in enumerate(fields) if i not in found]
        changed |= bool(found)
    for old, template in rules["rename"] if has_content else ():
        new = rendered(template)
        found = present(old)
        if new is not None and found and new != old:
            # Kong's rename on its tables: the value moves to the new name, replacing
            # what the new name held (a case-only rename of a header replaces nothing).
            replaced = [i for i in present(new) if i not in found]
            for i in found:
                fields[i] = (new, fields[i][1])
            if replaced:
                fields[:] = [f for i, f in enumerate(fields) if i not in replaced]
            changed = True
    for name, template in rules["replace"] if has_content else ():
        value, found = rendered(template), present(name)
        if value is not None and found:
            fields[:] = [f for i, f in enumerate(fields) if i not in found[1:]]
            fields[found[0]] = (fields[found[0]][0], value)
            changed = True
    for name, template in rules["add"]:
        value = rendered(template)
        if value is not None and not present(name):
            fields.append((name, value))
            changed = True
    for name, template in rules["append"]:
        value = rendered(template)
        if value is not None:
            fields.append((name, value))
            changed = True
    return changed


def append_value(document: dict[str, Any], name: str, value: Any) -> None:
    """Kong's append_value on a JSON object: the field becomes (or grows) an array."""
    old = document.get(name)
    document[name] = [*old, value] if isinstance(old, list) else \
        [value] if old is None else [old, value]


def _part(name: str, value: multipart.Part | str) -> multipart.Part:
    """A multipart field after the rules: its own part (under its new name), or a plain
    field for a value a rule set (Kong's set_simple)."""
    if isinstance(value, str):
        return multipart.field(name, value)
    return value if value.name == name else value.renamed(name)


def _lower_same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def _exact(a: str, b: str) -> bool:
    return a == b


class RequestTransformer(Filter):
    """Changes the upstream request's path, method, headers, body and query string."""

    NAME = "request-transformer"
    PRIORITY = 801
    VERSION = "1.0.0"
    Config = RequestTransformerConfig

    def __init__(self, config: RequestTransformerConfig, settings: Settings) -> None:
        super().__init__(config, settings)
        self.header_rules = config.rules("headers")
        self.query_rules = config.rules("querystring")
        self.body_rules = config.rules("body")
        self.query_used = any(self.query_rules.values())
        self.body_used = any(self.body_rules.values())
        rules = self.body_rules
        self.multipart_steps = (  # Kong's multipart order, and no append there
            {**{action: () for action in ACTIONS}, "rename": rules["rename"]},
            {**rules, "rename": (), "append": ()})
        self.multipart_used = any(any(step.values()) for step in self.multipart_steps)

    def on_request(self, ex: Exchange) -> None:
        lookup = request_lookup(ex)
        config = self.config
        if config.replace_uri is not None:
            path = config.replace_uri.render(lookup)
            if path is not None:
                ex.upstream_path = path
        query = parse_qsl(ex.upstream_query, keep_blank_values=True)
        query_changed = False
        if config.http_method is not None:
            ex.upstream_method = config.http_method
            if config.http_method in ("GET", "HEAD", "TRACE") and self._form(ex):
                query += parse_qsl(ex.read_body(config.max_body).decode("latin-1"),
                                   keep_blank_values=True)
                query_changed = True
        headers = list(ex.upstream_headers.items())
        if transform(headers, self.header_rules, lookup, _lower_same):
            ex.upstream_headers.clear()
            ex.upstream_headers.extend(headers)
        if self.body_used:
            self._transform_body(ex, lookup)
        if self.query_used:
            query_changed |= transform(query, self.query_rules, lookup, _exact)
        if query_changed:
            ex.upstream_query = urlencode(query)

    @staticmethod
    def _form(ex: Exchange) -> bool:
        return "application/x-www-form-urlencoded" in ex.environ.get("CONTENT_TYPE", "").lower()

    def _transform_body(self, ex: Exchange, lookup: Lookup) -> None:
        # The Content-Type going upstream: the header rules (which ran first) may set it.
        # Kong's order of the checks: JSON, multipart, form-encoded.
        kind = (ex.upstream_headers.get("Content-Type") or "").lower()
        if "application/json" in kind:
            new = self._json(ex.read_body(self.config.max_body), lookup)
        elif "multipart/form-data" in kind:
            if not self.multipart_used:
                return  # append rules only: none applies to multipart (Kong's)
            new = self._multipart(ex, lookup)
        elif "application/x-www-form-urlencoded" in kind:
            body = ex.read_body(self.config.max_body)
            fields = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
            changed = transform(fields, self.body_rules, lookup, _exact, bool(body))
            new = urlencode(fields).encode("latin-1") if changed else None
        else:
            return  # other bodies stream on unchanged (docs/filters/request-transformer.md)
        if new is not None:
            ex.set_body(new)

    def _multipart(self, ex: Exchange, lookup: Lookup) -> bytes | None:
        """Kong's transform_multipart_body: rename, then remove, replace and add (no append).

        A body that is not multipart with its Content-Type's boundary is a 400: sent on
        as it is, a part a remove rule is there to drop could reach the upstream (Kong's
        lenient parser finds no parts in it and sends an empty body)."""
        body = ex.read_body(self.config.max_body)
        content_type = ex.upstream_headers["Content-Type"]
        mark = multipart.boundary(content_type)
        try:
            parts = multipart.decode(body, mark)
        except ValueError as exc:
            log.info("request %s: multipart body refused: %s", ex.request_id, exc)
            raise GatewayError(400, BAD_MULTIPART) from None
        fields: Fields = [(part.name, part) for part in parts]
        changed = False
        for rules in self.multipart_steps:
            changed |= transform(fields, rules, lookup, _exact, bool(body))
        if not changed:
            return None
        new, used = multipart.encode([_part(name, value) for name, value in fields], mark)
        if used != mark:
            ex.upstream_headers["Content-Type"] = multipart.with_boundary(content_type, used)
        return new

    def _json(self, body: bytes, lookup: Lookup) -> bytes | None:
        """Kong's transform_json_body: a body that is not a JSON object stays as it is."""
        try:
            document = decode_json(body) if body else {}
        except ValueError:
            return None
        if not isinstance(document, dict):
            return None
        fields = list(document.items())
        rules = {**self.body_rules, "append": ()}
        changed = transform(fields, rules, lookup, _exact, bool(body))
        document = dict(fields)
        for name, template in self.body_rules["append"]:
            value = template.render(lookup) if template is not None else None
            if value is not None:
                append_value(document, name, value)
                changed = True
        return encode_json(document) if changed else None
