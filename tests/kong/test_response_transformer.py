"""Kong's response-transformer specs (spec/03-plugins/15-response-transformer/): the body
transformer's cases (02-body_transformer_spec.lua), the header transformer's
(01-header_transformer_spec.lua) and the big-body and filter cases (04, 05), each through a
declarative file in front of a mock upstream that answers the spec's JSON (httpbin's echo for
the big POST body).

Skipped, and why:

| spec case | why |
|---|---|
| 03-api_spec.lua (Admin API) | DB-less |
| `#grpc` cases | no gRPC |
| a body over the bound | ours streams it unchanged (logged); Kong has no bound |
"""

from __future__ import annotations

import json

import pytest

from gateway.config import ConfigError
from tests.kong.plugin_kit import kong_client, send

ADD = {"json": ["p1:v1", "p3:value:3", 'p4:"v1"', "p5:-1", "p6:false", "p7:true"],
       "json_types": ["string", "string", "string", "number", "boolean", "boolean"]}
APPEND = {"json": ["p1:v1", 'p3:"v1"', "p4:-1", "p5:false", "p6:true"],
          "json_types": ["string", "string", "number", "boolean", "boolean"]}


def client_for(upstream: str, config: dict) -> object:
    return kong_client(json.dumps({"_format_version": "3.0", "services": [{
        "name": "mock", "url": upstream, "routes": [{"name": "r", "paths": ["/"]}],
        "plugins": [{"name": "response-transformer", "config": config}]}]}))


def transformed(mock_service, config: dict, body: object, content_type: str =
                "application/json", headers: dict | None = None):
    mock_service.route("/json", body=json.dumps(body).encode(),
                       headers={"Content-Type": content_type, **(headers or {})})
    response = send(client_for(mock_service.url, config), "GET", "/json", "a")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(response.get_data()))
    return response


@pytest.mark.parametrize("body, expected", [
    ({"p2": "v1"}, {"p2": "v1"}),
    ({"p2": -1}, {"p2": -1}),
    ({"p2": False}, {"p2": False}),
    ({"p2": "v1", "a": []}, {"p2": "v1", "a": []}),
])
def test_add(mock_service, body, expected):
    got = transformed(mock_service, {"add": ADD}, body).json
    assert got == {**expected, "p1": "v1", "p3": "value:3", "p4": '"v1"', "p5": -1,
                   "p6": False, "p7": True}


@pytest.mark.parametrize("body, expected", [
    ({"p2": "v1"}, {"p2": "v1", "p1": ["v1"], "p3": ['"v1"'], "p4": [-1], "p5": [False],
                    "p6": [True]}),
    ({"p1": "v2"}, {"p1": ["v2", "v1"], "p3": ['"v1"'], "p4": [-1], "p5": [False],
                    "p6": [True]}),
    ({"p4": "v2"}, {"p1": ["v1"], "p3": ['"v1"'], "p4": ["v2", -1], "p5": [False],
                    "p6": [True]}),
    ({"p5": "v5", "p6": "v6"}, {"p1": ["v1"], "p3": ['"v1"'], "p4": [-1], "p5": ["v5", False],
                                "p6": ["v6", True]}),
])
def test_append(mock_service, body, expected):
    assert transformed(mock_service, {"append": APPEND}, body).json == expected


def test_remove(mock_service):
    assert transformed(mock_service, {"remove": {"json": ["p1", "p2"]}},
                       {"p1": "v1", "p2": "v1"}).get_data() == b"{}"


def test_rename_and_replace(mock_service):
    config = {"rename": {"json": ["p1:k1", "p2:k2"]},
              "replace": {"json": ["p3:v2", 'p4:"v2"', "p5:-2"],
                          "json_types": ["string", "string", "number"]}}
    got = transformed(mock_service, config, {"p1": "v1", "p2": "v2", "p3": "v1", "p5": 1}).json
    assert got == {"k1": "v1", "k2": "v2", "p3": "v2", "p5": -2}  # p4 absent: not replaced


