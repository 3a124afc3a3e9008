"""Issue 17 point 1 end to end: gunicorn gevent workers in front of a real nginx serving
files, where a file outside the service's path is never reachable through the gateway.

nginx decodes escapes (``%2E`` and ``%2F`` too), merges slashes and resolves dot
segments before it maps the path to a file: the upstream that turned
``/service/%2E%2E/secret.txt`` into ``/secret.txt``. The control requests go to nginx
directly and show it does.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.net import call, free_port, wait_for_port
from tests.support.processes import Process

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SECRET = b"SECRET outside the service path"
CONF = """
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body_temp;
    proxy_temp_path {prefix}/proxy_temp;
    fastcgi_temp_path {prefix}/fastcgi_temp;
    uwsgi_temp_path {prefix}/uwsgi_temp;
    scgi_temp_path {prefix}/scgi_temp;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
    }}
}}
"""
KONG = """
_format_version: "3.0"
services:
- name: files
  url: {url}/service
  routes:
  - {{name: strip, paths: [/route]}}
  - {{name: keep, paths: [/keep], strip_path: false}}
  - {{name: regex, paths: ["~/re/[0-9]+"]}}
"""
ATTACKS = [
    "%2E%2E/secret.txt", "%2e%2e/secret.txt", "%2E./secret.txt", "/%2E%2E/secret.txt",
    "/../secret.txt", "/%2e%2E/%2E%2e/secret.txt", "//..//secret.txt", "/..%2Fsecret.txt",
    "%2F..%2Fsecret.txt", "/a%2F..%2F..%2Fsecret.txt", "%2e%2e%2fsecret.txt",
    "/%2F%2E%2E%2Fsecret.txt", "/.%2E/secret.txt", "/x/../../secret.txt",
]


@pytest.fixture(scope="module")
def files() -> Iterator[str]:
    """nginx serving www/secret.txt and www/service/ok.txt; its base URL."""
    prefix = Path(tempfile.mkdtemp(prefix="nginx-files-"))
    (prefix / "www" / "service" / "keep").mkdir(parents=True)
    (prefix / "www" / "secret.txt").write_bytes(SECRET)
    (prefix / "www" / "service" / "ok.txt").write_bytes(b"inside")
    (prefix / "www" / "service" / "keep" / "ok.txt").write_bytes(b"inside keep")
    port = free_port()
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(CONF.format(user=user, prefix=prefix, port=port))
    process = Process("nginx-files", [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                      "-e", str(prefix / "error.log")])
    wait_for_port(port, process.popen)
    yield f"http://127.0.0.1:{port}"
    process.stop()
    shutil.rmtree(prefix, ignore_errors=True)


def test_the_upstream_itself_resolves_escaped_dots_and_slashes(files):
    """The control: what reached nginx as /service/%2E%2E/secret.txt (the gateway's old
    target) or /service/%2F..%2Fsecret.txt (Kong's) is the secret."""
    for target in ("/service/%2E%2E/secret.txt", "/service/%2F..%2Fsecret.txt"):
        response, body = call(files, target=target)
        assert (response.status, body) == (200, SECRET)


@pytest.mark.parametrize("target", [a + b for a, b in
                                    itertools.product(["/route", "/keep", "/re/1"], ATTACKS)])
def test_nothing_outside_the_service_path_is_reachable(gateway, files, target):
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": KONG.format(url=files)})
    response, body = call(gw.url, target=target)
    assert SECRET not in body
    assert response.status in (400, 404), (response.status, body)


@pytest.mark.parametrize(("target", "body"), [
    ("/route/ok.txt", b"inside"), ("/route%2E%2E/ok.txt", b"inside"),
    ("/route/x/../ok.txt", b"inside"), ("/route//ok.txt", b"inside"),
    ("/keep/ok.txt", b"inside keep"), ("/keep/%2E/ok.txt", b"inside keep"),
    ("/re/12/ok.txt", b"inside"), ("/re/12%2e%2e/ok.txt", b"inside"),
])
def test_inside_the_service_path_is_served(gateway, files, target, body):
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": KONG.format(url=files)})
    response, got = call(gw.url, target=target)
    assert (response.status, got) == (200, body)
