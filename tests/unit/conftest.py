"""Unit tests run the gateway app in-process, in front of a fixture server per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fixture_server import FixtureServer


@pytest.fixture(scope="module")
def upstream() -> Iterator[FixtureServer]:
    server = FixtureServer()
    yield server
    server.stop()
