"""Idle keep-alive connections: is a fresh request still answered, and what do they cost?

Opens N keep-alive connections to one gateway worker, each sending one request
and then staying idle, then times a fresh request on a new connection and reads
the worker's resident memory. A benchmark, not a test: it prints figures.

    .venv/bin/python bench/idle_connections.py [--idle 5000] [--worker-connections N]
"""

from __future__ import annotations

import argparse
import resource
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.fixture_server import FixtureServer  # noqa: E402
from tests.support.processes import Gateway, rss_kib  # noqa: E402

REQUEST = b"GET /echo HTTP/1.1\r\nHost: gw\r\n\r\n"


def answered(sock: socket.socket) -> bool:
    """True once a whole response head came back on ``sock`` (False: timeout or closed)."""
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            piece = sock.recv(65536)
            if not piece:
                return False
            received += piece
    except OSError:
        return False
    return True


def fresh_request_seconds(port: int, timeout: float) -> float | None:
    """Seconds a request on a new connection takes to be answered (None: not within timeout)."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(REQUEST)
            return time.monotonic() - started if answered(sock) else None
    except OSError:
        return None


def hold_idle(port: int, count: int, timeout: float) -> tuple[list[socket.socket], int]:
    """``count`` connections that each got one answer and stay open: (sockets, answered)."""
    held, ok = [], 0
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.sendall(REQUEST)
        ok += answered(sock)
        held.append(sock)
    return held, ok


def measure(idle: int, env: dict[str, str], label: str, timeout: float) -> None:
    upstream = FixtureServer()
    gateway = Gateway({"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_ACCESS_LOG": "off", **env})
    try:
        [worker] = gateway.worker_pids()
        base = rss_kib(worker)
        held, ok = hold_idle(gateway.port, idle, timeout)
        time.sleep(1)
        loaded = rss_kib(worker)
        seconds = fresh_request_seconds(gateway.port, 10)
        shown = f"{seconds * 1000:.0f} ms" if seconds is not None else "no answer in 10 s"
        print(f"{label}: {ok}/{idle} idle connections answered; fresh request: {shown}; worker "
              f"RSS {base // 1024} MiB before, {loaded // 1024} MiB with them held "
              f"({(loaded - base) / max(ok, 1):.1f} KiB each)")
        for sock in held:
            sock.close()
    finally:
        gateway.stop()
        upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--compare", default="1000",
                        help="GATEWAY_WORKER_CONNECTIONS of the comparison row (gunicorn's "
                             "default); empty to skip")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"open files: soft {soft}, hard {hard}; {args.idle} idle keep-alive connections, "
          f"one gevent worker")
    measure(args.idle, {}, "defaults", timeout=5)
    if args.compare:
        measure(args.idle, {"GATEWAY_WORKER_CONNECTIONS": args.compare},
                f"GATEWAY_WORKER_CONNECTIONS={args.compare}", timeout=0.5)


if __name__ == "__main__":
    main()
