"""Kong users' files load as they wrote them (issue 18 point 1, issue 17 point 3): each row
of the issue's table in process, on the real-tool shapes of tests/fixtures/kong/ and on small
files; and every blocker of a file reported at once (point 4)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.config import ConfigError
from gateway.routing.declarative import parse_declaration
from gateway.routing.migrate import migrate_path, normalize
from tests.support.app import get, in_process
from tests.support.kong_files import KONG_FIXTURES, kong_file
from tests.support.processes import ROOT

HEAD = '_format_version: "3.0"\n'


def client_for(text: str):
    return in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text})


def echoed(client, path: str, **kwargs) -> tuple[int, dict]:
    response = get(client, path, **kwargs)
    body = response.get_data()
    return response.status_code, json.loads(body) if body else {}


def start_up_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        client_for(text)
    return str(caught.value)


def problems(text: str) -> list[str]:
    """The problems the start-up error lists, without the origin (one) or heading (several)."""
    lines = start_up_error(text).splitlines()
    if len(lines) == 1:
        return [lines[0].removeprefix("GATEWAY_DECLARATIVE_CONFIG_STRING: ")]
    return [line.strip() for line in lines[1:]]


# Row 1: _format_version 1.1 and 2.1, with Kong's route-path migration.

@pytest.mark.parametrize(("path", "migrated"), [
    (r"/users/\d+", r"~/users/\d+"),  # regex characters: a regex
    ("/api/v1/.*", "~/api/v1/.*"),
    ("/foo.bar-baz_~", "/foo.bar-baz_~"),  # only a-z 0-9 . - _ ~ / %: a prefix
    ("/caf%65/x", "/cafe/x"),  # an unreserved character decoded
    ("/a%2Fb", "/a%2Fb"),  # a reserved one stays encoded
    ("/a%2fb", "/a%2Fb"),  # upper-cased
    ("/old//path/./here/../there", "/old/path/there"),  # normalized, slashes merged
    (r"/(?<id>\d+)%2E%41%7C", r"~/(?<id>\d+)\.A\|"),  # in a regex: metacharacters escaped
    ("/(x)%2F%3f", "~/(x)%2F%3F"),  # reserved ones stay encoded in a regex too
    ("/", "/"),
])
def test_kong_migrates_old_route_paths(path, migrated):
    assert migrate_path(path) == migrated


def test_normalize_is_kongs():
    assert normalize("/a/b/../../..") == "/"
    assert normalize("/a/./b/.") == "/a/b/"
    assert normalize("/%7Euser/%2E%2E/x") == "/x"  # %2E. is a dot segment once decoded


@pytest.mark.parametrize("version", ["1.1", "2.1"])
def test_old_format_versions_load_with_paths_migrated(version):
    d = parse_declaration(f"""_format_version: "{version}"
services:
- name: a
  url: http://a
  routes:
  - {{name: nested, paths: ['/users/\\d+', /plain]}}
routes:
- {{name: top, service: a, paths: ['/x/[0-9]+']}}
""", "kong.yml", {})
    assert {r.name: r.paths for r in d.routes} == {
        "nested": (r"~/users/\d+", "/plain"), "top": ("~/x/[0-9]+",)}


def test_a_3_0_file_is_not_migrated():
    d = parse_declaration(HEAD + "services:\n- {url: 'http://a', routes: [{paths: "
                                 "['/users/\\d+']}]}\n", "kong.yml", {})
    assert d.routes[0].paths == (r"/users/\d+",)  # a prefix, as written


def test_a_1_1_file_with_regex_paths_serves(upstream):
    client = client_for(kong_file("kong-1.1-regex-paths.yml", upstream.url))
    assert echoed(client, "/users/42")[1]["target"] == "/anything/users/42"
    assert get(client, "/users/42/x").status_code == 404  # the regex's $
    assert echoed(client, "/files/notes.txt")[1]["target"] == "/anything/files/notes.txt"
    assert get(client, "/files/notesXtxt").status_code == 404  # \. is a dot
    assert echoed(client, "/cafe/menu/today")[1]["target"] == "/anything/today"
    assert echoed(client, "/old/path/here/x")[1]["target"] == "/anything/x"
    assert echoed(client, "/status/201")[1]["target"] == "/anything"  # stripped


# Row 2: _comment, _ignore in any entity, decK's _info.

def test_comments_and_ignored_fields_anywhere():
    d = parse_declaration(HEAD + """_comment: top
