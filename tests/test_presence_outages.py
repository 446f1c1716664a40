"""Presence through Redis outages: three uvicorn instances on a redis-server of the test's own.

- **Restart** (stopped by PID, started again on the same port, its data gone): every instance
  registers the members of its live connections again, so presence is rebuilt.
- **Down**: ``presence`` and ``presence_stats`` are answered at once with a
  ``broker_unavailable`` error frame (no hang); the instances keep serving. Connections that
  join or leave meanwhile are reconciled when Redis is back: who left is no member any more
  (with a ``leave`` event) and who arrived is (with a ``join``), well before ``ttl`` would have
  expired anything.
- **Frozen** (SIGSTOP; the data kept): the same, the requests answered within the command
  timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import pytest

from tests.servers import RedisServer, UvicornServer
from tests.test_presence import (
    WAIT,
    clients,
    mark,
    members_of,
    presence_events,
    running,
    wait_members,
)
from tests.wsclient import WsClient

pytestmark = [pytest.mark.redis, pytest.mark.slow]

APP = "tests.apps.presence_app:app"
TOPIC = "rooms/outage"


def servers_on(redis: RedisServer, ttl: float) -> list[UvicornServer]:
    env = {
        "ASYNCWS_BROKER_URL": redis.url,
        "ASYNCWS_PRESENCE_TTL": str(ttl),
        "ASYNCWS_HEALTH_INTERVAL": "0.5",
        "ASYNCWS_COMMAND_TIMEOUT": "1",
    }
    return [UvicornServer(APP, env=env, ready_path="/health") for _ in range(3)]


async def held(client: WsClient, room: str = "outage") -> list[str]:
    """The members of ``rooms/{room}`` held by the instance ``client`` is connected to."""
    answer = await client.call("held", {"room": room})
    assert answer["type"] == "reply", answer
    members: list[str] = answer["data"]["members"]
    return members


async def until_held(client: WsClient, expected: list[str]) -> None:
    """Until the instance of ``client`` holds ``expected`` (it handled a disconnect)."""
    for _ in range(100):
        if await held(client) == expected:
            return
        await _tick()
    raise AssertionError(f"{await held(client)} != {expected}")


async def _tick() -> None:
    await asyncio.sleep(0.05)  # a bounded poll of the server's state: nothing to wait on


async def refused_quickly(watchers: Sequence[WsClient], within: float) -> list[float]:
    """Every watcher's ``presence`` and ``presence_stats`` get ``broker_unavailable``."""
    took = []
    for watcher in watchers:
        for kind in ("presence", "presence_stats"):
            start = time.monotonic()
            answer = await watcher.call(kind, topic=TOPIC, timeout=within + 2)
            took.append(time.monotonic() - start)
            assert answer["type"] == "error", answer
            assert answer["code"] == "broker_unavailable", answer
            assert took[-1] <= within, (kind, took[-1])
    return took


async def told(watcher: WsClient, before: list[str], after: list[str]) -> None:
    """Until the events ``watcher`` got take it from ``before`` to ``after`` (bounded)."""
    try:
        await watcher.wait_for(lambda ev: membership(ev, before) == after, timeout=WAIT)
    except TimeoutError:
        got = presence_events(watcher.events, TOPIC)
        raise AssertionError(f"{membership(watcher.events, before)} != {after}: {got}") from None


def membership(events: list[dict[str, Any]], start: list[str]) -> list[str]:
    """The members a client knows from ``start`` and the join/leave events, in order."""
    members = set(start)
    for kind, member in presence_events(events, TOPIC):
        if kind == "join":
            members.add(member)
        else:
            members.discard(member)
    return sorted(members)


async def test_presence_rebuilt_after_a_redis_restart(fresh_redis: RedisServer) -> None:
    redis = fresh_redis
    with running(servers_on(redis, ttl=30.0)) as (a, b, c):
        async with clients((a, "wa"), (b, "wb"), (c, "wc"), (b, "zed"), (c, "zed")) as people:
            for client in people:
                await client.subscribe(TOPIC)
            everyone = ["wa", "wb", "wc", "zed"]
            assert await members_of(people[0], TOPIC) == everyone
            pid = redis.pid
            redis.restart()  # by PID, the same port: every key is gone
            assert redis.pid != pid and redis.command("DBSIZE") == b":0"
            # within one heartbeat (ttl / 3 = 10 s) at most; at once in practice, since the
            # instances refresh as soon as their broker connection is back
            took = await wait_members(people[1], TOPIC, everyone, within=10.0 + WAIT)
            for client in people[:3]:
                assert await members_of(client, TOPIC) == everyone
            print(f"presence rebuilt {took:.2f}s after the Redis restart")


