"""Real processes for the integration tests: the gateway under gunicorn, httpbin, Redis.

Each keeps its stdout and stderr in a file, printed when a test using it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.net import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
HTTPBIN_BIN = Path(os.environ.get("HTTPBIN_VENV", ROOT / ".venv-httpbin")) / "bin"


class Process:
    """A child process with its stdout and stderr kept in files, for logs on failure."""

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


class Gateway(Process):
    """The gateway under gunicorn with gevent workers, as a user runs it (from the checkout
    ``root``: this one unless a benchmark compares another)."""

    def __init__(self, env: dict[str, str], workers: int = 1, root: Path = ROOT) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        full_env.update({"GATEWAY_BIND": f"127.0.0.1:{self.port}",
                         "GATEWAY_WORKERS": str(workers), **env})
        argv = [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "gateway.wsgi:app"]
        super().__init__("gateway", argv, env=full_env, cwd=root)
        wait_for_port(self.port, self.popen)
        self.wait_for_workers(workers)

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def wait_for_workers(self, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.logs().count("Booting worker") < count or len(self.worker_pids()) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} workers did not boot:\n{self.logs()}")
            time.sleep(0.05)


def start_httpbin() -> tuple[Process, str]:
    """httpbin (the seed's third-party service) under its own gunicorn and venv."""
    port = free_port()
    argv = [str(HTTPBIN_BIN / "gunicorn"), "-b", f"127.0.0.1:{port}", "-k", "gthread",
            "--threads", "16", "-w", "2", "--no-control-socket", "httpbin:app"]
    # Run outside the repository so this gunicorn does not read our gunicorn.conf.py.
    process = Process("httpbin", argv, cwd=tempfile.gettempdir())
    wait_for_port(port, process.popen)
    return process, f"http://127.0.0.1:{port}"


def start_redis() -> tuple[Process, str]:
    """A real redis-server on a free loopback port, no persistence."""
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no"]
    process = Process("redis", argv, cwd=tempfile.gettempdir())
    wait_for_port(port, process.popen)
    return process, f"redis://127.0.0.1:{port}/0"


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of ``pid`` in KiB (VmHWM: the peak since the last reset)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
