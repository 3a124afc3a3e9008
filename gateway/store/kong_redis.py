"""Kong's ``redis`` plugin record and its deprecated ``redis_*`` shorthands, as a Redis URL.

Kong 3.x plugins that keep state in Redis (rate-limiting) share one record,
kong/tools/redis/schema.lua: host, port, timeout (ms), username, password,
database, ssl, ssl_verify, server_name. The flat ``redis_host``, ``redis_port``...
of older files are shorthands Kong still accepts (each sets one field of the
record; both given with different values is an error, as in Kong's schema).
:data:`REDIS_CHECKS` goes into a plugin's field table; :func:`redis_texts` gives
the plugin's ``redis_url`` setting (the form of :func:`gateway.store.redis.kong_redis_url`).

Kong Enterprise's Redis fields (Sentinel, Cluster, split timeouts) are not in
Kong OSS's schema, which refuses them; so does this one, pointing at the
GATEWAY_REDIS_URL forms that reach a Sentinel or a Cluster.
"""

from __future__ import annotations

from typing import Any

from gateway import schema as s
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
#: Kong Enterprise's Redis fields (rate-limiting-advanced, proxy-cache-advanced...).
_ENTERPRISE = frozenset((
    "sentinel_master", "sentinel_role", "sentinel_nodes", "sentinel_username",
    "sentinel_password", "cluster_nodes", "cluster_max_redirections", "connection_is_proxied",
    "connect_timeout", "read_timeout", "send_timeout", "keepalive_pool_size",
    "keepalive_backlog"))
_ENTERPRISE_REASON = (
    "is a Kong Enterprise Redis field, not in Kong OSS's rate-limiting schema: not supported "
    "by this gateway; for a Sentinel or a Cluster leave config.redis.host null and set "
    "GATEWAY_REDIS_URL (redis+sentinel://... or redis+cluster://...)")


def _record(value: Any, path: str) -> dict[str, Any]:
    """The fields the file gives (defaults are filled in later, after the shorthands)."""
    if not isinstance(value, dict):
        raise Invalid(path, "expected a record")
    given = {}
    for name, item in value.items():
        where = f"{path}.{name}"
        if name in _ENTERPRISE:
            if item not in (None, [], {}):
                raise Invalid(where, _ENTERPRISE_REASON)
        elif name not in RECORD:
            raise Invalid(where, "unknown field")
        elif item is not None:
            given[name] = RECORD[name][0](item, where)
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
    if given.get("host") is None:
        return {}
    record = {name: given.get(name, default) for name, (_, default) in RECORD.items()}
    return {"redis_url": kong_redis_url(record)}


def _mismatch(name: str, flat: Any, nested: Any) -> str:
    """Kong's words for a shorthand and its field given different values (secrets hidden)."""
    if name in _SECRET or isinstance(flat, s.Secret) or isinstance(nested, s.Secret):
        flat = nested = "<hidden>"
    return (f"both deprecated and new field are used but their values mismatch: "
            f"config.redis_{name} = {flat} vs config.redis.{name} = {nested}")
