"""Kong plugins of a declarative file as the gateway's filters: names and config fields mapped.

KONG_PLUGINS is the mapping table (Kong's config field -> our filter's Config
field); docs/services-and-routes.md shows it per plugin, and the Kong compatibility
matrix (docs/kong-compatibility.md) is generated from it. Our filters without a
Kong name (enrichment, custom filters: installed ones by name, others as
package.module:ClassName, found by the filter registry as GATEWAY_FILTERS finds
them) take their Config field names as config keys. A Kong field with no counterpart
is accepted only at Kong's default; one Kong does not know is refused as Kong refuses
it ("unknown field").
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gateway import schema as s
from gateway.config import ConfigError
from gateway.filters import (
    REGISTRY,
    FilterNotFound,
    acl,
    basic_auth,
    filter_class,
    hmac_auth,
    installed,
    ip_restriction,
    jwt_auth,
)
from gateway.filters.auth import CredentialStore, consumer_id
from gateway.filters.base import Filter
from gateway.filters.key_auth import KeyTable, Owner
from gateway.filters.opentelemetry import KONG_FORMATS, tracing_config
from gateway.filters.request_callout.plan import plan as callout_plan
from gateway.ops.tracing import WRITTEN
from gateway.routing.declarative import Declaration
from gateway.routing.entities import Consumer, Plugin, unsupported
from gateway.schema import Invalid
from gateway.store.kong_redis import REDIS_CHECKS, redis_texts


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
    #: Kong's ``redis`` record (and its ``redis_*`` shorthands) feeds our ``redis_url``.
    redis: bool = False
    #: For a config of nested records (request-callout): checks the whole config itself
    #: and gives our Config's fields as objects, (config, path, plugin label) -> values.
    structured: Callable[[dict[str, Any], str, str], dict[str, Any]] | None = None
    #: Only as a global plugin (no service, route or consumer): opentelemetry, whose
    #: tracing is the worker's.
    global_only: bool = False
    #: Our field holding a key prefix, scoped here to the plugin's route and service (Kong
    #: keys rate-limiting's counters by their ids): two plugins never share keys.
    scope_field: str | None = None
    #: Kong's fields with ``required = true`` beside a default: left out, the default
    #: applies; an explicit null is refused ("required field missing"), as Kong's schema
    #: refuses it.
    not_null: tuple[str, ...] = ()


STRINGS = s.array(s.string)
IGNORED = Field(lambda value, path: None)  # Kong's, accepted, with no effect here
UNSUPPORTED = Field(unsupported)


def _same(names: str, check: s.Check) -> dict[str, Field]:
    return {name: Field(check, name) for name in names.split()}


def _limit_by(conf: dict[str, Any], path: str, _decl: Declaration) -> dict[str, str]:
    """limit_by with the field it reads (header_name, path); the other one is ignored, as
    in Kong (its specs set both)."""
    for kind, field in (("header", "header_name"), ("path", "path")):
        if conf["limit_by"] == kind:
            if not conf[field]:
                raise Invalid(f"{path}.{field}", f"required when limit_by is {kind}")
            return {"limit_by": f"{kind}:{conf[field]}"}
    return {"limit_by": conf["limit_by"]}


_UNITS = {"megabytes": "m", "kilobytes": "k", "bytes": ""}


def _payload_size(conf: dict[str, Any], _path: str, _decl: Declaration) -> dict[str, str]:
    return {"max_body_size": f"{conf['allowed_payload_size']}{_UNITS[conf['size_unit']]}"}


def _anonymous(conf: dict[str, Any], path: str, decl: Declaration) -> dict[str, str]:
    given = conf["anonymous"]
    if given is None:
        return {}
    for key, consumer in decl.consumers.items():
        if given in (key, consumer.id, consumer.username, consumer.custom_id):
            return {"anonymous": consumer.username}
    raise Invalid(f"{path}.anonymous", f"no consumer {s.shown(given)} in this file")


def _shown_headers(value: Any, path: str) -> dict[str, bool]:
    """proxy-cache's response_headers record: age, X-Cache-Status, X-Cache-Key (true)."""
    return s.record(value, path, {name: (s.boolean, True)
                                  for name in ("age", "X-Cache-Status", "X-Cache-Key")})


def _cache_headers(conf: dict[str, Any], _path: str, _decl: Declaration) -> dict[str, str]:
    shown = conf["response_headers"]
    if shown is None:
        return {}
    return {"response_headers": ",".join(name for name, on in shown.items() if on) or "none"}


