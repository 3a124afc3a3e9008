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


@pytest.fixture
def entry_points(tmp_path, monkeypatch):
    """An installed distribution registering filters in the gateway.filters group."""
    dist = tmp_path / "gateway_teapot-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gateway-teapot\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[gateway.filters]\nteapot = tests.support.pdk_filters:Teapot\n"
        "broken = tests.support.no_such_module:Teapot\n"
        "misnamed = tests.support.pdk_filters:Late\n")
    monkeypatch.syspath_prepend(str(tmp_path))
