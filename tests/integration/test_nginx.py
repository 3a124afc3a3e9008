"""deploy/nginx.conf, run by a real nginx in front of real gunicorn gevent workers.

The site file is used as shipped; only its ports change. A small main file
around it keeps nginx's pid, logs and temp directories in a temporary prefix
and runs the workers as the current user.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.proxy.request import ALLOWED_METHODS, METHOD_NOT_ALLOWED
from tests.support.net import call, free_port, raw_exchange, status_of, wait_for_port
from tests.support.processes import ROOT, Gateway, Process, reset_peak_rss, rss_kib

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MiB = 1 << 20
# The client connects from another loopback address than nginx's own, so the
# upstream can tell the real client from the proxy hop.
CLIENT_IP = "127.0.0.2"

MAIN_CONF = """
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;
    include {prefix}/gateway.conf;
}}
"""


def site_conf(listen: int, gateway_port: int) -> str:
    """deploy/nginx.conf with the test's ports."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    text, servers = re.subn(r"server 127\.0\.0\.1:8000\b", f"server 127.0.0.1:{gateway_port}", text)
    text, listens = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen};", text)
    assert servers == listens == 1, "deploy/nginx.conf changed shape: update this test"
    return text


class Nginx(Process):
    """A real nginx running deploy/nginx.conf in a temporary prefix."""

    def __init__(self, gateway_port: int) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.prefix / "gateway.conf").write_text(site_conf(self.port, gateway_port))
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        main = self.prefix / "nginx.conf"
        main.write_text(MAIN_CONF.format(user=user, prefix=self.prefix))
        errors = self.prefix / "error.log"
        argv = [NGINX, "-p", str(self.prefix), "-c", str(main), "-e", str(errors)]
        super().__init__("nginx", argv)
        wait_for_port(self.port, self.popen)

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return int(children[0])

    def temp_files(self) -> list[str]:
        """Files nginx keeps in its proxy temp directory, including open deleted ones."""
        temp = self.prefix / "proxy_temp"
        listed = [str(p) for p in temp.rglob("*") if p.is_file()] if temp.exists() else []
        fds = Path(f"/proc/{self.worker_pid()}/fd")
        opened = [os.readlink(fd) for fd in fds.iterdir()]
        return listed + [link for link in opened if str(temp) in link]

    def stop(self, *args, **kwargs) -> int | None:
        code = super().stop(*args, **kwargs)
        shutil.rmtree(self.prefix, ignore_errors=True)
        return code


@pytest.fixture(scope="module")
def behind_nginx(fixture_server, httpbin) -> Iterator[tuple[Nginx, object]]:
    """nginx -> gateway (2 gevent workers, GATEWAY_TRUSTED_PROXIES=1, enrichment from
    httpbin's /anything as in Kong's guide) -> fixture server."""
    gateway = Gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url,
                       "GATEWAY_TRUSTED_PROXIES": "1", "GATEWAY_FILTERS": "enrichment",
                       "GATEWAY_ENRICH_URL": httpbin + "/anything"}, workers=2)
    nginx = Nginx(gateway.port)
    yield nginx, gateway
    nginx.stop()
    gateway.stop()


def get(url: str, target: str, headers: dict | None = None,
        source: str = CLIENT_IP) -> tuple[int, dict, bytes]:
    response, body = call(url, target=target, headers=headers, source=source)
    return response.status, dict(response.getheaders()), body


def test_upstream_sees_the_real_client_address(behind_nginx):
    nginx, _ = behind_nginx
    status, _, body = get(nginx.url, "/echo", {"X-Forwarded-For": "6.6.6.6"})
    seen = {name.lower(): value for name, value in json.loads(body)["headers"]}
    assert status == 200
    assert seen["x-real-ip"] == CLIENT_IP  # not nginx's 127.0.0.1, not the spoofed one
    # Each hop appends its peer: the client (by nginx), then nginx (by the gateway).
    assert seen["x-forwarded-for"] == f"6.6.6.6, {CLIENT_IP}, 127.0.0.1"


def test_header_names_with_underscores_pass_but_cannot_pass_for_nginxs(behind_nginx):
    nginx, _ = behind_nginx  # underscores_in_headers on: Kong's key-auth finds `api_key:`
    status, _, body = get(nginx.url, "/echo", {"api_key": "k", "X_Forwarded_For": "6.6.6.6",
                                               "X_Real_IP": "6.6.6.6"})
    seen = {name.lower(): value for name, value in json.loads(body)["headers"]}
    assert status == 200
    assert seen["api-key"] == "k"
    assert seen["x-real-ip"] == CLIENT_IP
    assert "6.6.6.6" not in seen["x-forwarded-for"]


