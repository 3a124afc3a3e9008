"""Kong's spec/02-integration/05-proxy/08-uri_encoding_spec.lua (Kong 3.10), case by case:
what the router and the upstream-path builder do to escapes in the path and the query.

The mock upstream's ``url`` and ``uri_args`` are read here from the fixture server's
echoed raw ``target``.

Skipped cases and why (spec case: reason):

- none; the routes' host ``mock_upstream`` is ``mock-upstream`` here, as in
  tests/kong/test_router.py (the loader refuses ``_`` in a host; another change's).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.kong.routes import echoed, kong, send

HOST = {"Host": "mock-upstream"}


@pytest.fixture(scope="module")
def client(fixture_server):
    return kong(fixture_server.url, [
        {"hosts": ["mock-upstream"]},
        {"hosts": ["mock-upstream"]},
        {"protocols": ["http"], "paths": ["/request"], "strip_path": False},
        {"protocols": ["http"], "paths": ["/stripped-path"], "strip_path": True},
    ])


def target_of(client, path: str, headers: dict[str, str] | None = None) -> str:
    response = send(client, path, headers=headers)
    assert response.status_code == 200
    return echoed(response)["target"]


def test_issue_1975_does_not_double_percent_encode_proxied_args(client):
    target = target_of(client, "/get?limit=25&where=%7B%22or%22:%5B%7B%22name%22:%7B%22like%22"
                               ":%22%25bac%25%22%7D%7D%5D%7D", HOST)
    args = parse_qs(urlsplit(target).query)
    assert args["limit"] == ["25"]
    assert args["where"] == ['{"or":[{"name":{"like":"%bac%"}}]}']


def test_issue_1480_does_not_percent_encode_args_unnecessarily(client):
    assert target_of(client, "/request?param=1.2.3", HOST) == "/request?param=1.2.3"


def test_issue_749_does_not_decode_percent_encoded_args(client):
    assert target_of(client, "/request?param=abc%7Cdef", HOST) == "/request?param=abc%7Cdef"


def test_issue_688_does_not_percent_decode_proxied_urls(client):
    assert target_of(client, "/request/foo%2Fbar", HOST) == "/request/foo%2Fbar"


@pytest.mark.parametrize(("path", "headers"), [
    ("/request/auth%2F123", HOST),  # hosts matching
    ("/request/auth%2F123", None),  # paths matching
    ("/stripped-path/request/auth%2F123", None),  # paths matching + strip_path
])
def test_issue_2512_does_not_double_percent_encode_upstream_urls(client, path, headers):
    assert "/request/auth%2F123" in target_of(client, path, headers)
