"""Kong's ``redis`` plugin record and its deprecated ``redis_*`` shorthands, as a Redis URL.

Kong 3.x plugins that keep state in Redis (rate-limiting) share one record,
kong/tools/redis/schema.lua: host, port, timeout (ms), username, password,
database, ssl, ssl_verify, server_name. The flat ``redis_host``, ``redis_port``...
of older files are shorthands Kong still accepts (each sets one field of the
record; both given with different values is an error, as in Kong's schema).
:data:`REDIS_CHECKS` goes into a plugin's field table; :func:`redis_texts` gives
the plugin's ``redis_url`` setting (the form of :func:`gateway.store.redis.kong_redis_url`),
so a plugin's Redis is built by the same client code as GATEWAY_REDIS_URL's.

Kong Enterprise's fields of the record (rate-limiting-advanced's, as Kong's
documentation names them) are read too, so a plugin reaches a Sentinel or a Cluster:

- ``sentinel_master``, ``sentinel_nodes`` (``[{host, port}]``, port 26379),
  ``sentinel_role`` (``master``, the default; ``slave``; ``any``),
  ``sentinel_username``, ``sentinel_password``: a ``redis+sentinel://`` URL.
- ``cluster_nodes`` (``[{ip, port}]``, port 6379), ``cluster_max_redirections`` (5):
  a ``redis+cluster://`` URL.
- ``connect_timeout`` maps to the socket's connect timeout and ``read_timeout`` /
  ``send_timeout`` to its timeout for each answer (redis-py has one for both: the
  larger); each replaces ``timeout`` where given.
- ``connection_is_proxied``, ``keepalive_pool_size`` and ``keepalive_backlog`` are
  cosocket settings of OpenResty with no redis-py counterpart (its pool keeps every
  idle connection, it has no backlog): accepted at Kong's defaults only.

Kong's entity checks hold: ``sentinel_master`` and ``sentinel_nodes`` come together,
and ``host``, the sentinel fields and ``cluster_nodes`` exclude each other (Kong's
words, "these sets are mutually exclusive"). ``port`` is not in those sets: Kong OSS
writes it at 6379 beside a null host. Secrets (usernames, passwords) never appear in
an error; logs name a Redis by :meth:`gateway.config.RedisTarget.shown`, without them.
"""

from __future__ import annotations

from typing import Any

from gateway import schema as s
from gateway.config import SENTINEL_ROLES
from gateway.schema import Invalid
from gateway.store.redis import KONG_REDIS_TIMEOUT_MS, kong_redis_url


def _text(value: Any, path: str) -> str:
    """A string, empty allowed (Kong's ``len_min = 0`` on password)."""
    if not isinstance(value, str):
        raise Invalid(path, "expected a string")
    return value


#: The record's fields: name -> (check, Kong's default).
RECORD: dict[str, tuple[s.Check, Any]] = {
    "host": (s.hostname, None),
    "port": (s.port, 6379),
    "timeout": (s.integer(0, 2**31 - 2), KONG_REDIS_TIMEOUT_MS),
    "username": (s.string, None),
    "password": (_text, None),
    "database": (s.integer(0, 2**31 - 1), 0),
    "ssl": (s.boolean, False),
    "ssl_verify": (s.boolean, False),
    "server_name": (s.hostname, None),
}
#: Fields of the record that are secrets: their values never appear in an error.
_SECRET = {"username", "password"}
#: Kong's words for OpenResty's socket settings that redis-py has no counterpart for.
_NO_COUNTERPART = ("is not supported by this gateway: an OpenResty cosocket setting "
                   "without a redis-py counterpart")


def _nodes(host_key: str, port: int) -> s.Check:
    """Kong Enterprise's array of ``{host_key, port}`` records -> ((host, port), ...)."""
    fields = {host_key: (s.hostname, "127.0.0.1"), "port": (s.port, port)}

    def node(value: Any, path: str) -> tuple[str, int]:
        checked = s.record(value, path, fields)
        return checked[host_key], checked["port"]

    return s.array(node)


def _unset(value: Any, path: str) -> None:
    """A field accepted at Kong's default only, which is null."""
    raise Invalid(path, f"{_NO_COUNTERPART} (only null)")


_TIMEOUT = s.integer(0, 2**31 - 2)
#: Kong Enterprise's fields of the record: name -> (check, default).
ENTERPRISE: dict[str, tuple[s.Check, Any]] = {
    "sentinel_master": (s.string, None),
    "sentinel_role": (s.one_of(*SENTINEL_ROLES), "master"),
    "sentinel_nodes": (_nodes("host", 26379), None),
    "sentinel_username": (s.string, None),
    "sentinel_password": (_text, None),
    "cluster_nodes": (_nodes("ip", 6379), None),
    "cluster_max_redirections": (s.integer(0, 1000), 5),
    "connect_timeout": (_TIMEOUT, None),
    "read_timeout": (_TIMEOUT, None),
    "send_timeout": (_TIMEOUT, None),
    "connection_is_proxied": (s.fixed(False, _NO_COUNTERPART), False),
    "keepalive_pool_size": (s.fixed(256, _NO_COUNTERPART), 256),
    "keepalive_backlog": (_unset, None),
}
_FIELDS = {**RECORD, **ENTERPRISE}


