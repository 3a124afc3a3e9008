"""Kong's bot-detection access spec (spec/03-plugins/21-bot-detection/01-access_spec.lua),
case by case, through a declarative file; plus the schema's regex check (03-api_spec.lua).

Skipped, and why:

| spec case | why |
|---|---|
| every `#grpc` case | no gRPC proxying in this gateway |
| 02-invalidations_spec.lua (Admin API changes) | DB-less: a reload builds new filters and caches |
| 03-api_spec.lua Admin API round trips | no Admin API; the regex validity check is translated |
"""

from __future__ import annotations

import json

import pytest

from gateway.config import ConfigError
from tests.kong.plugin_kit import kong_client, send

HELLOWORLD = "HelloWorld"
FACEBOOK = "facebookexternalhit/1.1"  # a known bot of Kong's rules.lua
CHROME = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_5) AppleWebKit/537.36 (KHTML, like "
          "Gecko) Chrome/50.0.2661.102 Safari/537.36")


def kong_yml(upstream: str) -> str:
    return f"""
_format_version: "3.0"
services:
- name: mock
  url: {upstream}/anything
  routes:
  - {{name: r1, hosts: [bot.test], plugins: [{{name: bot-detection, config: {{}}}}]}}
  - name: r2
    hosts: [bot2.test]
    plugins: [{{name: bot-detection, config: {{deny: [{HELLOWORLD}]}}}}]
  - name: r3
    hosts: [bot3.test]
    plugins: [{{name: bot-detection, config: {{allow: ["{FACEBOOK}"]}}}}]
"""


@pytest.fixture(scope="module")
def client(httpbin):
    return kong_client(kong_yml(httpbin))


def status(client, host: str, agent: str | None) -> int:
    headers = {} if agent is None else {"User-Agent": agent}
    return send(client, "GET", "/request", host, headers).status_code


@pytest.mark.parametrize("agent", [None, CHROME, HELLOWORLD, "curl/7.43.0"])
def test_allows_regular_requests(client, agent):
    assert status(client, "bot.test", agent) == 200


@pytest.mark.parametrize("agent", ["Googlebot/2.1 (+http://www.google.com/bot.html)", FACEBOOK])
def test_blocks_bots(client, agent):
    response = send(client, "GET", "/request", "bot.test", {"User-Agent": agent})
    assert response.status_code == 403
    assert response.json["message"] == "Forbidden"


def test_blocks_denied_user_agents(client):
    assert status(client, "bot2.test", HELLOWORLD) == 403


def test_allows_allowed_user_agents(client):
    assert status(client, "bot3.test", FACEBOOK) == 200


def test_a_verdict_is_remembered_per_user_agent(client):
    assert status(client, "bot.test", "Googlebot/2.1") == 403
    assert status(client, "bot.test", "Googlebot/2.1") == 403  # from the cache
    assert status(client, "bot.test", CHROME) == 200


def test_configured_globally(httpbin):
    client = kong_client(f"""
_format_version: "3.0"
services: [{{name: mock, url: "{httpbin}/anything", routes: [{{name: r, hosts: [bot.test]}}]}}]
plugins: [{{name: bot-detection}}]
""")
    for agent in (None, CHROME, HELLOWORLD, "curl/7.43.0"):
        assert status(client, "bot.test", agent) == 200
    assert status(client, "bot.test", "Googlebot/2.1 (+http://www.google.com/bot.html)") == 403


BAD_REGEX = r"(https?:\/\/.*"  # 03-api_spec's illegal regex


@pytest.mark.parametrize("field", ["allow", "deny"])
def test_fails_when_using_a_bad_regex(httpbin, field):
    refusal = (r"plugins\[bot-detection\]\.config\." + field
               + r": not a valid regex: \(https\?:\\/\\/\.\*$")
    with pytest.raises(ConfigError, match=refusal):
        kong_client(json.dumps({
            "_format_version": "3.0",
            "services": [{"name": "mock", "url": f"{httpbin}/anything",
                          "routes": [{"name": "r", "paths": ["/"]}]}],
            "plugins": [{"name": "bot-detection", "config": {field: [BAD_REGEX]}}]}))


def test_from_environment_variables(httpbin):
    from tests.support.app import in_process

    client = in_process({"GATEWAY_UPSTREAM_URL": f"{httpbin}/anything",
                         "GATEWAY_FILTERS": "bot-detection",
                         "GATEWAY_BOT_DETECTION_DENY": '["^Hello", "x{1,2}y"]',
                         "GATEWAY_BOT_DETECTION_ALLOW": "^Googlebot/2"})
    assert status(client, "a", "HelloWorld") == 403
    assert status(client, "a", "axxy") == 403  # a regex with a comma kept whole
    assert status(client, "a", "Googlebot/2.1") == 200  # allowed before the built-in list
    assert status(client, "a", "Googlebot/3.0") == 403
    assert status(client, "a", CHROME) == 200
