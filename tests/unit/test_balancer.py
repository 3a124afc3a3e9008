"""Kong's balancing algorithms (gateway.proxy.balancer) and the upstream fields' checks."""

from __future__ import annotations

import collections
import time

import pytest
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder

from gateway.proxy import balancer as b
from gateway.proxy.exchange import URI_CAPTURES, Consumer, Exchange
from gateway.proxy.upstream import Target
from gateway.routing import entities as e
from gateway.routing.declarative import read_declaration
from gateway.schema import Invalid, record


def targets(count: int) -> list[Target]:
    return [Target.from_url(f"http://10.0.0.{i}:8080") for i in range(1, count + 1)]


def hashing(pool: list[Target], weights: list[int] | None = None, slots: int = 10000,
            **fields: str) -> b.ConsistentHashing:
    plan = b.Balancing(algorithm="consistent-hashing", **fields)
    return b.ConsistentHashing(pool, weights or [100] * len(pool), slots, b.HashRule(plan))


def first(balancer: b.ConsistentHashing, value: str) -> str:
    return next(balancer.walk(value, 1)).url


def exchange(target: str = "/", headers: list[tuple[str, str]] | None = None,
             **environ: object) -> Exchange:
    path, _, query = target.partition("?")
    built = EnvironBuilder(path=path, query_string=query, headers=Headers(headers or [])
                           ).get_environ()
    built["RAW_URI"] = target
    built.update(environ)
    return Exchange(built, "id")


# -- Kong's ring ---------------------------------------------------------------------------

def test_the_hash_is_kongs_xxhash32():
    assert b.xxhash32("abc") == 0x32D153FF  # the reference value of XXH32("abc", seed 0)


def test_each_target_gets_160_points_of_the_ring_at_equal_weights():
    ring = hashing(targets(4))
    counts = collections.Counter(t.url for t in ring.owners)
    assert set(counts.values()) == {160}
    assert ring.slots == sorted(ring.slots) and len(set(ring.slots)) == 640


def test_a_ring_smaller_than_kongs_minimum_has_1000_points():
    assert hashing(targets(2), slots=10).points == 1000
    assert hashing(targets(2), slots=2**16).points == 2**16


def test_adding_one_of_five_targets_moves_few_keys():
    four, five = hashing(targets(4)), hashing(targets(5))
    keys = [f"user-{k}" for k in range(1000)]
    moved = [k for k in keys if first(four, k) != first(five, k)]
    assert len(moved) <= 250
    # every key that moved went to the new target, none between the old ones
    assert {first(five, k) for k in moved} == {"http://10.0.0.5:8080"}


def test_the_ring_does_not_depend_on_the_order_targets_are_listed():
    pool = targets(3)
    forward, backward = hashing(pool), hashing(pool[::-1])
    assert [t.url for t in forward.owners] == [t.url for t in backward.owners]


def test_the_ring_honours_the_weights():
    ring = hashing(targets(2), weights=[300, 100])
    shares = collections.Counter(first(ring, str(k)) for k in range(4000))
    assert 0.70 < shares["http://10.0.0.1:8080"] / 4000 < 0.82


def test_the_same_value_always_goes_to_the_same_target():
    ring = hashing(targets(3))
    assert len({first(ring, "just a value") for _ in range(50)}) == 1


def test_failover_walks_the_ring_to_distinct_targets_down_ones_last():
    pool = targets(3)
    ring = hashing(pool)
    order = [t.url for t in ring.walk("k", 5)]
    assert sorted(order) == sorted(t.url for t in pool)  # each once, at most attempts
    chosen = next(t for t in pool if t.url == order[0])
    chosen.down_until = time.monotonic() + 60
    assert [t.url for t in ring.walk("k", 5)] == order[1:] + order[:1]
    assert [t.url for t in ring.walk("k", 2)] == order[1:3]


def test_no_hash_value_hashes_the_empty_string_as_kong():
    ring = hashing(targets(3), hash_on="header", hash_on_header="hashme")
    ex = exchange(headers=[("nothashme", "x")])
    assert next(ring.candidates(1, ex)).url == first(ring, "")


# -- the hash value of a request -----------------------------------------------------------

