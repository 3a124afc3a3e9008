"""`make profile`: where one gateway worker spends its CPU under load.

Starts the benchmark's nginx upstream (and third party), one gateway worker
(plain proxy, or with enrichment: ``--enrichment hits|calls``), loads it with wrk
while py-spy samples the worker, then prints the functions with the largest
share of samples, inclusive (the function and what it called) and self.

``--source DIR`` profiles another checkout of the gateway (e.g. an older
commit in a git worktree) with the same fixtures and load, for a before/after.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.apps import BODY  # noqa: E402
from bench.run import PATH, THIRD_PARTY_BODY, enrichment_env, start_nginx, wrk  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.processes import VENV_BIN, Gateway  # noqa: E402


def sample(pid: int, seconds: int, output: Path) -> None:
    """py-spy samples of ``pid`` for ``seconds``, as collapsed stacks (one per line); a
    worker waiting in the gevent hub is idle and not sampled."""
    subprocess.run([str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--duration",
                    str(seconds), "--rate", "250", "--format", "raw", "--nonblocking",
                    "--output", str(output)], check=True, capture_output=True)


def shares(collapsed: Path) -> tuple[collections.Counter, collections.Counter, int]:
    """(inclusive, self) sample counts per function, and the total, from py-spy's raw format."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_short(frame) for frame in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    return inclusive, own, total


def _short(frame: str) -> str:
    """``f (/venv/lib/python3.12/site-packages/gunicorn/x.py:55)`` -> ``f (gunicorn/x.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1].lstrip("/.0123456789")
    return f"{name} ({Path(path).as_posix()})"


def print_top(title: str, counts: collections.Counter, total: int, top: int) -> None:
    print(f"\n{title}")
    for frame, count in counts.most_common(top):
        print(f"  {count / total:6.1%}  {frame}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=10, help="seconds sampled under load")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--top", type=int, default=25, help="functions listed per table")
    p.add_argument("--enrichment", choices=("off", "hits", "calls"), default="off",
                   help="enrichment off, on with cache hits, or on calling every time")
    p.add_argument("--source", type=Path, default=ROOT, help="gateway checkout to profile")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a gateway setting (repeatable), e.g. GATEWAY_FILTERS=rate-limiting "
                        "with GATEWAY_RATELIMIT_SECOND=1000000000 for a filter's fast path")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    upstream_port, third_port = free_port(), free_port()
    nginx = start_nginx("fixtures.conf", upstream_port=upstream_port,
                        third_party_port=third_port, upstream_body=BODY.decode(),
                        third_party_body=THIRD_PARTY_BODY)
    env = {"GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}",
           "PYTHONPATH": str(args.source.resolve())}
    if args.enrichment != "off":
        ttl = 300 if args.enrichment == "hits" else 0
        env.update(enrichment_env(f"http://127.0.0.1:{third_port}", ttl))
    env.update(setting.partition("=")[::2] for setting in args.set)
    gateway = Gateway(env, root=args.source.resolve())
    try:
        wrk(gateway.url + PATH, 2, args.connections, 2)  # warm up
        collapsed = Path(tempfile.mkdtemp(prefix="profile-")) / "stacks.txt"
        loader = threading.Thread(target=wrk, args=(gateway.url + PATH, args.seconds + 2,
                                                    args.connections, 2))
        loader.start()
        sample(gateway.worker_pids()[0], args.seconds, collapsed)
        loader.join()
    finally:
        gateway.stop()
        nginx.stop()
    inclusive, own, total = shares(collapsed)
    print(f"{total} samples of one worker, {args.source.resolve()} "
          f"(pid {os.getpid()} drove the load with wrk -c{args.connections})")
    print_top("inclusive (function and its callees):", inclusive, total, args.top)
    print_top("self (the function's own code):", own, total, args.top)
    ours = collections.Counter({f: n for f, n in inclusive.items() if "(gateway/" in f})
    print_top("the gateway's own functions, inclusive:", ours, total, args.top)


if __name__ == "__main__":
    main()
