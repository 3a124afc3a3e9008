"""Kong's request-transformer access spec (spec/03-plugins/36-request-transformer/
02-access_spec.lua) and schema spec (01-schema_spec.lua): the cases of routes test1-test9 and
test20, the template cases a plain reference can state (uri_captures: test10-test18,
test29), and the multipart/form-data cases, through a declarative file.

Skipped, and why:

| spec case | why |
|---|---|
| code in templates (`$(10 * x)`, `$(type(x))`, `$(shared.x)`...) | no code runs: refused at load |
| test13 `$(10 * uri_captures.user1)`, test19 `$(ERROR())`: a 500 | refused at load (no code) |
| `replace.headers` of `host` | the upstream's Host comes from the target (or preserve_host) |
| `#grpc` cases; Admin API round trips (03-api_spec.lua) | no gRPC; DB-less |
"""

from __future__ import annotations

import json

import pytest

from gateway.config import ConfigError
from tests.kong.plugin_kit import kong_client, seen, send

CONFIGS = {
    "test1.test": {"add": {"headers": ["h1:v1", "h2:value:2"], "querystring": ["q1:v1"],
                           "body": ["p1:v1"]}},
    "test2.test": {"add": {"headers": ["host:mark"]}},
    "test3.test": {"add": {"headers": ["x-added:a1", "x-added2:b1", "x-added3:c2"],
                           "querystring": ["query-added:newvalue", "p1:anything:1"],
                           "body": ["newformparam:newvalue"]},
                   "remove": {"headers": ["x-to-remove"], "querystring": ["toremovequery"]},
                   "append": {"headers": ["x-added:a2", "x-added:a3"],
                              "querystring": ["p1:a2", "p2:b1"]},
                   "replace": {"headers": ["x-to-replace:false"],
                               "querystring": ["toreplacequery:no"]}},
    "test4.test": {"remove": {"headers": ["x-to-remove"], "querystring": ["q1"],
                              "body": ["toremoveform"]}},
    "test5.test": {"replace": {"headers": ["h1:v1"], "querystring": ["q1:v1"],
                               "body": ["p1:v1"]}},
    "test6.test": {"append": {"headers": ["h1:v1", "h1:v2", "h2:v1"],
                              "querystring": ["q1:v1", "q1:v2", "q2:v1"],
                              "body": ["p1:v1", "p1:v2", "p2:value:1"]}},
    "test7.test": {"http_method": "POST"},
    "test8.test": {"http_method": "GET"},
    "test9.test": {"rename": {"headers": ["x-to-rename:x-is-renamed"],
                              "querystring": ["originalparam:renamedparam"],
                              "body": ["originalparam:renamedparam"]}},
    "test20.test": {"http_method": "POST",
                    "add": {"headers": ["Content-Type:application/json"],
                            "body": ["body:somecontent"]}},
    "template.test": {"add": {"headers": ["x-from-query:$(query_params.q1)",
                                          "x-from-header:$(headers['x-source'])",
                                          "x-default:$(query_params.none or 'fallback')"],
                              "querystring": ["q2:$(headers.x-source)"]}},
    "uri.test": {"replace": {"uri": "/anything/replaced/$(query_params.who)"}},
    # The uri_captures cases (routes test10-test18, test29). Paths replaced by replace.uri
    # start with /anything, httpbin's echo, where Kong's spec has its mock upstream.
    "test10.test": {"add": {"querystring": ["uri_param1:$(uri_captures.user1)",
                                            "uri_param2[some_index][1]:$(uri_captures.user2)"]}},
    "test11.test": {"replace": {
        "uri": "/anything/requests/user2/$(uri_captures.user2)/user1/$(uri_captures.user1)"}},
    "test12.test": {"add": {"querystring": ["uri_param1:$(uri_captures.user1 or 'default1')",
                                            "uri_param2:$(uri_captures.user2 or 'default2')"]}},
    "test14.test": {"replace": {"uri": "/anything/requests$(uri_captures[0])"}},
    "test15.test": {"add": {"querystring": ["uri_param1:$(uri_captures.user1)",
                                            "uri_param2:$(headers.host)"],
                            "headers": ["x-test-header:$(query_params.q1)"]},
                    "remove": {"querystring": ["q1"]}},
    "test16.test": {"replace": {"querystring": ["q2:$(headers['x-remove-header'])"]},
                    "add": {"querystring": ["q1:$(uri_captures.user1)"],
                            "headers": ["x-test-header:$(headers['x-remove-header'])"]},
                    "remove": {"headers": ["x-remove-header"]}},
    "test17.test": {"replace": {"querystring": ["q2:$(headers['x-replace-header'])"],
                                "headers": ["x-replace-header:the new value"]},
                    "add": {"querystring": ["q1:$(uri_captures.user1)"],
                            "headers": ["x-test-header:$(headers['x-replace-header'])"]}},
    "test18.test": {"add": {"querystring": ["q1:$('$(uri_captures.user1)')"]}},
    "test29.test": {"replace": {"uri": '/anything/api/v2/$(uri_captures["subpath"])'}},
}

