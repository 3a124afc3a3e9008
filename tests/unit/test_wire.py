"""gateway.proxy.wire on a socket pair: the request head, and answers fed whole or a byte
at a time (every read boundary), well-formed or hostile."""

from __future__ import annotations

import io
import socket
import threading

import pytest

from gateway.proxy import wire


def answer_of(data: bytes, head_request: bool = False, byte_by_byte: bool = False,
              close: bool = True) -> tuple[wire.Response, bytes]:
    """(response after its body was read, the body) for ``data`` sent by the peer."""
    ours, peer = socket.socketpair()
    with ours, peer:
        def send() -> None:
            for piece in (data[i:i + 1] for i in range(len(data))) if byte_by_byte else [data]:
                peer.sendall(piece)
            if close:
                peer.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            response = wire.Response(ours, head_request)
            response.read_head(5)
            body = b"".join(response)
            response.close()
        finally:
            sender.join()
    return response, body


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_chunked_answer_after_informational_ones(byte_by_byte):
    data = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    response, body = answer_of(data, byte_by_byte=byte_by_byte, close=False)
    assert (response.status, body) == (201, b"hello world")
    assert response.headers == [("Transfer-Encoding", "chunked"), ("X-A", "1")]
    assert response.reusable


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_content_length_answer_is_read_to_its_length(byte_by_byte):
    response, body = answer_of(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                               byte_by_byte=byte_by_byte, close=False)
    assert (body, response.reusable) == (b"hello", True)


def test_head_answer_ends_at_the_head():
    response, body = answer_of(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                               head_request=True, close=False)
    assert (response.status, body, response.reusable) == (200, b"", True)


def test_close_delimited_answer_ends_at_eof_and_is_not_reusable():
    response, body = answer_of(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 300_000)
    assert (body, response.reusable) == (b"x" * 300_000, False)


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
])
def test_answers_after_which_the_connection_is_not_reused(data):
    response, body = answer_of(data)
    assert (body, response.reusable) == (b"ok", False)


@pytest.mark.parametrize("data", [
    b"HTTP/1.1 200 OK\r\nX-Evil: a\rSet-Cookie: x=1\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Evil: a\0b\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX Evil: a\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n",
])
def test_hostile_answers_are_refused(data):
    with pytest.raises(wire.InvalidResponse):
        answer_of(data)


@pytest.mark.parametrize(("data", "error"), [
    (b"", wire.ClosedEarly),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", wire.ClosedEarly),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", wire.ClosedEarly),
])
def test_connection_ending_early_is_told_apart(data, error):
    with pytest.raises(error):
        answer_of(data)


def test_request_head_refuses_injected_lines():
    assert wire.request_head("GET", "/a?b", [("Host", "h"), ("X-A", "1")]) == (
        b"GET /a?b HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n")
    for value in ("a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b"):
        with pytest.raises(ValueError):
            wire.request_head("GET", "/", [("X-A", value)])


def test_bodies_are_sent_as_framed():
    ours, peer = socket.socketpair()
    with ours, peer:
        wire.send_request(ours, b"HEAD\r\n\r\n", io.BytesIO(b"abc"), chunked=True)
        wire.send_request(ours, b"H2\r\n\r\n", b"xy", chunked=False)
        ours.shutdown(socket.SHUT_WR)
        received = b"".join(iter(lambda: peer.recv(65536), b""))
    assert received == b"HEAD\r\n\r\n3\r\nabc\r\n0\r\n\r\nH2\r\n\r\nxy"


def test_peer_closed_sees_a_hang_up_not_a_pipelined_request():
    ours, peer = socket.socketpair()
    with ours, peer:
        assert not wire.peer_closed(ours)
        peer.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert not wire.peer_closed(ours)
        peer.shutdown(socket.SHUT_WR)
        assert wire.peer_closed(ours)


def test_send_all_sends_what_the_kernel_did_not_take_at_once() -> None:
    """A payload larger than the socket buffers arrives whole and in order."""
    import socket
    import threading

    from gateway.ops.sockets import send_all

    left, right = socket.socketpair()
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = bytes(range(256)) * 16384  # 4 MiB
    received = bytearray()

    def read() -> None:
        while piece := right.recv(65536):
            received.extend(piece)

    reader = threading.Thread(target=read)
    reader.start()
    send_all(left, data)
    left.close()
    reader.join(10)
    right.close()
    assert bytes(received) == data
