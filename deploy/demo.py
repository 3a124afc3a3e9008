"""`make run`: the gateway on gunicorn gevent workers, with a local httpbin as upstream.

With GATEWAY_UPSTREAM_URL set, runs the gateway against it (the production
command). Without it, starts httpbin (the seed's third-party service) on
loopback, puts the gateway in front (two workers, the enrichment filter calling
httpbin's /anything: the seed plugin's X-MyPlugin header) and prints a curl
line. A port already taken stops the demo before anything starts, saying how to
choose others. Ctrl-C, SIGTERM, SIGHUP or the gateway exiting stop both servers.
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

from gateway.config import ConfigError, ServerSettings, load, names

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
            "gateway.wsgi:app"]
HTTPBIN = str(ROOT / ".venv-httpbin/bin/gunicorn")
#: Seconds the servers get to stop on SIGTERM before they are killed: more than the
#: gateway's graceful timeout (a worker still booting only stops when it runs out).
STOP_TIMEOUT = 10


def port_taken(host: str, port: int) -> bool:
    """True when a server already listens on (host, port): gunicorn could not bind it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def tcp_address(bind: str) -> tuple[str, int] | None:
    """(host, port) of a valid GATEWAY_BIND value; None for a unix socket."""
    if bind.startswith("unix:"):
        return None
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


def refuse_taken_ports(httpbin_port: int, bind: str) -> None:
    """Exit with a message naming the variable to change if a demo port is in use."""
    wanted = [("DEMO_HTTPBIN_PORT", "127.0.0.1", httpbin_port)]
    if (address := tcp_address(bind)) is not None:
        wanted.append(("GATEWAY_BIND", *address))
    for variable, host, port in wanted:
        if port_taken(host, port):
            sys.exit(f"demo: port {port} ({variable}) is already in use by another program; "
                     f"choose free ports, e.g. "
                     f"DEMO_HTTPBIN_PORT=18001 GATEWAY_BIND=127.0.0.1:18000 make run")


def wait_for(port: int, process: subprocess.Popen, timeout: float = 15) -> None:
    """Return once ``process`` accepts connections on ``port``; exit if it dies or is slow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"demo: httpbin did not start on port {port} (DEMO_HTTPBIN_PORT)")


def stop(processes: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM to all at once (a graceful stop for gunicorn), SIGKILL to those still
    running after ``timeout`` seconds: a slow one never leaves another running."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


#: The signals that stop the demo: Ctrl-C, a service manager's stop, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def unblock_stop_signals() -> None:
    """In the child between fork and exec: take the parent's hold off the stop signals."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def spawn(args: list[str], started: list[subprocess.Popen], **options: object) -> subprocess.Popen:
    """Start a child and record it in ``started`` with the stop signals held off meanwhile.

    A signal arriving while Popen waits for the exec would otherwise raise out of it
    after the fork, and the child would run on unrecorded, unstopped, holding our
    stdout open. Held, it is delivered as soon as the child is in ``started``.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        process = subprocess.Popen(args, preexec_fn=unblock_stop_signals, **options)
        started.append(process)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return process


def leave(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP: leave through main's ``finally``, as Ctrl-C does."""
    raise SystemExit(0)


def main() -> int:
    if os.environ.get("GATEWAY_UPSTREAM_URL"):
        os.chdir(ROOT)
        os.execv(GUNICORN[0], GUNICORN)
    raw_port = os.environ.get("DEMO_HTTPBIN_PORT", "8001")
    if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
        sys.exit(f"demo: DEMO_HTTPBIN_PORT={raw_port!r}: must be a port number (1-65535)")
    httpbin_port = int(raw_port)
    upstream = f"http://127.0.0.1:{httpbin_port}"
    env = {**os.environ, "GATEWAY_UPSTREAM_URL": upstream}
    if "enrichment" in names(env.setdefault("GATEWAY_FILTERS", "enrichment")):
        env.setdefault("GATEWAY_ENRICH_URL", f"{upstream}/anything")
    env.setdefault("GATEWAY_WORKERS", "2")
    bind = env.setdefault("GATEWAY_BIND", "127.0.0.1:8000")
    try:
        server = load(ServerSettings, env)
    except ConfigError as exc:
        sys.exit(f"gateway: configuration error: {exc}")
    refuse_taken_ports(httpbin_port, server.bind)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, leave)
    started: list[subprocess.Popen] = []
    try:
        httpbin = spawn(
            [HTTPBIN, "-b", f"127.0.0.1:{httpbin_port}", "-k", "gthread", "--threads", "16",
             "--no-control-socket", "httpbin:app"],
            started, cwd=tempfile.gettempdir(), start_new_session=True)
        wait_for(httpbin_port, httpbin)
        print(f"demo: httpbin on {upstream}; gateway on http://{bind} "
              f"(filters: {env['GATEWAY_FILTERS']}; workers: {env['GATEWAY_WORKERS']})\n"
              f"demo: try  curl -i http://{bind}/anything\n", flush=True)
        gateway = spawn(GUNICORN, started, cwd=ROOT, env=env)
        return gateway.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)  # a second signal must not skip the cleanup
        stop(started, server.graceful_timeout + STOP_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
