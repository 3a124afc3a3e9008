"""Header rules: hop-by-hop removal, forwarding headers, value safety, request ids."""

from __future__ import annotations

from werkzeug.datastructures import Headers

from gateway.proxy.headers import (
    add_forwarding,
    is_safe_value,
    is_valid_request_id,
    request_headers,
    response_headers,
)


def test_request_headers_drop_hop_by_hop_and_connection_listed():
    environ = {"HTTP_CONNECTION": "keep-alive, X-Private", "HTTP_X_PRIVATE": "1",
               "HTTP_KEEP_ALIVE": "5", "HTTP_TE": "trailers", "HTTP_TRANSFER_ENCODING": "chunked",
               "HTTP_UPGRADE": "h2c", "HTTP_PROXY_AUTHORIZATION": "x", "HTTP_TRAILER": "X",
               "HTTP_ACCEPT": "*/*", "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "3",
               "REQUEST_METHOD": "GET"}
    headers = request_headers(environ)
    assert sorted(headers.keys()) == ["Accept", "Content-Length", "Content-Type"]


def test_response_headers_keep_repeats_and_drop_hop_by_hop():
    items = [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Connection", "close, X-Hop"),
             ("X-Hop", "1"), ("Transfer-Encoding", "chunked"), ("Proxy-Authenticate", "x"),
             ("Content-Type", "text/plain")]
    headers = response_headers(items, "close, X-Hop")
    assert headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert list(headers.keys()) == ["Set-Cookie", "Set-Cookie", "Content-Type"]


def test_forwarding_appends_peer_and_uses_proxyfix_view():
    headers = Headers([("X-Forwarded-For", "1.1.1.1"), ("Via", "1.0 edge")])
    environ = {"REMOTE_ADDR": "1.1.1.1", "wsgi.url_scheme": "https", "HTTP_HOST": "api.example",
               "SERVER_NAME": "localhost", "SERVER_PORT": "443",
               "werkzeug.proxy_fix.orig": {"REMOTE_ADDR": "10.0.0.2"}}
    add_forwarding(headers, environ)
    assert headers["X-Forwarded-For"] == "1.1.1.1, 10.0.0.2"
    assert headers["X-Real-IP"] == "1.1.1.1"
    assert (headers["X-Forwarded-Proto"], headers["X-Forwarded-Host"]) == ("https", "api.example")
    assert headers["X-Forwarded-Port"] == "443"
    assert headers["Via"] == "1.0 edge, 1.1 gateway"


def _forwarded(client: dict[str, str], trusted: bool, path: str, prefix: str | None) -> Headers:
    environ = {"REMOTE_ADDR": "10.0.0.2", "wsgi.url_scheme": "http", "HTTP_HOST": "h",
               "SERVER_NAME": "h", "SERVER_PORT": "80",
               **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in client.items()}}
    if trusted:
        environ["werkzeug.proxy_fix.orig"] = {"REMOTE_ADDR": "10.0.0.2"}
    headers = request_headers(environ)
    add_forwarding(headers, environ, None, path, prefix)
    return headers


def test_forwarded_path_and_prefix_as_kong_sets_them():
    # Kong's handler.lua: the client's path as sent, the prefix strip_path removed.
    headers = _forwarded({}, False, "/route%2E%2E/req", "/route")
    assert headers["X-Forwarded-Path"] == "/route%2E%2E/req"
    assert headers["X-Forwarded-Prefix"] == "/route"
    # An untrusted client's values are replaced, its prefix dropped when nothing was stripped.
    forged = {"X-Forwarded-Path": "/admin", "X-Forwarded-Prefix": "/admin"}
    headers = _forwarded(forged, False, "/x", None)
    assert headers.getlist("X-Forwarded-Path") == ["/x"]
    assert "X-Forwarded-Prefix" not in headers
    assert _forwarded(forged, False, "/x", "/p").getlist("X-Forwarded-Prefix") == ["/p"]
    # A trusted hop's own are kept (Kong: trusted_ips).
    headers = _forwarded(forged, True, "/x", "/p")
    assert (headers["X-Forwarded-Path"], headers["X-Forwarded-Prefix"]) == ("/admin", "/admin")
    headers = _forwarded({}, True, "/x", None)
    assert headers["X-Forwarded-Path"] == "/x" and "X-Forwarded-Prefix" not in headers


def test_header_value_safety():
    assert is_safe_value("http://example.com/anything?a=1\tb")
    assert is_safe_value("caf\u00e9")
    for bad in ("a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\x00b", "a\x7fb", "a\x1bb"):
        assert not is_safe_value(bad)


def test_request_id_rules():
    assert is_valid_request_id("0f1e2d3c-aaaa-bbbb")
    assert not is_valid_request_id("")
    assert not is_valid_request_id("has space")
    assert not is_valid_request_id("x" * 201)


def test_checked_headers_behave_as_werkzeugs_own():
    from werkzeug.datastructures import Headers

    from gateway.proxy.headers import checked_headers

    pairs = [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    checked = checked_headers(list(pairs))
    assert checked == Headers(pairs)
    assert checked.getlist("set-cookie") == ["a=1", "b=2"]
    checked.set("Content-Type", "application/json")
    checked.add("X-New", "1")
    assert checked.to_wsgi_list() == [("Content-Type", "application/json"),
                                      ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                      ("X-New", "1")]
    copied = checked.copy()
    copied.remove("X-New")
    assert "X-New" in checked and "X-New" not in copied


def test_new_request_ids_are_random_version_4_uuids() -> None:
    import uuid

    from gateway.proxy.headers import is_valid_request_id, new_request_id

    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)
        assert is_valid_request_id(text)
