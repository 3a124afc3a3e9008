"""proxy-cache in-process: Kong's X-Cache-Status/Age/X-Cache-Key, what is cached, cache_control."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest
from werkzeug.test import Client

from gateway.config import ConfigError, load
from gateway.filters.proxy_cache import Entry, ProxyCacheConfig, media_type_allowed
from tests.support.app import in_process
from tests.support.fixture_server import closed_port_url


def client(upstream, **env: str) -> Client:
    environ = {"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "proxy-cache", **env}
    return in_process(environ, use_cookies=False)


def fetch(c: Client, target: str, method: str = "GET", **kwargs):
    """One request, body read whole (so the response is stored) and closed."""
    response = c.open(target, method=method, **kwargs)
    response.get_data()
    response.close()
    return response


def statuses(c: Client, target: str, times: int = 2, **kwargs) -> list[str]:
    return [fetch(c, target, **kwargs).headers["X-Cache-Status"] for _ in range(times)]


def test_miss_then_hit_without_calling_the_upstream(upstream):
    c = client(upstream)
    first = fetch(c, "/respond/a?x=1")
    calls = upstream.hits["/respond/a"]
    second = fetch(c, "/respond/a?x=1")
    assert first.headers["X-Cache-Status"] == "Miss"
    assert second.headers["X-Cache-Status"] == "Hit"
    assert second.data == first.data
    assert second.headers["Content-Type"] == "application/json"
    assert second.headers["Content-Length"] == str(len(first.data))
    assert second.headers["Age"] == "0"
    assert "Age" not in first.headers
    assert second.headers["X-Cache-Key"] == first.headers["X-Cache-Key"]
    assert re.fullmatch("[0-9a-f]{64}", first.headers["X-Cache-Key"])  # SHA-256, as Kong's
    assert upstream.hits["/respond/a"] == calls


def test_the_key_sorts_the_query_and_tells_paths_methods_and_hosts_apart(upstream):
    c = client(upstream)
    key = fetch(c, "/respond/k?b=2&a=1").headers["X-Cache-Key"]
    same = fetch(c, "/respond/k?a=1&b=2")
    assert (same.headers["X-Cache-Key"], same.headers["X-Cache-Status"]) == (key, "Hit")
    others = [fetch(c, "/respond/k?a=1&b=3"), fetch(c, "/respond/K?a=1&b=2"),
              fetch(c, "/respond/k?a=1&b=2", method="HEAD"),
              fetch(c, "/respond/k?a=1&b=2", headers={"Host": "other.example"})]
    assert [r.headers["X-Cache-Status"] for r in others] == ["Miss"] * 4
    assert len({key, *(r.headers["X-Cache-Key"] for r in others)}) == 5


def test_head_hit_keeps_the_announced_length(upstream):
    c = client(upstream)
    length = fetch(c, "/respond/head").headers["Content-Length"]
    assert statuses(c, "/respond/head", method="HEAD") == ["Miss", "Hit"]
    hit = fetch(c, "/respond/head", method="HEAD")
    assert hit.headers["Content-Length"] == length
    assert hit.data == b""


def test_methods_outside_the_list_bypass(upstream):
    c = client(upstream)
    before = upstream.hits["/respond/post"]
    assert statuses(c, "/respond/post", method="POST") == ["Bypass", "Bypass"]
    assert upstream.hits["/respond/post"] == before + 2
    assert "X-Cache-Key" not in fetch(c, "/respond/post", method="POST").headers


def test_statuses_and_content_types_decide_what_is_stored(upstream):
    c = client(upstream)
    assert statuses(c, "/status/404") == ["Miss", "Hit"]
    assert statuses(c, "/status/503") == ["Bypass", "Bypass"]
    assert statuses(c, "/bytes?n=10") == ["Bypass", "Bypass"]  # application/octet-stream
    assert statuses(client(upstream, GATEWAY_CACHE_CONTENT_TYPES="application/*"),
                    "/bytes?n=10") == ["Miss", "Hit"]


def test_responses_with_set_cookie_or_an_unlisted_vary_are_not_stored(upstream):
    c = client(upstream)
    assert statuses(c, "/respond/cookie?Set-Cookie=session%3Dabc") == ["Bypass", "Bypass"]
    assert statuses(c, "/respond/vary?Vary=Accept-Language") == ["Bypass", "Bypass"]


def test_vary_headers_are_part_of_the_key(upstream):
    c = client(upstream, GATEWAY_CACHE_VARY_HEADERS="Accept-Language")
    target = "/respond/lang?Vary=Accept-Language"
    english = fetch(c, target, headers={"Accept-Language": "en"})
    assert statuses(c, target, headers={"Accept-Language": "en"}) == ["Hit", "Hit"]
    french = fetch(c, target, headers={"Accept-Language": "fr"})
    assert french.headers["X-Cache-Status"] == "Miss"
    assert french.data != english.data


def test_a_body_over_the_limit_is_streamed_whole_and_never_stored(upstream):
    c = client(upstream, GATEWAY_CACHE_CONTENT_TYPES="*/*", GATEWAY_CACHE_MAX_BODY="1k")
    big = fetch(c, "/bytes?n=5000&chunked=1")
    assert len(big.data) == 5000
    assert statuses(c, "/bytes?n=5000&chunked=1") == ["Miss", "Miss"]  # unknown length: tried
    assert statuses(c, "/bytes?n=5000") == ["Bypass", "Bypass"]  # Content-Length says too big
    assert statuses(c, "/bytes?n=1024&chunked=1") == ["Miss", "Hit"]


def test_an_entry_past_its_ttl_is_forgotten_unless_storage_ttl_keeps_it(upstream):
    c = client(upstream, GATEWAY_CACHE_TTL="1")
    kept = client(upstream, GATEWAY_CACHE_TTL="1", GATEWAY_CACHE_STORAGE_TTL="3")
    assert statuses(c, "/respond/ttl") == ["Miss", "Hit"]
    assert statuses(kept, "/respond/ttl-kept") == ["Miss", "Hit"]
    time.sleep(1.1)
    assert statuses(c, "/respond/ttl") == ["Miss", "Hit"]  # Kong: stored for cache_ttl
    calls = upstream.hits["/respond/ttl-kept"]
    assert statuses(kept, "/respond/ttl-kept") == ["Refresh", "Hit"]  # Kong's word for expired
    assert upstream.hits["/respond/ttl-kept"] == calls + 1


def test_without_cache_control_the_headers_are_not_consulted(upstream):
    c = client(upstream)
    assert statuses(c, "/respond/cc0?Cache-Control=no-store") == ["Miss", "Hit"]
    assert statuses(c, "/respond/cc0", headers={"Cache-Control": "no-cache"}) == ["Miss", "Hit"]


def test_cache_control_from_the_upstream(upstream):
    c = client(upstream, GATEWAY_CACHE_CONTROL="true")
    for value in ("private, max-age=60", "no-store", "no-cache", "max-age=0", "public"):
        assert statuses(c, f"/respond/up?Cache-Control={value}") == ["Bypass", "Bypass"], value
    assert statuses(c, "/respond/up?Cache-Control=max-age=60") == ["Miss", "Hit"]
    assert statuses(c, "/respond/up?Cache-Control=public,s-maxage=60,max-age=0") == [
        "Miss", "Hit"]
    expires = quote("Fri, 01 Jan 2100 00:00:00 GMT")
    assert statuses(c, f"/respond/up?Expires={expires}") == ["Miss", "Hit"]
    past = quote("Fri, 01 Jan 2010 00:00:00 GMT")
    assert statuses(c, f"/respond/up?Expires={past}") == ["Bypass", "Bypass"]


@pytest.mark.parametrize("header", ["Authorization", "Cookie"])
def test_personal_requests_are_cached_only_when_keyed_by_that_header(upstream, header):
    """Whatever GATEWAY_CACHE_CONTROL says: one user's answer must never reach another."""
    alice, bob = {header: "alice-secret"}, {header: "bob-secret"}
    target = f"/respond/personal-{header}"
    assert statuses(client(upstream), target, headers=alice) == ["Bypass", "Bypass"]
    keyed = client(upstream, GATEWAY_CACHE_VARY_HEADERS=header)
    assert statuses(keyed, target, headers=alice) == ["Miss", "Hit"]
    assert statuses(keyed, target, headers=bob) == ["Miss", "Hit"]