def _http_log(conf: dict[str, Any], path: str, _decl: Declaration) -> dict[str, str]:
    """The queue record flattened into our queue_* fields; the deprecated queue_size and
    flush_timeout feed max_batch_size and max_coalescing_delay when the queue leaves them at
    Kong's default (Kong's Queue.get_plugin_params)."""
    queue = s.record(conf["queue"] or {}, f"{path}.queue", s.QUEUE_FIELDS)
    if queue["concurrency_limit"] == 0:
        raise Invalid(f"{path}.queue.concurrency_limit", "expected one of: -1, 1")
    if conf["queue_size"] is not None and queue["max_batch_size"] == 1:
        queue["max_batch_size"] = conf["queue_size"]
    if conf["flush_timeout"] is not None and queue["max_coalescing_delay"] == 1:
        queue["max_coalescing_delay"] = conf["flush_timeout"]
    texts = {f"queue_{name}": _as_text(value) for name, value in queue.items()
             if value is not None}
    if conf["headers"]:
        texts["headers"] = ",".join(f"{name}:{value}" for name, value in conf["headers"].items())
    return texts


def _header_map(value: Any, path: str) -> dict[str, str]:
    checked = s.mapping(value, path)
    for name, item in checked.items():
        s.string(item, f"{path}.{name}")
        if "," in item or ":" in name:
            raise Invalid(f"{path}.{name}", "a header name with ':' or a value with ',' is not "
                                            "supported by this gateway")
    return checked


def _response_rules(typed: bool = False) -> s.Check:
    """A response-transformer record: headers and json lists (and json_types)."""
    fields = {name: (STRINGS, ()) for name in ("headers", "json")}
    if typed:
        fields["json_types"] = (s.array(s.one_of("boolean", "number", "string")), ())
    return lambda value, path: s.record(value, path, fields)


def _response_transformer(conf: dict[str, Any], _path: str, _decl: Declaration
                          ) -> dict[str, str]:
    """The action records flattened into our ACTION_PART fields, as JSON arrays."""
    return {f"{action}_{part}": json.dumps(list(values))
            for action in ("remove", "rename", "replace", "add", "append")
            for part, values in (conf[action] or {}).items() if values}


def _callout_plan(conf: dict[str, Any], path: str, label: str) -> dict[str, Any]:
    return {"plan": callout_plan(conf, path, label)}


def _opentelemetry(conf: dict[str, Any], path: str, _label: str) -> dict[str, Any]:
    return {"tracing": tracing_config(conf, path)}


def _regex_lists(conf: dict[str, Any], _path: str, _decl: Declaration) -> dict[str, str]:
    """bot-detection's lists of regular expressions, as JSON arrays (they may hold commas)."""
    return {name: json.dumps(list(conf[name])) for name in ("allow", "deny")}


def _request_rules(uri: bool = False) -> s.Check:
    """A request-transformer record: body, headers and querystring lists (and replace.uri)."""
    fields = {name: (STRINGS, ()) for name in ("body", "headers", "querystring")}
    if uri:
        fields["uri"] = (s.string, None)
    return lambda value, path: s.record(value, path, fields)


def _request_transformer(conf: dict[str, Any], _path: str, _decl: Declaration
                         ) -> dict[str, str]:
    """The action records flattened into our ACTION_PART fields, as JSON arrays (values
    may hold commas)."""
    records = {action: conf[action] or {}
               for action in ("remove", "rename", "replace", "add", "append")}
    texts = {f"{action}_{part}": json.dumps(list(record[part]))
             for action, record in records.items()
             for part in ("body", "headers", "querystring") if record.get(part)}
    if records["replace"].get("uri") is not None:
        texts["replace_uri"] = records["replace"]["uri"]
    return texts