def test_a_body_that_is_not_json_passes_unchanged(mock_service):
    mock_service.route("/text", body=b"plain text", headers={"Content-Type": "text/plain"})
    response = send(client_for(mock_service.url, {"add": ADD}), "GET", "/text", "a")
    assert response.get_data() == b"plain text"
    mock_service.route("/bad", body=b"{not json", headers={"Content-Type": "application/json"})
    response = send(client_for(mock_service.url, {"add": ADD}), "GET", "/bad", "a")
    assert response.get_data() == b"{not json"


def test_headers_remove_rename_replace_add_append(mock_service):
    config = {"remove": {"headers": ["h1", "h2"]}, "rename": {"headers": ["h3:h4"]},
              "replace": {"headers": ["h5:v5", "absent:v"]},
              "add": {"headers": ["h6:new", "h7:new"]}, "append": {"headers": ["h8:v8"]}}
    response = transformed(mock_service, config, {"a": 1}, headers={
        "h1": "1", "h2": "2", "h3": "3", "h5": "5", "h6": "upstream's", "h8": "first"})
    headers = response.headers
    assert "h1" not in headers and "h2" not in headers and "h3" not in headers
    assert headers["h4"] == "3" and headers["h5"] == "v5" and "absent" not in headers
    assert headers["h6"] == "upstream's" and headers["h7"] == "new"  # add: only when absent
    assert headers.getlist("h8") == ["first", "v8"]
    assert response.json == {"a": 1}


def test_a_large_body_is_transformed(mock_service):
    body = {"params": "x" * 100_000, "keep": list(range(1000))}
    config = {"add": {"json": ["p1:v1"]}, "remove": {"json": ["params"]}}
    got = transformed(mock_service, config, body).json
    assert got == {"keep": list(range(1000)), "p1": "v1"}


def test_a_body_over_the_bound_streams_unchanged(mock_service, caplog):
    from tests.support.app import in_process

    mock_service.route("/big", body=json.dumps({"a": "x" * 5000}).encode(),
                       headers={"Content-Type": "application/json"})
    client = in_process({"GATEWAY_UPSTREAM_URL": mock_service.url,
                         "GATEWAY_FILTERS": "response-transformer",
                         "GATEWAY_RESPONSE_TRANSFORMER_ADD_JSON": "p1:v1",
                         "GATEWAY_RESPONSE_TRANSFORMER_MAX_BODY": "1k"})
    response = send(client, "GET", "/big", "a")
    assert response.json == {"a": "x" * 5000}
    assert "over 1024 bytes: passed on untransformed" in caplog.text


def test_from_environment_variables(mock_service):
    from tests.support.app import in_process

    mock_service.route("/j", body=b'{"id": 1}', headers={"Content-Type": "application/json",
                                                         "X-Powered-By": "php"})
    client = in_process({"GATEWAY_UPSTREAM_URL": mock_service.url,
                         "GATEWAY_FILTERS": "response-transformer",
                         "GATEWAY_RESPONSE_TRANSFORMER_REMOVE_HEADERS": "X-Powered-By",
                         "GATEWAY_RESPONSE_TRANSFORMER_ADD_JSON": '["note:a,b", "n:2"]',
                         "GATEWAY_RESPONSE_TRANSFORMER_ADD_JSON_TYPES": "string,number"})
    response = send(client, "GET", "/j", "a")
    assert "X-Powered-By" not in response.headers
    assert response.json == {"id": 1, "note": "a,b", "n": 2}


@pytest.mark.parametrize("config, error", [
    ({"add": {"headers": ["bad name:v"]}}, "'bad name' is not a valid header"),
    ({"add": {"json_types": ["float"]}}, "expected one of"),
])
def test_schema_refusals(config, error):
    with pytest.raises(ConfigError, match=error):
        client_for("http://127.0.0.1:1", config)


# 01-header_transformer_spec.lua: is_json_body()

@pytest.mark.parametrize("content_type", [
    "application/json; charset=utf-8", "application/problem+json",
    "application/problem+json; charset=utf-8",
    "application/x-www-form-urlencoded, application/json"])
