"""Settings from ``GATEWAY_*`` environment variables, parsed once at start.

Every setting is a dataclass field made with :func:`setting`: its variable,
parser, default (as the text a user would type) and one-line doc sit together,
like gunicorn's settings. :func:`load` turns an environment into a frozen
dataclass or raises :class:`ConfigError` with one line naming the variable, the
value and what is allowed. This module imports only the standard library so
``gunicorn.conf.py`` can use it in the master before gevent patches anything.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit

PREFIX = "GATEWAY_"
log = logging.getLogger("gateway.config")
T = TypeVar("T")
Parser = Callable[[str], Any]


class ConfigError(ValueError):
    """A setting is missing, unknown or has a bad value; str() is one line for the operator."""


class SecretInValue(ValueError):
    """A parser's error about a value that holds a secret: the value is not echoed."""


def setting(
    env: str | None = None,
    parse: Parser | None = None,
    default: str | None = None,
    doc: str = "",
    *,
    required: bool = False,
    secret: bool = False,
) -> Any:
    """Declare a dataclass field read from the variable ``env``.

    ``default`` is the text used when the variable is unset or empty (None: the
    field is None). ``secret`` keeps the value out of error messages. ``parse``
    defaults to :func:`text`. ``env`` may be left out in a filter that is not
    built in: its variable is derived from the filter's NAME and the field's
    name (:func:`variable`).
    """
    meta = {"env": env, "parse": parse or text, "default": default, "doc": doc,
            "required": required, "secret": secret}
    return dataclasses.field(metadata=meta)


def variable(field: dataclasses.Field, scope: str | None = None) -> str:
    """The variable a setting is read from.

    Built-in settings (``scope`` None) name it in ``setting(env, ...)``. A filter
    that is not built in has ``scope`` = its NAME, and every field reads
    ``GATEWAY_<NAME>_<FIELD>``, upper-cased, ``-`` becoming ``_``.
    """
    if "parse" not in field.metadata:
        raise ConfigError(f"field {field.name!r} is not declared with setting(...)")
    declared = field.metadata["env"]
    if scope is None:
        if not declared:
            raise ConfigError(f"setting {field.name!r} names no variable")
        return declared
    derived = f"{PREFIX}{scope}_{field.name}".upper().replace("-", "_")
    if declared and declared != derived:
        raise ConfigError(f"filter {scope!r}: setting {field.name!r} declares {declared}; "
                          f"a filter that is not built in reads {derived}")
    return derived


def load(cls: type[T], environ: Mapping[str, str], scope: str | None = None) -> T:
    """Build the frozen dataclass ``cls`` from ``environ``; raise ConfigError on bad input.

    ``scope``: the NAME of a filter that is not built in (see :func:`variable`).
    """
    values = {}
    for field in dataclasses.fields(cls):
        meta = field.metadata
        env = variable(field, scope)
        raw = environ.get(env, "").strip() or meta["default"]
        if raw is None:
            if meta["required"]:
                raise ConfigError(f"{env} is required: {meta['doc']}")
            values[field.name] = None
            continue
        try:
            values[field.name] = meta["parse"](raw)
        except ValueError as exc:
            shown = "<hidden>" if meta["secret"] or isinstance(exc, SecretInValue) else repr(raw)
            raise ConfigError(f"{env}={shown}: {exc}") from None
    return cls(**values)


def env_names(classes: Iterable[type], scope: str | None = None) -> set[str]:
    """The variable names the setting dataclasses ``classes`` declare (``scope``: see load)."""
    return {variable(f, scope) for cls in classes for f in dataclasses.fields(cls)}


