"""Loading and checking a Kong 3.x declarative file: entities, defaults, references, errors."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from gateway.routing.declarative import declaration_source, parse_declaration

HEAD = '_format_version: "3.0"\n'


def parse(text, environ=None):
    return parse_declaration(HEAD + text, "kong.yml", environ or {})


def error(text, environ=None) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, environ)
    return str(caught.value)


def test_nested_and_top_level_entities_with_kong_defaults():
    d = parse("""
services:
- name: orders
  url: https://orders.internal/api
  routes:
  - name: orders
    paths: [/orders]
  plugins:
  - name: rate-limiting
    config: {minute: 5}
- name: users
  host: users-up
routes:
- name: users
  service: {name: users}
  hosts: ["*.example.com"]
upstreams:
- name: users-up
  targets: [{target: "10.0.0.1:9001"}, {target: 10.0.0.2, weight: 50}]
consumers:
- username: alice
  keyauth_credentials: [{key: k1}]
keyauth_credentials:
- {key: k2, consumer: alice}
plugins:
- {name: key-auth, route: orders}
""")
    orders = d.services["orders"]
    assert (orders.protocol, orders.host, orders.port, orders.path) == (
        "https", "orders.internal", 443, "/api")
    assert (orders.retries, orders.connect_timeout, orders.read_timeout) == (5, 60.0, 60.0)
    assert d.services["users"].port == 80
    first, second = d.routes
    assert first.service == "orders" and second.service == "users"
    assert first.strip_path is True and first.preserve_host is False
    assert first.protocols == ("http", "https") and first.regex_priority == 0
    targets = d.upstreams["users-up"].targets
    assert [(t.host, t.port, t.weight) for t in targets] == [
        ("10.0.0.1", 9001, 100), ("10.0.0.2", 8000, 50)]
    assert d.consumers["alice"].keys == (("k1", None), ("k2", None))
    scopes = [(p.name, p.service, p.route, p.consumer) for p in d.plugins]
    assert scopes == [("rate-limiting", "orders", None, None), ("key-auth", None, "orders", None)]


@pytest.mark.parametrize(("text", "message"), [
    ("services:\n- {name: a, url: 'http://a'}\nroutes:\n- {service: a, paths: [/x]}\n"
     "- {service: a, paths: [/y]}\n- {service: a, paths: [y]}\n",
     "kong.yml: routes[2].paths[0]: must start with / or ~"),
    ("services:\n- {name: orders, url: 'ftp://x'}\n",
     "kong.yml: services[orders].url: 'ftp://x' is not an http:// or https:// URL with a host"),
    ("services:\n- {name: a, url: 'http://a', retries: -1}\n",
     "services[a].retries: value should be between 0 and 32767"),
    ("services:\n- {name: a, url: 'http://a', colour: red}\n", "services[a].colour: unknown field"),
    ("services:\n- {name: a, url: 'http://a', routes: [{name: r, paths: [/], snis: [x]}]}\n",
     "services[a].routes[r].snis: is not supported by this gateway"),
    ("routes:\n- {name: r, paths: [/], service: nope}\n",
     "routes[r].service: no service named 'nope' in this file"),
    ("services:\n- {name: a, url: 'http://a', routes: [{name: r}]}\n",
     "services[a].routes[r]: must set one of 'methods', 'hosts', 'headers', 'paths'"),
    ("services:\n- {name: a, url: 'http://a'}\n- {name: a, url: 'http://b'}\n",
     "services[a]: service 'a' is defined twice"),
    ("certificates: [{cert: x}]\n",
     "certificates: unsupported entity: not supported by this gateway"),
    ("services:\n- {name: a, url: 'http://a', routes: [{paths: ['~/(']}]}\n",
     "services[a].routes[0].paths[0]: invalid regex"),
    ("services:\n- {name: a, url: 'http://a', routes: [{hosts: ['a.*.com']}]}\n",
     "services[a].routes[0].hosts[0]: invalid wildcard"),
    ("consumers:\n- {custom_id: c1, keyauth_credentials: [{}]}\n",
     "consumers[0].keyauth_credentials[0].key: required field missing"),
])
def test_errors_name_the_entity_and_field(text, message):
    assert message in error(text)


@pytest.mark.parametrize(("text", "message"), [
    ("services: []\n", "_format_version: required field missing"),
    ("_format_version: '4.0'\n", '_format_version: expected one of: "1.1", "2.1", "3.0"'),
])
def test_format_version_is_required(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_declaration(text, "kong.yml", {})


def test_bad_yaml_says_where_without_echoing_the_line():
    with pytest.raises(ConfigError) as caught:
        parse_declaration(HEAD + "services: [\n  key: secret-value\n", "kong.yml", {})
    assert "not valid YAML or JSON at line" in str(caught.value)
    assert "secret-value" not in str(caught.value)


def test_vault_references_are_read_from_the_environment_and_never_shown():
    text = ("services:\n- {name: a, url: 'http://a'}\n"
            "consumers:\n- username: alice\n  keyauth_credentials: [{key: '{vault://env/alice-key}'}]\n"
            "- username: bob\n  keyauth_credentials: [{key: '{vault://env/keys/bob}'}]\n")
    d = parse(text, {"ALICE_KEY": "s3cret", "KEYS": '{"bob": "b0b"}'})
    assert d.consumers["alice"].keys == (("s3cret", None),)
    assert d.consumers["bob"].keys == (("b0b", None),)
    message = error(text, {"KEYS": "{}"})
    assert "consumers[alice].keyauth_credentials[0].key: vault reference: environment " \
           "variable ALICE_KEY is not set" in message
    hidden = error("services:\n- {name: a, url: '{vault://env/url}'}\n", {"URL": "ftp://pw@x"})
    assert "<hidden>" in hidden and "pw" not in hidden


VAULTS = """
vaults:
- name: env
  prefix: my-env
  description: secrets of this app
  config: {prefix: myapp-}
