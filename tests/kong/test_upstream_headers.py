"""Kong's spec/02-integration/05-proxy/03-upstream_headers_spec.lua (Kong 3.10), the
X-Real-IP, X-Forwarded-For/-Proto/-Host/-Port/-Path/-Prefix cases, with the default,
trusted and non-trusted configurations, translated case by case.

The spec's services point at its mock upstream, which echoes the request at any path;
here every service has the path ``/echo`` in front of the fixture server (its echo at any
path under ``/echo``): the headers are the facts, and the service path changes neither.
Kong's ``trusted_ips = 127.0.0.1`` is ``GATEWAY_TRUSTED_PROXIES=1`` (werkzeug's ProxyFix
trusts the hop in front); ``trusted_ips = 10.0.0.1`` (a peer that is not the client's) is
the default, no trusted hop.

Skipped cases and why (spec case: reason):

- hop-by-hop headers, (response from upstream), and the forwarding headers with the
  downstream host preserved or discarded: outside the router's path handling;
  tests/unit/test_headers.py and tests/integration/test_proxy.py cover them.
- (using the trusted configuration values) X-Real-IP should be forwarded if present: a
  difference; here X-Real-IP is the client address ProxyFix took from the trusted
  X-Forwarded-For (Kong's real_ip_header), never a header the client sent.
- X-Forwarded-Port "80" as sent by the spec equals the in-process port; "8443" is sent so
  that forwarded and replaced differ.
- keeps proxy-authorization header when a plugin specifies it (two cases):
  request-transformer is not shipped.
"""

from __future__ import annotations

import pytest

from tests.kong.routes import echoed, kong_file
from tests.support.app import in_process

ROUTES = [
    {"protocols": ["http"], "hosts": ["headers-inspect.test"], "service": {"path": "/echo"}},
    {"protocols": ["http"], "hosts": ["preserved.test"], "preserve_host": True,
     "service": {"path": "/echo"}},
    {"protocols": ["http"], "paths": ["/foo"], "strip_path": True, "service": {"path": "/echo"}},
    {"protocols": ["http"], "paths": ["/status/200"], "strip_path": False,
     "service": {"path": "/echo"}},
    {"protocols": ["http"], "paths": ["/"], "strip_path": True, "service": {"path": "/echo"}},
]


