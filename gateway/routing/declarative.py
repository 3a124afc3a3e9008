"""Kong's declarative configuration (DB-less ``kong.yml``, ``_format_version`` 1.1, 2.1, 3.0).

Read from GATEWAY_DECLARATIVE_CONFIG (a YAML or JSON file) or
GATEWAY_DECLARATIVE_CONFIG_STRING, as Kong's ``declarative_config`` and
``declarative_config_string``. Entities may be nested (a service's routes and
plugins, an upstream's targets, a consumer's keys and plugins) or given at the
top level with a reference (``service: orders``) by name or id. A string that
is exactly ``{vault://env/NAME}`` is replaced by that environment variable, as
Kong's env vault (``NAME`` upper-cased, ``-`` read as ``_``), and
``{vault://PREFIX/NAME}`` likewise through a ``vaults`` entity of that prefix (an
env vault with a ``config.prefix`` of its own); such values are never shown in
errors. 1.1 and 2.1 files are migrated as Kong migrates them
(:mod:`gateway.routing.migrate`). A bad file raises ConfigError with one line per
problem, each naming the entity and the field path: every blocker, not only the first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gateway import schema as s
from gateway.config import ConfigError
from gateway.proxy.healthcheck import HealthChecks
from gateway.routing import entities as e
from gateway.routing.migrate import OLD_VERSIONS, migrate
from gateway.schema import Invalid, collecting

#: The environment variable through which the master hands workers the last file that
#: passed its check (gunicorn.conf.py), so a reload with a broken file changes nothing.
SNAPSHOT_ENV = "_GATEWAY_DECLARATIVE_SNAPSHOT"
FORMAT_VERSION = "3.0"
ENTITIES = tuple(e.ENTITY_FIELDS)
#: Entities read before the others, since references in the others go through them.
FIRST_ENTITIES: dict[str, s.Fields] = {"vaults": e.VAULT_FIELDS}
#: Kong 3.x's other entities a declarative file may hold (kong/constants.lua CORE_ENTITIES,
#: the bundled plugins' daos.lua, Kong Enterprise's), refused as "unsupported entity" when
#: a file has any, and why; the compatibility matrix (docs/kong-compatibility.md) shows
#: these reasons.
UNREAD_ENTITIES = {
    "certificates": "TLS ends in nginx in front: its certificates are nginx's",
    "ca_certificates": "no per-service trust stores: the machine's CAs verify upstreams",
    "snis": "TLS ends in nginx in front: its server_name",
    "keys": "read by Kong Enterprise's jwe-decrypt and jwt-signer plugins, not built here",
    "key_sets": "the sets of keys, as keys",
    "consumer_groups": "a Kong Enterprise entity",
    "filter_chains": "Wasm filters: no Wasm runtime here",
    "workspaces": "one workspace, as Kong OSS: _workspace is accepted, no effect",
    **e.UNREAD_CREDENTIALS,
}


def _format_version(value: Any, path: str) -> str:
    """Kong's: "1.1" and "2.1" (migrated on load, :mod:`gateway.routing.migrate`), "3.0"."""
    if value not in (*OLD_VERSIONS, FORMAT_VERSION):
        versions = ", ".join(f'"{v}"' for v in (*OLD_VERSIONS, FORMAT_VERSION))
        raise Invalid(path, f"expected one of: {versions} (a string)")
    return value


#: Top-level keys read besides the entities: Kong's, and decK's ``_info`` (select_tags and
#: defaults for decK itself) and ``_konnect`` (the Konnect control plane a dump came from),
#: all without effect here but ``_format_version``.
META = {"_format_version": _format_version, "_transform": s.boolean, "_comment": e.comment,
        "_ignore": e.ignored, "_workspace": s.string, "_info": s.mapping,
        "_konnect": s.mapping}
#: ``{vault://<prefix>/<resource>[/<key>]}``: Kong's reference to a vault's secret.
_VAULT = re.compile(r"\{vault://([a-z][a-z0-9-]*)/([A-Za-z0-9_-]+)(?:/([^}]+))?\}")


@dataclass(frozen=True)
class Declaration:
    """Every entity of a file, references resolved to the referenced entity's key."""

    #: By key: the name, else the id, else the field path.
    services: dict[str, e.Service]
    routes: list[e.Route]
    #: By name (the host a service names to be balanced over the targets).
    upstreams: dict[str, e.Upstream]
    consumers: dict[str, e.Consumer]
    plugins: list[e.Plugin]
    #: What is wrong with the file, one ``path: message`` line each (read_declaration);
    #: the entities above are then those that passed.
    problems: tuple[str, ...] = ()
    #: jwt_secrets, basicauth_credentials, hmacauth_credentials, acls: entity name -> list.
    credentials: dict[str, list[e.Credential]] = field(default_factory=dict)


