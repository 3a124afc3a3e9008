"""request-callout in-process: the config (Kong's defaults, refusals naming the place), the
graph, the $(...) references, Kong's cache key, and the filter from a declarative file and
from GATEWAY_REQUEST_CALLOUT_CONFIG(_FILE) against the kit's mock service.

In-process the calls are not patched by gevent, so they run one by one: the timing of
the graph is measured under gunicorn in tests/integration/test_request_callout.py.
"""

from __future__ import annotations

import json

import pytest
import yaml

from gateway.config import ConfigError
from gateway.filters.request_callout import calls
from gateway.filters.request_callout.plan import plan
from gateway.filters.request_callout.templates import template
from gateway.pdk import Exchange, Filter
from gateway.schema import Invalid
from gateway.testing.mock import MockService
from tests.support.app import get, in_process


@pytest.fixture(scope="module")
def mock():
    service = MockService()
    yield service
    service.stop()


class Values:
    """A Scope with fixed values."""

    def __init__(self, callouts=None, headers=None):
        self.callouts = callouts or {}
        self.headers = headers or {}

    def header(self, name):
        return self.headers.get(name)

    def query(self, name):
        return None

    def capture(self, name):
        return None

    def consumer(self, field):
        return None

    def callout(self, name):
        return self.callouts.get(name)


def problems(config) -> list[str]:
    with pytest.raises(Invalid) as caught:
        plan(config)
    return list(caught.value.problems)


def one(url="http://x.test/a", **extra) -> dict:
    return {"callouts": [{"name": "a", "request": {"url": url, **extra}}]}


# -- references


def test_references_interpolate_into_text_and_a_lone_one_keeps_its_json_value():
    scope = Values({"auth": {"status": 200, "headers": {"X-Id": "7"},
                             "body": {"token": "t", "n": 3, "o": {"k": [1, 2]}}}},
                   {"x-user": "ann"})
    assert template("Bearer $(callouts.auth.response.body.token)", "w").text(scope) == "Bearer t"
    assert template("$(callouts.auth.response.body.o)", "w").value(scope) == {"k": [1, 2]}
    assert template("$(callouts.auth.response.body.o.k.1)", "w").value(scope) == 2
    assert template("n=$(callouts.auth.response.body.n)", "w").text(scope) == "n=3"
    assert template("$(callouts.auth.response.headers.x-id)", "w").text(scope) == "7"
    assert template("$(kong.ctx.shared.callouts.auth.response.status)", "w").value(scope) == 200
    assert template('$(headers["x-user"])/$(headers.missing)', "w").text(scope) == "ann/"


@pytest.mark.parametrize("expression", [
    "kong.request.get_header('x')", "1 + 1", "callouts.a.response.other",
    "callouts.a.response.status.x", "os.getenv", "headers", "consumer.password", "a..b",
])
def test_anything_but_a_plain_reference_is_refused_naming_the_place(expression):
    found = problems(one(headers={"custom": {"X-A": f"$({expression})"}}))
    assert found == [f"config.callouts[0].request.headers.custom.X-A: $({expression}) is not "
                     "supported by this gateway: only references (callouts.NAME.response.body"
                     ".FIELD, .response.headers.NAME, .response.status, headers.NAME, "
                     "query.NAME, uri_captures.NAME, consumer.id, consumer.username), no Lua"]


def test_by_lua_is_refused_everywhere_it_can_be():
    config = one(by_lua="return 1")
    config["callouts"][0]["response"] = {"by_lua": "x"}
    config["upstream"] = {"by_lua": "kong.response.exit(200)"}
    assert problems(config) == [
        f"config.{where}.by_lua: is not supported by this gateway (Lua code); use $(...) "
        "references in custom values"
        for where in ("callouts[0].request", "callouts[0].response", "upstream")]


# -- Kong's defaults and refusals


