"""The generated clients' presence, for real: typed ``presence*()`` / ``presence_stats*()``
methods and ``join`` / ``leave`` events.

The clients are generated from tests/apps/presence_app.py's AsyncAPI document into a temporary
directory and talk to three uvicorn instances of it on a real Redis, each client on another
instance (so every answer crosses instances). The Python client is imported and driven with
asyncio; the TypeScript client is compiled with tsc ``--strict`` (together with a file that
uses its types, with ``@ts-expect-error`` where the types must refuse) and run in headless
Chromium. The typed Python use is checked with mypy ``--strict`` the same way.
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asyncws.asyncapi import build_document
from asyncws.codegen import generate
from tests.apps import presence_app
from tests.browser import launch_chromium, typescript_page
from tests.servers import UvicornServer
from tests.test_presence import WAIT, running, servers_on

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def three(redis_url: str) -> Iterator[list[UvicornServer]]:
    with running(servers_on(redis_url, 3)) as servers:
        yield servers


# -- Python ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def python_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    directory = tmp_path_factory.mktemp("presence-py")
    generate(build_document(presence_app.ws), "python", directory, name="rooms")
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module("rooms_client")
    finally:
        sys.path.remove(str(directory))
        for key in [k for k in sys.modules if k.split(".")[0] == "rooms_client"]:
            del sys.modules[key]


async def _next_presence(events: Any) -> Any:
    """The next join/leave event of a subscription (lines are skipped)."""
    async with asyncio.timeout(WAIT):
        while True:
            event = await anext(events)
            if event.type in ("join", "leave"):
                return event


async def test_python_client_across_three_instances(
    python_client: Any, three: list[UvicornServer]
) -> None:
    m = python_client
    a, b, c = (server.ws_url("/") for server in three)
    async with (
        m.RoomsClient(a, params={"user": "ann"}, timeout=WAIT) as ann,
        m.RoomsClient(b, params={"user": "bob"}, timeout=WAIT) as bob,
        m.RoomsClient(c, params={"user": "cat"}, timeout=WAIT) as cat,
        ann.subscribe_rooms(room="lobby") as events,
    ):
        async with bob.subscribe_rooms(room="lobby"):
            joined = await _next_presence(events)
            if joined.data.member == "ann":  # her own join, when it came after her ack
                joined = await _next_presence(events)
            assert isinstance(joined, m.JoinEvent)  # typed, from instance B
            assert joined.topic == "rooms/lobby" and joined.data.member == "bob"
            assert joined.data.info["name"] == "bob"
            found = await cat.presence_rooms(room="lobby")  # asked on C
            assert isinstance(found, m.Presence)
            assert sorted(member.member for member in found.members) == ["ann", "bob"]
            assert found.count == 2 and found.truncated is False
            stats = await cat.presence_stats_rooms(room="lobby")
            assert isinstance(stats, m.PresenceStats) and stats.count == 2
            with pytest.raises(m.RoomsClientError) as refused:
                await cat.presence_staff(room="x")  # only admin may subscribe, so ask
            assert type(refused.value).__name__ == "Forbidden"
            assert not hasattr(cat, "presence_plain")  # plain/{room} has no presence
        left = await _next_presence(events)  # bob's subscription ended on B
        assert isinstance(left, m.LeaveEvent) and left.data.member == "bob"
        assert (await bob.presence_stats_rooms(room="lobby")).count == 1


PY_TYPES = """
from rooms_client import Presence, PresenceStats, RoomsClient, RoomsEvent


async def typed(client: RoomsClient) -> list[str]:
    found: Presence = await client.presence_rooms(room="lobby")
    stats: PresenceStats = await client.presence_stats_rooms(room="lobby")
    names = [m.member for m in found.members] + [str(found.count + stats.count)]
    async with client.subscribe_rooms(room="lobby") as events:
        async for event in events:
            if event.type == "join" or event.type == "leave":
                names.append(event.data.member)
            else:
                names.append(event.data.text)
    await client.presence_rooms()  # type: ignore[call-arg]
    await client.presence_plain(room="x")  # type: ignore[attr-defined]
    return names


def union(event: RoomsEvent) -> str:
    return event.type
"""


def test_python_client_presence_types(tmp_path: Path) -> None:
    generate(build_document(presence_app.ws), "python", tmp_path, name="rooms")
    (tmp_path / "uses.py").write_text(PY_TYPES, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--warn-unused-ignores", "uses.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


# -- TypeScript, in Chromium ---------------------------------------------------------------------

TS_TYPES = """
import { Presence, PresenceStats, RoomsClient } from "./rooms-client.js";