def value(plan: dict[str, str], ex: Exchange) -> str | None:
    return b.HashRule(b.Balancing(algorithm="consistent-hashing", **plan)).value(ex)


def test_hash_on_consumer_is_the_consumer_id():
    ex = exchange()
    assert value({"hash_on": "consumer"}, ex) is None
    ex.consumer = Consumer("alice", "id-1", "key")
    assert value({"hash_on": "consumer"}, ex) == "id-1"


def test_hash_on_ip_is_the_client_address():
    assert value({"hash_on": "ip"}, exchange(REMOTE_ADDR="10.1.2.3")) == "10.1.2.3"


def test_hash_on_header_joins_repeated_values_with_a_comma():
    plan = {"hash_on": "header", "hash_on_header": "X-LB-Hash"}
    ex = exchange(headers=[("X-LB-Hash", "1st value"), ("x-lb-hash", "2nd value")])
    assert value(plan, ex) == "1st value, 2nd value"
    assert value(plan, exchange()) is None


def test_hash_on_header_reads_the_header_as_it_goes_upstream():
    ex = exchange(headers=[("hashme", "client")])
    ex.upstream_headers["hashme"] = "set by a filter"
    assert value({"hash_on": "header", "hash_on_header": "hashme"}, ex) == "set by a filter"


def test_hash_on_cookie_reads_the_cookie():
    ex = exchange(headers=[("Cookie", "other=1; hashme=some-cookie-value")])
    assert value({"hash_on": "cookie", "hash_on_cookie": "hashme"}, ex) == "some-cookie-value"
    assert b.HASH_COOKIE not in ex.environ


def test_hash_on_cookie_without_it_generates_one_and_sets_it_on_the_response():
    ex = exchange(headers=[("Cookie", "some-other-cookie=x")])
    plan = {"hash_on": "cookie", "hash_on_cookie": "hashme", "hash_on_cookie_path": "/shop"}
    generated = value(plan, ex)
    assert len(generated) == 36  # a UUID
    ex.headers = Headers([("Set-Cookie", "a=1"), ("Set-Cookie", "hashme=upstream's")])
    b.set_hash_cookie(ex)
    assert ex.headers.getlist("Set-Cookie") == [
        "a=1", f"hashme={generated}; Path=/shop; Same-Site=Lax; HttpOnly"]


@pytest.mark.parametrize(("target", "expected"), [
    ("/my-path", "/my-path"),
    ("/my-path?a=1&b=2", "/my-path"),
    ("/root/../%2e/root///././%2F.subdir/../.subdir/./%28%29", "/root/.subdir/()"),
])
def test_hash_on_path_is_nginxs_normalized_path(target, expected):
    assert value({"hash_on": "path"}, exchange(target)) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("hashme=123", "123"),
    ("", None),
    ("hashme", "true"),
    ("hashme=", ""),  # present and empty: found (Kong hashes "" and tries no fallback)
    ("hashme=b&hashme=a&hashme=c", "a,b,c"),
    ("hashme=s&hashme&hashme=1&hashme=", ",1,s,true"),
    ("hashme&hashme&", "true,true"),
])
def test_hash_on_query_arg_is_kongs_value(query, expected):
    plan = {"hash_on": "query_arg", "hash_on_query_arg": "hashme"}
    assert value(plan, exchange("/?" + query)) == expected


@pytest.mark.parametrize("name", ["{}", "&", "=", " ", "%", "???", "++", ";"])
def test_hash_on_query_arg_with_an_escaped_name(name):
    from urllib.parse import quote
    ex = exchange(f"/?{quote(name, safe='')}=7")
    assert value({"hash_on": "query_arg", "hash_on_query_arg": name}, ex) == "7"


def test_hash_on_query_arg_reads_the_query_as_it_goes_upstream():
    ex = exchange("/?hashme=client")
    ex.upstream_query = "hashme=filter"
    assert value({"hash_on": "query_arg", "hash_on_query_arg": "hashme"}, ex) == "filter"


def test_hash_on_uri_capture():
    ex = exchange("/foo/123", **{URI_CAPTURES: {"namespace": "foo", "id": "123"}})
    assert value({"hash_on": "uri_capture", "hash_on_uri_capture": "id"}, ex) == "123"
    assert value({"hash_on": "uri_capture", "hash_on_uri_capture": "namespace"},
                 exchange("/")) is None


