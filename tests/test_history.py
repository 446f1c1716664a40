"""asyncws.history: positions, recovery with ``since``, cache mode, idempotent publish,
history reads; the same tests on the memory broker and on a real Redis (a fixture server).

Every wait is for a frame (with a timeout) or a bounded poll of a counter; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, BrokerError, HistoryPolicy, Position, WebSocketManager
from asyncws.brokers.memory import InMemoryBroker
from asyncws.brokers.redis import RedisBroker
from asyncws.history import HistoryRead, honoured, parse_since, split_position
from asyncws.testing import TestClient, WebSocketSession
from tests.servers import RedisServer
from tests.test_brokers import poll_until

WAIT = 5.0


class Posted(BaseModel):
    n: int


class Price(BaseModel):
    value: float


def build(broker: str = "memory://", size: int = 50, max_recovery: int | None = None) -> Any:
    ws = AsyncWS(title="hist", broker=broker, broker_channel="h")
    ws.topic(
        "rooms/{room}", Posted, history=HistoryPolicy(size=size, ttl=60, max_recovery=max_recovery)
    )
    ws.topic("prices/{sym}", Price, history=HistoryPolicy(size=1, ttl=60, cache=True))
    ws.topic("plain/{room}", Posted)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return ws, app


def topic(ws: AsyncWS, address: str) -> Any:
    return next(t for t in ws.topics if t.address == address)


@pytest.fixture(params=["memory", "redis", pytest.param("cluster", marks=pytest.mark.cluster)])
def broker_url(request: pytest.FixtureRequest) -> str:
    """The contract runs on every broker that keeps history: in process, one Redis, and the
    session's Redis Cluster (3 primaries + 3 replicas, emptied before each test)."""
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def env(broker_url: str) -> AsyncIterator[tuple[AsyncWS, TestClient]]:
    ws, app = build(broker_url)
    async with TestClient(app, timeout=WAIT) as client:
        yield ws, client


async def numbers(session: WebSocketSession, count: int, room: str = "lobby") -> list[int]:
    out = []
    for _ in range(count):
        event = await session.receive_event(f"rooms/{room}", timeout=WAIT)
        assert isinstance(event["offset"], int) and event["epoch"]
        out.append(event["data"]["n"])
    return out


async def publish(ws: AsyncWS, start: int, count: int, room: str = "lobby") -> Position:
    rooms = topic(ws, "rooms/{room}")
    last = None
    for n in range(start, start + count):
        last = await rooms.publish(Posted(n=n), room=room)
    assert last is not None
    return last


# -- pure parts ------------------------------------------------------------------------------


def test_parse_since_accepts_a_position_and_refuses_the_rest() -> None:
    assert parse_since(None) is None
    assert parse_since({"offset": 3, "epoch": "ab12"}) == Position(3, "ab12")
    for bad in (
        3,
        [],
        {"offset": -1, "epoch": "a"},
        {"offset": 2**60, "epoch": "a"},
        {"offset": True, "epoch": "a"},
        {"offset": 1.5, "epoch": "a"},
        {"offset": 1},
        {"offset": 1, "epoch": ""},
        {"offset": 1, "epoch": "x" * 65},
        {"offset": 1, "epoch": "a b"},
    ):
        with pytest.raises(Exception, match="since"):
            parse_since(bad)


def test_honoured_needs_the_same_epoch_and_every_entry_since() -> None:
    from asyncws.history import HistoryEntry

    entries = [HistoryEntry(o, b"") for o in (4, 5, 6)]
    read = HistoryRead(Position(6, "e"), 2, entries)
    assert honoured(Position(3, "e"), read, 10)
    assert honoured(Position(6, "e"), HistoryRead(Position(6, "e"), 2, []), 10)
    assert not honoured(Position(3, "other"), read, 10)
    assert not honoured(Position(7, "e"), read, 10)  # ahead of the stream
    assert not honoured(Position(0, "e"), HistoryRead(Position(6, "e"), 2, entries), 10)
    assert not honoured(Position(3, "e"), read, 2)  # over the recovery bound


def test_split_position() -> None:
    assert split_position(b"awh:12:abc\nrest") == (Position(12, "abc"), b"rest")
    assert split_position(b"aws1:x\nrest") == (None, b"aws1:x\nrest")


def test_a_topic_policy_is_checked() -> None:
    with pytest.raises(ValueError, match="size"):
        HistoryPolicy(size=0)
    with pytest.raises(ValueError, match="ttl"):
        HistoryPolicy(ttl=0)
    assert HistoryPolicy(size=10, max_recovery=50).recovery_limit == 10


