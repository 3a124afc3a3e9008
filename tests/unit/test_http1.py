"""The worker's request cycle (gateway.ops.http1): gunicorn's environ and bytes, the head
in the same send as the body."""

from __future__ import annotations

import re

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser
from gunicorn.http.wsgi import Response, create

from gateway.ops.http1 import REPEATED_HEADERS, OneSendResponse, RequestCycle


class Recorder:
    """A socket that keeps what each send and sendall was given (all of it taken)."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    def send(self, data: bytes) -> int:
        self.sends.append(bytes(data))
        return len(data)


class Req:
    """What gunicorn's Response reads of a request."""

    def __init__(self, method: str = "GET", version: tuple[int, int] = (1, 1)) -> None:
        self.method = method
        self.version = version

    def should_close(self) -> bool:
        return False


def _undated(data: bytes) -> bytes:
    return re.sub(rb"Date: [^\r]*\r\n", b"", data)


def _exchange(cls: type[Response], req: Req, status: str, headers: list[tuple[str, str]],
              body: list[bytes]) -> list[bytes]:
    sock = Recorder()
    resp = cls(req, sock, Config())
    resp.start_response(status, headers)
    for piece in body:
        resp.write(piece)
    resp.close()
    return sock.sends


CASES = {
    "with a length": (Req(), "200 OK", [("Content-Length", "5")], [b"hello"]),
    "chunked": (Req(), "200 OK", [("Content-Type", "text/plain")], [b"he", b"llo"]),
    "chunked, no body": (Req(), "200 OK", [], []),
    "HEAD": (Req("HEAD"), "200 OK", [("Content-Length", "5")], [b"hello"]),
    "204": (Req(), "204 No Content", [], [b""]),
    "HTTP/1.0": (Req(version=(1, 0)), "200 OK", [], [b"hello"]),
    "an empty piece first": (Req(), "200 OK", [("Content-Length", "5")], [b"", b"hello"]),
    "hop-by-hop fields": (Req(), "200 OK", [("Connection", "close"), ("Keep-Alive", "5"),
                                            ("X-A", " padded\t"), ("Content-Length", " 5 "),
                                            ("Transfer-Encoding", "chunked")], [b"hello"]),
    "an upgrade": (Req(), "101 Switching Protocols", [("Connection", "Upgrade"),
                                                       ("Upgrade", "websocket")], []),
}


@pytest.mark.parametrize("case", CASES)
def test_the_bytes_are_gunicorns(case: str) -> None:
    """Whatever the framing, the client gets exactly what gunicorn's Response writes."""
    ours = _exchange(OneSendResponse, *CASES[case])
    theirs = _exchange(Response, *CASES[case])
    assert _undated(b"".join(ours)) == _undated(b"".join(theirs))
    assert b"Date: " in b"".join(ours)


def test_head_and_body_go_in_one_send() -> None:
    sends = _exchange(OneSendResponse, *CASES["with a length"])
    assert len(sends) == 1
    assert sends[0].startswith(b"HTTP/1.1 200 OK\r\n") and sends[0].endswith(b"\r\n\r\nhello")


def test_chunked_head_goes_with_the_first_chunk_and_the_last_chunk_alone() -> None:
    sends = _exchange(OneSendResponse, *CASES["chunked"])
    assert [s[-9:] for s in sends] == [b"\r\n2\r\nhe\r\n", b"3\r\nllo\r\n", b"0\r\n\r\n"]


def test_an_empty_chunked_answer_is_one_send() -> None:
    sends = _exchange(OneSendResponse, *CASES["chunked, no body"])
    assert len(sends) == 1 and sends[0].endswith(b"\r\n\r\n0\r\n\r\n")


def test_a_head_without_body_bytes_is_sent_before_write_returns() -> None:
    sock = Recorder()
    resp = OneSendResponse(Req("HEAD"), sock, Config())
    resp.start_response("200 OK", [("Content-Length", "5")])
    resp.write(b"hello")
    assert len(sock.sends) == 1 and sock.sends[0].endswith(b"Content-Length: 5\r\n\r\n")


@pytest.mark.parametrize("field", [("X-Bad", "a\r\nb"), ("Bad Name", "x"), ("X-A", 1),
                                   (b"X-A", "x")])
def test_a_bad_header_is_refused_as_by_gunicorn(field: tuple[object, object]) -> None:
    """The same exception, twice (the second time the name is a known one)."""
    for _ in range(2):
        with pytest.raises(Exception) as theirs:
            Response(Req(), Recorder(), Config()).start_response("200 OK", [field])
        with pytest.raises(type(theirs.value)) as ours:
            OneSendResponse(Req(), Recorder(), Config()).start_response("200 OK", [field])
        assert str(ours.value) == str(theirs.value)


class Worker:
    """What the request cycle reads of its worker at start."""

    def __init__(self) -> None:
        self.cfg = Config()


RAW = (b"POST /a%20b/c?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nX-Thing: one\r\n"
       b"Content-Type: text/plain\r\nContent-Length: 3\r\nX-Thing: two\r\n"
       b"Expect: 100-continue\r\n\r\nabc")


@pytest.mark.parametrize("server", [("127.0.0.1", 8000), "unix:/tmp/x.sock"])
def test_the_environ_is_gunicorns(server: object) -> None:
    """Key for key what gunicorn.http.wsgi.create builds (the callables and streams aside)."""
    def parsed() -> object:
        return next(RequestParser(Config(), iter([RAW]), ("10.0.0.1", 5555)))

    ours_sock, theirs_sock = Sent(), Sent()
    ours_req, theirs_req = parsed(), parsed()
    cycle = RequestCycle(Worker())
    resp = OneSendResponse(ours_req, ours_sock, cycle.cfg)
    ours = cycle.environ(ours_req, ours_sock, ("10.0.0.1", 5555), server, resp)
    _, theirs = create(theirs_req, theirs_sock, ("10.0.0.1", 5555), server, Config())
    theirs["wsgi.multithread"] = True  # set by gunicorn's handle_request
    # ours alone says which headers came on several lines (key-auth's duplicate key)
    assert ours.pop(REPEATED_HEADERS) == {"HTTP_X_THING"}
    skip = {"wsgi.errors", "wsgi.input", "gunicorn.socket", "wsgi.early_hints"}
    assert {k: v for k, v in ours.items() if k not in skip} == \
        {k: v for k, v in theirs.items() if k not in skip}
    assert set(ours) == set(theirs)
    assert ours["HTTP_X_THING"] == "one,two" and ours["PATH_INFO"] == "/a b/c"
    assert ours_sock.sent == theirs_sock.sent == [b"HTTP/1.1 100 Continue\r\n\r\n"]


class Sent:
    """A socket that keeps what send was given."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)


def test_a_settled_config_answers_as_gunicorns() -> None:
    """Every setting reads the same after settle(), the properties included."""
    from gateway.ops.worker import settle

    cfg = Config()
    cfg.set("keepalive", 7)
    before = {name: getattr(cfg, name) for name in cfg.settings}
    settle(cfg)
    assert {name: getattr(cfg, name) for name in cfg.settings} == before
    assert cfg.keepalive == 7 and "keepalive" in vars(cfg)
    assert "worker_class" not in vars(cfg)  # Config's property of that name stays in charge