@pytest.mark.parametrize(("plan", "target", "expected"), [
    ({"hash_on": "header", "hash_on_header": "absent", "hash_fallback": "path"},
     "/my-path?a=1", "/my-path"),
    ({"hash_on": "uri_capture", "hash_on_uri_capture": "namespace",
      "hash_fallback": "query_arg", "hash_fallback_query_arg": "test"}, "/?test=1", "1"),
    ({"hash_on": "query_arg", "hash_on_query_arg": "absent", "hash_fallback": "query_arg",
      "hash_fallback_query_arg": "fallback"}, "/?fallback=123", "123"),
    ({"hash_on": "header", "hash_on_header": "absent", "hash_fallback": "header",
      "hash_fallback_header": "also-absent"}, "/", None),
])
def test_hash_fallback_is_read_when_hash_on_finds_nothing(plan, target, expected):
    assert value(plan, exchange(target)) == expected


def test_hash_fallback_cookie_generates_the_cookie():
    ex = exchange()
    plan = {"hash_on": "header", "hash_on_header": "absent", "hash_fallback": "cookie",
            "hash_on_cookie": "c"}
    assert value(plan, ex) == ex.environ[b.HASH_COOKIE][1].split(";")[0][2:]


# -- least-connections and latency ---------------------------------------------------------

def test_least_connections_picks_the_fewest_in_flight_per_weight():
    light, heavy = targets(2)
    lc = b.LeastConnections([light, heavy], [10, 20])
    assert next(lc.candidates(1, None)) is heavy  # idle: (0+1)/20 < (0+1)/10
    picks = []
    for _ in range(6):  # none ends: the in-flight counts grow 2:1
        chosen = next(lc.candidates(1, None))
        lc.begin(chosen)
        picks.append(chosen)
    assert picks.count(heavy) == 4 and picks.count(light) == 2
    for chosen in picks:
        lc.end(chosen, 0.0)
    assert lc.in_flight == {id(light): 0, id(heavy): 0}


def test_least_connections_fails_over_to_the_others_in_score_order():
    pool = targets(3)
    lc = b.LeastConnections(pool, [100, 100, 100])
    started = lc.begin(pool[0])
    lc.begin(pool[0])
    lc.begin(pool[1])
    assert list(lc.candidates(3, None)) == [pool[2], pool[1], pool[0]]
    lc.end(pool[0], started, answered=False)
    assert lc.in_flight[id(pool[0])] == 1


def test_least_connections_spreads_sequential_requests():
    pool = targets(3)
    lc = b.LeastConnections(pool, [100] * 3)
    seen = []
    for _ in range(6):
        chosen = next(lc.candidates(1, None))
        lc.end(chosen, lc.begin(chosen))
        seen.append(chosen)
    assert collections.Counter(map(id, seen)) == {id(t): 2 for t in pool}


def test_latency_prefers_the_faster_target_per_weight():
    fast, slow = targets(2)
    lat = b.Latency([fast, slow], [100, 100])
    now = time.monotonic()
    lat.end(slow, now - 0.5)  # answered in 0.5 s
    lat.end(fast, now - 0.01)
    assert list(lat.candidates(2, None)) == [fast, slow]
    assert lat.ewma[id(slow)] > lat.ewma[id(fast)] > 0


def test_latency_weights_divide_the_score():
    a, c = targets(2)
    lat = b.Latency([a, c], [1000, 10])
    now = time.monotonic()
    lat.end(a, now - 0.5)
    lat.end(c, now - 0.05)
    assert next(lat.candidates(1, None)) is a  # 0.5/1000 < 0.05/10


def test_latency_decays_towards_zero_with_kongs_time_constant():
    fast, slow = targets(2)
    lat = b.Latency([fast, slow], [100, 100])
    lat.ewma[id(slow)], lat.touched[id(slow)] = 1.0, time.monotonic() - 10
    assert lat.score(slow, time.monotonic()) == pytest.approx(0.01 * 0.3679, rel=0.01)


def test_a_failed_attempt_leaves_the_latency_average_alone():
    pool = targets(2)
    lat = b.Latency(pool, [100, 100])
    lat.end(pool[0], time.monotonic() - 3, answered=False)
    assert lat.ewma[id(pool[0])] == 0.0


