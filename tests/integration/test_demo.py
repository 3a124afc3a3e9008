"""`make run`'s demo: httpbin plus the gateway in front, stopped whole on every way out, and
refusing to start on a port another program holds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.net import call, free_port, wait_for_port
from tests.support.processes import ROOT


def start_demo(gateway_port: int, httpbin_port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_BIND": f"127.0.0.1:{gateway_port}", "GATEWAY_WORKERS": "1",
                "DEMO_HTTPBIN_PORT": str(httpbin_port)})
    return subprocess.Popen([sys.executable, "deploy/demo.py"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def assert_nothing_listens(*ports: int) -> None:
    for port in ports:
        try:
            wait_for_port(port, timeout=0.5)
        except TimeoutError:
            continue
        raise AssertionError(f"port {port} still served after the demo stopped")


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_demo_serves_httpbin_through_the_gateway_and_stops_whole(stop_signal):
    gateway_port, httpbin_port = free_port(), free_port()
    demo = start_demo(gateway_port, httpbin_port)
    try:
        wait_for_port(gateway_port, demo, timeout=30)
        response, data = call(f"http://127.0.0.1:{gateway_port}", "GET", "/anything/demo")
        assert response.status == 200
        assert response.headers["Via"].endswith("1.1 gateway")
        assert json.loads(data)["url"].endswith("/anything/demo")
        assert response.headers["X-MyPlugin"] == f"http://127.0.0.1:{httpbin_port}/anything"
    finally:
        demo.send_signal(stop_signal)
        output, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, output
    assert f"curl -i http://127.0.0.1:{gateway_port}/anything" in output
    assert "(filters: enrichment; workers: 1)" in output
    assert_nothing_listens(gateway_port, httpbin_port)


def test_sigterm_while_httpbin_starts_still_stops_httpbin():
    """The window where the demo used to die at once and leave its httpbin behind."""
    gateway_port, httpbin_port = free_port(), free_port()
    demo = start_demo(gateway_port, httpbin_port)
    deadline = time.monotonic() + 10
    while not (started := children(demo.pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert started, "the demo started no httpbin"
    demo.send_signal(signal.SIGTERM)
    demo.communicate(timeout=60)
    assert demo.returncode == 0
    time.sleep(0.5)
    assert [pid for pid in started if is_running(pid)] == []
    assert_nothing_listens(gateway_port, httpbin_port)


@pytest.mark.parametrize("taken", ["DEMO_HTTPBIN_PORT", "GATEWAY_BIND"])
def test_a_taken_port_stops_the_demo_before_it_starts_anything(taken):
    with socket.create_server(("127.0.0.1", 0)) as other_program:
        busy = other_program.getsockname()[1]
        free = free_port()
        gateway_port, httpbin_port = (free, busy) if taken == "DEMO_HTTPBIN_PORT" else (busy, free)
        demo = start_demo(gateway_port, httpbin_port)
        try:
            output, _ = demo.communicate(timeout=30)
        finally:
            if demo.poll() is None:  # it started after all: stop it whole
                demo.terminate()
                demo.communicate(timeout=60)
    assert demo.returncode == 1
    assert output.splitlines()[0] == (
        f"demo: port {busy} ({taken}) is already in use by another program; choose free "
        "ports, e.g. DEMO_HTTPBIN_PORT=18001 GATEWAY_BIND=127.0.0.1:18000 make run")
    assert len(output.splitlines()) == 1
    assert_nothing_listens(free)
