"""enrichment: response headers from a third-party JSON service (Kong's guide plugin).

The filter and its Config are in :mod:`.handler`; the third-party client,
circuit breaker and single-flight it builds on are its own modules here.
"""

from gateway.filters.enrichment.handler import Enrichment, EnrichmentConfig

__all__ = ["Enrichment", "EnrichmentConfig"]