def test_kongs_defaults_word_for_word():
    checked = plan(one())
    callout = checked.callouts[0]
    assert (callout.method, callout.depends_on, callout.ssl_verify) == ("GET", (), False)
    error = callout.error
    assert (error.on_error, error.http_statuses, error.retries, error.error_response_code) == \
        ("fail", frozenset(), 2, 400)
    assert error.error_response_msg.literal == "service callout error"
    assert (callout.store_headers, callout.store_body, callout.decode_body) == (True, True, False)
    assert not (callout.headers.forward or callout.query.forward or callout.body.forward)
    assert (checked.upstream_headers.forward, checked.upstream_query.forward,
            checked.upstream_body.forward, checked.upstream_body.decode) == (True,) * 4
    assert (checked.cache.strategy, checked.cache.cache_ttl) == ("off", 300)


@pytest.mark.parametrize(("extra", "where", "message"), [
    ({"http_opts": {"proxy": {"http_proxy": "http://p:3128"}}}, "http_opts.proxy",
     "is not supported by this gateway"),
    ({"http_opts": {"ssl_server_name": "x"}}, "http_opts.ssl_server_name",
     "is not supported by this gateway"),
    ({"http_opts": {"timeouts": {"connect": 1}}}, "http_opts.timeouts",
     "all or none of connect, write and read must be set"),
    ({"error": {"on_error": "ignore"}}, "error.on_error", "expected one of: continue, fail, retry"),
    ({"method": "GE T"}, "method", "is not an HTTP method"),
    ({"headers": {"custom": {"Bad Name": "x"}}}, "headers.custom.Bad Name",
     "is not a valid header name"),
])
def test_bad_request_fields_are_one_line_naming_the_place(extra, where, message):
    assert problems(one(**extra)) == [f"config.callouts[0].request.{where}: {message}"]


def test_a_url_whose_host_comes_from_a_reference_is_refused():
    assert problems(one(url="$(headers.x-url)")) == [
        "config.callouts[0].request.url: must start with http:// or https:// and a host "
        "written out (a host from a reference is not supported by this gateway)"]


def test_kong_enterprise_redis_fields_at_their_defaults_are_accepted():
    config = {**one(), "cache": {"strategy": "redis", "redis": {
        "host": "redis.test", "port": 6380, "connect_timeout": 2000, "keepalive_pool_size": 256}}}
    assert plan(config).cache.redis_url.startswith("redis://redis.test:6380")
    config["cache"]["redis"]["sentinel_master"] = "m"
    assert problems(config)[0].startswith("config.cache.redis.sentinel_master: is not supported")


# -- the graph


def callouts(*specs) -> dict:
    return {"callouts": [{"name": name, "depends_on": deps,
                          "request": {"url": f"http://x.test/{name}"}} for name, deps in specs]}


def test_a_cycle_is_refused_naming_it():
    assert problems(callouts(("a", ["c"]), ("b", ["a"]), ("c", ["b"]))) == [
        "config.callouts[1].depends_on: dependency cycle: a -> c -> b -> a"]


def test_unknown_and_repeated_names_are_refused():
    assert problems(callouts(("a", ["z"]))) == [
        "config.callouts[0].depends_on[0]: no callout named 'z'"]
    assert problems(callouts(("a", []), ("a", []))) == [
        "config.callouts[1].name: callout name 'a' is used twice"]
    config = {**callouts(("a", [])), "upstream": {"headers": {"custom": {
        "X": "$(callouts.nope.response.status)"}}}}
    assert problems(config) == [
        "config.upstream: references callout 'nope', which is not in callouts"]


def test_a_reference_is_a_dependency_and_response_only_callouts_wait_for_the_response():
    config = callouts(("auth", []), ("user", []), ("geo", []), ("late", ["geo"]))
    config["callouts"][1]["request"]["headers"] = {"custom": {
        "Authorization": "Bearer $(callouts.auth.response.body.token)"}}
    config["response"] = {"headers": {"custom": {"X-Late": "$(callouts.late.response.status)"}}}
    checked = plan(config)
    assert checked.edges["user"] == ("auth",)
    assert checked.before_upstream == ("auth", "user")
    assert checked.for_response == ("geo", "late")
    config["upstream"] = {"headers": {"custom": {"X-Geo": "$(callouts.geo.response.status)"}}}
    assert plan(config).for_response == ("late",)


