"""Presence (asyncws.presence): members of a topic across instances, join and leave events.

Real parts: uvicorn processes of tests/apps/presence_app.py, real websocket clients, a
private redis-server. "Exactly once" is checked with a marker: after the change under test a
client publishes a line on the room; the events a watcher got before the marker are exactly
the expected ones. A join is published (and Redis answered) before the subscribe is acked, and
the marker is published after, so Redis delivers the join first on every instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, Connection, DocumentFraming, Router, Topic
from asyncws.presence import PresencePolicy
from asyncws.testing import TestClient
from tests.servers import REPO_ROOT, UvicornServer
from tests.wsclient import WsClient

APP = "tests.apps.presence_app:app"
WAIT = 8.0
TTL = 2.0  # seconds: members of a killed instance leave within TTL * 4 / 3 (+ one sweep)


def start_all(servers: Sequence[UvicornServer]) -> None:
    with ThreadPoolExecutor(len(servers)) as pool:
        for future in [pool.submit(s.start) for s in servers]:
            future.result()


def servers_on(broker: str, count: int) -> list[UvicornServer]:
    env = {"ASYNCWS_BROKER_URL": broker, "ASYNCWS_PRESENCE_TTL": str(TTL)}
    if broker.startswith("redis"):
        env["ASYNCWS_HEALTH_INTERVAL"] = "1"
    return [UvicornServer(APP, env=env, ready_path="/health") for _ in range(count)]


@contextlib.contextmanager
def running(servers: list[UvicornServer]) -> Iterator[list[UvicornServer]]:
    try:
        start_all(servers)
        yield servers
    finally:
        for server in servers:
            server.close()


@contextlib.asynccontextmanager
async def clients(*specs: tuple[UvicornServer, str | None]) -> AsyncIterator[list[WsClient]]:
    async with contextlib.AsyncExitStack() as stack:
        out = []
        for server, user in specs:
            path = "/ws" if user is None else f"/ws?user={user}"
            out.append(await stack.enter_async_context(WsClient(server.ws_url(path), timeout=WAIT)))
        yield out


def presence_events(events: list[dict[str, Any]], topic: str) -> list[tuple[str, str]]:
    return [
        (e["type"], e["data"]["member"])
        for e in events
        if e.get("type") in ("join", "leave") and e.get("topic") == topic
    ]


async def until_marker(client: WsClient, topic: str, marker: str) -> list[tuple[str, str]]:
    """The presence events ``client`` got on ``topic`` before the line ``marker``; clears them."""

    def seen(events: list[dict[str, Any]]) -> bool:
        return any(e.get("data") == {"text": marker} for e in events)

    events = await client.wait_for(seen)
    cut = next(i for i, e in enumerate(events) if e.get("data") == {"text": marker})
    before = presence_events(events[:cut], topic)
    del events[: cut + 1]
    return before


async def mark(sender: WsClient, watchers: Sequence[WsClient], topic: str) -> list[Any]:
    marker = uuid.uuid4().hex
    answer = await sender.publish(topic, {"text": marker})
    assert answer["type"] == "ack", answer
    return [await until_marker(w, topic, marker) for w in watchers]


async def members_of(client: WsClient, topic: str) -> list[str]:
    answer = await client.call("presence", topic=topic)
    assert answer["type"] == "reply", answer
    data = answer["data"]
    assert data["count"] == len(data["members"]) and data["truncated"] is False
    return sorted(m["member"] for m in data["members"])


async def wait_members(client: WsClient, topic: str, expected: list[str], within: float) -> float:
    """Ask ``presence`` until it answers ``expected`` (bounded); return the seconds it took."""
    start = time.monotonic()
    for _ in range(int(within / 0.1) + 1):
        if await members_of(client, topic) == expected:
            return time.monotonic() - start
        await asyncio.sleep(0.1)  # a bounded poll of a query: nothing to wait on
    raise AssertionError(f"{topic}: {await members_of(client, topic)} != {expected}")


# -- one instance, memory:// -------------------------------------------------------------------


@pytest.mark.slow
async def test_presence_on_one_instance_memory() -> None:
    with running(servers_on("memory://", 1)) as (server,):
        async with clients(
            (server, "watcher"), (server, "alice"), (server, "alice"), (server, None)
        ) as (watcher, tab1, tab2, anon):
            topic = "rooms/lobby"
            await watcher.subscribe(topic)
            await tab1.subscribe(topic)
            await tab2.subscribe(topic)  # the same user: no second join
            await anon.subscribe("rooms/+")  # a wildcard subscription joins nothing
            assert await mark(watcher, [watcher, anon], topic) == [
                [("join", "watcher"), ("join", "alice")],
                [],  # subscribed after alice joined
            ]
            assert await members_of(anon, topic) == ["alice", "watcher"]
            answer = await anon.call("presence", topic=topic)
            alice = next(m for m in answer["data"]["members"] if m["member"] == "alice")
            assert alice["info"]["name"] == "alice"
            stats = await anon.call("presence_stats", topic=topic)
            assert stats["type"] == "reply" and stats["data"] == {"count": 2}
            api = await anon.call("members", {"room": "lobby"})
            assert api["data"]["members"] == ["alice", "watcher"] and api["data"]["count"] == 2

            await tab1.close()  # alice still has a tab
            unsub = await tab2.call("unsubscribe", topic=topic)
            assert unsub["type"] == "ack"
            assert await mark(watcher, [watcher], topic) == [[("leave", "alice")]]
            assert await members_of(watcher, topic) == ["watcher"]

            # track="connection", events off: two connections of one user are two members
            await tab2.subscribe("tabs/lobby")
            await watcher.subscribe("tabs/lobby")
            answer = await watcher.call("presence_stats", topic="tabs/lobby")
            assert answer["data"] == {"count": 2}
            assert presence_events(watcher.events, "tabs/lobby") == []


@pytest.mark.slow
async def test_presence_bad_requests() -> None:
    with running(servers_on("memory://", 1)) as (server,):
        async with clients((server, "bob"), (server, "admin")) as (bob, admin):
            cases = [
                ("presence", "plain/lobby", "bad_request", "no presence"),
                ("presence_stats", "plain/lobby", "bad_request", "no presence"),
                ("presence", "rooms/+", "invalid_topic", "concrete topic"),
                ("presence", "rooms/#", "invalid_topic", "concrete topic"),
                ("presence", "nowhere/x", "unknown_topic", "no such topic"),
                ("presence", "staff/x", "forbidden", ""),
                ("presence_stats", "staff/x", "forbidden", ""),
            ]
            for kind, topic, code, words in cases:
                answer = await bob.call(kind, topic=topic)
                assert answer["type"] == "error", (kind, topic, answer)
                assert answer["code"] == code, (kind, topic, answer)
                assert words in answer["message"], (kind, topic, answer)
            missing = await bob.call("presence")
            assert missing["type"] == "error" and missing["code"] == "invalid_frame"
            # the subscribe rules decide: admin may subscribe to staff/x, so may ask
            await admin.subscribe("staff/x")
            assert await members_of(admin, "staff/x") == ["admin"]


# -- three instances on a real Redis -------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.slow
async def test_presence_across_three_instances(redis_url: str) -> None:
    topic = "rooms/hall"
    with running(servers_on(redis_url, 3)) as (a, b, c):
        async with clients((a, "wa"), (b, "wb"), (c, "wc")) as watchers:
            for w in watchers:
                await w.subscribe(topic)
            # each watcher joined once, seen on every instance in the order of the subscribes
            first = await mark(watchers[0], watchers, topic)
            assert first == [
                [("join", "wa"), ("join", "wb"), ("join", "wc")],
                [("join", "wb"), ("join", "wc")],
                [("join", "wc")],
            ]
            async with clients((a, "ann"), (c, "ann"), (b, "bo")) as (ann_a, ann_c, bo):
                await ann_a.subscribe(topic)
                await ann_c.subscribe(topic)  # ann's second tab, on another instance
                await bo.subscribe(topic)
                seen = await mark(watchers[1], watchers, topic)
                assert seen == [[("join", "ann"), ("join", "bo")]] * 3
                everyone = ["ann", "bo", "wa", "wb", "wc"]
                for client in (*watchers, bo):
                    assert await members_of(client, topic) == everyone
                for w in watchers:  # the server API, on each instance
                    api = await w.call("members", {"room": "hall"})
                    assert api["data"]["members"] == everyone and api["data"]["count"] == 5

                await ann_a.close()  # ann still has her tab on C: no leave
                await bo.close()
                await watchers[0].wait_for(lambda ev: ("leave", "bo") in presence_events(ev, topic))
                seen = await mark(watchers[2], watchers, topic)
                assert seen == [[("leave", "bo")]] * 3
                assert await members_of(watchers[0], topic) == ["ann", "wa", "wb", "wc"]
                await ann_c.close()  # the last tab
                await watchers[1].wait_for(
                    lambda ev: ("leave", "ann") in presence_events(ev, topic)
                )
                assert await mark(watchers[0], watchers, topic) == [[("leave", "ann")]] * 3
                assert await members_of(watchers[2], topic) == ["wa", "wb", "wc"]


@pytest.mark.redis
@pytest.mark.slow
async def test_presence_killed_instance_leaves_within_bound(redis_url: str) -> None:
    topic = "rooms/crash"
    with running(servers_on(redis_url, 3)) as (a, b, c):
        async with clients((a, "wa"), (b, "wb")) as (wa, wb):
            await wa.subscribe(topic)
            await wb.subscribe(topic)
            doomed = [await WsClient(c.ws_url(f"/ws?user={u}"), timeout=WAIT).open() for u in "xy"]
            try:
                for d in doomed:
                    await d.subscribe(topic)
                assert await members_of(wa, topic) == ["wa", "wb", "x", "y"]
                await mark(wa, [wa, wb], topic)
                killed = time.monotonic()
                c._process.signal(__import__("signal").SIGKILL)
                bound = TTL * 4 / 3 + 2.0  # ttl, one sweep interval, slack for a loaded machine

                def both_left(ev: list[dict[str, Any]]) -> bool:
                    got = presence_events(ev, topic)
                    return ("leave", "x") in got and ("leave", "y") in got

                await wa.wait_for(both_left, timeout=bound)
                took = time.monotonic() - killed
                assert took <= bound
                seen = await mark(wb, [wa, wb], topic)
                assert [sorted(s) for s in seen] == [[("leave", "x"), ("leave", "y")]] * 2
                assert await members_of(wb, topic) == ["wa", "wb"]
            finally:
                for d in doomed:
                    d.abort()
                    await d.close()


# -- the AsyncAPI document, the HTML page and the generated client -------------------------------


def test_presence_in_the_asyncapi_document_and_page(tmp_path: Path) -> None:
    from asyncws.asyncapi import build_document, document_json
    from asyncws.asyncapi.checks import check_document
    from asyncws.docs import render_html
    from tests.apps.presence_app import ws

    document = build_document(ws)
    assert check_document(document) == []
    rooms = document["channels"]["roomsRoom"]["messages"]
    assert set(rooms) == {"Line", "join", "leave"}
    assert "join" not in document["channels"]["tabsRoom"]["messages"]  # events=False
    ops = document["operations"]
    for key, kind in (
        ("presenceRoomsRoom", "presence"),
        ("presenceStatsRoomsRoom", "presence_stats"),
    ):
        assert ops[key]["x-asyncws-presence"] == kind and ops[key]["x-asyncws-topic"] == "roomsRoom"
    assert not any(k.startswith("presence") and "Plain" in k for k in ops)  # no presence there
    member = document["components"]["schemas"]["AsyncwsPresenceMember"]
    assert member["required"] == ["member"]
    # the official parser accepts it
    node = shutil.which("node")
    assert node is not None, "node is needed (scripts/install)"
    path = tmp_path / "presence.asyncapi.json"
    path.write_text(document_json(document), encoding="utf-8")
    run = subprocess.run(
        [node, "scripts/validate_asyncapi.mjs", "--json", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result = json.loads(run.stdout)["files"][0]
    assert result["parsed"], result
    assert [d for d in result["diagnostics"] if d["severity"] == "error"] == []
    # the HTML page shows the requests and the events
    html = render_html(document)
    shown = ("presenceRoomsRoom", "presenceStatsRoomsRoom", "AsyncwsPresenceMember")
    for text in (*shown, "roomsRoomJoin", "roomsRoomLeave", "A member arrived"):
        assert text in html, text
    assert "tabsRoomJoin" not in html  # events=False: no join/leave messages


def test_a_broker_without_a_presence_store_is_refused_not_kept_per_process() -> None:
    """Members kept in one process would be wrong with a second instance: a broker that
    keeps no members is refused loudly; the cluster broker brings its own store."""
    from asyncws.brokers.base import BrokerInterface
    from asyncws.brokers.cluster_presence import ClusterPresenceStore
    from asyncws.brokers.redis_cluster import RedisClusterBroker
    from asyncws.presence import store_for

    class Bare(BrokerInterface):
        async def connect(self) -> None: ...
        async def disconnect(self) -> None: ...
        async def subscribe(self, channel: str) -> None: ...
        async def unsubscribe(self, channel: str) -> None: ...
        async def publish(self, channel: str, message: Any) -> None: ...
        async def get_message(self, **kwargs: Any) -> None: ...

    with pytest.raises(TypeError, match="Bare has no presence store"):
        store_for(Bare(), "chat")
    cluster = RedisClusterBroker("redis+cluster://127.0.0.1:1")  # never connected
    assert isinstance(store_for(cluster, "chat"), ClusterPresenceStore)


# -- limits: a big topic's `presence` is capped, the count stays exact ----------------------------


async def test_presence_answer_is_capped_at_max_members() -> None:
    class Line(BaseModel):
        text: str

    router = Router()
    hall = router.topic("hall/{room}", Line, presence=PresencePolicy(max_members=3))

    def authenticate(conn: Connection) -> dict[str, str | None]:
        return {"name": conn.websocket.query_params.get("user")}

    ws = AsyncWS(title="capped", authenticate=authenticate, user_id=lambda p: p["name"])
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as client, contextlib.AsyncExitStack() as stack:
        people = [
            await stack.enter_async_context(client.connect(f"/ws?user=u{i}")) for i in range(5)
        ]
        for person in people:
            assert (await person.subscribe("hall/big"))["type"] == "ack"
        answer = await people[0].call("presence", topic="hall/big")
        assert answer["type"] == "reply", answer
        data = answer["data"]
        assert len(data["members"]) == 3 and data["count"] == 5 and data["truncated"] is True
        assert {m["member"] for m in data["members"]} <= {f"u{i}" for i in range(5)}
        stats = await people[0].call("presence_stats", topic="hall/big")
        assert stats["data"] == {"count": 5}
        # the server API: no cap unless limit= is given
        assert len(await hall.presence(room="big")) == 5
        assert len(await hall.presence(room="big", limit=2)) == 2


@pytest.mark.redis
async def test_redis_store_pages_a_big_topic(redis_url: str) -> None:
    """10,000 members on a real Redis: a capped read returns the cap, the count is exact."""
    from asyncws import WebSocketManager
    from asyncws.presence import store_for

    manager = WebSocketManager("capped", broker_url=redis_url)
    await manager.startup()
    try:
        store = store_for(manager.broker, "capped")
        expiry = time.time() + 60
        for start in range(0, 10_000, 1000):
            members = {f"m{i:05d}": "null" for i in range(start, start + 1000)}
            joined = await store.add("hall/big", "inst-a", members, expiry)
            assert len(joined) == 1000
        found, count = await store.members("hall/big", 1000)
        assert count == 10_000 and len(found) == 1000
        assert len({m.member for m in found}) == 1000
        assert await store.count("hall/big") == 10_000
        assert await store.has("hall/big", "m09999") and not await store.has("hall/big", "x")
        everyone, _ = await store.members("hall/big", 20_000)
        assert len({m.member for m in everyone}) == 10_000
    finally:
        await manager.shutdown()


# -- members from every kind of subscription: the seed's protocol and server code -----------------


@pytest.mark.redis
@pytest.mark.slow
async def test_seed_and_server_subscriptions_join_presence(redis_url: str) -> None:
    """A seed-protocol client (``WebSocketManager.receive`` on the app's manager) and a
    connection subscribed by server code (``ws.manager.subscribe``) are members like any."""
    topic = "rooms/mixed"
    with running(servers_on(redis_url, 2)) as (a, b):
        async with (
            WsClient(a.ws_url("/ws?user=wa"), timeout=WAIT) as watcher,
            WsClient(b.ws_url("/seed/sam"), timeout=WAIT) as sam,
            WsClient(b.ws_url("/ws?user=sue"), timeout=WAIT) as sue,
        ):
            await watcher.subscribe(topic)
            ack = await sam.call("subscribe", topic=topic)  # the seed's subscribe frame
            assert ack["type"] == "ack", ack
            assert (await sam.call("subscribe", topic="rooms/+"))["type"] == "ack"  # no member
            entered = await sue.call("enter", {"room": "mixed"})  # server code subscribes
            assert entered["type"] in ("ack", "reply"), entered
            assert await mark(watcher, [watcher], topic) == [
                [("join", "wa"), ("join", "sam"), ("join", "sue")]
            ]
            assert await members_of(watcher, topic) == ["sam", "sue", "wa"]
            # the seed's protocol has no requests (nor topic rules): a clear error
            for kind in ("presence", "presence_stats"):
                asked = await sam.call(kind, topic=topic)
                assert asked["type"] == "error" and asked["code"] == "unknown_type", asked
                assert "not part of the seed's protocol" in asked["message"], asked

            assert (await sam.call("unsubscribe", topic=topic))["type"] == "ack"
            assert (await sue.call("exit", {"room": "mixed"}))["type"] in ("ack", "reply")
            assert await mark(watcher, [watcher], topic) == [[("leave", "sam"), ("leave", "sue")]]
            await sam.call("subscribe", topic=topic)
            await sue.call("enter", {"room": "mixed"})
            assert await members_of(watcher, topic) == ["sam", "sue", "wa"]
            await sam.close()  # the seed's endpoint removes the connection
            await sue.close()
            gone = {("leave", "sam"), ("leave", "sue")}
            await watcher.wait_for(lambda ev: gone <= set(presence_events(ev, topic)))
            (seen,) = await mark(watcher, [watcher], topic)
            assert seen[:2] == [("join", "sam"), ("join", "sue")]
            assert sorted(seen[2:]) == sorted(gone)
            assert await members_of(watcher, topic) == ["wa"]


# -- an app in the document framing (no control frames) --------------------------------------------


class Hello(BaseModel):
    op: Literal["hello"]
    name: str


class Greeted(BaseModel):
    op: Literal["greeted"] = "greeted"
    name: str


def _framed_app(events: bool) -> tuple[AsyncWS, Topic[Greeted]]:
    """A code-first app in `DocumentFraming`: server code subscribes, no subscribe frames."""

    def authenticate(conn: Connection) -> dict[str, str | None]:
        return {"name": conn.websocket.query_params.get("user")}

    ws = AsyncWS(
        title="framed presence",
        framing=DocumentFraming(discriminator="op"),
        authenticate=authenticate,
        user_id=lambda p: p["name"],
    )
    lobby: Topic[Greeted] = Topic("lobby/{room}", Greeted, presence=PresencePolicy(events=events))
    ws.add_topic(lobby)

    @ws.operation("hello")
    async def hello(data: Hello, conn: Connection) -> Greeted:
        await ws.manager.subscribe(conn, lobby.topic_for(room="main"))  # joins presence
        return Greeted(name=data.name)

    return ws, lobby


async def test_document_framing_presence_is_for_server_code() -> None:
    """No subscribe, presence or join/leave frames in the document framing: members come from
    server-code subscriptions, and the app reads them with ``topic.presence()``."""
    ws, lobby = _framed_app(events=False)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as client:
        async with client.connect("/ws?user=ann") as ann, client.connect("/ws?user=bo") as bo:
            for person, name in ((ann, "ann"), (bo, "bo")):
                await person.send_json({"op": "hello", "name": name})
                assert await person.receive_json() == {"op": "greeted", "name": name}
            assert sorted(m.member for m in await lobby.presence(room="main")) == ["ann", "bo"]
            await ann.send_json({"op": "presence", "topic": "lobby/main"})  # not a frame here
            refused = await ann.receive_json()
            assert refused["error"]["code"] == "unknown_type", refused
        assert await lobby.presence(room="main") == []


async def test_document_framing_refuses_join_and_leave_events() -> None:
    """It has no join/leave frames (events are the payloads as they are): refused at startup."""
    ws, _ = _framed_app(events=True)
    with pytest.raises(TypeError, match=r"no join/leave frames .*PresencePolicy\(events=False\)"):
        async with ws.lifespan():
            pass
    assert not ws.manager.started  # refused before anything started