_ignore: [1, {a: b}]
_info: {select_tags: [t], defaults: {}}
services:
- name: a
  url: http://a
  _comment: a service
  _ignore: [x]
  routes:
  - {name: r, paths: [/], _comment: nested route, _ignore: []}
  plugins:
  - {name: cors, _comment: a nested plugin}
consumers:
- username: c
  _comment: consumer
  keyauth_credentials: [{key: k, _comment: a credential, _ignore: [1]}]
""", "kong.yml", {})
    assert d.routes[0].name == "r" and d.consumers["c"].keys == (("k", None),)


@pytest.mark.parametrize(("text", "message"), [
    ("_comment: [not, a, string]\n", "_comment: expected a string"),
    ("services:\n- {url: 'http://a', _ignore: nope}\n", "services[0]._ignore: expected an array"),
    ("_info: 3\n", "_info: expected a record"),
])
def test_annotations_have_kongs_types(text, message):
    assert message in problems(HEAD + text)


def test_kong_config_init_loads_and_every_request_is_a_404():
    client = client_for((KONG_FIXTURES / "kong-config-init.yml").read_text())
    status, body = echoed(client, "/anything")
    assert (status, body["message"]) == (404, "no Route matched with those values")
    ready = get(client, "/_gateway/ready")  # no upstream to wait for
    assert (ready.status_code, json.loads(ready.get_data())["upstream"]) == (
        200, "none configured")


# Row 3: host names with "_".

def test_underscores_in_service_and_route_hosts(upstream):
    client = client_for(kong_file("compose-underscores.yml", upstream.url))
    status, seen = echoed(client, "/todos/1", headers={"Host": "todo_api"})
    assert (status, seen["target"]) == (200, "/anything/1")
    status, seen = echoed(client, "/todos/2", headers={"Host": "app_blue:3000"})
    assert (status, seen["target"]) == (200, "/anything/2")
    assert get(client, "/todos/2", headers={"Host": "app_blue:3001"}).status_code == 404
    d = parse_declaration(kong_file("compose-underscores.yml", upstream.url), "kong.yml", {})
    assert d.services["blue"].host == "app_blue" and d.services["blue"].port == 3000


def test_the_shared_hostname_check_takes_underscores_in_upstreams_too():
    d = parse_declaration(HEAD + "upstreams:\n- name: todo_up\n  targets: "
                                 "[{target: 'app_blue:3000'}]\n", "kong.yml", {})
    (target,) = d.upstreams["todo_up"].targets
    assert (target.host, target.port) == ("app_blue", 3000)


@pytest.mark.parametrize("host", ["a-.b", "a..b", "-", "a b", "a:80"])
def test_kongs_hostname_rule_still_refuses(host):
    assert f"services[0].host: invalid hostname: '{host}'" in problems(
        HEAD + f"services:\n- {{host: '{host}'}}\n")


# Kong's automatic timestamps: seconds (auto_timestamp_s), targets' in milliseconds
# (auto_timestamp_ms, a number: `kong config db_export` writes 1733200000.123).

def upstream_with_target(fields: str) -> str:
    return HEAD + f"upstreams:\n- name: u\n  targets:\n  - {{target: 'a:80', {fields}}}\n"


@pytest.mark.parametrize("text", [
    upstream_with_target("created_at: 1733200000.123, updated_at: 1733200000.456"),
    upstream_with_target("created_at: 1733200000"),
    HEAD + "services:\n- {url: 'http://a', created_at: 1733200000.0}\n",  # whole, as in Lua
])
def test_timestamps_load_as_kong_takes_them(text):
    assert not parse_declaration(text, "kong.yml", {}).problems


@pytest.mark.parametrize(("text", "message"), [
    (upstream_with_target("created_at: 0"), "created_at: expected a valid timestamp"),
    (upstream_with_target("updated_at: -1.5"), "updated_at: expected a valid timestamp"),
    (upstream_with_target("created_at: '1733200000.123'"), "created_at: expected a number"),
    (upstream_with_target("created_at: true"), "created_at: expected a number"),
    (HEAD + "services:\n- {url: 'http://a', created_at: 1733200000.123}\n",
     "services[0].created_at: expected an integer"),  # seconds everywhere else
    (HEAD + "consumers:\n- {username: c, updated_at: 0}\n",
     "consumers[c].updated_at: expected a valid timestamp"),
])
def test_timestamps_kong_refuses_are_refused(text, message):
    assert any(line.endswith(message) for line in problems(text)), problems(text)


# Row 4: url with protocol/host/port/path: the url's parts win.

def test_the_url_wins_over_protocol_host_port_and_path():
    d = parse_declaration(HEAD + """services:
