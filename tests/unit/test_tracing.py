"""Tracing's configuration and its off path: what turns it on, and that off leaves the
app, its chains and its upstreams as they were (no span work per request)."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from gateway.filters.base import Filter
from gateway.ops import tracing
from gateway.ops.tracing import FORMATS, env_config
from gateway.routing.traced import TracedFilter
from tests.support.app import gateway_of, get, in_process

ENDPOINT = "http://127.0.0.1:1/v1/traces"


@pytest.mark.parametrize(("environ", "endpoint"), [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/x"}, "http://t:1/x"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
])
def test_what_turns_tracing_on(environ, endpoint):
    config = env_config(environ, trust_incoming=False)
    assert (config.endpoint if config else None) == endpoint


@pytest.mark.parametrize(("trusted", "extract"), [(False, ()), (True, FORMATS)])
def test_trust_incoming_decides_extraction(trusted, extract):
    config = env_config({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, trust_incoming=trusted)
    assert config.propagation.extract == extract
    assert config.propagation.inject == ("preserve",)


class Marker(Filter):
    NAME, PRIORITY, VERSION = "marker", 5, "1"

    def on_request(self, ex):
        ex.upstream_headers["X-Marker"] = "1"


def test_off_leaves_the_app_untouched(httpbin):
    client = in_process({"GATEWAY_UPSTREAM_URL": httpbin, "GATEWAY_ACCESS_LOG": "off"},
                        [Marker(None, None)])
    app = gateway_of(client)
    assert app.tracing is None and tracing.ACTIVE is None
    destination = app.routes.destinations[0]
    assert not any(isinstance(f, TracedFilter) for f in destination.chain.request_filters)
    assert "send" not in vars(destination.upstream) and "find" not in vars(app.routes)
    response = get(client, "/headers", headers={"traceparent": f"00-{'a' * 32}-{'b' * 16}-01"})
    assert response.status_code == 200
    assert f"00-{'a' * 32}-{'b' * 16}-01" in response.get_data(as_text=True)  # untouched


def test_on_wraps_the_filters_and_the_upstream(httpbin):
    client = in_process({"GATEWAY_UPSTREAM_URL": httpbin, "GATEWAY_ACCESS_LOG": "off",
                         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT}, [Marker(None, None)])
    app = gateway_of(client)
    try:
        assert tracing.ACTIVE is app.tracing is not None
        destination = app.routes.destinations[0]
        wrapped, = destination.chain.request_filters
        assert isinstance(wrapped, TracedFilter) and wrapped.NAME == "marker"
        response = get(client, "/headers")
        assert '"X-Marker": "1"' in response.get_data(as_text=True)  # the filter still ran
    finally:
        tracing.ACTIVE = None


def test_bad_env_config_names_the_variable():
    with pytest.raises(ConfigError, match="GATEWAY_OPENTELEMETRY_CONFIG"):
        in_process({"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:1",
                    "GATEWAY_FILTERS": "opentelemetry",
                    "GATEWAY_OPENTELEMETRY_CONFIG": "{sampling_rate: 3}"})
