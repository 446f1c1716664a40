"""The generated clients against the real chat example, over real websockets.

The Python client (generated from specs/chat.asyncapi.yaml into a temporary directory and
imported from there) drives ``examples.chat.app:app`` in a uvicorn process (memory broker):
every operation, every topic, typed errors, and a reconnection after the server restarts on
the same port. A few runtime behaviours that a real server cannot be made to show on cue
(a request pending when the connection drops, a server that never answers) are checked
against a small websockets server in the test process.

The TypeScript client is compiled with tsc and loaded in headless Chromium from a page that
a static HTTP server of the test serves on 127.0.0.1; the websockets go to the app (another
origin: the app allows only its own origin unless told otherwise, so the test lists the
static server's origin: ``tests/apps/chat_origins.py`` is the chat with
``ASYNCWS_ALLOWED_ORIGINS``). Needs
Debian's ``chromium``, the ``playwright`` package and ``node_modules`` (``npm ci``); without
them the browser tests skip, except under CI where that is an install bug and fails.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import yaml
from websockets.asyncio.server import ServerConnection, serve

from asyncws.codegen import generate
from tests.browser import launch_chromium, typescript_page
from tests.servers import REPO_ROOT, UvicornServer, free_port

pytestmark = pytest.mark.slow

CHAT_SPEC = REPO_ROOT / "specs" / "chat.asyncapi.yaml"
APP = "tests.apps.chat_origins:app"  # examples.chat.app:app, plus the page's origin
STATIC_PORT = free_port()  # the page's origin, which the chat app must allow explicitly
ENV = {
    "ASYNCWS_BROKER_URL": "memory://",
    "ASYNCWS_ALLOWED_ORIGINS": f"http://127.0.0.1:{STATIC_PORT}",
}
WAIT = 10.0  # every wait is bounded


def _chat_document() -> dict[str, Any]:
    loaded = yaml.safe_load(CHAT_SPEC.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated ``chat_client`` package, imported from a temporary directory."""
    directory = tmp_path_factory.mktemp("python-client")
    generate(_chat_document(), "python", directory, name="chat")
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module("chat_client")
    finally:
        sys.path.remove(str(directory))
        for key in [k for k in sys.modules if k.split(".")[0] == "chat_client"]:
            del sys.modules[key]


@pytest.fixture(scope="module")
def server() -> Iterator[UvicornServer]:
    with UvicornServer(APP, env=ENV) as web:
        yield web


async def _next(events: Any) -> Any:
    return await asyncio.wait_for(anext(events), WAIT)