def test_round_robin_is_chosen_for_round_robin_and_pays_no_tracking():
    pool = targets(2)
    chosen = b.balancer(b.ROUND_ROBIN, pool, None)
    assert isinstance(chosen, b.RoundRobin) and not chosen.tracks and not chosen.sets_cookie
    assert [next(chosen.candidates(1, None)) for _ in range(4)] == pool * 2


# -- Kong's schema rules -------------------------------------------------------------------

def balancing(**given: object) -> b.Balancing:
    path = "upstreams[u]"
    raw = {"name": "u", **given}
    checked = record(raw, path, e.UPSTREAM_FIELDS)
    return e.balancing(raw, checked, path)


def problems(**given: object) -> tuple[str, ...]:
    with pytest.raises(Invalid) as caught:
        balancing(**given)
    return caught.value.problems


def test_a_hash_on_given_makes_the_algorithm_consistent_hashing_as_kongs_shorthand():
    assert balancing(hash_on="ip").algorithm == "consistent-hashing"
    assert balancing(algorithm="round-robin", hash_on="ip").algorithm == "consistent-hashing"
    assert balancing(algorithm="consistent-hashing", hash_on="none").algorithm == "round-robin"
    assert balancing(algorithm="consistent-hashing").algorithm == "consistent-hashing"


@pytest.mark.parametrize("algorithm", ["least-connections", "latency"])
def test_least_connections_and_latency_clear_hash_on(algorithm):
    assert balancing(algorithm=algorithm, hash_on="ip") == b.Balancing(algorithm=algorithm)


@pytest.mark.parametrize(("given", "problem"), [
    ({"hash_on": "header"}, "upstreams[u].hash_on_header: required field missing (failed "
                            "conditional validation given value of field 'hash_on')"),
    ({"hash_on": "ip", "hash_fallback": "header"},
     "upstreams[u].hash_fallback_header: required field missing (failed conditional "
     "validation given value of field 'hash_fallback')"),
    ({"hash_on": "cookie"}, "upstreams[u].hash_on_cookie: required field missing (failed "
                            "conditional validation given value of field 'hash_on')"),
    ({"hash_on": "ip", "hash_fallback": "cookie"},
     "upstreams[u].hash_on_cookie: required field missing (failed conditional validation "
     "given value of field 'hash_fallback')"),
    ({"hash_on": "query_arg"}, "upstreams[u].hash_on_query_arg: required field missing "
                               "(failed conditional validation given value of field "
                               "'hash_on')"),
    ({"hash_on": "uri_capture"}, "upstreams[u].hash_on_uri_capture: required field missing "
                                 "(failed conditional validation given value of field "
                                 "'hash_on')"),
    ({"hash_fallback": "ip"}, "upstreams[u].hash_fallback: expected one of: none (failed "
                              "conditional validation given value of field 'hash_on')"),
    ({"hash_on": "cookie", "hash_on_cookie": "c", "hash_fallback": "ip"},
     "upstreams[u].hash_fallback: expected one of: none (failed conditional validation "
     "given value of field 'hash_on')"),
    ({"hash_on": "consumer", "hash_fallback": "consumer"},
     "upstreams[u].hash_fallback: expected one of: none, ip, header, cookie, path, "
     "query_arg, uri_capture (failed conditional validation given value of field "
     "'hash_on')"),
    ({"hash_on": "ip", "hash_fallback": "ip"},
     "upstreams[u].hash_fallback: expected one of: none, consumer, header, cookie, path, "
     "query_arg, uri_capture (failed conditional validation given value of field "
     "'hash_on')"),
    ({"hash_on": "path", "hash_fallback": "path"},
     "upstreams[u].hash_fallback: expected one of: none, consumer, header, cookie, "
     "query_arg, ip, uri_capture (failed conditional validation given value of field "
     "'hash_on')"),
    ({"hash_on": "header", "hash_on_header": "x", "hash_fallback": "header",
      "hash_fallback_header": "x"},
     "upstreams[u]: values of these fields must be distinct: 'hash_on_header', "
     "'hash_fallback_header'"),
    ({"hash_on": "query_arg", "hash_on_query_arg": "same", "hash_fallback": "query_arg",
      "hash_fallback_query_arg": "same"},
     "upstreams[u]: values of these fields must be distinct: 'hash_on_query_arg', "
     "'hash_fallback_query_arg'"),
    ({"hash_on": "uri_capture", "hash_on_uri_capture": "same", "hash_fallback": "uri_capture",
      "hash_fallback_uri_capture": "same"},
     "upstreams[u]: values of these fields must be distinct: 'hash_on_uri_capture', "
     "'hash_fallback_uri_capture'"),
], ids=lambda v: str(v)[:40])
def test_kongs_entity_checks_word_for_word(given, problem):
    assert problems(**given) == (problem,)


