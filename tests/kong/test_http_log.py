"""Kong's spec/03-plugins/03-http-log/01-log_spec.lua and 02-schema_spec.lua (Kong 3.10),
translated case by case: the gateway in process (declarative file, and GATEWAY_* variables),
a mock upstream answering 200, and the testing kit's mock service as the collector (it
records every request it receives, as the spec's mock upstream's /post_log does).

Skipped cases and why (spec case: reason):

- logs to HTTP (#grpc, #grpcs), logs to HTTPS: no gRPC proxying here; an https collector
  needs a certificate the kit's mock does not have (the client is the external-service
  client, whose TLS is tested in tests/unit/test_services.py).
- custom log values by lua: custom_fields_by_lua is refused (no Lua): tested as refused.
- identifies plugin in queue handler logs (instance_name): plugin instance names are not
  kept.
- should dereference config.headers value (vault): vault references are the declarative
  loader's (tests/unit/test_routing_declarative.py).
- puts changed configuration into effect immediately (admin API): no admin API.
- 03-schem-vault, 04-legacy_queue_sharing, 05-old-plugin-compatibility: vaults, Kong's
  shared legacy queues and the admin API.
"""

from __future__ import annotations

import json

import pytest

from gateway.config import ConfigError
from gateway.testing.mock import MockService
from tests.support.app import gateway_of, get, in_process


@pytest.fixture
def collector():
    service = MockService()
    service.route("/post_log", status=200)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def upstream():
    service = MockService()
    yield service
    service.stop()


def kong_file(upstream: str, config: dict, host: str = "http-logging.test") -> str:
    return json.dumps({"_format_version": "3.0", "services": [{
        "name": "mock", "url": upstream, "routes": [{"name": "logging", "hosts": [host],
                                                      "plugins": [{"name": "http-log",
                                                                   "config": config}]}]}]})


def client_with(upstream: str, config: dict):
    return in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(upstream.url, config),
                       "GATEWAY_ACCESS_LOG": "off"})


def send(client, path: str = "/status/200", host: str = "http-logging.test", **kwargs):
    return get(client, path, headers={"Host": host, **kwargs.pop("headers", {})},
               environ_base={"REMOTE_ADDR": "127.0.0.1"}, **kwargs)


def drain(client) -> None:
    for f in gateway_of(client).filters:
        if f.NAME == "http-log":
            f.queue.drain()


def entries(collector: MockService) -> list[dict]:
    """Every log entry received, batches unrolled."""
    found = []
    for call in collector.calls("/post_log"):
        body = json.loads(call.body)
        found.extend(body if isinstance(body, list) else [body])
    return found


def test_logs_to_http(upstream, collector):
    client = client_with(upstream, {"http_endpoint": collector.url + "/post_log"})
    assert send(client).status_code == 200
    drain(client)
    [entry] = entries(collector)
    assert entry["client_ip"] == "127.0.0.1"
    assert entry["request"]["method"] == "GET"
    assert entry["response"]["status"] == 200
    assert entry["route"]["name"] == "logging" and entry["service"]["name"] == "mock"
    assert entry["upstream_uri"] == "/status/200"
    assert set(entry["latencies"]) == {"kong", "proxy", "request", "receive"}
    call = collector.calls("/post_log")[0]
    assert call.method == "POST"
    assert call.header("Content-Type") == "application/json"


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_content_type(upstream, collector, content_type):
    client = client_with(upstream, {"http_endpoint": collector.url + "/post_log",
                                    "content_type": content_type})
    send(client)
    drain(client)
    assert collector.calls("/post_log")[0].header("Content-Type") == content_type


def test_authorization_from_userinfo_and_headers(upstream, collector):
    endpoint = collector.url.replace("http://", "http://testuser:testpassword@") + "/post_log"
    client = client_with(upstream, {"http_endpoint": endpoint,
                                    "headers": {"Hello-World": "hi there"}})
    send(client)
    drain(client)
    call = collector.calls("/post_log")[0]
    assert call.header("Authorization") == "Basic dGVzdHVzZXI6dGVzdHBhc3N3b3Jk"
    assert call.header("Hello-World") == "hi there"


