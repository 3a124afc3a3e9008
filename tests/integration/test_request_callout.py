"""request-callout under a real gunicorn gevent worker: the guide's plugin as config against
httpbin, and the kit's mock service as every third party (delays, failures, bad JSON,
retries by status, timeouts, header injection); the graph's parallelism measured by
time, the cache under concurrency, each on_error mode's answer, our response section.

One gateway serves every case: a route per case, each with its own plugin.
"""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from gateway.testing.mock import MockService
from tests.support.net import call

DELAY = 0.3


@pytest.fixture(scope="module")
def mock():
    service = MockService()
    yield service
    service.stop()


def _route(name: str, config: dict, upstream: str) -> dict:
    return {"name": name, "url": upstream,
            "routes": [{"name": name, "paths": [f"/{name}"],
                        "plugins": [{"name": "request-callout", "config": config}]}]}


def _callout(name: str, url: str, **extra) -> dict:
    return {"name": name, "request": {"url": url, **extra.pop("request", {})}, **extra}


DECODED = {"response": {"body": {"decode": True}}}


def _cases(mock: MockService, httpbin: str) -> list[dict]:
    m = mock.url
    echo = m + "/echo"
    fail = {"on_error": "fail", "http_statuses": [500, 503]}
    return [
        _route("guide", {
            "callouts": [_callout("c", httpbin + "/anything", request={"error": {
                "error_response_code": 500,
                "error_response_msg": "Error when trying to access 3rd party service"}},
                **DECODED)],
            "response": {"headers": {"custom": {
                "X-MyPlugin": "$(callouts.c.response.body.url)"}}}}, httpbin + "/anything"),
        _route("parallel", {
            "callouts": [_callout(n, f"{m}/slow/{n}", **DECODED) for n in ("a", "b", "c")],
            "upstream": {"headers": {"custom": {
                f"X-{n}": f"$(callouts.{n}.response.body.v)" for n in ("a", "b", "c")}}}}, echo),
        _route("chain", {
            "callouts": [_callout("token", f"{m}/slow/token", **DECODED),
                         _callout("user", f"{m}/slow/user", depends_on=["token"], request={
                             "query": {"custom": {"t": "$(callouts.token.response.body.v)"}}},
                             **DECODED)],
            "upstream": {"headers": {"custom": {"X-User": "$(callouts.user.response.body.v)"}}}},
            echo),
        _route("compose", {
            "callouts": [
                _callout("login", f"{m}/login", **DECODED),
                _callout("profile", f"{m}/profile/$(headers.x-user)", depends_on=["login"],
                         request={"headers": {"custom": {
                             "Authorization": "Bearer $(callouts.login.response.body.token)"}}},
                         **DECODED),
                _callout("geo", f"{m}/geo", request={"query": {"forward": True}}, **DECODED)],
            "upstream": {
                "headers": {"custom": {"X-Plan": "$(callouts.profile.response.body.plan)",
                                       "X-Country": "$(callouts.geo.response.body.country)"}},
                "query": {"custom": {"user": "$(headers.x-user)"}},
                "body": {"custom": {"plan": "$(callouts.profile.response.body.plan)",
                                    "geo": "$(callouts.geo.response.body)"}}},
            "response": {
                "headers": {"custom": {"X-Geo-City": "$(callouts.geo.response.body.city)"}},
                "body": {"custom": {"geo": "$(callouts.geo.response.body)"}}}}, echo),
        _route("decorated", {
            "callouts": [_callout("geo", f"{m}/geo", **DECODED)],
            "response": {"body": {"custom": {"city": "$(callouts.geo.response.body.city)"}}}},
            httpbin + "/anything"),
        _route("fail", {"callouts": [_callout("x", f"{m}/status/500",
                                              request={"error": fail})]}, echo),
        _route("retry", {"callouts": [_callout("x", f"{m}/status/503", request={"error": {
            **fail, "on_error": "retry", "retries": 2, "error_response_code": 502,
            "error_response_msg": "lookup unavailable"}})]}, echo),
        _route("continue", {
            "callouts": [_callout("x", f"{m}/drop", request={"error": {"on_error": "continue"}},
                                  **DECODED)],
            "upstream": {"headers": {"custom": {"X-Got": "$(callouts.x.response.body.v)"}}}},
            echo),
        _route("timeout", {"callouts": [_callout("x", f"{m}/stall", request={
            "http_opts": {"timeouts": {"connect": 200, "write": 200, "read": 300}}})]}, echo),
        _route("badjson", {"callouts": [_callout("x", f"{m}/nonjson", **DECODED)]}, echo),
        _route("notanerror", {
            "callouts": [_callout("x", f"{m}/status/404")],
            "upstream": {"headers": {"custom": {
                "X-Status": "$(callouts.x.response.status)",
                "X-Body": "$(callouts.x.response.body)"}}}}, echo),
        _route("inject", {
            "callouts": [_callout("x", f"{m}/evil", **DECODED)],
            "upstream": {"headers": {"custom": {"X-Value": "$(callouts.x.response.body.v)"}}},
            "response": {"headers": {"custom": {"X-Out": "$(callouts.x.response.body.v)"}}}},
            echo),
        _route("cached", {
            "callouts": [_callout("x", f"{m}/slow/cached", request={
                "query": {"custom": {"k": "$(query.k)"}}}, **DECODED)],
            "cache": {"strategy": "memory", "cache_ttl": 60},
            "upstream": {"headers": {"custom": {"X-V": "$(callouts.x.response.body.v)"}}}},
            echo),
        _route("deferred", {
            "callouts": [_callout("x", f"{m}/slow/late", **DECODED)],
            "response": {"headers": {"custom": {"X-Late": "$(callouts.x.response.body.v)"}}}},
            m + "/slowup"),
    ]


