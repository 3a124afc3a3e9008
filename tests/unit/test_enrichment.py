"""enrichment in-process: its settings, reading a value out of the JSON answer, URL templates."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY
from werkzeug.test import EnvironBuilder

from gateway.config import ConfigError, load
from gateway.filters.enrichment.handler import BadAnswer, EnrichmentConfig, extract, render_url
from gateway.proxy.errors import GatewayError
from gateway.proxy.exchange import Exchange
from tests.support.app import in_process


def config(**env: str) -> EnrichmentConfig:
    return load(EnrichmentConfig, {"GATEWAY_ENRICH_URL": "http://third.example/x", **env})


def exchange(target: str, headers: dict[str, str] | None = None) -> Exchange:
    environ = EnvironBuilder(path=target.partition("?")[0], query_string=target.partition("?")[2],
                             headers=headers).get_environ()
    return Exchange(environ, "rid")


# ---------------------------------------------------------------- settings

def test_defaults_are_the_guides():
    c = config()
    assert c.targets == (("X-MyPlugin", ("url",)),)
    assert (c.method, c.timeout, c.max_bytes, c.on_error) == ("get", 2.0, 1 << 20, "fail")
    assert (c.cache_ttl, c.breaker_failures, c.breaker_reset) == (0, 5, 30)


def test_the_url_is_required():
    with pytest.raises(ConfigError, match=r"^GATEWAY_ENRICH_URL is required"):
        load(EnrichmentConfig, {})


@pytest.mark.parametrize("url, error", [
    ("ftp://third/x", "GATEWAY_ENRICH_URL='ftp://third/x': "),
    ("http://third/{body}", "unknown placeholder {body}"),
    ("http://third/{path", "unbalanced"),
])
def test_bad_urls_name_the_variable(url, error):
    with pytest.raises(ConfigError, match="GATEWAY_ENRICH_URL") as caught:
        config(GATEWAY_ENRICH_URL=url)
    assert error in str(caught.value)


def test_map_replaces_header_and_field():
    c = config(GATEWAY_ENRICH_MAP="X-Url=url, X-Host=headers.Host,X-First=items.0.id")
    assert c.targets == (("X-Url", ("url",)), ("X-Host", ("headers", "Host")),
                         ("X-First", ("items", "0", "id")))


@pytest.mark.parametrize("env", [
    {"GATEWAY_ENRICH_HEADER": "X Bad"},
    {"GATEWAY_ENRICH_FIELD": "a..b"},
    {"GATEWAY_ENRICH_MAP": "X-Url"},
    {"GATEWAY_ENRICH_METHOD": "TRACE"},
    {"GATEWAY_ENRICH_ON_ERROR": "ignore"},
    {"GATEWAY_ENRICH_TIMEOUT": "0"},
    {"GATEWAY_ENRICH_MAX_VALUE": "4 KiB"},
    {"GATEWAY_ENRICH_CA_BUNDLE": "/nonexistent.pem"},
    {"GATEWAY_ENRICH_CA_BUNDLE": "/" + "a" * 5000},  # a name the system refuses
])
def test_bad_values_stop_the_start_naming_the_variable(env):
    [(name, _)] = env.items()
    with pytest.raises(ConfigError, match=f"^{name}="):
        config(**env)


def test_headers_out_values_are_secret_in_errors():
    with pytest.raises(ConfigError) as caught:
        config(GATEWAY_ENRICH_HEADERS_OUT="X-Api-Key:t0p\x01secret")
    assert "t0p" not in str(caught.value)
    assert "GATEWAY_ENRICH_HEADERS_OUT=<hidden>" in str(caught.value)


def test_insecure_and_a_ca_bundle_exclude_each_other(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    with pytest.raises(ConfigError, match="GATEWAY_ENRICH_INSECURE=true: cannot be used"):
        config(GATEWAY_ENRICH_INSECURE="true", GATEWAY_ENRICH_CA_BUNDLE=str(ca))


# ---------------------------------------------------------------- extract

LIMIT = 4096

DOCUMENT = {"url": "http://x/anything", "n": 42, "ratio": 0.5, "ok": True, "none": None,
            "headers": {"Host": "x"}, "items": [{"id": "a1"}, {"id": 7}], "obj": {}, "list": []}


@pytest.mark.parametrize("path, value", [
    ("url", "http://x/anything"),
    ("headers.Host", "x"),
    ("items.0.id", "a1"),
    ("items.1.id", "7"),
    ("n", "42"),
    ("ratio", "0.5"),
    ("ok", "true"),
])
def test_values_strings_as_they_are_numbers_and_booleans_as_json(path, value):
    assert extract(DOCUMENT, tuple(path.split(".")), LIMIT) == value


@pytest.mark.parametrize("path, error", [
    ("missing", "field 'missing' is missing"),
    ("items.2.id", "field 'items.2.id' is missing"),
    ("url.deeper", "field 'url.deeper' is missing"),
    ("none", "field 'none' is null"),
    ("obj", "field 'obj' is dict"),
    ("list", "field 'list' is list"),
])
def test_unusable_values_are_errors_naming_the_field(path, error):
    with pytest.raises(BadAnswer, match=error):
        extract(DOCUMENT, tuple(path.split(".")), LIMIT)


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\x00b", "a\x7fb"])
def test_values_that_would_inject_headers_are_refused(value):
    with pytest.raises(BadAnswer, match="not allowed in a header value"):
        extract({"url": value}, ("url",), LIMIT)


def test_a_value_over_max_value_bytes_is_refused_naming_the_field():
    assert extract({"a": {"b": "x" * LIMIT}}, ("a", "b"), LIMIT) == "x" * LIMIT
    with pytest.raises(BadAnswer, match=r"field 'a.b' is 4097 bytes, over the 4096 of "
                                        r"GATEWAY_ENRICH_MAX_VALUE"):
        extract({"a": {"b": "x" * (LIMIT + 1)}}, ("a", "b"), LIMIT)


def test_non_ascii_goes_as_utf8_bytes_counted_against_the_limit():
    value = extract({"v": "caf\u00e9 \u20ac"}, ("v",), LIMIT)
    assert value.encode("latin-1") == "caf\u00e9 \u20ac".encode()  # what gunicorn writes
    with pytest.raises(BadAnswer, match="is 3 bytes, over the 2"):
        extract({"v": "\u20ac"}, ("v",), 2)


def test_max_value_defaults_to_4096_and_takes_a_size():
    assert config().max_value == 4096
    assert config(GATEWAY_ENRICH_MAX_VALUE="8k").max_value == 8192


# ---------------------------------------------------------------- URL templates

def test_templates_are_filled_url_encoded_from_the_request():
    ex = exchange("/orders/a b?id=4%262&x=1", {"X-Tenant": "acme/eu"})
    url = render_url("http://third/c/{query.id}{path}?t={header.X-Tenant}", ex)
    assert url == "http://third/c/4%262/orders/a%20b?t=acme%2Feu"


@pytest.mark.parametrize("template, missing", [
    ("http://third/{query.id}", "query parameter 'id'"),
    ("http://third/?t={header.X-Tenant}", "header 'X-Tenant'"),
])
def test_a_missing_value_is_a_400(template, missing):
    with pytest.raises(GatewayError) as caught:
        render_url(template, exchange("/orders"))
    assert caught.value.status == 400
    assert missing in caught.value.message


@pytest.mark.parametrize("target, template", [
    ("/orders/../../internal/secrets", "http://third/v1/lookup{path}"),
    ("/orders/./x", "http://third/v1/lookup{path}"),
    ("/orders?id=..", "http://third/v1/users/{query.id}/profile"),
])
def test_a_client_cannot_climb_out_of_the_third_party_path(target, template):
    """The third party gets the gateway's secret headers: the client must not pick its path."""
    with pytest.raises(GatewayError) as caught:
        render_url(template, exchange(target))
    assert caught.value.status == 400
    assert "cannot" in caught.value.message


