"""An upstream's ``healthchecks`` record, checked as Kong's schema does.

Fields, defaults, ranges and words from kong/db/schema/entities/upstreams.lua (and the
typedefs it uses: path, sni, headers). Every bad field is reported with its path; the
record becomes a :class:`gateway.proxy.healthcheck.HealthChecks`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from gateway import schema as s
from gateway.proxy.healthcheck import HealthChecks
from gateway.schema import Invalid, shown

#: Kong's check types; gRPC probes are not made here.
TYPES = ("tcp", "http", "https", "grpc", "grpcs")
_HEADER_NAME = re.compile(r"[a-zA-Z0-9_-]+")


def number(low: float, high: float) -> s.Check:
    """A number in [low, high] (Kong's ``number`` with ``between``)."""

    def check(value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(path, "expected a number")
        if not low <= value <= high:
            raise Invalid(path, f"value should be between {low} and {high}")
        return value

    return check


def sni(value: Any, path: str) -> str:
    """Kong's typedefs.sni: a host name, not an IP address, without a port."""
    value = s.string(value, path)
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        pass
    else:
        raise Invalid(path, "must not be an IP")
    if ":" in value:
        raise Invalid(path, "must not have a port")
    try:
        return s.hostname(value, path)
    except Invalid:
        raise Invalid(path, f"invalid value: {shown(value)}") from None


def headers(value: Any, path: str) -> dict[str, tuple[str, ...]]:
    """Kong's typedefs.headers: header name -> array of values. A value holding CR, LF or
    NUL is refused (it would inject header lines into the probe)."""
    if not isinstance(value, dict):
        raise Invalid(path, "expected a map")
    out = {}
    for name, values in value.items():
        where = f"{path}.{name}"
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise Invalid(where, f"bad header name {shown(name)}, allowed characters are "
                                 "A-Z, a-z, 0-9, '_', and '-'")
        checked = s.array(s.string)(values, where)
        for i, item in enumerate(checked):
            if any(c in item for c in "\r\n\0"):
                raise Invalid(f"{where}[{i}]", "must not contain CR, LF or NUL")
        out[name] = checked
    return out


def _record(fields: s.Fields) -> tuple[s.Check, dict[str, Any]]:
    """A nested record's check and its default (every field at its default)."""
    return (lambda value, path: s.record(value, path, fields)), s.record({}, "", fields)


SECONDS = number(0, 65535)
COUNT = s.integer(0, 255)
STATUSES = s.array(s.integer(100, 999))
CHECK_TYPE = (s.one_of(*TYPES), "http")


def _healthy(statuses: tuple[int, ...], interval: bool) -> tuple[s.Check, dict[str, Any]]:
    fields: s.Fields = {"http_statuses": (STATUSES, statuses), "successes": (COUNT, 0),
                        **({"interval": (SECONDS, 0)} if interval else {})}
    return _record(fields)


def _unhealthy(statuses: tuple[int, ...], interval: bool) -> tuple[s.Check, dict[str, Any]]:
    fields: s.Fields = {"http_statuses": (STATUSES, statuses), "tcp_failures": (COUNT, 0),
                        "timeouts": (COUNT, 0), "http_failures": (COUNT, 0),
                        **({"interval": (SECONDS, 0)} if interval else {})}
    return _record(fields)


ACTIVE_FIELDS: s.Fields = {
    "type": CHECK_TYPE, "timeout": (SECONDS, 1), "concurrency": (s.integer(1, 2**31), 10),
    "http_path": (s.kong_path, "/"), "https_sni": (sni, None),
    "https_verify_certificate": (s.boolean, True), "headers": (headers, None),
    "healthy": _healthy((200, 302), interval=True),
    "unhealthy": _unhealthy((429, 404, 500, 501, 502, 503, 504, 505), interval=True),
}
PASSIVE_FIELDS: s.Fields = {
    "type": CHECK_TYPE,
    "healthy": _healthy((200, 201, 202, 203, 204, 205, 206, 207, 208, 226,
                         300, 301, 302, 303, 304, 305, 306, 307, 308), interval=False),
    "unhealthy": _unhealthy((429, 500, 503), interval=False),
}
FIELDS: s.Fields = {
    "active": _record(ACTIVE_FIELDS), "passive": _record(PASSIVE_FIELDS),
    "threshold": (number(0, 100), 0),
}
#: The record Kong fills in when an upstream has none.
DEFAULT = HealthChecks.from_record(s.record({}, "", FIELDS))


def healthchecks(value: Any, path: str) -> HealthChecks:
    """The checked record (defaults filled in); Invalid lists every bad field."""
    record = s.record(value, path, FIELDS)
    active = record["active"]
    if active["type"] in ("grpc", "grpcs") and (active["healthy"]["interval"]
                                                or active["unhealthy"]["interval"]):
        raise Invalid(f"{path}.active.type", "gRPC health checks are not supported by this "
                                             "gateway")
    return HealthChecks.from_record(record)
