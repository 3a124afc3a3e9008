"""Kong's request-size-limiting access spec, case by case:
spec/03-plugins/12-request-size-limiting/01-access_spec.lua (Kong 3.10), DB-less, httpbin's
/anything standing in for mock_upstream's /request. A chunked request arrives as gunicorn
hands it over: no CONTENT_LENGTH, `Transfer-Encoding: chunked`, the body already
de-chunked.

Skipped cases: none. The two chunked sizes of the spec (above and below nginx's
client_body_buffer_size) are one path here: the body is counted as it streams, never
buffered. The route hosts are the spec's, `limit_<unit>.test` (a `_` in a host name is
allowed, as Kong's host rules allow it).
"""

from __future__ import annotations

import io
import json

import pytest

from tests.kong.plugin_kit import kong_client, send

TEST_SIZE = 2
FACTORS = {"megabytes": 2**20, "kilobytes": 2**10, "bytes": 1}
MB, KB = FACTORS["megabytes"], FACTORS["kilobytes"]


@pytest.fixture(scope="module")
def kong(httpbin):
    def route(host: str, **config: object) -> dict[str, object]:
        return {"name": host, "hosts": [host], "plugins": [{
            "name": "request-size-limiting",
            "config": {"allowed_payload_size": TEST_SIZE, **config}}]}
    routes = [route("limit.test"), route("required.test", require_content_length=True)]
    routes += [route(f"limit_{unit}.test", size_unit=unit) for unit in FACTORS]
    return kong_client(json.dumps({"_format_version": "3.0", "services": [
        {"name": "mock", "url": httpbin, "routes": routes}]}))


def with_length(kong, host: str, size: int, **headers: str):
    return send(kong, "POST", "/anything", host, headers, data=b"a" * size)


def chunked(kong, host: str, size: int, **headers: str):
    return send(kong, "GET", "/anything", host, {"Transfer-Encoding": "chunked", **headers},
                input_stream=io.BytesIO(b"a" * size),
                environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True})


def refused(response, status: int = 413) -> None:
    assert response.status_code == status
    assert response.json["message"] == "Request size limit exceeded"  # Kong's, exactly


# ------------------------------------------------------------------ with Content-Length

@pytest.mark.parametrize("expect", [{}, {"Expect": "100-continue"}])
def test_with_length_works_if_size_is_lower_than_limit(kong, expect):
    assert with_length(kong, "limit.test", TEST_SIZE * MB, **expect).status_code == 200


def test_with_length_blocks_if_size_is_greater_than_limit(kong):
    refused(with_length(kong, "limit.test", TEST_SIZE * MB + 1))


def test_with_length_blocks_if_size_is_greater_than_limit_and_expect_header(kong):
    refused(with_length(kong, "limit.test", TEST_SIZE * MB + 1, Expect="100-continue"), 417)


@pytest.mark.parametrize("unit", FACTORS)
def test_with_length_blocks_if_size_is_greater_than_limit_in_unit(kong, unit):
    refused(with_length(kong, f"limit_{unit}.test", TEST_SIZE * FACTORS[unit] + 1))


@pytest.mark.parametrize("unit", FACTORS)
def test_with_length_works_if_size_is_less_than_limit_in_unit(kong, unit):
    assert with_length(kong, f"limit_{unit}.test", TEST_SIZE * FACTORS[unit] - 1
                       ).status_code == 200


# ------------------------------------------------ without Content-Length (chunked body)

@pytest.mark.parametrize(("host", "size"), [("limit.test", TEST_SIZE * MB),
                                            ("limit_kilobytes.test", TEST_SIZE * KB)])
@pytest.mark.parametrize("expect", [{}, {"Expect": "100-continue"}])
def test_chunked_works_if_size_is_lower_than_limit(kong, host, size, expect):
    assert chunked(kong, host, size, **expect).status_code == 200


@pytest.mark.parametrize(("host", "size"), [("limit.test", TEST_SIZE * MB + 1),
                                            ("limit_kilobytes.test", TEST_SIZE * KB + 1)])
def test_chunked_blocks_if_size_is_greater_than_limit(kong, host, size):
    refused(chunked(kong, host, size))


@pytest.mark.parametrize(("host", "size"), [("limit.test", TEST_SIZE * MB + 1),
                                            ("limit_kilobytes.test", TEST_SIZE * KB + 1)])
def test_chunked_blocks_if_size_is_greater_than_limit_and_expect_header(kong, host, size):
    refused(chunked(kong, host, size, Expect="100-continue"), 417)


@pytest.mark.parametrize("unit", FACTORS)
def test_chunked_blocks_if_size_is_greater_than_limit_in_unit(kong, unit):
    refused(chunked(kong, f"limit_{unit}.test", TEST_SIZE * FACTORS[unit] + 1))


@pytest.mark.parametrize("unit", FACTORS)
def test_chunked_works_if_size_is_at_the_limit_in_unit(kong, unit):
    assert chunked(kong, f"limit_{unit}.test", TEST_SIZE * FACTORS[unit]).status_code == 200


# ------------------------------------------------------- Content-Length header required

def test_require_content_length_blocks_if_header_is_not_provided(kong):
    response = send(kong, "GET", "/anything", "required.test")
    assert response.status_code == 411
    assert response.json["message"] == "A valid Content-Length header is required"