def reject_unknown(environ: Mapping[str, str], known: set[str]) -> None:
    """Raise ConfigError for the first ``GATEWAY_*`` variable no setting declares (a typo)."""
    for name in sorted(environ):
        if name.startswith(PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{name}: unknown setting{hint}; see docs/configuration.md")


def warn_disabled_filter_settings(environ: Mapping[str, str], filters: Mapping[str, Any],
                                  enabled: Iterable[str]) -> None:
    """Warn about variables set for a filter (``filters``: name -> class with its Config) that
    is not ``enabled``: they are ignored, which is seldom what the operator meant."""
    given = {name for name, value in environ.items() if value.strip()}
    for filter_name, cls in filters.items():
        ignored = sorted(env_names([cls.Config]) & given)
        if ignored and filter_name not in enabled:
            log.warning("%s set but the %s filter is not in GATEWAY_FILTERS: ignored",
                        ", ".join(ignored), filter_name)


def describe(cls: type, scope: str | None = None) -> list[tuple[str, str, str]]:
    """(variable, default, doc) for each setting of ``cls``: the rows of docs/configuration.md."""
    return [(variable(f, scope), f.metadata["default"] or "", f.metadata["doc"])
            for f in dataclasses.fields(cls)]


# Parsers: each takes the raw text and returns the value or raises ValueError
# saying what is allowed.

def boolean(raw: str) -> bool:
    """true/false, 1/0, yes/no, on/off."""
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError("must be true or false")


def text(raw: str) -> str:
    """Any non-empty text."""
    return raw


def number(kind: type = float, minimum: float = 0, maximum: float | None = None) -> Parser:
    """A parser for an int or float within [minimum, maximum]."""
    allowed = f"{'an integer' if kind is int else 'a number'} >= {minimum}"
    if maximum is not None:
        allowed += f" and <= {maximum}"

    def parse(raw: str) -> int | float:
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"must be {allowed}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError(f"must be {allowed}")
        return value

    return parse


def kong_number(greater_than: float | None = None) -> Parser:
    """A parser for a Kong ``number`` field: any number (above ``greater_than`` when given),
    an integral one as an int, so it is written as Lua writes it (``5``, not ``5.0``)."""
    allowed = "a number" if greater_than is None else f"a number > {greater_than:g}"

    def parse(raw: str) -> int | float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"must be {allowed}") from None
        if not math.isfinite(value) or (greater_than is not None and value <= greater_than):
            raise ValueError(f"must be {allowed}")
        return int(value) if value.is_integer() else value

    return parse


def choice(*options: str) -> Parser:
    """A parser accepting one of ``options`` (case-insensitive)."""

    def parse(raw: str) -> str:
        if raw.lower() not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return raw.lower()

    return parse


def names(raw: str) -> tuple[str, ...]:
    """A comma-separated list of names."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def pairs(separator: str) -> Parser:
    """A parser for ``key<sep>value,key<sep>value``, keeping order and repeats."""

    def parse(raw: str) -> tuple[tuple[str, str], ...]:
        result = []
        for item in names(raw):
            key, sep, value = item.partition(separator)
            if not sep or not key.strip():
                raise ValueError(f"must be a comma-separated list of name{separator}value")
            result.append((key.strip(), value.strip()))
        return tuple(result)

    return parse


def _port_ok(parts: SplitResult) -> bool:
    """False when the URL's port is not a number in 0-65535 (urlsplit checks on access)."""
    try:
        parts.port  # noqa: B018
    except ValueError:
        return False
    return True


def http_urls(raw: str) -> tuple[str, ...]:
    """A comma-separated list of http:// or https:// URLs with a host."""
    urls = names(raw)
    for url in urls:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            raise SecretInValue("a URL with a user or password is not supported (it would not "
                                "be sent); pass credentials as a header")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
        if not _port_ok(parts):
            raise ValueError(f"{url!r} has a bad port")
        if parts.query or parts.fragment:
            raise ValueError(f"{url!r} must not have a query or fragment")
    if not urls:
        raise ValueError("must list at least one URL")
    return urls


