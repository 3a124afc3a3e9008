"""Services and routes from a Kong declarative file, under gunicorn with gevent workers:
the example file of docs/services-and-routes.md, Redis-shared limits, check, a bad file at
start and on reload."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_ops_reload import THREADS, LoadLoop, wait_for_new_workers
from tests.support.net import free_port
from tests.support.processes import ROOT, VENV_BIN

EXAMPLE = ROOT / "deploy" / "kong.yml"
KEY = "demo-key-0123456789"


def example_for(httpbin: str, fixture_url: str, tmp_path: Path, **replace: str) -> Path:
    """deploy/kong.yml with its addresses pointed at the test's servers."""
    text = EXAMPLE.read_text()
    host = httpbin.removeprefix("http://")
    fixture = fixture_url.removeprefix("http://")
    text = text.replace("127.0.0.1:8081", host).replace("127.0.0.1:8082", host)
    text = text.replace("127.0.0.1:8083", fixture)
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "kong.yml"
    path.write_text(text)
    return path


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_readme_example_file(gateway, httpbin, fixture_server, tmp_path):
    path = example_for(httpbin, fixture_server.url, tmp_path)
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG": str(path), "DEMO_API_KEY": KEY}, fresh=True)
    status, _, body = get(gw.url + "/orders/42")
    assert status == 401
    status, headers, body = get(gw.url + "/orders/42?x=1", {"apikey": KEY})
    assert status == 200
    seen = json.loads(body)
    assert seen["url"].endswith("/anything/42?x=1")  # strip_path, the service path in front
    assert "Apikey" not in seen["headers"]  # hide_credentials
    assert seen["headers"]["X-Consumer-Username"] == "demo"
    assert headers["X-RateLimit-Limit-Minute"] == "600"  # the global plugin
    assert int(headers["X-Gateway-Upstream-Latency"]) >= 0
    assert headers["Via"].endswith("1.1 gateway")
    assert get(gw.url + "/_gateway/health")[0] == 200
    assert get(gw.url + "/_gateway/ready")[0] == 200
    # The upstream's two targets take turns (httpbin, then the fixture server).
    answers = {get(gw.url + "/catalog/anything")[1].get("X-Upstream", "httpbin")
               for _ in range(4)}
    assert answers == {"httpbin", "fixture"}
    assert get(gw.url + "/catalog/anything", {"X-HTTP-Method-Override": "x"})[0] == 200
    status, _, body = get(gw.url + "/elsewhere")
    assert status == 404 and json.loads(body)["message"] == "no Route matched with those values"
    time.sleep(0.5)
    lines = [json.loads(line) for line in gw.logs().splitlines() if '"type": "access"' in line
             or '"type":"access"' in line]
    assert {(line["service"], line["route"]) for line in lines} >= {
        ("orders", "orders"), ("catalog", "catalog"), (None, None)}
    assert KEY not in gw.logs()
    _, _, metrics = get(gw.url + "/_gateway/metrics")
    assert 'gateway_route_requests_total{route="catalog",service="catalog",status_class="2xx"}' \
        in metrics.decode()


def test_global_rate_limit_shared_through_redis(gateway, httpbin, fixture_server, redis_url,
                                                tmp_path):
    path = example_for(httpbin, fixture_server.url, tmp_path,
                       **{"minute: 600": "minute: 6", "policy: local": "policy: redis"})
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG": str(path), "DEMO_API_KEY": KEY,
                  "GATEWAY_REDIS_URL": redis_url.removesuffix("/0") + "/3"}, workers=2, fresh=True)
    statuses = [get(gw.url + "/catalog/anything", {"Connection": "close"})[0]
                for _ in range(8)]
    assert statuses.count(200) == 6 and statuses[-1] == 429, statuses


def test_inline_configuration(gateway, fixture_server):
    text = ('_format_version: "3.0"\nservices:\n- name: echo\n  url: ' + fixture_server.url +
            '/echo\n  routes:\n  - {name: api, paths: ["~/v\\\\d+/"]}\n')
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": text})
    status, headers, body = get(gw.url + "/v2/items?a=1")
    assert status == 200 and headers["X-Upstream"] == "fixture"
    assert json.loads(body)["target"] == "/echo/items?a=1"  # the regex match stripped
    assert get(gw.url + "/items")[0] == 404


def check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "python"), "-m", "gateway", "check"], cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=30)


def test_check_validates_the_file(httpbin, fixture_server, tmp_path):
    path = example_for(httpbin, fixture_server.url, tmp_path)
    assert check({"GATEWAY_DECLARATIVE_CONFIG": str(path), "DEMO_API_KEY": KEY}).returncode == 0
    bad = example_for(httpbin, fixture_server.url, tmp_path, **{"[/catalog]": "[catalog]"})
    result = check({"GATEWAY_DECLARATIVE_CONFIG": str(bad), "DEMO_API_KEY": KEY})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"gateway: configuration error: GATEWAY_DECLARATIVE_CONFIG={bad}: "
        "services[catalog].routes[catalog].paths[0]: must start with / or ~")
    missing = check({"GATEWAY_DECLARATIVE_CONFIG": str(path)})
    assert "consumers[demo].keyauth_credentials[0].key: vault reference: environment " \
           "variable DEMO_API_KEY is not set" in missing.stderr


def test_bad_file_stops_the_start_with_one_line(tmp_path):
    path = tmp_path / "kong.yml"
    path.write_text('_format_version: "3.0"\nservices:\n- {name: orders, url: "orders:8080"}\n')
    result = subprocess.run(
        [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "gateway.wsgi:app"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_BIND": f"127.0.0.1:{free_port()}",
             "GATEWAY_DECLARATIVE_CONFIG": str(path)},
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "services[orders].url: 'orders:8080' is not an http://" \
        in lines[0], result.stderr


@pytest.mark.parametrize("workers", [2])
def test_reload_keeps_serving_on_a_bad_file_and_applies_a_good_one(
        gateway, fixture_server, tmp_path, workers):
    path = tmp_path / "kong.yml"
    good = ('_format_version: "3.0"\nservices:\n- name: echo\n  url: ' + fixture_server.url +
            '\n  routes:\n  - {name: old, paths: [/old]}\n')
    path.write_text(good)
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG": str(path)}, workers=workers, fresh=True)
    load = LoadLoop(gw.url, "/old/x")
    try:
        time.sleep(2)
        before = set(gw.worker_pids())
        path.write_text(good.replace("paths: [/old]", "paths: [old]"))
        gw.popen.send_signal(signal.SIGHUP)
        before = wait_for_new_workers(gw, before, workers)
        time.sleep(1)
        assert gw.popen.poll() is None  # the master did not halt
        assert "services[echo].routes[old].paths[0]: must start with / or ~" in gw.logs()
        assert "the workers keep the previous configuration" in gw.logs()
        assert get(gw.url + "/old/y")[0] == 200
        path.unlink()  # an unreadable file is a bad file too
        gw.popen.send_signal(signal.SIGHUP)
        before = wait_for_new_workers(gw, before, workers)
        assert gw.popen.poll() is None
        assert "cannot read it" in gw.logs()
        path.write_text(good.replace("{name: old, paths: [/old]}",
                                     "{name: old, paths: [/old]}\n  - {name: new, paths: [/new]}"))
        gw.popen.send_signal(signal.SIGHUP)
        wait_for_new_workers(gw, before, workers)
        time.sleep(1)
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]
    assert load.retried <= 3 * workers * THREADS  # at most one race per connection per reload
    assert load.ok > 100
    assert get(gw.url + "/new/z")[0] == 200
