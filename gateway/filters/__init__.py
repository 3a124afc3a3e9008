"""The filter registry: the names GATEWAY_FILTERS accepts and the filter classes behind them.

A name is looked up, in order, among the filters the gateway ships, then the
entry points installed distributions register in the ``gateway.filters``
group, then as ``package.module:ClassName``. Any failure (unknown name, import
error, a class that is not a usable Filter) is a one-line ConfigError.
Filters that are not built in read their settings from variables derived from
their NAME (``GATEWAY_<NAME>_<FIELD>``, see :func:`gateway.config.variable`).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points

from gateway.config import ConfigError, Settings, env_names, load
from gateway.filters.acl import Acl
from gateway.filters.base import Filter
from gateway.filters.basic_auth import BasicAuth
from gateway.filters.bot_detection import BotDetection
from gateway.filters.correlation_id import CorrelationId
from gateway.filters.cors import Cors
from gateway.filters.enrichment.handler import Enrichment
from gateway.filters.file_log import FileLog
from gateway.filters.hmac_auth import HmacAuth
from gateway.filters.http_log import HttpLog
from gateway.filters.ip_restriction import IpRestriction
from gateway.filters.jwt_auth import Jwt
from gateway.filters.key_auth import KeyAuth
from gateway.filters.opentelemetry import OpenTelemetry
from gateway.filters.prometheus import Prometheus
from gateway.filters.proxy_cache import ProxyCache
from gateway.filters.rate_limiting.handler import RateLimiting
from gateway.filters.redirect import Redirect
from gateway.filters.request_callout import RequestCallout
from gateway.filters.request_size_limiting import RequestSizeLimiting
from gateway.filters.request_termination import RequestTermination
from gateway.filters.request_transformer import RequestTransformer
from gateway.filters.response_headers import ResponseHeaders
from gateway.filters.response_transformer import ResponseTransformer

#: The entry-point group under which installed distributions register filters.
ENTRY_POINT_GROUP = "gateway.filters"

REGISTRY: dict[str, type[Filter]] = {
    cls.NAME: cls for cls in (RequestTermination, ResponseHeaders, KeyAuth, RateLimiting,
                              Cors, RequestSizeLimiting, ProxyCache, Enrichment,
                              IpRestriction, BotDetection, CorrelationId, Prometheus, HttpLog,
                              FileLog, RequestTransformer, ResponseTransformer, Jwt, BasicAuth,
                              Acl, HmacAuth, RequestCallout, OpenTelemetry, Redirect)
}


def installed() -> dict[str, EntryPoint]:
    """The filters installed distributions register, by entry-point name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


class FilterNotFound(ValueError):
    """A filter name that does not lead to a usable filter class; str() says why."""


def resolve(name: str) -> type[Filter]:
    """The filter class GATEWAY_FILTERS means by ``name``; ConfigError saying why not."""
    try:
        return filter_class(name)
    except FilterNotFound as exc:
        raise ConfigError(f"GATEWAY_FILTERS: {exc}") from None


def filter_class(name: str) -> type[Filter]:
    """The filter class ``name`` means (built in, entry point, module:Class), wherever the
    name was written (GATEWAY_FILTERS, a declarative file's plugin); FilterNotFound if none."""
    if name in REGISTRY:
        return REGISTRY[name]
    entry_point = installed().get(name)
    if entry_point is None and ":" not in name:
        raise FilterNotFound(
            f"unknown filter {name!r}; known: built in "
            f"{', '.join(sorted(REGISTRY))}; installed {', '.join(sorted(installed())) or 'none'}"
            "; or give package.module:ClassName")
    try:
        if entry_point is not None:
            cls = entry_point.load()
        else:
            module, _, attribute = name.partition(":")
            cls = getattr(importlib.import_module(module), attribute)
    except Exception as exc:
        raise FilterNotFound(f"filter {name!r} failed to import: "
                             f"{type(exc).__name__}: {exc}") from None
    _check_class(name, cls)
    if entry_point is not None and name != cls.NAME:
        raise FilterNotFound(f"entry point {name!r} loads a filter whose NAME is "
                             f"{cls.NAME!r}; the two must match")
    return cls


def _check_class(name: str, cls: object) -> None:
    """FilterNotFound unless ``cls`` is a Filter subclass with NAME, PRIORITY, VERSION and
    Config."""
    if not (isinstance(cls, type) and issubclass(cls, Filter)):
        raise FilterNotFound(f"filter {name!r} is not a subclass of gateway.pdk.Filter")
    kinds = {"NAME": str, "PRIORITY": int, "VERSION": str}
    for attribute, kind in kinds.items():
        if not isinstance(getattr(cls, attribute, None), kind):
            raise FilterNotFound(f"filter {name!r} ({cls.__qualname__}) needs "
                                 f"{attribute} ({kind.__name__})")
    if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
        raise FilterNotFound(f"filter {name!r} ({cls.__qualname__}) needs Config, "
                             "a dataclass of setting(...) fields")
    if cls.NAME in REGISTRY and REGISTRY[cls.NAME] is not cls:
        raise FilterNotFound(f"filter {name!r} has NAME {cls.NAME!r}, which is a "
                             "built-in filter's")


def scope(cls: type[Filter]) -> str | None:
    """None for a built-in filter (its variables are spelled out), else its NAME."""
    return None if REGISTRY.get(cls.NAME) is cls else cls.NAME


def enabled_classes(filter_names: Iterable[str]) -> list[type[Filter]]:
    """The filter classes GATEWAY_FILTERS names (``filter_names``), in its order, each once."""
    classes: list[type[Filter]] = []
    for name in dict.fromkeys(filter_names):
        cls = resolve(name)
        if any(other.NAME == cls.NAME for other in classes):
            raise ConfigError(f"GATEWAY_FILTERS: filter {name!r} has NAME {cls.NAME!r}, "
                              "like another enabled filter")
        classes.append(cls)
    return classes


def known_variables(custom: Iterable[type[Filter]]) -> set[str]:
    """Every filter variable the built-ins and the enabled custom filters ``custom`` read."""
    names = env_names(cls.Config for cls in REGISTRY.values())
    for cls in custom:
        names |= env_names([cls.Config], scope(cls))
    return names


def build_filters(settings: Settings, environ: Mapping[str, str],
                  classes: Iterable[type[Filter]] | None = None) -> list[Filter]:
    """Instantiate the enabled filters (``classes``, default: GATEWAY_FILTERS') with their
    settings loaded from ``environ``; ConfigError on the first bad name or variable."""
    if classes is None:
        classes = enabled_classes(settings.filters)
    return [_build(cls, settings, environ) for cls in classes]


def _build(cls: type[Filter], settings: Settings, environ: Mapping[str, str]) -> Filter:
    """One filter with its settings; a ValueError from its constructor is a ConfigError."""
    config = load(cls.Config, environ, scope(cls))
    try:
        return cls(config, settings)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"filter {cls.NAME!r}: {exc}") from None