# -- over an app, memory and Redis -----------------------------------------------------------


async def test_events_carry_positions_and_a_plain_topic_does_not(
    env: tuple[AsyncWS, TestClient],
) -> None:
    ws, client = env
    async with client.connect("/ws") as s:
        ack = await s.subscribe("rooms/lobby")
        assert ack["type"] == "ack" and "recovered" not in ack
        start = ack["position"]
        assert start["offset"] == 0 and start["epoch"]
        plain = await s.subscribe("plain/lobby")
        assert plain == {"type": "ack", "id": 2}
        position = await publish(ws, 0, 2)
        await topic(ws, "plain/{room}").publish(Posted(n=9), room="lobby")
        first = await s.receive_event("rooms/lobby")
        second = await s.receive_event("rooms/lobby")
        assert (first["offset"], second["offset"]) == (1, 2)
        assert second["epoch"] == start["epoch"] == position.epoch
        assert position.offset == 2
        event = await s.receive_event("plain/lobby")
        assert "offset" not in event and "epoch" not in event


async def test_a_client_back_with_since_gets_exactly_what_it_missed_then_live(
    env: tuple[AsyncWS, TestClient],
) -> None:
    ws, client = env
    async with client.connect("/ws") as s:
        await s.subscribe("rooms/lobby")
        await publish(ws, 0, 3)
        seen = [await s.receive_event("rooms/lobby") for _ in range(3)]
    last = seen[-1]
    await publish(ws, 3, 7)  # missed
    async with client.connect("/ws") as s:
        ack = await s.subscribe("rooms/lobby", since=last)
        assert ack["recovered"] is True
        assert ack["position"] == {"offset": 10, "epoch": last["epoch"]}
        assert await numbers(s, 7) == list(range(3, 10))
        await publish(ws, 10, 2)
        assert await numbers(s, 2) == [10, 11]


async def test_positions_that_cannot_be_honoured_say_recovered_false(broker_url: str) -> None:
    ws, app = build(broker_url, size=5, max_recovery=3)
    async with TestClient(app, timeout=WAIT) as client, client.connect("/ws") as s:
        top = await publish(ws, 0, 4)
        cases = [
            {"offset": 0, "epoch": top.epoch},  # 4 behind, over max_recovery=3
            {"offset": 2, "epoch": "deadbeef"},  # a foreign epoch
            {"offset": 99, "epoch": top.epoch},  # ahead of the stream
        ]
        for since in cases:
            ack = await s.subscribe("rooms/lobby", since=since)
            assert ack["recovered"] is False, since
            assert ack["position"] == top._asdict()
            await s.unsubscribe("rooms/lobby")
        top = await publish(ws, 4, 6)  # trims offsets 1..5 (size 5)
        ack = await s.subscribe("rooms/lobby", since={"offset": 3, "epoch": top.epoch})
        assert ack["recovered"] is False
        # and live events follow a refused recovery
        await publish(ws, 10, 1)
        assert await numbers(s, 1) == [10]
        # within the bound: recovered
        await s.unsubscribe("rooms/lobby")
        ack = await s.subscribe("rooms/lobby", since={"offset": 8, "epoch": top.epoch})
        assert ack["recovered"] is True
        assert await numbers(s, 3) == [8, 9, 10]


async def test_bad_since_gets_an_error_and_the_connection_stays_usable(
    env: tuple[AsyncWS, TestClient],
) -> None:
    _, client = env
    async with client.connect("/ws") as s:
        for since in ({"offset": -1, "epoch": "a"}, "x", {"offset": 2**60, "epoch": "a"}):
            answer = await s.subscribe("rooms/lobby", since=since)
            assert answer["code"] == "invalid_frame", answer
            assert "since" in answer["message"]
        answer = await s.subscribe("rooms/+", since={"offset": 1, "epoch": "a"})
        assert answer["code"] == "bad_request" and "wildcard" in answer["message"]
        answer = await s.subscribe("plain/lobby", since={"offset": 1, "epoch": "a"})
        assert answer["code"] == "bad_request" and "no history" in answer["message"]
        assert "rooms/lobby" not in str(await s.call("unsubscribe", topic="rooms/lobby"))
        ack = await s.subscribe("rooms/lobby")
        assert ack["type"] == "ack" and ack["position"]["offset"] == 0


