"""`make run`'s demo: httpbin plus the gateway in front, stopped whole by Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from tests.support.net import call, free_port, wait_for_port
from tests.support.processes import ROOT


def test_demo_serves_httpbin_through_the_gateway_and_stops_on_ctrl_c():
    gateway_port, httpbin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({"GATEWAY_BIND": f"127.0.0.1:{gateway_port}", "GATEWAY_WORKERS": "1",
                "DEMO_HTTPBIN_PORT": str(httpbin_port)})
    demo = subprocess.Popen([sys.executable, "deploy/demo.py"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(gateway_port, demo, timeout=30)
        response, data = call(f"http://127.0.0.1:{gateway_port}", "GET", "/anything/demo")
        assert response.status == 200
        assert response.headers["Via"].endswith("1.1 gateway")
        assert json.loads(data)["url"].endswith("/anything/demo")
        assert response.headers["X-MyPlugin"] == f"http://127.0.0.1:{httpbin_port}/anything"
    finally:
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=30)
    assert f"curl -i http://127.0.0.1:{gateway_port}/anything" in output
    for port in (gateway_port, httpbin_port):  # nothing left listening
        try:
            wait_for_port(port, timeout=0.5)
        except TimeoutError:
            continue
        raise AssertionError(f"port {port} still served after Ctrl-C")