services:
- {name: a, url: 'http://a'}
consumers:
- username: alice
  keyauth_credentials: [{key: '{vault://my-env/alice-key}'}]
- username: bob
  keyauth_credentials: [{key: '{vault://env/bob-key}'}]
"""


def test_a_vaults_entity_is_an_env_vault_under_its_own_prefix():
    d = parse(VAULTS, {"MYAPP_ALICE_KEY": "s3cret", "BOB_KEY": "b0b", "ALICE_KEY": "wrong"})
    assert d.consumers["alice"].keys == (("s3cret", None),)
    assert d.consumers["bob"].keys == (("b0b", None),)  # env stays the plain env vault
    assert "consumers[alice].keyauth_credentials[0].key: vault reference: environment " \
           "variable MYAPP_ALICE_KEY is not set" in error(VAULTS, {"BOB_KEY": "b0b"})


def test_vaults_this_gateway_cannot_read_are_refused_with_their_place():
    message = error("vaults:\n- {name: hcv, prefix: my-hcv, config: {host: localhost}}\n"
                    "- {name: env, prefix: env}\n- {name: env, prefix: Bad_Prefix}\n"
                    "- {name: env, prefix: dup}\n- {name: env, prefix: dup}\n"
                    "- {name: env, prefix: ok, config: {prefix: '9x'}}\n"
                    "services:\n- {name: a, url: '{vault://nowhere/url}'}\n")
    assert "vaults[my-hcv].name: vault 'hcv' is not supported by this gateway" in message
    assert "vaults[env].prefix: expected lower-case letters" in message
    assert "vaults[Bad_Prefix].prefix: expected lower-case letters" in message
    assert "vaults[dup].prefix: a vault with prefix 'dup' is already declared" in message
    assert "vaults[ok].config.prefix: expected letters" in message
    assert "services[a].url: vault reference: no vault with prefix 'nowhere'" in message


def load(environ, path, inline):
    source = declaration_source(environ, path, inline)
    return None if source is None else parse_declaration(*source, environ)


def test_file_and_string_sources(tmp_path):
    path = tmp_path / "kong.json"
    path.write_text('{"_format_version": "3.0", "services": [{"name": "a", "url": "http://a"}]}')
    assert list(load({}, str(path), None).services) == ["a"]
    assert load({}, None, HEAD) is not None
    assert load({}, None, None) is None
    with pytest.raises(ConfigError, match="both set"):
        load({}, str(path), HEAD)
    with pytest.raises(ConfigError, match=r"GATEWAY_DECLARATIVE_CONFIG=/nope\.yml: cannot read"):
        load({}, "/nope.yml", None)


def test_the_docs_show_the_example_file_the_integration_test_runs():
    from tests.support.processes import ROOT

    example = (ROOT / "deploy" / "kong.yml").read_text()
    assert f"```yaml\n{example}```" in (ROOT / "docs" / "services-and-routes.md").read_text()
    assert parse_declaration(example, "kong.yml", {"DEMO_API_KEY": "k"}).consumers