def test_json_content_types_are_transformed(mock_service, content_type):
    got = transformed(mock_service, {"add": {"json": ["p1:v1"]}}, {"a": 1}, content_type)
    assert json.loads(got.get_data()) == {"a": 1, "p1": "v1"}


def test_a_form_content_type_is_not_transformed(mock_service):
    response = transformed(mock_service, {"add": {"json": ["p1:v1"]}}, {"a": 1},
                           "application/x-www-form-urlencoded")
    assert response.get_data() == b'{"a": 1}'  # as the mock sent it


# 01-header_transformer_spec.lua: execute_headers()

def test_rename_a_header_sent_twice_keeps_both_values(fixture_server):
    """Kong's "header rename when same header being set twice": the fixture server's
    /cookies sends three Set-Cookie lines."""
    client = client_for(fixture_server.url, {"rename": {"headers": ["Set-Cookie:X-Cookie"]}})
    response = send(client, "GET", "/cookies", "a")
    assert "Set-Cookie" not in response.headers
    assert response.headers.getlist("X-Cookie") == ["a=1; Path=/", "b=2; Path=/",
                                                    "c=3, d; Path=/"]


def test_remove_replace_add_append_headers_together(mock_service):
    config = {"remove": {"headers": ["h1"]}, "replace": {"headers": ["h2:v3"]},
              "add": {"headers": ["h3:v3"]}, "append": {"headers": ["h3:v4"]}}
    response = transformed(mock_service, config, {}, headers={"h1": "v1", "h2": "v2"})
    assert "h1" not in response.headers and response.headers["h2"] == "v3"
    assert response.headers.getlist("h3") == ["v3", "v4"]


def test_append_a_header_that_is_absent(mock_service):
    response = transformed(mock_service, {"append": {"headers": ["h1:v2"]}}, {})
    assert response.headers.getlist("h1") == ["v2"]


# 02-body_transformer_spec.lua

@pytest.mark.parametrize("body, expected", [
    ({"p1": "v1", "p2": "v2"}, {"k1": "v1", "k2": "v2"}),
    ({"p1": "v1", "p2": "v2", "p3": []}, {"k1": "v1", "k2": "v2", "k3": []}),
    ({"p3": -1}, {"k3": -1}),
    ({"p4": False, "p5": True}, {"k4": False, "k5": True}),
])
def test_rename_json(mock_service, body, expected):
    config = {"rename": {"json": ["p1:k1", "p2:k2", "p3:k3", "p4:k4", "p5:k5"]}}
    assert transformed(mock_service, config, body).json == expected


REPLACE = {"json": ["p1:v2", 'p2:"v2"', "p3:-1", "p4:false", "p5:true"],
           "json_types": ["string", "string", "number", "boolean", "boolean"]}


@pytest.mark.parametrize("body, expected", [
    ({"p1": "v1", "p2": "v1"}, {"p1": "v2", "p2": '"v2"'}),
    ({"p1": "v1"}, {"p1": "v2"}),
    ({"p2": "v1"}, {"p2": '"v2"'}),
    ({"p1": "v1", "p2": "v1", "a": []}, {"p1": "v2", "p2": '"v2"', "a": []}),
    ({"p3": "v1"}, {"p3": -1}),
    ({"p4": "v4", "p5": "v5"}, {"p4": False, "p5": True}),
])
def test_replace_json(mock_service, body, expected):
    assert transformed(mock_service, {"replace": REPLACE}, body).json == expected


@pytest.mark.parametrize("body, expected", [
    ({"p1": "v1", "p4": "v1"}, {"p2": "v2", "p3": ["v1", "v2"]}),
    ({"p1": "v1", "p4": "v1", "a": []}, {"p2": "v2", "p3": ["v1", "v2"], "a": []}),
])
def test_remove_rename_replace_add_append_json(mock_service, body, expected):
    config = {"remove": {"json": ["p1"]}, "rename": {"json": ["p4:p2"]},
              "replace": {"json": ["p2:v2"]}, "add": {"json": ["p3:v1"]},
              "append": {"json": ["p3:v2"]}}
    assert transformed(mock_service, config, body).json == expected


