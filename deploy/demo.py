"""`make run`: the gateway on gunicorn gevent workers, with a local httpbin as upstream.

With GATEWAY_UPSTREAM_URL set, runs the gateway against it (the production
command). Without it, starts httpbin (the seed's third-party service) on
loopback, puts the gateway in front with the enrichment filter calling
httpbin's /anything (the seed plugin's X-MyPlugin header) and prints a curl
line. Ctrl-C stops all.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
            "gateway.wsgi:app"]
HTTPBIN_PORT = int(os.environ.get("DEMO_HTTPBIN_PORT", "8001"))


def wait_for(port: int, process: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"demo: httpbin did not start on port {HTTPBIN_PORT}")


def main() -> int:
    if os.environ.get("GATEWAY_UPSTREAM_URL"):
        os.chdir(ROOT)
        os.execv(GUNICORN[0], GUNICORN)
    httpbin = subprocess.Popen(
        [str(ROOT / ".venv-httpbin/bin/gunicorn"), "-b", f"127.0.0.1:{HTTPBIN_PORT}",
         "-k", "gthread", "--threads", "16", "--no-control-socket", "httpbin:app"],
        cwd=tempfile.gettempdir(), start_new_session=True)
    wait_for(HTTPBIN_PORT, httpbin)
    upstream = f"http://127.0.0.1:{HTTPBIN_PORT}"
    env = {**os.environ, "GATEWAY_UPSTREAM_URL": upstream}
    env.setdefault("GATEWAY_FILTERS", "enrichment")
    env.setdefault("GATEWAY_ENRICH_URL", f"{upstream}/anything")
    env.setdefault("GATEWAY_WORKERS", "2")
    bind = env.setdefault("GATEWAY_BIND", "127.0.0.1:8000")
    print(f"demo: httpbin on {upstream}; gateway on http://{bind}\n"
          f"demo: try  curl -i http://{bind}/anything\n", flush=True)
    gateway = subprocess.Popen(GUNICORN, cwd=ROOT, env=env)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return gateway.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for process in (gateway, httpbin):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


if __name__ == "__main__":
    sys.exit(main())
