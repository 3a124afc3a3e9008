"""ex.read_body(max_bytes) (issue 11): a filter reads the request body up to a size; the body
still goes upstream whole and unchanged; past the size a 413 and nothing goes upstream."""

from __future__ import annotations

import io

import pytest

from gateway.testing import assert_gateway_error, assert_not_called

TEAPOT = "tests.support.pdk_filters:Teapot"


@pytest.fixture
def client(gateway_client, mock_service):
    return gateway_client([TEAPOT], {"GATEWAY_TEAPOT_MAX_BODY": "16"}, upstream=mock_service.url)


@pytest.mark.parametrize("body", [b"", b"0123456789", bytes(range(16))])
def test_the_body_read_goes_upstream_unchanged(client, mock_service, body):
    response = client.post("/up?read", data=body)
    assert response.status_code == 200
    [received] = mock_service.calls("/up")
    assert received.body == body
    assert received.header("X-Body-Size") == str(len(body))


def test_a_declared_length_over_the_size_is_a_413_without_an_upstream_call(client, mock_service):
    response = client.post("/up?read", data=b"x" * 17)
    assert_gateway_error(response, 413, "Request size limit exceeded")
    assert_not_called(mock_service)


def test_a_chunked_body_over_the_size_is_a_413_without_an_upstream_call(client, mock_service):
    response = client.post("/up?read", input_stream=io.BytesIO(b"y" * 40),
                           headers={"Transfer-Encoding": "chunked"})
    assert_gateway_error(response, 413, "Request size limit exceeded")
    assert_not_called(mock_service)


def test_a_chunked_body_within_the_size_goes_upstream_chunked(client, mock_service):
    response = client.post("/up?read", input_stream=io.BytesIO(b"z" * 12),
                           headers={"Transfer-Encoding": "chunked"})
    assert response.status_code == 200
    [received] = mock_service.calls("/up")
    assert (received.body, received.header("Transfer-Encoding")) == (b"z" * 12, "chunked")


def test_a_filter_that_does_not_ask_leaves_the_body_alone(client, mock_service):
    response = client.post("/up", data=b"x" * 100)  # larger than the filter's size
    assert response.status_code == 200
    [received] = mock_service.calls("/up")
    assert (received.body, received.header("X-Body-Size")) == (b"x" * 100, None)