def _record(value: Any, path: str) -> dict[str, Any]:
    """The fields the file gives (defaults are filled in later, after the shorthands)."""
    if not isinstance(value, dict):
        raise Invalid(path, "expected a record")
    given = {}
    for name, item in value.items():
        where = f"{path}.{name}"
        if name not in _FIELDS:
            raise Invalid(where, "unknown field")
        if item is not None:
            given[name] = _FIELDS[name][0](item, where)
    return given


def _shorthand(name: str) -> s.Check:
    return lambda value, path: RECORD[name][0](value, path)


#: The plugin fields' checks: the record, and Kong's deprecated flat shorthands of its fields.
REDIS_CHECKS: dict[str, s.Check] = {
    "redis": _record, **{f"redis_{name}": _shorthand(name) for name in RECORD}}


def redis_texts(conf: dict[str, Any], path: str) -> dict[str, str]:
    """``{"redis_url": URL}`` when the plugin names a Redis host, else nothing.

    ``conf`` is the plugin config checked with REDIS_CHECKS.
    """
    given = dict(conf.get("redis") or {})
    for name in RECORD:
        flat = conf.get(f"redis_{name}")
        if flat is None:
            continue
        if name in given and given[name] != flat:
            raise Invalid(f"{path}.redis_{name}", _mismatch(name, flat, given[name]))
        given[name] = flat
    _entity_checks(given, f"{path}.redis")
    if not any(given.get(name) for name in ("host", "sentinel_nodes", "cluster_nodes")):
        return {}
    record = {name: given.get(name, default) for name, (_, default) in _FIELDS.items()}
    return {"redis_url": kong_redis_url(record)}


#: The record's field sets that exclude each other (Kong Enterprise's entity checks).
_SETS = {"sentinel": ("sentinel_master", "sentinel_role", "sentinel_nodes"),
         "cluster": ("cluster_nodes",), "host": ("host",)}


def _entity_checks(given: dict[str, Any], path: str) -> None:
    """Kong's checks across the record's fields, every problem listed (``path`` is the
    record's place)."""
    problems = []
    if bool(given.get("sentinel_master")) != bool(given.get("sentinel_nodes")) or (
            "sentinel_role" in given and not given.get("sentinel_nodes")):
        missing = "sentinel_nodes" if given.get("sentinel_master") else "sentinel_master"
        problems.append(f"{path}.{missing}: all or none of these fields must be set: "
                        "'sentinel_master', 'sentinel_nodes' (and sentinel_role only with them)")
    nonempty = {kind: [name for name in names if given.get(name)]
                for kind, names in _SETS.items()}
    for one, other in (("sentinel", "host"), ("sentinel", "cluster"), ("cluster", "host")):
        if nonempty[one] and nonempty[other]:
            place = "cluster_nodes" if "cluster" in (one, other) else "sentinel_nodes"
            problems.append(f"{path}.{place}: these sets are mutually exclusive: "
                            f"({_quoted(nonempty[one])}), ({_quoted(nonempty[other])})")
    problems += _topology_limits(given, path, bool(nonempty["sentinel"] or nonempty["cluster"]))
    s.raise_any(problems)


def _topology_limits(given: dict[str, Any], path: str, several: bool) -> list[str]:
    """What a Sentinel set or a Cluster cannot take: one server's TLS name, a database."""
    problems = []
    if several and given.get("server_name"):
        problems.append(f"{path}.server_name: is not supported by this gateway with "
                        "sentinel_nodes or cluster_nodes (it names one TLS server)")
    if given.get("cluster_nodes") and given.get("database"):
        problems.append(f"{path}.database: a Redis Cluster has database 0 only")
    return problems


def _quoted(names: list[str]) -> str:
    """Kong's quoted_list: ``'a', 'b'``."""
    return ", ".join(f"'{name}'" for name in names)


def _mismatch(name: str, flat: Any, nested: Any) -> str:
    """Kong's words for a shorthand and its field given different values (secrets hidden)."""
    if name in _SECRET or isinstance(flat, s.Secret) or isinstance(nested, s.Secret):
        flat = nested = "<hidden>"
    return (f"both deprecated and new field are used but their values mismatch: "
            f"config.redis_{name} = {flat} vs config.redis.{name} = {nested}")