def test_http_client_implicitly_adds_host_header(upstream, collector):
    client = client_with(upstream, {"http_endpoint": collector.url + "/post_log"})
    send(client)
    drain(client)
    assert collector.calls("/post_log")[0].header("Host") == collector.url[len("http://"):]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_method(upstream, collector, method):
    client = client_with(upstream, {"http_endpoint": collector.url + "/post_log",
                                    "method": method})
    send(client)
    drain(client)
    assert collector.calls("/post_log")[0].method == method


def test_logs_with_a_buffer(upstream, collector):
    """Kong's "logs to HTTP with a buffer": 200 requests, every entry arrives, in batches
    (a JSON array per request to the collector)."""
    client = client_with(upstream, {"http_endpoint": collector.url + "/post_log",
                                    "queue": {"max_batch_size": 50,
                                              "max_coalescing_delay": 0.05}})
    for i in range(200):
        assert send(client, f"/status/{200 + i % 10}").status_code == 200
    drain(client)
    assert len(entries(collector)) == 200
    assert all(call.body.startswith(b"[") for call in collector.calls("/post_log"))
    assert len(collector.calls("/post_log")) < 200


def test_does_not_mix_buffers(upstream, collector):
    """Two routes, each with its own http-log and queue: each collector path gets its
    route's entries only."""
    upstream.route("/status/204", status=204)
    collector.route("/post_log2", status=200)
    queue = {"max_batch_size": 10, "max_coalescing_delay": 0.05}
    decl = {"_format_version": "3.0", "services": [{"name": "mock", "url": upstream.url,
            "routes": [
                {"name": "one", "hosts": ["http-queue-logging.test"], "plugins": [
                    {"name": "http-log", "config": {
                        "http_endpoint": collector.url + "/post_log", "queue": queue}}]},
                {"name": "two", "hosts": ["http-queue-logging2.test"], "plugins": [
                    {"name": "http-log", "config": {
                        "http_endpoint": collector.url + "/post_log2", "queue": queue}}]}]}]}
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(decl),
                         "GATEWAY_ACCESS_LOG": "off"})
    for _ in range(20):
        assert send(client, "/status/200", host="http-queue-logging.test").status_code == 200
        assert send(client, "/status/204", host="http-queue-logging2.test").status_code == 204
    drain(client)
    first = entries(collector)
    second = [entry for call in collector.calls("/post_log2") for entry in json.loads(call.body)]
    assert len(first) == len(second) == 20
    assert {e["response"]["status"] for e in first} == {200}
    assert {e["response"]["status"] for e in second} == {204}
    assert {e["route"]["name"] for e in second} == {"two"}
    assert {e["client_ip"] for e in first + second} == {"127.0.0.1"}


def test_batch_size_one_sends_one_object(upstream, collector):
    client = client_with(upstream, {"http_endpoint": collector.url + "/post_log"})
    send(client)
    send(client)
    drain(client)
    calls = collector.calls("/post_log")
    assert len(calls) == 2 and all(call.body.startswith(b"{") for call in calls)


def test_no_queue_when_concurrency_limit_is_minus_one(upstream, collector):
    client = client_with(upstream, {"http_endpoint": collector.url + "/post_log",
                                    "queue": {"concurrency_limit": -1}})
    send(client)
    drain(client)
    assert len(entries(collector)) == 1


def test_layer_4_failure_does_not_fail_the_request(upstream, collector, caplog):
    """Kong's "gracefully handles layer 4 failures": the request answers, the queue logs."""
    client = client_with(upstream, {"http_endpoint": "http://127.0.0.1:1/post_log",
                                    "queue": {"max_retry_time": 0.05}})
    assert send(client).status_code == 200
    drain(client)
    assert "handler could not process entries" in caplog.text
    assert "queue entries were lost" in caplog.text


