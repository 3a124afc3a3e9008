"""The filter registry: every filter the gateway ships, by the name GATEWAY_FILTERS uses."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config import ConfigError, Settings, load
from gateway.filters.base import Filter
from gateway.filters.cors import Cors
from gateway.filters.enrichment.handler import Enrichment
from gateway.filters.key_auth import KeyAuth
from gateway.filters.proxy_cache import ProxyCache
from gateway.filters.rate_limiting.handler import RateLimiting
from gateway.filters.request_size_limiting import RequestSizeLimiting
from gateway.filters.request_termination import RequestTermination
from gateway.filters.response_headers import ResponseHeaders

REGISTRY: dict[str, type[Filter]] = {
    cls.NAME: cls for cls in (RequestTermination, ResponseHeaders, KeyAuth, RateLimiting,
                              Cors, RequestSizeLimiting, ProxyCache, Enrichment)
}


def build_filters(settings: Settings, environ: Mapping[str, str]) -> list[Filter]:
    """Instantiate the enabled filters in GATEWAY_FILTERS order; ConfigError on unknown names."""
    enabled = []
    for name in dict.fromkeys(settings.filters):
        cls = REGISTRY.get(name)
        if cls is None:
            known = ", ".join(sorted(REGISTRY))
            value = ",".join(settings.filters)
            raise ConfigError(
                f"GATEWAY_FILTERS={value!r}: unknown filter {name!r}; known: {known}")
        enabled.append(cls(load(cls.Config, environ), settings))
    return enabled