async def _eventually(check: Callable[[], bool], what: str) -> None:
    """Bounded poll: ``check()`` becomes true within `WAIT` seconds."""
    for _ in range(int(WAIT / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {WAIT}s: {what}")


# -- the Python client: requests ---------------------------------------------------------------


async def test_every_operation(chat: Any, server: UvicornServer) -> None:
    url = server.ws_url("/")
    async with (
        chat.ChatClient(url, params={"user": "ann"}, timeout=WAIT) as ann,
        chat.ChatClient(url, params={"user": "bob"}, timeout=WAIT) as bob,
    ):
        me = await ann.whoami()
        assert isinstance(me, chat.Me)
        assert me.name == "ann" and me.connection_id

        receipt = await ann.post(room="lobby", text="hello")
        assert isinstance(receipt, chat.Receipt)
        assert receipt.room == "lobby" and isinstance(receipt.at, datetime)
        assert receipt.at.tzinfo is not None

        receipt = await bob.post(chat.Post(room="kitchen", text="a model"))
        assert receipt.room == "kitchen"

        assert await ann.join(room="lobby") is None
        assert await ann.typing(chat.TypingIn(room="lobby")) is None
        assert await ann.direct(to="bob", text="psst") is None
        assert ann.connected


async def test_the_url_may_name_the_endpoint(chat: Any, server: UvicornServer) -> None:
    client = chat.ChatClient(server.url + "/ws", params={"user": "ann"})
    assert client.websocket_url() == server.ws_url("/ws?user=ann")
    async with client:
        assert (await client.whoami()).name == "ann"


# -- the Python client: topics ------------------------------------------------------------------


async def test_room_events_are_typed(chat: Any, server: UvicornServer) -> None:
    url = server.ws_url("/")
    async with (
        chat.ChatClient(url, params={"user": "ann"}) as ann,
        chat.ChatClient(url, params={"user": "bob"}) as bob,
        ann.subscribe_rooms(room="lobby") as events,
    ):
        assert events.topic == "rooms/lobby" and events.active
        await bob.post(room="lobby", text="one")
        await bob.join(room="lobby")
        await bob.post(room="elsewhere", text="not for ann")
        posted = await _next(events)
        joined = await _next(events)
        assert isinstance(posted, chat.PostedEvent)
        assert isinstance(posted.data, chat.Posted)
        assert (posted.type, posted.topic) == ("posted", "rooms/lobby")
        assert (posted.data.user, posted.data.text) == ("bob", "one")
        assert isinstance(posted.data.at, datetime)
        assert isinstance(joined, chat.JoinedEvent)
        assert isinstance(joined.data, chat.Joined) and joined.data.user == "bob"
        await bob.post(room="lobby", text="two")
        assert (await _next(events)).data.text == "two"  # nothing from the other room
    assert not events.active


async def test_wildcard_subscription_and_typing(chat: Any, server: UvicornServer) -> None:
    url = server.ws_url("/")
    async with (
        chat.ChatClient(url, params={"user": "ann"}) as ann,
        chat.ChatClient(url, params={"user": "bob"}) as bob,
        ann.subscribe_rooms() as rooms,  # any room: rooms/+
        ann.subscribe_rooms_typing(room="lobby") as typing,
    ):
        assert rooms.topic == "rooms/+"
        await bob.post(room="attic", text="up here")
        event = await _next(rooms)
        assert event.topic == "rooms/attic" and event.data.text == "up here"
        await bob.typing(room="lobby")
        typed = await _next(typing)
        assert isinstance(typed, chat.TypingEvent)
        assert typed.topic == "rooms/lobby/typing" and typed.data.user == "bob"


async def test_inbox_with_two_clients_and_a_callback(chat: Any, server: UvicornServer) -> None:
    url = server.ws_url("/")
    received: list[Any] = []
    done = asyncio.Event()

    async def on_event(event: Any) -> None:
        received.append(event)
        done.set()

    async with (
        chat.ChatClient(url, params={"user": "ann"}) as ann,
        chat.ChatClient(url, params={"user": "bob"}) as bob,
    ):
        inbox = await ann.subscribe_users_inbox(user="ann", on_event=on_event)
        assert inbox.active
        with pytest.raises(TypeError):
            aiter(inbox)  # a callback subscription is not iterated
        await bob.direct(to="ann", text="for your eyes only")
        await asyncio.wait_for(done.wait(), WAIT)
        (message,) = received
        assert isinstance(message, chat.DirectMessageEvent)
        assert message.topic == "users/ann/inbox"
        assert isinstance(message.data, chat.DirectMessage)
        assert message.data.from_ == "bob"  # `from` on the wire
        assert message.data.text == "for your eyes only"
        await inbox.close()
        assert not inbox.active


async def test_two_subscriptions_to_one_topic_share_it(chat: Any, server: UvicornServer) -> None:
    url = server.ws_url("/")
    async with (
        chat.ChatClient(url, params={"user": "ann"}) as ann,
        chat.ChatClient(url, params={"user": "bob"}) as bob,
    ):
        first = await ann.subscribe_rooms(room="lobby")
        second = await ann.subscribe_rooms(room="lobby")
        await bob.post(room="lobby", text="both")
        assert (await _next(first)).data.text == "both"
        assert (await _next(second)).data.text == "both"
        await first.close()  # the other one keeps the server's subscription
        await bob.post(room="lobby", text="still")
        assert (await _next(second)).data.text == "still"
        await second.close()


# -- the Python client: errors ------------------------------------------------------------------


async def test_errors_are_typed(chat: Any, server: UvicornServer) -> None:
    url = server.ws_url("/")
    async with chat.ChatClient(url, params={"user": "ann"}) as ann:
        # checked before sending, reported like the server's
        with pytest.raises(chat.ValidationFailed) as local:
            await ann.post(room="lobby", text="")
        assert local.value.code == "validation_error" and local.value.frame_id is None
        assert local.value.errors[0].loc == ["text"]

        # the server's answer to an invalid payload
        with pytest.raises(chat.ValidationFailed) as remote:
            await ann.post(chat.Post.model_construct(room="lobby", text=""))
        error = remote.value
        assert isinstance(error, chat.ChatError) and isinstance(error, chat.ChatClientError)
        assert error.code == "validation_error" and isinstance(error.frame_id, int)
        assert [e.loc for e in error.errors] == [["text"]]
        assert error.errors[0].type == "string_too_short"

        with pytest.raises(chat.Forbidden) as forbidden:
            async with ann.subscribe_users_inbox(user="bob"):
                pass
        assert forbidden.value.code == "forbidden"

        with pytest.raises(chat.UnknownType):
            await ann.request("no_such_operation")
        with pytest.raises(ValueError, match="not a topic level"):
            ann.subscribe_rooms(room="a/b")
        assert (await ann.whoami()).name == "ann"  # the connection is fine


async def test_a_refused_handshake(chat: Any, server: UvicornServer) -> None:
    client = chat.ChatClient(server.ws_url("/"))  # no ?user=: the app refuses
    with pytest.raises(chat.ConnectionFailed) as refused:
        await client.connect()
    assert refused.value.status == 403


# -- the Python client: reconnection ------------------------------------------------------------


async def test_reconnects_and_resubscribes_after_a_restart(chat: Any) -> None:
    port = free_port()
    first = UvicornServer(APP, port=port, env=ENV).start()
    second: UvicornServer | None = None
    try:
        url = first.ws_url("/")
        async with (
            chat.ChatClient(
                url, params={"user": "ann"}, initial_backoff=0.05, max_backoff=0.5, timeout=WAIT
            ) as ann,
            ann.subscribe_rooms(room="lobby") as events,
        ):
            await ann.post(room="lobby", text="before")
            assert (await _next(events)).data.text == "before"

            await asyncio.to_thread(first.close)
            await _eventually(lambda: not ann.connected, "the client saw the close")
            assert not events.active
            # a request made while disconnected waits for the connection
            pending = asyncio.create_task(ann.whoami(timeout=WAIT * 2))
            second = await asyncio.to_thread(UvicornServer(APP, port=port, env=ENV).start)
            assert (await asyncio.wait_for(pending, WAIT * 2)).name == "ann"
            await _eventually(lambda: events.active, "subscribed again")

            async with chat.ChatClient(url, params={"user": "bob"}) as bob:
                await bob.post(room="lobby", text="after")
            after = await _next(events)
            assert (after.topic, after.data.user, after.data.text) == (
                "rooms/lobby",
                "bob",
                "after",
            )
    finally:
        first.close()
        if second is not None:
            second.close()


# -- the Python runtime against a scripted server -----------------------------------------------


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[str, list[ServerConnection], list[dict[str, Any]]]]:
    """A websockets server that records frames and answers nothing."""
    connections: list[ServerConnection] = []
    frames: list[dict[str, Any]] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        async for raw in ws:
            frames.append(json.loads(raw))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}", connections, frames