- {name: a, url: 'https://b.example/api', protocol: http, host: c, port: 9, path: /x}
- {name: b, url: 'http://d.example', path: /ignored}
""", "kong.yml", {})
    a, b = d.services["a"], d.services["b"]
    assert (a.protocol, a.host, a.port, a.path) == ("https", "b.example", 443, "/api")
    assert (b.host, b.port, b.path) == ("d.example", 80, None)


# Row 5: an unnamed service with nested routes (the key of an unnamed entity).

def test_an_unnamed_service_with_nested_routes_serves(upstream):
    client = client_for(HEAD + f"services:\n- url: {upstream.url}/api\n  routes:\n"
                               "  - paths: [/]\n    plugins: [{name: cors}]\n")
    assert echoed(client, "/x")[1]["target"] == "/api/x"


# Row 7: Kong's other protocols.

@pytest.mark.parametrize(("text", "message"), [
    ("services:\n- {name: g, host: a, protocol: grpc}\n",
     "services[g].protocol: protocol 'grpc' is not supported by this gateway"),
    ("services:\n- {name: t, host: a, protocol: tcp}\n",
     "services[t].protocol: protocol 'tcp' is not supported by this gateway"),
    ("routes:\n- {name: r, paths: [/], protocols: [http, grpcs]}\n",
     "routes[r].protocols[1]: protocol 'grpcs' is not supported by this gateway"),
    ("services:\n- {name: x, host: a, protocol: gopher}\n",
     "services[x].protocol: expected one of: grpc, grpcs, http, https, tcp, tls"),
    ("services:\n- {name: u, url: 'udp://a'}\n",
     "services[u].url: protocol 'udp' is not supported by this gateway"),
])
def test_other_protocols_are_not_supported_by_this_gateway(text, message):
    (line,) = problems(HEAD + text)
    assert line.startswith(message)


# Credentials nested under a consumer: the same words as at the top level.

def test_unread_entities_say_the_same_nested_and_at_the_top():
    lines = problems(HEAD + "oauth2_credentials: [{name: a}]\nconsumers:\n- username: c\n"
                            "  oauth2_credentials: [{name: a}]\n  acls: []\n")
    assert lines == [
        "oauth2_credentials: unsupported entity: not supported by this gateway",
        "consumers[c].oauth2_credentials: unsupported entity: not supported by this gateway"]


# Issue 17 point 3: routes without a service.

def test_routes_without_a_service_answer_503_after_their_plugins(upstream):
    client = client_for(kong_file("compose-underscores.yml", upstream.url))
    status, body = echoed(client, "/parked")
    assert (status, body["message"]) == (503, "no Service found with those values")
    status, body = echoed(client, "/maintenance")
    assert (status, body["message"]) == (418, "back soon")


def test_a_global_plugin_runs_on_a_route_without_a_service():
    client = client_for(HEAD + "routes:\n- {paths: [/]}\nplugins:\n"
                               "- {name: request-termination, config: {status_code: 410}}\n")
    assert get(client, "/").status_code == 410


# A decK dump and an Ingress Controller output.

def test_a_deck_dump_with_every_default_serves(upstream):
    client = client_for(kong_file("deck-dump.yaml", upstream.url))
    assert get(client, "/orders/1").status_code == 401
    response = get(client, "/orders/1", headers={"apikey": "orders-key-0001"})
    assert response.status_code == 200  # the acl plugin: the consumer's nested acls
    assert json.loads(response.get_data())["target"] == "/anything/1"
    assert response.headers["X-RateLimit-Limit-Minute"] == "1000"  # the global plugin
    status, seen = echoed(client, "/orders/7", headers={
        "apikey": "orders-key-0001", "Host": "api.example.com", "X-Version": "2"})
    assert (status, seen["target"]) == (200, "/anything/orders/7")
    assert ("Host", "api.example.com") in [tuple(h) for h in seen["headers"]]
    # The upstream dumped with every default, its target's timestamps in milliseconds.
    status, seen = echoed(client, "/inventory/5")
    assert (status, seen["target"]) == (200, "/anything/5")


def test_an_ingress_controller_output_serves(upstream):
    client = client_for(kong_file("kic-ingress.yaml", upstream.url))
    status, seen = echoed(client, "/anything/x", headers={"Host": "shop.example.com"})
    assert (status, seen["target"]) == (200, "/anything/x")
    response = get(client, "/anything/x", headers={"Host": "shop.example.com",
                                                   "Origin": "https://shop.example.com"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert get(client, "/status/204", headers={"Host": "shop.example.com"}).status_code == 204
    assert get(client, "/anything/x").status_code == 404  # another host
    # The upstream of a Service without ready endpoints: no targets.
    status, seen = echoed(client, "/cart/x", headers={"Host": "shop.example.com"})
    assert (status, seen["message"]) == (503, "failure to get a peer from the ring-balancer")


# Point 4: every blocker at once.

BLOCKERS = HEAD + """services:
- name: a
  url: http://a
  colour: red
  routes:
  - paths: [/ok, nope]
  - paths: [/x]
    protocols: [grpc]
