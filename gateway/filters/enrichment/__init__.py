"""enrichment: response headers from a third-party JSON service (Kong's guide plugin).

The filter and its Config are in :mod:`.handler`; it calls the third party through
:mod:`gateway.services` (the client, cache, single-flight and breaker any filter can use).
"""

from gateway.filters.enrichment.handler import Enrichment, EnrichmentConfig

__all__ = ["Enrichment", "EnrichmentConfig"]
