"""The route table inside the app: services, strip_path, scoped plugins, 404, names in logs."""

from __future__ import annotations

import json

import pytest

from gateway.config import ConfigError
from gateway.routing.entities import Target
from gateway.routing.table import weighted_ring
from tests.support.app import gateway_of, get, in_process

KONG = """
_format_version: "3.0"
services:
- name: orders
  url: {url}/echo/api
  routes:
  - name: orders
    paths: [/orders]
  - name: orders-admin
    paths: [/orders/admin]
    strip_path: false
    plugins:
    - name: request-termination
      config: {{status_code: 403, message: closed}}
- name: users
  url: {url}
  routes:
  - name: users
    hosts: [users.example.com]
    paths: [/]
  - name: secure
    paths: [/secure]
    protocols: [https]
  plugins:
  - name: key-auth
    config: {{key_names: [apikey], hide_credentials: true}}
consumers:
- username: alice
  keyauth_credentials: [{{key: alice-key}}]
  plugins:
  - name: response-transformer
    service: users
    config: {{add: {{headers: ["X-Who:alice"]}}}}
plugins:
- name: response-transformer
  config: {{add: {{headers: ["X-Who:anyone", "X-Global:yes"]}}}}
"""


@pytest.fixture(scope="module")
def client(upstream):
    return in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": KONG.format(url=upstream.url)})


def echo(response):
    return json.loads(response.get_data())


def test_strip_path_and_service_path(client):
    response = get(client, "/orders/42?x=1")
    assert response.status_code == 200
    assert echo(response)["target"] == "/echo/api/42?x=1"
    assert response.headers["X-Who"] == "anyone"  # the global plugin


def test_route_plugin_and_strip_path_false(client):
    response = get(client, "/orders/admin/x")
    assert response.status_code == 403
    assert json.loads(response.get_data())["message"] == "closed"


def test_no_route_is_kongs_404(client):
    response = get(client, "/nowhere", headers={"Host": "other.example.com"})
    assert response.status_code == 404
    assert json.loads(response.get_data())["message"] == "no Route matched with those values"


def test_service_plugin_and_consumer_scoped_plugin(client):
    host = {"Host": "users.example.com"}
    assert get(client, "/echo", headers=host).status_code == 401
    response = get(client, "/echo", headers={**host, "apikey": "alice-key"})
    assert response.status_code == 200
    assert "apikey" not in {k.lower() for k, _ in echo(response)["headers"]}
    assert response.headers["X-Who"] == "alice"  # consumer+service beats global
    assert "X-Global" not in response.headers  # one configuration per plugin name


def test_https_only_route_answers_426_on_http(client):
    response = get(client, "/secure", headers={"apikey": "alice-key"})
    assert response.status_code == 426
    assert json.loads(response.get_data())["message"] == "Please use HTTPS protocol"


def test_filters_are_shared_across_routes(client):
    names = [f.NAME for f in gateway_of(client).filters]
    assert names.count("key-auth") == 1


def test_bad_plugin_config_names_the_field(upstream):
    text = KONG.format(url=upstream.url).replace("status_code: 403", "status_code: 42")
    with pytest.raises(ConfigError, match=r"services\[orders\]\.routes\[orders-admin\]\."
                                          r"plugins\[request-termination\]\.config\.status_code"):
        in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text})


def test_unsupported_plugin_is_refused(upstream):
    text = KONG.format(url=upstream.url).replace("request-termination", "oauth2")
    with pytest.raises(ConfigError, match="Kong's plugin 'oauth2' is not supported by this "
                                          r"gateway \(its tokens and authorization codes need "
                                          "a database.*; this gateway supports"):
        in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text})


def test_filters_variable_cannot_be_mixed_with_a_file(upstream):
    with pytest.raises(ConfigError, match="GATEWAY_FILTERS cannot be combined"):
        in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": KONG.format(url=upstream.url),
                    "GATEWAY_FILTERS": "cors"})


def test_weighted_ring_spreads_targets():
    a, b = Target("a", 1, 100), Target("b", 1, 50)
    assert [t.host for t in weighted_ring([a, b])] == ["a", "b", "a"]
    assert weighted_ring([Target("c", 1, 0)]) == []


