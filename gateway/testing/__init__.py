"""The gateway's testing kit (Kong's Pongo): a pytest plugin for filter authors.

Installed with the gateway and loaded by pytest through the ``pytest11`` entry
point. Fixtures:

- ``mock_service``: a :class:`MockService` (routes answering a status, JSON,
  headers, a delay, a dropped connection or a stall; every request recorded),
  for the upstream and the third parties a filter calls.
- ``gateway_client(filters, settings, upstream=None)``: the gateway in this
  process, built by the production ``create_app``, behind werkzeug's test
  Client; with no upstream, a mock that echoes requests (``client.upstream``).
- ``gateway_server(filters, settings, upstream=None, workers=1)``: the gateway
  under gunicorn with gevent workers, as deployed (``.url``, ``.logs()``); its
  log is printed when the test fails.

``filters`` are names (built-in or installed) or Filter classes; ``settings``
are GATEWAY_* variables. Importing this module starts nothing and patches
nothing: servers start when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gateway.testing.asserts import (
    assert_called_once,
    assert_gateway_error,
    assert_header,
    assert_not_called,
)
from gateway.testing.mock import MockService, Recorded
from gateway.testing.servers import (
    CHECKOUT_CONF,
    GatewayProcess,
    Reply,
    gateway_environ,
    http_request,
    in_process,
)

__all__ = ["GatewayProcess", "MockService", "Recorded", "Reply", "assert_called_once",
           "assert_gateway_error", "assert_header", "assert_not_called", "gateway_environ",
           "http_request", "in_process"]

_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--gateway-gunicorn-conf", default=str(CHECKOUT_CONF),
                     help="gunicorn.conf.py for the gateway_server fixture "
                          "(default: the gateway checkout's)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


def _echo_if_none(upstream: str | None, settings: Mapping[str, str] | None,
                  mocks: list[MockService]) -> tuple[str | None, MockService | None]:
    """(upstream URL, echo mock): a new echoing mock when no upstream is given at all."""
    if upstream is not None or "GATEWAY_UPSTREAM_URL" in (settings or {}):
        return upstream, None
    echo = MockService()
    mocks.append(echo)
    return echo.url, echo


@pytest.fixture
def mock_service() -> Iterator[MockService]:
    """A mock HTTP service on a free loopback port, stopped after the test."""
    service = MockService()
    yield service
    service.stop()


@pytest.fixture
def gateway_client() -> Iterator[Callable[..., Any]]:
    """``gateway_client(filters, settings, upstream=None)``: the gateway in this process."""
    mocks: list[MockService] = []

    def make(filters: Sequence[str | type] = (), settings: Mapping[str, str] | None = None,
             upstream: str | None = None) -> Any:
        upstream, echo = _echo_if_none(upstream, settings, mocks)
        environ = {"GATEWAY_ACCESS_LOG": "off", **gateway_environ(filters, settings or {},
                                                                   upstream)}
        client = in_process(environ)
        client.upstream = echo
        return client

    yield make
    for mock in mocks:
        mock.stop()


@pytest.fixture
def gateway_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., GatewayProcess]]:
    """``gateway_server(filters, settings, upstream=None, workers=1)``: the gateway under
    gunicorn with gevent workers, stopped after the test (its log printed if it failed)."""
    started: list[GatewayProcess] = []
    mocks: list[MockService] = []
    conf = Path(request.config.getoption("--gateway-gunicorn-conf"))

    def start(filters: Sequence[str | type] = (), settings: Mapping[str, str] | None = None,
              upstream: str | None = None, workers: int = 1) -> GatewayProcess:
        upstream, echo = _echo_if_none(upstream, settings, mocks)
        process = GatewayProcess(gateway_environ(filters, settings or {}, upstream), workers,
                                 conf=conf)
        process.upstream = echo
        started.append(process)
        return process

    yield start
    for process in started:
        if request.node.stash.get(_FAILED, False):
            print(f"\n----- gateway log ({process.log_path}) -----\n{process.logs()[-8000:]}")
        process.stop()
    for mock in mocks:
        mock.stop()