KONG_PLUGINS: dict[str, KongPlugin] = {
    "key-auth": KongPlugin("key-auth", {
        "key_names": Field(STRINGS, "key_names"),
        **_same("hide_credentials key_in_header key_in_query run_on_preflight", s.boolean),
        "realm": Field(s.string, "realm"), "anonymous": Field(s.string),
        "key_in_body": Field(s.fixed(False)),
    }, _anonymous, not_null=("key_names", "hide_credentials", "key_in_header", "key_in_query",
                             "key_in_body", "run_on_preflight")),
    "jwt": KongPlugin("jwt", {
        **_same("uri_param_names cookie_names header_names", STRINGS),
        "key_claim_name": Field(s.string, "key_claim_name"),
        "claims_to_verify": Field(s.array(s.one_of("exp", "nbf")), "claims_to_verify"),
        "maximum_expiration": Field(s.integer(0, 31536000), "maximum_expiration"),
        **_same("secret_is_base64 run_on_preflight", s.boolean),
        "realm": Field(s.string, "realm"), "anonymous": Field(s.string),
    }, _anonymous, not_null=("secret_is_base64", "run_on_preflight")),
    "basic-auth": KongPlugin("basic-auth", {
        "hide_credentials": Field(s.boolean, "hide_credentials"),
        "realm": Field(s.string, "realm"), "anonymous": Field(s.string),
    }, _anonymous, not_null=("hide_credentials", "realm")),
    "hmac-auth": KongPlugin("hmac-auth", {
        **_same("hide_credentials validate_request_body", s.boolean),
        "clock_skew": Field(s.integer(1, 2**31), "clock_skew"),
        "enforce_headers": Field(STRINGS, "enforce_headers"),
        "algorithms": Field(s.array(s.one_of(*hmac_auth.ALGORITHMS)), "algorithms"),
        "realm": Field(s.string, "realm"), "anonymous": Field(s.string),
    }, _anonymous, not_null=("hide_credentials", "validate_request_body")),
    "acl": KongPlugin("acl", {
        **_same("allow deny", STRINGS),
        "hide_groups_header": Field(s.boolean, "hide_groups_header"),
        "always_use_authenticated_groups": Field(s.fixed(False)),
        "include_consumer_groups": Field(s.fixed(False)),
    }, not_null=("hide_groups_header", "always_use_authenticated_groups")),
    "rate-limiting": KongPlugin("rate-limiting", {
        **_same("second minute hour day month year", s.greater_than(0)),
        "limit_by": Field(s.one_of("consumer", "credential", "ip", "service", "header", "path"),
                          default="consumer"),
        "header_name": Field(s.string), "path": Field(s.string),
        "policy": Field(s.one_of("local", "redis"), "policy", default="local"),
        **_same("fault_tolerant hide_client_headers", s.boolean),
        "error_code": Field(s.integer(400, 599), "error_code"),
        "error_message": Field(s.string, "error_message"),
        "sync_rate": Field(s.fixed(-1)),
        **{name: Field(check) for name, check in REDIS_CHECKS.items()},
    }, _limit_by, redis=True, scope_field="redis_prefix",
        not_null=("fault_tolerant", "hide_client_headers", "sync_rate")),
    "proxy-cache": KongPlugin("proxy-cache", {
        "cache_ttl": Field(s.integer(1, 2**31), "ttl"),
        "request_method": Field(STRINGS, "methods"),
        "response_code": Field(s.array(s.integer(100, 900)), "statuses"),
        "content_type": Field(STRINGS, "content_types"),
        "cache_control": Field(s.boolean, "cache_control"),
        "vary_headers": Field(STRINGS, "vary_headers"),
        "vary_query_params": Field(STRINGS, "vary_query_params"),
        "storage_ttl": Field(s.integer(1, 2**31), "storage_ttl"),
        "ignore_uri_case": Field(s.boolean, "ignore_uri_case"),
        "response_headers": Field(_shown_headers),
        "strategy": Field(s.fixed("memory")), "memory": IGNORED,
    }, _cache_headers, not_null=("response_code", "request_method", "content_type",
                                 "cache_control")),
    "cors": KongPlugin("cors", {
        **_same("origins methods headers exposed_headers", STRINGS),
        **_same("credentials preflight_continue private_network allow_origin_absent",
                s.boolean),
        "max_age": Field(s.number(-2**53, 2**53), "max_age"),  # Kong's: any number
    }, not_null=("credentials", "preflight_continue", "private_network", "allow_origin_absent")),
    "request-size-limiting": KongPlugin("request-size-limiting", {
        "allowed_payload_size": Field(s.integer(0, 2**40), default=128),
        "size_unit": Field(s.one_of(*_UNITS), default="megabytes"),
        "require_content_length": Field(s.boolean, "require_length"),
    }, _payload_size, not_null=("size_unit", "require_content_length")),
    "request-termination": KongPlugin("request-termination", {
        "status_code": Field(s.integer(100, 599), "status"),
        **_same("message body content_type trigger", s.string),
        "echo": Field(s.boolean, "echo"),
    }, not_null=("status_code", "echo")),
    "request-transformer": KongPlugin("request-transformer", {
        "http_method": Field(s.string, "http_method"),
        **{action: Field(_request_rules()) for action in ("remove", "rename", "add", "append")},
        "replace": Field(_request_rules(uri=True)),
    }, _request_transformer),
    "redirect": KongPlugin("redirect", {
        "status_code": Field(s.integer(100, 599), "status_code"),
        "location": Field(s.string, "location"),
        "keep_incoming_path": Field(s.boolean, "keep_incoming_path"),
    }, not_null=("status_code",)),
    "request-callout": KongPlugin("request-callout", {}, structured=_callout_plan),
    "opentelemetry": KongPlugin("opentelemetry", {}, structured=_opentelemetry,
                                global_only=True),
    "ip-restriction": KongPlugin("ip-restriction", {
        **_same("allow deny", s.array(s.parsed(ip_restriction.ip_or_cidr))),
        "status": Field(s.integer(100, 599), "status"), "message": Field(s.string, "message"),
    }),
    "bot-detection": KongPlugin("bot-detection", {
        "allow": Field(STRINGS, default=()), "deny": Field(STRINGS, default=()),
    }, _regex_lists),
    "correlation-id": KongPlugin("correlation-id", {
        "header_name": Field(s.string, "header_name"),
        "generator": Field(s.one_of("uuid", "uuid#counter", "tracker"), "generator"),
        "echo_downstream": Field(s.boolean, "echo_downstream"),
    }, not_null=("generator", "echo_downstream")),
    "prometheus": KongPlugin("prometheus", {
        **_same("per_consumer status_code_metrics latency_metrics bandwidth_metrics "
                "upstream_health_metrics", s.boolean),
        "ai_metrics": Field(s.fixed(False)), "wasm_metrics": Field(s.fixed(False)),
    }),
    "http-log": KongPlugin("http-log", {
        "http_endpoint": Field(s.string, "http_endpoint"),
        "method": Field(s.one_of("POST", "PUT", "PATCH"), "method"),
        "content_type": Field(s.one_of("application/json", "application/json; charset=utf-8"),
                              "content_type"),
        "timeout": Field(s.number(0, 2**53), "timeout"),
        "keepalive": Field(s.number(0, 2**53), "keepalive"),
        "retry_count": IGNORED, "queue_size": Field(s.integer(1, 1000000)),
        "flush_timeout": Field(s.number(0, 3600)),
        "headers": Field(_header_map), "queue": Field(s.mapping),
        "custom_fields_by_lua": UNSUPPORTED,
    }, _http_log),
    "file-log": KongPlugin("file-log", {
        "path": Field(s.string, "path"), "reopen": Field(s.boolean, "reopen"),
        "custom_fields_by_lua": UNSUPPORTED,
    }, not_null=("reopen",)),
    "response-transformer": KongPlugin("response-transformer", {
        "remove": Field(_response_rules()), "rename": Field(_response_rules()),
        **{action: Field(_response_rules(typed=True)) for action in ("replace", "add", "append")},
    }, _response_transformer),
}