async def test_a_pending_request_fails_when_the_connection_drops(
    chat: Any, scripted: tuple[str, list[ServerConnection], list[dict[str, Any]]]
) -> None:
    url, connections, frames = scripted
    async with chat.ChatClient(url, reconnect=False) as client:
        pending = asyncio.create_task(client.whoami(timeout=WAIT))
        await _eventually(lambda: bool(frames), "the request was sent")
        assert frames == [{"type": "whoami", "id": 1}]
        await connections[0].close()
        with pytest.raises(chat.ConnectionLost):
            await pending
        with pytest.raises(chat.ConnectionLost):  # and without reconnect, nothing more
            await client.whoami()


async def test_a_request_times_out(
    chat: Any, scripted: tuple[str, list[ServerConnection], list[dict[str, Any]]]
) -> None:
    url, _, frames = scripted
    async with chat.ChatClient(url) as client:
        with pytest.raises(chat.RequestTimeout):
            await client.post(room="lobby", text="hi", timeout=0.2)
        assert frames == [{"type": "post", "id": 1, "data": {"room": "lobby", "text": "hi"}}]
        assert isinstance(chat.RequestTimeout("x"), TimeoutError)


async def test_a_subscription_ends_with_the_connection_without_reconnect(
    chat: Any, scripted: tuple[str, list[ServerConnection], list[dict[str, Any]]]
) -> None:
    url, connections, frames = scripted
    async with chat.ChatClient(url, reconnect=False) as client:
        sub = client.subscribe_rooms(room="lobby")
        starting = asyncio.create_task(sub.start())
        await _eventually(lambda: bool(frames), "subscribe sent")
        assert frames == [{"type": "subscribe", "topic": "rooms/lobby", "id": 1}]
        await connections[0].send(json.dumps({"type": "ack", "id": 1}))
        await asyncio.wait_for(starting, WAIT)
        await connections[0].send(
            json.dumps(
                {
                    "type": "joined",
                    "topic": "rooms/lobby",
                    "data": {"type": "joined", "user": "zed"},
                }
            )
        )
        assert (await _next(sub)).data.user == "zed"
        await connections[0].close()
        with pytest.raises(chat.ConnectionLost):
            await _next(sub)


