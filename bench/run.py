"""`make bench`: the gateway against its ceiling and its peers, in one run, one table.

Every row is served by its own process (one gunicorn gevent worker, or one
nginx worker) on a loopback port, all started up front. wrk loads the rows in
turn, A B C ... A B C ..., for several rounds; the table shows the median of
each figure, and each ratio is the median of the per-round ratios to the
ceiling measured in the same round, so machine noise cancels. Then the
scenario figures: latency overlap, streaming memory, third-party calls under
a cache TTL, and the p99 at half the gateway's throughput.

The steady figure is CPU microseconds per request: the serving worker's own
user + system time (``/proc/<pid>/stat``) over a wrk run, divided by the
requests wrk counted. req/s on a shared 2-core machine swings 2x with the
neighbours; the CPU a request costs barely moves. The floor row (a minimal
pooled httptools proxy, ``bench/apps.py``) shows what the architecture allows.

A benchmark, not a test: it prints figures and never fails on speed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.apps import BODY, PREFIX  # noqa: E402
from gateway.filters import REGISTRY  # noqa: E402
from tests.support.net import free_port, wait_for_port  # noqa: E402
from tests.support.processes import VENV_BIN, Gateway, Process, reset_peak_rss, rss_kib  # noqa: E402

BENCH = ROOT / "bench"
RESULTS = BENCH / "results" / "latest.md"
LUA = BENCH / "wrk" / "report.lua"
PATH = PREFIX + "item?id=42"
THIRD_PARTY_BODY = '{"tier": "gold", "url": "https://example.com/customers/42"}'
MIB = 1024 * 1024
# MiB/s a response and an upload should reach through one worker (issue 12).
STREAM_SPEED_TARGETS = {"response": 1024, "upload": 400}
# Concurrent clients in the latency-overlap scenario (a latency figure, not a load test).
OVERLAP_CONNECTIONS = 5
FLOOR = "floor: minimal pooled httptools proxy (bench/apps.py)"
TRACING = "gateway, plain + tracing, sampling 1.0 (OTLP/HTTP)"
PEER = "peer: werkzeug ProxyMiddleware"


# ------------------------------------------------------------------ servers

def _nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def start_nginx(template: str, **values: object) -> Process:
    """nginx with one worker process, from a bench/nginx template, in a temporary prefix."""
    prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    common = (f"{user}\nworker_processes 1;\ndaemon off;\npid {prefix}/nginx.pid;\n"
              f"error_log {prefix}/error.log warn;\nevents {{ worker_connections 4096; }}")
    temp_paths = "\n".join(f"    {kind}_temp_path {prefix}/{kind};"
                           for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = (BENCH / "nginx" / template).read_text() % {
        "common": common, "temp_paths": temp_paths, **values}
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    process = Process("bench-nginx", [_nginx_binary(), "-p", str(prefix), "-e",
                                      str(prefix / "error.log"), "-c", str(conf)])
    for port in re.findall(r"listen 127\.0\.0\.1:(\d+)", text):
        wait_for_port(int(port), process.popen)
    return process


def start_app(app: str, env: dict[str, str] | None = None) -> tuple[Process, str]:
    """A bench/apps.py app on gunicorn, one gevent worker (run outside the repository
    so that gunicorn does not read the gateway's gunicorn.conf.py)."""
    port = free_port()
    argv = [str(VENV_BIN / "gunicorn"), "-k", "gevent", "-w", "1", "--worker-connections",
            "1000", "-b", f"127.0.0.1:{port}", "--no-control-socket", f"bench.apps:{app}"]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process = Process(f"bench-{app}", argv, env=full_env, cwd=tempfile.gettempdir())
    wait_for_port(port, process.popen)
    return process, f"http://127.0.0.1:{port}"


def enrichment_env(third_party_url: str, ttl: float) -> dict[str, str]:
    """Settings turning the enrichment filter on against ``third_party_url`` (ttl 0: no cache)."""
    return {"GATEWAY_FILTERS": "enrichment",
            "GATEWAY_ENRICH_URL": third_party_url + "/enrich?id={query.id}",
            "GATEWAY_ENRICH_CACHE_TTL": str(ttl)}


# ---------------------------------------------------------------------- wrk

@dataclass
class Load:
    """What wrk measured in one run, and the serving worker's CPU per request."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us: float = float("nan")


def wrk(url: str, duration: int, connections: int, threads: int,
        interval_ms: float | None = None, headers: tuple[str, ...] = ()) -> Load:
    """One wrk run (keep-alive) against ``url``; paced when ``interval_ms`` is given;
    ``headers`` (``Name: value``) sent on every request."""
    env = dict(os.environ)
    if interval_ms is not None:
        env["BENCH_INTERVAL_MS"] = f"{interval_ms:.3f}"
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
            "--timeout", "10s", "-s", str(LUA),
            *(arg for header in headers for arg in ("-H", header)), url]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    f = {k: int(v) for k, v in (item.split("=") for item in line.split()[1:])}
    errors = f["connect"] + f["read"] + f["write"] + f["status"] + f["timeout"]
    return Load(rps=f["requests"] / (f["duration_us"] / 1e6), p50_ms=f["p50_us"] / 1000,
                p99_ms=f["p99_us"] / 1000, errors=errors, requests=f["requests"])


_TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def worker_pid(process: Process) -> int:
    """The one worker of a gunicorn or nginx master started with a single worker."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"{process.name}: expected one worker, found {children}")
    return int(children[0])


def cpu_us(pid: int) -> float:
    """User + system CPU time of ``pid`` so far, in microseconds (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_US


def measured(row: Row, args: argparse.Namespace) -> Load:
    """One wrk run of ``row``, with the CPU its worker spent per request."""
    pid = worker_pid(row.process)
    before = cpu_us(pid)
    load = wrk(row.url + row.path, args.duration, args.connections, args.threads,
               headers=row.headers)
    load.cpu_us = (cpu_us(pid) - before) / max(load.requests, 1)
    return load


# --------------------------------------------------------------------- rows

@dataclass
class Row:
    label: str
    url: str
    process: Process
    runs: list[Load] = field(default_factory=list)
    #: Headers sent on every request of this row (an API key, an Origin).
    headers: tuple[str, ...] = ()
    path: str = PATH


@dataclass(frozen=True)
class Setup:
    """A gateway row: its settings and the headers its requests carry."""

    env: dict[str, str]
    headers: tuple[str, ...] = ()


KEY = ("apikey: bench-key",)
JWT_SECRET = "bench-secret-bench-secret-bench-secret"
#: {"iss": "bench-key"} signed HS256 with JWT_SECRET (no exp: the token never expires).
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJiZW5jaC1rZXkifQ."
       "TZiWP0b0xXhzFMYlbXH7tYHybLsriV_H-jsVfFJlfNM")
KEYAUTH = {"GATEWAY_KEYAUTH_KEYS": "bench:bench-key"}
RATELIMIT = {"GATEWAY_RATELIMIT_SECOND": "1000000000", "GATEWAY_RATELIMIT_POLICY": "local"}
#: Filter rows, each on its fast path: label -> (filters, settings, headers).
FILTER_ROWS = {
    "gateway + key-auth (a known key)": ("key-auth", KEYAUTH, KEY),
    "gateway + rate-limiting local (under the limit)": ("rate-limiting", RATELIMIT, ()),
    "gateway + key-auth + rate-limiting local": ("key-auth,rate-limiting",
                                                 {**KEYAUTH, **RATELIMIT}, KEY),
    "gateway + proxy-cache (hits)": ("proxy-cache", {"GATEWAY_CACHE_TTL": "3600"}, ()),
    "gateway + cors (a simple request)": ("cors", {}, ("Origin: https://app.example.com",)),
    "gateway + jwt (HS256)": ("jwt", {"GATEWAY_JWT_SECRETS": f"bench:bench-key:{JWT_SECRET}"},
                              (f"Authorization: Bearer {JWT}",)),
    "gateway + basic-auth": ("basic-auth",
                             {"GATEWAY_BASICAUTH_CREDENTIALS": "bench:bench:bench-password"},
                             ("Authorization: Basic YmVuY2g6YmVuY2gtcGFzc3dvcmQ=",)),
}


def gateway_setups(third: str, filter_rows: bool) -> dict[str, Setup]:
    """The gateway's rows: plain proxy; enrichment with cache hits and with the cache off
    (when the filter exists); with ``filter_rows``, each built-in filter on its fast path.
    With ``--only``, the rows whose label it matches."""
    setups = {"gateway, plain proxy": Setup({})}
    if "enrichment" in REGISTRY:
        setups["gateway + enrichment, cache on (hits)"] = Setup(enrichment_env(third, 300))
        setups["gateway + enrichment, cache off"] = Setup(enrichment_env(third, 0))
    if filter_rows:
        for label, (filters, env, headers) in FILTER_ROWS.items():
            if all(name in REGISTRY for name in filters.split(",")):
                setups[label] = Setup({"GATEWAY_FILTERS": filters, **env}, headers)
        if "http-log" in REGISTRY:  # the collector: nginx's third-party port answers 200
            http_log = {"GATEWAY_FILTERS": "http-log", "GATEWAY_HTTP_LOG_ENDPOINT": third + "/log"}
            setups["gateway + http-log (Kong's defaults: one POST per request)"] = Setup(http_log)
            setups["gateway + http-log (batches of 100)"] = Setup(
                {**http_log, "GATEWAY_HTTP_LOG_QUEUE_MAX_BATCH_SIZE": "100"})
        if "opentelemetry" in REGISTRY:  # the collector: nginx's third-party port answers 200
            setups[TRACING] = Setup(tracing_env(third))
    return {label: setup for label, setup in setups.items() if selected(label)}


def tracing_env(third_party_url: str) -> dict[str, str]:
    """Tracing by the OTEL_* variables, every request sampled, exported every 0.5 s in
    batches of 1,000 with room for 50,000 spans (none dropped at this load)."""
    return {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": third_party_url + "/v1/traces",
            "OTEL_TRACES_SAMPLER": "always_on", "OTEL_BSP_SCHEDULE_DELAY": "500",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1000", "OTEL_BSP_MAX_QUEUE_SIZE": "50000"}


#: The --only pattern (None: every row).
ONLY: re.Pattern[str] | None = None


def selected(label: str) -> bool:
    """True when the row ``label`` is loaded in this run (``--only``)."""
    return ONLY is None or ONLY.search(label) is not None


def gateway_rows(upstream: str, third: str, processes: list[Process], root: Path = ROOT,
                 prefix: str = "", filter_rows: bool = True) -> list[Row]:
    """The gateway's rows for the checkout at ``root``; its processes join ``processes``."""
    rows = []
    for label, setup in gateway_setups(third, filter_rows).items():
        gateway = Gateway({"GATEWAY_UPSTREAM_URL": upstream, "PYTHONPATH": str(root),
                           **setup.env}, root=root)
        processes.append(gateway)
        rows.append(Row(prefix + label, gateway.url, gateway, headers=setup.headers))
    return rows


def measure_rows(rows: list[Row], args: argparse.Namespace) -> None:
    """Warm every row up, then load them interleaved for ``args.rounds`` rounds."""
    for row in rows:
        wrk(row.url + row.path, 1, args.connections, args.threads, headers=row.headers)
    for number in range(1, args.rounds + 1):
        for row in rows:
            load = measured(row, args)
            row.runs.append(load)
            print(f"  round {number}: {row.label}: {load.cpu_us:,.0f} us CPU/req, "
                  f"{load.rps:,.0f} req/s, p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms, "
                  f"{load.errors} errors", flush=True)


def ratios(row: Row, ceiling: Row) -> float:
    """Median over rounds of this row's throughput over the ceiling's in the same round."""
    return statistics.median(r.rps / c.rps for r, c in zip(row.runs, ceiling.runs, strict=True))


def cpu(row: Row) -> float:
    """Median CPU microseconds per request of the row's worker."""
    return statistics.median(r.cpu_us for r in row.runs)


def cpu_share(row: Row, ceiling: Row) -> float:
    """The ceiling's CPU per request over this row's, median over the rounds (1.0: as cheap
    as the do-nothing app; 0.5: twice its cost)."""
    return statistics.median(c.cpu_us / r.cpu_us
                             for r, c in zip(row.runs, ceiling.runs, strict=True))


def rows_table(rows: list[Row]) -> list[str]:
    lines = ["| # | row | CPU us/req | CPU share of ceiling | req/s | p50 ms | p99 ms | errors "
             "| req/s vs ceiling |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for number, row in enumerate(rows, 1):
        med = statistics.median
        lines.append(
            f"| {number} | {row.label} | {cpu(row):,.0f} | {cpu_share(row, rows[0]):.2f} "
            f"| {med(r.rps for r in row.runs):,.0f} "
            f"| {med(r.p50_ms for r in row.runs):.2f} | {med(r.p99_ms for r in row.runs):.2f} "
            f"| {sum(r.errors for r in row.runs)} | {ratios(row, rows[0]):.0%} |")
    return lines


# ---------------------------------------------------------------- scenarios

def _zeros(size: int) -> Iterator[bytes]:
    block = bytes(MIB)
    while size > 0:
        yield block[:size]
        size -= MIB


def _transfer(url: str, method: str, target: str, size: int) -> int:
    """Send (POST) or fetch (GET) ``size`` bytes through ``url``; the bytes received."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    body = _zeros(size) if method == "POST" else None
    headers = {"Content-Length": str(size)} if method == "POST" else {}
    conn.request(method, target, body=body, headers=headers)
    response, received = conn.getresponse(), 0
    while piece := response.read(MIB):
        received += len(piece)
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{method} {target}: status {response.status}")
    return received


def streaming_growth(gateway: Gateway, method: str, target: str, size: int) -> tuple[float, float]:
    """(peak RSS growth of the worker in MiB, MiB/s) while ``size`` bytes pass through it."""
    worker = gateway.worker_pids()[0]
    before = rss_kib(worker)
    reset_peak_rss(worker)
    started = time.monotonic()
    _transfer(gateway.url, method, target, size)
    elapsed = time.monotonic() - started
    return (rss_kib(worker, "VmHWM") - before) / 1024, size / MIB / elapsed


def fixture_calls(url: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/_count")
    calls = json.loads(conn.getresponse().read())["calls"]
    conn.close()
    return calls


@dataclass
class Figure:
    name: str
    value: str
    target: str
    met: bool | None


def scenario_streaming(args: argparse.Namespace) -> list[Figure]:
    """Peak RSS growth and speed of one worker streaming a response and an upload, from
    and to nginx (a Python upstream would be the bottleneck), after warm-up requests."""
    size = args.stream_mib * MIB
    root = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    with (root / "big").open("wb") as big:
        big.truncate(size)  # sparse: no disk used
    upstream_url = f"http://127.0.0.1:{free_port()}"
    upstream = start_nginx("stream.conf", port=upstream_url.rpartition(":")[2], root=root)
    gateway = Gateway({"GATEWAY_UPSTREAM_URL": upstream_url, "GATEWAY_ACCESS_LOG": "off"})
    try:
        _transfer(upstream_url, "GET", "/big", size)  # the file's pages into the page cache
        _transfer(gateway.url, "POST", "/sink", 1)  # the worker loads the app on first use
        figures = []
        for what, method, target in (("response", "GET", "/big"), ("upload", "POST", "/sink")):
            growth, speed = streaming_growth(gateway, method, target, size)
            figures.append(Figure(
                f"streaming: {args.stream_mib} MiB {what}, worker peak RSS growth",
                f"{growth:.1f} MiB", "< 50 MiB", growth < 50))
            goal = STREAM_SPEED_TARGETS[what]
            figures.append(Figure(f"streaming: {args.stream_mib} MiB {what}, speed through "
                                  "one worker", f"{speed:,.0f} MiB/s", f">= {goal:,} MiB/s",
                                  speed >= goal))
        return figures
    finally:
        gateway.stop()
        upstream.stop()
        shutil.rmtree(root, ignore_errors=True)


def scenario_paced(gateway_url: str, max_rps: float, args: argparse.Namespace) -> Figure:
    """p99 at half the gateway's max throughput, Poisson arrivals paced by the wrk script."""
    rate = max_rps / 2
    interval_ms = args.connections * 1000 / rate
    load = wrk(gateway_url + PATH, args.paced_duration, args.connections, args.threads,
               interval_ms)
    return Figure(f"p99 at 50% of max throughput (offered {rate:,.0f} req/s, "
                  f"achieved {load.rps:,.0f})", f"{load.p99_ms:.2f} ms (p50 {load.p50_ms:.2f})",
                  "< 10 ms", load.p99_ms < 10)


def scenario_overlap(args: argparse.Namespace) -> Figure:
    upstream, upstream_url = start_app("fixture", {"BENCH_DELAY_MS": "100"})
    third, third_url = start_app("fixture", {"BENCH_DELAY_MS": "100"})
    gateway = Gateway({"GATEWAY_UPSTREAM_URL": upstream_url, **enrichment_env(third_url, 0)})
    try:
        alone = wrk(upstream_url + PATH, args.duration, OVERLAP_CONNECTIONS, 1)
        load = wrk(gateway.url + PATH, args.duration, OVERLAP_CONNECTIONS, 1)
        return Figure(f"latency overlap: upstream and third party 100 ms each, cache off, "
                      f"{OVERLAP_CONNECTIONS} connections: gateway p50",
                      f"{load.p50_ms:.1f} ms (sum 200, max 100; the sleeping fixture alone "
                      f"{alone.p50_ms:.1f}; {load.errors} errors)",
                      "<= 105 ms", load.p50_ms <= 105 and load.errors == 0)
    finally:
        gateway.stop()
        upstream.stop()
        third.stop()


def callouts_env(third_url: str, chain: bool) -> dict[str, str]:
    """request-callout with three independent callouts, or a chain of two (b waits for a)."""
    names = ("a", "b") if chain else ("a", "b", "c")
    callouts = [{"name": name, "request": {"url": f"{third_url}/{name}"},
                 **({"depends_on": ["a"]} if chain and name == "b" else {})} for name in names]
    return {"GATEWAY_FILTERS": "request-callout",
            "GATEWAY_REQUEST_CALLOUT_CONFIG": json.dumps({"callouts": callouts})}


def scenario_callouts(args: argparse.Namespace) -> list[Figure]:
    """The time request-callout adds: three independent 100 ms callouts, then a chain of two."""
    upstream, upstream_url = start_app("fixture")
    third, third_url = start_app("fixture", {"BENCH_DELAY_MS": "100"})
    figures = []
    try:
        for chain, count, target, bound in ((False, "three independent", "~100 ms, not 300",
                                             (100, 110)),
                                            (True, "a chain of two", "~200 ms", (200, 215))):
            gateway = Gateway({"GATEWAY_UPSTREAM_URL": upstream_url,
                               **callouts_env(third_url, chain)})
            try:
                alone = wrk(upstream_url + PATH, args.duration, OVERLAP_CONNECTIONS, 1)
                load = wrk(gateway.url + PATH, args.duration, OVERLAP_CONNECTIONS, 1)
            finally:
                gateway.stop()
            added = load.p50_ms - alone.p50_ms
            figures.append(Figure(
                f"request-callout: {count} callouts of 100 ms, {OVERLAP_CONNECTIONS} "
                "connections: time added at p50",
                f"{added:.1f} ms (gateway p50 {load.p50_ms:.1f}, the upstream alone "
                f"{alone.p50_ms:.1f}; {load.errors} errors)", target,
                bound[0] <= added <= bound[1] and load.errors == 0))
    finally:
        upstream.stop()
        third.stop()
    return figures


def scenario_third_party(upstream_url: str, args: argparse.Namespace) -> Figure:
    third, third_url = start_app("fixture")
    gateway = Gateway({"GATEWAY_UPSTREAM_URL": upstream_url, **enrichment_env(third_url, 1)})
    try:
        before = fixture_calls(third_url)
        load = wrk(gateway.url + PATH, args.ttl_window, args.connections, args.threads)
        calls = fixture_calls(third_url) - before
        bound = args.ttl_window + 1
        return Figure(f"third-party calls: cache TTL 1 s, {args.ttl_window} s under load "
                      f"({load.rps:,.0f} req/s), one worker",
                      f"{calls} calls", f"<= {bound} (1 per TTL per worker)", calls <= bound)
    finally:
        gateway.stop()
        third.stop()


# Row label -> the least share of the ceiling's CPU per request it should reach (issue 19):
# the ceiling's CPU per request over the row's.
CPU_TARGETS = {"gateway, plain proxy": 0.50, "gateway + enrichment, cache on (hits)": 0.45,
               "gateway + key-auth + rate-limiting local": 0.40,
               "gateway + enrichment, cache off": 0.30}
# The plain proxy at least this many times cheaper per request than ProxyMiddleware.
PEER_FACTOR = 2.5
# A filter on its fast path adds at most this much CPU per request over the plain proxy.
FAST_PATH_US = 25
FAST_PATH_ROWS = ("gateway + key-auth (a known key)",
                  "gateway + rate-limiting local (under the limit)",
                  "gateway + proxy-cache (hits)", "gateway + enrichment, cache on (hits)",
                  "gateway + cors (a simple request)", "gateway + jwt (HS256)",
                  "gateway + basic-auth")


def by_label(rows: list[Row], label: str) -> Row | None:
    return next((row for row in rows if row.label == label), None)


def cpu_targets(rows: list[Row]) -> list[Figure]:
    """The CPU targets: rows' shares of the ceiling, the plain proxy against the peer, and
    each filter's cost over plain on its fast path, from the same rounds."""
    ceiling, peer, plain = rows[0], by_label(rows, PEER), by_label(rows, "gateway, plain proxy")
    figures = [Figure(f"{row.label}: CPU share of the ceiling", f"{cpu_share(row, ceiling):.2f}",
                      f">= {CPU_TARGETS[row.label]:.2f}",
                      cpu_share(row, ceiling) >= CPU_TARGETS[row.label])
               for row in rows if row.label in CPU_TARGETS]
    factor = statistics.median(p.cpu_us / g.cpu_us
                               for g, p in zip(plain.runs, peer.runs, strict=True))
    figures.append(Figure(f"{plain.label} vs {peer.label}: CPU per request", f"{factor:.2f}x "
                          "cheaper", f">= {PEER_FACTOR}x", factor >= PEER_FACTOR))
    for label in FAST_PATH_ROWS:
        row = by_label(rows, label)
        if row is not None:
            extra = statistics.median(r.cpu_us - g.cpu_us
                                      for r, g in zip(row.runs, plain.runs, strict=True))
            figures.append(Figure(f"{label}: CPU over plain", f"{extra:+.0f} us",
                                  f"<= {FAST_PATH_US} us", extra <= FAST_PATH_US))
    return figures


# Route counts of the routes rows; the largest must keep this share of the smallest's throughput.
ROUTE_COUNTS = (1, 100, 1000)
ROUTES_TARGET = 0.90


def routes_file(upstream_url: str, count: int) -> Path:
    """A declarative file of ``count`` routes, half prefix and half host routes that the
    benchmark's requests miss, then the one they take (a host and a prefix) last."""
    lines = ['_format_version: "3.0"', "services:", "- name: bench", f"  url: {upstream_url}",
             "  routes:"]
    for i in range(count - 1):
        miss = f"paths: [/service-{i}]" if i % 2 else f"hosts: [host-{i}.example.com]"
        lines.append(f"  - {{name: miss-{i}, {miss}}}")
    lines.append(f"  - {{name: bench, hosts: [127.0.0.1], paths: [{PREFIX}], strip_path: false}}")
    fd, path = tempfile.mkstemp(prefix=f"bench-routes-{count}-", suffix=".yml")
    os.write(fd, "\n".join(lines).encode() + b"\n")
    os.close(fd)
    return Path(path)


def routes_rows(upstream_url: str, processes: list[Process]) -> list[Row]:
    """Rows of the gateway with 1, 100 and 1,000 routes (issue 13: matching cost)."""
    rows = []
    for count in ROUTE_COUNTS:
        if not selected(f"gateway, {count:,} route"):
            continue
        path = routes_file(upstream_url, count)
        gateway = Gateway({"GATEWAY_DECLARATIVE_CONFIG": str(path)})
        path.unlink()  # the workers read the master's checked copy
        processes.append(gateway)
        rows.append(Row(f"gateway, {count:,} route{'s' if count > 1 else ''}", gateway.url,
                        gateway))
    return rows


def routes_figure(rows: list[Row]) -> Figure:
    """Throughput with the most routes over the fewest, measured in the same rounds."""
    fewest, most = (next(r for r in rows if r.label.startswith(f"gateway, {n:,} route"))
                    for n in (ROUTE_COUNTS[0], ROUTE_COUNTS[-1]))
    share = statistics.median(f.cpu_us / m.cpu_us
                              for m, f in zip(most.runs, fewest.runs, strict=True))
    return Figure(f"{most.label} vs {fewest.label}: CPU share", f"{share:.0%}",
                  f">= {ROUTES_TARGET:.0%}", share >= ROUTES_TARGET)


def figures_table(figures: list[Figure]) -> list[str]:
    lines = ["| target | measured | goal | met |", "|---|---|---|---|"]
    for f in figures:
        met = "n/a" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(f"| {f.name} | {f.value} | {f.target} | {met} |")
    return lines


# ------------------------------------------------------------------- report

def _version(argv: list[str], pattern: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "?"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
            f"load average at start {load}")


def versions() -> str:
    packages = ", ".join(f"{name} {metadata.version(name)}"
                         for name in ("gunicorn", "gevent", "urllib3", "httptools", "werkzeug"))
    nginx = _version([_nginx_binary(), "-v"], r"nginx/(\S+)")
    wrk_version = _version(["wrk", "-v"], r"wrk (\S+)")
    return f"Python {platform.python_version()}, {packages}, nginx {nginx}, wrk {wrk_version}"


def report(rows: list[Row], figures: list[Figure], args: argparse.Namespace,
           started: str, header: str) -> str:
    command = (f"make bench (bench/run.py --duration {args.duration} --rounds {args.rounds} "
               f"--connections {args.connections} --threads {args.threads})")
    return "\n".join([
        "# Benchmark results", "",
        f"- Run: `{command}`, {started}",
        f"- Machine: {header}",
        f"- Versions: {versions()}",
        f"- Method: wrk, keep-alive, {args.connections} connections, {args.threads} threads, "
        f"{args.duration} s per row per round, rows interleaved over {args.rounds} rounds; "
        "median per figure, errors summed over the rounds (socket errors + HTTP >= 400); "
        "CPU us/req: the serving worker's user + system time from /proc/<pid>/stat over "
        "the run, divided by the requests wrk counted (gateway rows at their defaults, JSON "
        "access log on); "
        "each server one gunicorn gevent worker (nginx: one worker process); upstream and "
        "third party: nginx answering a fixed small JSON body; streaming: nginx sending a "
        "file and swallowing the upload.",
        "", *rows_table(rows), "", *figures_table(figures), ""])


# --------------------------------------------------------------------- main

def parse_args() -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=int(env("BENCH_DURATION", "5")),
                   help="seconds of load per row per round (BENCH_DURATION, default 5)")
    p.add_argument("--rounds", type=int, default=int(env("BENCH_ROUNDS", "3")),
                   help="interleaved rounds, at least 3 for a median (BENCH_ROUNDS)")
    p.add_argument("--connections", type=int, default=int(env("BENCH_CONNECTIONS", "50")))
    p.add_argument("--threads", type=int, default=int(env("BENCH_THREADS", "2")))
    p.add_argument("--stream-mib", type=int, default=int(env("BENCH_STREAM_MIB", "1024")),
                   help="size of the streamed response and upload (BENCH_STREAM_MIB)")
    p.add_argument("--ttl-window", type=int, default=int(env("BENCH_TTL_WINDOW", "10")),
                   help="seconds of load in the third-party calls scenario")
    p.add_argument("--paced-duration", type=int,
                   default=int(env("BENCH_PACED_DURATION", "10")))
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--only", type=re.compile, metavar="REGEX",
                   help="load only the rows whose label matches (the ceiling and the floor "
                        "always), skip the scenarios and print the table without writing "
                        "--output: a quick before/after of a change")
    p.add_argument("--baseline", type=Path,
                   help="another checkout of the gateway (e.g. `git archive` of an older "
                        "commit) whose gateway rows are loaded in the same rounds, for a "
                        "before/after (the filter rows too with --only)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    global ONLY
    ONLY = args.only
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = machine()
    upstream_port, third_port, reference_port = free_port(), free_port(), free_port()
    processes: list[Process] = []
    try:
        processes.append(start_nginx("fixtures.conf", upstream_port=upstream_port,
                                     third_party_port=third_port,
                                     upstream_body=BODY.decode(),
                                     third_party_body=THIRD_PARTY_BODY))
        upstream = f"http://127.0.0.1:{upstream_port}"
        third = f"http://127.0.0.1:{third_port}"
        ceiling, ceiling_url = start_app("ceiling")
        floor, floor_url = start_app("floor", {"BENCH_UPSTREAM_URL": upstream})
        processes += [ceiling, floor]
        rows = [Row("ceiling: do-nothing WSGI app", ceiling_url, ceiling),
                Row(FLOOR, floor_url, floor)]
        if selected(PEER):
            peer, peer_url = start_app("peer", {"BENCH_UPSTREAM_URL": upstream})
            processes.append(peer)
            rows.append(Row(PEER, peer_url, peer))
        rows += gateway_rows(upstream, third, processes)
        rows += routes_rows(upstream, processes)
        if args.baseline is not None:
            rows += gateway_rows(upstream, third, processes, args.baseline.resolve(),
                                 f"baseline {args.baseline.name}: ",
                                 filter_rows=args.only is not None)  # all: --only picks
        if selected("reference: nginx proxy_pass"):
            reference = start_nginx("reference.conf", port=reference_port,
                                    upstream_port=upstream_port)
            processes.append(reference)
            rows.append(Row("reference: nginx proxy_pass",
                            f"http://127.0.0.1:{reference_port}", reference))
        print(f"{len(rows)} rows x {args.rounds} rounds x {args.duration} s", flush=True)
        measure_rows(rows, args)
        if ONLY is not None:
            print("\n" + "\n".join(rows_table(rows)))
            return
        plain = by_label(rows, "gateway, plain proxy")
        gateway_max = statistics.median(r.rps for r in plain.runs)
        figures = [*cpu_targets(rows), routes_figure(rows)]
        print("scenarios ...", flush=True)
        figures.append(scenario_paced(plain.url, gateway_max, args))
        figures += scenario_streaming(args)
        if "enrichment" in REGISTRY:
            figures += [scenario_overlap(args), scenario_third_party(upstream, args)]
        if "request-callout" in REGISTRY:
            figures += scenario_callouts(args)
    finally:
        for process in reversed(processes):
            process.stop()
    text = report(rows, figures, args, started, header)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print("\n" + text + f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
