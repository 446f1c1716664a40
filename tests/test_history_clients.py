"""The generated clients keep positions and resubscribe with ``since``, for real.

Both clients are generated from tests/apps/history_app.py's AsyncAPI document into a
temporary directory: the Python one is imported from there, the TypeScript one is compiled
with tsc (strict) and run by node (its built-in WebSocket). The app runs in uvicorn on a real
Redis. The client's instance is stopped, or killed with SIGKILL, or the client's socket is cut
by a TCP relay (tests/tcpproxy.py), while another instance publishes; the client reconnects
by itself and gets every event exactly once, in order, with ``recovered`` true.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import httpx
import pytest

from asyncws.asyncapi import build_document
from asyncws.codegen import generate
from tests.apps import history_app
from tests.browser import unavailable
from tests.servers import REPO_ROOT, RedisServer, UvicornServer, free_port
from tests.tcpproxy import TcpProxy
from tests.test_codegen_e2e import _eventually, _next

pytestmark = [pytest.mark.redis, pytest.mark.slow]

APP = "tests.apps.history_app:app"
TSC = REPO_ROOT / "node_modules" / ".bin" / "tsc"
WAIT = 10.0


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    directory = tmp_path_factory.mktemp("history-client")
    generate(build_document(history_app.ws), "python", directory, name="hist")
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module("hist_client")
    finally:
        sys.path.remove(str(directory))
        for key in [k for k in sys.modules if k.split(".")[0] == "hist_client"]:
            del sys.modules[key]


async def post(server: UvicornServer, path: str) -> None:
    async with httpx.AsyncClient(timeout=WAIT) as http:
        (await http.post(server.url + path)).raise_for_status()


async def test_the_python_client_recovers_what_it_missed_after_a_reconnect(
    client_package: Any, redis_url: str
) -> None:
    env = {"ASYNCWS_BROKER_URL": redis_url}
    port = free_port()
    first = UvicornServer(APP, port=port, env=env, ready_path="/health").start()
    other = UvicornServer(APP, env=env, ready_path="/health").start()
    again: UvicornServer | None = None
    recoveries: list[tuple[str, bool]] = []
    try:
        async with (
            _client_class(client_package)(
                first.ws_url("/ws"),
                initial_backoff=0.05,
                max_backoff=0.3,
                timeout=WAIT,
                on_recovery=lambda topic, ok: recoveries.append((topic, ok)),
            ) as client,
            client.subscribe_rooms(room="lobby") as events,
        ):
            assert client.positions["rooms/lobby"]["offset"] == 0
            await post(other, "/publish/lobby?n=2&start=0")
            assert [(await _next(events)).data.n for _ in range(2)] == [0, 1]
            assert client.positions["rooms/lobby"]["offset"] == 2
            await asyncio.to_thread(first.close)
            await _eventually(lambda: not client.connected, "the client saw the close")
            await post(other, "/publish/lobby?n=20&start=2")  # missed
            again = await asyncio.to_thread(
                UvicornServer(APP, port=port, env=env, ready_path="/health").start
            )
            got = [(await _next(events)).data.n for _ in range(20)]
            assert got == list(range(2, 22))
            assert recoveries == [("rooms/lobby", True)] and events.recovered is True
            await post(other, "/publish/lobby?n=1&start=22")
            assert (await _next(events)).data.n == 22
            assert client.positions["rooms/lobby"]["offset"] == 23
    finally:
        for server in (first, other, again):
            if server is not None:
                server.close()


# -- both generated clients, while events flow ---------------------------------------------------
#
# A publisher (HTTP, through instance B) publishes numbered events without pause while the
# subscriber's instance A is killed with SIGKILL and started again on its port, or while the
# subscriber's socket is cut (a TCP relay in front of A aborts it and refuses new connections
# for a moment, A keeps running). The client reconnects by itself, subscribes again with the
# last position it saw and must end with every event the publisher was acknowledged for,
# exactly once, in order, with consecutive offsets, and ``recovered`` true.

DRIVER = """
import { HistClient } from "./hist-client.js";

