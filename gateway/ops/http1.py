"""The gevent worker's HTTP/1.x request cycle: gunicorn's, with less work per request.

gunicorn's own cycle (``AsyncWorker.handle_request`` and ``gunicorn.http.wsgi.create``)
rebuilds per request what does not change in a worker: the base WSGI environ (a
``wsgi.errors`` wrapper looking up the log handlers), ``SCRIPT_NAME`` from the process
environment, the hooks through the config's slow attribute lookup; and its Response
writes the head and the body in two sends, formatting the Date header every time.
Here the constant parts are made once per worker, the Date once per second, and the
head goes out in the same send as the first body bytes (or the last chunk).

Everything observable stays gunicorn's: the same environ keys and values, the same
checks of the status and header fields (its Response does them), the same
pre_request/post_request hooks, max_requests, 100-continue, keep-alive and error
handling. gunicorn's parser still reads the request (limits, smuggling checks).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime
from email.utils import formatdate
from typing import Any

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.http.errors import InvalidResponseHeader, InvalidResponseHeaderName
from gunicorn.http.message import TOKEN_RE
from gunicorn.http.wsgi import HEADER_VALUE_RE
from gunicorn.workers.base_async import ALREADY_HANDLED

from gateway.ops.sockets import send_all

#: Environ key of the ``HTTP_*`` keys whose header came on several lines (joined with ","
#: in the environ, as WSGI servers do), present only when some did: a filter that must
#: tell ``a`` and ``b`` on two lines from one value ``a,b`` (key-auth's duplicate key).
REPEATED_HEADERS = "gateway.repeated_headers"

#: The last chunk of a chunked body.
_LAST_CHUNK = b"0\r\n\r\n"
#: Response header names that passed gunicorn's token check: name -> (lowered, hop-by-hop).
#: The same few dozen names come on every response; their values are checked every time.
_NAMES: dict[str, tuple[str, bool]] = {}
_MAX_NAMES = 1024


class _Date:
    """The Date header's value, formatted once per second (RFC 9110 5.6.7 has seconds)."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, formatdate(second, localtime=False, usegmt=True)
        return cls.value


class OneSendResponse(wsgi.Response):
    """gunicorn's Response whose head goes out with the first body bytes, in one send.

    While :meth:`write` runs for the first time, gunicorn's ``send_headers`` keeps the
    head instead of sending it and ``_emit_body`` sends it with the body; whatever path
    write took, the head is out when it returns. Any other caller of send_headers
    (sendfile, close) sends at once, as gunicorn does.
    """

    _holding = False
    _head: bytes | None = None

    def process_headers(self, headers: Any) -> None:
        """gunicorn's checks and hop-by-hop filtering of the app's header fields, in its
        order, with each name's token check and lowering done once per worker.

        HEADER_VALUE_RE allows a set of characters, so the values pass it together
        exactly when each one does: one match over them all, instead of one per field;
        only when that fails (or a value is not text) is each field checked, in
        gunicorn's order, for its error.
        """
        headers = list(headers)
        try:
            values_ok = HEADER_VALUE_RE.fullmatch("".join([v for _, v in headers])) is not None
        except TypeError:  # a value that is not text: the loop says which
            values_ok = False
        for name, value in headers:
            known = _NAMES.get(name) if isinstance(name, str) else None
            if known is None:
                known = _checked_name(name)
            if not values_ok:
                _check_value(name, value)
            value = value.strip(" \t")
            lowered, hop_by_hop = known
            if lowered == "content-length":
                self.response_length = int(value)
            elif hop_by_hop:
                if lowered == "connection":
                    if value.lower() == "upgrade":
                        self.upgrade = True
                elif lowered == "upgrade" and value.lower() == "websocket":
                    self.headers.append((name, value))
                continue
            self.headers.append((name, value))

    def default_headers(self) -> list[str]:
        if self.upgrade:
            connection = "upgrade"
        elif self.should_close():
            connection = "close"
        else:
            connection = "keep-alive"
        version = self.req.version
        headers = [f"HTTP/{version[0]}.{version[1]} {self.status}\r\n",
                   f"Server: {self.version}\r\n", f"Date: {_Date.now()}\r\n",
                   f"Connection: {connection}\r\n"]
        if self.chunked:
            headers.append("Transfer-Encoding: chunked\r\n")
        return headers

    def _head_bytes(self) -> bytes:
        lines = self.default_headers()
        lines.extend([f"{name}: {value}\r\n" for name, value in self.headers])
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        head = self._head_bytes()
        self.headers_sent = True
        if self._holding:
            self._head = head
        else:
            send_all(self.sock, head)

    def write(self, arg: bytes) -> None:
        if self.headers_sent:
            super().write(arg)
            return
        self._holding = True
        try:
            super().write(arg)
        finally:
            self._holding = False
            head, self._head = self._head, None
            if head is not None:  # no body bytes went with it (HEAD, 204, an empty piece)
                send_all(self.sock, head)

    def _emit_body(self, data: bytes) -> None:
        head, self._head = self._head, None
        if head is None:
            super()._emit_body(data)
        elif self.chunked:
            send_all(self.sock, b"%b%X\r\n%b\r\n" % (head, len(data), data))
        else:
            send_all(self.sock, head + data)

    def close(self) -> None:
        if self.headers_sent:
            super().close()
            return
        head = self._head_bytes()
        self.headers_sent = True
        send_all(self.sock, head + _LAST_CHUNK if self.chunked else head)


