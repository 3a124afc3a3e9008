"""request-size-limiting in-process: Kong's 413/417/411, the counting stream, sizes."""

from __future__ import annotations

import io

import pytest
from werkzeug.test import Client

from gateway.config import ConfigError, byte_size, load
from gateway.filters.request_size_limiting import LimitedInput, RequestSizeLimitingConfig
from gateway.proxy.errors import GatewayError
from tests.support.app import in_process


def client(upstream, **env: str) -> Client:
    environ = {"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_FILTERS": "request-size-limiting",
               "GATEWAY_MAX_BODY_SIZE": "1k", **env}
    return in_process(environ)


def chunked(c: Client, size: int):
    """A chunked upload as gunicorn passes it on: no CONTENT_LENGTH, the body already de-chunked."""
    return c.post("/sink", input_stream=io.BytesIO(b"x" * size),
                  headers={"Transfer-Encoding": "chunked"},
                  environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True})


def test_content_length_over_the_limit_is_refused_before_the_upstream(upstream):
    before = upstream.hits["/sink"]
    response = client(upstream).post("/sink", data=b"x" * 1025)
    assert response.status_code == 413
    assert response.json["message"] == "Request size limit exceeded"
    assert upstream.hits["/sink"] == before


def test_content_length_at_the_limit_passes(upstream):
    response = client(upstream).post("/sink", data=b"x" * 1024)
    assert response.status_code == 200
    assert response.json["received"] == 1024


def test_expect_100_continue_gets_417(upstream):
    response = client(upstream).post("/sink", data=b"x" * 2000,
                                     headers={"Expect": "100-continue"})
    assert response.status_code == 417
    assert response.json["message"] == "Request size limit exceeded"


def test_chunked_body_within_the_limit_streams_through(upstream):
    response = chunked(client(upstream), 1024)
    assert response.status_code == 200
    assert response.json["received"] == 1024


def test_chunked_body_past_the_limit_is_cut_with_413(upstream):
    response = chunked(client(upstream), 5000)
    assert response.status_code == 413
    assert response.json["message"] == "Request size limit exceeded"


def test_require_length_refuses_requests_without_length_nor_chunked_body_with_411(upstream):
    c = client(upstream, GATEWAY_MAX_BODY_REQUIRE_LENGTH="true")
    response = c.get("/echo")
    assert response.status_code == 411
    assert response.json["message"] == "A valid Content-Length header is required"
    assert chunked(c, 10).status_code == 200  # Kong: a chunked body passes, measured
    assert chunked(c, 5000).status_code == 413
    assert c.post("/sink", data=b"x" * 10).status_code == 200


def test_chunked_body_past_the_limit_with_expect_100_continue_gets_417(upstream):
    response = client(upstream).post(
        "/sink", input_stream=io.BytesIO(b"x" * 5000),
        headers={"Transfer-Encoding": "chunked", "Expect": "100-continue"},
        environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True})
    assert response.status_code == 417
    assert response.json["message"] == "Request size limit exceeded"


def test_limited_input_reads_no_further_than_one_byte_past_the_limit():
    source = io.BytesIO(b"a" * 100)
    stream = LimitedInput(source, 10)
    assert stream.read(4) == b"aaaa"
    assert stream.read(6) == b"aaaaaa"
    with pytest.raises(GatewayError) as caught:
        stream.read(64 * 1024)
    assert caught.value.status == 413
    assert source.tell() == 11


def test_limited_input_passes_an_exact_size_body_read_whole():
    assert LimitedInput(io.BytesIO(b"b" * 10), 10).read() == b"b" * 10


@pytest.mark.parametrize(("raw", "size"), [("0", 0), ("512", 512), ("1k", 1024),
                                           ("128m", 128 << 20), ("2G", 2 << 30)])
def test_byte_size(raw, size):
    assert byte_size(raw) == size


@pytest.mark.parametrize("raw", ["", "²", "1²k"])
def test_byte_size_refuses_what_is_not_ascii_digits(raw):
    with pytest.raises(ValueError, match="must be a whole number of bytes"):
        byte_size(raw)


@pytest.mark.parametrize("raw", ["-1", "1.5m", "10mb", "k", "lots"])
def test_bad_size_names_the_variable(raw):
    with pytest.raises(ConfigError, match="GATEWAY_MAX_BODY_SIZE"):
        load(RequestSizeLimitingConfig, {"GATEWAY_MAX_BODY_SIZE": raw})


def test_default_is_kongs_128_megabytes():
    assert load(RequestSizeLimitingConfig, {}).max_body_size == 128 * 1024 * 1024
