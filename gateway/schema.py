"""Checks for Kong-format values, each raising Invalid with the field path.

The declarative loader (:mod:`gateway.routing`) and filters with a Kong schema of their
own (request-callout) check their records with it, so it sits below both, beside
:mod:`gateway.config`, and needs only the standard library.

A small hand-written validator rather than a schema library: the errors must
name Kong entities by name (``services[orders].url``) and never echo a secret
read from a vault reference, which is simpler to get right here than through
a library's error objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

#: A check takes a value and its field path and returns the value normalized.
Check = Callable[[Any, str], Any]
#: A record's fields: name -> (check, default). A default of REQUIRED makes the field required.
Fields = Mapping[str, tuple[Check, Any]]
REQUIRED = object()


class Invalid(ValueError):
    """Values of the declarative file are wrong: ``problems`` holds one ``path: what is
    wrong`` line per problem (one for ``Invalid(path, message)``); str() joins them."""

    def __init__(self, path: str, message: str) -> None:
        self.problems: tuple[str, ...] = (f"{path}: {message}",)
        super().__init__(self.problems[0])

    @classmethod
    def several(cls, problems: Sequence[str]) -> Invalid:
        """One Invalid for all of ``problems`` (at least one)."""
        exc = cls.__new__(cls)
        exc.problems = tuple(problems)
        ValueError.__init__(exc, "\n".join(exc.problems))
        return exc


@contextmanager
def collecting(problems: list[str]) -> Iterator[None]:
    """Run a check, adding what it finds wrong to ``problems`` instead of stopping: a
    file with several blockers lists them all."""
    try:
        yield
    except Invalid as exc:
        problems.extend(exc.problems)


def raise_any(problems: Sequence[str]) -> None:
    """Raise Invalid for ``problems`` when there are any."""
    if problems:
        raise Invalid.several(problems)


class Secret(str):
    """A string read from a ``{vault://env/NAME}`` reference: never shown in an error."""


def shown(value: Any) -> str:
    """``value`` for an error message, or <hidden> when it came from a vault."""
    return "<hidden>" if isinstance(value, Secret) else repr(value)


def string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(path, "expected a non-empty string")
    return value


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(path, "expected a boolean")
    return value


def integer(low: int, high: int) -> Check:
    """An integer in [low, high] (Kong's ``between``)."""

    def check(value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(path, "expected an integer")
        if not low <= value <= high:
            raise Invalid(path, f"value should be between {low} and {high}")
        return value

    return check


def _a_number(value: Any, path: str) -> float:
    """``value`` if it is a number (integer or not; a boolean is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(path, "expected a number")
    return value


def number(low: float, high: float) -> Check:
    """A number (integer or not) in [low, high] (Kong's ``between`` on a number field)."""
    def check(value: Any, path: str) -> float:
        if not low <= _a_number(value, path) <= high:
            raise Invalid(path, f"value should be between {low:g} and {high:g}")
        return value
    return check


def greater_than(limit: float) -> Check:
    """A number above ``limit`` (Kong's ``gt`` on a number field)."""
    def check(value: Any, path: str) -> float:
        if not _a_number(value, path) > limit:
            raise Invalid(path, f"value must be greater than {limit:g}")
        return value
    return check


#: Kong's queue record (kong/tools/queue_schema.lua) and its defaults.
QUEUE_FIELDS: Fields = {
    "max_batch_size": (integer(1, 1000000), 1),
    "max_coalescing_delay": (number(0, 3600), 1),
    "max_entries": (integer(1, 1000000), 10000),
    "max_bytes": (integer(1, 2**53), None),
    "max_retry_time": (number(-1, 2**53), 60),
    "initial_retry_delay": (number(0.001, 1000000), 0.01),
    "max_retry_delay": (number(0.001, 1000000), 60),
    "concurrency_limit": (integer(-1, 1), 1),
}


def one_of(*options: str) -> Check:
    def check(value: Any, path: str) -> str:
        if value not in options:
            raise Invalid(path, f"expected one of: {', '.join(options)}")
        return value

    return check


def array(element: Check) -> Check:
    """A list, each element checked with its index in the path; every bad one reported."""

    def check(value: Any, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise Invalid(path, "expected an array")
        found: list[str] = []
        checked = []
        for i, item in enumerate(value):
            with collecting(found):
                checked.append(element(item, f"{path}[{i}]"))
        raise_any(found)
        return tuple(checked)

    return check


def parsed(parse: Callable[[str], Any]) -> Check:
    """A string checked by one of our settings' parsers (its ValueError's words), kept as
    written: the setting parses it again from the text."""

    def check(value: Any, path: str) -> str:
        value = string(value, path)
        try:
            parse(value)
        except ValueError as exc:
            raise Invalid(path, str(exc)) from None
        return value

    return check


def mapping(value: Any, path: str) -> dict[str, Any]:
    """A record whose fields are checked later (a plugin's config)."""
    if not isinstance(value, dict):
        raise Invalid(path, "expected a record")
    return value


def fixed(default: Any, reason: str = "is not supported by this gateway") -> Check:
    """A Kong field accepted only at its default value (or null)."""

    def check(value: Any, path: str) -> Any:
        if value is not None and value != default:
            raise Invalid(path, f"{reason} (only {default!r})")
        return default

    check.only = default  # type: ignore[attr-defined]  # read by the compatibility matrix
    return check


def record(value: Any, path: str, fields: Fields,
           problems: list[str] | None = None) -> dict[str, Any]:
    """Check a mapping against ``fields``: unknown fields refused, defaults filled in.

    Every bad field is reported (Invalid with them all); with ``problems`` they are added
    to it instead and the record comes back with defaults (None if required) in their
    place, so the caller can go on checking what depends on the good ones.
    """
    if not isinstance(value, dict):
        raise Invalid(path, "expected a record")
    found: list[str] = []
    for name in value:
        if name not in fields:
            found.append(f"{path}.{name}: unknown field")
    out = {}
    for name, (check, default) in fields.items():
        given = value.get(name)
        out[name] = None if default is REQUIRED else default
        if given is None:
            if default is REQUIRED:
                found.append(f"{path}.{name}: required field missing")
            continue
        with collecting(found):
            out[name] = check(given, f"{path}.{name}")
    if problems is None:
        raise_any(found)
    else:
        problems.extend(found)
    return out


_NAME = re.compile(r"[\w.~-]+")


def name(value: Any, path: str) -> str:
    """Kong's utf8_name: letters, digits and . - _ ~."""
    value = string(value, path)
    if not _NAME.fullmatch(value):
        raise Invalid(path, f"invalid value {shown(value)}: it must only contain "
                            "alphanumeric and '., -, _, ~' characters")
    return value


_LABEL = re.compile(r"[a-z0-9_-]*(?<!-)")


def hostname(value: Any, path: str) -> str:
    """A host name or IPv4 address, lowercased (no port), by Kong's rule
    (kong/tools/ip.lua ``check_hostname``): letters, digits, ``-``, ``.`` and ``_`` (Docker
    Compose's ``todo_api``), no label ending in ``-``, no empty label but a trailing dot."""
    host = string(value, path).lower()
    labels = host.removesuffix(".").split(".")
    if not all(label and _LABEL.fullmatch(label) for label in labels):
        raise Invalid(path, f"invalid hostname: {shown(value)}")
    return host


def port(value: Any, path: str) -> int:
    return integer(0, 65535)(value, path)


_KONG_PATH = re.compile(r"/[\w.~/%:@!$&'()*+,;=-]*", re.ASCII)


def kong_path(value: Any, path: str) -> str:
    """Kong's typedefs.path (starts with /, no empty segment, RFC 3986 characters, escapes
    well-formed), word for word."""
    value = string(value, path)
    if not value.startswith("/"):
        raise Invalid(path, "should start with: /")
    if "//" in value:
        raise Invalid(path, "must not have empty segments")
    if not _KONG_PATH.fullmatch(value):
        raise Invalid(path, f"invalid path: {shown(value)} (characters outside of the "
                            "reserved list of RFC 3986 found)")
    bad = re.search(r"%(?![0-9a-fA-F]{2}).?.?", value)
    if bad:
        raise Invalid(path, f"invalid url-encoded value: {bad.group()!r}")
    return value