async def test_a_wildcard_subscription_gets_positions_per_concrete_topic(
    env: tuple[AsyncWS, TestClient],
) -> None:
    ws, client = env
    async with client.connect("/ws") as s:
        assert (await s.subscribe("rooms/+")) == {"type": "ack", "id": 1}
        await publish(ws, 0, 1, room="a")
        await publish(ws, 0, 2, room="b")
        events = [await s.receive_event(timeout=WAIT) for _ in range(3)]
        assert [(e["topic"], e["offset"]) for e in events] == [
            ("rooms/a", 1),
            ("rooms/b", 1),
            ("rooms/b", 2),
        ]


async def test_cache_mode_gives_a_late_subscriber_the_latest_event_first(
    env: tuple[AsyncWS, TestClient],
) -> None:
    ws, client = env
    prices = topic(ws, "prices/{sym}")
    async with client.connect("/ws") as s:
        ack = await s.subscribe("prices/eur")
        assert ack["position"]["offset"] == 0
        await prices.publish(Price(value=1.0), sym="eur")
        await prices.publish(Price(value=1.5), sym="eur")
        assert (await s.receive_event("prices/eur"))["data"] == {"value": 1.0}
        assert (await s.receive_event("prices/eur"))["data"] == {"value": 1.5}
    async with client.connect("/ws") as late:
        ack = await late.subscribe("prices/eur")
        assert ack["position"]["offset"] == 2
        latest = await late.receive_event("prices/eur")
        assert latest["data"] == {"value": 1.5} and latest["offset"] == 2
        await prices.publish(Price(value=2.0), sym="eur")
        assert (await late.receive_event("prices/eur"))["data"] == {"value": 2.0}
        # with since at the latest: nothing is repeated
        await late.unsubscribe("prices/eur")
        ack = await late.subscribe("prices/eur", since={"offset": 3, "epoch": latest["epoch"]})
        assert ack["recovered"] is True
        await prices.publish(Price(value=3.0), sym="eur")
        assert (await late.receive_event("prices/eur"))["data"] == {"value": 3.0}


async def test_a_retried_publish_with_an_idempotency_key_is_stored_once(
    env: tuple[AsyncWS, TestClient],
) -> None:
    ws, client = env
    rooms = topic(ws, "rooms/{room}")
    async with client.connect("/ws") as s:
        await s.subscribe("rooms/lobby")
        first = await rooms.publish(Posted(n=1), room="lobby", idempotency_key="order-1")
        again = await rooms.publish(Posted(n=1), room="lobby", idempotency_key="order-1")
        other = await rooms.publish(Posted(n=2), room="lobby", idempotency_key="order-2")
        assert first == again and other.offset == first.offset + 1
        assert await numbers(s, 2) == [1, 2]
    items = await rooms.history_of(room="lobby")
    assert [(i.position.offset, i.message) for i in items] == [(1, Posted(n=1)), (2, Posted(n=2))]
    with pytest.raises(TypeError, match="no history"):
        await topic(ws, "plain/{room}").publish(Posted(n=1), room="x", idempotency_key="k")


async def test_history_of_reads_the_last_events_from_python(
    env: tuple[AsyncWS, TestClient],
) -> None:
    ws, _ = env
    rooms = topic(ws, "rooms/{room}")
    assert await rooms.history_of(room="empty") == []
    await publish(ws, 0, 10)
    items = await rooms.history_of(room="lobby", limit=3)
    assert [i.message.n for i in items] == [7, 8, 9]
    assert [i.position.offset for i in items] == [8, 9, 10]
    with pytest.raises(TypeError, match="no history"):
        await topic(ws, "plain/{room}").history_of(room="x")


async def test_publishes_racing_recoveries_leave_no_gap_and_no_duplicate(
    broker_url: str,
) -> None:
    """A publisher runs flat out while a client recovers again and again (bounded): every
    recovery's events continue exactly from its ``since``, in order."""
    ws, app = build(broker_url, size=1000)
    async with TestClient(app, timeout=WAIT) as client:
        await race(ws, client)


async def race(ws: AsyncWS, client: TestClient) -> None:
    rooms = topic(ws, "rooms/{room}")
    total = 400
    stop = asyncio.Event()

    async def publisher() -> None:
        for n in range(total):
            await rooms.publish(Posted(n=n), room="race")
            if n % 8 == 0:
                await asyncio.sleep(0)  # let the recoveries interleave
        stop.set()

    task = asyncio.create_task(publisher())
    since: dict[str, Any] | None = None
    expected_next = 0
    rounds = 0
    try:
        while not stop.is_set() and rounds < 40:
            rounds += 1
            async with client.connect("/ws") as s:
                ack = await s.subscribe("rooms/race", since=since)
                if since is None:
                    expected_next = ack["position"]["offset"]  # n = offset - 1
                else:
                    assert ack["recovered"] is True, ack
                for _ in range(5):
                    event = await s.receive_event("rooms/race", timeout=WAIT)
                    assert event["data"]["n"] == expected_next, (rounds, event)
                    assert event["offset"] == expected_next + 1
                    expected_next += 1
                    since = event
        await asyncio.wait_for(task, WAIT * 4)
    finally:
        task.cancel()
    assert rounds >= 2


