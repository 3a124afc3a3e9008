"""Kong's path normalisation and escaping (Kong's spec/01-unit/18-tools_uri_spec.lua, the
cases with merge_slashes as the router calls it), and the climb-out check."""

from __future__ import annotations

import pytest

from gateway.proxy.uri import climbs_out, escape, needs_normalizing, normalize


@pytest.mark.parametrize(("given", "expected"), [
    # no normalization necessary
    ("/", "/"), ("/a", "/a"), ("/a/", "/a/"), ("/a/b/c", "/a/b/c"), ("/a/b/c/", "/a/b/c/"),
    # reserved characters stay escaped, upper-cased
    ("/a%2Fb%2Fc/", "/a%2Fb%2Fc/"), ("/a%2fb%2fc/", "/a%2Fb%2Fc/"),
    ("/%20%21%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D",
     "/ %21%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D"),
    # unreserved characters decoded
    ("/f%6f%6f", "/foo"), ("/%6B%6f%6e%67", "/kong"), ("/%2E", "/"),
    # dot segments, merged slashes
    ("/./", "/"), ("/.", "/"), ("/..", "/"), ("/../", "/"), ("/./.././../", "/"),
    ("/a/b/c/./../../g", "/a/g"), ("//", "/"), ("/////", "/"), ("/a//b//", "/a/b/"),
    # the router spec's requests
    ("/foo/a/../bar", "/foo/bar"), ("/foo//bar", "/foo/bar"), ("/foo/./bar", "/foo/bar"),
    ("/anything/./a/../wor%6cd/a/../b", "/anything/world/b"),
    # issue 17's escape: %2E is a dot, decoded before the strip
    ("/route%2E%2E/req", "/route../req"), ("/route%2e/req", "/route./req"),
    ("/route/%2e%2E/x", "/x"), ("/a/%2e%2e/%2E%2E/../x", "/x"),
    # a path never climbs above the root
    ("/../../etc/passwd", "/etc/passwd"),
    # ... and "..." or "a.." are no dot segments
    ("/.../a../..b", "/.../a../..b"),
])
def test_normalize(given, expected):
    assert normalize(given) == expected


def test_normalize_decodes_non_ascii_bytes_and_escape_restores_them():
    # Kong: "/endel%C3%B8st" -> "/endeløst" (bytes), escaped back to the same escapes.
    assert normalize("/endel%C3%B8st").encode("latin-1") == "/endeløst".encode()
    assert escape(normalize("/endel%C3%B8st")) == "/endel%C3%B8st"
    complex_ = "/%C3%A4/a/%2e./a%2E//a/%2e/./a/../a/%2e%2E/%5f%99%af%2f%2F"
    assert normalize(complex_).encode("latin-1") == "/ä/a./a/_".encode() + b"\x99\xaf%2F%2F"


@pytest.mark.parametrize(("given", "expected"), [
    ("/!#$%&'()*+,/:;=?@[]ABCXYZabcxyz0123456789-_.~",
     "/!#$%&'()*+,/:;=?@[]ABCXYZabcxyz0123456789-_.~"),
    ("/a b/c d", "/a%20b/c%20d"),
    ("/a😀", "/a%F0%9F%98%80"),
    ('/a"<>\\^`{|}', "/a%22%3C%3E%5C%5E%60%7B%7C%7D"),
    ("/a\r\nX: y", "/a%0D%0AX:%20y"),
])
def test_escape(given, expected):
    assert escape(given) == expected


@pytest.mark.parametrize(("path", "slow"), [
    ("/orders/42", False), ("/a.b/c.", False), ("/route../x", False),
    ("/a%20b", True), ("/a//b", True), ("/a/./b", True), ("/a/..", True), ("/a\\b", True),
])
def test_needs_normalizing_is_false_only_where_normalize_changes_nothing(path, slow):
    assert needs_normalizing(path) is slow
    if not slow:
        assert normalize(path) == path


@pytest.mark.parametrize(("part", "out"), [
    ("/a%2F..%2Fb", False),  # stays under its start
    ("/a%2F..%2F..%2Fb", True),
    ("%2F..%2Fetc", True),
    ("..%2Fetc", True),
    ("/..%2F", True),
    ("/a%2F%2F..%2F..%2Fb", True),  # empty segments count for nothing (slashes merged)
    ("/%5C..%5Cx", True), ("/\\..\\x", True),  # a backslash, as a Windows server reads it
    ("/a%2F.%2Fb", False), ("/a%252F..%252F..", False),  # one decoding only, as upstreams
    ("/..b%2Fc", False), ("/x", False), ("", False),
])
def test_climbs_out(part, out):
    assert climbs_out(part) is out