def declaration_source(environ: Mapping[str, str], path: str | None,
                       inline: str | None) -> tuple[str, str] | None:
    """(text, origin for errors) of the configured file or string; None without either."""
    if path and inline:
        raise ConfigError("GATEWAY_DECLARATIVE_CONFIG and GATEWAY_DECLARATIVE_CONFIG_STRING "
                          "are both set: use one")
    if inline:
        return inline, "GATEWAY_DECLARATIVE_CONFIG_STRING"
    if not path:
        return None
    origin = f"GATEWAY_DECLARATIVE_CONFIG={path}"
    try:
        with open(environ.get(SNAPSHOT_ENV) or path, encoding="utf-8") as file:
            return file.read(), origin
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{origin}: cannot read it: {getattr(exc, 'strerror', exc)}") from None


def parse_declaration(text: str, origin: str, environ: Mapping[str, str]) -> Declaration:
    """The checked entities of ``text``; ConfigError naming ``origin`` and, for every
    problem, the field path."""
    decl = read_declaration(text, origin, environ)
    if decl.problems:
        raise blockers(origin, decl.problems)
    return decl


def blockers(origin: str, problems: tuple[str, ...] | list[str]) -> ConfigError:
    """The ConfigError for a file's problems: one line for one, else a count and a line
    each."""
    if len(problems) == 1:
        return ConfigError(f"{origin}: {problems[0]}")
    return ConfigError(f"{origin}: {len(problems)} problems, one a line:\n" +
                       "\n".join(f"  {problem}" for problem in problems))


def read_declaration(text: str, origin: str, environ: Mapping[str, str]) -> Declaration:
    """The entities of ``text`` that pass their checks, with the problems of the others
    (``Declaration.problems``); ConfigError only for text that is not YAML or JSON."""
    # Imported here: only with a declarative file does a worker pay its import (~30 ms).
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when built
    try:
        data = yaml.load(text, Loader=loader)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot parse it"
        raise ConfigError(f"{origin}: not valid YAML or JSON{where}: {problem}") from None
    _check_shape(data, origin)
    return _Collector(environ).declaration(data)


#: How deep a file's values may nest (Kong's deepest, a plugin's config, is under ten).
MAX_DEPTH = 64
#: How many values a file may hold once its YAML aliases are expanded (a decK dump of
#: 10,000 routes holds about 300,000): past it, a few lines of aliases would take minutes.
MAX_VALUES = 2_000_000


