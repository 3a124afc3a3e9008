"""The gateway under test: in this process through ``create_app``, or as a real gunicorn
server with gevent workers; plus the small network helpers both need.

Nothing here starts or imports the gateway's app until called, so importing
the pytest plugin has no side effects.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.test import Client

    from gateway.filters.base import Filter

#: The gunicorn configuration of a checkout (or an editable install) of the gateway.
CHECKOUT_CONF = Path(__file__).resolve().parent.parent.parent / "gunicorn.conf.py"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 15) -> None:
    """Block until something accepts on ``port``; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


@dataclass(frozen=True)
class Reply:
    """An HTTP answer, shaped like werkzeug's test response (status_code, headers, data)."""

    status_code: int
    headers: Message
    data: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def http_request(url: str, method: str = "GET", headers: Mapping[str, str] | None = None,
                 body: bytes | None = None, timeout: float = 30) -> Reply:
    """One request to a full ``url`` (http only), the target sent as given."""
    rest = url.removeprefix("http://")
    hostport, slash, target = rest.partition("/")
    host, _, port = hostport.partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        conn.request(method, slash + target, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def filter_name(spec: str | type) -> str:
    """What GATEWAY_FILTERS calls a filter: a name as given, a class by its entry in the
    built-ins or else as module:Class (so it goes through the production loader)."""
    if isinstance(spec, str):
        return spec
    from gateway.filters import REGISTRY

    if REGISTRY.get(spec.NAME) is spec:
        return spec.NAME
    return f"{spec.__module__}:{spec.__qualname__}"


def gateway_environ(filters: Sequence[str | type], settings: Mapping[str, str],
                    upstream: str | None) -> dict[str, str]:
    """GATEWAY_* variables for ``filters`` (names or classes) and ``settings``."""
    env = dict(settings)
    if upstream is not None:
        env["GATEWAY_UPSTREAM_URL"] = upstream
    if filters:
        env["GATEWAY_FILTERS"] = ",".join(filter_name(f) for f in filters)
    return env


def in_process(environ: Mapping[str, str], extra_filters: Sequence[Filter] = (),
               use_cookies: bool = True) -> Client:
    """The app ``create_app`` builds from ``environ`` (unknown variables refused, ProxyFix
    when trusted proxies are set), plus ``extra_filters``, behind werkzeug's test Client."""
    from werkzeug.test import Client

    from gateway.server.app import create_app

    return Client(create_app(environ, extra_filters), use_cookies=use_cookies)


class Process:
    """A child process with its stdout and stderr kept in a file, for logs on failure."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None,
                 cwd: str | Path | None = None) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


class GatewayProcess(Process):
    """The gateway under gunicorn with gevent workers, as a user runs it: ``conf`` is the
    gunicorn.conf.py to use, run from ``cwd`` (default: its folder)."""

    def __init__(self, env: Mapping[str, str], workers: int = 1,
                 conf: Path = CHECKOUT_CONF, cwd: Path | None = None,
                 python: str = sys.executable) -> None:
        if not conf.is_file():
            raise FileNotFoundError(f"no gunicorn configuration at {conf}; pass "
                                    "--gateway-gunicorn-conf=PATH to pytest")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        full_env.update({"GATEWAY_BIND": f"127.0.0.1:{self.port}",
                         "GATEWAY_WORKERS": str(workers), **env})
        argv = [python, "-m", "gunicorn", "-c", str(conf), "gateway.wsgi:app"]
        super().__init__("gateway", argv, env=full_env, cwd=cwd or conf.parent)
        wait_for_port(self.port, self.popen)
        self.wait_for_workers(workers)
        status_path = full_env.get("GATEWAY_STATUS_PATH", "/_gateway").rstrip("/")
        if status_path.lower() != "off":
            self.wait_until_serving(f"{self.url}{status_path}/health")

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def wait_until_serving(self, health_url: str, timeout: float = 15) -> None:
        """Block until a worker has loaded the app and answers its health endpoint (a
        booted worker may still be importing it; a request would wait in the queue)."""
        deadline = time.monotonic() + timeout
        while http_request(health_url, timeout=timeout).status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{health_url} does not answer 200:\n{self.logs()}")
            time.sleep(0.05)

    def wait_for_workers(self, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.logs().count("Booting worker") < count or len(self.worker_pids()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} workers did not boot:\n{self.logs()}")
            time.sleep(0.05)