- name: b
  host: b
  plugins:
  - {name: rate-limiting, config: {minute: 0, colour: 1}}
routes:
- {name: lost, paths: [/lost], service: nowhere}
certificates: [{cert: x}]
"""
EXPECTED = [
    "certificates: unsupported entity: not supported by this gateway",
    "services[a].colour: unknown field",
    "services[a].routes[0].paths[1]: must start with / or ~",
    "services[a].routes[1].protocols[0]: protocol 'grpc' is not supported by this gateway "
    "(http, https, and ws/wss for WebSocket handshakes are)",
    "routes[lost].service: no service named 'nowhere' in this file",
    "services[b].plugins[rate-limiting].config.colour: unknown field",
    "services[b].plugins[rate-limiting].config.minute: value must be greater than 0",
]


def test_the_start_up_error_lists_every_blocker():
    first, *rest = start_up_error(BLOCKERS).splitlines()
    assert first == "GATEWAY_DECLARATIVE_CONFIG_STRING: 7 problems, one a line:"
    assert rest == [f"  {line}" for line in EXPECTED]


def test_kong_check_prints_every_blocker_with_its_place(tmp_path):
    path = tmp_path / "kong.yml"
    path.write_text(BLOCKERS)
    result = subprocess.run([sys.executable, "-m", "gateway", "kong-check", str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert result.stdout.splitlines() == EXPECTED
    assert result.stderr == f"{path}: 7 problems: the file does not load\n"


@pytest.mark.parametrize("name", sorted(p.name for p in KONG_FIXTURES.glob("*.y*ml")))
def test_kong_check_passes_every_fixture(tmp_path, name):
    path = tmp_path / name
    path.write_text(kong_file(name, "http://127.0.0.1:8081"))
    result = subprocess.run([sys.executable, "-m", "gateway", "kong-check", str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin"})
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"{path}: loads (")


def test_kong_check_usage():
    result = subprocess.run([sys.executable, "-m", "gateway", "kong-check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 64 and "usage: python -m gateway kong-check FILE" in \
        result.stderr


def test_path_handling_v1_is_read_as_v0_as_kongs_traditional_compatible_router(upstream):
    targets = []
    for handling in ("v0", "v1"):
        client = client_for(HEAD + f"services:\n- url: {upstream.url}/s\n  routes:\n"
                                   f"  - {{paths: [/r], path_handling: {handling}}}\n")
        targets.append([echoed(client, path)[1]["target"] for path in ("/r", "/rx", "/r/x")])
    assert targets[0] == targets[1] == ["/s", "/s/x", "/s/x"]  # v1 would send /sx for /rx


# ------------------------------------------------ hostile shapes (found by fuzzing the loader)

ANCHORS = '_format_version: "3.0"\na: &a [x, x, x, x, x, x, x, x, x, x]\n' + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]\n"
    for prev, name in zip("abcdefg", "bcdefgh", strict=True))


@pytest.mark.parametrize(("text", "error"), [
    ('_format_version: "3.0"\nservices: &s\n- {name: a, url: "http://x", tags: *s}\n',
     "a YAML alias refers to a value that holds it (a cycle)"),
    (ANCHORS, "more than 2,000,000 values once its YAML aliases are expanded"),
    ('_format_version: "3.0"\nx: ' + "[" * 100 + "]" * 100, "values nest deeper than 64 levels"),
])
def test_a_file_the_loader_cannot_walk_is_one_clear_line(text, error):
    assert start_up_error(text) == f"GATEWAY_DECLARATIVE_CONFIG_STRING: {error}"


def test_things_that_refer_to_a_bad_consumer_only_report_the_consumer():
    """A consumer refused for its username: its nested plugin and credentials, and a
    top-level one naming it by id, neither crash the loader nor add problems."""
    text = """
