"""Recovery across real uvicorn instances (tests/apps/history_app.py) on a real Redis.

A client reconnects to another instance with ``since`` and gets exactly what it missed;
an instance is killed with SIGKILL while events flow and its client loses nothing that was
acknowledged to the publisher. Every wait is for a frame or an HTTP answer (bounded).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.servers import UvicornServer
from tests.wsclient import WsClient

pytestmark = [pytest.mark.redis, pytest.mark.slow]

APP = "tests.apps.history_app:app"
WAIT = 10.0


@pytest.fixture
def instances(redis_url: str) -> Iterator[list[UvicornServer]]:
    servers = [
        UvicornServer(APP, env={"ASYNCWS_BROKER_URL": redis_url}, ready_path="/health")
        for _ in range(3)
    ]
    try:
        with ThreadPoolExecutor(3) as pool:
            for future in [pool.submit(s.start) for s in servers]:
                future.result()
        yield servers
    finally:
        for server in servers:
            server.close()


async def post(server: UvicornServer, path: str) -> Any:
    async with httpx.AsyncClient(timeout=WAIT) as http:
        response = await http.post(server.url + path)
        response.raise_for_status()
        return response.json()


def numbers(events: list[dict[str, Any]], topic: str = "rooms/lobby") -> list[int]:
    return [e["data"]["n"] for e in events if e.get("topic") == topic]


async def test_a_client_reconnecting_to_another_instance_gets_exactly_what_it_missed(
    instances: list[UvicornServer],
) -> None:
    a, b, c = instances
    async with WsClient(a.ws_url("/ws"), timeout=WAIT) as client:
        ack = await client.subscribe("rooms/lobby")
        assert ack["position"]["offset"] == 0
        await post(c, "/publish/lobby?n=5&start=0")
        await client.wait_for(lambda evs: len(numbers(evs)) >= 5)
        last = client.events[-1]
    assert numbers(client.events) == [0, 1, 2, 3, 4]
    missed = 40
    await post(c, f"/publish/lobby?n={missed}&start=5")  # nobody listens on B for these
    async with WsClient(b.ws_url("/ws"), timeout=WAIT) as again:
        since = {"offset": last["offset"], "epoch": last["epoch"]}
        ack = await again.call("subscribe", topic="rooms/lobby", since=since)
        assert ack["recovered"] is True
        assert ack["position"] == {"offset": 45, "epoch": last["epoch"]}
        await again.wait_for(lambda evs: len(numbers(evs)) >= missed)
        await post(c, "/publish/lobby?n=3&start=45")
        await again.wait_for(lambda evs: len(numbers(evs)) >= missed + 3)
        assert numbers(again.events) == list(range(5, 48))
        assert [e["offset"] for e in again.events] == list(range(6, 49))


async def test_sigkill_of_the_clients_instance_loses_nothing_acknowledged(
    instances: list[UvicornServer],
) -> None:
    """Events flow from C while the client's instance A is killed (SIGKILL); the client
    reconnects to B with the last position it saw and gets every event C's publishes were
    acknowledged for: 0 lost, 0 duplicated, in order."""
    a, b, c = instances
    acked = -1

    async def publisher() -> None:
        nonlocal acked
        for batch in range(30):  # bounded: 30 batches of 10
            await post(c, f"/publish/lobby?n=10&start={batch * 10}")
            acked = batch * 10 + 9  # Redis accepted every event up to this one

    client = await WsClient(a.ws_url("/ws"), timeout=WAIT).open()
    await client.subscribe("rooms/lobby")
    task = asyncio.create_task(publisher())
    try:
        await client.wait_for(lambda evs: len(numbers(evs)) >= 30)
        a._process.signal(signal.SIGKILL)  # while events flow
        with pytest.raises(ConnectionError):  # the socket dies with the process
            await client.wait_for(lambda evs: False)
    finally:
        await client.close()
    seen = numbers(client.events)
    assert seen == list(range(len(seen)))  # what A delivered before it died: in order
    last = client.events[-1]
    await asyncio.wait_for(task, WAIT * 3)
    async with WsClient(b.ws_url("/ws"), timeout=WAIT) as again:
        since = {"offset": last["offset"], "epoch": last["epoch"]}
        ack = await again.call("subscribe", topic="rooms/lobby", since=since)
        assert ack["recovered"] is True, ack
        await again.wait_for(lambda evs: len(numbers(evs)) >= acked + 1 - len(seen))
        got = seen + numbers(again.events)
    assert got == list(range(acked + 1)), "lost or duplicated"


async def test_cache_mode_across_instances(instances: list[UvicornServer]) -> None:
    a, b, _ = instances
    await post(a, "/price/eur?value=1.25")
    await post(a, "/price/eur?value=1.5")
    async with WsClient(b.ws_url("/ws"), timeout=WAIT) as late:
        ack = await late.subscribe("prices/eur")
        assert ack["position"]["offset"] == 2
        events = await late.wait_for(lambda evs: len(evs) >= 1)
        assert events[0]["data"] == {"value": 1.5} and events[0]["offset"] == 2
