"""multipart/form-data through request-transformer (gateway.filters.multipart): the parts a
rule does not touch keep their headers and bytes, a renamed file stays a file, repeated
parts all go with a remove, a body that cannot be read is a 400 (never passed on past a
remove rule), and a value that would end its part early gets the body a new boundary.
Kong's own multipart cases are in tests/kong."""

from __future__ import annotations

import json

import pytest

from gateway.filters import multipart
from tests.support.app import in_process

BOUNDARY = "xyz"
TYPE = f"multipart/form-data; boundary={BOUNDARY}"
FILE = multipart.Part("doc", (("Content-Disposition", 'form-data; name="doc"; filename="a.bin"'),
                              ("Content-Type", "application/octet-stream")),
                      b"\x00\r\nbinary--xy\r\n", "a.bin")


def body(*parts: multipart.Part) -> bytes:
    data, mark = multipart.encode(list(parts), BOUNDARY)
    assert mark == BOUNDARY
    return data


@pytest.fixture
def send(mock_service):

    def post(data: bytes, content_type: str = TYPE, **rules: str):
        client = in_process({"GATEWAY_UPSTREAM_URL": mock_service.url + "/up",
                             "GATEWAY_FILTERS": "request-transformer",
                             **{f"GATEWAY_REQUEST_TRANSFORMER_{k.upper()}": v
                                for k, v in rules.items()}})
        response = client.post("/", data=data, headers={"Content-Type": content_type})
        assert response.status_code == 200
        return mock_service.calls()[-1]
    return post


def test_decode_then_encode_gives_the_same_bytes():
    data = body(multipart.field("a", "1"), FILE)
    assert multipart.encode(multipart.decode(data, BOUNDARY), BOUNDARY) == (data, BOUNDARY)


def test_a_renamed_file_keeps_its_filename_type_and_bytes(send):
    seen = send(body(multipart.field("a", "1"), FILE), rename_body="doc:upload")
    parts = multipart.decode(seen.body, BOUNDARY)
    assert [(p.name, p.filename, p.data) for p in parts] == [
        ("a", None, b"1"), ("upload", "a.bin", FILE.data)]
    assert dict(parts[1].headers)["Content-Type"] == "application/octet-stream"
    assert seen.header("Content-Length") == str(len(seen.body))


def test_replace_and_add_write_plain_fields_and_leave_the_file_alone(send):
    seen = send(body(multipart.field("a", "1"), FILE), replace_body="a:2", add_body="b:3")
    assert multipart.decode(seen.body, BOUNDARY) == [
        multipart.field("a", "2"), FILE, multipart.field("b", "3")]


def test_remove_takes_every_part_of_a_repeated_name(send):
    seen = send(body(multipart.field("a", "1"), multipart.field("a", "2"), FILE),
                remove_body="a")
    assert multipart.decode(seen.body, BOUNDARY) == [FILE]


def test_removing_every_part_sends_an_empty_body(send):
    seen = send(body(multipart.field("a", "1")), remove_body="a")
    assert seen.body == b"" and seen.header("Content-Length") == "0"


def test_an_empty_body_without_a_boundary_gets_one_for_the_added_field(send):
    seen = send(b"", "multipart/form-data", add_body="p1:v1")
    mark = multipart.boundary(seen.header("Content-Type"))
    assert mark and multipart.decode(seen.body, mark) == [multipart.field("p1", "v1")]


@pytest.mark.parametrize(("data", "content_type"), [
    (b"not multipart at all", TYPE),
    (body(multipart.field("a", "1")), "multipart/form-data"),  # no boundary
    (body(multipart.field("a", "1"))[:-10], TYPE),  # cut short
    (b"--xyz\r\nContent-Type: text/plain\r\n\r\n1\r\n--xyz--\r\n", TYPE),  # no name
])
def test_a_body_that_cannot_be_read_is_refused_not_passed_on(mock_service, data,
                                                             content_type):
    client = in_process({"GATEWAY_UPSTREAM_URL": mock_service.url, "GATEWAY_FILTERS":
                         "request-transformer", "GATEWAY_REQUEST_TRANSFORMER_REMOVE_BODY": "a"})
    response = client.post("/", data=data, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json["message"] == "Bad request: the multipart/form-data body cannot be read"
    assert mock_service.calls() == []


@pytest.mark.parametrize("value", [f"--{BOUNDARY}--", f"x --{BOUNDARY} y"])
def test_a_value_holding_the_boundary_gets_the_body_a_new_one(send, value):
    seen = send(body(multipart.field("a", "1")), add_body=json.dumps([f"b:{value}"]))
    mark = multipart.boundary(seen.header("Content-Type"))
    parts = [multipart.field("a", "1"), multipart.field("b", value)]
    assert multipart.decode(seen.body, mark) == parts
    assert (mark == BOUNDARY) == value.startswith("x")  # only when it would cut the part


def test_names_are_quoted_in_the_disposition():
    part = multipart.field('a"b\r\nX-Evil: 1', "v")
    assert part.headers == (("Content-Disposition", 'form-data; name="a%22b%0D%0AX-Evil: 1"'),)


def test_append_rules_alone_never_read_a_multipart_body(send):
    seen = send(b"not read", append_body="a:1")
    assert seen.body == b"not read"