USERS = r"~/requests/user1/(?P<user1>\w+)/user2/(?P<user2>\S+)"
#: Kong's routes beyond their host (paths, strip_path), as the spec inserts them.
ROUTES = {
    "test10.test": {"paths": [USERS], "strip_path": False},
    "test11.test": {"paths": [USERS]},
    "test12.test": {"paths": ["/requests/"], "strip_path": False},
    "test14.test": {"paths": [r"~/user1/(?P<user1>\w+)/user2/(?P<user2>\S+)"]},
    **{f"test{n}.test": {"paths": [USERS.replace("?P<", "?<")], "strip_path": False}
       for n in (15, 16, 17, 18)},
    "test29.test": {"paths": ["~/(gw/)?api/(?<subpath>htest)$"], "strip_path": False},
}


def kong_yml(upstream: str) -> str:
    routes = [{"name": host.split(".")[0], "hosts": [host], **ROUTES.get(host, {}),
               "plugins": [{"name": "request-transformer", "config": config}]}
              for host, config in CONFIGS.items()]
    return json.dumps({"_format_version": "3.0", "services": [
        {"name": "mock", "url": f"{upstream}/anything", "routes": routes}]})


@pytest.fixture(scope="module")
def client(httpbin):
    return kong_client(kong_yml(httpbin))


def echo(client, host: str, method: str = "GET", target: str = "/request", **kwargs):
    return seen(send(client, method, target, host, **kwargs))


FORM = "application/x-www-form-urlencoded"


def values(header: str) -> list[str]:
    """A repeated header's values (sent as lines or joined: the same, RFC 9110 5.3)."""
    return [value.strip() for value in header.split(",")]


def test_add_headers_querystring_and_form_body(client):
    got = echo(client, "test1.test", "POST", data={"hello": "world"},
               headers={"Content-Type": FORM})
    assert got["headers"]["h1"] == "v1" and got["headers"]["h2"] == "value:2"
    assert got["args"] == {"q1": "v1"}
    assert got["form"] == {"hello": "world", "p1": "v1"}


def test_add_does_not_replace_what_is_there(client):
    got = echo(client, "test1.test", "POST", target="/request?q1=old", data={"p1": "mine"},
               headers={"Content-Type": FORM, "h1": "mine"})
    assert got["headers"]["h1"] == "mine" and got["args"] == {"q1": "old"}
    assert got["form"] == {"p1": "mine"}


def test_add_json_body_fields(client):
    got = echo(client, "test1.test", "POST", data=json.dumps({"hello": "world"}),
               headers={"Content-Type": "application/json"})
    assert got["json"] == {"hello": "world", "p1": "v1"}


def test_add_never_sets_host(client):
    assert echo(client, "test2.test")["headers"]["host"] != "mark"


def test_remove_replace_add_append_together(client):
    got = echo(client, "test3.test", target="/request?toremovequery=yes&toreplacequery=yes",
               headers={"x-to-remove": "true", "x-to-replace": "true"})
    headers = got["headers"]
    assert "x-to-remove" not in headers and headers["x-to-replace"] == "false"
    assert values(headers["x-added"]) == ["a1", "a2", "a3"] and headers["x-added2"] == "b1"
    assert got["args"] == {"toreplacequery": "no", "query-added": "newvalue",
                           "p1": ["anything:1", "a2"], "p2": "b1"}


def test_remove_header_querystring_form_and_json_fields(client):
    got = echo(client, "test4.test", "POST", target="/request?q1=v1&q2=v2",
               data={"toremoveform": "yes", "nottoremove": "yes"},
               headers={"Content-Type": FORM, "x-to-remove": "true", "x-another-header": "t"})
    assert "x-to-remove" not in got["headers"] and "x-another-header" in got["headers"]
    assert got["args"] == {"q2": "v2"} and got["form"] == {"nottoremove": "yes"}
    got = echo(client, "test4.test", "POST",
               data=json.dumps({"toremoveform": "yes", "nottoremove": "yes"}),
               headers={"Content-Type": "application/json"})
    assert got["json"] == {"nottoremove": "yes"}


def test_replace_only_what_is_present(client):
    got = echo(client, "test5.test", "POST", target="/request?q1=a&q2=b",
               data={"p1": "x", "p2": "y"}, headers={"Content-Type": FORM, "h1": "h"})
    assert got["headers"]["h1"] == "v1"
    assert got["args"] == {"q1": "v1", "q2": "b"} and got["form"] == {"p1": "v1", "p2": "y"}
    absent = echo(client, "test5.test", "POST", data={"p2": "y"},
                  headers={"Content-Type": FORM})
    assert "h1" not in absent["headers"] and absent["args"] == {}
    assert absent["form"] == {"p2": "y"}


