"""A kong.yml as Kong 3.x writes it (`kong config db_export` / deck: every default spelled
out) loads unchanged; plugin precedence follows Kong's order."""

from __future__ import annotations

import json

import pytest

from gateway.routing.declarative import parse_declaration
from gateway.routing.table import declared
from tests.support.app import get, in_process

DUMP = """
_format_version: "3.0"
_transform: true
consumers:
- custom_id: null
  id: 0e4b5f6c-2f5e-4d59-9b53-1f3b6a1f0001
  username: alice
  tags: null
  created_at: 1700000000
  keyauth_credentials:
  - id: 0e4b5f6c-2f5e-4d59-9b53-1f3b6a1f0002
    key: alice-key
    ttl: null
    tags: null
    created_at: 1700000000
plugins:
- config:
    day: null
    error_code: 429
    error_message: API rate limit exceeded
    fault_tolerant: true
    header_name: null
    hide_client_headers: false
    hour: null
    limit_by: consumer
    minute: 100
    month: null
    path: null
    policy: local
    redis:
      database: 0
      host: null
      password: null
      port: 6379
      server_name: null
      ssl: false
      ssl_verify: false
      timeout: 2000
      username: null
    second: null
    sync_rate: -1
    year: null
  enabled: true
  id: 0e4b5f6c-2f5e-4d59-9b53-1f3b6a1f0003
  instance_name: null
  name: rate-limiting
  protocols: [grpc, grpcs, http, https]
  tags: null
services:
- connect_timeout: 60000
  enabled: true
  host: {host}
  id: 0e4b5f6c-2f5e-4d59-9b53-1f3b6a1f0004
  name: echo
  path: /echo
  port: {port}
  protocol: http
  read_timeout: 60000
  retries: 5
  tags: null
  tls_verify: null
  tls_verify_depth: null
  ca_certificates: null
  client_certificate: null
  write_timeout: 60000
  created_at: 1700000000
  updated_at: 1700000000
  plugins:
  - config:
      anonymous: null
      hide_credentials: false
      key_in_body: false
      key_in_header: true
      key_in_query: true
      key_names: [apikey]
      realm: null
      run_on_preflight: true
    enabled: true
    name: key-auth
    protocols: [grpc, grpcs, http, https]
  - config:
      add: {headers: ["X-Echo:yes"], json: [], json_types: []}
      append: {headers: [], json: [], json_types: []}
      remove: {headers: [], json: []}
      rename: {headers: [], json: []}
      replace: {headers: [], json: [], json_types: []}
    enabled: true
    name: response-transformer
  routes:
  - destinations: null
    headers: null
    hosts: null
    https_redirect_status_code: 426
    id: 0e4b5f6c-2f5e-4d59-9b53-1f3b6a1f0005
    methods: null
    name: echo
    path_handling: v0
    paths: [/api]
    preserve_host: false
    protocols: [http, https]
    regex_priority: 0
    request_buffering: true
    response_buffering: true
    snis: null
    sources: null
    strip_path: true
    tags: null
"""


def test_a_kong_export_works_unchanged(upstream):
    host, port = upstream.url.removeprefix("http://").split(":")
    text = DUMP.replace("{host}", host).replace("{port}", port)
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text})
    assert get(client, "/api/x").status_code == 401
    response = get(client, "/api/x", headers={"apikey": "alice-key"})
    assert response.status_code == 200
    assert json.loads(response.get_data())["target"] == "/echo/x"
    assert response.headers["X-Echo"] == "yes"
    assert response.headers["X-RateLimit-Limit-Minute"] == "100"


PRECEDENCE = """
_format_version: "3.0"
services:
- {name: s, url: "http://127.0.0.1:1"}
- {name: other, url: "http://127.0.0.1:1"}
routes:
- {name: r, service: s, paths: [/]}
consumers:
- {username: c}
- {username: d}
plugins:
"""
# Kong's order, most specific first: (consumer, route, service) of each configuration.
SCOPES = [("c", "r", "s"), ("c", "r", None), ("c", None, "s"), (None, "r", "s"),
          ("c", None, None), (None, "r", None), (None, None, "s"), (None, None, None)]


def chain_status(scopes) -> tuple[int | None, dict[str, int]]:
    """The request-termination status the route gets for no consumer, and per consumer."""
    text = PRECEDENCE
    for index, (consumer, route, service) in scopes:
        text += f"- name: request-termination\n  config: {{status_code: {500 + index}}}\n"
        for kind, value in (("consumer", consumer), ("route", route), ("service", service)):
            if value:
                text += f"  {kind}: {value}\n"
    decl = parse_declaration(text, "kong.yml", {})
    (destination,) = declared(decl_settings(), decl).destinations
    (only,) = [f for f in destination.chain.filters if f.NAME == "request-termination"] or [None]
    if only is None:
        return None, {}
    if hasattr(only, "by_consumer"):
        default = only.default.config.status if only.default else None
        return default, {c: f.config.status for c, f in only.by_consumer.items()}
    return only.config.status, {}


def decl_settings():
    from gateway.config import Settings, load
    return load(Settings, {})


@pytest.mark.parametrize("winner", range(len(SCOPES)))
def test_the_most_specific_configuration_wins(winner):
    # Every configuration from the winner down to global, listed least specific first.
    scopes = list(enumerate(SCOPES))[winner:][::-1]
    default, by_consumer = chain_status(scopes)
    consumer_scoped = [i for i, (c, _, _) in scopes if c]
    route_level = [i for i, (c, _, _) in scopes if not c]
    assert default == 500 + min(route_level)
    if consumer_scoped and min(consumer_scoped) < min(route_level):
        assert by_consumer == {"c": 500 + min(consumer_scoped)}
    else:
        assert by_consumer == {}


def test_a_plugin_of_another_service_or_consumer_is_not_applied():
    default, by_consumer = chain_status([(0, ("d", None, "other")), (1, (None, None, "other"))])
    assert (default, by_consumer) == (None, {})