# -- Kong's cache key


def test_the_cache_key_sorts_query_and_headers_and_names_the_consumer(monkeypatch):
    config = one(url="http://x.test/a?b=2&a=1",
                 headers={"custom": {"X-B": "2", "X-A": "1"}})
    callout = plan(config).callouts[0]
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "",
               "SERVER_NAME": "gw", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
               "wsgi.input": None}
    ex = Exchange(environ, "id")
    scope = calls.ExchangeScope(ex)
    first = calls.build(callout, ex, scope, "route", "plugin")
    reordered = plan(one(url="http://x.test/a?a=1&b=2",
                         headers={"custom": {"X-A": "1", "X-B": "2"}})).callouts[0]
    assert calls.build(reordered, ex, scope, "route", "plugin").key == first.key
    assert calls.build(callout, ex, scope, "other-route", "plugin").key != first.key
    assert len(first.key) == 64 and first.url == "http://x.test/a?b=2&a=1"


# -- the filter, from a declarative file and from the environment


KONG = """
_format_version: "3.0"
consumers:
- username: ann
  keyauth_credentials: [{{key: ann-key}}]
services:
- name: echo
  url: {upstream}/echo
  routes:
  - name: users
    paths: ["~/users/(?<id>[0-9]+)$"]
    plugins:
    - name: key-auth
    - name: request-callout
      config: {config}
"""


def declared(mock: MockService, config: dict) -> dict[str, str]:
    text = KONG.format(upstream=mock.url, config=json.dumps(config))
    return {"GATEWAY_DECLARATIVE_CONFIG_STRING": text, "GATEWAY_ACCESS_LOG": "off"}


def test_a_declarative_file_error_names_the_plugin_field(mock):
    with pytest.raises(ConfigError) as caught:
        in_process(declared(mock, one(by_lua="x")))
    assert "routes[users].plugins[request-callout].config.callouts[0].request.by_lua: is not " \
           "supported by this gateway (Lua code)" in str(caught.value)


class ReadsCallouts(Filter):
    """A later filter reading ex.callouts (Kong's kong.ctx.shared.callouts)."""

    NAME, PRIORITY, VERSION, Config = "reads-callouts", 1, "1.0", type(None)

    def on_response(self, ex: Exchange) -> None:
        found = ex.callouts["profile"]
        ex.headers["X-Seen"] = f"{found.status} {found.body['plan']}"


def test_captures_consumer_and_results_for_later_filters(mock):
    mock.route("/profile/42", json={"plan": "gold"})
    config = {"callouts": [{"name": "profile", "request": {
        "url": f"{mock.url}/profile/$(uri_captures.id)",
        "query": {"custom": {"who": "$(consumer.username)"}}},
        "response": {"body": {"decode": True}}}],
        "upstream": {"headers": {"custom": {"X-Plan": "$(callouts.profile.response.body.plan)"}}}}
    client = in_process(declared(mock, config), extra_filters=[ReadsCallouts(None, None)])
    response = get(client, "/users/42", headers={"apikey": "ann-key"})
    assert response.status_code == 200
    assert mock.calls("/profile/42")[-1].query == {"who": "ann"}
    assert mock.calls("/echo")[-1].header("X-Plan") == "gold"
    assert response.headers["X-Seen"] == "200 gold"


ENV_CONFIG = {"callouts": [{"name": "c", "request": {"url": "{url}/lookup"},
                            "response": {"body": {"decode": True}}}],
              "upstream": {"headers": {"custom": {"X-Found": "$(callouts.c.response.body.v)"}}}}


def environment(mock: MockService, **env: str) -> dict[str, str]:
    return {"GATEWAY_UPSTREAM_URL": mock.url + "/echo", "GATEWAY_FILTERS": "request-callout",
            "GATEWAY_ACCESS_LOG": "off", **env}