def test_enrichment_header_arrives_through_nginx(behind_nginx, httpbin):
    nginx, _ = behind_nginx
    status, headers, body = get(nginx.url, "/echo")
    assert status == 200 and json.loads(body)["target"] == "/echo"
    assert headers["X-MyPlugin"] == httpbin + "/anything"
    assert headers["X-Gateway-Enrichment-Latency"].isdigit()


def test_errors_keep_their_status_and_body(behind_nginx):
    nginx, _ = behind_nginx
    status, _, body = get(nginx.url, "/status/503")
    assert status == 503 and json.loads(body) == {"status": True}
    status, headers, body = get(nginx.url, "/hangup")  # upstream drops the request: gateway's 502
    assert status == 502
    answer = json.loads(body)
    assert answer["message"] == "An invalid response was received from the upstream server"
    assert answer["request_id"] == headers["X-Request-ID"]


def test_status_endpoints_are_for_the_local_network_only(behind_nginx):
    nginx, _ = behind_nginx
    status, _, body = get(nginx.url, "/_gateway/health", source="127.0.0.1")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert get(nginx.url, "/_gateway/metrics")[0] == 403  # 127.0.0.2 is not on the allow list


def test_200_mib_streams_through_without_buffering(behind_nginx):
    nginx, gateway = behind_nginx
    nginx_worker = nginx.worker_pid()
    reset_peak_rss(nginx_worker)
    nginx_before = rss_kib(nginx_worker)
    host, port = nginx.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", f"/bytes?n={200 * MiB}")
    response = conn.getresponse()
    received = len(response.read(MiB))
    # A stalled client: a buffering nginx would now spool the body to proxy_temp.
    time.sleep(1.0)
    spooled = nginx.temp_files()
    while piece := response.read(1 << 16):
        received += len(piece)
    conn.close()
    assert received == 200 * MiB
    assert spooled == [] and nginx.temp_files() == []
    grown = (rss_kib(nginx_worker, "VmHWM") - nginx_before) / 1024
    assert grown < 20, f"nginx worker RSS grew by {grown:.1f} MiB"
    assert all(rss_kib(pid) < 200 * 1024 for pid in gateway.worker_pids())
    assert response.getheader("X-MyPlugin")  # enriched, and still streamed


@pytest.mark.parametrize("head, statuses", [
    (b"GET /echo HTTP/1.1\r\nHost: a\tb\r\n", {400}),
    (b"GET /echo HTTP/1.1\r\nHost: a\xe9b\r\n", {400}),
    (b"GET /echo HTTP/1.1\r\n", {400}),
    (b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n", {400, 405}),
    (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n", {400}),
    (b"TRACE /echo HTTP/1.1\r\nHost: a\r\n", {405}),
    (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n", {400}),
], ids=["host-tab", "host-non-ascii", "no-host", "connect", "options-asterisk", "trace",
        "length-huge"])
def test_hostile_requests_through_nginx_never_reach_the_upstream(behind_nginx, fixture_server,
                                                                 head, statuses):
    """Refused by nginx or by the gateway behind it, never passed on."""
    nginx, _ = behind_nginx
    before = sum(fixture_server.hits.values())
    response = raw_exchange(nginx.url, head + b"Connection: close\r\n\r\n")
    assert status_of(response) in statuses
    assert sum(fixture_server.hits.values()) == before


def test_trace_gets_nginxs_405_with_the_gateways_allow_list(behind_nginx, fixture_server):
    """nginx refuses TRACE before any location: its answer still carries the Allow header
    RFC 9110 requires, the list the gateway itself sends, and the gateway's message."""
    nginx, _ = behind_nginx
    before = sum(fixture_server.hits.values())
    response, body = call(nginx.url, "TRACE", "/echo")
    assert response.status == 405
    assert response.getheader("Allow") == dict(ALLOWED_METHODS)["Allow"]
    assert json.loads(body)["message"] == METHOD_NOT_ALLOWED
    assert sum(fixture_server.hits.values()) == before


def test_a_405_from_behind_the_gateway_passes_nginx_unchanged(behind_nginx):
    """error_page 405 is for nginx's own TRACE answer: a proxied 405 keeps its body and
    headers (no proxy_intercept_errors)."""
    nginx, _ = behind_nginx
    status, headers, body = get(nginx.url, "/status/405")
    assert status == 405
    assert json.loads(body) == {"status": True}
    assert "Allow" not in headers


def test_redirects_to_the_upstream_point_at_nginx(behind_nginx, fixture_server):
    nginx, _ = behind_nginx
    _, headers, _ = get(nginx.url, f"/respond?Location={fixture_server.url}/next")
    assert headers["Location"] == nginx.url + "/next"