# -- Redis only --------------------------------------------------------------------------------


@pytest.mark.redis
async def test_the_redis_stream_and_its_epoch_share_a_hash_tag(redis_url: str) -> None:
    broker = RedisBroker(redis_url)
    await broker.connect()
    try:
        await broker.publish_history("c", "h:{rooms/a}", b"x\ny", size=3, ttl=5)
        keys = sorted(k.decode() for k in await broker._redis.keys("*"))  # type: ignore[union-attr]
        assert keys == ["h:{rooms/a}:m", "h:{rooms/a}:s"]
        ttl = await broker._redis.pttl("h:{rooms/a}:s")  # type: ignore[union-attr]
        assert 0 < ttl <= 5000
        for _ in range(5):
            await broker.publish_history("c", "h:{rooms/a}", b"x\ny", size=3, ttl=5)
        read = await broker.read_history("c", "h:{rooms/a}", since=0, limit=10)
        assert [e.offset for e in read.entries] == [4, 5, 6] and read.first == 4
    finally:
        await broker.disconnect()


@pytest.mark.redis
async def test_plain_topics_keep_no_keys_in_redis(redis_url: str) -> None:
    ws, app = build(redis_url)
    async with TestClient(app, timeout=WAIT) as client, client.connect("/ws") as s:
        await s.subscribe("plain/lobby")
        await topic(ws, "plain/{room}").publish(Posted(n=1), room="lobby")
        await s.receive_event("plain/lobby")
        assert await ws.manager.broker._redis.keys("*") == []  # type: ignore[attr-defined]


def aof_redis() -> RedisServer:
    return RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"])


@pytest.mark.redis
async def test_redis_restarted_with_its_data_recovers_and_empty_starts_a_new_epoch() -> None:
    with aof_redis() as redis:
        ws, app = build(redis.url)
        async with TestClient(app, timeout=WAIT) as client:
            top = await publish(ws, 0, 3)
            await restart(redis, ws)  # AOF on: the history survives
            await publish_retrying(ws, 3)
            async with client.connect("/ws") as s:
                ack = await s.subscribe("rooms/lobby", since={"offset": 1, "epoch": top.epoch})
                assert ack["recovered"] is True and ack["position"]["epoch"] == top.epoch
                assert await numbers(s, 3) == [1, 2, 3]
            redis.command("FLUSHALL")  # restarted empty, as far as the history can tell
            await restart(redis, ws)
            async with client.connect("/ws") as s:
                ack = await s.subscribe("rooms/lobby", since={"offset": 4, "epoch": top.epoch})
                assert ack["recovered"] is False
                assert ack["position"]["epoch"] != top.epoch
                assert ack["position"]["offset"] == 0
                await publish(ws, 10, 1)
                event = await s.receive_event("rooms/lobby")
                assert event["offset"] == 1 and event["epoch"] == ack["position"]["epoch"]


def restart(redis: RedisServer, ws: AsyncWS) -> Any:
    """Restart ``redis``; the awaitable returned waits until ``ws``'s broker is back."""
    broker: Any = ws.manager.broker
    before = broker.reconnects
    redis.restart()
    return poll_until(lambda: broker.reconnects > before and broker.state.value == "connected")


async def publish_retrying(ws: AsyncWS, n: int) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            try:
                await topic(ws, "rooms/{room}").publish(Posted(n=n), room="lobby")
                return
            except BrokerError:
                await asyncio.sleep(0.02)


@pytest.mark.redis
async def test_a_history_read_against_a_redis_that_is_down_is_an_error_frame(
    fresh_redis: RedisServer,
) -> None:
    ws, app = build(fresh_redis.url)
    async with TestClient(app, timeout=WAIT) as client, client.connect("/ws") as s:
        fresh_redis.stop()
        answer = await s.subscribe("rooms/lobby", since={"offset": 1, "epoch": "abc"})
        assert answer["code"] == "broker_unavailable"
        answer = await s.subscribe("rooms/lobby")
        assert answer["code"] == "broker_unavailable"
        with pytest.raises(BrokerError):
            await topic(ws, "rooms/{room}").publish(Posted(n=1), room="lobby")
        assert (await s.subscribe("plain/lobby"))["type"] == "ack"  # still usable
        assert "rooms/lobby" not in (await s.call("unsubscribe", topic="plain/lobby")).values()


