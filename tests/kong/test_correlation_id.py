"""Kong's correlation-id access spec (spec/03-plugins/11-correlation-id/01-access_spec.lua)
and schema spec (02-schema_spec.lua), case by case, through a declarative file.

Skipped, and why:

| spec case | why |
|---|---|
| every `#grpc` case | no gRPC proxying in this gateway |
| echo when the upstream times out | translated with an upstream that refuses (502): same path |
| a runtime error (`error-generator-last`) | a Kong test plugin; one that answers is used |
| `correlation_id` in file-log's entry | that entry belongs to the log plugins (issue 21) |
| "auto-complete generator if it is `null` in database" (both modes) | a database row |

The "auto-complete" cases read a row written to the database behind the schema's back;
a file is validated instead, so 02-schema_spec's "requried field must be included"
holds: a `generator: null` is refused, as Kong's validator refuses it; left out, the
generator is Kong's default.
"""

from __future__ import annotations

import re

import pytest

from gateway.config import ConfigError
from tests.kong.plugin_kit import kong_client, seen, send

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
UUID_COUNTER = UUID + r"#\d+"
TRACKER = r"[^-]+-\d+-\d+-\d+-\d+-\d{10}\.\d{3}"


def kong_yml(upstream: str) -> str:
    return f"""
_format_version: "3.0"
services:
- name: mock
  url: {upstream}/anything
  routes:
  - {{name: r1, hosts: [correlation1.test], plugins: [{{name: correlation-id}}]}}
  - name: r2
    hosts: [correlation2.test]
    plugins: [{{name: correlation-id, config: {{header_name: Foo-Bar-Id}}}}]
  - name: r3
    hosts: [correlation3.test]
    plugins: [{{name: correlation-id, config: {{generator: uuid, echo_downstream: true}}}}]
  - name: r4
    hosts: [correlation-tracker.test]
    plugins: [{{name: correlation-id, config: {{generator: tracker}}}}]
  - name: r5
    hosts: [correlation5.test]
    plugins: [{{name: correlation-id, config: {{generator: uuid}}}}]
  - name: r6
    hosts: [correlation-terminated.test]
    plugins:
    - {{name: correlation-id, config: {{echo_downstream: true}}}}
    - {{name: request-termination, config: {{status_code: 418}}}}
  - name: r8
    hosts: [correlation-teapot.test]
    plugins:
    - {{name: correlation-id, config: {{generator: uuid, echo_downstream: true}}}}
    - {{name: request-termination, config: {{status_code: 418, message: "I'm a teapot"}}}}
- name: refusing
  url: http://127.0.0.1:1
  routes:
  - name: r7
    hosts: [correlation-refused.test]
    plugins: [{{name: correlation-id, config: {{generator: uuid, echo_downstream: true}}}}]
"""


@pytest.fixture(scope="module")
def client(httpbin):
    return kong_client(kong_yml(httpbin))


def upstream_id(client, host: str, header: str = "kong-request-id", **headers: str) -> str:
    return seen(send(client, "GET", "/", host, headers))["headers"][header]


def test_uuid_counter_increments_the_counter_part(client):
    first, second = (upstream_id(client, "correlation1.test") for _ in range(2))
    assert re.fullmatch(UUID_COUNTER, first) and re.fullmatch(UUID_COUNTER, second)
    (base1, count1), (base2, count2) = first.split("#"), second.split("#")
    assert base1 == base2 and int(count2) == int(count1) + 1


def test_uuid_generates_a_unique_uuid_for_every_request(client):
    first, second = (upstream_id(client, "correlation5.test") for _ in range(2))
    assert re.fullmatch(UUID, first) and re.fullmatch(UUID, second) and first != second


def test_tracker_generates_a_unique_id_for_every_request(client):
    first, second = (upstream_id(client, "correlation-tracker.test") for _ in range(2))
    assert re.fullmatch(TRACKER, first) and re.fullmatch(TRACKER, second) and first != second


def test_echo_downstream_sends_the_upstreams_id_back(client):
    response = send(client, "GET", "/", "correlation3.test")
    sent = seen(response)["headers"]["kong-request-id"]
    assert re.fullmatch(UUID, sent) and response.headers["Kong-Request-ID"] == sent


def test_echo_downstream_even_when_the_upstream_fails(client):
    response = send(client, "GET", "/", "correlation-refused.test")
    assert response.status_code == 502
    assert re.fullmatch(UUID, response.headers["Kong-Request-ID"])


