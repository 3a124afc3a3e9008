"""gateway.filters.logentry: Kong's log entry fields, and secrets kept out of it."""

from __future__ import annotations

import json
import tempfile

from gateway.testing.mock import MockService
from tests.support.app import gateway_of, get, in_process


def logged(extra_plugins: list, path: str, headers: dict) -> dict:
    """The file-log entry of one request through key-auth + file-log."""
    upstream = MockService()
    try:
        log_path = tempfile.mktemp(suffix=".log")
        decl = {"_format_version": "3.0",
                "services": [{"name": "s", "url": upstream.url,
                              "routes": [{"name": "r", "paths": ["/"]}]}],
                "consumers": [{"username": "alice",
                               "keyauth_credentials": [{"key": "alice-secret-key"}]}],
                "plugins": [*extra_plugins, {"name": "file-log", "config": {"path": log_path}}]}
        client = in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": json.dumps(decl),
                             "GATEWAY_ACCESS_LOG": "off"})
        get(client, path, headers=headers)
        [f] = [f for f in gateway_of(client).filters if f.NAME == "file-log"]
        f.queue.drain()
        with open(log_path) as lines:
            return json.loads(lines.readline())
    finally:
        upstream.stop()


def test_key_auth_credential_redacted_in_header_and_query():
    entry = logged([{"name": "key-auth", "config": {}}], "/x?apikey=alice-secret-key&a=1",
                   {"Cookie": "c=1"})
    text = json.dumps(entry)
    assert "alice-secret-key" not in text
    assert entry["request"]["querystring"] == {"apikey": "REDACTED", "a": "1"}
    assert entry["consumer"]["username"] == "alice"
    assert entry["authenticated_entity"]["consumer_id"]
    entry = logged([{"name": "key-auth", "config": {}}], "/x", {"apikey": "alice-secret-key"})
    assert entry["request"]["headers"]["apikey"] == "REDACTED"


def test_entry_fields_as_kong():
    entry = logged([], "/path?a=1&a=2&flag", {"X-Two": "1"})
    assert entry["request"]["querystring"] == {"a": ["1", "2"], "flag": True}
    assert entry["request"]["uri"] == "/path?a=1&a=2&flag"
    assert entry["request"]["url"].endswith("/path?a=1&a=2&flag")
    assert entry["upstream_uri"] == "/path?a=1&a=2&flag"
    assert entry["upstream_status"] == "200"
    assert entry["source"] == "upstream"
    assert entry["response"]["size"] > int(entry["response"]["headers"]["content-length"])
    assert isinstance(entry["started_at"], int) and entry["started_at"] > 1.7e12
    assert entry["tries"][0]["ip"] == "127.0.0.1"
    assert entry["workspace"] == "default"
    assert entry["latencies"]["proxy"] >= 0
    assert "consumer" not in entry


def test_percent_encoded_key_redacted_in_the_uri():
    entry = logged([{"name": "key-auth", "config": {}}], "/x?apikey=k%2By", {})
    assert "k%2By" not in json.dumps(entry) and "k+y" not in json.dumps(entry)