def _check_shape(data: Any, origin: str) -> None:
    """ConfigError for data the loader cannot walk: a YAML alias inside itself (a cycle),
    values nested past MAX_DEPTH, or past MAX_VALUES of them counting each alias's
    expansion ("billion laughs"). One pass, no recursion."""
    stack: list[tuple[Any, int, frozenset[int]]] = [(data, 0, frozenset())]
    seen = 0
    while stack:
        value, depth, inside = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ConfigError(f"{origin}: more than {MAX_VALUES:,} values once its YAML "
                              "aliases are expanded")
        if not isinstance(value, (dict, list)):
            continue
        if id(value) in inside:
            raise ConfigError(f"{origin}: a YAML alias refers to a value that holds it (a "
                              "cycle)")
        if depth >= MAX_DEPTH:
            raise ConfigError(f"{origin}: values nest deeper than {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value
        within = inside | {id(value)}
        stack.extend((child, depth + 1, within) for child in children)


def _label(kind: str, index: int, raw: Any) -> str:
    """``services[orders]`` for a named entity, ``routes[2]`` for one without a name."""
    if isinstance(raw, dict):
        for key in ("name", "username", "target"):
            if isinstance(raw.get(key), str) and not _VAULT.fullmatch(raw[key]):
                return f"{kind}[{raw[key]}]"
    return f"{kind}[{index}]"


@dataclass(frozen=True)
class Vaults:
    """Kong's env vault, under its own name and under each ``vaults`` entity's prefix.

    ``{vault://<prefix>/<resource>[/<key>]}`` reads the environment variable named
    ``<config.prefix><resource>``, upper-cased, ``-`` read as ``_`` (Kong's
    kong/vaults/env); with ``<key>`` the variable holds JSON and the reference is its
    string field ``<key>``.
    """

    environ: Mapping[str, str]
    #: Reference prefix -> the variable-name prefix of its env vault (``config.prefix``).
    prefixes: Mapping[str, str] = field(default_factory=lambda: {e.ENV_VAULT: ""})

    def resolve(self, value: Any, path: str, problems: list[str]) -> Any:
        """``value`` with every vault reference replaced by a Secret; a reference that
        cannot be read is added to ``problems`` (and stays, hidden, as the Secret of its
        own text)."""
        if isinstance(value, dict):
            return {k: self.resolve(v, f"{path}.{k}" if path else str(k), problems)
                    for k, v in value.items()}
        if isinstance(value, list):
            kind = path.rpartition(".")[2]
            prefix = path.rpartition(".")[0]
            return [self.resolve(item, f"{prefix}.{_label(kind, i, item)}".lstrip("."), problems)
                    for i, item in enumerate(value)]
        if isinstance(value, str) and (ref := _VAULT.fullmatch(value)):
            with collecting(problems):
                return self.secret(*ref.groups(), path)
            return s.Secret(value)
        return value

    def secret(self, vault: str, resource: str, key: str | None, path: str) -> s.Secret:
        """The value of one reference, or Invalid naming the variable (never its value)."""
        if vault not in self.prefixes:
            raise Invalid(path, f"vault reference: no vault with prefix {vault!r} (the env "
                                f"vault, or one declared under vaults)")
        variable = (self.prefixes[vault] + resource).upper().replace("-", "_")
        raw = self.environ.get(variable)
        if raw is None:
            raise Invalid(path, f"vault reference: environment variable {variable} is not set")
        if key is None:
            return s.Secret(raw)
        try:
            found = json.loads(raw)[key]
        except (ValueError, TypeError, KeyError):
            raise Invalid(path, f"vault reference: {variable} is not JSON with a string field "
                                f"{key!r}") from None
        if not isinstance(found, str):
            raise Invalid(path, f"vault reference: {variable}'s field {key!r} is not a string")
        return s.Secret(found)


class _Collector:
    """Walks the file: checks each entity, gathers nested ones, resolves references."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []
        self.services: dict[str, e.Service] = {}
        self.routes: list[e.Route] = []
        self.consumers: dict[str, e.Consumer] = {}
        self.plugins: list[e.Plugin] = []
        #: Kind -> name or id -> key, to resolve references.
        self.keys: dict[str, dict[str, str]] = {"service": {}, "route": {}, "consumer": {},
                                                "upstream": {}}
        self.targets: dict[str, list[e.Target]] = {}
        #: Each upstream's healthchecks record, by key.
        self.healthchecks: dict[str, HealthChecks] = {}
        self.balancing: dict[str, e.Balancing] = {}
        self.credentials: dict[str, list[tuple[str, str | None]]] = {}
        self.auth_credentials: dict[str, list[e.Credential]] = {
            kind: [] for kind in e.AUTH_CREDENTIAL_FIELDS}
        #: Checks to run once every entity is known: references to entities defined later.
        self.pending: list[Callable[[], None]] = []

    def declaration(self, data: Any) -> Declaration:
        if not isinstance(data, dict):
            self.problems.append("(top level): expected a record with _format_version and "
                                 "entities")
            return Declaration({}, [], {}, {}, [], tuple(self.problems))
        data = migrate(data)
        self._top_level(data)
        vaults = self._vaults(data.get("vaults"))
        data = vaults.resolve({k: data[k] for k in ENTITIES if data.get(k) is not None}, "",
                              self.problems)
        for kind in ENTITIES:
            entries = data.get(kind, [])
            if not isinstance(entries, list):
                self.problems.append(f"{kind}: expected an array")
                continue
            add = getattr(self, f"_{kind}")
            for index, raw in enumerate(entries):
                with collecting(self.problems):
                    add(raw, _label(kind, index, raw), {})
        for check in self.pending:
            with collecting(self.problems):
                check()
        upstreams = {name: e.Upstream(name, tuple(self.targets.get(name, ())),
                                      healthchecks=self.healthchecks[name],
                                      balancing=self.balancing.get(name, e.ROUND_ROBIN))
                     for name in self.keys["upstream"].values()}
        consumers = {key: e.Consumer(c.username, c.custom_id,
                                     tuple(self.credentials.get(key, ())), c.label, c.id)
                     for key, c in self.consumers.items()}
        return Declaration(self.services, self.routes, upstreams, consumers, self.plugins,
                           tuple(self.problems), self.auth_credentials)

    def _top_level(self, data: dict[str, Any]) -> None:
        """The keys besides the entities: Kong's metadata, and entities not read here."""
        for key, value in data.items():
            if key in ENTITIES or key in FIRST_ENTITIES or value in (None, []):
                continue
            if key not in META:
                self.problems.extend(e.unsupported_entity(str(key)).problems)
                continue
            with collecting(self.problems):
                META[key](value, key)
        if data.get("_format_version") is None:
            self.problems.append("_format_version: required field missing")

    def _vaults(self, entries: Any) -> Vaults:
        """The env vault and the ``vaults`` entities of the file (each an env vault under a
        prefix of its own, e.g. one whose variables all start with ``MYAPP_``)."""
        prefixes = {e.ENV_VAULT: ""}
        if entries is None:
            return Vaults(self.environ, prefixes)
        if not isinstance(entries, list):
            self.problems.append("vaults: expected an array")
            return Vaults(self.environ, prefixes)
        for index, raw in enumerate(entries):
            label = raw.get("prefix") if isinstance(raw, dict) else None
            path = f"vaults[{label if isinstance(label, str) else index}]"
            checked, ok = self._checked(raw, path, FIRST_ENTITIES["vaults"])
            if ok and checked["prefix"] in prefixes:
                self.problems.append(f"{path}.prefix: a vault with prefix "
                                     f"{checked['prefix']!r} is already declared")
            elif ok:
                prefixes[checked["prefix"]] = checked["config"]["prefix"] or ""
        return Vaults(self.environ, prefixes)

    def _checked(self, raw: Any, path: str, fields: s.Fields) -> tuple[dict[str, Any], bool]:
        """The record checked against ``fields``, and whether it passed; its problems go
        to the list, so a bad entity's nested ones are still checked."""
        before = len(self.problems)
        checked = s.record(raw, path, fields, self.problems)
        return checked, len(self.problems) == before

    def __getattr__(self, name: str) -> Callable[[Any, str, dict[str, Any]], None]:
        """``_jwt_secrets``, ``_acls``...: the reader of an authentication credential."""
        kind = name[1:]
        if name.startswith("_") and kind in e.AUTH_CREDENTIAL_FIELDS:
            return lambda raw, path, parent: self._auth_credential(kind, raw, path, parent)
        raise AttributeError(name)

    def _auth_credential(self, kind: str, raw: Any, path: str, parent: dict[str, Any]) -> None:
        checked, ok = self._checked(raw, path, e.AUTH_CREDENTIAL_FIELDS[kind])
        if not ok:
            return
        found = self.auth_credentials[kind]
        if "consumer" in parent:
            found.append(e.Credential(parent["consumer"], checked, path))
            return
        ref = self._refer("consumer", checked["consumer"] or _missing(f"{path}.consumer"),
                          f"{path}.consumer")
        self.pending.append(lambda: found.append(e.Credential(ref(), checked, path)))

    def _register(self, kind: str, raw: dict[str, Any], name: str | None, path: str) -> str:
        """Record an entity's name and id; return its key. Names and ids must be unique."""
        key = name or raw.get("id") or path
        for given in (name, raw.get("id")):
            if given is None:
                continue
            if given in self.keys[kind]:
                self.problems.append(f"{path}: {kind} {s.shown(given)} is defined twice")
            self.keys[kind][given] = key
        return key

    def _refer(self, kind: str, given: str | None, path: str) -> Callable[[], str | None]:
        """A function giving the key of the referenced entity, for a check of
        ``self.pending`` (run once every entity is read)."""
        def key() -> str | None:
            if given is None:
                return None
            found = self.keys[kind].get(given)
            if found is None:
                raise Invalid(path, f"no {kind} named {s.shown(given)} in this file")
            return found
        return key

    def _nested(self, raw: dict[str, Any], path: str, kind: str, parent: dict[str, Any]) -> None:
        add = getattr(self, f"_{kind}")
        for index, item in enumerate(raw[kind] or ()):
            with collecting(self.problems):
                add(item, f"{path}.{_label(kind, index, item)}", parent)

    def _services(self, raw: Any, path: str, _parent: dict[str, Any]) -> None:
        checked, ok = self._checked(raw, path, e.SERVICE_FIELDS)
        key = self._register("service", checked, checked["name"], path)
        if ok:
            with collecting(self.problems):
                self.services[key] = e.service(checked, path)
        self._nested(checked, path, "routes", {"service": key})
        self._nested(checked, path, "plugins", {"service": key})

    def _routes(self, raw: Any, path: str, parent: dict[str, Any]) -> None:
        """A route; without a service (none given, or ``service: null``) it loads, and
        its requests get Kong's 503 once its plugins ran."""
        checked, ok = self._checked(raw, path, e.ROUTE_FIELDS)
        if parent and checked["service"] is not None:
            self.problems.append(f"{path}.service: a nested route already belongs to its "
                                 "service")
        key = self._register("route", checked, checked["name"], path)
        if ok:
            with collecting(self.problems):
                self._route(checked, path, parent.get("service"))
        self._nested(checked, path, "plugins", {"route": key})

    def _route(self, checked: dict[str, Any], path: str, parent_service: str | None) -> None:
        """Add the route; a top-level one's service is bound once every service is known."""
        given = checked["service"]
        checked["service"] = parent_service
        index = len(self.routes)
        self.routes.append(e.route(checked, path))
        if parent_service is None and given is not None:
            ref = self._refer("service", given, f"{path}.service")

            def bind() -> None:
                self.routes[index] = replace(self.routes[index], service=ref())
            self.pending.append(bind)

    def _upstreams(self, raw: Any, path: str, _parent: dict[str, Any]) -> None:
        before = len(self.problems)
        checked, _ = self._checked(raw, path, e.UPSTREAM_FIELDS)
        key = self._register("upstream", checked, checked["name"], path)
        self.healthchecks[key] = checked["healthchecks"]
        self.targets.setdefault(key, [])
        failed = {line.partition(": ")[0].removeprefix(path + ".")
                  for line in self.problems[before:]}
        with collecting(self.problems):  # Kong's entity checks, beside the fields' problems
            self.balancing[key] = e.balancing(raw, checked, path, failed)
        self._nested(checked, path, "targets", {"upstream": key})

    def _targets(self, raw: Any, path: str, parent: dict[str, Any]) -> None:
        checked, ok = self._checked(raw, path, e.TARGET_FIELDS)
        if not ok:
            return
        target = e.target(checked, path)
        if "upstream" in parent:
            self.targets[parent["upstream"]].append(target)
            return
        ref = self._refer("upstream", checked["upstream"] or _missing(f"{path}.upstream"),
                          f"{path}.upstream")
        self.pending.append(lambda: self.targets[ref()].append(target))

    def _consumers(self, raw: Any, path: str, _parent: dict[str, Any]) -> None:
        checked, ok = self._checked(raw, path, e.CONSUMER_FIELDS)
        if ok and checked["username"] is None and checked["custom_id"] is None:
            self.problems.append(f"{path}: at least one of these fields must be non-empty: "
                                 "'custom_id', 'username'")
        username = checked["username"] or checked["custom_id"]
        key = self._register("consumer", checked, checked["username"], path)
        if checked["custom_id"] is not None and checked["custom_id"] != checked["username"]:
            self.keys["consumer"].setdefault(checked["custom_id"], key)
        if username is not None:
            self.consumers[key] = e.Consumer(username, checked["custom_id"], (), path,
                                             checked["id"])
        for kind in ("keyauth_credentials", *e.AUTH_CREDENTIAL_FIELDS):
            self._nested(checked, path, kind, {"consumer": key})
        self._nested(checked, path, "plugins", {"consumer": key})

    def _keyauth_credentials(self, raw: Any, path: str, parent: dict[str, Any]) -> None:
        checked, ok = self._checked(raw, path, e.CREDENTIAL_FIELDS)
        if not ok:
            return
        credential = checked["key"], checked["id"]
        if "consumer" in parent:
            self.credentials.setdefault(parent["consumer"], []).append(credential)
            return
        ref = self._refer("consumer", checked["consumer"] or _missing(f"{path}.consumer"),
                          f"{path}.consumer")
        self.pending.append(
            lambda: self.credentials.setdefault(ref(), []).append(credential))

    def _plugins(self, raw: Any, path: str, parent: dict[str, Any]) -> None:
        checked, ok = self._checked(raw, path, e.PLUGIN_FIELDS)
        for kind in ("service", "route", "consumer"):
            if kind in parent and checked[kind] is not None:
                raise Invalid(f"{path}.{kind}", f"a plugin nested in a {kind} is already "
                                                "scoped to it")
        refs = {kind: self._refer(kind, checked[kind], f"{path}.{kind}")
                for kind in ("service", "route", "consumer") if kind not in parent}
        if not ok:
            return
        index = len(self.plugins)
        plugin = e.Plugin(checked["name"], checked["config"], checked["enabled"], None, None,
                          None, path)
        self.plugins.append(plugin)

        def bind() -> None:
            scope = {"service": None, "route": None, "consumer": None, **parent}
            problems: list[str] = []
            for kind, ref in refs.items():
                with collecting(problems):
                    scope[kind] = ref()
            s.raise_any(problems)
            self.plugins[index] = replace(plugin, **scope)
        self.pending.append(bind)


def _missing(path: str) -> str:
    raise Invalid(path, "required field missing")
