"""The entities of a Kong 3.x declarative file, checked, with Kong's defaults filled in.

Fields follow Kong's schemas (kong/db/schema/entities/*.lua). A field Kong
knows but this gateway cannot honour is refused with "is not supported by this
gateway"; a field Kong does not know is an "unknown field", as Kong says.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from gateway import schema as s
from gateway.proxy import balancer as b
from gateway.proxy.balancer import ROUND_ROBIN, Balancing
from gateway.proxy.healthcheck import HealthChecks
from gateway.routing.healthchecks import DEFAULT as DEFAULT_HEALTHCHECKS
from gateway.routing.healthchecks import healthchecks
from gateway.schema import REQUIRED, Invalid, shown

#: Kong's timeouts: milliseconds in [1, 2^31 - 2], default 60 s.
TIMEOUT = (s.integer(1, 2**31 - 2), 60000)
#: Kong's tags: accepted, no effect here.
TAGS = (s.array(s.string), ())
ID = (s.string, None)


def timestamp(whole: bool) -> s.Check:
    """Kong's automatic timestamps (typedefs.lua), present in exported files: accepted, no
    effect here. ``auto_timestamp_s`` is an "integer" (any whole number, 1733200000.0 too,
    as in Lua), ``auto_timestamp_ms`` a "number" (targets': ``1733200000.123``); both carry
    Kong's ``timestamp`` validator, which wants a value above 0."""
    expected = "expected an integer" if whole else "expected a number"

    def check(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(path, expected)
        if whole and not (math.isfinite(value) and value == math.floor(value)):
            raise Invalid(path, expected)
        if not value > 0:
            raise Invalid(path, "expected a valid timestamp")
        return value

    return check


#: ``typedefs.auto_timestamp_s``: every entity's created_at/updated_at but targets'.
TIMESTAMP_S = (timestamp(whole=True), None)
#: ``typedefs.auto_timestamp_ms``: targets' (kong/db/schema/entities/targets.lua).
TIMESTAMP_MS = (timestamp(whole=False), None)


def comment(value: Any, path: str) -> str:
    """Kong's ``_comment`` annotation: any string, ignored."""
    if not isinstance(value, str):
        raise Invalid(path, "expected a string")
    return value


def ignored(value: Any, path: str) -> None:
    """Kong's ``_ignore`` annotation: an array of anything, ignored."""
    if not isinstance(value, list):
        raise Invalid(path, "expected an array")


#: Fields every entity may have: Kong's id and timestamps, and the annotations Kong's
#: declarative format allows in any entity, nested ones too (``_comment``, ``_ignore``).
AUTO = {"id": ID, "created_at": TIMESTAMP_S, "updated_at": TIMESTAMP_S,
        "_comment": (comment, None), "_ignore": (ignored, None)}
HTTP_PROTOCOLS = ("http", "https")
#: Kong's other protocols (kong/constants.lua).
OTHER_PROTOCOLS = ("grpc", "grpcs", "tcp", "tls", "tls_passthrough", "udp")
#: Kong Enterprise's WebSocket protocols, and the one whose handshakes they stand for: a
#: ws/wss route takes WebSocket handshakes only, a ws/wss service is an http/https one.
WEBSOCKET_PROTOCOLS = {"ws": "http", "wss": "https"}
METHOD = re.compile(r"[A-Z]+")


def unsupported(value: Any, path: str) -> None:
    """A Kong field this gateway has no equivalent for: only absent or empty is accepted."""
    if value not in ([], {}, ""):
        raise Invalid(path, "is not supported by this gateway")


UNSUPPORTED = (unsupported, None)


def unsupported_entity(path: str) -> Invalid:
    """The error for a Kong entity this gateway does not read, at the top level or nested
    (``consumers[alice].jwt_secrets``): the one wording for both. An empty list of them is
    accepted (there is nothing to read)."""
    return Invalid(path, "unsupported entity: not supported by this gateway")


def _unsupported_nested(value: Any, path: str) -> None:
    if value != []:
        raise unsupported_entity(path)


#: Kong's credential entities a consumer may nest that this gateway does not read, and why.
UNREAD_CREDENTIALS = {
    "oauth2_credentials": "the oauth2 plugin is not built: its tokens and authorization "
                          "codes need a database, and Kong refuses it without one too",
}


def protocol(value: Any, path: str) -> str:
    """A service's or route's protocol: Kong's others are "not supported by this gateway"."""
    if not isinstance(value, str):
        raise Invalid(path, "expected a string")
    if value in OTHER_PROTOCOLS:
        raise Invalid(path, f"protocol {shown(value)} is not supported by this gateway "
                            "(http, https, and ws/wss for WebSocket handshakes are)")
    if value not in HTTP_PROTOCOLS and value not in WEBSOCKET_PROTOCOLS:
        raise Invalid(path, "expected one of: " + ", ".join(sorted(
            (*HTTP_PROTOCOLS, *WEBSOCKET_PROTOCOLS, *OTHER_PROTOCOLS))))
    return value


def tls_verify(value: Any, path: str) -> bool:
    """Kong's per-service switch: true is what the gateway always does."""
    if value is not True:
        raise Invalid(path, "false is not supported by this gateway (it always verifies an "
                            "https upstream's certificate)")
    return value


def reference(value: Any, path: str) -> str:
    """A foreign key: a name or id, or a record ``{id: ...}`` / ``{name: ...}``."""
    if isinstance(value, dict) and len(value) == 1:
        (key, given), = value.items()
        if key in ("id", "name"):
            return s.string(given, f"{path}.{key}")
    if isinstance(value, str) and value:
        return value
    raise Invalid(path, "expected a name or id, or a record with one of them")


def nested(value: Any, path: str) -> list[Any]:
    """Entities given inside their parent: checked when the parent's are collected."""
    if not isinstance(value, list):
        raise Invalid(path, "expected an array")
    return value


NESTED = (nested, [])


def service_path(value: Any, path: str) -> str:
    value = s.string(value, path)
    if not value.startswith("/"):
        raise Invalid(path, "should start with: /")
    if "//" in value or any(c in value for c in "?# "):
        raise Invalid(path, "must be a path without empty segments, query or fragment")
    return value


def host_pattern(value: Any, path: str) -> str:
    """A route host: a name with an optional port and at most one leftmost or rightmost *."""
    host = s.string(value, path).lower()
    name, _, port = host.partition(":")
    if port and not port.isdigit():
        raise Invalid(path, f"invalid port in {shown(value)}")
    labels = name.split(".")
    stars = host.count("*")
    if stars > 1:
        raise Invalid(path, "invalid wildcard: must have at most one wildcard")
    if stars and "*" not in (labels[0], labels[-1]):
        raise Invalid(path, "invalid wildcard: must be placed at leftmost or rightmost label")
    s.hostname(".".join(label for label in labels if label != "*"), path)
    return host


_PCRE_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")


def path_regex(path: str) -> re.Pattern[str]:
    """The regex of a ``~`` route path; PCRE's ``(?<name>...)`` is read as Python's
    ``(?P<name>...)``. re.error when it does not compile."""
    return re.compile(_PCRE_NAMED_GROUP.sub("(?P<", path[1:]))


def router_path(value: Any, path: str) -> str:
    value = s.string(value, path)
    if value.startswith("~"):
        try:
            path_regex(value)
        except re.error as exc:
            raise Invalid(path, f"invalid regex: {exc}") from None
        if not value.startswith("~/"):
            raise Invalid(path, "must start with / or ~ (a regex path is ~/...)")
        return value
    if not value.startswith("/"):
        raise Invalid(path, "must start with / or ~")
    if "//" in value:
        raise Invalid(path, "must not have empty segments")
    return value


def method(value: Any, path: str) -> str:
    value = s.string(value, path)
    if not METHOD.fullmatch(value):
        raise Invalid(path, "invalid value: must be uppercase letters, e.g. GET")
    return value


def header_rules(value: Any, path: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Route headers: name -> values (a value ``~*regex`` is a case-insensitive regex)."""
    if not isinstance(value, dict):
        raise Invalid(path, "expected a map of header name to an array of values")
    rules = []
    for header, values in value.items():
        where = f"{path}.{header}"
        if not isinstance(header, str) or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", header):
            raise Invalid(where, "invalid header name")
        if header.lower() == "host":
            raise Invalid(where, "cannot contain 'host' header, which must be specified in "
                                 "the 'hosts' attribute")
        checked = s.array(s.string)(values, where)
        if not checked:
            raise Invalid(where, "expected at least one value")
        for i, item in enumerate(checked):
            if item.startswith("~*"):
                try:
                    re.compile(item[2:])
                except re.error as exc:
                    raise Invalid(f"{where}[{i}]", f"invalid regex: {exc}") from None
        rules.append((header.lower(), checked))
    return tuple(rules)


@dataclass(frozen=True)
class Service:
    """Where matched requests go: a host (or an upstream's name), port, path, timeouts."""

    name: str | None
    protocol: str
    host: str
    port: int
    path: str | None
    retries: int
    #: Seconds (Kong's fields are milliseconds).
    connect_timeout: float
    read_timeout: float
    enabled: bool
    label: str

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}:{self.port}"


SERVICE_FIELDS: s.Fields = {
    **AUTO, "name": (s.name, None), "url": (s.string, None),
    "protocol": (protocol, None), "host": (s.hostname, None),
    "port": (s.port, None), "path": (service_path, None),
    "retries": (s.integer(0, 32767), 5), "connect_timeout": TIMEOUT,
    "write_timeout": TIMEOUT, "read_timeout": TIMEOUT, "tags": TAGS,
    "enabled": (s.boolean, True), "client_certificate": UNSUPPORTED,
    "tls_verify": (tls_verify, None), "tls_verify_depth": UNSUPPORTED,
    "ca_certificates": UNSUPPORTED,
    "routes": NESTED, "plugins": NESTED,
}


def service(raw: dict[str, Any], path: str) -> Service:
    """The service of a checked record. ``url`` is Kong's shorthand: its protocol, host,
    port and path replace those fields when they are given as well, as in Kong."""
    if raw["url"] is not None:
        raw.update(_url_fields(raw["url"], f"{path}.url"))
    if raw["host"] is None:
        raise Invalid(f"{path}.host", "required field missing (or give url)")
    protocol = raw["protocol"] or "http"
    protocol = WEBSOCKET_PROTOCOLS.get(protocol, protocol)
    return Service(
        name=raw["name"], protocol=protocol, host=raw["host"],
        port=raw["port"] if raw["port"] is not None else 80, path=raw["path"],
        retries=raw["retries"], connect_timeout=raw["connect_timeout"] / 1000,
        read_timeout=raw["read_timeout"] / 1000, enabled=raw["enabled"], label=path)


def _url_fields(url: str, path: str) -> dict[str, Any]:
    """Kong's ``url`` shorthand: protocol, host, port (80/443 by scheme) and path."""
    parts = urlsplit(url)
    if parts.scheme in OTHER_PROTOCOLS:
        protocol(parts.scheme, path)
    if parts.scheme not in (*HTTP_PROTOCOLS, *WEBSOCKET_PROTOCOLS) or not parts.hostname:
        raise Invalid(path, f"{shown(url)} is not an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise Invalid(path, "a URL with a user or password is not supported")
    if parts.query or parts.fragment:
        raise Invalid(path, "must not have a query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise Invalid(path, "invalid port") from None
    return {"protocol": parts.scheme, "host": s.hostname(parts.hostname, path),
            "port": port if port is not None else (443 if parts.scheme in ("https", "wss")
                                                   else 80),
            "path": service_path(parts.path, path) if parts.path else None}


@dataclass(frozen=True)
class Route:
    """Which requests go to a service, and how the path is rewritten (Kong's route)."""

    name: str | None
    service: str | None
    protocols: tuple[str, ...]
    methods: tuple[str, ...]
    hosts: tuple[str, ...]
    paths: tuple[str, ...]
    headers: tuple[tuple[str, tuple[str, ...]], ...]
    strip_path: bool
    preserve_host: bool
    regex_priority: int
    https_redirect_status_code: int
    label: str
    #: What plugins refer to it by: its name, else its id, else its field path.
    key: str


ROUTE_FIELDS: s.Fields = {
    **AUTO, "name": (s.name, None), "service": (reference, None),
    "protocols": (s.array(protocol), HTTP_PROTOCOLS),
    "methods": (s.array(method), ()), "hosts": (s.array(host_pattern), ()),
    "paths": (s.array(router_path), ()), "headers": (header_rules, ()),
    "strip_path": (s.boolean, True), "preserve_host": (s.boolean, False),
    "regex_priority": (s.integer(-2**31, 2**31 - 1), 0),
    "https_redirect_status_code": (s.integer(301, 426), 426),
    # v1 is deprecated; Kong's traditional_compatible router builds every upstream path
    # the v0 way whatever the route says (kong/router/atc.lua), and so does this one.
    "path_handling": (s.one_of("v0", "v1"), "v0"),
    "request_buffering": (s.boolean, True), "response_buffering": (s.boolean, True),
    "snis": UNSUPPORTED, "sources": UNSUPPORTED, "destinations": UNSUPPORTED,
    "tags": TAGS, "plugins": NESTED,
}


def route(raw: dict[str, Any], path: str) -> Route:
    if not raw["protocols"]:
        raise Invalid(f"{path}.protocols", "length must be at least 1")
    if raw["https_redirect_status_code"] not in (426, 301, 302, 307, 308):
        raise Invalid(f"{path}.https_redirect_status_code", "expected one of: 426, 301, 302, "
                                                           "307, 308")
    if not any(raw[key] for key in ("methods", "hosts", "headers", "paths")):
        raise Invalid(path, "must set one of 'methods', 'hosts', 'headers', 'paths' when "
                            "'protocols' is 'http' or 'https'")
    return Route(
        name=raw["name"], service=raw["service"], protocols=raw["protocols"],
        methods=raw["methods"], hosts=raw["hosts"], paths=raw["paths"], headers=raw["headers"],
        strip_path=raw["strip_path"], preserve_host=raw["preserve_host"],
        regex_priority=raw["regex_priority"],
        https_redirect_status_code=raw["https_redirect_status_code"], label=path,
        key=raw["name"] or raw["id"] or path)


@dataclass(frozen=True)
class Target:
    """One address of an upstream and its share of the traffic."""

    host: str
    port: int
    weight: int


TARGET_FIELDS: s.Fields = {
    **AUTO, "created_at": TIMESTAMP_MS, "updated_at": TIMESTAMP_MS,
    "target": (s.string, REQUIRED), "weight": (s.integer(0, 65535), 100),
    "upstream": (reference, None), "tags": TAGS,
}


def target(raw: dict[str, Any], path: str) -> Target:
    host, sep, port = raw["target"].rpartition(":")
    if not sep:
        host, port = raw["target"], "8000"  # Kong's default target port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise Invalid(f"{path}.target", f"invalid port in {shown(raw['target'])}")
    return Target(s.hostname(host, f"{path}.target"), int(port), raw["weight"])


@dataclass(frozen=True)
class Upstream:
    """A virtual host name balanced over weighted targets."""

    name: str
    targets: tuple[Target, ...] = field(default=())
    #: Kong's ``healthchecks`` record (its defaults when the file has none).
    healthchecks: HealthChecks = DEFAULT_HEALTHCHECKS
    balancing: Balancing = ROUND_ROBIN


_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: What an HTTP token (RFC 2616) must not hold: controls, 8-bit, separators.
_NOT_TOKEN = re.compile(r'[\x00-\x20\x7f-\U0010ffff()<>@,;:\\"/?={}\[\]]')


def header_name(value: Any, path: str) -> str:
    """Kong's typedefs.header_name (validate_header_name), word for word."""
    if not isinstance(value, str):
        raise Invalid(path, "expected a string")
    if not value:
        raise Invalid(path, "no header name provided")
    if not _HEADER_NAME.fullmatch(value):
        raise Invalid(path, f"bad header name '{value}', allowed characters are A-Z, a-z, "
                            "0-9, '_', and '-'")
    return value


def cookie_name(value: Any, path: str) -> str:
    """Kong's typedefs.cookie_name (validate_http_token), word for word."""
    if not isinstance(value, str):
        raise Invalid(path, "expected a string")
    if not value:
        raise Invalid(path, "no token provided")
    if _NOT_TOKEN.search(value):
        raise Invalid(path, "contains one or more invalid characters. ASCII control "
                            "characters (0-31;127), space, tab and the characters "
                            '()<>@,;:\\"/?={}[] are not allowed.')
    return value


def simple_param(value: Any, path: str) -> str:
    """Kong's upstreams simple_param: a string of length 1 or more."""
    if not isinstance(value, str):
        raise Invalid(path, "expected a string")
    if not value:
        raise Invalid(path, "length must be at least 1")
    return value


HASH_ON = (s.one_of(*b.HASH_ON), "none")
UPSTREAM_FIELDS: s.Fields = {
    **AUTO, "name": (s.hostname, REQUIRED),
    "algorithm": (s.one_of(*b.ALGORITHMS), "round-robin"),
    "slots": (s.integer(10, 2**16), 10000),
    "hash_on": HASH_ON, "hash_fallback": HASH_ON,
    "hash_on_header": (header_name, None), "hash_fallback_header": (header_name, None),
    "hash_on_cookie": (cookie_name, None), "hash_on_cookie_path": (s.kong_path, "/"),
    "hash_on_query_arg": (simple_param, None), "hash_fallback_query_arg": (simple_param, None),
    "hash_on_uri_capture": (simple_param, None),
    "hash_fallback_uri_capture": (simple_param, None),
    "healthchecks": (healthchecks, DEFAULT_HEALTHCHECKS), "host_header": UNSUPPORTED,
    "client_certificate": UNSUPPORTED, "use_srv_name": (s.fixed(False), False),
    "tags": TAGS, "targets": NESTED,
}
#: hash_on -> the hash_fallback values Kong's entity checks allow with it (absent: any).
_FALLBACKS = {
    "none": ("none",), "cookie": ("none",),
    "consumer": ("none", "ip", "header", "cookie", "path", "query_arg", "uri_capture"),
    "ip": ("none", "consumer", "header", "cookie", "path", "query_arg", "uri_capture"),
    "path": ("none", "consumer", "header", "cookie", "query_arg", "ip", "uri_capture"),
}
#: (hash kind, the field it needs) for Kong's "then_match required" checks, per field.
_NEEDS = {"hash_on": {"header": "hash_on_header", "cookie": "hash_on_cookie",
                      "query_arg": "hash_on_query_arg", "uri_capture": "hash_on_uri_capture"},
          "hash_fallback": {"header": "hash_fallback_header", "cookie": "hash_on_cookie",
                            "query_arg": "hash_fallback_query_arg",
                            "uri_capture": "hash_fallback_uri_capture"}}
_DISTINCT = (("hash_on_header", "hash_fallback_header"),
             ("hash_on_query_arg", "hash_fallback_query_arg"),
             ("hash_on_uri_capture", "hash_fallback_uri_capture"))


def balancing(given: dict[str, Any], checked: dict[str, Any], path: str,
              failed: Collection[str] = ()) -> Balancing:
    """The balancing of a checked upstream record, by Kong's rules (upstreams.lua):

    its shorthands first (``algorithm`` least-connections or latency clears ``hash_on``; a
    ``hash_on`` given other than none makes the algorithm consistent-hashing, ``none``
    makes it round-robin), then its entity checks, but those on a field named in
    ``failed`` (refused already). ``given`` is the record as written."""
    algorithm, hash_on = checked["algorithm"], checked["hash_on"]
    if algorithm in ("least-connections", "latency"):
        hash_on = "none"
    elif given.get("hash_on") is not None:
        algorithm = "round-robin" if hash_on == "none" else "consistent-hashing"
    fields = {**checked, "algorithm": algorithm, "hash_on": hash_on}
    problems: list[str] = []
    for kind in ("hash_on", "hash_fallback"):
        needed = _NEEDS[kind].get(fields[kind])
        if needed is not None and fields[needed] is None and not {kind, needed} & set(failed):
            problems.append(f"{path}.{needed}: required field missing (failed conditional "
                            f"validation given value of field '{kind}')")
    allowed = _FALLBACKS.get(hash_on)
    if allowed is not None and fields["hash_fallback"] not in allowed and \
            not {"algorithm", "hash_on", "hash_fallback"} & set(failed):
        problems.append(f"{path}.hash_fallback: expected one of: {', '.join(allowed)} (failed "
                        "conditional validation given value of field 'hash_on')")
    for first, second in _DISTINCT:
        if fields[first] is not None and fields[first] == fields[second]:
            problems.append(f"{path}: values of these fields must be distinct: '{first}', "
                            f"'{second}'")
    s.raise_any(problems)
    return Balancing(**{name: fields[name] for name in Balancing.__dataclass_fields__})


@dataclass(frozen=True)
class Consumer:
    """A client identity; its key-auth keys authenticate it."""

    username: str
    custom_id: str | None
    #: (key, the credential's id from the file or None), per keyauth_credential.
    keys: tuple[tuple[str, str | None], ...]
    label: str
    #: The consumer's id from the file (Kong's X-Consumer-ID), None when not given.
    id: str | None = None


CONSUMER_FIELDS: s.Fields = {
    **AUTO, "username": (s.string, None), "custom_id": (s.string, None), "tags": TAGS,
    "keyauth_credentials": NESTED, "plugins": NESTED,
    **{kind: (_unsupported_nested, None) for kind in UNREAD_CREDENTIALS},
    "jwt_secrets": NESTED, "basicauth_credentials": NESTED, "hmacauth_credentials": NESTED,
    "acls": NESTED,
}
CREDENTIAL_FIELDS: s.Fields = {
    **AUTO, "key": (s.string, REQUIRED), "consumer": (reference, None), "tags": TAGS,
    "ttl": UNSUPPORTED,
}

_OWNER = {**AUTO, "consumer": (reference, None), "tags": TAGS}
#: The credentials of Kong's other authentication plugins, by entity name: their fields.
AUTH_CREDENTIAL_FIELDS: dict[str, s.Fields] = {
    "jwt_secrets": {**_OWNER, "key": (s.string, None), "secret": (s.string, None),
                    "rsa_public_key": (s.string, None),
                    "algorithm": (s.one_of("HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                                           "ES256", "ES384", "ES512", "PS256", "PS384",
                                           "PS512", "EdDSA"), "HS256")},
    "basicauth_credentials": {**_OWNER, "username": (s.string, REQUIRED),
                              "password": (s.string, REQUIRED)},
    "hmacauth_credentials": {**_OWNER, "username": (s.string, REQUIRED),
                             "secret": (s.string, REQUIRED)},
    "acls": {**_OWNER, "group": (s.string, REQUIRED)},
}


@dataclass(frozen=True)
class Credential:
    """One credential entity of an authentication plugin (jwt_secrets, acls...)."""

    #: The owning consumer's key in Declaration.consumers.
    consumer: str
    fields: dict[str, Any]
    label: str


@dataclass(frozen=True)
class Plugin:
    """A plugin instance and its scope (None: any service, route or consumer)."""

    name: str
    config: dict[str, Any]
    #: A disabled plugin's config is checked all the same (Kong does), then left out.
    enabled: bool
    service: str | None
    route: str | None
    consumer: str | None
    label: str


PLUGIN_FIELDS: s.Fields = {
    **AUTO, "name": (s.string, REQUIRED), "instance_name": (s.name, None),
    "config": (s.mapping, {}),
    "enabled": (s.boolean, True), "protocols": (s.array(s.string), ()),
    "service": (reference, None), "route": (reference, None), "consumer": (reference, None),
    "ordering": UNSUPPORTED, "tags": TAGS,
}


#: The vaults Kong bundles (kong/constants.lua BUNDLED_VAULTS); a vault's prefix may not be
#: one of them. Only ``env`` is read here.
BUNDLED_VAULTS = ("env",)
ENV_VAULT = "env"
#: Kong's vault prefix (a host part of ``{vault://<prefix>/...}``) and env vault prefix rules.
_VAULT_PREFIX = re.compile(r"[a-z](?:[a-z0-9-]*[a-z0-9])?")
_ENV_PREFIX = re.compile(r"[A-Za-z_-][A-Za-z0-9_-]*")


def vault_name(value: Any, path: str) -> str:
    """Kong's ``name``: the vault implementation. Only Kong's env vault is here: the others
    (hcv, aws, gcp, azure, conjur) call a secret manager at every reload."""
    name = s.string(value, path)
    if name != ENV_VAULT:
        raise Invalid(path, f"vault {name!r} is not supported by this gateway (only Kong's "
                            f"env vault: secrets from environment variables)")
    return name


def vault_prefix(value: Any, path: str) -> str:
    prefix = s.string(value, path)
    if not _VAULT_PREFIX.fullmatch(prefix) or prefix in BUNDLED_VAULTS:
        raise Invalid(path, f"expected lower-case letters, digits and '-', starting with a "
                            f"letter, not one of: {', '.join(BUNDLED_VAULTS)}")
    return prefix


def _env_vault_config(value: Any, path: str) -> dict[str, Any]:
    config = s.record(value, path, {"prefix": (s.string, None)})
    if config["prefix"] is not None and not _ENV_PREFIX.fullmatch(config["prefix"]):
        raise Invalid(f"{path}.prefix", "expected letters, digits, '_' and '-', not starting "
                                        "with a digit")
    return config


VAULT_FIELDS: s.Fields = {
    **AUTO, "name": (vault_name, REQUIRED), "prefix": (vault_prefix, REQUIRED),
    "description": (s.string, None), "config": (_env_vault_config, {"prefix": None}),
    "tags": TAGS,
}


#: The entities the declarative loader reads, in the order it reads them, and their fields.
ENTITY_FIELDS: dict[str, s.Fields] = {
    "services": SERVICE_FIELDS, "routes": ROUTE_FIELDS, "upstreams": UPSTREAM_FIELDS,
    "targets": TARGET_FIELDS, "consumers": CONSUMER_FIELDS,
    "keyauth_credentials": CREDENTIAL_FIELDS, **AUTH_CREDENTIAL_FIELDS,
    "plugins": PLUGIN_FIELDS,
}

#: What Kong's fields of these entities do there and not here (accepted all the same), for
#: the compatibility matrix (docs/kong-compatibility.md).
FIELD_GAPS: dict[str, dict[str, str]] = {
    "services": {"write_timeout": "accepted, no effect: bodies stream"},
    "routes": {"path_handling": "v1 works as v0, as in Kong's traditional_compatible router"},
    "upstreams": {
        "healthchecks": "active and passive as Kong's, each worker probing and keeping "
                        "its own view (Kong shares one per node); targets marked down by "
                        "passive checks alone come back on a reload (no Admin API)",
    },
    "basicauth_credentials": {
        "password": "plain passwords only: a Kong export's hashed one cannot be told apart",
    },
}

_TLS_IN_NGINX = "TLS ends in nginx in front: no per-service client certificates or trust stores"
_STREAM = "a field of Kong's stream routes (tcp, tls, udp): no stream proxying"
#: What Kong accepts in these entities' fields and the loader refuses, with why: field ->
#: (the values refused, the reason). Every field refused outright (UNSUPPORTED) or held to
#: one value (s.fixed) has its row, or the docs generator stops (gateway/routing/compat.py
#: lays them out in docs/services-and-routes.md and docs/kong-compatibility.md).
REFUSED: dict[str, dict[str, tuple[str, str]]] = {
    "services": {
        "protocol": (", ".join(OTHER_PROTOCOLS),
                     "an HTTP/1.1 proxy: no HTTP/2 to upstreams, no stream proxying (ws and "
                     "wss, Kong Enterprise's, load: WebSocket handshakes)"),
        "host": ("IPv6 literals", "not yet handled by the upstream client's URLs"),
        "tls_verify": ("false", "an https upstream's certificate is always verified (Kong's "
                                "default, proxy_ssl_verify off, does not: an upstream with a "
                                "self-signed certificate needs a CA the machine trusts)"),
        "client_certificate": ("set", _TLS_IN_NGINX),
        "tls_verify_depth": ("set", _TLS_IN_NGINX),
        "ca_certificates": ("set", _TLS_IN_NGINX),
    },
    "routes": {
        "protocols": (", ".join(OTHER_PROTOCOLS), "an HTTP/1.1 proxy, as for services"),
        "snis": ("set", "TLS ends in nginx in front: serving by SNI is its server_name's"),
        "sources": ("set", _STREAM),
        "destinations": ("set", _STREAM),
    },
    "upstreams": {
        "healthchecks": ("`active.type` grpc or grpcs with an interval above 0",
                         "no gRPC probes: no HTTP/2 to upstreams"),
        "host_header": ("set", "not built: the Host sent to a target is the service's host, "
                               "or the client's with the route's preserve_host"),
        "client_certificate": ("set", _TLS_IN_NGINX),
        "use_srv_name": ("true", "no SRV lookups: targets resolve by their A/AAAA records, "
                                 "so there is no SRV name to send"),
    },
    "keyauth_credentials": {
        "ttl": ("set", "not built: keys here do not expire"),
    },
    "plugins": {
        "ordering": ("set", "Kong Enterprise's dynamic plugin ordering: plugins run in "
                            "Kong's priority order"),
    },
    "vaults": {
        "name": ("hcv, aws, gcp, azure, conjur", "they would call a secret manager at every "
                 "start and reload: only Kong's env vault (secrets from environment "
                 "variables, under the vault's prefix and config.prefix)"),
    },
}
