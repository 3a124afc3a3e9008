"""Kong plugins of a declarative file as the gateway's filters: names and config fields mapped.

KONG_PLUGINS is the mapping table (Kong's config field -> our filter's Config
field); the README's "Services and routes" shows it per plugin. Our filters
without a Kong name (enrichment, custom filters: installed ones by name, others
as package.module:ClassName, found by the filter registry as GATEWAY_FILTERS
finds them) take their Config field names as config keys. A Kong field with no
counterpart is accepted only at Kong's default; one Kong does not know is refused
as Kong refuses it ("unknown field").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config import ConfigError
from gateway.filters import (
    REGISTRY,
    FilterNotFound,
    acl,
    basic_auth,
    filter_class,
    hmac_auth,
    installed,
    jwt_auth,
)
from gateway.filters.auth import CredentialStore
from gateway.filters.base import Filter
from gateway.filters.key_auth import KeyTable
from gateway.routing import schema as s
from gateway.routing.declarative import Declaration
from gateway.routing.entities import Plugin, unsupported
from gateway.routing.schema import Invalid


def _any(value: Any, path: str) -> Any:
    """A config value handed to our own parser as text (enrichment, custom filters)."""
    if isinstance(value, dict):
        raise Invalid(path, "expected a string, number, boolean or array")
    return value


@dataclass(frozen=True)
class Field:
    """One Kong config field: its check, and the field of our Config it feeds (None: none)."""

    check: s.Check
    ours: str | None = None
    #: Kong's default, when it differs from ours.
    default: Any = None


@dataclass(frozen=True)
class KongPlugin:
    """How one Kong plugin becomes one of our filters."""

    filter: str
    fields: Mapping[str, Field]
    #: Our fields made from several Kong fields (or from other entities): name -> text.
    combine: Callable[[dict[str, Any], str, Declaration], dict[str, str]] | None = None


STRINGS = s.array(s.string)
IGNORED = Field(lambda value, path: None)  # Kong's, accepted, with no effect here
UNSUPPORTED = Field(unsupported)


def _same(names: str, check: s.Check) -> dict[str, Field]:
    return {name: Field(check, name) for name in names.split()}


def _limit_by(conf: dict[str, Any], path: str, _decl: Declaration) -> dict[str, str]:
    if conf["limit_by"] == "header":
        if not conf["header_name"]:
            raise Invalid(f"{path}.header_name", "required when limit_by is header")
        return {"limit_by": f"header:{conf['header_name']}"}
    return {"limit_by": conf["limit_by"]}


_UNITS = {"megabytes": "m", "kilobytes": "k", "bytes": ""}


def _payload_size(conf: dict[str, Any], _path: str, _decl: Declaration) -> dict[str, str]:
    return {"max_body_size": f"{conf['allowed_payload_size']}{_UNITS[conf['size_unit']]}"}


def _anonymous(conf: dict[str, Any], path: str, decl: Declaration) -> dict[str, str]:
    given = conf["anonymous"]
    if given is None:
        return {}
    for key, consumer in decl.consumers.items():
        if given in (key, consumer.username, consumer.custom_id):
            return {"anonymous": consumer.username}
    raise Invalid(f"{path}.anonymous", f"no consumer {s.shown(given)} in this file")


def _transform_lists(*names: str) -> s.Check:
    """response-transformer's add/remove/... records: only ``headers`` may be non-empty."""
    def check(value: Any, path: str) -> dict[str, Any]:
        fields = {name: (STRINGS, ()) for name in ("headers", "json", "json_types")}
        checked = s.record(value, path, fields)
        for name in fields:
            if name not in names:
                unsupported(list(checked[name]), f"{path}.{name}")
        return checked
    return check


def _response_headers(conf: dict[str, Any], _path: str, _decl: Declaration) -> dict[str, str]:
    return {name: ",".join(conf[name]["headers"]) if conf[name] else ""
            for name in ("add", "remove")}


