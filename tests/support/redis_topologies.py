"""Real Redis topologies on loopback for the tests: a Sentinel set and a Cluster.

Each server is a ``redis-server`` process (Sentinel mode is ``redis-server
--sentinel``), no persistence, its files in a temporary directory. A test that
needs them skips with the reason when the binary lacks what they need.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from gateway.testing.servers import Process, free_port, wait_for_port

__all__ = ["Cluster", "SentinelSet", "start_cluster", "start_sentinel_set"]

SERVICE = "gwmaster"


def _binary(name: str) -> str:
    found = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(found).exists():
        pytest.skip(f"{name} is not installed")
    return found


def _server(name: str, port: int, workdir: Path, *extra: str) -> Process:
    argv = [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(workdir), *extra]
    process = Process(name, argv, cwd=str(workdir))
    wait_for_port(port, process.popen)
    return process


def _until(check, timeout: float, what: str) -> None:
    """Poll ``check`` (true when ready) every 50 ms for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class SentinelSet:
    """A primary, one replica and one sentinel (quorum 1) watching them as SERVICE."""

    primary: Process
    replica: Process
    sentinel: Process
    ports: dict[str, int]
    workdir: Path
    processes: list[Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.ports['sentinel']}/{SERVICE}/0"

    def master_port(self) -> int:
        client = redis.Redis(port=self.ports["sentinel"], socket_timeout=1)
        return int(client.sentinel_get_master_addr_by_name(SERVICE)[1])

    def stop(self) -> None:
        _stop_all(self.processes, self.workdir)


def _stop_all(processes: list[Process], workdir: Path) -> None:
    for process in processes:
        if process.popen.poll() is None:
            process.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def start_sentinel_set() -> SentinelSet:
    """Start and wait until the sentinel knows the replica in sync (so it can promote it)."""
    workdir = Path(tempfile.mkdtemp(prefix="gw-sentinel-"))
    ports = {name: free_port() for name in ("primary", "replica", "sentinel")}
    for name in ("p", "r"):
        (workdir / name).mkdir()
    started: list[Process] = []
    try:
        started.append(_server("redis-primary", ports["primary"], workdir / "p",
                               "--repl-diskless-sync-delay", "0"))
        started.append(_server("redis-replica", ports["replica"], workdir / "r",
                               "--replicaof", "127.0.0.1", str(ports["primary"])))
        conf = workdir / "sentinel.conf"
        conf.write_text(
            f"port {ports['sentinel']}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {ports['primary']} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 500\n"
            f"sentinel failover-timeout {SERVICE} 3000\n")
        started.append(Process("redis-sentinel",
                               [_binary("redis-server"), str(conf), "--sentinel"],
                               cwd=str(workdir)))
        wait_for_port(ports["sentinel"], started[-1].popen)
        client = redis.Redis(port=ports["sentinel"], socket_timeout=1)
        _until(lambda: client.sentinel_slaves(SERVICE) and
               client.sentinel_slaves(SERVICE)[0]["master-link-status"] == "ok",
               10, "the sentinel to see the replica in sync")
    except BaseException:
        _stop_all(started, workdir)
        raise
    return SentinelSet(*started, ports, workdir, started)


@dataclass
class Cluster:
    """Three masters with ``cluster-enabled yes``, all 16,384 slots assigned (and with
    ``replicas``, one replica each, which the cluster promotes when its master dies)."""

    ports: list[int]
    processes: list[Process]
    workdir: Path

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot now."""
        for port in self.ports:
            if self.process(port).popen.poll() is not None:
                continue
            client = redis.Redis(port=port, socket_timeout=1)
            slot = client.cluster("KEYSLOT", key)
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise AssertionError(f"no live node knows the master of {key!r}")

    def process(self, port: int) -> Process:
        return self.processes[self.ports.index(port)]

    def stop(self) -> None:
        _stop_all(self.processes, self.workdir)


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def start_cluster(replicas: bool = False) -> Cluster:
    """Start three cluster nodes (six with ``replicas``: a replica per master, a node
    declared failed after 1 s), join them with ``redis-cli --cluster create``, wait until
    every node says ok (and every replica is in sync)."""
    workdir = Path(tempfile.mkdtemp(prefix="gw-cluster-"))
    ports = [_cluster_port() for _ in range(6 if replicas else 3)]
    started: list[Process] = []
    try:
        for port in ports:
            node = workdir / str(port)
            node.mkdir()
            started.append(_server(f"redis-cluster-{port}", port, node, "--cluster-enabled",
                                   "yes", "--cluster-config-file", str(node / "nodes.conf"),
                                   "--cluster-node-timeout", "1000"))
        create = subprocess.run(
            [_binary("redis-cli"), "--cluster", "create",
             *(f"127.0.0.1:{port}" for port in ports),
             *(["--cluster-replicas", "1"] if replicas else []), "--cluster-yes"],
            capture_output=True, text=True, timeout=20, check=False)
        if create.returncode != 0:
            pytest.skip(f"redis-cli --cluster create failed: {create.stdout[-300:]}")
        clients = [redis.Redis(port=port, socket_timeout=1) for port in ports]
        _until(lambda: all(c.cluster("INFO")["cluster_state"] == "ok" for c in clients), 10,
               "cluster_state:ok on every node")
        if replicas:
            _until(lambda: all(_in_sync(c) for c in clients), 10, "every replica in sync")
    except BaseException:
        _stop_all(started, workdir)
        raise
    return Cluster(ports, started, workdir)


def _in_sync(client: redis.Redis) -> bool:
    """True for a master, or a replica whose link to its master is up."""
    info = client.info("replication")
    return info["role"] == "master" or info.get("master_link_status") == "up"
