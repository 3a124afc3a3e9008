"""A WebSocket upstream for the tests (the ``websockets`` library's asyncio server), run as
``python -m tests.support.ws_upstream PORT``.

Paths: ``/echo`` echoes every message; ``/headers`` first sends the handshake's request
headers as a JSON text message, then echoes; ``/close/<code>`` closes with that code
and reason "server bye" after the first message; ``/reset`` resets the TCP connection
(RST) after the first message; ``/refuse/<status>`` answers the handshake with that
status and the body "refused"; ``/events?id=<id>`` answers (plain HTTP) the close code
and reason the server saw on the connection opened with ``?id=<id>``, as JSON.
No keepalive pings, no message size limit.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

#: Close code and reason seen per connection id.
EVENTS: dict[str, dict[str, Any]] = {}


def _query(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    path = urlsplit(request.path).path
    if path.startswith("/refuse/"):
        status = int(path.rsplit("/", 1)[1])
        response = connection.respond(HTTPStatus(status), "refused")
        return response
    if path == "/events":
        event = EVENTS.get(_query(request).get("id", ""))
        if event is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "no such connection\n")
        response = connection.respond(HTTPStatus.OK, json.dumps(event))
        response.headers["Content-Type"] = "application/json"
        return response
    return None


async def handler(ws: ServerConnection) -> None:
    path = urlsplit(ws.request.path).path
    ident = _query(ws.request).get("id")
    try:
        if path == "/headers":
            await ws.send(json.dumps(list(ws.request.headers.raw_items())))
        if path.startswith("/close/"):
            await ws.recv()
            await ws.close(int(path.rsplit("/", 1)[1]), "server bye")
        elif path == "/reset":
            await ws.recv()
            sock = ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            ws.transport.abort()
        else:
            async for message in ws:
                await ws.send(message)
    except Exception:  # the peer vanished: recorded below
        pass
    finally:
        await ws.wait_closed()
        if ident:
            EVENTS[ident] = {"code": ws.close_code, "reason": ws.close_reason}


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, process_request=process_request,
                     max_size=None, ping_interval=None):
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
