"""The chat example (examples/chat/app.py), driven through the in-memory test client:
every operation, every topic, the inbox rule, authentication and the page at ``/``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from html.parser import HTMLParser

import httpx
import pytest

from asyncws.testing import TestClient, WebSocketDenied, WebSocketSession
from examples.chat import app as chat

# The example's app is one module-level object: every test runs its lifespan again.


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(chat.app, timeout=3) as c:
        yield c


@pytest.fixture
async def ann(client: TestClient) -> AsyncIterator[WebSocketSession]:
    async with client.connect("/ws?user=ann") as s:
        yield s


@pytest.fixture
async def bob(client: TestClient) -> AsyncIterator[WebSocketSession]:
    async with client.connect("/ws?user=bob") as s:
        yield s


def parse_time(value: str) -> datetime:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert at.tzinfo is not None
    return at


# -- declarations ----------------------------------------------------------------------------


def test_the_app_declares_what_the_page_uses() -> None:
    assert set(chat.ws.operations) == {"post", "join", "typing", "direct", "whoami"}
    assert [t.address for t in chat.ws.topics] == [
        "rooms/{room}",
        "rooms/{room}/typing",
        "users/{user}/inbox",
    ]


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?user=", "?user=a%20b", "?user=" + "x" * 33, "?user=a/b"])
async def test_connecting_needs_a_valid_user_name(client: TestClient, query: str) -> None:
    with pytest.raises(WebSocketDenied) as denied:
        await client.websocket_connect("/ws" + query)
    assert denied.value.status == 403


async def test_whoami(ann: WebSocketSession) -> None:
    answer = await ann.call("whoami")
    assert answer["type"] == "reply" and answer["id"] == 1
    assert answer["data"]["name"] == "ann"
    assert chat.ws.manager.connections[answer["data"]["connection_id"]].user_id == "ann"


# -- rooms -----------------------------------------------------------------------------------


async def test_post_reaches_every_subscriber_of_the_room(
    ann: WebSocketSession, bob: WebSocketSession
) -> None:
    assert await bob.subscribe("rooms/lobby") == {"type": "ack", "id": 1}
    assert await ann.subscribe("rooms/+") == {"type": "ack", "id": 1}
    receipt = await ann.call("post", {"room": "lobby", "text": "hello"})
    assert receipt["type"] == "reply" and receipt["id"] == 2
    assert receipt["data"]["room"] == "lobby"
    at = parse_time(receipt["data"]["at"])
    for who in (ann, bob):
        event = await who.receive_event("rooms/lobby")
        assert event["type"] == "posted"
        assert event["data"]["user"] == "ann" and event["data"]["text"] == "hello"
        assert event["data"]["type"] == "posted"
        assert parse_time(event["data"]["at"]) == at


async def test_posts_stay_in_their_room(ann: WebSocketSession, bob: WebSocketSession) -> None:
    await bob.subscribe("rooms/kitchen")
    await ann.call("post", {"room": "lobby", "text": "not for bob"})
    await ann.call("post", {"room": "kitchen", "text": "for bob"})
    assert (await bob.receive_event())["data"]["text"] == "for bob"


async def test_join_announces_the_user(ann: WebSocketSession, bob: WebSocketSession) -> None:
    await ann.subscribe("rooms/lobby")
    assert await bob.call("join", {"room": "lobby"}) == {"type": "ack", "id": 1}
    assert await ann.receive_event("rooms/lobby") == {
        "type": "joined",
        "topic": "rooms/lobby",
        "data": {"type": "joined", "user": "bob"},
    }


async def test_typing_indicators(ann: WebSocketSession, bob: WebSocketSession) -> None:
    await ann.subscribe("rooms/lobby/typing")
    await ann.subscribe("rooms/lobby")  # typing events do not go to the room topic
    assert await bob.call("typing", {"room": "lobby"}) == {"type": "ack", "id": 1}
    assert await ann.receive_event() == {
        "type": "Typing",
        "topic": "rooms/lobby/typing",
        "data": {"user": "bob"},
    }


@pytest.mark.parametrize(
    ("op", "data", "loc"),
    [
        ("post", {"room": "Lobby", "text": "x"}, ["room"]),
        ("post", {"room": "lobby", "text": ""}, ["text"]),
        ("post", {"room": "lobby", "text": "x" * 2001}, ["text"]),
        ("post", {"room": "lobby"}, ["text"]),
        ("join", {"room": "a b"}, ["room"]),
        ("typing", {}, ["room"]),
        ("direct", {"to": "bad name", "text": "x"}, ["to"]),
        ("direct", {"to": "bob", "text": ""}, ["text"]),
    ],
)
async def test_invalid_payloads(
    ann: WebSocketSession, op: str, data: dict[str, str], loc: list[str]
) -> None:
    answer = await ann.call(op, data)
    assert answer["type"] == "error" and answer["code"] == "validation_error"
    assert answer["errors"][0]["loc"] == loc


@pytest.mark.parametrize(
    ("topic", "code"),
    [
        ("rooms/Lobby", "unknown_topic"),  # the room name pattern
        ("rooms", "unknown_topic"),
        ("rooms/lobby/typing/x", "unknown_topic"),
        ("+/lobby", "unknown_topic"),
        ("#", "unknown_topic"),
        ("rooms/lo+", "invalid_topic"),
        ("users/ann/outbox", "unknown_topic"),
        ("users/#", "unknown_topic"),  # '#' would cover the fixed level 'inbox'
    ],
)
async def test_bad_subscriptions(ann: WebSocketSession, topic: str, code: str) -> None:
    answer = await ann.subscribe(topic)
    assert answer["type"] == "error" and answer["code"] == code


async def test_room_wildcards(ann: WebSocketSession, bob: WebSocketSession) -> None:
    assert (await ann.subscribe("rooms/+/typing"))["type"] == "ack"
    assert (await ann.subscribe("rooms/#"))["type"] == "ack"  # rooms/{room} only
    await bob.call("typing", {"room": "den"})
    assert (await ann.receive_event())["topic"] == "rooms/den/typing"


async def test_clients_cannot_publish_to_rooms(ann: WebSocketSession) -> None:
    answer = await ann.call(
        "publish", topic="rooms/lobby", data={"type": "posted", "user": "x", "text": "y", "at": 0}
    )
    assert answer["code"] == "forbidden"


# -- direct messages and the inbox rule --------------------------------------------------------


async def test_direct_messages_reach_every_connection_of_the_recipient(
    client: TestClient, ann: WebSocketSession, bob: WebSocketSession
) -> None:
    async with client.connect("/ws?user=bob") as bob_phone:
        assert (await bob.subscribe("users/bob/inbox"))["type"] == "ack"
        assert (await bob_phone.subscribe("users/bob/inbox"))["type"] == "ack"
        assert (await ann.subscribe("users/ann/inbox"))["type"] == "ack"
        assert await ann.call("direct", {"to": "bob", "text": "psst"}) == {
            "type": "ack",
            "id": 2,
        }
        for device in (bob, bob_phone):
            event = await device.receive_event("users/bob/inbox")
            assert event["type"] == "DirectMessage"
            assert event["data"]["from"] == "ann"  # serialized by alias
            assert event["data"]["text"] == "psst"
            parse_time(event["data"]["at"])
        # the sender's own inbox got nothing: its next event is bob's answer
        await bob.call("direct", {"to": "ann", "text": "hi ann"})
        assert (await ann.receive_event())["data"]["text"] == "hi ann"


@pytest.mark.parametrize("topic", ["users/bob/inbox", "users/+/inbox"])
async def test_the_inbox_of_another_user_is_forbidden(ann: WebSocketSession, topic: str) -> None:
    answer = await ann.subscribe(topic)
    assert answer["type"] == "error" and answer["code"] == "forbidden" and answer["id"] == 1


async def test_a_forbidden_subscription_receives_nothing(
    ann: WebSocketSession, bob: WebSocketSession
) -> None:
    await ann.subscribe("users/bob/inbox")  # refused
    await ann.subscribe("users/ann/inbox")
    await bob.call("direct", {"to": "bob", "text": "note to self"})
    await bob.call("direct", {"to": "ann", "text": "for ann"})
    assert (await ann.receive_event())["data"]["text"] == "for ann"


# -- the page --------------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data") and value:
                self.urls.append(value)


async def test_the_page_is_served_and_self_contained() -> None:
    transport = httpx.ASGITransport(app=chat.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<title>asyncws chat</title>" in page
    parser = _Links()
    parser.feed(page)
    for url in parser.urls:  # only same-origin, relative references
        assert not re.match(r"^([a-z][a-z0-9+.-]*:)?//", url, re.I), url
    # no absolute URL anywhere (scripts, styles, imports): the page works offline
    assert not re.search(r"https?://", page), re.findall(r"https?://\S+", page)
    assert "@import" not in page
    # the page speaks to the endpoint and the topics the app declares
    assert "/ws?user=" in page
    for op in ["post", "join", "typing", "direct"]:
        assert f'call("{op}"' in page