def http_url(raw: str) -> str:
    """One http:// or https:// URL with a host (a query is allowed: it is a service's URL)."""
    parts = urlsplit(raw)
    if "@" in parts.netloc:
        raise SecretInValue("a URL with a user or password is not supported; pass credentials "
                            "as a header")
    if parts.scheme not in ("http", "https") or not parts.hostname or not _port_ok(parts) \
            or any(c.isspace() for c in raw):
        raise ValueError("must be one http:// or https:// URL with a host (and a good port)")
    return raw


#: Default ports of the Redis URL forms' nodes.
_REDIS_PORTS = {"redis": 6379, "sentinel": 26379, "cluster": 6379}
_REDIS_SCHEMES = {"redis": ("redis", False), "rediss": ("redis", True),
                  "redis+sentinel": ("sentinel", False), "rediss+sentinel": ("sentinel", True),
                  "redis+cluster": ("cluster", False), "rediss+cluster": ("cluster", True),
                  "unix": ("unix", False)}
_REDIS_FORMS = ("must be a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// "
                "URL (see docs/operations.md, Redis URL forms)")
_REDIS_OPTIONS = {"redis": {"timeout", "connect_timeout", "ssl_verify", "server_name"},
                  "unix": {"timeout", "connect_timeout", "db"},
                  "sentinel": {"timeout", "connect_timeout", "ssl_verify", "sentinel_username",
                               "sentinel_password", "sentinel_role"},
                  "cluster": {"timeout", "connect_timeout", "ssl_verify", "max_redirections"}}
#: ``sentinel_role=``: which server of a Sentinel's set to use (Kong Enterprise's values).
SENTINEL_ROLES = ("master", "slave", "any")
_DATABASE = re.compile(r"[0-9]{1,5}")


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """Where a Redis is and how to talk to it, as a Redis URL says (see :func:`redis_target`).

    ``kind``: ``redis`` (one server), ``unix`` (a socket), ``sentinel`` (the master
    named ``service``, found through the sentinels of ``nodes``) or ``cluster``
    (``nodes`` are startup nodes). Passwords stay out of repr(); :meth:`shown` is the
    form for logs and errors.
    """

    kind: str
    nodes: tuple[tuple[str, int], ...] = ()
    path: str | None = None
    database: int = 0
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    tls: bool = False
    tls_verify: bool = True
    server_name: str | None = None
    #: Seconds to connect and for each answer: Redis is on the request path.
    timeout: float = 0.5
    service: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = dataclasses.field(default=None, repr=False)
    #: ``master``, ``slave`` (a replica, the master when none answers) or ``any`` (the
    #: master while the sentinels name one, else a replica).
    sentinel_role: str = "master"
    #: Seconds to connect, when not ``timeout`` (Kong Enterprise's ``connect_timeout``).
    connect_timeout: float | None = None
    #: A Cluster command's MOVED/ASK redirections followed before it fails (redis-py: 15).
    max_redirections: int | None = None

    def url(self) -> str:
        """The URL that :func:`redis_target` reads back into this target (secrets included)."""
        scheme = {"redis": "redis", "unix": "unix", "sentinel": "redis+sentinel",
                  "cluster": "redis+cluster"}[self.kind]
        if self.tls:
            scheme = scheme.replace("redis", "rediss", 1)
        user = ""
        if self.username is not None or self.password is not None:
            user = quote(self.username or "", safe="")
            if self.password is not None:
                user += ":" + quote(self.password, safe="")
            user += "@"
        options = {"timeout": f"{self.timeout:g}"}
        if self.connect_timeout is not None:
            options["connect_timeout"] = f"{self.connect_timeout:g}"
        if self.tls and not self.tls_verify:
            options["ssl_verify"] = "false"
        if self.sentinel_role != "master":
            options["sentinel_role"] = self.sentinel_role
        for name in ("server_name", "sentinel_username", "sentinel_password",
                     "max_redirections"):
            if getattr(self, name) is not None:
                options[name] = str(getattr(self, name))
        if self.kind == "unix":
            options["db"] = str(self.database)
            return f"unix://{user}{quote(self.path or '')}?{urlencode(options)}"
        where = self._nodes()
        if self.kind == "sentinel":
            where += f"/{quote(self.service or '', safe='')}"
        if self.kind != "cluster":
            where += f"/{self.database}"
        return f"{scheme}://{user}{where}?{urlencode(options)}"

    def shown(self) -> str:
        """The target for a log line or an error: no user, password or option."""
        tls = "s" if self.tls else ""
        if self.kind == "unix":
            return f"unix://{self.path}"
        if self.kind == "sentinel":
            return f"redis{tls}+sentinel://{self._nodes()}/{self.service}/{self.database}"
        if self.kind == "cluster":
            return f"redis{tls}+cluster://{self._nodes()}"
        return f"redis{tls}://{self._nodes()}/{self.database}"

    def _nodes(self) -> str:
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.nodes)


