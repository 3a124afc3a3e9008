"""Location, Content-Location and Refresh rewriting (nginx's proxy_redirect default)."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import Headers

from gateway.proxy.redirects import RedirectRewriter

TARGETS = ["http://10.0.0.5:8080/base", "http://other"]
CLIENT = {"wsgi.url_scheme": "https", "HTTP_HOST": "api.example.com"}


def rewritten(name: str, value: str, environ: dict = CLIENT) -> str:
    headers = Headers([(name, value)])
    RedirectRewriter(TARGETS).rewrite(headers, environ, TARGETS[0])
    return headers[name]


@pytest.mark.parametrize("upstream, client", [
    ("http://10.0.0.5:8080/base/x?y=1#f", "https://api.example.com/x?y=1#f"),
    ("http://10.0.0.5:8080/base", "https://api.example.com/"),
    ("HTTP://10.0.0.5:8080/base/", "https://api.example.com/"),
    ("//10.0.0.5:8080/base/x", "https://api.example.com/x"),
    ("http://other:80/a", "https://api.example.com/a"),
    ("/base/x?q=1", "/x?q=1"),
])
@pytest.mark.parametrize("name", ["Location", "Content-Location"])
def test_urls_at_a_target_become_the_clients(name, upstream, client):
    assert rewritten(name, upstream) == client


@pytest.mark.parametrize("value", [
    "http://10.0.0.5:8080/basement", "http://10.0.0.5:8080/x", "http://10.0.0.5:9999/base/x",
    "https://10.0.0.5:8080/base/x", "http://elsewhere/base/x", "/x", "x/y", "mailto:a@b",
    "http://[::1/x",
])
def test_other_urls_pass_unchanged(value):
    assert rewritten("Location", value) == value


@pytest.mark.parametrize("upstream, client", [
    ("5; url=http://10.0.0.5:8080/base/x", "5; url=https://api.example.com/x"),
    ("0;URL='http://other/a'", "0;URL='https://api.example.com/a'"),
    ("3", "3"),
])
def test_refresh_urls_are_rewritten_after_the_delay(upstream, client):
    assert rewritten("Refresh", upstream) == client


def test_without_a_host_header_the_server_name_and_port_are_used():
    environ = {"wsgi.url_scheme": "http", "SERVER_NAME": "gw", "SERVER_PORT": "8000"}
    assert rewritten("Location", "http://other/a", environ) == "http://gw:8000/a"
