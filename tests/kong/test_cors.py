"""Kong's cors access spec, case by case: spec/03-plugins/13-cors/01-access_spec.lua (Kong
3.10), DB-less, the fixture server standing in for mock_upstream (httpbin adds CORS
headers of its own to every answer and answers every OPTIONS itself).

Skipped cases (spec case: why):

- "works even when a runtime error occurs" (error-generator-last plugin): no such
  plugin; the gateway's own errors get CORS headers too (the 401 and 502 cases below).
- in "removes upstream ACAO header when no match is found", the echo of the request's
  `Origin` by mock_upstream's /response-headers: the fixture's /respond answers its
  query as headers, not the request; the response headers are asserted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.config import ConfigError
from tests.kong.plugin_kit import kong_client, send
from tests.support.net import free_port

CORS_DEFAULT_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"
EXAMPLE = {"origins": ["example.test"], "methods": ["GET"],
           "headers": ["origin", "type", "accepts"], "exposed_headers": ["x-auth-token"]}
#: host -> the cors config of its route (the spec's routes 1-16 and the named ones).
ROUTES: dict[str, dict[str, Any]] = {
    "cors1.test": {},
    "cors2.test": {**EXAMPLE, "max_age": 23, "credentials": True},
    "cors3.test": {**EXAMPLE, "max_age": 23, "preflight_continue": True},
    "cors4.test": {},
    "cors5.test": {"origins": ["*"], "credentials": True},
    "cors6.test": {**EXAMPLE, "origins": ["example.test", "example.org"], "max_age": 23,
                   "preflight_continue": True},
    "cors7.test": {"origins": ["*"], "credentials": False},
    "cors-empty-origins.test": {"origins": []},
    "cors9.test": {"origins": [r".*\.?example(?:-foo)?.test"]},
    "cors10.test": {"origins": ["http://my-site.test", "http://my-other-site.test"]},
    "cors11.test": {"origins": ["http://my-site.test", "https://my-other-site.test:9000"]},
    "cors12.test": {"credentials": True, "preflight_continue": False, "max_age": 1728000,
                    "headers": ["DNT", "X-CustomHeader", "Keep-Alive", "User-Agent",
                                "X-Requested-With", "If-Modified-Since", "Cache-Control",
                                "Content-Type", "Authorization"],
                    "methods": None, "origins": ["a.xxx.test", "allowed-domain.test"]},
    "cors13.test": {"preflight_continue": False, "private_network": True,
                    "origins": ["allowed-domain.test"]},
    "cors14.test": {"preflight_continue": False, "origins": ["foo.bar", "*"]},
    "cors15.test": {"allow_origin_absent": False, "origins": ["foo.bar"],
                    "exposed_headers": ["x-auth-token"], "credentials": True},
    "cors16.test": {"allow_origin_absent": True, "origins": ["foo.bar"],
                    "exposed_headers": ["x-auth-token"], "credentials": True},
    "cors-upstream.test": {**EXAMPLE, "max_age": 10, "preflight_continue": True},
}
#: Kong's regex_testcases: origins -> request Origin -> accepted (True: echoed; a string:
#: that value) or not (False).
REGEX_CASES: list[tuple[list[str], dict[str, bool | str]]] = [
    (['foo.test'], {
        'http://evil.test': 'foo.test',
        'http://foo.test': 'foo.test',
        'http://foo.test.evil.test': 'foo.test',
        'http://something.foo.test': 'foo.test',
        'http://evilfoo.test': 'foo.test',
        'http://foo.test:80': 'foo.test',
        'http://foo.test:8000': 'foo.test',
        'https://foo.test:8000': 'foo.test',
        'http://foo.test:90': 'foo.test',
        'http://foobtest': 'foo.test',
        'https://bar.test:1234': 'foo.test',
    }),
    (['https://bar.test:1234'], {
        'http://evil.test': 'https://bar.test:1234',
        'http://foo.test': 'https://bar.test:1234',
        'http://foo.test.evil.test': 'https://bar.test:1234',
        'http://something.foo.test': 'https://bar.test:1234',
        'http://evilfoo.test': 'https://bar.test:1234',
        'http://foo.test:80': 'https://bar.test:1234',
        'http://foo.test:8000': 'https://bar.test:1234',
        'https://foo.test:8000': 'https://bar.test:1234',
        'http://foo.test:90': 'https://bar.test:1234',
        'http://foobtest': 'https://bar.test:1234',
        'https://bar.test:1234': 'https://bar.test:1234',
    }),
    (['foo\\.test'], {
        'http://evil.test': False,
        'http://foo.test': True,
        'http://foo.test.evil.test': False,
        'http://something.foo.test': False,
        'http://evilfoo.test': False,
        'http://foo.test:80': 'http://foo.test',
        'http://foo.test:8000': True,
        'https://foo.test:8000': True,
        'http://foo.test:90': True,
        'http://foobtest': False,
        'https://bar.test:1234': False,
    }),
    (['(.*[./])?foo\\.test'], {
        'http://evil.test': False,
        'http://foo.test': True,
        'http://foo.test.evil.test': False,
        'http://something.foo.test': True,
        'http://evilfoo.test': False,
        'http://foo.test:80': 'http://foo.test',
        'http://foo.test:8000': True,
        'https://foo.test:8000': True,
        'http://foo.test:90': True,
        'http://foobtest': False,
        'https://bar.test:1234': False,
    }),
    (['(.*[./])?foo\\.test:8000'], {
        'http://evil.test': False,
        'http://foo.test': False,
        'http://foo.test.evil.test': False,
        'http://something.foo.test': False,
        'http://evilfoo.test': False,
        'http://foo.test:80': False,
        'http://foo.test:8000': True,
        'https://foo.test:8000': True,
        'http://foo.test:90': False,
        'http://foobtest': False,
        'https://bar.test:1234': False,
    }),
    (['https://(.*[.])?foo\\.test:8000'], {
        'http://evil.test': False,
        'http://foo.test': False,
        'http://foo.test.evil.test': False,
        'http://something.foo.test': False,
        'http://foo.test:80': False,
        'http://foo.test:8000': False,
        'https://foo.test:8000': True,
        'http://foo.test:90': False,
        'http://foobtest': False,
        'https://bar.test:1234': False,
    }),
    (['^http://(.*[.])?foo\\.test(:(80|90))?$'], {
        'http://evil.test': False,
        'http://foo.test': True,
        'http://foo.test.evil.test': False,
        'http://something.foo.test': True,
        'http://foo.test:80': 'http://foo.test',
        'http://foo.test:8000': False,
        'https://foo.test:8000': False,
        'http://foo.test:90': True,
        'http://foobtest': False,
        'https://bar.test:1234': False,
    }),
    (['foo.test', 'bar.test'], {
        'http://evil.test': False,
        'http://foo.test': False,
        'http://foo.test.evil.test': False,
        'http://foo.test:80': False,
        'http://foo.test:8000': False,
        'http://foo.test:90': False,
        'http://foobtest': False,
        'https://bar.test:1234': False,
    }),
    (['http://foo.test', 'https://bar.test:1234'], {
        'http://evil.test': False,
        'http://foo.test': True,
        'http://foo.test.evil.test': False,
        'http://foo.test:80': 'http://foo.test',
        'http://foo.test:8000': False,
        'http://foo.test:90': False,
        'http://foobtest': False,
        'https://bar.test:1234': True,
    }),
    (['bar.test', 'foo\\.test'], {
        'http://evil.test': False,
        'http://foo.test': True,
        'http://foo.test.evil.test': False,
        'http://something.foo.test': False,
        'http://foo.test:80': 'http://foo.test',
        'http://foo.test:8000': True,
        'http://foo.test:90': True,
        'http://foobtest': False,
        'https://bar.test:1234': False,
    }),
    (['bar.test', '(.*\\.)?foo\\.test'], {
        'http://evil.test': False,
        'http://foo.test': True,
        'http://foo.test.evil.test': False,
        'http://something.foo.test': True,
        'http://foo.test:80': 'http://foo.test',
        'http://foo.test:8000': True,
        'http://foo.test:90': True,
        'http://foobtest': False,
        'https://bar.test:1234': False,
    }),
    (['bar.test', '(.*[./])?foo\\.test:8000'], {
        'http://evil.test': False,
        'http://foo.test': False,
        'http://foo.test.evil.test': False,
        'http://something.foo.test': False,
        'http://foo.test:80': False,
        'http://foo.test:8000': True,
        'https://foo.test:8000': True,
        'http://foo.test:90': False,
        'http://foobtest': False,
        'https://bar.test:1234': False,
    }),
    (['bar.test', 'https://(.*\\.)?foo\\.test:8000'], {
        'http://evil.test': False,
        'http://foo.test': False,
        'http://foo.test.evil.test': False,
        'http://something.foo.test': False,
        'http://foo.test:80': False,
        'http://foo.test:8000': False,
        'https://foo.test:8000': True,
        'http://foo.test:90': False,
        'http://foobtest': False,
        'https://bar.test:1234': False,
    }),
]


def route(host: str, config: dict[str, Any], *plugins: dict[str, Any]) -> dict[str, Any]:
    return {"name": host, "hosts": [host],
            "plugins": [{"name": "cors", "config": config}, *plugins]}


@pytest.fixture(scope="module")
def kong(fixture_server):
    routes = [route(host, config, *([{"name": "key-auth"}] if host == "cors4.test" else []))
              for host, config in ROUTES.items()]
    routes += [route(f"cors-regex-{i}.test", {"origins": origins})
               for i, (origins, _) in enumerate(REGEX_CASES, 1)]
    down = {"name": "down", "url": f"http://127.0.0.1:{free_port()}",
            "routes": [route("cors-timeout.test", {**EXAMPLE, "max_age": 10,
                                                   "preflight_continue": True})]}
    return kong_client(json.dumps({"_format_version": "3.0", "services": [
        {"name": "mock", "url": fixture_server.url, "routes": routes}, down]}))


def preflight(kong, host: str, origin: str | None, **headers: str):
    return send(kong, "OPTIONS", "/", host, {**({"Origin": origin} if origin else {}),
                                            "Access-Control-Request-Method": "GET", **headers})


def absent(response, *names: str) -> None:
    assert [name for name in names if name in response.headers] == []


ALLOW = "Access-Control-Allow-"


# ------------------------------------------------------------- HTTP method: OPTIONS

@pytest.mark.parametrize(("index", "origin"), [
    (i, origin) for i, (_, tests) in enumerate(REGEX_CASES, 1) for origin in sorted(tests)])
def test_regex_origins(kong, index, origin):
    accept = REGEX_CASES[index - 1][1][origin]
    response = preflight(kong, f"cors-regex-{index}.test", origin)
    assert response.status_code == 200
    if accept:
        assert response.headers[ALLOW + "Methods"] == CORS_DEFAULT_METHODS
        assert response.headers[ALLOW + "Origin"] == (origin if accept is True else accept)
        absent(response, ALLOW + "Headers", "Access-Control-Expose-Headers",
               ALLOW + "Credentials", "Access-Control-Max-Age")
    else:
        absent(response, ALLOW + "Origin")


@pytest.mark.parametrize("host", ["cors1.test", "cors-empty-origins.test"])
def test_preflight_gives_appropriate_defaults(kong, host):
    response = preflight(kong, host, "origin1.test")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert response.headers[ALLOW + "Methods"] == CORS_DEFAULT_METHODS
    assert response.headers[ALLOW + "Origin"] == "*"
    absent(response, ALLOW + "Headers", "Access-Control-Expose-Headers", ALLOW + "Credentials",
           "Access-Control-Max-Age", "Vary")


def test_preflight_defaults_when_origin_is_star_and_credentials_true(kong):
    response = preflight(kong, "cors5.test", "origin5.test")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert response.headers[ALLOW + "Methods"] == CORS_DEFAULT_METHODS
    assert response.headers[ALLOW + "Origin"] == "origin5.test"
    assert response.headers[ALLOW + "Credentials"] == "true"
    assert response.headers["Vary"] == "Origin"
    absent(response, ALLOW + "Headers", "Access-Control-Expose-Headers", "Access-Control-Max-Age")


def test_preflight_gives_star_when_origins_include_star(kong):
    response = preflight(kong, "cors14.test", "http://www.example.net")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert response.headers[ALLOW + "Methods"] == CORS_DEFAULT_METHODS
    assert response.headers[ALLOW + "Origin"] == "*"
    absent(response, ALLOW + "Headers", "Access-Control-Expose-Headers", ALLOW + "Credentials",
           "Access-Control-Max-Age")


def test_preflight_accepts_config_options(kong):
    response = preflight(kong, "cors2.test", "origin5.test")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert response.headers[ALLOW + "Methods"] == "GET"
    assert response.headers[ALLOW + "Origin"] == "example.test"
    assert response.headers["Access-Control-Max-Age"] == "23"
    assert response.headers[ALLOW + "Credentials"] == "true"
    assert response.headers[ALLOW + "Headers"] == "origin,type,accepts"
    assert response.headers["Vary"] == "Origin"
    absent(response, "Access-Control-Expose-Headers")


def test_preflight_continue_enabled(kong):
    response = send(kong, "OPTIONS", "/status/201", "cors3.test")
    assert response.status_code == 201
    assert response.json == {"status": True}  # the upstream's answer


def test_replies_with_request_headers_if_present_in_request(kong):
    response = preflight(kong, "cors5.test", "origin5.test",
                         **{"Access-Control-Request-Headers": "origin,accepts"})
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "0"
    assert response.headers[ALLOW + "Headers"] == "origin,accepts"


@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://my-site.test", "http://my-site.test"), ("http://bad-guys.test", None),
    ("http://my-site.test.bad-guys.test", None)])
def test_properly_validates_flat_strings(kong, origin, allowed):
    response = send(kong, "OPTIONS", "/", "cors10.test", {"Origin": origin})
    assert response.status_code == 200
    assert response.headers.get(ALLOW + "Origin") == allowed


def test_support_private_network(kong):
    response = send(kong, "OPTIONS", "/", "cors13.test", {
        "Origin": "allowed-domain.test", "Access-Control-Request-Private-Network": "true",
        "Access-Control-Request-Method": "PUT"})
    assert response.status_code == 200
    assert response.headers[ALLOW + "Private-Network"] == "true"


# -------------------------------------------------------------- HTTP method: others

def test_gives_appropriate_defaults(kong):
    response = send(kong, "GET", "/", "cors1.test")
    assert response.status_code == 200
    assert response.headers[ALLOW + "Origin"] == "*"
    absent(response, ALLOW + "Methods", ALLOW + "Headers", "Access-Control-Expose-Headers",
           ALLOW + "Credentials", "Access-Control-Max-Age", "Vary")


def test_proxies_a_non_preflight_options_request(kong):
    response = send(kong, "OPTIONS", "/anything", "cors1.test")
    assert response.json["method"] == "OPTIONS"
    assert response.headers[ALLOW + "Origin"] == "*"
    absent(response, ALLOW + "Methods", ALLOW + "Headers", "Access-Control-Expose-Headers",
           ALLOW + "Credentials", "Access-Control-Max-Age", "Vary")


def test_accepts_config_options(kong):
    response = send(kong, "GET", "/", "cors2.test")
    assert response.status_code == 200
    assert response.headers[ALLOW + "Origin"] == "example.test"
    assert response.headers["Access-Control-Expose-Headers"] == "x-auth-token"
    assert response.headers[ALLOW + "Credentials"] == "true"
    assert response.headers["Vary"] == "Origin"
    absent(response, ALLOW + "Methods", ALLOW + "Headers", "Access-Control-Max-Age")


def test_works_even_when_upstream_timeouts(kong):
    response = send(kong, "GET", "/", "cors-timeout.test")
    assert response.status_code == 502
    assert response.headers[ALLOW + "Origin"] == "example.test"
    assert response.headers["Access-Control-Expose-Headers"] == "x-auth-token"
    assert response.headers["Vary"] == "Origin"
    absent(response, ALLOW + "Credentials", ALLOW + "Methods", ALLOW + "Headers",
           "Access-Control-Max-Age")


@pytest.mark.parametrize(("path", "host", "status"), [
    ("/status/404", "cors1.test", 404), ("/", "cors4.test", 401)])
def test_works_with_40x_responses(kong, path, host, status):
    response = send(kong, "GET", path, host)
    assert response.status_code == status
    assert response.headers[ALLOW + "Origin"] == "*"
    absent(response, ALLOW + "Methods", ALLOW + "Headers", "Access-Control-Expose-Headers",
           ALLOW + "Credentials", "Access-Control-Max-Age", "Vary")


def test_sets_cors_origin_based_on_origin_host(kong):
    response = send(kong, "GET", "/", "cors6.test", {"Origin": "example.test"})
    assert response.status_code == 200
    assert response.headers[ALLOW + "Origin"] == "example.test"
    assert response.headers["Vary"] == "Origin"


@pytest.mark.parametrize(("domain", "allowed"), [
    ("example.test", True), ("www.example.test", True), ("example-foo.test", True),
    ("www.example-foo.test", True), ("www.example-fo0.test", False)])
def test_sets_cors_origin_for_a_regex(kong, domain, allowed):
    response = send(kong, "GET", "/", "cors9.test", {"Origin": domain})
    assert response.status_code == 200
    assert response.headers.get(ALLOW + "Origin") == (domain if allowed else None)
    assert response.headers["Vary"] == "Origin"


def test_sets_vary_and_does_not_override_existing_vary_header(kong):
    response = send(kong, "GET", "/respond?Vary=Accept-Encoding",
                    "cors-upstream.test", {"Origin": "example.test"})
    assert response.status_code == 200
    assert response.headers.getlist("Vary") == ["Accept-Encoding", "Origin"]


@pytest.mark.parametrize("origin", ["http://example.test", "https://example.test",
                                    "http://www.example.net"])
def test_does_not_parse_the_host_nor_allow_other_origins(kong, origin):
    response = send(kong, "GET", "/", "cors6.test", {"Origin": origin})
    assert response.status_code == 200
    absent(response, ALLOW + "Origin")


@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://my-site.test", "http://my-site.test"), ("http://my-site.test:80",
                                                     "http://my-site.test"),
    ("http://my-site.test:8000", None), ("https://my-site.test", None),
    ("https://my-other-site.test:9000", "https://my-other-site.test:9000"),
    ("https://my-other-site.test:9001", None)])
def test_validates_scheme_and_port(kong, origin, allowed):
    response = send(kong, "GET", "/", "cors11.test", {"Origin": origin})
    assert response.status_code == 200
    assert response.headers.get(ALLOW + "Origin") == allowed


@pytest.mark.parametrize("origin", ["http://www.example.net", "http://www.example.net:3000"])
def test_responds_with_the_requested_origin_when_credentials_true(kong, origin):
    response = send(kong, "GET", "/", "cors5.test", {"Origin": origin})
    assert response.status_code == 200
    assert response.headers[ALLOW + "Origin"] == origin
    assert response.headers[ALLOW + "Credentials"] == "true"
    assert response.headers["Vary"] == "Origin"


def test_responds_with_star_when_origin_is_star_and_credentials_false(kong):
    response = send(kong, "GET", "/", "cors7.test", {"Origin": "http://www.example.net"})
    assert response.status_code == 200
    assert response.headers[ALLOW + "Origin"] == "*"
    absent(response, ALLOW + "Credentials", "Vary")


def test_responds_with_star_when_origins_include_star(kong):
    response = send(kong, "GET", "/", "cors14.test", {"Origin": "http://www.example.net"})
    assert response.status_code == 200
    assert response.headers[ALLOW + "Origin"] == "*"


@pytest.mark.parametrize(("origin", "allowed"), [("allowed-domain.test", "allowed-domain.test"),
                                                 ("disallowed-domain.test", None)])
def test_removes_upstream_acao_header_when_no_match_is_found(kong, origin, allowed):
    response = send(kong, "GET", "/respond?Response-Header=is-added&"
                    "Access-Control-Allow-Origin=%2A", "cors12.test", {"Origin": origin})
    assert response.status_code == 200
    assert response.headers["Response-Header"] == "is-added"
    assert response.headers.get(ALLOW + "Origin") == allowed
    assert response.headers[ALLOW + "Credentials"] == "true"  # Kong: even when not allowed
    assert response.headers["Vary"] == "Origin"


@pytest.mark.parametrize("origin", [None, ""])
def test_allow_origin_absent_disabled_returns_no_acao(kong, origin):
    response = send(kong, "GET", "/", "cors15.test",
                    {"Origin": origin} if origin is not None else None)
    assert response.status_code == 200
    absent(response, ALLOW + "Origin", ALLOW + "Credentials", "Access-Control-Expose-Headers")


@pytest.mark.parametrize("origin", [None, ""])
def test_allow_origin_absent_enabled_returns_acao(kong, origin):
    response = send(kong, "GET", "/", "cors16.test",
                    {"Origin": origin} if origin is not None else None)
    assert response.status_code == 200
    assert response.headers[ALLOW + "Origin"] == "foo.bar"
    assert response.headers[ALLOW + "Credentials"] == "true"
    assert response.headers["Access-Control-Expose-Headers"] == "x-auth-token"


# ------------------------------------------------------------------ schema (02-schema_spec)

def cors_file(config: dict[str, Any]) -> str:
    return json.dumps({"_format_version": "3.0", "services": [{
        "name": "s", "url": "http://127.0.0.1:9", "routes": [{"name": "r", "paths": ["/"]}],
        "plugins": [{"name": "cors", "config": config}]}]})


@pytest.mark.parametrize("config", [
    {"origins": ["*"]},  # validates '*'
    {"origins": ["example.com"]},  # what looks like a domain
    {"origins": [r".*\.example(?:-foo)?\.com"]},  # what looks like a regex
    *({"methods": [method]} for method in CORS_DEFAULT_METHODS.split(",")),
])
def test_schema_accepts(config):
    kong_client(cors_file(config))


@pytest.mark.parametrize(("config", "error"), [
    ({"origins": [".*.example.com", "invalid_**regex"]}, "'invalid_**regex' is not a valid regex"),
    ({"methods": ["FAKE"]},
     "expected one of: GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS, TRACE, CONNECT"),
])
def test_schema_errors(config, error):
    with pytest.raises(ConfigError) as refused:
        kong_client(cors_file(config))
    assert "plugins[cors].config" in str(refused.value) and error in str(refused.value)


@pytest.mark.parametrize(("max_age", "sent"), [(-1, "-1"), (2.5, "2.5"), (600.0, "600")])
def test_max_age_is_any_number_written_as_lua_writes_it(max_age, sent):
    """Kong's max_age is a number with no bounds, sent as tostring() writes it."""
    kong = kong_client(cors_file({"origins": ["*"], "max_age": max_age}))
    assert preflight(kong, "x.test", "http://a.test").headers["Access-Control-Max-Age"] == sent


def test_max_age_that_is_not_a_number_is_refused():
    with pytest.raises(ConfigError) as refused:
        kong_client(cors_file({"max_age": "600"}))
    assert "plugins[cors].config.max_age: expected a number" in str(refused.value)
