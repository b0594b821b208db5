"""Real Redis topologies for the tests: a Redis Cluster and a Sentinel-watched primary.

Every server is the same redis-server binary the suite already uses
(:func:`abtest.embedded.redis_server_executable`), on localhost TCP ports the
operating system hands out, in a temporary directory, with append-only
persistence fsynced every second as production runs it.  The cluster is
joined with CLUSTER MEET / ADDSLOTS / REPLICATE, so no redis-cli is needed.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from abtest.embedded import redis_server_executable

SLOTS = 16384


def free_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(1000):
        port = random.randrange(20_000, 50_000)
        try:
            with socket.socket() as probe, socket.socket() as bus:
                probe.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10_000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair on localhost")


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (redis.RedisError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout} s")
        time.sleep(0.05)


class Server:
    """One redis-server process on a TCP port of localhost."""

    def __init__(self, directory: Path, config: list[str], sentinel: bool = False):
        self.port = free_port()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / ("sentinel.conf" if sentinel else "redis.conf")
        conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f'dir "{directory}"',
                    'logfile "redis.log"',
                    "daemonize no",
                    *config,
                    "",
                ]
            )
        )
        command = [redis_server_executable(), str(conf)]
        if sentinel:
            command.append("--sentinel")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: self.client().ping(), 15, f"redis-server on port {self.port}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, **options) -> redis.Redis:
        options.setdefault("socket_timeout", 5)
        return redis.Redis(port=self.port, decode_responses=True, **options)

    def kill(self) -> None:
        """SIGKILL: the crash of a machine, not a shutdown."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_DATA = ["appendonly yes", "appendfsync everysec"]


class Cluster:
    """``masters`` primaries splitting the slots evenly, and one replica for each
    primary listed in ``replicated``."""

    def __init__(self, directory: Path, masters: int = 3, replicated: tuple[int, ...] = ()):
        config = [
            *_DATA,
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            "cluster-node-timeout 1000",
        ]
        self.masters = [Server(directory / f"m{i}", config) for i in range(masters)]
        self.replicas = {i: Server(directory / f"r{i}", config) for i in replicated}
        try:
            self._join()
        except BaseException:
            self.stop()
            raise

    def _join(self) -> None:
        everyone = [*self.masters, *self.replicas.values()]
        first = self.masters[0].client()
        for server in everyone[1:]:
            first.execute_command("CLUSTER MEET", "127.0.0.1", server.port)
        share = SLOTS // len(self.masters)
        for i, server in enumerate(self.masters):
            end = SLOTS if i == len(self.masters) - 1 else (i + 1) * share
            server.client().execute_command("CLUSTER ADDSLOTS", *range(i * share, end))
        for i, replica in self.replicas.items():
            master_id = self.masters[i].client().execute_command("CLUSTER MYID")
            wait_for(
                lambda replica=replica, master_id=master_id: (
                    master_id in str(replica.client().execute_command("CLUSTER NODES"))
                ),
                15,
                "the replica to learn of its primary",
            )
            replica.client().execute_command("CLUSTER REPLICATE", master_id)
        for server in everyone:
            wait_for(
                lambda server=server: server.client().cluster("info")["cluster_state"] == "ok",
                20,
                f"cluster_state:ok on {server.address}",
            )
        for replica in self.replicas.values():
            wait_for(
                lambda replica=replica: (
                    replica.client().info("replication")["master_link_status"] == "up"
                ),
                20,
                "the replica to sync",
            )

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(server.address for server in self.masters)

    def stop(self) -> None:
        for server in [*self.masters, *self.replicas.values()]:
            server.stop()


class SentinelSetup:
    """A primary, one replica and one sentinel (quorum 1) watching ``service``."""

    def __init__(self, directory: Path, service: str = "abtest"):
        self.service = service
        self.primary = Server(directory / "primary", _DATA)
        self.replica = Server(
            directory / "replica", [*_DATA, f"replicaof 127.0.0.1 {self.primary.port}"]
        )
        wait_for(
            lambda: self.replica.client().info("replication")["master_link_status"] == "up",
            20,
            "the replica to sync",
        )
        self.sentinel = Server(
            directory / "sentinel",
            [
                f"sentinel monitor {service} 127.0.0.1 {self.primary.port} 1",
                f"sentinel down-after-milliseconds {service} 1000",
                f"sentinel failover-timeout {service} 5000",
                f"sentinel parallel-syncs {service} 1",
            ],
            sentinel=True,
        )

    @property
    def url(self) -> str:
        return f"redis+sentinel://{self.sentinel.address}/{self.service}"

    def primary_address(self) -> tuple[str, int]:
        host, port = self.sentinel.client().execute_command(
            "SENTINEL GET-MASTER-ADDR-BY-NAME", self.service
        )
        return host, int(port)

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.primary):
            with contextlib.suppress(Exception):
                server.stop()