def test_no_echo_unless_asked(client):
    response = send(client, "GET", "/", "correlation1.test")
    assert response.status_code == 200 and "Kong-Request-ID" not in response.headers


def test_a_custom_header_name(client):
    assert re.fullmatch(UUID_COUNTER, upstream_id(client, "correlation2.test", "foo-bar-id"))


def test_preserves_an_already_existing_header(client):
    given = {"Kong-Request-ID": "foobar"}
    assert upstream_id(client, "correlation1.test", **given) == "foobar"


@pytest.mark.parametrize("value", ["", " "])
def test_does_not_preserve_an_empty_or_blank_header(client, value):
    given = {"Kong-Request-ID": value}
    assert re.fullmatch(UUID_COUNTER, upstream_id(client, "correlation1.test", **given))


@pytest.mark.parametrize(("host", "pattern"), [
    ("correlation-terminated.test", UUID_COUNTER),
    ("correlation-teapot.test", UUID),  # the spec's route 5: generator uuid, "I'm a teapot"
])
def test_echoes_with_echo_downstream_when_another_plugin_answered(client, host, pattern):
    response = send(client, "GET", "/", host)
    assert response.status_code == 418
    assert re.fullmatch(pattern, response.headers["Kong-Request-ID"])
    given = send(client, "GET", "/", host, {"Kong-Request-ID": "my very personal id"})
    assert given.status_code == 418
    assert given.headers["Kong-Request-ID"] == "my very personal id"


def test_teapot_message(client):
    assert send(client, "GET", "/", "correlation-teapot.test").json == {
        "message": "I'm a teapot"}


def test_no_echo_with_a_custom_header_name_unless_asked(client):
    response = send(client, "GET", "/", "correlation2.test")
    assert response.status_code == 200
    assert "Foo-Bar-Id" not in response.headers and "Kong-Request-ID" not in response.headers


def test_a_custom_header_name_leaves_kong_request_id_as_sent(client):
    # the spec's "preserves an already existing header" is on this route
    headers = seen(send(client, "GET", "/", "correlation2.test", {"Kong-Request-ID": "foobar"})
                   )["headers"]
    assert headers["kong-request-id"] == "foobar"
    assert re.fullmatch(UUID_COUNTER, headers["foo-bar-id"])


def test_schema_refuses_an_unknown_generator(httpbin):
    with pytest.raises(ConfigError, match=r"config\.generator: expected one of"):
        kong_client(f"""
_format_version: "3.0"
services: [{{name: mock, url: "{httpbin}/anything", routes: [{{name: r, paths: [/]}}]}}]
plugins: [{{name: correlation-id, config: {{generator: foo}}}}]
""")


def test_a_null_generator_is_refused(httpbin):
    with pytest.raises(ConfigError, match=r"config\.generator: required field missing"):
        kong_client(f"""
_format_version: "3.0"
services: [{{name: mock, url: "{httpbin}/anything", routes: [{{name: r, paths: [/]}}]}}]
plugins:
- name: correlation-id
  config: {{generator: null, header_name: Kong-Request-ID, echo_downstream: true}}
""")


def test_a_generator_left_out_is_kongs_default(httpbin):
    client = kong_client(f"""
_format_version: "3.0"
services: [{{name: mock, url: "{httpbin}/anything", routes: [{{name: r, paths: [/]}}]}}]
plugins:
- name: correlation-id
  config: {{header_name: Kong-Request-ID, echo_downstream: true}}
""")
    response = send(client, "GET", "/", "a")
    sent = seen(response)["headers"]["kong-request-id"]
    assert re.fullmatch(UUID_COUNTER, sent) and response.headers["Kong-Request-ID"] == sent


def test_from_environment_variables(httpbin):
    from tests.support.app import in_process

    client = in_process({"GATEWAY_UPSTREAM_URL": f"{httpbin}/anything",
                         "GATEWAY_FILTERS": "correlation-id",
                         "GATEWAY_CORRELATION_ID_HEADER_NAME": "X-Correlation-ID",
                         "GATEWAY_CORRELATION_ID_GENERATOR": "uuid",
                         "GATEWAY_CORRELATION_ID_ECHO_DOWNSTREAM": "true"})
    response = send(client, "GET", "/x", "a")
    sent = seen(response)["headers"]["x-correlation-id"]
    assert re.fullmatch(UUID, sent) and response.headers["X-Correlation-ID"] == sent
    assert response.headers["X-Request-ID"] != sent  # the gateway's own id is another one
