"""rate-limiting's Kong ``redis`` record (kong/tools/redis/schema.lua) and its deprecated
``redis_*`` shorthands: loaded, counted in that real redis-server (password, TLS with
``server_name``), refused with Kong's words where Kong refuses, secrets never shown.
Kong Enterprise's Sentinel and Cluster fields of the record count in real Sentinel and
Cluster redis-servers."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from gateway.config import ConfigError, redis_target
from gateway.store.redis import kong_redis_url
from gateway.testing.servers import Process, free_port, wait_for_port
from tests.support.app import get, in_process
from tests.support.fixture_server import closed_port_url
from tests.support.redis_topologies import SERVICE, start_cluster, start_sentinel_set

PASSWORD = "s3cr3t-pw"
#: Where the file's plugin config is, in an error.
AT = "plugins[rate-limiting].config"


def kong_file(upstream: str, config: dict) -> str:
    return json.dumps({
        "_format_version": "3.0",
        "services": [{"name": "echo", "url": upstream + "/echo",
                      "routes": [{"name": "all", "paths": ["/"]}]}],
        "plugins": [{"name": "rate-limiting",
                     "config": {"minute": 2, "limit_by": "ip", "policy": "redis",
                                "fault_tolerant": False, **config}}]})


def load(upstream, config: dict, **env: str):
    return in_process({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(upstream.url, config),
                       **env})


def redis_server(*extra: str) -> tuple[Process, int]:
    port = free_port()
    argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra]
    process = Process("redis", argv, cwd=tempfile.gettempdir())
    wait_for_port(port, process.popen)
    return process, port


@pytest.fixture(scope="module")
def guarded_server():
    process, port = redis_server("--requirepass", PASSWORD)
    yield port
    process.stop()


@pytest.fixture
def guarded(guarded_server):
    """A redis-server that wants PASSWORD, with no counts in it."""
    redis.Redis(port=guarded_server, password=PASSWORD).flushall()
    return guarded_server


def counted(port: int, password: str | None = None) -> list[bytes]:
    return redis.Redis(port=port, password=password).keys("gateway:ratelimit:*")


def statuses(client, count: int = 3) -> list[int]:
    return [get(client, "/").status_code for _ in range(count)]


def test_kongs_nested_record_with_a_password_counts_in_that_redis(upstream, guarded):
    client = load(upstream, {"redis": {"host": "127.0.0.1", "port": guarded,
                                       "password": PASSWORD, "timeout": 2000}})
    assert statuses(client) == [200, 200, 429]
    assert counted(guarded, PASSWORD)


def test_the_deprecated_flat_fields_are_kongs_shorthands(upstream, guarded):
    client = load(upstream, {"redis_host": "127.0.0.1", "redis_port": guarded,
                             "redis_password": PASSWORD, "redis_database": 3,
                             "redis_timeout": 1000})
    assert statuses(client) == [200, 200, 429]
    assert redis.Redis(port=guarded, password=PASSWORD, db=3).keys("gateway:ratelimit:*")


def test_a_dump_with_both_forms_at_the_same_values_loads(upstream, guarded):
    """Kong 3.x's Admin API (so decK) writes the legacy fields beside the record, equal."""
    record = {"host": "127.0.0.1", "port": guarded, "password": PASSWORD, "database": 0,
              "ssl": False, "ssl_verify": False, "server_name": None, "timeout": 2000,
              "username": None}
    client = load(upstream, {"redis": record,
                             **{f"redis_{name}": value for name, value in record.items()}})
    assert statuses(client) == [200, 200, 429]
    assert counted(guarded, PASSWORD)


def test_a_vault_reference_gives_the_password(upstream, guarded):
    client = load(upstream, {"redis": {"host": "127.0.0.1", "port": guarded,
                                       "password": "{vault://env/redis-pw}"}},
                  REDIS_PW=PASSWORD)
    assert statuses(client, 1) == [200]