def test_a_disabled_plugin_is_checked_but_not_run(upstream):
    text = KONG.format(url=upstream.url).replace(
        "      config: {status_code: 403, message: closed}",
        "      enabled: false\n      config: {status_code: 403, message: closed}")
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text})
    assert get(client, "/orders/admin/x").status_code == 200
    with pytest.raises(ConfigError, match=r"config\.status_code: value should be between"):
        in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text.replace("403", "42")})


def test_services_alike_share_one_upstream_and_its_pools(upstream):
    text = KONG.format(url=upstream.url)
    destinations = {d.route: d for d in gateway_of(in_process(
        {"GATEWAY_DECLARATIVE_CONFIG_STRING": text})).routes.destinations}
    # orders (path /echo/api) and users (no path) go to the same target with the same settings
    assert destinations["orders"].upstream is destinations["users"].upstream
    slower = text.replace(f"url: {upstream.url}\n  routes:",
                          f"url: {upstream.url}\n  read_timeout: 5000\n  routes:")
    destinations = {d.route: d for d in gateway_of(in_process(
        {"GATEWAY_DECLARATIVE_CONFIG_STRING": slower})).routes.destinations}
    assert destinations["orders"].upstream is not destinations["users"].upstream
    assert destinations["users"].upstream.settings.read_timeout == 5


def test_filter_variables_cannot_be_mixed_with_a_file(upstream):
    with pytest.raises(ConfigError, match="GATEWAY_RATELIMIT_MINUTE: a filter setting has no "
                                          "effect with a declarative file"):
        in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": KONG.format(url=upstream.url),
                    "GATEWAY_RATELIMIT_MINUTE": "5"})


def test_preserve_host_is_per_route(upstream):
    text = KONG.format(url=upstream.url).replace(
        "    hosts: [users.example.com]\n", "    hosts: [users.example.com]\n"
        "    preserve_host: true\n")
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text})
    kept = echo(get(client, "/echo", headers={"Host": "users.example.com", "apikey": "alice-key"}))
    assert ["Host", "users.example.com"] in kept["headers"]
    sent = echo(get(client, "/orders/1", headers={"Host": "other.example.com"}))
    assert ["Host", upstream.url.removeprefix("http://")] in sent["headers"]


def test_pool_gauges_sum_the_services_pools_to_a_target(upstream):
    from prometheus_client import REGISTRY

    slower = KONG.format(url=upstream.url).replace(
        f"url: {upstream.url}\n  routes:", f"url: {upstream.url}\n  read_timeout: 5000\n  routes:")
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": slower})
    assert get(client, "/orders/1").status_code == 200
    assert get(client, "/echo", headers={"Host": "users.example.com",
                                         "apikey": "alice-key"}).status_code == 200
    gateway = gateway_of(client)
    assert len(gateway.metrics.upstreams) == 2
    gateway.metrics.refresh(float("inf"))
    idle = REGISTRY.get_sample_value("gateway_upstream_idle_connections",
                                     {"target": upstream.url})
    assert idle == 2  # one kept-alive connection in each service's pool


def test_a_bad_value_from_a_vault_is_not_echoed(upstream):
    text = KONG.format(url=upstream.url) + (
        "- name: enrichment\n  route: orders\n  config: {url: '{vault://env/enrich-url}'}\n")
    with pytest.raises(ConfigError) as caught:
        in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text,
                    "ENRICH_URL": "ftp://user:hunter2@third.example/x"})
    message = str(caught.value)
    assert "plugins[enrichment].config.url: invalid value (hidden: it is a secret)" in message
    assert "hunter2" not in message
    client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text,
                         "ENRICH_URL": upstream.url + "/third?id={path}"})
    assert len([f for f in gateway_of(client).filters if f.NAME == "enrichment"]) == 1


def test_a_file_whose_only_service_is_disabled_loads_and_answers_404(upstream):
    text = (f'_format_version: "3.0"\nservices:\n- {{name: a, url: "{upstream.url}", '
            'enabled: false, routes: [{paths: [/]}]}\n')
    response = get(in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": text}), "/")
    assert response.status_code == 404
    assert json.loads(response.get_data())["message"] == "no Route matched with those values"