def test_append(client):
    got = echo(client, "test6.test", "POST", target="/request?q1=v0",
               data={"p1": "v0"}, headers={"Content-Type": FORM, "h1": "v0"})
    assert values(got["headers"]["h1"]) == ["v0", "v1", "v2"] and got["headers"]["h2"] == "v1"
    assert got["args"] == {"q1": ["v0", "v1", "v2"], "q2": "v1"}
    assert got["form"] == {"p1": ["v0", "v1", "v2"], "p2": "value:1"}
    as_json = echo(client, "test6.test", "POST", data=json.dumps({"p1": "v0"}),
                   headers={"Content-Type": "application/json"})
    assert as_json["json"] == {"p1": ["v0", "v1", "v2"], "p2": ["value:1"]}


def test_http_method_changed(client):
    assert echo(client, "test7.test")["method"] == "POST"


def test_post_to_get_moves_the_form_into_the_querystring(client):
    got = echo(client, "test8.test", "POST", target="/request?hello=world",
               data={"name": "marco"}, headers={"Content-Type": FORM})
    assert got["method"] == "GET" and got["args"] == {"hello": "world", "name": "marco"}


def test_rename(client):
    got = echo(client, "test9.test", "POST", target="/request?originalparam=yes",
               data={"originalparam": "yes", "nottorename": "yes"},
               headers={"Content-Type": FORM, "x-to-rename": "true"})
    assert got["headers"]["x-is-renamed"] == "true" and "x-to-rename" not in got["headers"]
    assert got["args"] == {"renamedparam": "yes"}
    assert got["form"] == {"renamedparam": "yes", "nottorename": "yes"}


def test_get_to_post_with_an_added_json_body(client):
    got = echo(client, "test20.test")
    assert got["method"] == "POST" and got["json"] == {"body": "somecontent"}
    assert got["headers"]["content-type"] == "application/json"


def test_templates_read_the_clients_headers_and_query(client):
    got = echo(client, "template.test", target="/request?q1=from-query",
               headers={"x-source": "from-header"})
    headers = got["headers"]
    assert headers["x-from-query"] == "from-query"
    assert headers["x-from-header"] == "from-header"
    assert headers["x-default"] == "fallback"
    assert got["args"] == {"q1": "from-query", "q2": "from-header"}


def test_a_missing_reference_skips_the_rule(client):
    got = echo(client, "template.test")
    assert "x-from-query" not in got["headers"] and "q2" not in got["args"]


def test_replace_uri(client):
    got = echo(client, "uri.test", target="/request?who=me")
    assert got["url"].split("?")[0].endswith("/anything/replaced/me")


@pytest.mark.parametrize("value", [
    "$(10 * uri_captures.user1)", "$(type(query_params.user))", "$(ERROR())",
    "$(require('inspect')(query_params.user))", "$(shared.my_version)",
])
def test_code_in_a_template_is_refused_at_load(httpbin, value):
    config = {"add": {"headers": [f"x-added:{value}"]}}
    file = json.dumps({"_format_version": "3.0", "services": [{
        "name": "mock", "url": f"{httpbin}/anything",
        "routes": [{"name": "r", "paths": ["/"],
                    "plugins": [{"name": "request-transformer", "config": config}]}]}]})
    with pytest.raises(ConfigError, match=r"config.*is not supported by this gateway"):
        kong_client(file)


@pytest.mark.parametrize("config, error", [
    ({"add": {"headers": ["just_a_key"]}}, "key 'just_a_key' has no value"),
    ({"remove": {"headers": ["bad header"]}}, "'bad header' is not a valid header"),
])
def test_schema_refusals(httpbin, config, error):
    file = json.dumps({"_format_version": "3.0", "services": [{
        "name": "mock", "url": f"{httpbin}/anything",
        "routes": [{"name": "r", "paths": ["/"],
                    "plugins": [{"name": "request-transformer", "config": config}]}]}]})
    with pytest.raises(ConfigError, match=error):
        kong_client(file)


def test_from_environment_variables(httpbin):
    from tests.support.app import in_process

    client = in_process({
        "GATEWAY_UPSTREAM_URL": f"{httpbin}/anything", "GATEWAY_FILTERS": "request-transformer",
        "GATEWAY_REQUEST_TRANSFORMER_ADD_HEADERS": "X-Tenant:acme",
        "GATEWAY_REQUEST_TRANSFORMER_REMOVE_QUERYSTRING": "debug",
        "GATEWAY_REQUEST_TRANSFORMER_APPEND_BODY": '["tags:a,b"]',
    })
    got = seen(send(client, "POST", "/x?debug=1&keep=1", "a", data=json.dumps({"id": 1}),
                    headers={"Content-Type": "application/json"}))
    assert got["headers"]["x-tenant"] == "acme" and got["args"] == {"keep": "1"}
    assert got["json"] == {"id": 1, "tags": ["a,b"]}