def _check_value(name: str, value: Any) -> None:
    """gunicorn's checks of a response header value."""
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    if not HEADER_VALUE_RE.fullmatch(value):
        raise InvalidResponseHeader(f"{name!r}")  # the name only: values may be secret


def _checked_name(name: Any) -> tuple[str, bool]:
    """gunicorn's checks of a response header name; (lowered, hop-by-hop), remembered."""
    if not isinstance(name, str):
        raise TypeError(f"{name!r} is not a string")
    if not TOKEN_RE.fullmatch(name):
        raise InvalidResponseHeaderName(f"{name!r}")
    known = (name.lower(), util.is_hoppish(name))
    if len(_NAMES) < _MAX_NAMES:
        _NAMES[name] = known
    return known


class RequestCycle:
    """One worker's HTTP/1.x request handling (gunicorn's ``handle_request``)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        cfg = worker.cfg
        self.cfg = cfg
        self.pre_request = cfg.pre_request
        self.post_request = cfg.post_request
        self.keepalive = cfg.keepalive
        self.base = wsgi.base_environ(cfg)
        self.base["wsgi.multithread"] = True
        self.script_name = os.environ.get("SCRIPT_NAME", "")

    def reopened(self) -> None:
        """The log files were reopened (SIGUSR1): ``wsgi.errors`` must write to the new ones."""
        self.base["wsgi.errors"] = wsgi.WSGIErrorsWrapper(self.cfg)

    def environ(self, req: Any, sock: socket.socket, client: Any, server: Any,
                resp: OneSendResponse) -> dict[str, Any]:
        """The WSGI environ of ``req``: what ``gunicorn.http.wsgi.create`` builds."""
        environ = self.base.copy()
        environ["wsgi.input"] = req.body
        environ["gunicorn.socket"] = sock
        environ["REQUEST_METHOD"] = req.method
        environ["QUERY_STRING"] = req.query
        environ["RAW_URI"] = req.uri
        environ["SERVER_PROTOCOL"] = f"HTTP/{req.version[0]}.{req.version[1]}"
        if req._expected_100_continue:
            sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        host = None
        script_name = self.script_name
        repeated: dict[str, list[str]] = {}
        for name, value in req.headers:
            if name == "HOST":
                host = value
            elif name == "SCRIPT_NAME":
                script_name = value
            elif name == "CONTENT-TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            elif name == "CONTENT-LENGTH":
                environ["CONTENT_LENGTH"] = value
                continue
            key = "HTTP_" + name.replace("-", "_")
            if key in environ:
                repeated.setdefault(key, [environ[key]]).append(value)
            else:
                environ[key] = value
        for key, values in repeated.items():
            environ[key] = ",".join(values)
        if repeated:
            environ[REPEATED_HEADERS] = frozenset(repeated)
        environ["wsgi.url_scheme"] = req.scheme
        _remote(environ, client)
        name, port = _server(server, host, req.scheme)
        environ["SERVER_NAME"] = name
        environ["SERVER_PORT"] = str(port)
        path_info = req.path
        if script_name:
            if not path_info.startswith(script_name):
                raise wsgi.ConfigurationProblem(
                    f"Request path {path_info!r} does not start with SCRIPT_NAME "
                    f"{script_name!r}")
            path_info = path_info[len(script_name):]
        environ["PATH_INFO"] = util.unquote_to_wsgi_str(path_info)
        environ["SCRIPT_NAME"] = script_name
        if req.proxy_protocol_info:
            environ.update(wsgi.proxy_environ(req))
        environ["wsgi.early_hints"] = wsgi._make_early_hints_callback(req, sock, resp)
        return environ

    def handle(self, listener_name: Any, req: Any, sock: socket.socket, addr: Any) -> None:
        """Answer ``req``: gunicorn's ``AsyncWorker.handle_request``, step for step;
        StopIteration when the connection must close after it."""
        worker = self.worker
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.pre_request(worker, req)
            resp = OneSendResponse(req, sock, self.cfg)
            environ = self.environ(req, sock, addr, listener_name, resp)
            worker.nr += 1
            if worker.nr >= worker.max_requests and worker.alive:
                worker.log.info("Autorestarting worker after current request.")
                worker.alive = False
            if not worker.alive or not self.keepalive:
                resp.force_close()
            if not self._respond(req, environ, resp):
                return
            if resp.should_close():
                raise StopIteration()
        except StopIteration:
            raise
        except OSError:
            raise  # handle() ignores a client that left
        except (Exception, SystemExit):
            if resp is not None and resp.headers_sent:
                # The response started: a 500 on the same socket would corrupt it.
                worker.log.exception("Error handling request")
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass
                raise StopIteration() from None
            raise
        finally:
            try:
                self.post_request(worker, req, environ, resp)
            except Exception:
                worker.log.exception("Exception in post_request hook")

    def _respond(self, req: Any, environ: dict[str, Any], resp: OneSendResponse) -> bool:
        """Run the app and write its answer; False when the app took the connection over
        (a WebSocket tunnel). gunicorn's access log, when one is configured, gets the
        request (the gateway's logger writes its own line instead: no timing then)."""
        log = self.worker.log
        started = datetime.now() if log.access_log_enabled else None
        respiter = self.worker.wsgi(environ, resp.start_response)
        if respiter is ALREADY_HANDLED:
            return False
        try:
            if isinstance(respiter, wsgi.FileWrapper):
                resp.write_file(respiter)
            else:
                for item in respiter:
                    resp.write(item)
            resp.close()
        finally:
            if started is not None:
                log.access(resp, req, environ, datetime.now() - started)
            if hasattr(respiter, "close"):
                respiter.close()
        return True


def _remote(environ: dict[str, Any], client: Any) -> None:
    if isinstance(client, str):
        environ["REMOTE_ADDR"] = client
    elif isinstance(client, bytes):
        environ["REMOTE_ADDR"] = client.decode()
    else:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])


def _server(server: Any, host: str | None, scheme: str) -> tuple[Any, Any]:
    """SERVER_NAME and SERVER_PORT as gunicorn derives them (the Host for a unix socket)."""
    if not isinstance(server, str):
        return server[0], server[1]
    parts: list[Any] = server.split(":")
    if len(parts) == 1:
        if host:
            parts = host.split(":")
            if len(parts) == 1:
                parts.append({"http": 80, "https": 443}.get(scheme, ""))
        else:
            parts.append("")
    return parts[0], parts[1]
