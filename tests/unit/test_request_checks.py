"""check_request: what the gateway refuses before any filter runs or anything goes upstream."""

from __future__ import annotations

import pytest

from gateway.proxy.errors import GatewayError
from gateway.proxy.request import MAX_LENGTH, check_request


def environ(method: str = "GET", target: str = "/x", **extra: str) -> dict[str, object]:
    return {"REQUEST_METHOD": method, "RAW_URI": target, "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "api.example.com", **extra}


def refused(env: dict[str, object]) -> tuple[int, str]:
    with pytest.raises(GatewayError) as caught:
        check_request(env)
    return caught.value.status, caught.value.message


@pytest.mark.parametrize("env, status", [
    (environ("CONNECT", "evil.example:443"), 400),
    (environ("OPTIONS", "*"), 400),
    (environ("TRACE"), 405),
])
def test_targets_outside_the_prefix_and_trace(env, status):
    assert refused(env)[0] == status


@pytest.mark.parametrize("host", ["a b/c", "a\tb", "a\xe9b", "", "a/b", "a@b"])
def test_invalid_hosts_are_400(host):
    assert refused(environ(HTTP_HOST=host)) == (400, "Bad request: missing or invalid Host header")


@pytest.mark.parametrize("host", ["api.example.com", "api.example.com:8443", "10.0.0.1:80",
                                  "[::1]:8000", "xn--caf-dma.example"])
def test_valid_hosts_pass(host):
    check_request(environ(HTTP_HOST=host))


def test_a_missing_host_is_refused_on_http11_only():
    env = environ()
    del env["HTTP_HOST"]
    assert refused(env)[0] == 400
    check_request({**env, "SERVER_PROTOCOL": "HTTP/1.0"})


def test_the_clients_own_host_is_checked_not_proxyfixs():
    """ProxyFix replaces HTTP_HOST from X-Forwarded-Host; the Host the client sent is checked."""
    env = environ(HTTP_HOST="api.example.com")
    env["werkzeug.proxy_fix.orig"] = {"HTTP_HOST": "a b"}
    assert refused(env)[0] == 400


@pytest.mark.parametrize("length, ok", [("0", True), ("005", True), (str(MAX_LENGTH), True),
                                        (str(MAX_LENGTH + 1), False), ("9" * 30, False)])
def test_content_length_up_to_2_63_minus_1(length, ok):
    env = environ("POST", CONTENT_LENGTH=length)
    if ok:
        check_request(env)
    else:
        assert refused(env) == (400, "Bad request: invalid Content-Length")
