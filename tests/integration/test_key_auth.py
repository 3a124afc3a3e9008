"""key-auth under real gunicorn gevent workers: Kong's 401s, the consumer upstream, hidden keys,
keys kept out of the logs, the keys file re-read on SIGHUP, a bad key setting stopping the start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.integration.test_ops_reload import wait_for_new_workers
from tests.support.net import call, free_port, raw_exchange, status_of
from tests.support.processes import ROOT, VENV_BIN

KEYS = "alice:alice-0f3c-s3cret,bob:bob-77d1-s3cret"


@pytest.fixture
def auth_gw(gateway, fixture_server):
    return gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "key-auth",
                    "GATEWAY_KEYAUTH_KEYS": KEYS, "GATEWAY_KEYAUTH_HIDE_CREDENTIALS": "true",
                    "GATEWAY_KEYAUTH_KEY_NAMES": "apikey,X-API-Key"})


def echo(response, data) -> tuple[str, dict[str, str]]:
    assert response.status == 200, data
    seen = json.loads(data)
    return seen["target"], {name.lower(): value for name, value in seen["headers"]}


def wait_for_log(gw, text: str, timeout: float = 5) -> str:
    """The gateway's log once it holds ``text`` (access lines are written after the response)."""
    deadline = time.monotonic() + timeout
    while text not in (logs := gw.logs()):
        assert time.monotonic() < deadline, f"{text!r} never logged"
        time.sleep(0.05)
    return logs


def test_missing_and_wrong_keys_get_kongs_401s(auth_gw, fixture_server):
    before = fixture_server.hits["/echo"]
    for headers, message in (({}, "No API key found in request"),
                             ({"apikey": "guess"}, "Unauthorized"),
                             ({"X-API-Key": "alice-0f3c-s3cre"}, "Unauthorized")):
        response, data = call(auth_gw.url, "GET", "/echo", headers)
        assert response.status == 401
        assert json.loads(data)["message"] == message
        assert response.headers["WWW-Authenticate"] == 'Key'
        assert response.headers["Content-Type"].startswith("application/json")
    assert fixture_server.hits["/echo"] == before


def test_a_key_header_on_two_lines_is_a_duplicate(auth_gw, fixture_server):
    """Kong's: the header's lines make a table, "Duplicate API key found", even when both
    hold the valid key (joined, they would be one key that matches none)."""
    before = fixture_server.hits["/echo"]
    port = auth_gw.url.rsplit(":", 1)[1]
    for lines in (b"apikey: alice-0f3c-s3cret\r\napikey: alice-0f3c-s3cret\r\n",
                  b"apikey: alice-0f3c-s3cret\r\napikey: bob-77d1-s3cret\r\n"):
        answer = raw_exchange(auth_gw.url, b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:" +
                              port.encode() + b"\r\n" + lines + b"Connection: close\r\n\r\n")
        assert status_of(answer) == 401
        assert b'"Duplicate API key found"' in answer
    assert fixture_server.hits["/echo"] == before


def test_an_empty_key_header_is_no_key_even_with_one_in_the_query(auth_gw, fixture_server):
    """Kong's: an empty header is the key "" (the query is not looked at): no key found."""
    response, data = call(auth_gw.url, "GET", "/echo?apikey=alice-0f3c-s3cret", {"apikey": ""})
    assert response.status == 401
    assert json.loads(data)["message"] == "No API key found in request"


def test_a_valid_key_passes_as_its_consumer_and_is_hidden_from_the_upstream(auth_gw):
    target, headers = echo(*call(auth_gw.url, "GET", "/echo?a=%2F&apikey=bob-77d1-s3cret&b",
                                 {"X-Consumer-Username": "admin"}))
    assert target == "/echo?a=%2F&b"
    assert headers["x-consumer-username"] == "bob"
    assert headers["x-credential-identifier"]
    target, headers = echo(*call(auth_gw.url, "GET", "/echo",
                                 {"X-API-Key": "alice-0f3c-s3cret"}))
    assert headers["x-consumer-username"] == "alice"
    assert "x-api-key" not in headers


def test_keys_never_reach_the_logs(auth_gw):
    call(auth_gw.url, "GET", "/echo?apikey=alice-0f3c-s3cret")
    call(auth_gw.url, "GET", "/echo", {"apikey": "wrong-9a9a-s3cret"})
    response, _ = call(auth_gw.url, "GET", "/echo?apikey=wrong-5b5b-s3cret")
    logs = wait_for_log(auth_gw, response.headers["X-Request-ID"])
    assert '"key-auth":"rejected"' in logs and '"key-auth":"authenticated"' in logs
    assert "s3cret" not in logs


def test_keys_file_is_read_again_on_sighup(gateway, fixture_server, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# consumer key\nalice old-key-1\n")
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "key-auth",
                  "GATEWAY_KEYAUTH_KEYS_FILE": str(keys)}, fresh=True)
    assert call(gw.url, "GET", "/echo", {"apikey": "old-key-1"})[0].status == 200
    assert call(gw.url, "GET", "/echo", {"apikey": "new-key-2"})[0].status == 401
    keys.write_text("alice new-key-2\n")
    old = set(gw.worker_pids())
    os.kill(gw.pid, signal.SIGHUP)
    wait_for_new_workers(gw, old, 1)
    _, headers = echo(*call(gw.url, "GET", "/echo", {"apikey": "new-key-2"}))
    assert headers["x-consumer-username"] == "alice"
    response, data = call(gw.url, "GET", "/echo", {"apikey": "old-key-1"})
    assert response.status == 401
    assert json.loads(data)["message"] == "Unauthorized"


def test_a_broken_keys_file_on_reload_stops_the_gateway_with_the_line(gateway, fixture_server,
                                                                      tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("alice k-1\n")
    gw = gateway({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "key-auth",
                  "GATEWAY_KEYAUTH_KEYS_FILE": str(keys)}, fresh=True)
    assert call(gw.url, "GET", "/echo", {"apikey": "k-1"})[0].status == 200  # worker loaded
    keys.write_text("alice k-1\nbob\n")
    os.kill(gw.pid, signal.SIGHUP)
    assert gw.popen.wait(15) == 2
    assert f"GATEWAY_KEYAUTH_KEYS_FILE='{keys}': line 2: expected `consumer key`" in gw.logs()


@pytest.mark.parametrize(("env", "shown"), [
    ({"GATEWAY_KEYAUTH_KEYS": "alice:bad key-s3cret"}, "GATEWAY_KEYAUTH_KEYS=<hidden>: "),
    ({"GATEWAY_KEYAUTH_KEYS_FILE": "/nonexistent/keys"}, "cannot read it"),
    ({}, "key-auth needs keys")])
def test_a_bad_key_setting_stops_the_start_with_one_line(fixture_server, env, shown):
    full = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    full.update({"GATEWAY_UPSTREAM_URL": fixture_server.url, "GATEWAY_FILTERS": "key-auth",
                 "GATEWAY_BIND": f"127.0.0.1:{free_port()}", **env})
    done = subprocess.run([str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py",
                           "gateway.wsgi:app"], env=full, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "configuration error" in line]
    assert len(errors) == 1 and shown in errors[0]
    assert "s3cret" not in done.stderr + done.stdout