def env_config(mock: MockService) -> dict:
    text = json.dumps(ENV_CONFIG).replace("{url}", mock.url)
    return json.loads(text)


def test_the_config_from_one_variable_as_json(mock):
    mock.route("/lookup", json={"v": "from-json"})
    client = in_process(environment(mock, GATEWAY_REQUEST_CALLOUT_CONFIG=json.dumps(
        env_config(mock))))
    assert get(client, "/").status_code == 200
    assert mock.calls()[-1].header("X-Found") == "from-json"


def test_the_config_from_a_yaml_file(mock, tmp_path):
    mock.route("/lookup", json={"v": "from-yaml"})
    path = tmp_path / "callouts.yml"
    path.write_text(yaml.safe_dump(env_config(mock)))
    client = in_process(environment(mock, GATEWAY_REQUEST_CALLOUT_CONFIG_FILE=str(path)))
    assert get(client, "/").status_code == 200
    assert mock.calls()[-1].header("X-Found") == "from-yaml"


@pytest.mark.parametrize(("env", "message"), [
    ({}, "request-callout: set one of GATEWAY_REQUEST_CALLOUT_CONFIG and "
         "GATEWAY_REQUEST_CALLOUT_CONFIG_FILE"),
    ({"GATEWAY_REQUEST_CALLOUT_CONFIG": "callouts: [a"},
     "GATEWAY_REQUEST_CALLOUT_CONFIG=<hidden>: not YAML or JSON"),
    ({"GATEWAY_REQUEST_CALLOUT_CONFIG": '{"callouts": [{"name": "a"}]}'},
     "GATEWAY_REQUEST_CALLOUT_CONFIG=<hidden>: config.callouts[0].request: required field "
     "missing"),
])
def test_bad_environment_config_is_one_line(mock, env, message):
    with pytest.raises(ConfigError) as caught:
        in_process(environment(mock, **env))
    assert str(caught.value).startswith(message)


# -- the cache in Redis, and our response section's pass-through cases


def test_the_redis_strategy_shares_answers_through_kongs_redis_record(mock, redis_url):
    from urllib.parse import urlsplit

    where = urlsplit(redis_url)
    mock.route("/redis-cached", json={"v": "once"})
    config = {"callouts": [{"name": "c", "request": {
        "url": f"{mock.url}/redis-cached", "query": {"custom": {"run": str(id(mock))}}},
        "response": {"body": {"decode": True}}}],
        "cache": {"strategy": "redis", "cache_ttl": 30,
                  "redis": {"host": where.hostname, "port": where.port}},
        "upstream": {"headers": {"custom": {"X-V": "$(callouts.c.response.body.v)"}}}}
    for _ in range(2):  # each client has its own filter: only Redis is shared
        client = in_process(environment(mock, GATEWAY_REQUEST_CALLOUT_CONFIG=json.dumps(config)))
        assert get(client, "/").status_code == 200
        assert mock.calls()[-1].header("X-V") == "once"
    assert len(mock.calls("/redis-cached")) == 1


@pytest.mark.parametrize(("route", "expected"), [
    ({"body": b"plain text", "headers": {"Content-Type": "text/plain"}}, b"plain text"),
    ({"json": {"big": "x" * 200}}, None),  # its Content-Length is over max_size
    ({"json": ["a", "list"]}, b'["a", "list"]'),  # seen only once read
])
def test_answers_the_response_section_cannot_decorate_pass_unchanged(mock, route, expected):
    mock.route("/up/", **route)
    mock.route("/lookup", json={"v": 1})
    config = {"callouts": [{"name": "c", "request": {"url": f"{mock.url}/lookup"},
                            "response": {"body": {"decode": True}}}],
              "response": {"body": {"custom": {"v": "$(callouts.c.response.body.v)"},
                                    "max_size": 100}}}
    client = in_process({**environment(mock, GATEWAY_REQUEST_CALLOUT_CONFIG=json.dumps(config)),
                         "GATEWAY_UPSTREAM_URL": mock.url + "/up"})
    response = get(client, "")
    body = response.get_data()
    assert body == (expected if expected is not None else json.dumps(route["json"]).encode())
    assert response.headers.get("Content-Length") == str(len(body))


