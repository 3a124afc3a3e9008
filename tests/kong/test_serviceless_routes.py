"""Routes without a service and routes of disabled services, as Kong's specs say.

Translated from Kong 3.10's spec/02-integration/05-proxy/02-router_spec.lua ("responds 503
if no service found", "handles not enabled services") and
spec/03-plugins/14-request-termination/02-access_spec.lua ("default status code and message
with serviceless route"), DB-less, with httpbin as the upstream.

Cases skipped:

- "responds 503 if no service found" over https (``proxy_ssl_client``): TLS ends in nginx
  in front of the gateway; the plain http case is the same route.
- the request-termination body compared whole (``assert.same({message = ...})``): in
  tests/kong/test_request_termination.py, with that plugin's other cases.
"""

from __future__ import annotations

import json

from tests.support.app import get, in_process

KONG = """
_format_version: "3.0"
routes:
- protocols: [http, https]
  hosts: [serviceless-route-http.test]
  service: null
- name: api7
  hosts: [api7.request-termination.test]
services:
- path: /disabled-service-path/
  enabled: false
  url: {httpbin}/disabled-service-path/
  routes:
  - {paths: [/disabled-service1], protocols: [http], strip_path: false}
- name: enabled-service
  url: {httpbin}/anything/
  routes:
  - {paths: ['~/enabled-service/\\w+'], protocols: [http], strip_path: true}
- url: {httpbin}/some-path/
  enabled: false
  routes:
  - {paths: [/enabled-service/disabled], protocols: [http], strip_path: true}
plugins:
- {name: request-termination, route: api7}
"""


def client(httpbin: str):
    return in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": KONG.replace("{httpbin}", httpbin)})


def test_responds_503_if_no_service_found(httpbin):
    response = get(client(httpbin), "/", headers={"Host": "serviceless-route-http.test"})
    assert response.status_code == 503
    assert json.loads(response.get_data())["message"] == "no Service found with those values"


def test_request_termination_default_status_and_message_with_serviceless_route(httpbin):
    response = get(client(httpbin), "/status/200",
                   headers={"Host": "api7.request-termination.test"})
    assert response.status_code == 503
    assert json.loads(response.get_data())["message"] == "Service unavailable"


def test_ignores_route_where_service_enabled_false(httpbin):
    assert get(client(httpbin), "/disabled-service1").status_code == 404


def test_routes_to_regex_path_when_longer_path_service_enabled_false(httpbin):
    response = get(client(httpbin), "/enabled-service/disabled")
    assert response.status_code == 200
    assert "/anything" in json.loads(response.get_data())["url"]  # enabled-service's
