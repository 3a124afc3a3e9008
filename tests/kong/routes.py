"""Kong's spec helper ``insert_routes`` as a declarative file, for the router specs.

Each route gets a service of its own at the test's upstream (its ``service`` fields
merged in: ``path``, ``name``, ``enabled``), as Kong's helper does. Kong's specs tell
routes apart by the debug headers (``kong-debug: 1`` answered with ``Kong-Route-Name``
and ``Kong-Service-Name``); here a response-transformer on each route adds the same two
headers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from werkzeug.test import Client, TestResponse

from tests.support.app import in_process


def kong_file(upstream: str, routes: Sequence[dict[str, Any]]) -> str:
    """The declarative file (JSON) of ``routes``: route ``i`` is ``route-i`` of service
    ``service-i`` unless named."""
    services = []
    for index, spec in enumerate(routes, 1):
        spec = dict(spec)
        service = dict(spec.pop("service", {}))
        path = service.pop("path", "")
        service.setdefault("name", f"service-{index}")
        spec.setdefault("name", f"route-{index}")
        spec["plugins"] = [{"name": "response-transformer", "config": {"add": {"headers": [
            f"Kong-Route-Name:{spec['name']}", f"Kong-Service-Name:{service['name']}"]}}}]
        services.append({**service, "url": upstream + path, "routes": [spec]})
    return json.dumps({"_format_version": "3.0", "services": services})


def kong(upstream: str, routes: Sequence[dict[str, Any]]) -> Client:
    """The gateway in process with ``routes`` in front of ``upstream``."""
    return in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(upstream, routes)})


def send(client: Client, path: str = "/", method: str = "GET",
         headers: dict[str, str] | None = None) -> TestResponse:
    """One request, read and closed (its log phase has run)."""
    response = client.open(path, method=method, headers=headers or {})
    response.get_data()
    response.close()
    return response


def route_of(response: TestResponse) -> str | None:
    """The name of the route that took the request (Kong's Kong-Route-Name)."""
    return response.headers.get("Kong-Route-Name")


def echoed(response: TestResponse) -> dict[str, Any]:
    """What the fixture server's echo received: ``target`` (Kong's mock upstream's
    ``vars.request_uri``) and ``headers`` (names as sent, lower-cased here)."""
    body = json.loads(response.get_data())
    body["headers"] = {name.lower(): value for name, value in body["headers"]}
    return body
