"""The filter development kit: the one import for filters written outside the gateway.

Everything a filter author needs is here (Kong's PDK): the :class:`Filter` base
class and the :class:`Exchange` it gets in each phase, :func:`setting` and its
parsers to declare a Config, the errors, the external-service client, and
the authentication helpers the built-in auth filters use (an author's own
scheme sets a consumer as key-auth and jwt do, and combines with them).
This module is the stable surface: a change to a name exported here is a
breaking change, noted in CHANGELOG.md. Everything else in ``gateway`` is
internal and may change in any release.

A filter that is not built in reads its settings from ``GATEWAY_<NAME>_<FIELD>``
(upper-case, ``-`` -> ``_``), so its ``setting(...)`` fields leave out the variable::

    @dataclass(frozen=True)
    class MyPluginConfig:
        url: str = setting(parse=http_url, doc="my-plugin: the third party.", required=True)
"""

from __future__ import annotations

from gateway.config import (
    ConfigError,
    boolean,
    byte_size,
    choice,
    http_url,
    http_urls,
    names,
    number,
    pairs,
    setting,
    text,
)
from gateway.config import Settings as GatewaySettings
from gateway.filters.auth import CONSUMER_HEADERS, CredentialStore, set_consumer
from gateway.filters.auth import refuse as refuse_authentication
from gateway.filters.auth import skip as skip_authentication
from gateway.filters.base import Filter
from gateway.proxy.errors import GatewayError
from gateway.proxy.exchange import CalloutResponse, Consumer, Exchange
from gateway.proxy.headers import header_name
from gateway.services import (
    Answer,
    BadAnswer,
    CallFailed,
    Pending,
    Result,
    Service,
    ServiceError,
    ServiceOptions,
    json_body,
)

#: The version of this surface (semantic versioning; see CHANGELOG.md).
PDK_VERSION = "1.2.0"


__all__ = [
    "CONSUMER_HEADERS",
    "PDK_VERSION",
    "Answer",
    "BadAnswer",
    "CallFailed",
    "CalloutResponse",
    "ConfigError",
    "Consumer",
    "CredentialStore",
    "Exchange",
    "Filter",
    "GatewayError",
    "GatewaySettings",
    "Pending",
    "Result",
    "Service",
    "ServiceError",
    "ServiceOptions",
    "boolean",
    "byte_size",
    "choice",
    "header_name",
    "http_url",
    "http_urls",
    "json_body",
    "names",
    "number",
    "pairs",
    "refuse_authentication",
    "set_consumer",
    "setting",
    "skip_authentication",
    "text",
]
