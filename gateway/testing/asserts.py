"""Assertions filter authors make, with messages that show what came instead.

They take werkzeug's test responses (in-process) and :class:`~.servers.Reply`
(a real server) alike: anything with ``status_code``, ``headers`` and ``data``.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.testing.mock import MockService


def assert_header(response: Any, name: str, expected: str | None) -> None:
    """The response has header ``name`` with value ``expected`` (None: has no such header)."""
    actual = response.headers.get(name)
    assert actual == expected, f"header {name}: expected {expected!r}, got {actual!r}"


def assert_gateway_error(response: Any, status: int, message: str) -> None:
    """The gateway answered ``status`` itself, its error body's message starting ``message``
    (the JSON shape: message and request_id)."""
    assert response.status_code == status, \
        f"status: expected {status}, got {response.status_code}: {response.data[:300]!r}"
    body = json.loads(response.data)
    assert body["message"].startswith(message), \
        f"message: expected {message!r}..., got {body['message']!r}"
    assert body["request_id"] == response.headers.get("X-Request-ID")


def assert_not_called(service: MockService, path: str | None = None) -> None:
    """The mock received no request (on ``path``, when given)."""
    calls = service.calls(path)
    assert not calls, f"{len(calls)} unexpected request(s): {calls[:3]}"


def assert_called_once(service: MockService, path: str | None = None) -> Any:
    """The mock received exactly one request (on ``path``); returns it."""
    calls = service.calls(path)
    assert len(calls) == 1, f"expected one request, got {len(calls)}: {calls[:3]}"
    return calls[0]
