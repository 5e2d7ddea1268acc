"""A throwaway Redis Cluster: three primaries, no replicas, on free loopback ports.

Each node runs ``redis-server --cluster-enabled yes`` in a fresh temporary
directory (its own ``nodes.conf``, no RDB, no AOF); ``redis-cli --cluster
create`` then splits the 16384 slots between them. :func:`running_cluster`
waits until every node says ``cluster_state:ok`` (bounded polling) and stops
the nodes and removes the directory afterwards, however the test ended.
Never the shared Redis on port 6379.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from maskline.redis_backend import connect_cluster
from tests.slow.conftest import SHARED_REDIS_PORT, ThrowawayRedis, free_port

PRIMARIES = 3
# Polls of 0.1 s for a new cluster to agree on its slots: generous, because
# the machine is shared; it is a bound on attempts, not a timing claim.
STATE_OK_ATTEMPTS = 600
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it
CLI_TIMEOUT_SECONDS = 120


@dataclass
class ClusterNode(ThrowawayRedis):
    """One cluster-mode ``redis-server``; its bus port is chosen too (not port + 10000,
    which can pass 65535 for a high free port)."""

    bus_port: int = 0

    def start(self) -> None:
        assert self.port != SHARED_REDIS_PORT
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found (install Debian's redis-server)")
        self.base.mkdir(parents=True, exist_ok=True)
        options = [
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--cluster-port", str(self.bus_port)),
            *("--save", "", "--appendonly", "no", "--dir", str(self.base)),
        ]
        self.process = subprocess.Popen(
            [binary, *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.wait_for_ping()

    def cluster_state(self) -> str:
        with self.client() as client:
            info = client.cluster("INFO")  # redis-py parses it into a dict
        return str(info.get("cluster_state", "unknown"))


@dataclass
class ThrowawayCluster:
    """Three primaries that own every slot between them."""

    base: Path
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def client(self) -> RedisCluster:
        return connect_cluster(self.url, timeout=5.0)

    def start(self, ports: list[int] | None = None) -> None:
        """Start the nodes and make them a cluster; ``ports``: each node's
        client and bus port, in turn (default: free ones)."""
        ports = ports or distinct_free_ports(2 * PRIMARIES)
        self.nodes = [
            ClusterNode(base=self.base / f"node-{i}", port=ports[2 * i], bus_port=ports[2 * i + 1])
            for i in range(PRIMARIES)
        ]
        for node in self.nodes:
            node.start()
        created = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )
        assert created.returncode == 0, (
            f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}"
        )
        self.wait_until_ok()

    def wait_until_ok(self) -> None:
        """Until every node says ``cluster_state:ok`` (bounded polling)."""
        for _ in range(STATE_OK_ATTEMPTS):
            if all(node.cluster_state() == "ok" for node in self.nodes):
                return
            time.sleep(0.1)
        states = {node.port: node.cluster_state() for node in self.nodes}
        raise AssertionError(f"cluster never reached cluster_state:ok: {states}")

    def stop(self) -> None:
        for node in self.nodes:
            try:
                node.stop()
            except Exception:  # stop the others whatever happened to this one
                node.kill()


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports and port != SHARED_REDIS_PORT:
            ports.append(port)
    return ports


@contextmanager
def running_cluster() -> Iterator[ThrowawayCluster]:
    """A new, empty 3-primary cluster; stopped and deleted when the block ends."""
    base = Path(tempfile.mkdtemp(prefix="maskline-cluster-"))
    cluster = ThrowawayCluster(base=base)
    try:
        for attempt in range(START_ATTEMPTS):
            try:
                cluster.start()
                break
            except AssertionError:
                cluster.stop()
                shutil.rmtree(base, ignore_errors=True)
                base.mkdir()
                if attempt == START_ATTEMPTS - 1:
                    raise
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def flush_all_primaries(client: RedisCluster) -> None:
    """Empty every primary (what ``flushdb()`` means on a cluster)."""
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)