async def test_presence_while_redis_is_down_then_reconciled(fresh_redis: RedisServer) -> None:
    # ttl 60 s: whatever is reconciled within the test was not merely expired
    redis = fresh_redis
    with running(servers_on(redis, ttl=60.0)) as (a, b, c):
        async with contextlib.AsyncExitStack() as stack:
            people = {
                name: await stack.enter_async_context(
                    WsClient(server.ws_url(f"/ws?user={name.split('@')[0]}"), timeout=WAIT)
                )
                for name, server in (
                    ("wa", a),
                    ("wb", b),
                    ("wc", c),
                    ("ann@a", a),  # ann has a tab on A and one on C
                    ("ann@c", c),
                    ("leaver", b),
                    ("tab@a", a),  # tab has two tabs on A
                    ("tab@a2", a),
                )
            }
            for client in people.values():
                await client.subscribe(TOPIC)
            watchers = [people["wa"], people["wb"], people["wc"]]
            before = ["ann", "leaver", "tab", "wa", "wb", "wc"]
            assert await members_of(people["wa"], TOPIC) == before
            await mark(people["wa"], watchers, TOPIC)  # clears the events so far

            redis.stop()
            took = await refused_quickly(watchers, within=3.0)
            assert await held(people["wb"]) == ["leaver", "wb"]  # still serving
            # meanwhile: leaver goes, ann closes one tab of two, tab one of two on the same
            # instance, and newbie arrives on C
            await people.pop("leaver").close()
            await people.pop("ann@a").close()
            await people.pop("tab@a").close()
            await until_held(people["wb"], ["wb"])
            await until_held(people["wa"], ["tab", "wa"])
            newbie = await stack.enter_async_context(
                WsClient(c.ws_url("/ws?user=newbie"), timeout=WAIT)
            )
            await newbie.subscribe(TOPIC)  # acked: the subscribe is replayed on reconnect
            assert await held(newbie) == ["ann", "newbie", "wc"]

            back = time.monotonic()
            redis.start()  # the same port, no data (nothing is saved)
            after = ["ann", "newbie", "tab", "wa", "wb", "wc"]
            await wait_members(people["wa"], TOPIC, after, within=WAIT)
            rebuilt = time.monotonic() - back
            for watcher in watchers:
                assert await members_of(watcher, TOPIC) == after
                # the events tell every subscriber the same: leaver left, newbie arrived
                await told(watcher, before, after)
            print(
                f"refused in {max(took) * 1000:.0f} ms at most while down; "
                f"reconciled {rebuilt:.2f}s after Redis was back"
            )


async def test_presence_while_redis_is_frozen_then_reconciled(fresh_redis: RedisServer) -> None:
    """SIGSTOP: connections stay open, nothing is answered, the data is kept."""
    redis = fresh_redis
    with running(servers_on(redis, ttl=60.0)) as (a, b, c):
        async with clients((a, "wa"), (b, "wb"), (c, "wc"), (b, "leaver")) as people:
            wa, wb, wc, leaver = people
            for client in people:
                await client.subscribe(TOPIC)
            before = ["leaver", "wa", "wb", "wc"]
            assert await members_of(wa, TOPIC) == before
            await mark(wa, [wa, wb, wc], TOPIC)
            redis.pause()
            try:
                # one command timeout (1 s) and its one retry, plus slack for a loaded machine
                took = await refused_quickly([wa], within=4.0)
                await leaver.close()
                await until_held(wb, ["wb"])
            finally:
                redis.resume()
            after = ["wa", "wb", "wc"]
            # the leave is retried when Redis answers again: not left to expire (ttl 60 s)
            await wait_members(wb, TOPIC, after, within=WAIT)
            for watcher in (wa, wb, wc):  # (the leave may come twice: see PresenceTracker)
                await told(watcher, before, after)
            print(f"frozen Redis: presence refused in {max(took) * 1000:.0f} ms")
