"""Kong's ip-restriction access spec (spec/03-plugins/17-ip-restriction/02-access_spec.lua)
and schema spec (01-schema_spec.lua), case by case, through a declarative file.

The spec's client address comes from X-Forwarded-For, which Kong trusts there
(`trusted_ips` 0.0.0.0/0); here the same trust is GATEWAY_TRUSTED_PROXIES=1, and
the connection's own peer is set in the WSGI environ.

Skipped, and why:

| spec case | why |
|---|---|
| every `#grpc` and `#tcp` case | no gRPC or stream proxying in this gateway |
| "dynamic updates" (Admin API PATCH of the plugin) | no Admin API; a reload builds new filters |

With `real_ip_recursive` and every address trusted, Kong takes the left-most address of
a complex X-Forwarded-For; the gateway trusts a fixed number of hops and takes the Nth
address from the right: the spec's complex (two-address) cases are translated with
GATEWAY_TRUSTED_PROXIES=2. The IPv6 describe's X-Real-IP (from a trusted proxy) is the
trusted hop's X-Forwarded-For here. The schema spec's positions of a bad entry
(`allow[3]`) are not in our words: the entry itself is named.
"""

from __future__ import annotations

import pytest

from gateway.config import ConfigError
from tests.kong.plugin_kit import kong_client, send


