"""What the translated auth specs share: an echoing upstream, a gateway from a Kong file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from tests.support.app import in_process
from tests.support.fixture_server import FixtureServer


@pytest.fixture(scope="module")
def upstream() -> Iterator[FixtureServer]:
    server = FixtureServer()
    yield server
    server.stop()


def kong_file(upstream_url: str, plugins: list[dict[str, Any]],
              consumers: list[dict[str, Any]], **top: Any) -> dict[str, str]:
    """The environment of a gateway reading one Kong file: a service, route /, ``plugins``."""
    doc = {"_format_version": "3.0",
           "services": [{"name": "svc", "url": upstream_url,
                         "routes": [{"name": "r", "paths": ["/"]}], "plugins": plugins}],
           "consumers": consumers, **top}
    return {"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(doc), "GATEWAY_ACCESS_LOG": "off"}


def from_file(upstream_url: str, plugins: list[dict[str, Any]],
              consumers: list[dict[str, Any]], **top: Any) -> Client:
    return in_process(kong_file(upstream_url, plugins, consumers, **top))


def call(client: Client, path: str = "/anything", **kwargs: Any) -> TestResponse:
    response = client.open(path, **kwargs)
    response.get_data()
    response.close()
    return response


def upstream_headers(response: TestResponse) -> dict[str, str]:
    """The request headers the upstream received, by lower-case name."""
    return {name.lower(): value for name, value in response.json["headers"]}
