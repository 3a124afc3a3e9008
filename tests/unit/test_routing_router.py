"""The router against Kong's own examples (Kong's proxy guide and path_handling table)."""

from __future__ import annotations

import pytest

from gateway.routing.entities import ROUTE_FIELDS, route
from gateway.routing.router import Router, upstream_path
from gateway.schema import record


def make_route(**fields):
    return route(record(fields, "routes[0]", ROUTE_FIELDS), "routes[0]")


def router(*specs):
    return Router([(make_route(**spec), index) for index, spec in enumerate(specs)])


def match(r, path="/", host="example.com", method="GET", **headers):
    environ = {"HTTP_" + k.upper(): v for k, v in headers.items()}
    hit = r.match(method, host, path, environ)
    return None if hit is None else hit.value


def test_hosts_exact_and_port_ignored_unless_named():
    r = router({"hosts": ["example.com", "foo-service.com"]}, {"hosts": ["api.test:8443"]})
    assert match(r, host="example.com") == 0
    assert match(r, host="Foo-Service.com:8000") == 0
    assert match(r, host="api.test:8443") == 1
    assert match(r, host="api.test") is None
    assert match(r, host="other.com") is None


def test_wildcard_hosts_leftmost_and_rightmost():
    r = router({"hosts": ["*.example.com"]}, {"hosts": ["service.*"]})
    assert match(r, host="a.example.com") == 0
    assert match(r, host="x.y.example.com") == 0
    assert match(r, host="example.com") is None
    assert match(r, host="service.com") == 1
    assert match(r, host="service.org:8000") == 1


def test_plain_host_beats_wildcard_host():
    r = router({"hosts": ["*.example.com"]}, {"hosts": ["api.example.com"]})
    assert match(r, host="api.example.com") == 1
    assert match(r, host="www.example.com") == 0


def test_longest_prefix_wins_whatever_the_order():
    r = router({"paths": ["/service"]}, {"paths": ["/service/resource"]}, {"paths": ["/"]})
    assert match(r, "/service/resource/x") == 1
    assert match(r, "/service/other") == 0
    assert match(r, "/servicefoo") == 0  # a prefix is a string prefix, as Kong's
    assert match(r, "/elsewhere") == 2


def test_regex_paths_by_regex_priority_before_prefixes():
    # Kong's proxy guide: evaluated as /version/\d+/status/\d+, /status/\d+, /version/any/,
    # then the prefix /version.
    r = router({"paths": [r"~/status/\d+"], "regex_priority": 0},
               {"paths": [r"~/version/\d+/status/\d+"], "regex_priority": 6},
               {"paths": ["/version"]},
               {"paths": ["~/version/any/"]})
    assert match(r, "/version/1/status/2") == 1
    assert match(r, "/status/3") == 0
    assert match(r, "/version/any/x") == 3
    assert match(r, "/version") == 2
    assert match(r, "/x/status/3") is None  # a regex path matches from the start


def test_pcre_named_groups_and_lookarounds():
    r = router({"paths": [r"~/users/(?<id>\d+)/(?!private)"]})
    assert match(r, "/users/12/profile") == 0
    assert match(r, "/users/12/private") is None


def test_more_fields_set_wins():
    r = router({"hosts": ["example.com"]}, {"hosts": ["example.com"], "methods": ["POST"]})
    assert match(r, method="GET") == 0
    assert match(r, method="POST") == 1


def test_methods_and_headers():
    r = router({"paths": ["/"], "headers": {"version": ["v1", "v2"]}},
               {"paths": ["/"], "headers": {"version": ["~*^v3"]}},
               {"paths": ["/"], "methods": ["DELETE"]})
    assert match(r, version="V2") == 0
    assert match(r, version="v3.1") == 1
    assert match(r, version="v4") is None
    assert match(r, method="DELETE") == 2
    assert match(r, method="PUT") is None


def test_more_headers_win():
    r = router({"paths": ["/"], "headers": {"a": ["1"]}},
               {"paths": ["/"], "headers": {"a": ["1"], "b": ["2"]}})
    assert match(r, a="1", b="2") == 1
    assert match(r, a="1") == 0


def test_earlier_route_wins_a_tie():
    r = router({"paths": ["/a"]}, {"paths": ["/a"]})
    assert match(r, "/a") == 0


def test_a_thousand_prefix_routes_keep_few_lengths():
    r = Router([(make_route(paths=[f"/service-{i}"]), i) for i in range(1000)])
    assert match(r, "/service-999/x") == 999
    assert len(r.any_host.lengths) == 3  # one look-up per distinct prefix length


@pytest.mark.parametrize(("service", "path", "request_path", "strip", "expected"), [
    # Kong's path_handling v0 table.
    ("/s", "/fv0", "/fv0req", False, "/s/fv0req"),
    ("/s", "/fv0", "/fv0req", True, "/s/req"),
    ("/s", "/fv0", "/fv0/req", True, "/s/req"),
    ("/s", "/tv0/", "/tv0/req", True, "/s/req"),
    ("/s/", "/fv0", "/fv0req", True, "/s/req"),
    ("/s/", "/fv0", "/fv0/req", True, "/s/req"),
    ("/s/", "/fv0", "/fv0", True, "/s"),
    ("/s/", "/fv0", "/fv0/", True, "/s/"),
    (None, "/orders", "/orders/42", True, "/42"),
    (None, "/orders", "/orders", True, "/"),
    (None, "/orders", "/orders/42", False, "/orders/42"),
    ("/api", "/orders", "/orders", False, "/api/orders"),
])
def test_upstream_path_v0(service, path, request_path, strip, expected):
    r = make_route(paths=[path], strip_path=strip)
    hit = Router([(r, 0)]).match("GET", "h", request_path, {})
    assert upstream_path(r, hit.matched, request_path, service) == expected


def test_strip_a_regex_match():
    r = make_route(paths=[r"~/users/\d+"])
    hit = Router([(r, 0)]).match("GET", "h", "/users/12/a%20b", {})
    assert upstream_path(r, hit.matched, "/users/12/a%20b", None) == "/a%20b"


def test_captures_of_a_regex_path_as_kongs_uri_captures():
    r = router({"paths": [r"~/users/(?<id>\d+)/(\w+)"]}, {"paths": [r"~/plain/\d+"]},
               {"paths": ["/prefix"]})
    captures = [r.match("GET", "h", path, {}).captures
                for path in ("/users/7/edit/more", "/plain/1", "/prefix/x")]
    assert captures == [{"0": "/users/7/edit", "1": "7", "2": "edit", "id": "7"}, {}, {}]
