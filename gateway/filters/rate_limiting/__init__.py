"""rate-limiting: Kong's fixed-window limits per consumer, IP, header or path.

The filter and its Config are in :mod:`.handler`; the window counters (worker
memory or Redis) in :mod:`.counters`.
"""

from gateway.filters.rate_limiting.handler import RateLimiting, RateLimitingConfig

__all__ = ["RateLimiting", "RateLimitingConfig"]
