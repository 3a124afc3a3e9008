"""The Kong files of tests/fixtures/kong/ (shaped as decK, `kong config init`, a Kong 1.x
file, the Kubernetes Ingress Controller and a Docker Compose deployment write them) load
unchanged and serve under gunicorn with gevent workers, httpbin as their upstream."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from tests.support.kong_files import kong_file
from tests.support.net import free_port
from tests.support.processes import ROOT, VENV_BIN

KEY = {"apikey": "orders-key-0001"}
SHOP = {"Host": "shop.example.com"}
# Per file: (path, request headers, status, the path httpbin saw or Kong's message).
CASES = {
    "deck-dump.yaml": [
        ("/orders/1", {}, 401, "No API key found in request"),
        ("/orders/1", KEY, 200, "/anything/1"),
        ("/orders/7", {**KEY, "Host": "api.example.com", "X-Version": "2"}, 200,
         "/anything/orders/7"),
        ("/inventory/5", {}, 200, "/anything/5"),  # through the upstream and its target
    ],
    "kong-config-init.yml": [("/anything", {}, 404, "no Route matched with those values")],
    "kong-1.1-regex-paths.yml": [
        ("/users/42", {}, 200, "/anything/users/42"),
        ("/users/42/x", {}, 404, "no Route matched with those values"),
        ("/cafe/menu/x", {}, 200, "/anything/x"),
    ],
    "kic-ingress.yaml": [
        ("/anything/x", SHOP, 200, "/anything/x"),
        ("/status/201", SHOP, 201, None),
        ("/anything/x", {}, 404, "no Route matched with those values"),
        ("/cart/x", SHOP, 503, "failure to get a peer from the ring-balancer"),  # no targets
    ],
    "compose-underscores.yml": [
        ("/todos/1", {"Host": "todo_api"}, 200, "/anything/1"),
        ("/parked", {}, 503, "no Service found with those values"),
        ("/maintenance", {}, 418, "back soon"),
    ],
}


def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_real_tools_file_loads_and_serves(gateway, httpbin, tmp_path, name):
    path = tmp_path / name
    path.write_text(kong_file(name, httpbin))
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG": str(path)}, fresh=True)
    for request_path, headers, status, expected in CASES[name]:
        got, body = fetch(gw.url + request_path, headers)
        assert got == status, (request_path, body)
        if expected is None:
            continue
        seen = json.loads(body)
        if status < 300:
            assert seen["url"].partition("://")[2].partition("/")[2] == expected.lstrip("/")
        else:
            assert seen["message"] == expected


def test_a_file_with_several_blockers_stops_the_start_listing_them_all(tmp_path):
    path = tmp_path / "kong.yml"
    path.write_text('_format_version: "3.0"\nservices:\n- {name: a, host: a, protocol: grpc}\n'
                    "- {name: b, url: 'http://b', routes: [{paths: [b]}]}\n")
    result = subprocess.run(
        [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "gateway.wsgi:app"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_BIND": f"127.0.0.1:{free_port()}",
             "GATEWAY_DECLARATIVE_CONFIG": str(path)},
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"gateway: configuration error: GATEWAY_DECLARATIVE_CONFIG={path}: 2 problems, one a "
        "line:",
        "  services[a].protocol: protocol 'grpc' is not supported by this gateway (http, "
        "https, and ws/wss for WebSocket handshakes are)",
        "  services[b].routes[0].paths[0]: must start with / or ~"]
