"""The generated Python client keeps positions and resubscribes with ``since``.

Generated from tests/apps/history_app.py's AsyncAPI document into a temporary directory; the
app runs in uvicorn on a real Redis: the client's instance is stopped, events are published
through another instance, the first one comes back on the same port, and the client gets
every missed event, in order, before live ones, with ``recovered`` true.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from asyncws.asyncapi import build_document
from asyncws.codegen import generate
from tests.apps import history_app
from tests.servers import UvicornServer, free_port
from tests.test_codegen_e2e import _eventually, _next

pytestmark = [pytest.mark.redis, pytest.mark.slow]

APP = "tests.apps.history_app:app"
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
        client_class = next(
            getattr(client_package, n)
            for n in dir(client_package)
            if n.endswith("Client")
            and n not in ("BaseClient",)
            and isinstance(getattr(client_package, n), type)
        )
        async with (
            client_class(
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