#: What the mapped Kong plugins do in Kong and not here, beside the config fields refused
#: (UNSUPPORTED), held to Kong's default (s.fixed) or without effect (IGNORED), which the
#: compatibility matrix (docs/kong-compatibility.md) reads from KONG_PLUGINS itself.
PLUGIN_GAPS: dict[str, str] = {
    "key-auth": "key TTLs: keyauth_credentials' ttl",
    "basic-auth": "Kong's stored password hashes: see basicauth_credentials",
    "acl": "X-Authenticated-Groups, which ldap-auth and oauth2 set: not built here",
    "rate-limiting": "counts are always synchronous; the `cluster` policy (it needs a "
                     "database: Kong refuses it without one too)",
    "proxy-cache": "the Admin API to purge entries",
    "request-transformer": "code in templates (`$(10 * uri_captures.x)`, `$(type(x))`): "
                           "refused at load, plain references only; `replace` of `Host` (the "
                           "upstream's Host is the target's, or the client's with "
                           "preserve_host)",
    "request-callout": "Lua (`by_lua`, code in `$(...)`); a URL whose host comes from a "
                       "reference; `http_opts.proxy`, `ssl_server_name`; Redis Sentinel "
                       "and Cluster",
    "ip-restriction": "the tcp, tls and grpc protocols: an HTTP gateway",
    "prometheus": "`dns_error` of targets whose upstream has no health checks; resolved "
                  "addresses per target; kong_datastore_reachable, kong_nginx_timers, "
                  "kong_memory_lua_shared_dict_*",
    "http-log": "service and route hold their names, not Kong's whole entities",
    "opentelemetry": "global only (tracing is the worker's); `logs_endpoint`; `header_type` "
                     "only `preserve` (use `propagation`); queue fields other than "
                     "`max_batch_size` and `max_coalescing_delay` only at Kong's default; the "
                     + ", ".join(f for f in KONG_FORMATS if f not in WRITTEN)
                     + " propagation formats",
}

