"""Kong's spec/02-integration/05-proxy/14-server_tokens_spec.lua (Kong 3.10), the cases of
its default configuration that hold here, translated as facts.

Kong's ``Via: 1.1 kong/<version>`` is ``Via: 1.1 gateway`` here, and its
``X-Kong-Proxy-Latency`` / ``X-Kong-Upstream-Latency`` are ``X-Gateway-Proxy-Latency`` /
``X-Gateway-Upstream-Latency`` (docs/request-flow.md): the names differ on purpose, the
facts (which response carries which header) are tested.

Skipped cases and why (spec case: reason):

- every ``headers = ...`` configuration (Via, Server, server_tokens, latency_tokens, off,
  their mixes, case insensitiveness, set from a configuration file): Kong's ``headers``
  setting is not implemented; the headers here are always sent.
- Server/Via, no API matched (Kong: its Server header, no Via), and latency headers, no
  API matched or short-circuited (Kong: X-Kong-Response-Latency only): a difference;
  the gateway's own answers carry Via and X-Gateway-Proxy-Latency, no Server of its own.
- short-circuited with a matching Via (a spec-only plugin sets Server and Via).
- error_page and plugin errors on rewrite/access (spec-only plugins and nginx error_page).
- Admin API: no Admin API.
"""

from __future__ import annotations

from tests.kong.routes import kong, send


def test_via_returned_and_server_unchanged_when_proxied(httpbin):
    client = kong(httpbin, [{"hosts": ["headers-inspect.test"]}])
    response = send(client, "/get", headers={"Host": "headers-inspect.test"})
    assert response.status_code == 200
    assert response.headers["Via"] == "1.1 gateway"
    assert response.headers["Server"] == "gunicorn"  # httpbin's own, not replaced


def test_latency_headers_returned_when_proxied(httpbin):
    client = kong(httpbin, [{"hosts": ["headers-inspect.test"]}])
    response = send(client, "/get", headers={"Host": "headers-inspect.test"})
    assert response.status_code == 200
    assert int(response.headers["X-Gateway-Upstream-Latency"]) >= 0
    assert int(response.headers["X-Gateway-Proxy-Latency"]) >= 0