@pytest.mark.parametrize(("field", "given", "problem"), [
    ("algorithm", "random", "expected one of: consistent-hashing, least-connections, "
                            "round-robin, latency"),
    ("hash_on", "body", "expected one of: none, consumer, ip, header, cookie, path, "
                        "query_arg, uri_capture"),
    ("hash_on_header", "x header", "bad header name 'x header', allowed characters are A-Z, "
                                   "a-z, 0-9, '_', and '-'"),
    ("hash_on_cookie", "a;b", "contains one or more invalid characters. ASCII control "
                              "characters (0-31;127), space, tab and the characters "
                              '()<>@,;:\\"/?={}[] are not allowed.'),
    ("hash_on_cookie_path", "shop", "should start with: /"),
    ("hash_on_cookie_path", "/a//b", "must not have empty segments"),
    ("hash_on_query_arg", "", "length must be at least 1"),
    ("hash_fallback_uri_capture", "", "length must be at least 1"),
    ("slots", 5, "value should be between 10 and 65536"),
])
def test_kongs_field_checks_word_for_word(field, given, problem):
    with pytest.raises(Invalid) as caught:
        record({"name": "u", field: given}, "upstreams[u]", e.UPSTREAM_FIELDS)
    assert caught.value.problems == (f"upstreams[u].{field}: {problem}",)


def test_decks_defaults_and_nulls_are_round_robin():
    assert balancing(algorithm="round-robin", hash_on="none", hash_fallback="none",
                     hash_on_cookie_path="/", hash_on_header=None, hash_on_cookie=None,
                     slots=10000) == b.ROUND_ROBIN
    assert balancing(hash_on=None) == b.ROUND_ROBIN


def test_a_file_lists_the_entity_checks_beside_the_fields_problems():
    decl = read_declaration("""
_format_version: "3.0"
upstreams:
- {name: u.test, hash_on: header, hash_fallback: header, hash_on_cookie_path: shop}
- {name: v.test, hash_on: header, hash_on_header: "x y"}
""", "kong.yml", {})
    assert decl.problems == (
        "upstreams[u.test].hash_on_cookie_path: should start with: /",
        "upstreams[u.test].hash_on_header: required field missing (failed conditional "
        "validation given value of field 'hash_on')",
        "upstreams[u.test].hash_fallback_header: required field missing (failed conditional "
        "validation given value of field 'hash_fallback')",
        # the bad name is not said missing as well
        "upstreams[v.test].hash_on_header: bad header name 'x y', allowed characters are "
        "A-Z, a-z, 0-9, '_', and '-'",
    )


def test_a_file_gives_each_upstream_its_balancing():
    decl = read_declaration("""
_format_version: "3.0"
upstreams:
- {name: h.test, hash_on: ip, slots: 100}
- {name: l.test, algorithm: latency}
- {name: r.test}
""", "kong.yml", {})
    assert decl.upstreams["h.test"].balancing == b.Balancing(
        algorithm="consistent-hashing", hash_on="ip", slots=100)
    assert decl.upstreams["l.test"].balancing.algorithm == "latency"
    assert decl.upstreams["r.test"].balancing == b.ROUND_ROBIN


def test_a_weight_0_target_gets_no_point_but_counts_as_kongs_does():
    pool = targets(3)
    ring = hashing(pool, weights=[100, 100, 0])
    counts = collections.Counter(t.url for t in ring.owners)
    assert counts == {pool[0].url: 240, pool[1].url: 240}  # floor(0.5 * 3 * 160)