KONG_PLUGINS: dict[str, KongPlugin] = {
    "key-auth": KongPlugin("key-auth", {
        "key_names": Field(STRINGS, "key_names"),
        **_same("hide_credentials key_in_header key_in_query run_on_preflight", s.boolean),
        "realm": Field(s.string, "realm"), "anonymous": Field(s.string),
        "key_in_body": Field(s.fixed(False)),
    }, _anonymous),
    "jwt": KongPlugin("jwt", {
        **_same("uri_param_names cookie_names header_names", STRINGS),
        "key_claim_name": Field(s.string, "key_claim_name"),
        "claims_to_verify": Field(s.array(s.one_of("exp", "nbf")), "claims_to_verify"),
        "maximum_expiration": Field(s.integer(0, 31536000), "maximum_expiration"),
        **_same("secret_is_base64 run_on_preflight", s.boolean),
        "realm": Field(s.string, "realm"), "anonymous": Field(s.string),
    }, _anonymous),
    "basic-auth": KongPlugin("basic-auth", {
        "hide_credentials": Field(s.boolean, "hide_credentials"),
        "realm": Field(s.string, "realm"), "anonymous": Field(s.string),
    }, _anonymous),
    "hmac-auth": KongPlugin("hmac-auth", {
        **_same("hide_credentials validate_request_body", s.boolean),
        "clock_skew": Field(s.integer(1, 2**31), "clock_skew"),
        "enforce_headers": Field(STRINGS, "enforce_headers"),
        "algorithms": Field(s.array(s.one_of(*hmac_auth.ALGORITHMS)), "algorithms"),
        "realm": Field(s.string, "realm"), "anonymous": Field(s.string),
    }, _anonymous),
    "acl": KongPlugin("acl", {
        **_same("allow deny", STRINGS),
        "hide_groups_header": Field(s.boolean, "hide_groups_header"),
        "always_use_authenticated_groups": Field(s.fixed(False)),
        "include_consumer_groups": Field(s.fixed(False)),
    }),
    "rate-limiting": KongPlugin("rate-limiting", {
        **_same("second minute hour day", s.integer(1, 2**53)),
        "month": UNSUPPORTED, "year": UNSUPPORTED,
        "limit_by": Field(s.one_of("consumer", "ip", "header"), default="consumer"),
        "header_name": Field(s.string), "path": UNSUPPORTED,
        "policy": Field(s.one_of("local", "redis"), "policy", default="local"),
        **_same("fault_tolerant hide_client_headers", s.boolean),
        "error_code": Field(s.integer(400, 599), "error_code"),
        "error_message": Field(s.string, "error_message"),
        "sync_rate": Field(s.fixed(-1)), "redis": IGNORED,
        **{f"redis_{name}": IGNORED for name in (
            "host", "port", "password", "username", "ssl", "ssl_verify", "server_name",
            "timeout", "database")},
    }, _limit_by),
    "proxy-cache": KongPlugin("proxy-cache", {
        "cache_ttl": Field(s.integer(1, 2**31), "ttl"),
        "request_method": Field(STRINGS, "methods"),
        "response_code": Field(s.array(s.integer(100, 900)), "statuses"),
        "content_type": Field(STRINGS, "content_types"),
        "cache_control": Field(s.boolean, "cache_control"),
        "vary_headers": Field(STRINGS, "vary_headers"),
        "strategy": Field(s.fixed("memory")), "memory": IGNORED, "response_headers": IGNORED,
        "vary_query_params": UNSUPPORTED, "storage_ttl": UNSUPPORTED,
        "ignore_uri_case": Field(s.fixed(False)),
    }),
    "cors": KongPlugin("cors", {
        **_same("origins methods headers exposed_headers", STRINGS),
        **_same("credentials preflight_continue", s.boolean),
        "max_age": Field(s.integer(0, 2**31), "max_age"),
        "private_network": Field(s.fixed(False)), "allow_origin_absent": Field(s.fixed(True)),
    }),
    "request-size-limiting": KongPlugin("request-size-limiting", {
        "allowed_payload_size": Field(s.integer(0, 2**40), default=128),
        "size_unit": Field(s.one_of(*_UNITS), default="megabytes"),
        "require_content_length": Field(s.boolean, "require_length"),
    }, _payload_size),
    "request-termination": KongPlugin("request-termination", {
        "status_code": Field(s.integer(100, 599), "status"),
        "message": Field(s.string, "message"),
        **{name: UNSUPPORTED for name in ("body", "content_type", "trigger")},
        "echo": Field(s.fixed(False)),
    }),
    "response-transformer": KongPlugin("response-headers", {
        "add": Field(_transform_lists("headers")), "remove": Field(_transform_lists("headers")),
        **{name: Field(_transform_lists()) for name in ("rename", "replace", "append")},
    }, _response_headers),
}


def kong_plugin(name: str, path: str) -> tuple[KongPlugin, type[Filter]]:
    """The mapping for a plugin name and its filter class: Kong's plugin, or one of our
    filters Kong has no name for (built in, installed, or package.module:ClassName)."""
    if name in KONG_PLUGINS:
        kong = KONG_PLUGINS[name]
        return kong, REGISTRY[kong.filter]
    mapped = {p.filter for p in KONG_PLUGINS.values()}
    if name in mapped or not (name in REGISTRY or name in installed() or ":" in name):
        known = sorted({*KONG_PLUGINS, *(n for n in REGISTRY if n not in mapped), *installed()})
        raise Invalid(f"{path}.name", f"plugin '{name}' not enabled; this gateway supports: "
                                      f"{', '.join(known)}; or give package.module:ClassName")
    try:
        cls = filter_class(name)
    except FilterNotFound as exc:
        raise Invalid(f"{path}.name", str(exc)) from None
    fields = {f.name: Field(_any, f.name) for f in dataclasses.fields(cls.Config)}
    return KongPlugin(name, fields), cls


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_as_text(item) for item in value)
    return str(value)


