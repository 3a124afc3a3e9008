"""Real processes for the integration tests: the gateway under gunicorn, httpbin, Redis.

Each keeps its stdout and stderr in a file, printed when a test using it fails.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from gateway.testing.servers import GatewayProcess, Process, free_port, wait_for_port

__all__ = ["Gateway", "Process", "reset_peak_rss", "rss_kib", "start_httpbin", "start_redis"]

ROOT = Path(__file__).resolve().parent.parent.parent
VENV_BIN = Path(sys.executable).parent
HTTPBIN_BIN = Path(os.environ.get("HTTPBIN_VENV", ROOT / ".venv-httpbin")) / "bin"


class Gateway(GatewayProcess):
    """The gateway under gunicorn with gevent workers (the kit's), run from the checkout
    ``root``: this one unless a benchmark compares another."""

    def __init__(self, env: dict[str, str], workers: int = 1, root: Path = ROOT) -> None:
        super().__init__(env, workers, conf=root / "gunicorn.conf.py", cwd=root,
                         python=str(VENV_BIN / "python"))


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