export async function typed(client: RoomsClient): Promise<string[]> {
  const found: Presence = await client.presenceRooms({ room: "lobby" });
  const stats: PresenceStats = await client.presenceStatsRooms({ room: "lobby" });
  const names: string[] = found.members.map((m) => m.member);
  names.push(String(found.count + stats.count), String(found.truncated));
  for await (const event of await client.subscribeRooms({ room: "lobby" })) {
    if (event.type === "join" || event.type === "leave") names.push(event.data.member);
    else names.push(event.data.text);
  }
  // @ts-expect-error the room is required
  await client.presenceRooms({});
  // @ts-expect-error plain/{room} has no presence
  await client.presencePlain({ room: "x" });
  for await (const event of await client.subscribeTabs({ room: "x" })) {
    // @ts-expect-error tabs/{room} sends no join/leave (events=False)
    if (event.type === "join") names.push("never");
  }
  return names;
}
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>presence client</title><link rel="icon" href="data:,">
</head><body>
<script type="module">
import * as client from "./rooms-client.js";
window.roomsClient = client;
window.clientReady = true;
</script>
</body></html>
"""

SCENARIO = """
async ([a, b, c]) => {
  const m = window.roomsClient;
  const ann = new m.RoomsClient(a, { params: { user: "ann" } });
  const bob = new m.RoomsClient(b, { params: { user: "bob" } });
  const cat = new m.RoomsClient(c, { params: { user: "cat" } });
  await Promise.all([ann.connect(), bob.connect(), cat.connect()]);
  const seen = [];
  const nextPresence = async (events) => {
    for (;;) {
      const { value } = await events.next();
      if (value.type === "join" || value.type === "leave") {
        seen.push([value.type, value.data.member]);
        return value;
      }
    }
  };
  const rooms = await ann.subscribeRooms({ room: "lobby" });
  const events = rooms[Symbol.asyncIterator]();
  const bobs = await bob.subscribeRooms({ room: "lobby" });
  let joined = await nextPresence(events);
  if (joined.data.member === "ann") {  // her own join, when it came after her ack
    seen.shift();
    joined = await nextPresence(events);
  }
  const result = { joined };
  result.presence = await cat.presenceRooms({ room: "lobby" });
  result.stats = await cat.presenceStatsRooms({ room: "lobby" });
  try {
    await cat.presenceStaff({ room: "x" });
    result.forbidden = "no error";
  } catch (error) {
    result.forbidden = { name: error.name, forbidden: error instanceof m.Forbidden, code: error.code };
  }
  try {
    await cat.request("presence", undefined, { topic: "rooms/+" });
    result.pattern = "no error";
  } catch (error) {
    result.pattern = { name: error.name, code: error.code };
  }
  result.noPlain = typeof cat.presencePlain;
  result.tabs = typeof cat.presenceTabs;
  await bobs.close();
  result.left = await nextPresence(events);
  result.after = await bob.presenceStatsRooms({ room: "lobby" });
  result.seen = seen;
  await rooms.close();
  await Promise.all([ann.close(), bob.close(), cat.close()]);
  return result;
}
"""


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The client compiled to an ES module (with the file that uses its types), and a page
    that loads it, served on 127.0.0.1."""
    out = tmp_path_factory.mktemp("presence-ts")
    generate(build_document(presence_app.ws), "typescript", out, name="rooms")
    (out / "uses.ts").write_text(TS_TYPES, encoding="utf-8")
    sources = [out / "rooms-client.ts", out / "uses.ts"]
    with typescript_page(sources, out / "site", PAGE) as url:
        yield url


@pytest.mark.browser
def test_typescript_client_across_three_instances_in_chromium(
    page_url: str, three: list[UvicornServer]
) -> None:
    with launch_chromium() as chromium:
        page = chromium.new_page()
        page.set_default_timeout(WAIT * 1000)
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(page_url)
        page.wait_for_function("window.clientReady === true")
        origins = [server.ws_url("/").rstrip("/") for server in three]
        result = page.evaluate(SCENARIO, origins)
    member = {"name": "bob", "pid": result["joined"]["data"]["info"]["pid"]}
    assert result["joined"] == {
        "type": "join",
        "topic": "rooms/lobby",
        "data": {"member": "bob", "info": member},
    }
    assert sorted(m["member"] for m in result["presence"]["members"]) == ["ann", "bob"]
    assert result["presence"]["count"] == 2 and result["presence"]["truncated"] is False
    assert result["stats"] == {"count": 2}
    assert result["forbidden"] == {"name": "Forbidden", "forbidden": True, "code": "forbidden"}
    assert result["pattern"]["code"] == "invalid_topic"
    assert result["noPlain"] == "undefined" and result["tabs"] == "function"
    assert result["left"]["type"] == "leave" and result["left"]["data"]["member"] == "bob"
    assert result["after"] == {"count": 1}
    assert result["seen"] == [["join", "bob"], ["leave", "bob"]]
    assert errors == []