def test_cache_control_from_the_client(upstream):
    c = client(upstream, GATEWAY_CACHE_CONTROL="true")
    target = "/respond/client?Cache-Control=max-age=60"
    for value in ("no-cache", "no-store"):
        assert statuses(c, target, headers={"Cache-Control": value}) == ["Bypass", "Bypass"]
    assert statuses(c, target, headers={"Authorization": "Basic eDp5"}) == ["Bypass", "Bypass"]
    assert statuses(c, target) == ["Miss", "Hit"]
    time.sleep(0.01)
    assert statuses(c, target, headers={"Cache-Control": "max-age=0"}) == ["Refresh", "Refresh"]
    assert statuses(c, target, headers={"Cache-Control": "min-fresh=120"}) == ["Refresh"] * 2
    assert statuses(c, target, headers={"Cache-Control": "max-age=30"}) == ["Hit", "Hit"]


def test_only_if_cached_miss_is_a_504(upstream):
    c = client(upstream, GATEWAY_CACHE_CONTROL="true")
    before = upstream.hits["/respond/oic"]
    response = fetch(c, "/respond/oic", headers={"Cache-Control": "only-if-cached"})
    assert response.status_code == 504
    assert "X-Cache-Status" not in response.headers  # as Kong: nothing was fetched or stored
    assert len(response.headers["X-Cache-Key"]) == 64
    assert upstream.hits["/respond/oic"] == before