def test_a_json_object_answer_gets_the_fields_and_its_new_content_length(mock):
    mock.route("/up/", json={"up": True})
    mock.route("/lookup", json={"v": {"deep": 1}})
    config = {"callouts": [{"name": "c", "request": {"url": f"{mock.url}/lookup"},
                            "response": {"body": {"decode": True}}}],
              "response": {"body": {"custom": {"v": "$(callouts.c.response.body.v)"}}}}
    client = in_process({**environment(mock, GATEWAY_REQUEST_CALLOUT_CONFIG=json.dumps(config)),
                         "GATEWAY_UPSTREAM_URL": mock.url + "/up"})
    response = get(client, "")
    body = response.get_data()
    assert json.loads(body) == {"up": True, "v": {"deep": 1}}
    assert response.headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in response.headers


def test_stale_if_error_serves_the_last_good_answer_for_a_while(mock):
    from tests.support.app import gateway_of

    mock.route("/flaky", json={"v": "good"})
    config = {"callouts": [{"name": "c", "request": {
        "url": f"{mock.url}/flaky", "error": {"http_statuses": [500]}},
        "response": {"body": {"decode": True}}}],
        "cache": {"strategy": "memory", "cache_ttl": 1, "stale_if_error": 10},
        "upstream": {"headers": {"custom": {"X-V": "$(callouts.c.response.body.v)"}}}}
    client = in_process(environment(mock, GATEWAY_REQUEST_CALLOUT_CONFIG=json.dumps(config)))
    [callout] = [f for f in gateway_of(client).routes.filters if f.NAME == "request-callout"]
    service = callout.services["c"]
    now = [1000.0]
    service.clock = lambda: now[0]
    assert get(client, "/").status_code == 200
    mock.route("/flaky", status=500)
    now[0] += 5  # past the TTL, within stale_if_error
    assert get(client, "/").status_code == 200
    assert mock.calls()[-1].header("X-V") == "good"
    now[0] += 10  # past both
    assert get(client, "/").status_code == 400


def test_the_docs_configs_are_accepted():
    from pathlib import Path

    section = Path(__file__).resolve().parents[2].joinpath(
        "docs", "filters", "request-callout.md").read_text()
    blocks = section.split("```yaml\n")[1:3]
    guide, composition = (block.split("```")[0] for block in blocks)
    checked = plan(yaml.safe_load(guide)["plugins"][0]["config"])
    assert checked.for_response == ("guide",)
    checked = plan(yaml.safe_load(composition))
    assert checked.edges["profile"] == ("login",)
    assert checked.before_upstream == ("login", "profile", "geo")


def test_callout_bodies_forwarded_and_decoded_with_custom_fields(mock):
    config = {"callouts": [
        {"name": "raw", "request": {"url": f"{mock.url}/raw", "method": "POST",
                                    "body": {"forward": True}}},
        {"name": "merged", "request": {"url": f"{mock.url}/merged", "method": "POST",
                                       "body": {"forward": True, "decode": True, "custom": {
                                           "who": "$(headers.x-user)", "n": 2}}}}],
        "upstream": {"body": {"forward": False}}}
    client = in_process(environment(mock, GATEWAY_REQUEST_CALLOUT_CONFIG=json.dumps(config)))
    response = client.post("/", data=b'{"order": 7}', headers={
        "X-User": "ann", "Content-Type": "application/json"})
    assert response.status_code == 200
    assert mock.calls("/raw")[-1].body == b'{"order": 7}'
    assert json.loads(mock.calls("/merged")[-1].body) == {"order": 7, "who": "ann", "n": 2}
    upstream = mock.calls()[-1]
    assert upstream.body == b"" and upstream.header("Content-Type") is None