def _redis_nodes(hosts: str, kind: str) -> tuple[tuple[str, int], ...]:
    """``host[:port],[v6]:port,...`` -> ((host, port), ...), each port in 1-65535."""
    nodes = []
    for item in hosts.split(","):
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
            if rest and not rest.startswith(":"):
                raise ValueError(f"{_REDIS_FORMS}: a bad [IPv6]:port")
        else:
            host, _, port = item.partition(":")
        if not host or any(c.isspace() or c in "/?#@[]" for c in host):
            raise ValueError(f"{_REDIS_FORMS}, with a host")
        if port and not (_PORT.fullmatch(port) and 1 <= int(port) <= 65535):
            raise ValueError("has a bad port (1-65535)")
        nodes.append((host, int(port) if port else _REDIS_PORTS[kind]))
    if kind == "redis" and len(nodes) > 1:
        raise ValueError("redis:// names one server; several are redis+sentinel:// or "
                         "redis+cluster://")
    return tuple(nodes)


def _redis_options(query: str, kind: str) -> dict[str, str]:
    """The URL's ``?name=value`` options, each allowed for ``kind`` and given once."""
    options: dict[str, str] = {}
    try:
        given = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise SecretInValue("the options after ? must be name=value pairs joined by &") from None
    for name, value in given:
        if name not in _REDIS_OPTIONS[kind]:
            allowed = ", ".join(sorted(_REDIS_OPTIONS[kind]))
            raise SecretInValue(f"option {name!r} is not one of: {allowed}")
        if name in options:
            raise SecretInValue(f"option {name!r} is given twice")
        options[name] = value
    return options


def _redis_location(kind: str, path: str) -> tuple[str | None, int]:
    """The URL path: ``/service/db`` (sentinel), ``/db`` (one server), empty or ``/0``."""
    parts = [unquote(part) for part in path.strip("/").split("/")] if path.strip("/") else []
    service = None
    if kind == "sentinel":
        if not parts or not parts[0]:
            raise ValueError("redis+sentinel:// needs the master's name: "
                             "redis+sentinel://host:26379/mymaster/0")
        service = parts.pop(0)
    if len(parts) > 1 or (parts and not _DATABASE.fullmatch(parts[0])):
        raise ValueError("the path must be a database number, e.g. redis://host:6379/0")
    database = int(parts[0]) if parts else 0
    if kind == "cluster" and database:
        raise ValueError("a Redis Cluster has database 0 only")
    return service, database


