"""rate-limiting's Redis under real gunicorn gevent workers: a plugin's own ``redis`` record
(a second redis-server, as decK writes it with Kong's defaults), a Sentinel master killed
mid-load (counting resumes on the promoted replica), and a Redis Cluster (clients in
different slots; a master killed mid-load, counting resumes on its promoted replica), each
reached through GATEWAY_REDIS_URL and through a kong.yml's
``redis`` record (Kong Enterprise's sentinel_* and cluster_nodes fields). Every Redis is a
real redis-server on loopback; each test is bounded.
"""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import yaml

from tests.support.net import call
from tests.support.processes import start_redis
from tests.support.redis_topologies import SERVICE, start_cluster, start_sentinel_set


def kong_file(upstream: str, config: dict) -> str:
    """A decK-style file: one service and route, one rate-limiting plugin with ``config``."""
    return json.dumps({
        "_format_version": "3.0",
        "services": [{"name": "echo", "url": upstream + "/echo",
                      "routes": [{"name": "all", "paths": ["/"]}]}],
        "plugins": [{"name": "rate-limiting", "config": config}]})


def by_header(url: str, client: str) -> tuple[int, str | None]:
    """(status, X-RateLimit-Remaining-Hour) of one GET counted for X-Client ``client``."""
    response, _ = call(url, target="/", headers={"X-Client": client})
    return response.status, response.headers.get("X-RateLimit-Remaining-Hour")


HOURLY_BY_HEADER = {"GATEWAY_RATELIMIT_HOUR": "1000000",
                    "GATEWAY_RATELIMIT_LIMIT_BY": "header:X-Client"}


@pytest.fixture(scope="module")
def own_redis():
    """A second redis-server, the plugin's own (not GATEWAY_REDIS_URL's)."""
    process, url = start_redis()
    yield url
    process.stop()


def test_a_plugins_own_redis_counts_across_two_workers(gateway, fixture_server, redis_url,
                                                       own_redis):
    port = int(own_redis.rsplit(":", 1)[1].split("/")[0])
    config = {"hour": 30, "limit_by": "ip", "policy": "redis", "fault_tolerant": False,
              "redis": {"host": "127.0.0.1", "port": port, "password": None, "database": 0,
                        "ssl": False, "ssl_verify": False, "server_name": None,
                        "timeout": 2000, "username": None}}
    gw = gateway({"GATEWAY_DECLARATIVE_CONFIG_STRING": kong_file(fixture_server.url, config),
                  "GATEWAY_REDIS_URL": redis_url}, workers=2, fresh=True)
    gw.wait_for_workers(2)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: call(gw.url, target="/", source="127.0.0.41")[0].status,
                              range(45)))
    assert codes.count(200) == 30 and codes.count(429) == 15
    own_keys = redis.Redis.from_url(own_redis).keys("gateway:ratelimit:*127.0.0.41*")
    assert own_keys, "the plugin's own Redis holds the counts"
    assert not redis.Redis.from_url(redis_url).keys("gateway:ratelimit:*127.0.0.41*")


def kong_yml(tmp_path: Path, upstream: str, config: dict) -> dict[str, str]:
    """The environment of a gateway reading a kong.yml whose rate-limiting has ``config``."""
    path = tmp_path / "kong.yml"
    path.write_text(yaml.safe_dump(json.loads(kong_file(upstream, config))))
    return {"GATEWAY_DECLARATIVE_CONFIG": str(path)}


def by_header_config(limit: int, redis_record: dict) -> dict:
    """rate-limiting's config counting per X-Client in the Redis ``redis_record`` names."""
    return {"hour": limit, "limit_by": "header", "header_name": "X-Client", "policy": "redis",
            "fault_tolerant": True, "redis": {"host": None, "port": 6379, **redis_record}}


def sentinel_env(how: str, topology, upstream: str, tmp_path: Path) -> dict[str, str]:
    """GATEWAY_REDIS_URL's redis+sentinel:// form, or a kong.yml's sentinel fields."""
    if how == "env":
        return {"GATEWAY_UPSTREAM_URL": upstream, "GATEWAY_FILTERS": "rate-limiting",
                "GATEWAY_REDIS_URL": topology.url, **HOURLY_BY_HEADER}
    record = {"sentinel_master": SERVICE, "sentinel_role": "master",
              "sentinel_nodes": [{"host": "127.0.0.1", "port": topology.ports["sentinel"]}]}
    return kong_yml(tmp_path, upstream, by_header_config(1000000, record))


