"""The filter chain in-process: Kong's order, short-circuits, replacement, the log phase."""

from __future__ import annotations

import json

from werkzeug.test import Client

from gateway.filters.base import Filter
from tests.support.app import gateway_of, in_process


def make_filter(name: str, priority: int, calls: list, **behaviour) -> Filter:
    """A filter that records its phases and optionally answers or edits."""

    class Recording(Filter):
        NAME, PRIORITY, VERSION, Config = name, priority, "0", object

        def on_request(self, ex):
            calls.append(("request", name))
            if behaviour.get("answer"):
                ex.error(403, f"{name} says no")

        def on_response(self, ex):
            calls.append(("response", name))
            ex.headers.add("X-Seen-By", name)
            if behaviour.get("replace") and ex.path.startswith("/bytes"):
                ex.respond(299, b"replaced", content_type="text/plain")
            if behaviour.get("explode"):
                raise RuntimeError("bug")

        def on_log(self, ex):
            calls.append(("log", name, ex.status))

    return Recording(None, None)


def client(upstream, filters) -> Client:
    return in_process({"GATEWAY_UPSTREAM_URL": upstream.url}, filters)


def test_phases_run_highest_priority_first(upstream):
    calls = []
    c = client(upstream, [make_filter("low", 10, calls), make_filter("high", 1000, calls)])
    response = c.get("/echo")
    assert response.status_code == 200
    response.close()
    assert calls == [("request", "high"), ("request", "low"), ("response", "high"),
                     ("response", "low"), ("log", "high", 200), ("log", "low", 200)]
    assert response.headers.getlist("X-Seen-By") == ["high", "low"]


def test_answering_in_request_phase_skips_lower_filters_and_upstream(upstream):
    calls = []
    before = upstream.hits["/echo"]
    c = client(upstream, [make_filter("auth", 1250, calls, answer=True),
                          make_filter("later", 5, calls)])
    response = c.get("/echo")
    assert response.status_code == 403
    assert response.json["message"] == "auth says no"
    assert ("request", "later") not in calls
    assert ("response", "later") in calls  # header filters still run, as in Kong
    assert upstream.hits["/echo"] == before


def test_response_phase_can_replace_the_upstream_response(upstream):
    calls = []
    c = client(upstream, [make_filter("swap", 100, calls, replace=True)])
    response = c.get("/bytes?n=100000")
    assert (response.status_code, response.get_data()) == (299, b"replaced")
    assert c.get("/echo").status_code == 200  # the pool survived the unread body


def test_a_failing_filter_is_a_500_not_a_crash(upstream):
    c = client(upstream, [make_filter("buggy", 100, [], explode=True)])
    response = c.get("/echo")
    assert response.status_code == 500
    assert json.loads(response.get_data())["message"] == "An unexpected error occurred"


def test_gateway_sorts_by_priority_whatever_the_listed_order():
    c = in_process({"GATEWAY_UPSTREAM_URL": "http://a:1",
                    "GATEWAY_FILTERS": "request-termination,response-headers"})
    names = [f.NAME for f in gateway_of(c).filters]
    assert names == ["response-headers", "request-termination"]
