"""The external-service client filters get from gateway.pdk (issue 11): JSON decoding with
errors that say what was wrong, limits, secret headers, cache, stale-if-error, breaker,
per-service metrics and log lines with the request id. Against the kit's mock service."""

from __future__ import annotations

import logging
import re

import pytest
from prometheus_client import REGISTRY

from gateway.config import Settings, load
from gateway.pdk import BadAnswer, CallFailed, Service, ServiceOptions
from gateway.testing import in_process

SETTINGS = load(Settings, {"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9"})


def service(name: str, **options) -> Service:
    return Service(name, SETTINGS, ServiceOptions(**options))


def sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def test_json_answers_are_decoded(mock_service):
    url = mock_service.route("/lookup", json={"url": "http://x/anything", "n": [1, 2]})
    assert service("svc-json").get_json(url) == {"url": "http://x/anything", "n": [1, 2]}
    assert mock_service.calls("/lookup")[0].method == "GET"


@pytest.mark.parametrize("route, error, reason", [
    ({"body": b"<html>oops"}, BadAnswer, "Expected object or value"),
    ({"body": b""}, BadAnswer, "Expected object or value"),
    ({"status": 502, "json": {}}, CallFailed, "status 502"),
    ({"action": "drop"}, CallFailed, "Connection aborted"),
    ({"body": b"x" * 2048}, CallFailed, "answer of 2048 bytes is larger than 1024"),
])
def test_failures_say_what_was_wrong(mock_service, route, error, reason):
    url = mock_service.route("/lookup", **route)
    with pytest.raises(error) as caught:
        service("svc-fail", max_bytes=1024).get_json(url)
    assert reason in str(caught.value)


def test_an_unreachable_service_fails_fast():
    with pytest.raises(CallFailed, match="Failed to establish a new connection"):
        service("svc-closed").get_json("http://127.0.0.1:9/x")


def test_a_slow_answer_times_out(mock_service):
    url = mock_service.route("/slow", json={}, delay=0.5)
    with pytest.raises(CallFailed, match="timed out"):
        service("svc-slow", timeout=0.2).get_json(url)


def test_static_headers_are_sent_and_kept_out_of_logs_and_errors(mock_service, caplog):
    url = mock_service.route("/lookup", status=500, json={})
    svc = service("svc-secret", headers={"X-Api-Key": "s3cr3t"})
    with pytest.raises(CallFailed) as caught:
        svc.get_json(url)
    assert mock_service.calls("/lookup")[0].header("X-Api-Key") == "s3cr3t"
    assert "s3cr3t" not in str(caught.value)
    assert "s3cr3t" not in caplog.text
    assert re.search(r"service svc-secret: call for request \S+ failed: status 500$",
                     caplog.text, re.M)


def test_the_cache_serves_hits_and_counts_them(mock_service):
    url = mock_service.route("/cached", json={"url": "u"})
    svc = service("svc-cache", cache_ttl=60)
    outcomes = [svc.call("GET", url).outcome for _ in range(3)]
    assert outcomes == ["miss", "hit", "hit"]
    assert len(mock_service.calls("/cached")) == 1
    assert sample("gateway_service_calls_total", service="svc-cache", outcome="hit") == 2
    assert sample("gateway_service_calls_total", service="svc-cache", outcome="miss") == 1
    assert sample("gateway_service_call_duration_seconds_count", service="svc-cache") == 1


def test_stale_if_error_serves_the_last_value(mock_service):
    url = mock_service.route("/stale", json={"url": "good"})
    svc = service("svc-stale2", cache_ttl=1, stale_if_error=60)
    svc.call("GET", url)
    real = svc.clock
    svc.clock = lambda: real() + 5  # expired, inside the stale window
    mock_service.route("/stale", status=503, json={})
    result = svc.call("GET", url)
    assert (result.outcome, result.value) == ("stale", {"url": "good"})
    assert len(mock_service.calls("/stale")) == 2
    svc.clock = lambda: real() + 62  # past TTL + stale window: the error
    result = svc.call("GET", url)
    assert result.outcome == "error"
    assert str(result.error) == "status 503"


def test_the_breaker_opens_and_its_gauge_follows(mock_service, caplog):
    url = mock_service.route("/down", status=500, json={})
    changes = []
    svc = Service("svc-breaker", SETTINGS, ServiceOptions(breaker_failures=2),
                  on_breaker_change=changes.append)
    outcomes = [svc.call("GET", url).outcome for _ in range(3)]
    assert outcomes == ["error", "error", "breaker-open"]
    assert len(mock_service.calls("/down")) == 2  # the third was not sent
    assert changes == [True]
    assert sample("gateway_service_breaker_open", service="svc-breaker") == 1
    assert "svc-breaker circuit breaker open: 2 failed calls in a row to 127.0.0.1" in caplog.text
    with pytest.raises(CallFailed, match="circuit breaker open after 2 failed calls"):
        svc.get_json(url)
    assert caplog.text.count("service svc-breaker: call for request") == 2  # refusals: no line


def test_failures_are_logged_with_the_request_id(mock_service, caplog):
    """A filter's call runs in its own greenlet: its log line still names the request."""
    caplog.set_level(logging.WARNING, "gateway.services")
    third = mock_service.route("/third", status=503, json={})
    client = in_process({"GATEWAY_UPSTREAM_URL": mock_service.url, "GATEWAY_ACCESS_LOG": "off",
                         "GATEWAY_FILTERS": "tests.support.pdk_filters:Teapot",
                         "GATEWAY_TEAPOT_LOOKUP_URL": third})
    response = client.get("/echo?lookup", headers={"X-Request-ID": "rid-services-1"})
    assert response.headers["X-Looked-Up"] == "error"
    assert "service teapot: call for request rid-services-1 failed: status 503" in caplog.text


def test_a_call_started_in_the_request_phase_is_taken_in_the_response_phase(mock_service):
    third = mock_service.route("/third", json={"url": "from-the-third-party"})
    client = in_process({"GATEWAY_UPSTREAM_URL": mock_service.url, "GATEWAY_ACCESS_LOG": "off",
                         "GATEWAY_FILTERS": "tests.support.pdk_filters:Teapot",
                         "GATEWAY_TEAPOT_LOOKUP_URL": third})
    response = client.get("/echo?lookup")
    assert response.headers["X-Looked-Up"] == "from-the-third-party"
    assert sorted(r.path for r in mock_service.requests) == ["/echo", "/third"]


@pytest.mark.parametrize("entry", [b"not json", b'{"at": 1, "values": []}', b"[]"])
def test_an_unreadable_cache_entry_is_a_miss(mock_service, entry):
    """Another version's entry in a shared Redis, or a damaged one, is called for again."""
    url = mock_service.route("/entry", json={"url": "fresh"})
    svc = service("svc-entry", cache_ttl=60)
    svc.cache.set(f"GET {url}", entry, 60)
    result = svc.call("GET", url)
    assert (result.outcome, result.value) == ("miss", {"url": "fresh"})


@pytest.mark.parametrize("options, error", [
    ({"timeout": 0}, "ServiceOptions.timeout must be > 0, not 0"),
    ({"max_bytes": -1}, "ServiceOptions.max_bytes must be > 0"),
    ({"cache_ttl": -5}, "must be >= 0"),
])
def test_bad_options_are_refused_when_the_filter_is_built(options, error):
    with pytest.raises(ValueError, match=error):
        ServiceOptions(**options)
