"""Issue 17 point 1: no request path reaches the upstream outside the service's path.

Kong decodes ``%2E`` before it strips and joins: ``/route%2E%2E/req`` on a strip_path
route ``/route`` to ``http://up/service`` goes upstream as ``/service/req`` (it went as
``/service/%2E%2E/req``, which the upstream resolved to ``/req``). The whole family,
through the real router and the upstream-target builder, in front of the fixture server
(it echoes the raw target): encoded and mixed-case dots, ``%2F``, backslashes, double
slashes, with and without strip_path, with a service path and without, a regex route, and
GATEWAY_UPSTREAM_URL's path prefix without a declarative file.
"""

from __future__ import annotations

import itertools
import json
from urllib.parse import unquote

import pytest

from gateway.proxy.errors import GatewayError
from gateway.proxy.exchange import Exchange
from gateway.proxy.request import request_path, request_target, routed_path
from gateway.routing.entities import ROUTE_FIELDS, route
from gateway.routing.table import BAD_PATH, Destination
from gateway.schema import record
from tests.support.app import get, in_process

KONG = """
_format_version: "3.0"
services:
- name: svc
  url: {url}/service
  routes:
  - {{name: strip, paths: [/route]}}
  - {{name: keep, paths: [/keep], strip_path: false}}
  - {{name: regex, paths: ["~/re/(?<id>\\\\d+)"]}}
- name: slash
  url: {url}/slash/
  routes:
  - {{name: slash, paths: [/sl]}}
- name: bare
  url: {url}
  routes:
  - {{name: bare, paths: [/bare]}}
  - {{name: plain, paths: [/plain], strip_path: false}}
"""
#: Where each route's requests must stay, once the upstream decoded and resolved the path.
BASES = {"/route": "/service", "/keep": "/service", "/re/1": "/service", "/sl": "/slash",
         "/bare": "/", "/plain": "/"}
#: Tails that try to climb: escaped dots in every case, escaped slashes and backslashes,
#: double slashes, and several levels.
ATTACKS = [
    "%2E%2E/x", "%2e%2e/x", "%2E%2e/x", "%2E./x", ".%2e/x", "../x", "..", "%2e%2e",
    "/%2E%2E/x", "/%2e%2E/%2E%2e/x", "/../../x", "//..//..//x", "/a/../../x",
    "/..%2Fx", "/..%2fx", "%2F..%2F..%2Fx", "/a%2F..%2F..%2Fx", "/%2F%2E%2E%2F%2E%2E%2Fx",
    "%2e%2e%2f%2e%2e%2fx", "/%5C..%5C..%5Cx", "/\\..\\..\\x", "/.%2E/.%2e/x", "/x/%2E%2E",
]


@pytest.fixture(scope="module")
def client(upstream):
    return in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": KONG.format(url=upstream.url)})


def sent(client, path: str):
    """(status, the raw target the upstream received or the error message, headers)."""
    response = get(client, path)
    body = json.loads(response.get_data())
    if "target" not in body:
        return response.status_code, body["message"], {}
    return response.status_code, body["target"], dict(body["headers"])


def resolved(target: str) -> str | None:
    """The path an nginx-like upstream serves: escapes decoded (``%2F`` too), backslashes
    read as slashes, slashes merged, dot segments resolved; None above the root."""
    out: list[str] = []
    for segment in unquote(target.partition("?")[0]).replace("\\", "/").split("/"):
        if segment == "..":
            if not out:
                return None
            out.pop()
        elif segment not in ("", "."):
            out.append(segment)
    return "/" + "/".join(out)


@pytest.mark.parametrize(("prefix", "attack"), list(itertools.product(BASES, ATTACKS)))
def test_nothing_outside_the_service_path_is_reached(client, prefix, attack):
    status, target, _ = sent(client, prefix + attack)
    assert status in (200, 400, 404), target
    if status == 200:
        where = resolved(target)
        assert where is not None and (where + "/").startswith(BASES[prefix].rstrip("/") + "/"), \
            target
    if status == 400:
        assert target == BAD_PATH


@pytest.mark.parametrize(("path", "expected"), [
    # issue 17: Kong sends these
    ("/route%2E%2E/req", "/service/req"),
    ("/route%2e%2e/etc/passwd", "/service/etc/passwd"),
    ("/route%2E%2e", "/service"),
    ("/keep%2E/req", "/service/keep./req"),
    ("/keep%2e%2e/req", "/service/keep../req"),
    # dot segments resolved before routing: /keep/.. leaves /keep
    ("/keep/a/../b", "/service/keep/b"),
    ("/route/a/./b/../c", "/service/a/c"),
    ("/keep/../route/x", "/service/x"),
    # double slashes merged
    ("/route//x//y", "/service/x/y"),
    ("//keep//x", "/service/keep/x"),
    # escapes: unreserved decoded, reserved kept upper-cased, others escaped again
    ("/r%6fute/%7euser", "/service/~user"),
    ("/route/a%2fb", "/service/a%2Fb"),
    ("/route/a%2F..%2Fb", "/service/a%2F..%2Fb"),  # stays under /service once decoded
    ("/route/cat%20and%20dog", "/service/cat%20and%20dog"),
    ("/route/caf%C3%A9", "/service/caf%C3%A9"),
    ("/route/a%5Cb", "/service/a%5Cb"),
    # a regex route strips what it matched of the normalised path
    ("/re/%31%32/x/../y", "/service/y"),
    ("/re/12%2E%2E/y", "/service/y"),
    # a service path ending with /
    ("/sl%2E%2E/x", "/slash/x"),
    ("/sl/", "/slash/"),
    # no service path
    ("/bare%2E%2E/x", "/x"),
    ("/plain/../bare/x", "/x"),
    ("/plain/%2e%2e/plain/x", "/plain/x"),
    # the query as sent
    ("/route/./x?a=%2E%2E&b=/../", "/service/x?a=%2E%2E&b=/../"),
])
def test_upstream_path_is_kongs(client, path, expected):
    assert sent(client, path)[:2] == (200, expected)