def test_only_if_cached_never_calls_the_upstream_for_an_expired_entry(upstream):
    c = client(upstream, GATEWAY_CACHE_CONTROL="true")
    target = "/respond/oic-expired?Cache-Control=max-age=1"
    assert statuses(c, target) == ["Miss", "Hit"]
    time.sleep(1.1)
    before = upstream.hits["/respond/oic-expired"]
    response = fetch(c, target, headers={"Cache-Control": "only-if-cached"})
    assert response.status_code == 504
    assert upstream.hits["/respond/oic-expired"] == before


def test_an_expired_entry_is_served_within_the_clients_max_stale(upstream):
    c = client(upstream, GATEWAY_CACHE_CONTROL="true", GATEWAY_CACHE_STORAGE_TTL="10")
    target = "/respond/stale?Cache-Control=max-age=1"
    assert statuses(c, target) == ["Miss", "Hit"]
    time.sleep(1.1)
    for value in ("max-stale=5", "max-stale"):
        hit = fetch(c, target, headers={"Cache-Control": value})
        assert (hit.headers["X-Cache-Status"], hit.headers["Age"]) == ("Hit", "1"), value
    assert statuses(c, target, headers={"Cache-Control": "max-stale=0"}) == ["Refresh", "Hit"]


def test_redis_down_bypasses_the_cache_and_still_answers(upstream):
    c = client(upstream, GATEWAY_REDIS_URL=closed_port_url().replace("http", "redis"))
    responses = [fetch(c, "/respond/noredis") for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200]
    assert [r.headers["X-Cache-Status"] for r in responses] == ["Bypass", "Bypass"]


def test_entry_round_trip_and_damaged_entries():
    entry = Entry(200, [("Content-Type", "text/plain"), ("X-A", "1\n2")], b"\n body \n", 5.5, 60)
    assert Entry.decode(entry.encode()) == entry
    assert Entry.decode(b"not json\nbody") is None
    assert Entry.decode(b'[99,200,1,1,[]]\n') is None  # another version


def test_media_type_matching():
    allowed = ("application/json", "text/*", "text/html; charset=UTF-8")
    assert not media_type_allowed("application/json; charset=utf-8", allowed)  # as Kong
    assert media_type_allowed("application/json", allowed)
    assert media_type_allowed("TEXT/html", allowed)
    assert media_type_allowed("text/html; Charset=UTF-8", allowed)
    assert not media_type_allowed("text/html; charset=utf-8", allowed)  # values as written
    assert not media_type_allowed("application/xml;", ("application/xml;",))
    assert not media_type_allowed("application/xml", allowed)
    assert not media_type_allowed(None, allowed)
    assert media_type_allowed("image/png", ("*/*",))


@pytest.mark.parametrize(("env", "value"), [
    ("GATEWAY_CACHE_TTL", "0"), ("GATEWAY_CACHE_METHODS", "GET,DELETE"),
    ("GATEWAY_CACHE_STATUSES", "200,abc"), ("GATEWAY_CACHE_STATUSES", "99"),
    ("GATEWAY_CACHE_CONTENT_TYPES", "json"), ("GATEWAY_CACHE_MAX_BODY", "1x"),
    ("GATEWAY_CACHE_CONTROL", "perhaps"),
])
def test_bad_settings_name_the_variable(env, value):
    with pytest.raises(ConfigError, match=env):
        load(ProxyCacheConfig, {env: value})