@pytest.fixture(scope="module")
def routes(mock, httpbin):
    for name in ("a", "b", "c", "token", "user", "cached", "late"):
        mock.route(f"/slow/{name}", json={"v": f"value-{name}"}, delay=DELAY)
    mock.route("/login", json={"token": "tok-123"})
    mock.route("/profile/ann", json={"plan": "gold"})
    mock.route("/geo", json={"country": "FR", "city": "Paris"})
    mock.route("/status/500", status=500, json={"error": "boom"})
    mock.route("/status/503", status=503)
    mock.route("/status/404", status=404, body=b"nope")
    mock.route("/drop", action="drop")
    mock.route("/stall", action="stall")
    mock.route("/nonjson", body=b"<html>", headers={"Content-Type": "text/html"})
    mock.route("/evil", json={"v": "ok\r\nX-Evil: 1"})
    mock.route("/slowup", json={"up": True}, delay=DELAY)
    return yaml.safe_dump({"_format_version": "3.0", "services": _cases(mock, httpbin)})


@pytest.fixture
def gw(gateway, routes):
    return gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": routes})


def timed(gw, target: str, headers: dict | None = None):
    started = time.perf_counter()
    response, body = call(gw.url, target=target, headers=headers)
    return response, body, time.perf_counter() - started


def test_the_guides_plugin_as_config_sets_x_myplugin_from_httpbin(gw, httpbin):
    response, body = call(gw.url, target="/guide")
    assert response.status == 200
    assert response.getheader("X-MyPlugin") == f"{httpbin}/anything"
    assert json.loads(body)["url"].endswith("/anything")


def test_three_independent_callouts_take_one_delay_not_three(gw):
    call(gw.url, target="/parallel")  # warm the pools
    response, body, seconds = timed(gw, "/parallel")
    assert response.status == 200
    sent = json.loads(body)["headers"]
    assert [sent.get(f"X-{n}") for n in "abc"] == ["value-a", "value-b", "value-c"]
    assert DELAY <= seconds < 2 * DELAY, seconds


def test_a_chain_of_two_takes_two_delays_and_passes_the_first_result_on(gw, mock):
    response, body, seconds = timed(gw, "/chain")
    assert response.status == 200
    assert json.loads(body)["headers"]["X-User"] == "value-user"
    assert mock.calls("/slow/user")[-1].query == {"t": "value-token"}
    assert 2 * DELAY <= seconds < 3 * DELAY, seconds