# ---------------------------------------------------------------- breaker metric and log

def test_breaker_gauge_follows_the_breaker_not_each_request(upstream, caplog):
    client = in_process({
        "GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "enrichment",
        "GATEWAY_ACCESS_LOG": "off",
        "GATEWAY_ENRICH_URL": upstream.url + "/third/{query.kind}{path}",
        "GATEWAY_ENRICH_CACHE_TTL": "60", "GATEWAY_ENRICH_BREAKER_FAILURES": "2",
        "GATEWAY_ENRICH_BREAKER_RESET": "0.3"})
    gauge = "gateway_enrichment_breaker_open"
    assert client.get("/echo?kind=ok").status_code == 200  # cached for 60 s
    for _ in range(2):
        assert client.get("/echo?kind=error").status_code == 500
    assert REGISTRY.get_sample_value(gauge) == 1
    assert "enrichment circuit breaker open: 2 failed calls in a row" in caplog.text
    for _ in range(3):  # cache hits never consult the breaker, and leave the gauge alone
        response = client.get("/echo?kind=ok")
        assert response.headers["X-Gateway-Enrichment-Latency"] == "cache"
    assert REGISTRY.get_sample_value(gauge) == 1
    time.sleep(0.35)  # half-open: the trial call succeeds and closes the breaker
    assert client.get("/other?kind=ok").status_code == 200  # a new key: a call
    assert REGISTRY.get_sample_value(gauge) == 0
    assert "enrichment circuit breaker closed" in caplog.text