@pytest.mark.parametrize("how", ["env", "kong.yml"])
def test_a_sentinel_master_killed_mid_load_counting_resumes_on_the_promoted_replica(
        gateway, fixture_server, tmp_path, how):
    try:
        topology = start_sentinel_set()
    except (RuntimeError, AssertionError) as exc:
        pytest.skip(f"redis-server --sentinel could not be started: {exc}")
    try:
        gw = gateway(sentinel_env(how, topology, fixture_server.url, tmp_path), workers=2,
                     fresh=True)
        before = [by_header(gw.url, "sentinel")[1] for _ in range(20)]
        assert before[-1] == "999980"
        replica = redis.Redis(port=topology.ports["replica"])
        topology.primary.stop(signal.SIGKILL)
        resumed, deadline = [], time.monotonic() + 15
        while len(resumed) < 10:
            assert time.monotonic() < deadline, "counting did not resume after the failover"
            status, remaining = by_header(gw.url, "sentinel")
            assert status == 200  # fault tolerant while no master answers
            if remaining is not None:
                resumed.append(int(remaining))
        assert topology.master_port() == topology.ports["replica"]
        # Not reset: the replica had the counts (999981 if the last one was still in flight).
        assert resumed[0] <= 999981 and resumed == list(range(resumed[0], resumed[0] - 10, -1))
        key = replica.keys("gateway:ratelimit:{header:sentinel}:hour:*")[0]
        assert int(replica.get(key)) == 1000000 - resumed[-1]
    finally:
        topology.stop()


def cluster_env(how: str, cluster, upstream: str, tmp_path: Path,
                limit: int = 3) -> dict[str, str]:
    """GATEWAY_REDIS_URL's redis+cluster:// form, or a kong.yml's cluster_nodes (one node:
    the client finds the others)."""
    if how == "env":
        return {"GATEWAY_UPSTREAM_URL": upstream, "GATEWAY_FILTERS": "rate-limiting",
                "GATEWAY_REDIS_URL": cluster.url, "GATEWAY_RATELIMIT_HOUR": str(limit),
                "GATEWAY_RATELIMIT_LIMIT_BY": "header:X-Client"}
    record = {"cluster_nodes": [{"ip": "127.0.0.1", "port": cluster.ports[0]}],
              "cluster_max_redirections": 5}
    return kong_yml(tmp_path, upstream, by_header_config(limit, record))


@pytest.mark.parametrize("how", ["env", "kong.yml"])
def test_a_redis_cluster_counts_clients_whose_keys_are_in_different_slots(
        gateway, fixture_server, tmp_path, how):
    try:
        cluster = start_cluster()
    except (RuntimeError, AssertionError) as exc:
        pytest.skip(f"a Redis Cluster could not be started: {exc}")
    try:
        gw = gateway(cluster_env(how, cluster, fixture_server.url, tmp_path), workers=2,
                     fresh=True)
        clients = [f"c{n}" for n in range(8)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda c: (c, by_header(gw.url, c)[0]), clients * 4))
        for client in clients:
            assert [s for c, s in answers if c == client].count(200) == 3, client
        holders = {port for port in cluster.ports
                   if redis.Redis(port=port).keys("gateway:ratelimit:*")}
        assert len(holders) >= 2, "the clients' keys are spread over several masters"
    finally:
        cluster.stop()


#: A key in the slot of the client "failover"'s counters (its hash tag decides the slot).
FAILOVER_KEY = "gateway:ratelimit:{header:failover}:hour:0"


@pytest.mark.parametrize("how", ["env", "kong.yml"])
def test_a_cluster_master_killed_mid_load_counting_resumes_on_its_promoted_replica(
        gateway, fixture_server, tmp_path, how):
    try:
        cluster = start_cluster(replicas=True)
    except (RuntimeError, AssertionError) as exc:
        pytest.skip(f"a Redis Cluster with replicas could not be started: {exc}")
    try:
        gw = gateway(cluster_env(how, cluster, fixture_server.url, tmp_path, 1000000),
                     workers=2, fresh=True)
        before = [by_header(gw.url, "failover")[1] for _ in range(20)]
        assert before[-1] == "999980"
        master = cluster.master_of(FAILOVER_KEY)
        cluster.process(master).stop(signal.SIGKILL)
        resumed, deadline = [], time.monotonic() + 20
        while len(resumed) < 10:
            assert time.monotonic() < deadline, "counting did not resume after the failover"
            started = time.monotonic()
            status, remaining = by_header(gw.url, "failover")
            assert status == 200  # fault tolerant while the slot has no master
            assert time.monotonic() - started < 1, "a request waited on the dead master"
            if remaining is not None:
                resumed.append(int(remaining))
        promoted = cluster.master_of(FAILOVER_KEY)
        assert promoted != master
        # Not reset: the replica had the counts (999981 if the last one was still in flight).
        assert resumed[0] <= 999981 and resumed == list(range(resumed[0], resumed[0] - 10, -1))
        key = redis.Redis(port=promoted).keys("gateway:ratelimit:{header:failover}:hour:*")[0]
        assert int(redis.Redis(port=promoted).get(key)) == 1000000 - resumed[-1]
    finally:
        cluster.stop()