def test_a_wrong_password_is_never_logged(upstream, guarded, caplog):
    wrong = "wr0ng-pw-value"
    client = load(upstream, {"redis": {"host": "127.0.0.1", "port": guarded,
                                       "password": wrong}, "fault_tolerant": True})
    with caplog.at_level(logging.WARNING):
        assert statuses(client, 2) == [200, 200]
    text = " ".join(r.getMessage() for r in caplog.records)
    assert f"redis://127.0.0.1:{guarded}/0 failed" in text
    assert wrong not in text and PASSWORD not in text


def test_without_a_host_the_redis_policy_uses_gateway_redis_url(upstream, redis_url):
    client = load(upstream, {"redis": {"host": None, "port": 6379}},
                  GATEWAY_REDIS_URL=redis_url)
    redis.Redis.from_url(redis_url).flushdb()
    assert statuses(client) == [200, 200, 429]
    assert redis.Redis.from_url(redis_url).keys("gateway:ratelimit:*")


def test_without_a_host_or_gateway_redis_url_the_redis_policy_is_refused(upstream):
    with pytest.raises(ConfigError) as caught:
        load(upstream, {"redis": {"host": None}})
    assert f"{AT}: policy redis needs a Redis: set GATEWAY_REDIS_URL" in str(caught.value)
    assert "config.redis.host" in str(caught.value)


def test_the_local_policy_ignores_the_record_as_kong_does(upstream):
    client = load(upstream, {"policy": "local", "redis": {"host": "127.0.0.1", "port": 1}})
    assert statuses(client) == [200, 200, 429]


@pytest.mark.parametrize("config, message", [
    ({"redis_port": 6380, "redis": {"host": "h", "port": 6379}},
     f"{AT}.redis_port: both deprecated and new field are used but their values mismatch:"
     " config.redis_port = 6380 vs config.redis.port = 6379"),
    ({"redis_password": "pw-one", "redis": {"host": "h", "password": "pw-two"}},
     f"{AT}.redis_password: both deprecated and new field are used but their values mismatch:"
     " config.redis_password = <hidden> vs config.redis.password = <hidden>"),
    ({"redis": {"sentinel_master": "mymaster"}},
     f"{AT}.redis.sentinel_nodes: all or none of these fields must be set: 'sentinel_master', "
     "'sentinel_nodes'"),
    ({"redis": {"host": "h", "sentinel_master": "m", "sentinel_nodes": [{"host": "s"}]}},
     f"{AT}.redis.sentinel_nodes: these sets are mutually exclusive: ('sentinel_master', "
     "'sentinel_nodes'), ('host')"),
    ({"redis": {"host": "h", "cluster_nodes": [{"ip": "h", "port": 7000}]}},
     f"{AT}.redis.cluster_nodes: these sets are mutually exclusive: ('cluster_nodes'), ('host')"),
    ({"redis": {"sentinel_master": "m", "sentinel_nodes": [{"host": "s"}],
                "cluster_nodes": [{"ip": "h"}], "sentinel_password": "pw-one"}},
     f"{AT}.redis.cluster_nodes: these sets are mutually exclusive: ('sentinel_master', "
     "'sentinel_nodes'), ('cluster_nodes')"),
    ({"redis": {"sentinel_master": "m", "sentinel_nodes": [{"host": "s"}],
                "sentinel_role": "primary"}},
     f"{AT}.redis.sentinel_role: expected one of: master, slave, any"),
    ({"redis": {"sentinel_master": "m", "sentinel_nodes": [{"host": "s", "colour": 1}]}},
     f"{AT}.redis.sentinel_nodes[0].colour: unknown field"),
    ({"redis": {"cluster_nodes": [{"ip": "h"}], "database": 2, "password": "pw-two"}},
     f"{AT}.redis.database: a Redis Cluster has database 0 only"),
    ({"redis": {"cluster_nodes": [{"ip": "h"}], "server_name": "redis.test"}},
     f"{AT}.redis.server_name: is not supported by this gateway with sentinel_nodes"),
    ({"redis": {"host": "h", "keepalive_pool_size": 30}},
     f"{AT}.redis.keepalive_pool_size: is not supported by this gateway: an OpenResty "
     "cosocket setting without a redis-py counterpart (only 256)"),
    ({"redis": {"host": "h", "connection_is_proxied": True}},
     f"{AT}.redis.connection_is_proxied: is not supported by this gateway"),
    ({"redis": {"host": "h", "keepalive_backlog": 10}},
     f"{AT}.redis.keepalive_backlog: is not supported by this gateway"),
    ({"redis": {"host": "h", "colour": "blue"}}, f"{AT}.redis.colour: unknown field"),
    ({"redis": {"host": "h", "port": 70000}},
     f"{AT}.redis.port: value should be between 0 and 65535"),
    ({"redis_timeout": "fast", "redis": {"host": "h"}},
     f"{AT}.redis_timeout: expected an integer"),
])
def test_kongs_refusals_name_the_field_and_hide_secrets(upstream, config, message):
    with pytest.raises(ConfigError) as caught:
        load(upstream, config)
    assert message in str(caught.value)
    assert "pw-one" not in str(caught.value) and "pw-two" not in str(caught.value)