def filter_config(plugin: Plugin, decl: Declaration) -> tuple[type, Any]:
    """(filter class, its Config) for a plugin of the file; Invalid names the config field."""
    path = f"{plugin.label}.config"
    kong, cls = kong_plugin(plugin.name, plugin.label)
    conf = s.record(plugin.config, path, {k: (f.check, f.default) for k, f in kong.fields.items()})
    texts = {f.ours: _as_text(conf[k]) for k, f in kong.fields.items()
             if f.ours and conf[k] is not None}
    if kong.combine:
        texts.update(kong.combine(conf, path, decl))
    kong_name = {f.ours: k for k, f in kong.fields.items() if f.ours}
    hidden = {f.ours for k, f in kong.fields.items() if f.ours and _has_secret(conf[k])}
    objects = _OBJECTS[kong.filter](decl) if kong.filter in _OBJECTS else {}
    return cls, _config(cls.Config, texts, objects, path, kong_name, hidden)


def _has_secret(value: Any) -> bool:
    """True when a config value (or an element of it) was read from a vault reference."""
    if isinstance(value, (list, tuple)):
        return any(_has_secret(item) for item in value)
    return isinstance(value, s.Secret)


def _config(config_cls: type, texts: dict[str, str], objects: dict[str, Any], path: str,
            kong_name: dict[str, str], hidden: set[str | None]) -> Any:
    """The Config dataclass from texts parsed by each field's own parser, plus ``objects``.

    A parser's complaint about a field in ``hidden`` (from a vault) or declared secret is
    replaced by a generic one: parsers may quote the value.
    """
    values = dict(objects)
    for f in dataclasses.fields(config_cls):
        if f.name in values:
            continue
        raw = texts.get(f.name) or f.metadata["default"]
        where = f"{path}.{kong_name.get(f.name, f.name)}"
        if raw is None:
            if f.metadata["required"]:
                raise Invalid(where, "required field missing")
            values[f.name] = None
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            secret = f.name in hidden or f.metadata["secret"]
            raise Invalid(where, "invalid value (hidden: it is a secret)" if secret
                          else str(exc)) from None
    try:
        return config_cls(**values)
    except (ConfigError, ValueError) as exc:
        raise Invalid(path, str(exc)) from None


def _key_table(decl: Declaration) -> KeyTable:
    """Every consumer's key-auth keys."""
    table = KeyTable()
    for consumer in decl.consumers.values():
        for index, key in enumerate(consumer.keys):
            try:
                table.add(consumer.username, key)
            except ValueError as exc:
                raise Invalid(f"{consumer.label}.keyauth_credentials[{index}].key",
                              str(exc)) from None
    return table


def _owned(decl: Declaration, kind: str, add: Callable[[CredentialStore[Any], str, str | None,
                                                       dict[str, Any]], None]
           ) -> CredentialStore[Any]:
    """The ``kind`` credentials of every consumer, each added by ``add``; Invalid names one."""
    store: CredentialStore[Any] = CredentialStore(kind)
    for credential in decl.credentials.get(kind, ()):
        consumer = decl.consumers[credential.consumer]
        try:
            add(store, consumer.username, consumer.custom_id, credential.fields)
        except ValueError as exc:
            raise Invalid(credential.label, str(exc)) from None
    return store


def _add_jwt(store: CredentialStore[Any], consumer: str, custom_id: str | None,
             fields: dict[str, Any]) -> None:
    store.add(consumer, *jwt_auth.jwt_secret(fields), custom_id)


def _add_basic(store: CredentialStore[Any], consumer: str, custom_id: str | None,
               fields: dict[str, Any]) -> None:
    basic_auth.add_credential(store, consumer, fields["username"], fields["password"],
                              custom_id)


def _add_hmac(store: CredentialStore[Any], consumer: str, custom_id: str | None,
              fields: dict[str, Any]) -> None:
    hmac_auth.add_credential(store, consumer, fields["username"], fields["secret"], custom_id)


def _group_table(decl: Declaration) -> acl.GroupTable:
    table = acl.GroupTable()
    for credential in decl.credentials.get("acls", ()):
        try:
            table.add(decl.consumers[credential.consumer].username, credential.fields["group"])
        except ValueError as exc:
            raise Invalid(f"{credential.label}.group", str(exc)) from None
    return table


#: The filters whose Config takes objects made from the file's other entities.
_OBJECTS: dict[str, Callable[[Declaration], dict[str, Any]]] = {
    "key-auth": lambda decl: {"keys": _key_table(decl)},
    "jwt": lambda decl: {"secrets": _owned(decl, "jwt_secrets", _add_jwt)},
    "basic-auth": lambda decl: {"credentials": _owned(decl, "basicauth_credentials",
                                                      _add_basic)},
    "hmac-auth": lambda decl: {"credentials": _owned(decl, "hmacauth_credentials",
                                                     _add_hmac)},
    "acl": lambda decl: {"groups": _group_table(decl)},
}