def test_composition_into_the_upstream_request_and_the_response_body(gw, mock):
    response, body = call(gw.url, method="POST", target="/compose?city=x",
                          headers={"X-User": "ann", "Content-Type": "application/json"},
                          body=json.dumps({"order": 7}))
    assert response.status == 200
    assert mock.calls("/profile/ann")[-1].header("Authorization") == "Bearer tok-123"
    assert mock.calls("/geo")[-1].query == {"city": "x"}
    upstream = mock.calls("/echo")[-1]
    assert upstream.header("X-Plan") == "gold" and upstream.header("X-Country") == "FR"
    assert upstream.query == {"city": "x", "user": "ann"}
    assert json.loads(upstream.body) == {"order": 7, "plan": "gold",
                                         "geo": {"country": "FR", "city": "Paris"}}
    assert response.getheader("X-Geo-City") == "Paris"
    document = json.loads(body)
    assert document["geo"] == {"country": "FR", "city": "Paris"}
    assert document["path"] == "/echo"  # the upstream's own fields are kept


def test_a_decorated_body_goes_with_its_own_content_length_and_head_with_none(gw):
    host, port = gw.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        answers = []
        for method in ("HEAD", "GET", "HEAD"):  # one keep-alive connection: framing must hold
            conn.request(method, "/decorated")
            response = conn.getresponse()
            answers.append((response, response.read()))
    finally:
        conn.close()
    (head, head_body), (get, body), _ = answers
    assert get.status == 200 and get.getheader("Transfer-Encoding") is None
    assert get.getheader("Content-Length") == str(len(body))
    document = json.loads(body)
    assert document["city"] == "Paris" and document["url"].endswith("/anything")
    assert head.status == 200 and head_body == b""
    assert head.getheader("Content-Length") is None  # httpbin's would not match the GET's
    assert head.getheader("Transfer-Encoding") is None


def test_on_error_fail_answers_kongs_default_code_and_message(gw):
    response, body = call(gw.url, target="/fail")
    assert response.status == 400
    assert json.loads(body)["message"] == "service callout error"


def test_on_error_retry_calls_again_for_the_statuses_then_fails(gw, mock):
    before = len(mock.calls("/status/503"))
    response, body = call(gw.url, target="/retry")
    assert (response.status, json.loads(body)["message"]) == (502, "lookup unavailable")
    assert len(mock.calls("/status/503")) - before == 3  # one call and two retries


def test_on_error_continue_reaches_the_upstream_without_the_value(gw):
    response, body = call(gw.url, target="/continue")
    assert response.status == 200
    assert "X-Got" not in json.loads(body)["headers"]


def test_timeouts_bound_a_stalled_callout(gw):
    response, body, seconds = timed(gw, "/timeout")
    assert (response.status, json.loads(body)["message"]) == (400, "service callout error")
    assert seconds < 1.5, seconds


def test_bad_json_from_a_decoded_callout_fails(gw):
    response, body = call(gw.url, target="/badjson")
    assert (response.status, json.loads(body)["message"]) == (400, "service callout error")


def test_a_status_not_listed_is_an_answer_not_an_error(gw):
    response, body = call(gw.url, target="/notanerror")
    assert response.status == 200
    sent = json.loads(body)["headers"]
    assert (sent["X-Status"], sent["X-Body"]) == ("404", "nope")


def test_values_with_cr_lf_never_become_headers(gw):
    response, body = call(gw.url, target="/inject")
    assert response.status == 200
    sent = json.loads(body)["headers"]
    assert "X-Value" not in sent and "X-Evil" not in sent
    assert response.getheader("X-Out") is None and response.getheader("X-Evil") is None


def test_the_cache_makes_one_call_per_key_under_concurrency(gw, mock):
    def get(k: str):
        return call(gw.url, target=f"/cached?k={k}")

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(get, ["one"] * 8 + ["two"] * 2))
    assert all(r.status == 200 for r, _ in answers)
    keys = [c.query.get("k") for c in mock.calls("/slow/cached")]
    assert sorted(keys) == ["one", "two"]
    assert json.loads(get("one")[1])["headers"]["X-V"] == "value-cached"
    assert len(mock.calls("/slow/cached")) == 2  # a hit


def test_a_callout_only_the_response_needs_overlaps_the_upstream_call(gw):
    call(gw.url, target="/deferred")
    response, body, seconds = timed(gw, "/deferred")
    assert response.status == 200
    assert response.getheader("X-Late") == "value-late"
    assert json.loads(body) == {"up": True}
    assert DELAY <= seconds < 2 * DELAY, seconds