@pytest.mark.parametrize("path", [
    "/route%2F..%2F..%2Fx", "/route/a%2F..%2F..%2Fx", "/keep%2F..%2F..%2Fx",
    "/route/%5C..%5C..%5Cx", "/sl/..%2F..%2Fx", "/bare/..%2Fx", "/re/1/..%2F..%2Fx",
])
def test_encoded_separators_that_would_climb_out_are_refused(client, path, upstream):
    before = sum(upstream.hits.values())
    assert sent(client, path)[:2] == (400, BAD_PATH)
    assert sum(upstream.hits.values()) == before


def test_no_route_once_normalised(client):
    # /route/%2e%2e/x is /x: no route, as in Kong
    assert sent(client, "/route/%2e%2e/x")[:2] == (404, "no Route matched with those values")
    # %2F is no separator for the router: /route%2Fx does not match /route/...
    assert sent(client, "/bare%2Fx")[:2] == (200, "/%2Fx")


@pytest.fixture(scope="module")
def prefixed(upstream):
    return in_process({"GATEWAY_UPSTREAM_URL": upstream.url + "/api"})


@pytest.mark.parametrize("attack", ATTACKS)
def test_upstream_url_prefix_is_never_left(prefixed, attack):
    status, target, _ = sent(prefixed, "/" + attack)
    assert status in (200, 400), target
    if status == 200:
        assert (resolved(target) + "/").startswith("/api/"), target


@pytest.mark.parametrize(("path", "expected"), [
    ("/api/../admin", "/api/admin"), ("/api/%2e%2e/admin", "/api/admin"),
    ("/./admin", "/api/admin"), ("/a//b", "/api/a/b"), ("/orders/42?x=1", "/api/orders/42?x=1"),
])
def test_upstream_url_prefix_with_the_normalised_path(prefixed, path, expected):
    assert sent(prefixed, path)[:2] == (200, expected)


def test_forwarded_path_and_prefix(client):
    _, _, headers = sent(client, "/route%2E%2E/req")
    assert headers["X-Forwarded-Path"] == "/route%2E%2E/req"  # as the client sent it
    assert headers["X-Forwarded-Prefix"] == "/route"


# The builders one by one.

def environ(raw: str, **extra: str) -> dict[str, str]:
    path, _, query = raw.partition("?")
    return {"REQUEST_METHOD": "GET", "RAW_URI": raw, "PATH_INFO": unquote(path),
            "QUERY_STRING": query, **extra}


def test_request_target_and_path_are_as_sent():
    env = environ("/route%2E%2E/req?a=1")
    assert request_target(env) == "/route%2E%2E/req?a=1"
    assert request_target(env, "b=2") == "/route%2E%2E/req?b=2"
    assert request_path(env) == "/route%2E%2E/req"
    assert routed_path(env) == "/route../req"
    assert routed_path(environ("http://h/a/%2e%2e/b?x")) == "/b"  # absolute-form


def destination(service_path: str | None, **fields) -> Destination:
    spec = route(record(fields, "routes[0]", ROUTE_FIELDS), "routes[0]")
    return Destination("s", "r", None, None, spec, service_path)  # type: ignore[arg-type]


@pytest.mark.parametrize(("raw", "matched", "strip", "service", "expected"), [
    ("/route%2E%2E/req", "/route", True, "/service", "/service/req"),
    ("/route%2E/req", "/route", False, "/service", "/service/route./req"),
    ("/route//a?q=/../", "/route", True, "/service/", "/service/a?q=/../"),
    ("/route/a%20b", "/route", True, None, "/a%20b"),
    ("/route/a", "/route", True, "/service", "/service/a"),
])
def test_upstream_target(raw, matched, strip, service, expected):
    env = environ(raw)
    d = destination(service, paths=["/route"], strip_path=strip)
    assert d.upstream_target(request_target(env), routed_path(env), matched) == expected


def test_upstream_target_refuses_a_climb_and_the_catch_all_normalises():
    env = environ("/route/%2F..%2F..%2Fetc")
    d = destination("/service", paths=["/route"])
    with pytest.raises(GatewayError) as caught:
        d.upstream_target(request_target(env), routed_path(env), "/route")
    assert (caught.value.status, caught.value.message) == (400, BAD_PATH)
    catch_all = Destination("", "", None, None)  # type: ignore[arg-type]
    env = environ("/a/%2E%2E/b")
    assert catch_all.upstream_target(request_target(env), routed_path(env), "") == "/b"


def test_forwarded_prefix_only_for_what_strip_path_removed():
    assert destination(None, paths=["/route"]).forwarded_prefix("/route/x", "/route") == \
        "/route"
    assert destination(None, paths=["/"]).forwarded_prefix("/x", "/") is None
    assert destination(None, paths=["/route"], strip_path=False) \
        .forwarded_prefix("/route/x", "/route") is None
    # a regex match of a decoded path is escaped for the header
    assert destination(None, paths=["~/a.b"]).forwarded_prefix("/a%20b", "/a b") == "/a%20b"


@pytest.mark.parametrize(("raw", "dots"), [
    ("/a/../b", True), ("/a/%2e%2E/b", True), ("/a%2F..%2Fb", True), ("/a/./b", True),
    ("/a../b", False), ("/.../b", False), ("/a/b", False),
])
def test_exchange_has_dot_segments_on_the_decoded_path(raw, dots):
    # What the enrichment filter checks before it puts {path} into its URL.
    assert Exchange(environ(raw), "id").has_dot_segments is dots
