"""Real Redis topologies for tests: a 6-node Redis Cluster, and a Sentinel-watched primary.

Each node is a `RedisServer` (a private ``redis-server`` on a free port, stopped by its PID)::

    with RedisClusterServers() as cluster:   # 3 primaries + 3 replicas, every slot assigned
        url = cluster.url                   # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,.../
        cluster.kill_primary_of(slot)       # kill -9: a replica takes over

    with SentinelServers() as group:         # a primary, a replica, 3 sentinels
        url = group.url                     # redis+sentinel://127.0.0.1:s1,.../mymaster

Failure detection is tuned for tests (``cluster-node-timeout`` and ``down-after-milliseconds``
of a second): a killed primary is replaced within a few seconds.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.servers import RedisServer, ServerError, free_port, port_accepts, redis_command

__all__ = ["RedisClusterServers", "SentinelServers", "redis_reply"]

NODE_TIMEOUT_MS = 1000


def redis_reply(port: int, *args: str, timeout: float = 5.0) -> str:
    """One command through ``redis-cli`` (full reply as text), for multi-line answers."""
    cli = shutil.which("redis-cli")
    if cli is None:
        raise FileNotFoundError("redis-cli is not installed")
    done = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout.decode(errors="replace")


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port <= 55535 and not port_accepts(port + 10000):
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port
    raise ServerError("no free port pair for a cluster node")


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise ServerError(f"timed out after {timeout:.0f}s waiting for {what}")


class RedisClusterServers:
    """Six ``redis-server --cluster-enabled yes`` nodes joined into 3 primaries + 3 replicas."""

    def __init__(self, primaries: int = 3, replicas: int = 1) -> None:
        self.size = primaries * (1 + replicas)
        self.replicas = replicas
        self.nodes: list[RedisServer] = []
        for _ in range(self.size):
            port = _cluster_port()
            self.nodes.append(
                RedisServer(
                    port,
                    extra_args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--cluster-node-timeout",
                        str(NODE_TIMEOUT_MS),
                        # A replica whose primary died takes over even if it lagged: tests
                        # kill primaries under traffic and want the failover, not safety.
                        "--cluster-replica-validity-factor",
                        "0",
                        "--cluster-require-full-coverage",
                        "no",
                    ],
                )
            )

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports[:3])
        return f"redis+cluster://{hosts}/"

    def start(self) -> Self:
        try:
            for node in self.nodes:
                node.start()
            cli = shutil.which("redis-cli")
            if cli is None:
                raise FileNotFoundError("redis-cli is not installed")
            done = subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{port}" for port in self.ports),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
            if done.returncode != 0:
                raise ServerError(f"redis-cli --cluster create failed:\n{done.stdout!r}")
            _wait("every node to report cluster_state:ok", self._all_ok, 30)
        except BaseException:
            self.stop()
            raise
        return self

    def _all_ok(self) -> bool:
        return all(
            "cluster_state:ok" in redis_reply(node.port, "CLUSTER", "INFO")
            for node in self.nodes
            if node.running()
        )

    def slot_owner(self, slot: int, via: int | None = None) -> int:
        """The port of the primary serving ``slot``, as a live node sees it."""
        for port in [via] if via is not None else [n.port for n in self.nodes if n.running()]:
            assert port is not None
            lines = redis_reply(port, "CLUSTER", "SLOTS").split("\n")
            # redis-cli prints a flat list: start, end, then host, port, id of each node.
            values = [line.strip() for line in lines if line.strip()]
            i = 0
            while i + 4 < len(values):
                start, end, _host, owner = values[i], values[i + 1], values[i + 2], values[i + 3]
                digits = start.isdigit() and end.isdigit() and owner.isdigit()
                if digits and int(start) <= slot <= int(end):
                    return int(owner)
                i += 1
        raise ServerError(f"no live node knows the owner of slot {slot}")

    def is_primary(self, port: int) -> bool:
        node = self.node(port)
        return node.running() and "role:master" in redis_reply(port, "INFO", "replication")

    def has_replica(self, port: int) -> bool:
        """Whether the primary on ``port`` has a live, connected replica (it can fail over)."""
        info = redis_reply(port, "INFO", "replication")
        return "connected_slaves:0" not in info and "connected_slaves:" in info

    def wait_synced(self, port: int, timeout: float = 10.0) -> None:
        """Wait until every replica of the primary on ``port`` acknowledged all it was sent
        (its replication offset reached the primary's)."""

        def synced() -> bool:
            fields = dict(
                line.strip().split(":", 1)
                for line in redis_reply(port, "INFO", "replication").splitlines()
                if ":" in line
            )
            top = int(fields.get("master_repl_offset", "-1"))
            replicas = [v for k, v in fields.items() if k.startswith("slave")]
            offsets = [int(dict(p.split("=") for p in r.split(","))["offset"]) for r in replicas]
            return bool(offsets) and min(offsets) >= top

        _wait(f"the replicas of {port} to catch up", synced, timeout)

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def node_id(self, port: int) -> str:
        return redis_reply(port, "CLUSTER", "MYID").strip()

    def kill(self, port: int) -> None:
        """kill -9 the node on ``port`` (by its PID)."""
        node = self.node(port)
        node._process.signal(signal.SIGKILL)
        node.stop()

    def wait_owner_changed(self, slot: int, old: int, timeout: float = 15.0) -> int:
        """Wait until a live node serves ``slot`` instead of ``old``; return its port."""
        found: list[int] = []

        def changed() -> bool:
            try:
                owner = self.slot_owner(slot)
            except ServerError:
                return False
            if owner != old and self.node(owner).running():
                found.append(owner)
                return True
            return False

        _wait(f"a replica to take slot {slot} over", changed, timeout)
        return found[-1]

    def move_slot(self, slot: int, to_port: int) -> None:
        """Migrate ``slot`` (and its keys) to the primary on ``to_port`` (CLUSTER SETSLOT/MIGRATE)."""
        src = self.slot_owner(slot)
        if src == to_port:
            return
        src_id, dst_id = self.node_id(src), self.node_id(to_port)
        redis_command(to_port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", src_id)
        redis_command(src, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst_id)
        while True:
            keys = [
                k
                for k in redis_reply(src, "CLUSTER", "GETKEYSINSLOT", str(slot), "100").split("\n")
                if k
            ]
            if not keys:
                break
            redis_reply(src, "MIGRATE", "127.0.0.1", str(to_port), "", "0", "5000", "KEYS", *keys)
        # The order Redis documents: the destination first, then the source, then the rest.
        others = [n.port for n in self.nodes if n.running() and n.port not in (src, to_port)]
        for port in (to_port, src, *others):
            redis_command(port, "CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)

    def flushall(self) -> None:
        """Empty every live primary (replicas follow)."""
        for node in self.nodes:
            if self.is_primary(node.port):
                redis_command(node.port, "FLUSHALL")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SentinelServers:
    """A primary, one replica and three sentinels watching them as ``mymaster``."""

    def __init__(self, service: str = "mymaster") -> None:
        self.service = service
        self.primary = RedisServer()
        self.replica = RedisServer(extra_args=["--replicaof", "127.0.0.1", str(self.primary.port)])
        self.sentinels: list[RedisServer] = []
        for _ in range(3):
            server = RedisServer()
            self.sentinels.append(server)

    def _write_sentinel_conf(self, server: RedisServer) -> Path:
        conf = server.dir / "sentinel.conf"
        conf.write_text(
            f"port {server.port}\n"
            "bind 127.0.0.1\n"
            f"dir {server.dir}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 5000\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        return conf

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def start(self) -> Self:
        try:
            self.primary.start()
            self.replica.start()
            for server in self.sentinels:
                conf = self._write_sentinel_conf(server)
                server.argv = lambda conf=conf, server=server: [  # type: ignore[method-assign]
                    server.binary,
                    str(conf),
                    "--sentinel",
                ]
                server.start()
            _wait("the replica to sync", self._replica_synced, 20)
            _wait("the sentinels to see each other and the replica", self._sentinels_ready, 20)
        except BaseException:
            self.stop()
            raise
        return self

    def _replica_synced(self) -> bool:
        return "master_link_status:up" in redis_reply(self.replica.port, "INFO", "replication")

    def _sentinels_ready(self) -> bool:
        for server in self.sentinels:
            info = redis_reply(server.port, "SENTINEL", "MASTER", self.service)
            values = [v.strip() for v in info.split("\n")]
            fields = dict(zip(values[::2], values[1::2], strict=False))
            if fields.get("num-other-sentinels") != "2" or fields.get("num-slaves") != "1":
                return False
        return True

    def primary_port(self) -> int:
        reply = redis_reply(
            self.sentinels[0].port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service
        )
        return int(reply.split()[1])

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.primary):
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
