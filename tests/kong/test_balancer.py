"""Kong's round-robin balancer spec (spec/02-integration/05-proxy/10-balancer/
04-round-robin_spec.lua), the cases a DB-less file can state, and the balancer's errors
(kong/runloop/balancer/init.lua).

Skipped, and why:

| spec case | why |
|---|---|
| targets changed at run time (Admin API) | DB-less: a reload replaces the workers |
| consistent-hashing, least-connections, latency | only round-robin is built here |
| active health checks (01-healthchecks_spec.lua) | passive checks only |
| `#stream` and `#grpc` cases | an HTTP gateway |
"""

from __future__ import annotations

import collections

import pytest

from gateway.config import ConfigError
from tests.kong.plugin_kit import kong_client, send
from tests.support.net import free_port

NO_PEER = "failure to get a peer from the ring-balancer"


def file_with(upstream: str) -> str:
    return f"""
_format_version: "3.0"
services:
- {{name: balanced, host: balanced.test, port: 80, protocol: http,
   routes: [{{name: r, paths: [/]}}]}}
upstreams:
- name: balanced.test
{upstream}
"""


@pytest.mark.parametrize("upstream", [
    "  targets: []",  # "failure due to no targets"
    "  targets: [{target: '127.0.0.1:1', weight: 0}, {target: '127.0.0.2:1', weight: 0}]",
    "  hash_on: none",  # an upstream without a targets list at all (the Ingress Controller's)
], ids=["no-targets", "all-weights-0", "targets-absent"])
def test_an_upstream_without_a_live_target_loads_and_answers_503(upstream):
    client = kong_client(file_with(upstream))
    response = send(client, "GET", "/", "a")
    assert response.status_code == 503
    assert response.json["message"] == NO_PEER


def test_round_robin_honours_the_weights(fixture_server):
    port = fixture_server.url.rpartition(":")[2]
    client = kong_client(file_with(f"""  targets:
  - {{target: '127.0.0.1:{port}', weight: 30}}
  - {{target: 'localhost:{port}', weight: 10}}
  - {{target: '127.0.0.2:{free_port()}', weight: 0}}"""))
    hosts = collections.Counter()
    for _ in range(40):
        response = send(client, "GET", "/echo", "a")
        assert response.status_code == 200  # the weight-0 target is never tried
        host = dict(response.json["headers"])["Host"]
        hosts[host.partition(":")[0]] += 1
    assert hosts == {"127.0.0.1": 30, "localhost": 10}


def test_a_host_that_does_not_resolve_is_kongs_503():
    client = kong_client("""
_format_version: "3.0"
services: [{name: s, url: "http://does-not-exist.invalid", routes: [{name: r, paths: [/]}]}]
""")
    response = send(client, "GET", "/", "a")
    assert response.status_code == 503
    assert response.json["message"] == "name resolution failed"


def test_deck_dump_upstream_fields_at_kongs_defaults_load():
    client = kong_client(file_with("""  algorithm: round-robin
  hash_on: none
  hash_fallback: none
  hash_on_cookie_path: /
  hash_on_header: null
  hash_fallback_header: null
  hash_on_query_arg: null
  hash_fallback_query_arg: null
  hash_on_uri_capture: null
  hash_fallback_uri_capture: null
  hash_on_cookie: null
  slots: 10000
  use_srv_name: false
  tags: null
  targets: []"""))
    assert send(client, "GET", "/", "a").status_code == 503


def test_a_hash_on_other_than_none_is_refused_with_its_place():
    with pytest.raises(ConfigError, match=r"upstreams\[balanced\.test\]\.hash_on"):
        kong_client(file_with("  hash_on: header\n  hash_on_header: x-user"))
