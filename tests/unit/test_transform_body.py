"""Exchange.transform_body (PDK 1.1): a filter written only against gateway.pdk replaces
the response body it read whole; compressed and oversized bodies stream on unchanged."""

from __future__ import annotations

import gzip

import pytest

from tests.support.app import in_process

SHOUT = "tests.support.pdk_filters:Shout"


@pytest.fixture
def client_for(mock_service):
    def build(**env: str):
        return in_process({"GATEWAY_UPSTREAM_URL": mock_service.url, "GATEWAY_FILTERS": SHOUT,
                           **env})
    return build


def test_the_body_is_replaced_with_its_new_length(client_for, mock_service):
    mock_service.route("/t", body=b"hello world", headers={"Content-Type": "text/plain"})
    response = client_for().get("/t")
    assert response.get_data() == b"HELLO WORLD"
    assert response.headers["Content-Length"] == "11"
    assert mock_service.calls("/t")


def test_a_compressed_body_passes_unchanged(client_for, mock_service, caplog):
    packed = gzip.compress(b"hello")
    mock_service.route("/z", body=packed, headers={"Content-Encoding": "gzip"})
    assert client_for().get("/z").get_data() == packed
    assert "gzip-encoded: passed on untransformed" in caplog.text


def test_a_body_past_the_bound_streams_unchanged(client_for, mock_service):
    mock_service.route("/big", body=b"x" * 4096)
    response = client_for(GATEWAY_SHOUT_MAX_BODY="100").get("/big")
    assert response.get_data() == b"x" * 4096


def test_the_gateways_own_answers_are_not_transformed(client_for, mock_service):
    mock_service.route("/missing", status=404, body=b"not found")
    assert client_for().get("/missing").get_data() == b"NOT FOUND"  # the upstream's: yes
    answered = in_process({"GATEWAY_UPSTREAM_URL": "http://127.0.0.1:1",
                           "GATEWAY_FILTERS": SHOUT}).get("/")
    assert answered.status_code == 502 and b"invalid response" in answered.get_data()


def test_head_requests_and_bodiless_statuses_are_left_alone(client_for, mock_service):
    mock_service.route("/empty", status=204)
    assert client_for().get("/empty").status_code == 204


def test_a_head_answer_loses_a_content_length_the_transformed_get_would_not_match(
        client_for, mock_service):
    mock_service.route("/h", body=b"hello world", headers={"Content-Type": "text/plain"})
    response = client_for().head("/h")
    assert response.status_code == 200 and response.get_data() == b""
    assert "Content-Length" not in response.headers