#: Kong's bundled plugins with no filter here, and why (the compatibility matrix shows it).
NOT_BUILT: dict[str, str] = {
    "oauth2": "its tokens and authorization codes need a database, and Kong refuses it "
              "without one too",
    "ldap-auth": "not built yet",
    "session": "not built yet",
    "response-ratelimiting": "not built yet; rate-limiting is",
    "tcp-log": "not built yet; http-log and file-log are",
    "udp-log": "not built yet; http-log and file-log are",
    "syslog": "not built yet; http-log and file-log are",
    "loggly": "not built yet; http-log and file-log are",
    "datadog": "not built yet; prometheus is",
    "statsd": "not built yet; prometheus is",
    "aws-lambda": "serverless upstreams are not built",
    "azure-functions": "serverless upstreams are not built",
    "acme": "TLS ends in nginx in front, whose certificates certbot renews",
    "grpc-gateway": "gRPC is not proxied: an HTTP/1.1 proxy",
    "grpc-web": "gRPC is not proxied: an HTTP/1.1 proxy",
    "pre-function": "runs Lua code: write a Python filter instead",
    "post-function": "runs Lua code: write a Python filter instead",
    "zipkin": "not built",
    "ai-proxy": "the AI gateway plugins are not built",
    "ai-prompt-decorator": "the AI gateway plugins are not built",
    "ai-prompt-template": "the AI gateway plugins are not built",
    "ai-prompt-guard": "the AI gateway plugins are not built",
    "ai-request-transformer": "the AI gateway plugins are not built",
    "ai-response-transformer": "the AI gateway plugins are not built",
    "standard-webhooks": "not built yet",
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
        why = (f"Kong's plugin '{name}' is not supported by this gateway ({NOT_BUILT[name]})"
               if name in NOT_BUILT else f"plugin '{name}' not enabled")
        raise Invalid(f"{path}.name", f"{why}; this gateway supports: "
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
    if kong.global_only and (plugin.service or plugin.route or plugin.consumer):
        raise Invalid(plugin.label, f"{plugin.name} on a service, route or consumer is not "
                                    "supported by this gateway (its work is the whole "
                                    "worker's): make it a global plugin")
    if kong.structured is not None:
        objects = kong.structured(plugin.config, path, plugin.label)
        return cls, _config(cls.Config, {}, objects, path, {}, set())
    given = plugin.config if isinstance(plugin.config, dict) else {}
    problems = [f"{path}.{k}: required field missing" for k in kong.not_null
                if k in given and given[k] is None]
    conf = s.record(plugin.config, path, {k: (f.check, f.default) for k, f in kong.fields.items()},
                    problems)
    s.raise_any(problems)
    texts = {f.ours: _as_text(conf[k]) for k, f in kong.fields.items()
             if f.ours and conf[k] is not None}
    if kong.combine:
        texts.update(kong.combine(conf, path, decl))
    if kong.redis:
        texts.update(redis_texts(conf, path))
    if kong.scope_field and (plugin.route or plugin.service):
        texts[kong.scope_field] = _scoped(cls.Config, kong.scope_field, plugin)
    kong_name = {f.ours: k for k, f in kong.fields.items() if f.ours}
    hidden = {f.ours for k, f in kong.fields.items() if f.ours and _has_secret(conf[k])}
    objects = _OBJECTS[kong.filter](decl) if kong.filter in _OBJECTS else {}
    return cls, _config(cls.Config, texts, objects, path, kong_name, hidden)


def _scoped(config_cls: type, name: str, plugin: Plugin) -> str:
    """The field's default prefix followed by the plugin's route and service, each quoted
    (a name's spaces or braces cannot reach a Redis key), as ``prefix:route:service``."""
    default = next(f for f in dataclasses.fields(config_cls) if f.name == name)
    return ":".join([default.metadata["default"], quote(plugin.route or "", safe=""),
                     quote(plugin.service or "", safe="")])


def _has_secret(value: Any) -> bool:
    """True when a config value (or an element of it) was read from a vault reference."""
    if isinstance(value, (list, tuple)):
        return any(_has_secret(item) for item in value)
    return isinstance(value, s.Secret)


def _config(config_cls: type, texts: dict[str, str], objects: dict[str, Any], path: str,
            kong_name: dict[str, str], hidden: set[str | None]) -> Any:
    """The Config dataclass from texts parsed by each field's own parser, plus ``objects``.

    A parser's complaint about a field in ``hidden`` (from a vault) or declared secret is
    replaced by a generic one: parsers may quote the value. Every bad field is reported.
    """
    values = dict(objects)
    problems: list[str] = []
    for f in dataclasses.fields(config_cls):
        if f.name not in values:
            with s.collecting(problems):
                values[f.name] = _field_value(f, texts.get(f.name), path, kong_name, hidden)
    s.raise_any(problems)
    try:
        return config_cls(**values)
    except (ConfigError, ValueError) as exc:
        raise Invalid(path, str(exc)) from None


def _field_value(f: dataclasses.Field[Any], text: str | None, path: str,
                 kong_name: dict[str, str], hidden: set[str | None]) -> Any:
    """One Config field's value parsed from its text (or its default)."""
    raw = text or f.metadata["default"]
    where = f"{path}.{kong_name.get(f.name, f.name)}"
    if raw is None:
        if f.metadata["required"]:
            raise Invalid(where, "required field missing")
        return None
    try:
        return f.metadata["parse"](raw)
    except ValueError as exc:
        secret = f.name in hidden or f.metadata["secret"]
        raise Invalid(where, "invalid value (hidden: it is a secret)" if secret
                      else str(exc)) from None


def _key_table(decl: Declaration) -> KeyTable:
    """Every consumer (by username, id and custom_id) and its key-auth keys with their ids."""
    table = KeyTable()
    for consumer in decl.consumers.values():
        owner = Owner(consumer.username, consumer.id or consumer_id(consumer.username),
                      consumer.custom_id)
        try:
            table.add_owner(owner, consumer.id, consumer.custom_id)
        except ValueError as exc:
            raise Invalid(consumer.label, str(exc)) from None
        for index, (key, credential_id) in enumerate(consumer.keys):
            try:
                table.add(consumer.username, key, credential_id)
            except ValueError as exc:
                raise Invalid(f"{consumer.label}.keyauth_credentials[{index}].key",
                              str(exc)) from None
    return table


def _owned(decl: Declaration, kind: str,
           add: Callable[[CredentialStore[Any], Consumer, dict[str, Any]], None]
           ) -> CredentialStore[Any]:
    """The ``kind`` credentials of every consumer, each added by ``add``, and every
    consumer's id (Kong's X-Consumer-ID, the anonymous consumer's too); Invalid names a bad
    credential."""
    store: CredentialStore[Any] = CredentialStore(kind)
    store.consumer_ids = {c.username: c.id for c in decl.consumers.values() if c.id}
    for consumer, credential in _credentials(decl, kind):
        try:
            add(store, consumer, credential.fields)
        except ValueError as exc:
            raise Invalid(credential.label, str(exc)) from None
    return store


def _credentials(decl: Declaration, kind: str) -> Iterator[tuple[Consumer, Any]]:
    """The ``kind`` credentials with their consumer; those of a consumer the file got wrong
    (its problem already reported, so it is not in ``decl.consumers``) are passed over."""
    for credential in decl.credentials.get(kind, ()):
        consumer = decl.consumers.get(credential.consumer)
        if consumer is not None:
            yield consumer, credential


def _add_jwt(store: CredentialStore[Any], consumer: Consumer, fields: dict[str, Any]) -> None:
    store.add(consumer.username, *jwt_auth.jwt_secret(fields), consumer.custom_id, consumer.id)


def _add_basic(store: CredentialStore[Any], consumer: Consumer, fields: dict[str, Any]) -> None:
    basic_auth.add_credential(store, consumer.username, fields["username"], fields["password"],
                              consumer.custom_id, consumer.id)


def _add_hmac(store: CredentialStore[Any], consumer: Consumer, fields: dict[str, Any]) -> None:
    hmac_auth.add_credential(store, consumer.username, fields["username"], fields["secret"],
                             consumer.custom_id, consumer.id)


def _group_table(decl: Declaration) -> acl.GroupTable:
    table = acl.GroupTable()
    for consumer, credential in _credentials(decl, "acls"):
        try:
            table.add(consumer.username, credential.fields["group"])
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
