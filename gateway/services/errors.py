"""Why an external-service call gave no usable value: it failed, or its answer was bad.

The two match the guide's two errors: "Error when trying to access 3rd party
service" (:class:`CallFailed`) and "Error when decoding 3rd party service
response" (:class:`BadAnswer`). ``str()`` is the reason, without secrets.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A call gave no usable value; str() says why in a few words."""


class CallFailed(ServiceError):
    """The service could not be reached, timed out, answered non-2xx or too much, or its
    circuit breaker is open."""


class BadAnswer(ServiceError, ValueError):
    """The service answered, but not JSON, or without a usable value; str() says which."""
