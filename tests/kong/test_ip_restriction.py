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
| `real_ip_recursive` variants | ProxyFix takes the Nth address from the right (fixed hops) |
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


def request(client, host: str, client_ip: str = "127.0.0.1", forwarded: str | None = None):
    """A request from ``client_ip`` (the X-Forwarded-For the trusted hop sends)."""
    headers = {"X-Forwarded-For": forwarded or client_ip}
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


@pytest.mark.parametrize("config, error", [
    ("{}", "at least one of these fields must be non-empty: 'config.allow', 'config.deny'"),
    ("{allow: [127.0.0.1/33]}", "invalid ip or cidr range: '127.0.0.1/33'"),
    ("{deny: [not-an-ip]}", "invalid ip or cidr range: 'not-an-ip'"),
])
def test_schema_refusals(httpbin, config, error):
    with pytest.raises(ConfigError) as refused:
        kong_client(f"""
_format_version: "3.0"
services: [{{name: mock, url: "{httpbin}/anything", routes: [{{name: r, paths: [/]}}]}}]
plugins: [{{name: ip-restriction, config: {config}}}]
""")
    assert "plugins[ip-restriction].config" in str(refused.value) and error in str(refused.value)
