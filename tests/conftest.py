"""Session-wide real servers: httpbin, a fixture server, and a cache of gateways by config.

Servers start once per session and are reused; a failing test gets the logs of
the gateways it used printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.fixture_server import FixtureServer
from tests.support.processes import Gateway, Process, start_httpbin, start_redis

_gateways: dict[tuple, Gateway] = {}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture(scope="session")
def httpbin() -> Iterator[str]:
    """Base URL of a real httpbin under gunicorn."""
    process, url = start_httpbin()
    yield url
    process.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real redis-server (installed by `make test`)."""
    process, url = start_redis()
    yield url
    process.stop()


@pytest.fixture(scope="session")
def fixture_server() -> Iterator[FixtureServer]:
    """The fixture server (counting, stalling, streaming routes)."""
    server = FixtureServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _gateway_cache() -> Iterator[dict[tuple, Gateway]]:
    yield _gateways
    for gateway in _gateways.values():
        gateway.stop()


@pytest.fixture
def gateway(request: pytest.FixtureRequest,
            _gateway_cache: dict[tuple, Gateway]) -> Iterator[Callable[..., Gateway]]:
    """Start (or reuse) a gateway for an environment: ``gateway({"GATEWAY_...": ...})``.

    ``fresh=True`` starts a private one that is stopped after the test (for tests
    that signal or kill it, or need cold per-worker state).
    """
    used: list[Process] = []
    private: list[Process] = []

    def start(env: dict[str, str], workers: int = 1, fresh: bool = False) -> Gateway:
        key = (tuple(sorted(env.items())), workers)
        if fresh:
            process = Gateway(env, workers)
            private.append(process)
        else:
            if key not in _gateway_cache or _gateway_cache[key].popen.poll() is not None:
                _gateway_cache[key] = Gateway(env, workers)
            process = _gateway_cache[key]
        used.append(process)
        return process

    yield start
    if getattr(request.node, "call_failed", False):
        for process in used:
            tail = process.logs()[-8000:]
            print(f"\n----- {process.name} log ({process.log_path}) -----\n{tail}")
    for process in private:
        process.stop()