# -- the TypeScript client in Chromium ----------------------------------------------------------

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>chat client</title><link rel="icon" href="data:,"></head>
<body>
<script type="module">
import * as client from "./chat-client.js";
window.chatClient = client;
window.clientReady = true;
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The TypeScript client compiled to an ES module, and a page that loads it, served by
    a static HTTP server on 127.0.0.1 (a page served from the loopback may open websockets
    to the loopback: Chromium's local network access checks block a page of no address)."""
    out = tmp_path_factory.mktemp("ts")
    generate(_chat_document(), "typescript", out, name="chat")
    with typescript_page([out / "chat-client.ts"], out / "site", PAGE, port=STATIC_PORT) as url:
        yield url


class Browser:
    """A headless Chromium page that has loaded the compiled client."""

    def __init__(self, page: Any, errors: list[str]) -> None:
        self.page = page
        self.errors = errors

    def run(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with launch_chromium() as chromium:
        errors: list[str] = []
        page = chromium.new_page()
        page.set_default_timeout(WAIT * 1000)
        page.on(
            "console",
            lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        yield Browser(page, errors)


def _open(browser: Browser, page_url: str) -> None:
    browser.page.goto(page_url)
    browser.page.wait_for_function("window.clientReady === true")


SCENARIO = """
async (wsOrigin) => {
  const m = window.chatClient;
  const ann = new m.ChatClient(wsOrigin, { params: { user: "ann" } });
  const bob = new m.ChatClient(wsOrigin, { params: { user: "bob" } });
  await ann.connect();
  await bob.connect();
  const result = { url: ann.url };

  const rooms = await ann.subscribeRooms({ room: "lobby" });
  result.active = rooms.active;
  const events = rooms[Symbol.asyncIterator]();
  result.receipt = await bob.post({ room: "lobby", text: "hello from the browser" });
  result.posted = (await events.next()).value;
  result.join = await bob.join({ room: "lobby" });
  result.joined = (await events.next()).value;
  result.me = await ann.whoami();

  const typing = [];
  const typingSub = await ann.subscribeRoomsTyping({ room: "lobby" }, {
    onEvent: (event) => { typing.push(event); },
  });
  await bob.typing({ room: "lobby" });
  const inbox = await ann.subscribeUsersInbox({ user: "ann" });
  const inboxEvents = inbox[Symbol.asyncIterator]();
  await bob.direct({ to: "ann", text: "psst" });
  result.direct = (await inboxEvents.next()).value;
  for (let i = 0; i < 200 && typing.length === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  result.typing = typing;

  try {
    await ann.post({ room: "lobby", text: "" });
    result.validation = "no error";
  } catch (error) {
    result.validation = {
      name: error.name,
      chatError: error instanceof m.ChatError,
      validationFailed: error instanceof m.ValidationFailed,
      base: error instanceof m.ChatClientError,
      code: error.code,
      loc: error.errors.map((e) => e.loc),
      frameId: error.frameId,
    };
  }
  try {
    await ann.subscribeUsersInbox({ user: "bob" });
    result.forbidden = "no error";
  } catch (error) {
    result.forbidden = { name: error.name, forbidden: error instanceof m.Forbidden, code: error.code };
  }
  try {
    await ann.request("no_such_operation");
  } catch (error) {
    result.unknown = error.name;
  }
  await rooms.close();
  result.closedActive = rooms.active;
  await typingSub.close();
  await inbox.close();
  await ann.close();
  await bob.close();
  try {
    await ann.whoami();
  } catch (error) {
    result.afterClose = error.name;
  }
  return result;
}
"""


@pytest.mark.browser
def test_typescript_client_in_chromium(
    server: UvicornServer, browser: Browser, page_url: str
) -> None:
    _open(browser, page_url)
    result = browser.run(SCENARIO, server.ws_url("/").rstrip("/"))
    assert result["url"] == server.ws_url("/ws?user=ann")
    assert result["active"] is True
    assert result["receipt"]["room"] == "lobby" and result["receipt"]["at"]
    assert result["posted"]["type"] == "posted" and result["posted"]["topic"] == "rooms/lobby"
    assert result["posted"]["data"]["user"] == "bob"
    assert result["posted"]["data"]["text"] == "hello from the browser"
    assert result["join"] is None
    assert result["joined"]["type"] == "joined" and result["joined"]["data"]["user"] == "bob"
    assert result["me"]["name"] == "ann"
    assert [(e["type"], e["data"]["user"]) for e in result["typing"]] == [("Typing", "bob")]
    assert result["direct"]["data"] == {
        "from": "bob",
        "text": "psst",
        "at": result["direct"]["data"]["at"],
    }
    assert result["validation"] == {
        "name": "ValidationFailed",
        "chatError": True,
        "validationFailed": True,
        "base": True,
        "code": "validation_error",
        "loc": [["text"]],
        "frameId": result["validation"]["frameId"],
    }
    assert isinstance(result["validation"]["frameId"], int)
    assert result["forbidden"] == {"name": "Forbidden", "forbidden": True, "code": "forbidden"}
    assert result["unknown"] == "UnknownType"
    assert result["closedActive"] is False
    assert result["afterClose"] == "ConnectionLost"
    assert browser.errors == []


RECONNECT_START = """
async (wsOrigin) => {
  const m = window.chatClient;
  const ann = new m.ChatClient(wsOrigin, {
    params: { user: "ann" }, initialBackoff: 50, maxBackoff: 500,
  });
  await ann.connect();
  const rooms = await ann.subscribeRooms({ room: "lobby" });
  window.reconnecting = { ann, rooms, events: rooms[Symbol.asyncIterator]() };
  return rooms.active;
}
"""

RECONNECT_FINISH = """
async (wsOrigin) => {
  const m = window.chatClient;
  const { ann, rooms, events } = window.reconnecting;
  await ann.waitConnected(10000);
  for (let i = 0; i < 500 && !rooms.active; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const active = rooms.active;
  const bob = new m.ChatClient(wsOrigin, { params: { user: "bob" } });
  await bob.connect();
  await bob.post({ room: "lobby", text: "after the restart" });
  const event = (await events.next()).value;
  await bob.close();
  await ann.close();
  return { active, event };
}
"""


@pytest.mark.browser
def test_typescript_client_reconnects_in_chromium(browser: Browser, page_url: str) -> None:
    port = free_port()
    first = UvicornServer(APP, port=port, env=ENV).start()
    second: UvicornServer | None = None
    try:
        _open(browser, page_url)
        ws_origin = first.ws_url("/").rstrip("/")
        assert browser.run(RECONNECT_START, ws_origin) is True
        first.close()
        browser.page.wait_for_function(
            "window.reconnecting.ann.connected === false", timeout=WAIT * 1000
        )
        second = UvicornServer(APP, port=port, env=ENV).start()
        result = browser.run(RECONNECT_FINISH, ws_origin)
        assert result["active"] is True
        assert result["event"]["topic"] == "rooms/lobby"
        assert result["event"]["data"]["text"] == "after the restart"
        # while the server was down, the browser reports each failed attempt; nothing else
        unexpected = [e for e in browser.errors if "WebSocket connection to" not in e]
        assert unexpected == []
    finally:
        first.close()
        if second is not None:
            second.close()