@pytest.mark.redis
async def test_an_instance_fills_its_gap_after_a_redis_reconnect(fresh_redis: RedisServer) -> None:
    """Instance A loses its pub/sub connection; B publishes meanwhile; A's subscriber still
    gets every event, in order, once A is back (from the last offset A delivered)."""
    slow = RedisBroker(fresh_redis.url, reconnect_min=0.5, reconnect_max=0.5)
    a = AsyncWS(title="a", manager=WebSocketManager("h", broker=slow))
    a.topic("rooms/{room}", Posted, history=HistoryPolicy(size=100, ttl=60))
    app_a = FastAPI(lifespan=a.lifespan)
    app_a.include_router(a.asgi_router)
    b, app_b = build(fresh_redis.url)
    async with (
        TestClient(app_a, timeout=WAIT) as ca,
        TestClient(app_b, timeout=WAIT),
        ca.connect("/ws") as s,
    ):
        await s.subscribe("rooms/lobby")
        await publish(b, 0, 2)
        assert await numbers(s, 2) == [0, 1]
        reconnects = slow.reconnects
        fresh_redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        await poll_until(lambda: slow.state.value == "reconnecting")  # A noticed
        await publish(b, 2, 10)  # A is not subscribed now: these reach it by the gap fill
        await poll_until(lambda: slow.reconnects > reconnects)
        await publish(b, 12, 3)
        assert await numbers(s, 13) == list(range(2, 15))
        assert a.manager.history.stats["gap_events"] >= 1


async def test_the_memory_broker_keeps_history_per_hub() -> None:
    one, two = InMemoryBroker("hist-hub"), InMemoryBroker("hist-hub")
    await one.connect()
    await two.connect()
    try:
        await two.subscribe("c")
        pos = await one.publish_history("c", "k", b"h\nx", size=2, ttl=10)
        message = await two.get_message(timeout=1)
        assert message is not None
        assert split_position(message.data) == (pos, b"h\nx")
        read = await two.read_history("c", "k", since=0, limit=5)
        assert read.position == pos and [e.offset for e in read.entries] == [1]
    finally:
        await one.disconnect()
        await two.disconnect()


# -- the AsyncAPI document ------------------------------------------------------------------


def test_the_asyncapi_document_describes_positions_since_and_recovered(tmp_path: Any) -> None:
    """The events of a history topic require ``offset``/``epoch``, its subscribe takes
    ``since``, the ack may say ``recovered`` with a ``position``; the official parser takes it
    and the examples validate (plain topics stay as they were)."""
    import subprocess

    from asyncws.asyncapi import build_document, document_json
    from asyncws.asyncapi.checks import check_document
    from tests.apps import history_app
    from tests.servers import REPO_ROOT
    from tests.test_asyncapi import _require_node

    document = build_document(history_app.ws)
    messages = document["components"]["messages"]
    rooms = messages["roomsRoomPosted"]["payload"]
    assert {"offset", "epoch"} <= set(rooms["required"])
    assert messages["roomsRoomPosted"]["examples"][0]["payload"]["offset"] == 42
    plain = messages["plainRoomPosted"]["payload"]
    assert "offset" not in plain["properties"]
    assert "since" in messages["subscribeRoomsRoom"]["payload"]["properties"]
    assert "since" not in messages["subscribePlainRoom"]["payload"]["properties"]
    ack = messages["ack"]["payload"]["properties"]
    assert ack["recovered"]["type"] == "boolean" and "position" in ack
    assert "last 5000 events" in document["channels"]["roomsRoom"]["description"]
    assert "Cache mode" in document["channels"]["pricesSym"]["description"]
    assert check_document(document) == []
    path = tmp_path / "history.asyncapi.json"
    path.write_text(document_json(document), encoding="utf-8")
    result = subprocess.run(
        [_require_node(), "scripts/validate_asyncapi.mjs", "--json", str(path)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    entry = json.loads(result.stdout)["files"][0]
    assert entry["parsed"], entry["diagnostics"]
    assert {d["code"] for d in entry["diagnostics"]} <= {"asyncapi-latest-version"}


def test_the_docs_console_offers_since_only_for_apps_with_history() -> None:
    from asyncws.asyncapi import build_document
    from asyncws.docs import render_html
    from tests.apps import history_app

    page = render_html(build_document(history_app.ws), "/ws")
    assert 'id="c-since"' in page and "since" in page
    plain = AsyncWS(title="plain")
    plain.topic("plain/{room}", Posted)
    assert 'id="c-since"' not in render_html(build_document(plain), "/ws")