def test_kongs_record_becomes_a_url_with_kongs_meanings():
    target = redis_target(kong_redis_url({
        "host": "cache", "port": 6380, "database": 2, "username": "", "password": "p@ss:/",
        "ssl": True, "ssl_verify": False, "server_name": "redis.test", "timeout": 250}))
    assert (target.kind, target.nodes, target.database) == ("redis", (("cache", 6380),), 2)
    assert (target.username, target.password) == (None, "p@ss:/")  # Kong: empty is no AUTH
    assert (target.tls, target.tls_verify, target.server_name) == (True, False, "redis.test")
    assert target.timeout == 0.25
    assert redis_target(kong_redis_url({"host": "h", "timeout": 0})).timeout == 2.0


def test_kong_enterprises_sentinel_fields_become_a_sentinel_url():
    target = redis_target(kong_redis_url({
        "sentinel_master": "my/master", "sentinel_nodes": (("s1", 26379), ("s2", 26380)),
        "sentinel_role": "any", "sentinel_username": "su", "sentinel_password": "sp@ss",
        "password": "p:w", "database": 3, "timeout": 300, "connect_timeout": 100,
        "read_timeout": 400, "send_timeout": 200, "port": 6379, "server_name": None}))
    assert (target.kind, target.nodes) == ("sentinel", (("s1", 26379), ("s2", 26380)))
    assert (target.service, target.sentinel_role, target.database) == ("my/master", "any", 3)
    assert (target.sentinel_username, target.sentinel_password) == ("su", "sp@ss")
    assert (target.username, target.password) == (None, "p:w")
    assert (target.connect_timeout, target.timeout) == (0.1, 0.4)  # read/send: the larger
    assert "sp@ss" not in target.shown() and "p:w" not in target.shown()


def test_kong_enterprises_cluster_fields_become_a_cluster_url():
    target = redis_target(kong_redis_url({
        "cluster_nodes": (("n1", 7000), ("n2", 7001)), "cluster_max_redirections": 3,
        "username": "u", "password": "pw", "ssl": True, "ssl_verify": True}))
    assert (target.kind, target.nodes) == ("cluster", (("n1", 7000), ("n2", 7001)))
    assert (target.max_redirections, target.tls, target.tls_verify) == (3, True, True)
    assert (target.username, target.password, target.timeout) == ("u", "pw", 2.0)
    assert target.connect_timeout is None


@pytest.fixture(scope="module")
def sentinel_set():
    try:
        topology = start_sentinel_set()
    except (RuntimeError, AssertionError) as exc:
        pytest.skip(f"redis-server --sentinel could not be started: {exc}")
    yield topology
    topology.stop()


def sentinel_record(topology, **fields) -> dict:
    return {"host": None, "port": 6379, "sentinel_master": SERVICE,
            "sentinel_nodes": [{"host": "127.0.0.1", "port": topology.ports["sentinel"]}],
            **fields}