def client_for(upstream: str, trusted: bool):
    environ = {"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(upstream, ROUTES)}
    if trusted:
        environ["GATEWAY_TRUSTED_PROXIES"] = "1"
    return in_process(environ)


@pytest.fixture(scope="module")
def default(fixture_server):
    return client_for(fixture_server.url, trusted=False)


@pytest.fixture(scope="module")
def trusted(fixture_server):
    return client_for(fixture_server.url, trusted=True)


def request_headers(client, headers: dict[str, str], path: str = "/") -> dict[str, str]:
    response = client.open(path, headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    response.get_data()
    response.close()
    assert response.status_code == 200
    return echoed(response)["headers"]


# (using the default configuration values) and (using the non-trusted configuration values)

def test_forwarded_path_added_if_not_present(default):
    assert request_headers(default, {"Host": "headers-inspect.test"})["x-forwarded-path"] == "/"


def test_forwarded_path_replaced_if_present(default):
    headers = request_headers(default, {"Host": "headers-inspect.test",
                                        "X-Forwarded-Path": "/replaced"})
    assert headers["x-forwarded-path"] == "/"


def test_forwarded_prefix_added_if_path_was_stripped(default):
    assert request_headers(default, {}, "/foo/status/200")["x-forwarded-prefix"] == "/foo"


def test_forwarded_prefix_replaced_if_present_and_path_was_stripped(default):
    headers = request_headers(default, {"X-Forwarded-Prefix": "/replaced"}, "/foo")
    assert headers["x-forwarded-prefix"] == "/foo"


def test_forwarded_prefix_not_added_if_path_was_not_stripped(default):
    assert "x-forwarded-prefix" not in request_headers(default, {}, "/status/200")


def test_forwarded_prefix_not_added_if_slash_was_stripped(default):
    assert "x-forwarded-prefix" not in request_headers(default, {}, "/")


@pytest.mark.parametrize("host", ["preserved.test", "headers-inspect.test"])
def test_forwarded_path_with_the_downstream_host_preserved_or_discarded(default, host):
    headers = request_headers(default, {"Host": host, "X-Forwarded-Path": "/x"})
    assert headers["x-forwarded-path"] == "/"


def test_non_trusted_forwarded_prefix_is_dropped_when_nothing_was_stripped(default):
    headers = request_headers(default, {"X-Forwarded-Prefix": "/preserved"}, "/status/200")
    assert "x-forwarded-prefix" not in headers


# (using the trusted configuration values)

def test_trusted_forwarded_path_added_if_not_present(trusted):
    assert request_headers(trusted, {"Host": "headers-inspect.test"})["x-forwarded-path"] == "/"


def test_trusted_forwarded_path_forwarded_if_present(trusted):
    headers = request_headers(trusted, {"Host": "headers-inspect.test",
                                        "X-Forwarded-Path": "/original-path"})
    assert headers["x-forwarded-path"] == "/original-path"


@pytest.mark.parametrize("path", ["/foo/status/200", "/status/200"])
def test_trusted_forwarded_prefix_preserved_even_if_path_was_stripped(trusted, path):
    headers = request_headers(trusted, {"X-Forwarded-Prefix": "/preserved"}, path)
    assert headers["x-forwarded-prefix"] == "/preserved"


# X-Real-IP, X-Forwarded-For/-Proto/-Host/-Port: (using the default configuration values)
# and (using the non-trusted configuration values) are the same facts.

@pytest.mark.parametrize(("sent", "name", "expected"), [
    ({}, "x-real-ip", "127.0.0.1"),
    ({"X-Real-IP": "10.0.0.1"}, "x-real-ip", "127.0.0.1"),
    ({}, "x-forwarded-for", "127.0.0.1"),
    ({"X-Forwarded-For": "10.0.0.1"}, "x-forwarded-for", "10.0.0.1, 127.0.0.1"),
    ({}, "x-forwarded-proto", "http"),
    ({"X-Forwarded-Proto": "https"}, "x-forwarded-proto", "http"),
    ({}, "x-forwarded-host", "headers-inspect.test"),
    ({"X-Forwarded-Host": "example.test"}, "x-forwarded-host", "headers-inspect.test"),
    ({}, "x-forwarded-port", "80"),
    ({"X-Forwarded-Port": "8443"}, "x-forwarded-port", "80"),
])
def test_forwarding_header_added_or_replaced(default, sent, name, expected):
    headers = request_headers(default, {"Host": "headers-inspect.test", **sent})
    assert headers[name] == expected


# (using the trusted configuration values): what the trusted hop in front said is kept.

@pytest.mark.parametrize(("sent", "name", "expected"), [
    ({}, "x-real-ip", "127.0.0.1"),
    ({}, "x-forwarded-for", "127.0.0.1"),
    ({"X-Forwarded-For": "10.0.0.1"}, "x-forwarded-for", "10.0.0.1, 127.0.0.1"),
    ({}, "x-forwarded-proto", "http"),
    ({"X-Forwarded-Proto": "https"}, "x-forwarded-proto", "https"),
    ({}, "x-forwarded-host", "headers-inspect.test"),
    ({"X-Forwarded-Host": "example.test"}, "x-forwarded-host", "example.test"),
    ({}, "x-forwarded-port", "80"),
    ({"X-Forwarded-Port": "8443"}, "x-forwarded-port", "8443"),
])
def test_trusted_forwarding_header_added_or_forwarded(trusted, sent, name, expected):
    headers = request_headers(trusted, {"Host": "headers-inspect.test", **sent})
    assert headers[name] == expected
