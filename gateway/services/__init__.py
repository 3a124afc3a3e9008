"""External services for filters: a pooled, bounded HTTP client with JSON decoding, optional
cache, single-flight, stale-if-error and circuit breaker (see :mod:`.service`).

Filter authors import it from :mod:`gateway.pdk`.
"""

from gateway.services.client import Answer
from gateway.services.errors import BadAnswer, CallFailed, ServiceError
from gateway.services.service import Pending, Result, Service, ServiceOptions, json_body

__all__ = ["Answer", "BadAnswer", "CallFailed", "Pending", "Result", "Service",
           "ServiceError", "ServiceOptions", "json_body"]