def test_a_collector_timeout_is_logged_in_kongs_words(upstream, collector, caplog):
    """Kong's "gracefully handles layer 4 failures" with its collector that answers after
    5 s and timeout 1: the request answers; the queue says the request failed, and why."""
    collector.route("/delay", delay=2)
    client = client_with(upstream, {"http_endpoint": collector.url + "/delay", "timeout": 1,
                                    "queue": {"max_retry_time": 0.05}})
    assert send(client).status_code == 200
    drain(client)
    address = collector.url[len("http://"):]
    assert f"handler could not process entries: failed request to {address}: timeout" \
        in caplog.text


def test_a_collector_error_status_is_logged_with_its_body(upstream, collector, caplog):
    """Kong's handler: an answer of 300 or more fails the batch (retried), the log line
    names the status and the collector's body."""
    collector.route("/post_log", status=500, body=b"no room")
    client = client_with(upstream, {"http_endpoint": collector.url + "/post_log",
                                    "queue": {"max_retry_time": 0.05}})
    assert send(client).status_code == 200
    drain(client)
    address = collector.url[len("http://"):]
    assert (f"handler could not process entries: request to {address} returned status code "
            "500 and body no room") in caplog.text
    assert len(collector.calls("/post_log")) >= 2  # retried


def test_authorization_redacted(upstream, collector):
    client = client_with(upstream, {"http_endpoint": collector.url + "/post_log"})
    send(client, headers={"Authorization": "Bearer s3cr3t", "Proxy-Authorization": "x y"})
    drain(client)
    [entry] = entries(collector)
    assert entry["request"]["headers"]["authorization"] == "REDACTED"
    assert entry["request"]["headers"]["proxy-authorization"] == "REDACTED"
    assert b"s3cr3t" not in collector.calls("/post_log")[0].body


def test_enabled_globally_when_route_does_not_exist(upstream, collector):
    """Kong's "executes successfully when route does not exist" (global plugin)."""
    decl = {"_format_version": "3.0", "services": [{"name": "mock", "url": upstream.url,
                                                    "routes": [{"paths": ["/exists"]}]}],
            "plugins": [{"name": "http-log",
                         "config": {"http_endpoint": collector.url + "/post_log"}}]}
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(decl)})
    assert get(client, "/nowhere").status_code == 404
    assert get(client, "/exists").status_code == 200
    drain(client)
    found = entries(collector)
    assert [entry["request"]["uri"] for entry in found] == ["/nowhere", "/exists"]
    assert found[0]["response"]["status"] == 404
    assert "route" not in found[0] and "service" not in found[0]


def test_direct_from_variables(upstream, collector):
    client = in_process({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "http-log",
                         "GATEWAY_HTTP_LOG_ENDPOINT": collector.url + "/post_log",
                         "GATEWAY_HTTP_LOG_QUEUE_MAX_BATCH_SIZE": "5",
                         "GATEWAY_HTTP_LOG_QUEUE_MAX_COALESCING_DELAY": "0.05",
                         "GATEWAY_ACCESS_LOG": "off"})
    for _ in range(7):
        get(client, "/anything")
    drain(client)
    assert len(entries(collector)) == 7


# 02-schema_spec.lua