_format_version: "3.0"
services: [{name: s, url: "http://x", routes: [{paths: [/], protocols: [[http]]}]}]
consumers:
- username: [not, a, name]
  id: 5b1b2f3e-1111-4a5a-9c5c-000000000001
  plugins: [{name: rate-limiting, config: {minute: 5}}]
  acls: [{group: admins}]
  jwt_secrets: [{key: k, secret: s}]
plugins:
- {name: acl, config: {allow: [admins]}}
- {name: jwt}
- {name: rate-limiting, consumer: 5b1b2f3e-1111-4a5a-9c5c-000000000001, config: {minute: 9}}
"""
    assert problems(text) == [
        "services[s].routes[0].protocols[0]: expected a string",
        "consumers[0].username: expected a non-empty string"]


# ------------------------------------- Kong's required fields with a default: null refused

def test_every_not_null_field_is_one_of_the_plugins_fields():
    from gateway.routing.plugins import KONG_PLUGINS
    assert {name: [f for f in kong.not_null if f not in kong.fields]
            for name, kong in KONG_PLUGINS.items() if kong.not_null} == {
        name: [] for name, kong in KONG_PLUGINS.items() if kong.not_null}


@pytest.mark.parametrize(("plugin", "config", "field"), [
    ("key-auth", {"hide_credentials": None}, "hide_credentials"),
    ("cors", {"credentials": None}, "credentials"),
    ("rate-limiting", {"minute": 5, "fault_tolerant": None}, "fault_tolerant"),
    ("proxy-cache", {"strategy": "memory", "cache_control": None}, "cache_control"),
])
def test_an_explicit_null_in_a_required_field_is_refused_as_kong_refuses_it(plugin, config,
                                                                            field):
    """Kong's schema: a `required = true` field given null is "required field missing",
    though it has a default (left out, the default applies)."""
    text = json.dumps({"_format_version": "3.0", "services": [{
        "name": "s", "url": "http://127.0.0.1:9", "routes": [{"paths": ["/"]}]}],
        "plugins": [{"name": plugin, "config": config}]})
    assert problems(text) == [f"plugins[{plugin}].config.{field}: required field missing"]
    left_out = {name: value for name, value in config.items() if name != field}
    client_for(json.dumps(json.loads(text) | {"plugins": [{"name": plugin,
                                                           "config": left_out}]}))
