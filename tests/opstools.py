"""Shared pieces of the operations tests: a cluster of ops_app instances on one Redis, load
publishers that account for every message, metrics scraping and bounded health polling."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.servers import RedisServer, UvicornServer
from tests.wsclient import WsClient, http_get_json

__all__ = [
    "APP",
    "FAST_BROKER_ENV",
    "LoadPublisher",
    "cluster",
    "note_counts",
    "scrape",
    "wait_health",
]

APP = "tests.apps.ops_app:app"

#: Short broker timeouts so that an outage is noticed, and recovered from, within a second or two.
FAST_BROKER_ENV = {
    "ASYNCWS_HEALTH_INTERVAL": "0.5",
    "ASYNCWS_COMMAND_TIMEOUT": "1.0",
    "ASYNCWS_CONNECT_TIMEOUT": "1.0",
    "ASYNCWS_RECONNECT_MAX": "0.5",
}


@contextlib.contextmanager
def cluster(
    redis: RedisServer,
    count: int,
    *,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[list[UvicornServer]]:
    """``count`` uvicorn instances of the ops app on ``redis``; all stopped (by PID) at the end."""
    servers = [
        UvicornServer(
            APP,
            env={"ASYNCWS_BROKER_URL": redis.url, **FAST_BROKER_ENV, **(env or {})},
            extra_args=extra_args,
            ready_path="/health",
        )
        for _ in range(count)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.close()


async def wait_health(
    servers: Sequence[UvicornServer], status: int, *, within: float = 20.0
) -> float:
    """Poll every server's /health until all answer ``status`` (bounded); the time it took."""
    start = time.monotonic()
    async with asyncio.timeout(within):
        pending = list(servers)
        while pending:
            still = []
            for server in pending:
                try:
                    code, _ = await http_get_json(server.url + "/health", timeout=1.0)
                except OSError:
                    code = 0
                if code != status:
                    still.append(server)
            pending = still
            if pending:
                await asyncio.sleep(0.05)
    return time.monotonic() - start


async def scrape(server: UvicornServer) -> dict[str, float]:
    """The server's /metrics as {"name{labels}": value} (text format, comments skipped)."""
    code, text = await http_get_json(server.url + "/metrics")
    assert code == 200, text
    out: dict[str, float] = {}
    for line in str(text).splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


def note_counts(events: list[dict[str, Any]]) -> Counter[tuple[str, int]]:
    """How many times each (source, n) Note arrived."""
    return Counter(
        (e["data"]["source"], e["data"]["n"])
        for e in events
        if e.get("type") == "Note" and isinstance(e.get("data"), dict)
    )


@dataclass
class LoadPublisher:
    """Publishes Note(source, n) on ``chat/{room}`` through ``client`` every ``interval``
    seconds until stopped, recording how each publish was answered."""

    client: WsClient
    source: str
    room: str = "lobby"
    interval: float = 0.02
    limit: int = 5000
    acked: set[int] = field(default_factory=set)
    errors: dict[int, str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    next_n: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def publish_one(self, timeout: float = 10.0) -> dict[str, Any]:
        self.next_n += 1
        n = self.next_n
        started = time.monotonic()
        answer = await self.client.publish(
            f"chat/{self.room}", {"source": self.source, "n": n}, timeout=timeout
        )
        self.latencies.append(time.monotonic() - started)
        if answer["type"] == "ack":
            self.acked.add(n)
        else:
            self.errors[n] = answer.get("code", "?")
        return answer

    async def _run(self) -> None:
        while not self._stop.is_set() and self.next_n < self.limit:
            await self.publish_one()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 15.0)  # re-raises what the publisher hit