def kong_yml(upstream: str) -> str:
    routes = {
        "ip-restriction1.test": "{deny: [127.0.0.1, 127.0.0.2]}",
        "ip-restriction2.test": "{deny: [127.0.0.2]}",
        "ip-restriction3.test": "{allow: [127.0.0.2]}",
        "ip-restriction4.test": "{allow: [127.0.0.1]}",
        "ip-restriction5.test": "{deny: [127.0.0.0/24]}",
        "ip-restriction6.test": "{allow: [127.0.0.4]}",
        "ip-restriction7.test": "{deny: [127.0.0.4]}",
        "ip-restriction8.test": "{allow: [0.0.0.0/0]}",
        "ip-restriction9.test": "{allow: [127.0.0.1], deny: [127.0.0.1]}",
        "ip-restriction10.test": "{allow: [127.0.0.0/24], deny: [127.0.0.1]}",
        "ip-restriction11.test": "{allow: [127.0.0.0/24], deny: [127.0.0.0/24]}",
        "ip-restriction12.test": "{deny: [127.0.0.0/24], status: 401, message: Forbidden}",
        "ip-restriction-v6.test": "{allow: ['::1', '2001:db8::/32']}",
    }
    lines = ['_format_version: "3.0"', "services:", "- name: mock",
             f"  url: {upstream}/anything", "  routes:"]
    for number, (host, config) in enumerate(routes.items()):
        lines.append(f"  - {{name: r{number}, hosts: [{host}], plugins: "
                     f"[{{name: ip-restriction, config: {config}}}]}}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def client(httpbin):
    return kong_client(kong_yml(httpbin), GATEWAY_TRUSTED_PROXIES="1")


def request(client, host: str, client_ip: str | None = "127.0.0.1",
            forwarded: str | None = None):
    """A request from ``client_ip`` (the X-Forwarded-For the trusted hop sends; None: the
    hop sends none, so the client is the hop itself, 10.0.0.1)."""
    headers = {"X-Forwarded-For": forwarded or client_ip} if forwarded or client_ip else {}
    return send(client, "GET", "/status/200", host, headers,
                environ_overrides={"REMOTE_ADDR": "10.0.0.1"})


@pytest.mark.parametrize("host, client_ip, status", [
    ("ip-restriction1.test", "127.0.0.1", 403),  # blocks a request when the IP is denied
    ("ip-restriction2.test", "127.0.0.1", 200),  # allows a request when the IP is not denied
    ("ip-restriction5.test", "127.0.0.1", 403),  # blocks IP with CIDR
    ("ip-restriction3.test", "127.0.0.1", 403),  # blocks an IP not allowed
    ("ip-restriction4.test", "127.0.0.1", 200),  # allows an allowed IP
    ("ip-restriction8.test", "127.0.0.1", 200),  # allows 0.0.0.0/0
    ("ip-restriction9.test", "127.0.0.1", 403),  # deny takes precedence over an allowed IP
    ("ip-restriction10.test", "127.0.0.1", 403),  # ... over an allowed CIDR range
    ("ip-restriction11.test", "127.0.0.1", 403),  # ... a denied CIDR inside an allowed one
    ("ip-restriction6.test", "127.0.0.4", 200),  # allows with allowed X-Forwarded-For
    ("ip-restriction6.test", "127.0.0.3", 403),  # blocks with not allowed X-Forwarded-For
    ("ip-restriction7.test", "127.0.0.3", 200),  # allows with not denied X-Forwarded-For
    ("ip-restriction7.test", "127.0.0.4", 403),  # blocks with denied X-Forwarded-For
    ("ip-restriction-v6.test", "::1", 200),
    ("ip-restriction-v6.test", "2001:db8::42", 200),
    ("ip-restriction-v6.test", "2001:db9::1", 403),
    ("ip-restriction-v6.test", "127.0.0.1", 403),
])
def test_allow_and_deny(client, host, client_ip, status):
    response = request(client, host, client_ip)
    assert response.status_code == status
    if status == 403:
        assert response.json["message"] == f"IP address not allowed: {client_ip}"


@pytest.mark.parametrize("host, status", [
    ("ip-restriction7.test", 200),  # allows without any X-Forwarded-For and allowed IP
    ("ip-restriction6.test", 403),  # blocks without any X-Forwarded-For and not allowed IP
])
def test_without_any_x_forwarded_for_the_peer_decides(client, host, status):
    response = request(client, host, client_ip=None)
    assert response.status_code == status
    if status == 403:
        assert response.json["message"] == "IP address not allowed: 10.0.0.1"


#: The IPv6 describe's routes: host -> config (the spec's ip-restriction1..9 there).
IPV6_ROUTES = {
    "v6-1.test": "{deny: ['::1', '::2']}",
    "v6-2.test": "{deny: ['::2']}",
    "v6-3.test": "{deny: ['fe80::/8']}",
    "v6-4.test": "{allow: ['::2']}",
    "v6-5.test": "{allow: ['::1']}",
    "v6-6.test": "{allow: ['::/0']}",
    "v6-7.test": "{allow: ['::1'], deny: ['::1']}",
    "v6-8.test": "{allow: ['::1/128'], deny: ['::1']}",
    "v6-9.test": "{allow: ['::1/128'], deny: ['::1/128']}",
    # the IPv6 X-Forwarded-For describe's two routes
    "v6-xff-deny.test": "{deny: ['::4']}",
    "v6-xff-allow.test": "{allow: ['::4']}",
}


def v6_yml(upstream: str) -> str:
    lines = ['_format_version: "3.0"', "services:", "- name: mock",
             f"  url: {upstream}/anything", "  routes:"]
    for number, (host, config) in enumerate(IPV6_ROUTES.items()):
        lines.append(f"  - {{name: r{number}, hosts: [{host}], plugins: "
                     f"[{{name: ip-restriction, config: {config}}}]}}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def client_v6(httpbin):
    return kong_client(v6_yml(httpbin), GATEWAY_TRUSTED_PROXIES="1")


@pytest.mark.parametrize("host, client_ip, status", [
    ("v6-1.test", "::1", 403),  # blocks a request when the IPv6 is denied
    ("v6-2.test", "::1", 200),  # allows a request when the IPv6 is not denied
    ("v6-3.test", "fe80::1", 403),  # blocks the IPv6 with CIDR
    ("v6-8.test", "::1", 403),  # blocks an IPv6 on an allowed IPv6 CIDR range
    ("v6-7.test", "::1", 403),  # takes precedence over an allowed IPv6
    ("v6-9.test", "127.0.0.1", 403),  # takes precedence over an allowed IPv6 CIDR range
    ("v6-4.test", "::1", 403),  # blocks a request when the IPv6 is not allowed
    ("v6-5.test", "::1", 200),  # allows an allowed IPv6
    ("v6-6.test", "::1", 200),  # regression: handles a CIDR entry with ::/0
    ("v6-xff-deny.test", "::3", 200),  # deny: allows with allowed X-Forwarded-For
    ("v6-xff-deny.test", "::4", 403),  # deny: blocks with not allowed X-Forwarded-For
    ("v6-xff-allow.test", "::3", 403),  # allow: blocks with not allowed X-Forwarded-For
    ("v6-xff-allow.test", "::4", 200),  # allow: allows with allowed X-Forwarded-For
])
def test_ipv6_allow_and_deny(client_v6, host, client_ip, status):
    response = request(client_v6, host, client_ip)
    assert response.status_code == status
    if status == 403:
        assert response.json["message"] == f"IP address not allowed: {client_ip}"


@pytest.mark.parametrize("host, forwarded, status", [
    # allow: allows with allowed complex X-Forwarded-For header
    ("ip-restriction6.test", "127.0.0.4, 127.0.0.3", 200),
    ("v6-xff-deny.test", "::4, ::3", 403),  # deny: blocks with blocked complex X-F-F
    ("v6-xff-deny.test", "::3, ::4", 200),  # deny: allows with allowed complex X-F-F
    ("v6-xff-allow.test", "::4, ::3", 200),  # allow: allows with allowed complex X-F-F
    ("v6-xff-allow.test", "::3, ::4", 403),  # allow: blocks with blocked complex X-F-F
])
def test_complex_x_forwarded_for_with_every_hop_trusted(httpbin, host, forwarded, status):
    routes = kong_yml(httpbin) if host.startswith("ip-") else v6_yml(httpbin)
    client = kong_client(routes, GATEWAY_TRUSTED_PROXIES="2")
    response = request(client, host, forwarded=forwarded)
    assert response.status_code == status
    if status == 403:
        assert response.json["message"] == f"IP address not allowed: {forwarded.split(',')[0]}"


def test_denied_with_the_configured_status_and_message(client):
    response = request(client, "ip-restriction12.test")
    assert response.status_code == 401
    assert response.json["message"] == "Forbidden"


def test_the_last_trusted_hop_decides_not_the_first_forwarded_address(client):
    # Only one hop is trusted: the client's own claim (the left-most address) is ignored.
    response = request(client, "ip-restriction6.test", forwarded="127.0.0.4, 127.0.0.3")
    assert response.status_code == 403
    assert response.json["message"] == "IP address not allowed: 127.0.0.3"


def test_without_trusted_proxies_x_forwarded_for_is_ignored(httpbin):
    client = kong_client(kong_yml(httpbin))  # GATEWAY_TRUSTED_PROXIES=0
    response = request(client, "ip-restriction6.test", forwarded="127.0.0.4")
    assert response.status_code == 403
    assert response.json["message"] == "IP address not allowed: 10.0.0.1"


def plugin_file(upstream: str, config: str) -> str:
    return f"""
_format_version: "3.0"
services: [{{name: mock, url: "{upstream}/anything", routes: [{{name: r, paths: [/]}}]}}]
plugins: [{{name: ip-restriction, config: {config}}}]
"""


@pytest.mark.parametrize("config", [
    "{allow: [127.0.0.1/32, 127.0.0.2/32]}",  # a valid allow
    "{allow: [127.0.0.1/32, 127.0.0.2/32], status: 403, message: Forbidden}",
    "{allow: [127.0.0.1/8]}",  # a valid cidr range
    "{deny: [127.0.0.1/32, 127.0.0.2/32]}",  # a valid deny
    "{deny: [127.0.0.2/32], allow: [127.0.0.1/32]}",  # both non-empty allow and deny
    "{allow: ['::/0', '::/1', '::/128']}",  # valid ipv6 cidr ranges
])
def test_schema_accepts(httpbin, config):
    kong_client(plugin_file(httpbin, config))


@pytest.mark.parametrize("config, errors", [
    ("{}", ["at least one of these fields must be non-empty: 'config.allow', 'config.deny'"]),
    ("{deny: [], allow: []}",
     ["at least one of these fields must be non-empty: 'config.allow', 'config.deny'"]),
    ("{allow: 12}", ["config.allow: expected an array"]),
    ("{deny: 12}", ["config.deny: expected an array"]),
    ("{allow: [hello]}", ["invalid ip or cidr range: 'hello'"]),
    ("{allow: [127.0.0.1/32, 127.0.0.2/32, hello]}",  # Kong's err.config.allow[3] (from 1)
     ["config.allow[2]: invalid ip or cidr range: 'hello'"]),
    ("{deny: [hello]}", ["invalid ip or cidr range: 'hello'"]),
    ("{deny: [127.0.0.1/32, 127.0.0.2/32, hello]}",
     ["config.deny[2]: invalid ip or cidr range: 'hello'"]),
    ("{allow: [127.0.0.1/33]}", ["invalid ip or cidr range: '127.0.0.1/33'"]),
    ("{deny: [not-an-ip]}", ["invalid ip or cidr range: 'not-an-ip'"]),
    # every bad entry is named, as in Kong
    ("{allow: [0.0.0.0/a, 0.0.0.0/-1, 0.0.0.0/33]}",
     [f"invalid ip or cidr range: '{entry}'" for entry in ("0.0.0.0/a", "0.0.0.0/-1",
                                                           "0.0.0.0/33")]),
    ("{allow: ['::/a', '::/-1', '::/129', '::1/a', '::1/-1', '::1/129']}",
     [f"invalid ip or cidr range: '{entry}'" for entry in ("::/a", "::/-1", "::/129", "::1/a",
                                                           "::1/-1", "::1/129")]),
])
def test_schema_refusals(httpbin, config, errors):
    with pytest.raises(ConfigError) as refused:
        kong_client(plugin_file(httpbin, config))
    assert "plugins[ip-restriction].config" in str(refused.value)
    assert [error for error in errors if error not in str(refused.value)] == []