USER_PATH = "/requests/user1/foo/user2/bar"


def test_uri_captures_into_the_querystring(client):
    got = echo(client, "test10.test", target=USER_PATH + "?q1=20", data={"hello": "world"},
               headers={"Content-Type": FORM})
    assert got["args"] == {"q1": "20", "uri_param1": "foo", "uri_param2[some_index][1]": "bar"}
    path, _, query = got["url"].partition("?")  # httpbin shows the query decoded
    assert path.endswith("/anything" + USER_PATH)
    assert query == "q1=20&uri_param1=foo&uri_param2[some_index][1]=bar"


def test_uri_captures_by_name_rewrite_the_path(client):
    got = echo(client, "test11.test", target=USER_PATH)
    assert got["url"].endswith("/anything/requests/user2/bar/user1/foo")


def test_without_captures_the_defaults_are_used(client):
    got = echo(client, "test12.test", target="/requests/?q1=20")
    assert got["args"] == {"q1": "20", "uri_param1": "default1", "uri_param2": "default2"}


def test_uri_captures_by_index_zero_is_the_whole_match(client):
    got = echo(client, "test14.test", target="/user1/foo/user2/bar")
    assert got["url"].endswith("/anything/requests/user1/foo/user2/bar")


def test_templates_read_captures_headers_and_the_clients_query(client):
    got = echo(client, "test15.test", target=USER_PATH + "?q1=20",
               headers={"Content-Type": FORM})
    assert got["args"] == {"uri_param1": "foo", "uri_param2": "test15.test"}
    assert got["headers"]["x-test-header"] == "20"


def test_a_removed_header_can_be_used_in_a_template(client):
    got = echo(client, "test16.test", target=USER_PATH + "?q2=20",
               headers={"x-remove-header": "its a test", "Content-Type": FORM})
    assert "x-remove-header" not in got["headers"]
    assert got["args"] == {"q1": "foo", "q2": "its a test"}
    assert got["headers"]["x-test-header"] == "its a test"


def test_templates_render_the_old_value_of_a_replaced_header(client):
    got = echo(client, "test17.test", target=USER_PATH + "?q2=20",
               headers={"x-replace-header": "the old value", "Content-Type": FORM})
    assert got["args"] == {"q1": "foo", "q2": "the old value"}
    assert got["headers"]["x-test-header"] == "the old value"
    assert got["headers"]["x-replace-header"] == "the new value"


def test_a_template_can_be_escaped_as_a_quoted_string(client):
    got = echo(client, "test18.test", target=USER_PATH + "?q2=20",
               headers={"x-replace-header": "the old value", "Content-Type": FORM})
    assert got["args"] == {"q1": "$(uri_captures.user1)", "q2": "20"}


@pytest.mark.parametrize("target", ["/api/htest", "/gw/api/htest"])
def test_a_named_capture_after_an_optional_group(client, target):
    got = echo(client, "test29.test", target=target)
    assert got["url"].endswith("/anything/api/v2/htest")


MULTIPART = "multipart/form-data"


def multipart_post(client, host: str, data: dict, target: str = "/request") -> dict:
    return echo(client, host, "POST", target=target, data=data, content_type=MULTIPART)


def test_remove_parameters_on_multipart(client):
    got = multipart_post(client, "test4.test", {"toremoveform": "yes", "nottoremove": "yes"})
    assert got["form"] == {"nottoremove": "yes"}


def test_rename_parameters_on_multipart(client):
    got = multipart_post(client, "test9.test", {"originalparam": "yes", "nottorename": "yes"})
    assert got["form"] == {"renamedparam": "yes", "nottorename": "yes"}


def test_replace_only_present_parameters_on_multipart(client):
    got = multipart_post(client, "test5.test", {"p1": "v", "p2": "v1"})
    assert got["form"] == {"p1": "v1", "p2": "v1"}
    assert multipart_post(client, "test5.test", {"p2": "v1"})["form"] == {"p2": "v1"}


def test_add_a_new_parameter_on_multipart_and_keep_an_existing_one(client):
    assert multipart_post(client, "test1.test", {})["form"] == {"p1": "v1"}
    got = multipart_post(client, "test1.test", {"p1": "this should not change",
                                                "hello": "world"})
    assert got["form"] == {"p1": "this should not change", "hello": "world"}


def test_append_does_not_change_multipart(client):
    got = multipart_post(client, "test6.test", {"p1": "This should not change"})
    assert got["form"] == {"p1": "This should not change"}