def test_remove_json_keeps_an_empty_array(mock_service):
    got = transformed(mock_service, {"remove": {"json": ["p1", "p2"]}},
                      {"p1": "v1", "p2": "v1", "a": []})
    assert got.get_data() == b'{"a":[]}'


def test_body_unaltered_when_only_headers_are_transformed(mock_service):
    """Kong's "body remains unaltered if no transforms have been set" (issue 1207): the
    JSON is not parsed and re-encoded, its whitespace stays."""
    body = b'\n    {\n      "id": 1,\n      "name": "Some One",\n      "address": {\n' \
           b'        "city": "Gwendoline"\n      }\n    }\n  '
    mock_service.route("/spaced", body=body, headers={"Content-Type": "application/json"})
    client = client_for(mock_service.url, {"remove": {"headers": ["h1", "h2", "h3"]}})
    assert send(client, "GET", "/spaced", "a").get_data() == body


# 04-filter_spec.lua

def test_filter_remove_a_parameter_and_a_header(mock_service):
    config = {"remove": {"headers": ["Access-Control-Allow-Origin"], "json": ["url"]}}
    response = transformed(mock_service, config, {"url": "http://x", "args": {}},
                           headers={"Access-Control-Allow-Origin": "*"})
    assert response.json == {"args": {}}
    assert "Access-Control-Allow-Origin" not in response.headers


def test_filter_replace_body_parameters_with_slashes_and_quotes(mock_service):
    config = {"replace": {"json": ["headers:/hello/world", "uri_args:this is a / test",
                                   'url:"wot"']}}
    body = {"headers": {"host": "x"}, "uri_args": {}, "url": "http://x/get"}
    got = transformed(mock_service, config, body).json
    assert got == {"headers": "/hello/world", "uri_args": "this is a / test", "url": '"wot"'}


def test_filter_a_request_short_circuited_before_it(mock_service):
    """Kong's regression 3521: basic-auth answers 401 before the upstream; the
    response-transformer on the same route (remove json ip) does not fail it."""
    client = kong_client(json.dumps({"_format_version": "3.0", "services": [{
        "name": "mock", "url": mock_service.url, "routes": [{"name": "r", "paths": ["/"]}],
        "plugins": [{"name": "response-transformer", "config": {"remove": {"json": ["ip"]}}},
                    {"name": "basic-auth"}]}]}))
    response = send(client, "GET", "/get", "a")
    assert response.status_code == 401
    assert response.json["message"] == "Unauthorized"


# 05-big_response_body_spec.lua

def test_add_and_remove_on_a_large_post(httpbin):
    """httpbin's /anything echoes the 1 MiB JSON body under "json" (Kong's mock upstream's
    "params"); the plugin adds p1 and removes that field."""
    client = kong_client(json.dumps({"_format_version": "3.0", "services": [{
        "name": "httpbin", "url": httpbin, "routes": [{"name": "r", "methods": ["POST"],
                                                       "paths": ["/"]}],
        "plugins": [{"name": "response-transformer", "config": {
            "add": {"json": ["p1:v1"]}, "remove": {"json": ["json"]}}}]}]}))
    big = json.dumps({"mock_json": {"big_field": "*" * (1024 * 1024)}})
    response = send(client, "POST", "/anything", "a", data=big,
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    got = response.json
    assert got["p1"] == "v1" and "json" not in got


def test_a_null_field_is_present_to_replace_and_add(mock_service):
    """A JSON null decodes to cjson.null in Kong, a true value to its `if json_body[name]`:
    replace changes the field, add leaves it; false is absent to both."""
    config = {"replace": {"json": ["n1:r"]}, "add": {"json": ["n2:a", "f:a"]}}
    got = transformed(mock_service, config, {"n1": None, "n2": None, "f": False}).json
    assert got == {"n1": "r", "n2": None, "f": "a"}