const [url, room] = process.argv.slice(2);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\\n");
const client = new HistClient(url, {
  initialBackoff: 50,
  maxBackoff: 300,
  timeout: 10000,
  onRecovery: (topic, recovered) => say({ recovery: [topic, recovered] }),
  onError: (error) => say({ error: error.message }),
});
await client.connect();
await client.subscribeRooms({ room }, {
  onEvent: (event) => say({ n: event.data.n, offset: event.offset, epoch: event.epoch }),
});
say({ subscribed: true });
process.stdin.resume();
process.stdin.on("end", async () => {
  await client.close();
  process.exit(0);
});
"""


@pytest.fixture(scope="module")
def node_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated TypeScript client compiled with tsc (strict) to an ES module, and a
    node script that subscribes with it and prints every event as a JSON line."""
    if shutil.which("node") is None or not TSC.exists():
        unavailable("node or node_modules/.bin/tsc is missing (scripts/install)")
    out = tmp_path_factory.mktemp("history-ts")
    generate(build_document(history_app.ws), "typescript", out, name="hist")
    tsc = [str(TSC), "--strict", "--target", "es2022", "--module", "es2022"]
    tsc += ["--lib", "es2022,dom", "--outDir", str(out), str(out / "hist-client.ts")]
    result = subprocess.run(tsc, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (out / "package.json").write_text('{"type": "module"}\n', encoding="utf-8")
    (out / "driver.js").write_text(DRIVER, encoding="utf-8")
    return out / "driver.js"


def _node_flags() -> list[str]:
    """Node 20 has its WebSocket behind a flag; later versions have it by default."""
    probe = ["node", "--experimental-websocket", "-e", "0"]
    flagged = subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0
    return ["--no-warnings", *(["--experimental-websocket"] if flagged else [])]


class Received:
    """What a subscriber got: the ``n`` of each event, their offsets, its recoveries."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.offsets: list[int] = []
        self.recoveries: list[tuple[str, bool]] = []
        self.changed = asyncio.Event()

    def add(self, n: int, offset: int | None) -> None:
        self.numbers.append(n)
        if offset is not None:
            self.offsets.append(offset)
        self.changed.set()

    async def wait_for(self, count: int, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT * 3
        while len(self.numbers) < count and loop.time() < deadline:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), deadline - loop.time())
        assert len(self.numbers) >= count, (
            f"{what}: {len(self.numbers)} of {count} events; recoveries {self.recoveries}, "
            f"{self.notes()}"
        )

    def notes(self) -> str:
        return ""


class NodeSubscriber(Received):
    """The compiled TypeScript client in a node process (stopped by its PID)."""

    def __init__(self, driver: Path, url: str) -> None:
        super().__init__()
        self.driver, self.url = driver, url
        self.errors: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._proc = await asyncio.create_subprocess_exec(
            "node",
            *_node_flags(),
            str(self.driver),
            self.url,
            "lobby",
            cwd=str(self.driver.parent),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        waiter = asyncio.create_task(self._subscribed.wait())
        await asyncio.wait({waiter, self._reader}, timeout=WAIT, return_when="FIRST_COMPLETED")
        waiter.cancel()
        if not self._subscribed.is_set():
            await self._stop()
            assert self._proc.stderr is not None
            raise AssertionError(f"the node client did not subscribe: {self.errors}")
        return self

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            message = json.loads(line)
            if "n" in message:
                self.add(message["n"], message["offset"])
            elif "recovery" in message:
                self.recoveries.append((message["recovery"][0], message["recovery"][1]))
            elif "subscribed" in message:
                self._subscribed.set()
            else:
                self.errors.append(str(message))
        assert self._proc.stderr is not None
        self.errors.append((await self._proc.stderr.read()).decode(errors="replace"))

    def notes(self) -> str:
        return f"node said {self.errors}"

    async def _stop(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        proc.stdin.close()  # the driver closes its client and exits
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()  # this PID only
            await proc.wait()
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=5)

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()


class PythonSubscriber(Received):
    """The generated Python client, in the test's event loop."""

    def __init__(self, package: Any, url: str) -> None:
        super().__init__()
        self.client = _client_class(package)(
            url,
            initial_backoff=0.05,
            max_backoff=0.3,
            timeout=WAIT,
            on_recovery=lambda topic, ok: self.recoveries.append((topic, ok)),
        )
        self.errors: list[str] = []

    async def __aenter__(self) -> Self:
        await self.client.connect()
        await self.client.subscribe_rooms(
            room="lobby", on_event=lambda event: self.add(event.data.n, None)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()


def _client_class(package: Any) -> Any:
    return next(
        getattr(package, n)
        for n in dir(package)
        if n.endswith("Client") and n != "BaseClient" and isinstance(getattr(package, n), type)
    )


class Publisher:
    """Publishes batches of numbered events through one instance until stopped (bounded);
    ``acked`` is the last ``n`` Redis accepted."""

    def __init__(self, server: UvicornServer) -> None:
        self.server = server
        self.acked = -1
        self.stop = asyncio.Event()
        self.progress = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=WAIT) as http:
            for batch in range(200):  # bounded: at most 2,000 events
                if self.stop.is_set():
                    return
                start = batch * 10
                url = f"{self.server.url}/publish/lobby?n=10&start={start}"
                (await http.post(url)).raise_for_status()
                self.acked = start + 9
                self.progress.set()
                await asyncio.sleep(0.01)  # a steady flow, not a flood

    async def until(self, acked: int) -> None:
        async with asyncio.timeout(WAIT * 3):
            while self.acked < acked:
                self.progress.clear()
                await self.progress.wait()


@pytest.mark.parametrize("disruption", ["sigkill", "socket cut"])
@pytest.mark.parametrize("language", ["typescript", "python"])
async def test_the_generated_clients_receive_every_event_exactly_once_across_a_disruption(
    language: str, disruption: str, redis_url: str, request: pytest.FixtureRequest
) -> None:
    env = {"ASYNCWS_BROKER_URL": redis_url}
    port = free_port()
    servers = [
        UvicornServer(APP, port=port, env=env, ready_path="/health"),
        UvicornServer(APP, env=env, ready_path="/health"),
    ]
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(s.start) for s in servers]:
            future.result()
    a, b = servers
    try:
        async with contextlib.AsyncExitStack() as stack:
            proxy = await stack.enter_async_context(TcpProxy(a.port))
            url = f"ws://127.0.0.1:{proxy.port}/ws"
            subscriber: NodeSubscriber | PythonSubscriber
            if language == "typescript":
                subscriber = NodeSubscriber(request.getfixturevalue("node_driver"), url)
            else:
                subscriber = PythonSubscriber(request.getfixturevalue("client_package"), url)
            await stack.enter_async_context(subscriber)
            publisher = Publisher(b)
            publisher.task = asyncio.create_task(publisher.run())
            try:
                await subscriber.wait_for(30, "before the disruption")
                if disruption == "sigkill":
                    a._process.signal(signal.SIGKILL)  # while events flow
                    mark = publisher.acked
                    await asyncio.to_thread(a.stop)  # reaped; the port is free again
                    await publisher.until(mark + 50)  # published while A is gone
                    await asyncio.to_thread(a.start)  # the same port: the client comes back
                else:
                    assert proxy.cut() >= 1  # the socket dies, A keeps running
                    mark = publisher.acked
                    await publisher.until(mark + 50)  # published while the client is away
                    proxy.restore()
                await publisher.until(mark + 100)  # and live ones after the return
            finally:
                publisher.stop.set()
                await asyncio.wait_for(publisher.task, WAIT * 3)
            acked = publisher.acked
            await subscriber.wait_for(acked + 1, "after the disruption")
            await post(b, f"/publish/lobby?n=1&start={acked + 1}")  # a last one: no late copy
            await subscriber.wait_for(acked + 2, "the last event")
            got = subscriber.numbers
            assert got == list(range(acked + 2)), _difference(got, acked + 2)
            if subscriber.offsets:  # the TypeScript events carry their positions
                assert subscriber.offsets == list(range(1, acked + 3))
            assert subscriber.recoveries == [("rooms/lobby", True)], subscriber.errors
    finally:
        for server in servers:
            server.close()