def redis_target(raw: str) -> RedisTarget:
    """A Redis URL (every form docs/operations.md lists) as a :class:`RedisTarget`.

    Errors never quote the URL: it may hold a password.
    """
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() not in _REDIS_SCHEMES or any(c.isspace() for c in raw):
        raise ValueError(_REDIS_FORMS)
    if "#" in rest:
        raise ValueError(f"{_REDIS_FORMS}; no #fragment (write # in a password as %23)")
    kind, tls = _REDIS_SCHEMES[scheme.lower()]
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    user, _, hosts = netloc.rpartition("@")
    username, colon, password = user.partition(":")
    options = _redis_options(query, kind)
    creds = {"username": unquote(username) or None,
             "password": unquote(password) if colon else None}
    if kind == "unix":
        if hosts or not path:
            raise ValueError("unix:// needs a socket path: unix:///run/redis.sock")
        database = options.get("db", "0")
        if not _DATABASE.fullmatch(database):
            raise ValueError("the db option must be a database number")
        return RedisTarget("unix", path=unquote(slash + path), database=int(database),
                           **_redis_timeouts(options), **creds)
    service, database = _redis_location(kind, slash + path)
    try:
        verify = boolean(options.get("ssl_verify", "true"))
    except ValueError:
        raise ValueError("the ssl_verify option must be true or false") from None
    return RedisTarget(
        kind, _redis_nodes(hosts, kind), database=database, tls=tls, tls_verify=verify,
        server_name=options.get("server_name") or None, service=service,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password"),
        sentinel_role=_redis_role(options), max_redirections=_redis_redirections(options),
        **_redis_timeouts(options), **creds)


def _redis_timeouts(options: dict[str, str]) -> dict[str, float | None]:
    """``timeout`` (0.5 s unless given) and ``connect_timeout`` (none: ``timeout``)."""
    found: dict[str, float | None] = {"timeout": 0.5, "connect_timeout": None}
    for name in found:
        if name not in options:
            continue
        try:
            found[name] = number(float, 0.001, 3600)(options[name])
        except ValueError as exc:
            raise ValueError(f"the {name} option (seconds) {exc}") from None
    return found


def _redis_role(options: dict[str, str]) -> str:
    role = options.get("sentinel_role", "master")
    if role not in SENTINEL_ROLES:
        raise ValueError(f"the sentinel_role option must be one of: {', '.join(SENTINEL_ROLES)}")
    return role


def _redis_redirections(options: dict[str, str]) -> int | None:
    if "max_redirections" not in options:
        return None
    try:
        return number(int, 0, 1000)(options["max_redirections"])
    except ValueError as exc:
        raise ValueError(f"the max_redirections option {exc}") from None


def redis_url(raw: str) -> str:
    """A Redis URL in one of the forms :func:`redis_target` reads (kept as text)."""
    redis_target(raw)
    return raw


_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def byte_size(raw: str) -> int:
    """A size in bytes, optionally with a k, m or g suffix (powers of 1024, as nginx's)."""
    digits, unit = raw[:-1], _SIZE_UNITS.get(raw[-1:].lower())
    if unit is None:
        digits, unit = raw, 1
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError("must be a whole number of bytes, optionally with a k, m or g suffix")
    return int(digits) * unit


def path_prefix_or_off(raw: str) -> str | None:
    """A URL path prefix such as ``/_gateway`` (trailing slash dropped), or ``off`` for None."""
    if raw.lower() == "off":
        return None
    prefix = raw.rstrip("/")
    if not prefix.startswith("/") or any(c in prefix for c in "?#% \t"):
        raise ValueError("must be a path like /_gateway (no query, spaces or escapes), or off")
    return prefix


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")  # an IPv4 address is one too
_PORT = re.compile(r"[0-9]{1,5}")