@pytest.mark.parametrize(("config", "message"), [
    # Kong: "length must be at least 1"; the loader words it its own way (reported)
    ({"http_endpoint": "http://x.test", "headers": {"X-My-Header": ""}},
     "plugins[http-log].config.headers.X-My-Header: expected a non-empty string"),
    ({"http_endpoint": "http://x.test", "headers": {"X-My-Header": "123", "Host": "MyHost"}},
     "cannot contain 'Host' header"),
    ({"http_endpoint": "http://x.test", "headers": {"Host": "a"}}, "cannot contain 'Host'"),
    ({"http_endpoint": "http://x.test", "headers": {"Content-Length": "1"}},
     "cannot contain 'Content-Length'"),
    ({"http_endpoint": "http://x.test", "headers": {"content-type": "a"}},
     "cannot contain 'Content-Type'"),
    ({"http_endpoint": "http://u:p@x.test", "headers": {"Authorization": "a"}},
     "specifying both an 'Authorization' header and user info in 'http_endpoint' is not "
     "allowed"),
    ({"http_endpoint": "http://x.test", "custom_fields_by_lua": {"a": "return 1"}},
     "plugins[http-log].config.custom_fields_by_lua: is not supported by this gateway"),
    ({"http_endpoint": "http://x.test", "method": "GET"}, "expected one of: POST, PUT, PATCH"),
    ({"http_endpoint": "http://x.test", "content_type": "text/plain"}, "expected one of"),
    ({}, "plugins[http-log].config.http_endpoint: required field missing"),
    ({"http_endpoint": "ftp://x.test"}, "http_endpoint"),
    ({"http_endpoint": "http://x.test", "queue": {"max_batch_size": 0}},
     "plugins[http-log].config.queue.max_batch_size: value should be between 1 and 1000000"),
    ({"http_endpoint": "http://x.test", "queue": {"concurrency_limit": 0}},
     "plugins[http-log].config.queue.concurrency_limit"),
])
def test_schema_refusals(upstream, config, message):
    decl = {"_format_version": "3.0", "services": [{"name": "s", "url": upstream.url, "routes": [
        {"paths": ["/"]}]}], "plugins": [{"name": "http-log", "config": config}]}
    with pytest.raises(ConfigError) as raised:
        in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(decl)})
    assert message in str(raised.value)


def test_schema_accepts_kong_defaults_and_deprecated_fields(upstream):
    decl = {"_format_version": "3.0", "services": [{"name": "s", "url": upstream.url, "routes": [
        {"paths": ["/"]}]}], "plugins": [{"name": "http-log", "config": {
            "http_endpoint": "http://x.test", "method": "POST", "timeout": 10000,
            "keepalive": 60000, "retry_count": 10, "queue_size": 20, "flush_timeout": 2,
            "custom_fields_by_lua": None, "queue": {"max_entries": 10000}}}]}
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(decl)})
    [f] = [f for f in gateway_of(client).filters if f.NAME == "http-log"]
    assert f.queue.settings.max_batch_size == 20
    assert f.queue.settings.max_coalescing_delay == 2
    assert f.queue.settings.max_retry_time == 60  # Kong's default


@pytest.mark.parametrize("config", [
    {"http_endpoint": "http://myservice.test/path"},
    {"http_endpoint": "http://bob:password@myservice.test/path"},
    {"http_endpoint": "http://myservice.test/path",
     "headers": {"X-My-Header": "123", "X-Your-Header": "abc"}},
])
def test_schema_accepts(upstream, config):
    """02-schema_spec's accepted configs: minimal, user info without headers, allowed
    headers."""
    decl = {"_format_version": "3.0", "services": [{"name": "s", "url": upstream.url, "routes": [
        {"paths": ["/"]}]}], "plugins": [{"name": "http-log", "config": config}]}
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(decl)})
    assert [f.NAME for f in gateway_of(client).filters].count("http-log") == 1


def test_endpoint_secret_not_in_errors(upstream):
    decl = {"_format_version": "3.0", "services": [{"name": "s", "url": upstream.url, "routes": [
        {"paths": ["/"]}]}], "plugins": [{"name": "http-log", "config": {
            "http_endpoint": "http://user:hunter2@x.test:notaport/"}}]}
    with pytest.raises(ConfigError) as raised:
        in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(decl)})
    assert "hunter2" not in str(raised.value)


def test_variables_without_an_endpoint_are_refused(upstream):
    with pytest.raises(ConfigError) as raised:
        in_process({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "http-log"})
    assert "GATEWAY_HTTP_LOG_ENDPOINT" in str(raised.value)


@pytest.mark.parametrize(("setting", "error"), [
    (("GATEWAY_HTTP_LOG_HEADERS", "X-My-Header:"), "headers: length must be at least 1"),
    (("GATEWAY_HTTP_LOG_QUEUE_CONCURRENCY_LIMIT", "0"), "concurrency_limit"),
])
def test_variables_with_a_bad_setting_are_refused(upstream, setting, error):
    with pytest.raises(ConfigError) as raised:
        in_process({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "http-log",
                    "GATEWAY_HTTP_LOG_ENDPOINT": "http://x.test", setting[0]: setting[1]})
    assert error in str(raised.value)