def _difference(got: list[int], count: int) -> str:
    seen = collections.Counter(got)
    lost = [n for n in range(count) if n not in seen]
    twice = sorted(n for n, k in seen.items() if k > 1)
    return f"lost {lost[:20]} ({len(lost)}), duplicated {twice[:20]} ({len(twice)})"


@pytest.mark.parametrize("language", ["typescript", "python"])
async def test_a_resubscribe_refused_while_redis_is_down_is_tried_again(
    language: str, request: pytest.FixtureRequest
) -> None:
    """The client comes back while its instance cannot read Redis: the subscribe with
    ``since`` is answered ``broker_unavailable``. That is no refusal: the client keeps the
    subscription, tries again with backoff, and once Redis is back (with its data: AOF)
    recovers what was published meanwhile."""
    aof = ["--appendonly", "yes", "--appendfsync", "always"]
    with RedisServer(extra_args=aof) as redis:
        server = UvicornServer(APP, env={"ASYNCWS_BROKER_URL": redis.url}, ready_path="/health")
        try:
            await asyncio.to_thread(server.start)
            async with contextlib.AsyncExitStack() as stack:
                proxy = await stack.enter_async_context(TcpProxy(server.port))
                url = f"ws://127.0.0.1:{proxy.port}/ws"
                subscriber: NodeSubscriber | PythonSubscriber
                if language == "typescript":
                    subscriber = NodeSubscriber(request.getfixturevalue("node_driver"), url)
                else:
                    subscriber = PythonSubscriber(request.getfixturevalue("client_package"), url)
                await stack.enter_async_context(subscriber)
                await post(server, "/publish/lobby?n=5&start=0")
                await subscriber.wait_for(5, "before the outage")
                await asyncio.to_thread(redis.stop)
                assert proxy.cut(refuse=False) >= 1  # the client reconnects at once
                await _until_health(server, lambda h: h["history"]["unavailable"] >= 1)
                await asyncio.to_thread(redis.start)  # the same port, its data back
                await _until_health(server, lambda h: h["broker"] == "connected")
                await post(server, "/publish/lobby?n=5&start=5")
                await subscriber.wait_for(10, "after Redis came back")
                assert subscriber.numbers == list(range(10))
                assert subscriber.recoveries == [("rooms/lobby", True)], subscriber.notes()
        finally:
            server.close()


async def _until_health(server: UvicornServer, check: Callable[[dict[str, Any]], bool]) -> None:
    """Bounded poll of the instance's /health (it answers 503 while Redis is down)."""
    async with httpx.AsyncClient(timeout=WAIT) as http:
        for _ in range(int(WAIT * 3 / 0.05)):
            body = (await http.get(server.url + "/health")).json()
            if check(body):
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"/health never matched: {body}")