@pytest.mark.parametrize("role", ["master", "any", None])
def test_a_plugins_sentinel_fields_count_in_the_master(upstream, sentinel_set, role):
    primary = redis.Redis(port=sentinel_set.ports["primary"])
    primary.flushall()
    client = load(upstream, {"redis": sentinel_record(sentinel_set, sentinel_role=role)})
    assert statuses(client) == [200, 200, 429]
    assert primary.keys("gateway:ratelimit:*")


def test_a_replica_role_reads_from_a_replica_so_writes_fail(upstream, sentinel_set):
    """Kong's ``slave``: a replica (read-only here), so the count cannot be written: 500."""
    redis.Redis(port=sentinel_set.ports["primary"]).flushall()
    replica = redis.Redis(port=sentinel_set.ports["replica"])
    deadline = time.monotonic() + 5
    while replica.keys("gateway:ratelimit:*") and time.monotonic() < deadline:
        time.sleep(0.05)  # the flush reaches the replica
    client = load(upstream, {"redis": sentinel_record(sentinel_set, sentinel_role="slave")})
    assert statuses(client, 1) == [500]


def test_sentinel_secrets_are_never_logged(upstream, caplog):
    port = int(closed_port_url().rsplit(":", 1)[1])
    record = {"sentinel_master": "mymaster", "sentinel_nodes": [{"port": port}],
              "password": PASSWORD, "sentinel_username": "sentinel-user-x",
              "sentinel_password": "sentinel-pw-x", "username": "user-x", "timeout": 200}
    client = load(upstream, {"redis": record, "fault_tolerant": True})
    with caplog.at_level(logging.WARNING):
        assert statuses(client, 2) == [200, 200]
    text = " ".join(r.getMessage() for r in caplog.records)
    assert f"redis+sentinel://127.0.0.1:{port}/mymaster/0 failed" in text
    for secret in (PASSWORD, "sentinel-user-x", "sentinel-pw-x", "user-x"):
        assert secret not in text


def test_a_plugins_cluster_nodes_count_in_the_cluster(upstream):
    try:
        cluster = start_cluster()
    except (RuntimeError, AssertionError) as exc:
        pytest.skip(f"a Redis Cluster could not be started: {exc}")
    try:
        nodes = [{"ip": "127.0.0.1", "port": port} for port in cluster.ports[:1]]
        client = load(upstream, {"redis": {"cluster_nodes": nodes,
                                           "cluster_max_redirections": 5}})
        assert statuses(client) == [200, 200, 429]
        assert any(redis.Redis(port=port).keys("gateway:ratelimit:*") for port in cluster.ports)
    finally:
        cluster.stop()


# ---------------------------------------------------------------- TLS and server_name

@pytest.fixture(scope="module")
def tls_redis():
    """A redis-server speaking TLS only, its certificate for the name redis.test."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="gw-redis-tls-"))
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=redis.test", "-addext", "subjectAltName=DNS:redis.test",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    port = free_port()
    argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", "0",
            "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    process = Process("redis-tls", argv, cwd=str(workdir))
    try:
        wait_for_port(port, process.popen)
    except RuntimeError:
        pytest.skip(f"redis-server has no TLS: {process.logs()[-200:]}")
    yield port, cert
    process.stop()


def test_tls_checks_the_certificate_against_server_name(upstream, tls_redis, monkeypatch):
    port, cert = tls_redis
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the CA the system store would hold
    record = {"host": "127.0.0.1", "port": port, "ssl": True, "ssl_verify": True}
    named = load(upstream, {"redis": {**record, "server_name": "redis.test"}})
    assert statuses(named) == [200, 200, 429]
    unnamed = load(upstream, {"redis": record, "minute": 5})
    assert statuses(unnamed, 1) == [500]  # the certificate is not for 127.0.0.1
    unverified = load(upstream, {"redis": {**record, "ssl_verify": False}, "minute": 7})
    assert statuses(unverified, 1) == [200]


def test_a_redis_that_is_down_is_a_500_when_not_fault_tolerant(upstream):
    port = int(closed_port_url().rsplit(":", 1)[1])
    client = load(upstream, {"redis": {"host": "127.0.0.1", "port": port, "timeout": 200}})
    assert statuses(client, 1) == [500]