def bind_address(raw: str) -> str:
    """``host:port``, ``[IPv6]:port`` or ``unix:PATH``, checked before gunicorn sees it.

    gunicorn's own parser accepts ``nonsense::`` and then fails at bind time with an
    error that does not name the variable; this one names the forms it accepts.
    """
    allowed = "must be host:port, [IPv6]:port or unix:PATH"
    if raw.startswith("unix:"):
        if not raw.removeprefix("unix:").removeprefix("//"):
            raise ValueError(f"{allowed} (the socket path is missing)")
        return raw
    host, _, port = raw.rpartition(":")
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"{allowed}, with a port in 1-65535")
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{allowed} ({host} is not an IPv6 address)") from None
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError(f"{allowed} ({host!r} is not a host name or IPv4 address)")
    return raw


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """gunicorn's knobs, read by gunicorn.conf.py in the master."""

    bind: str = setting("GATEWAY_BIND", bind_address, "127.0.0.1:8000",
                        "Address gunicorn listens on: host:port, [IPv6]:port or unix:PATH.")
    workers: int | None = setting("GATEWAY_WORKERS", number(int, 1), None,
                                  "Worker processes; default: the CPU count.")
    worker_connections: int = setting(
        "GATEWAY_WORKER_CONNECTIONS", number(int, 1), "8192",
        "Client connections per gevent worker, idle keep-alive ones included (the oldest idle "
        "are closed when it runs short); needs an open-files limit of twice this plus 64, "
        "raised at start up to the hard limit.")
    timeout: int = setting(
        "GATEWAY_TIMEOUT", number(int, 1), "30",
        "Seconds a worker may be silent before the master restarts it (a liveness check: "
        "a slow upstream never trips it).")
    graceful_timeout: int = setting(
        "GATEWAY_GRACEFUL_TIMEOUT", number(int, 0), "30",
        "Seconds in-flight requests get to finish on SIGTERM or reload.")
    keepalive: int = setting(
        "GATEWAY_KEEPALIVE", number(int, 0), "75",
        "Seconds an idle client keep-alive connection stays open; keep it above nginx's "
        "upstream keepalive_timeout (60 s).")
    metrics_dir: str | None = setting(
        "GATEWAY_METRICS_DIR", text, None,
        "Directory where the workers keep their Prometheus metrics (emptied at start; one "
        "per gateway instance); default: a new temporary directory.")
    ratelimit_local_slots: int = setting(
        "GATEWAY_RATELIMIT_LOCAL_SLOTS", number(int, 64, 2**27), "131072",
        "rate-limiting `local` policy: counters (one per client and window) the node keeps in "
        "memory shared by all its workers, 16 bytes each (the default: 2 MiB, taken as "
        "written); windows past their period are reused, and when a client's neighbourhood "
        "of the table is full its oldest counters are forgotten, with a log line (Kong's "
        "full shm drops its least recently used).")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The proxy's own settings (filters have theirs in their modules)."""

    upstream_urls: tuple[str, ...] | None = setting(
        "GATEWAY_UPSTREAM_URL", http_urls, None,
        "Upstream base URL, or several comma-separated (round-robin). A path is a prefix; "
        "no user or password in it (send credentials as a header). Required without a "
        "declarative file.")
    declarative_config: str | None = setting(
        "GATEWAY_DECLARATIVE_CONFIG", text, None,
        "Kong 3.x declarative file (YAML or JSON) of services, routes, upstreams, consumers "
        "and plugins (see Services and routes); read again on reload (SIGHUP).")
    declarative_config_string: str | None = setting(
        "GATEWAY_DECLARATIVE_CONFIG_STRING", text, None,
        "The same declarative configuration inline, instead of a file.", secret=True)
    filters: tuple[str, ...] = setting(
        "GATEWAY_FILTERS", names, "", "Comma-separated filter names to enable.")
    connect_timeout: float = setting(
        "GATEWAY_CONNECT_TIMEOUT", number(float, 0.001), "5",
        "Seconds to open a connection to the upstream (then 504).")
    read_timeout: float = setting(
        "GATEWAY_READ_TIMEOUT", number(float, 0.001), "60",
        "Seconds to wait for each read from the upstream (then 504, or a cut if the "
        "body had started).")
    upstream_max_header_bytes: int = setting(
        "GATEWAY_UPSTREAM_MAX_HEADER_BYTES", byte_size, "32k",
        "Largest header section an upstream may answer (nginx in front refuses more than "
        "its proxy_buffer_size with a 502 too; keep them aligned); past it, or past 100 "
        "header fields (gunicorn's own limit on requests), 502. An external service's "
        "answer has the same bounds (CallFailed past them).")
    body_timeout: float = setting(
        "GATEWAY_BODY_TIMEOUT", number(float, 0.001), "60",
        "Seconds the request body may stop arriving between two pieces (nginx's "
        "client_body_timeout): 408 if the upstream got nothing yet, else the upstream "
        "connection is dropped.")
    retries: int = setting(
        "GATEWAY_RETRIES", number(int, 0, 10), "2",
        "Extra attempts, on other targets, for idempotent requests that never reached one, "
        "or failed before any byte of the answer with a body that can be sent again.")
    target_cooldown: float = setting(
        "GATEWAY_TARGET_COOLDOWN", number(float, 0), "10",
        "Seconds a target that refused a connection is skipped (passive health check).")
    preserve_host: bool = setting(
        "GATEWAY_PRESERVE_HOST", boolean, "false",
        "Send the client's Host to the upstream instead of the upstream's own.")
    rewrite_location: bool = setting(
        "GATEWAY_REWRITE_LOCATION", boolean, "true",
        "Rewrite Location, Content-Location and Refresh URLs that point at an upstream "
        "target to the client-facing scheme and host (nginx's proxy_redirect default).")
    trusted_proxies: int = setting(
        "GATEWAY_TRUSTED_PROXIES", number(int, 0, 10), "0",
        "Proxy hops (e.g. nginx = 1) whose X-Forwarded-For/Proto/Host/Port are trusted.")
    pool_size: int = setting(
        "GATEWAY_POOL_SIZE", number(int, 1), "100",
        "Idle keep-alive connections kept per upstream target (and per third-party host "
        "of the enrichment filter) per worker.")
    websocket_idle_timeout: float = setting(
        "GATEWAY_WEBSOCKET_IDLE_TIMEOUT", number(float, 0.001), "60",
        "Seconds a WebSocket tunnel may carry no byte either way before both sides are "
        "closed (nginx's proxy_read_timeout).")
    websocket_max_tunnels: int | None = setting(
        "GATEWAY_WEBSOCKET_MAX_TUNNELS", number(int, 0), None,
        "Open WebSocket tunnels per worker, handshakes under way included; past it a "
        "handshake is answered 503. Default: half of GATEWAY_WORKER_CONNECTIONS, so plain "
        "requests keep their connections.")
    redis_url: str | None = setting(
        "GATEWAY_REDIS_URL", redis_url, None,
        "Redis for state shared by workers and instances (rate-limiting counters, caches): "
        "redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// (see Redis URL "
        "forms; options timeout, connect_timeout, ssl_verify, server_name, sentinel_username, "
        "sentinel_password, sentinel_role, max_redirections); unset: in-process memory.",
        secret=True)
    log_level: str = setting(
        "GATEWAY_LOG_LEVEL", choice("debug", "info", "warning", "error"), "info",
        "Gateway log level.")
    status_path: str | None = setting(
        "GATEWAY_STATUS_PATH", path_prefix_or_off, "/_gateway",
        "Prefix of the gateway's own /health, /ready and /metrics, answered before any "
        "filter and never proxied; off turns them off.")
    ready_window: float = setting(
        "GATEWAY_READY_WINDOW", number(float, 0), "10",
        "Seconds an upstream answer counts as proof of readiness; past that, /ready opens a "
        "connection to the upstream to check.")
    tracing_trust_incoming: bool = setting(
        "GATEWAY_TRACING_TRUST_INCOMING", boolean, "false",
        "Tracing by the OTEL_* variables: continue the trace of a client's traceparent "
        "(false: every request starts a new trace and the client's trace headers are "
        "replaced, as Kong with an empty propagation.extract).")
    access_log: str = setting(
        "GATEWAY_ACCESS_LOG", choice("json", "off"), "json",
        "json: one JSON line per request on stdout (no keys, no query string); off: none.")

