"""The seed's message helpers (asyncws.message), called directly: `Message`, tagging and
untagging, the client-frame check, the subscription helpers on a connection that no manager
holds, and the exception decorators. No app, no broker; only the `ahandle` test runs a
coroutine.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.websockets import WebSocket

from asyncws.connection import Connection
from asyncws.exceptions import InvalidSubscription, InvalidSubscriptionMessage
from asyncws.message import (
    CLIENT_TYPES,
    NEEDS_TOPIC,
    Message,
    ahandle,
    handle,
    handle_subscription_message,
    is_subscription_message,
    subscribe,
    tag_client_message,
    unsubscribe,
    untag_broker_message,
    validate_incoming_message,
)


def _connection() -> Connection:
    """A connection around a websocket that was never accepted and has no manager."""

    async def receive() -> dict[str, Any]:
        raise AssertionError("not used")

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("not used")

    websocket = WebSocket({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    return Connection(websocket, "c1")


# -- Message ---------------------------------------------------------------------------------------


def test_from_client_message_splits_the_envelope_without_mutating() -> None:
    frame = {"type": "send", "topic": "rooms/a", "conn_id": "c2", "text": "hé", "n": 1}
    original = dict(frame)
    message = Message.from_client_message(data=frame)
    assert frame == original
    assert (message.type, message.topic, message.conn_id) == ("send", "rooms/a", "c2")
    assert message.data == {"text": "hé", "n": 1}
    assert message.typ == "send"  # the seed's attribute name


def test_a_frame_without_envelope_fields() -> None:
    message = Message.from_client_message(data={"x": 1})
    assert (message.type, message.topic, message.conn_id, message.data) == (
        None,
        None,
        None,
        {"x": 1},
    )


def test_message_keywords_typ_and_type() -> None:
    assert Message(data={}, typ="broadcast").type == "broadcast"
    assert Message(data={}, type="send", typ="ignored").type == "send"  # type wins
    assert Message(data={}).type is None


def test_serialize_puts_the_envelope_back() -> None:
    message = Message(data={"text": "😀"}, type="send", topic="t", conn_id=["a", "b"])
    assert message.__serialize__() == {
        "text": "😀",
        "type": "send",
        "topic": "t",
        "conn_id": ["a", "b"],
    }
    # data that is not an object is nested under "data"
    assert Message(data=[1, 2], type="x").__serialize__() == {
        "data": [1, 2],
        "type": "x",
        "topic": None,
        "conn_id": None,
    }
    # envelope fields win over data fields of the same name
    assert Message(data={"type": "fake"}, type="real").__serialize__()["type"] == "real"


def test_serialize_does_not_share_the_data() -> None:
    data = {"a": 1}
    out = Message(data=data, type="x").__serialize__()
    out["a"] = 2
    assert data == {"a": 1}


def test_repr_names_the_envelope() -> None:
    assert repr(Message(data={}, type="send", topic="t", conn_id="c")) == (
        "Message(type='send', topic='t', conn_id='c')"
    )


# -- tagging -------------------------------------------------------------------------------------


def test_a_frame_without_topic_is_tagged_broadcast() -> None:
    frame = {"type": "send", "text": "x"}
    assert tag_client_message(frame) == {"type": "broadcast", "text": "x"}
    assert frame == {"type": "send", "text": "x"}  # a copy
    assert tag_client_message({"type": "send", "topic": None})["type"] == "broadcast"
    assert tag_client_message({"type": "send", "topic": "t"}) == {"type": "send", "topic": "t"}
    assert tag_client_message({"type": "send", "topic": ""})["type"] == "send"  # "" is a topic


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "send", "topic": "t", "conn_id": "c", "x": "é"},
        '{"type":"send","topic":"t","conn_id":"c","x":"é"}',
        '{"type":"send","topic":"t","conn_id":"c","x":"é"}'.encode(),
    ],
)
def test_untag_reads_dicts_text_and_bytes(raw: Any) -> None:
    assert untag_broker_message(raw) == ("send", "t", "c", {"x": "é"})


def test_untag_fills_missing_fields_with_none_and_copies() -> None:
    raw = {"x": 1}
    assert untag_broker_message(raw) == (None, None, None, {"x": 1})
    _, _, _, data = untag_broker_message(raw)
    data["y"] = 2
    assert raw == {"x": 1}


def test_untag_of_invalid_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        untag_broker_message("{not json")
    with pytest.raises(ValueError, match="not a JSON object"):  # valid JSON, not an object
        untag_broker_message("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        untag_broker_message(b'"text"')


# -- the seed's check of a client frame ------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CLIENT_TYPES))
def test_every_client_type_passes_with_what_it_needs(kind: str) -> None:
    frame: dict[str, Any] = {"type": kind, "topic": "t", "conn_id": "c"}
    validate_incoming_message(frame)


@pytest.mark.parametrize("kind", [None, "", "ack", "SEND", "publish", 1])
def test_other_types_are_refused(kind: Any) -> None:
    with pytest.raises(ValueError, match="Invalid message type"):
        validate_incoming_message({"type": kind, "topic": "t"})


@pytest.mark.parametrize("kind", sorted(NEEDS_TOPIC))
def test_types_that_need_a_topic(kind: str) -> None:
    with pytest.raises(ValueError, match="with no topic"):
        validate_incoming_message({"type": kind})
    with pytest.raises(ValueError, match="with no topic"):
        validate_incoming_message({"type": kind, "topic": None})


def test_send_by_conn_id_needs_a_conn_id() -> None:
    with pytest.raises(ValueError, match='"send_by_conn_id" with no conn_id'):
        validate_incoming_message({"type": "send_by_conn_id", "topic": "t"})
    validate_incoming_message({"type": "send_by_conn_id", "conn_id": ["a"]})  # no topic needed
    validate_incoming_message({"type": "broadcast"})
    validate_incoming_message({"type": "connect"})


def test_is_subscription_message() -> None:
    assert is_subscription_message(Message(data={}, type="subscribe"))
    assert is_subscription_message(Message(data={}, type="unsubscribe"))
    assert not is_subscription_message(Message(data={}, type="send"))
    assert not is_subscription_message(Message(data={}, type=None))


# -- subscriptions on a connection without a manager -----------------------------------------------


def test_subscribe_and_unsubscribe_change_the_connection_topics() -> None:
    conn = _connection()
    subscribe(conn, Message(data={}, type="subscribe", topic="rooms/+"))
    subscribe(conn, Message(data={}, type="subscribe", topic="räume/😀"))
    assert set(conn.topics) == {"rooms/+", "räume/😀"}
    unsubscribe(conn, Message(data={}, type="unsubscribe", topic="rooms/+"))
    assert set(conn.topics) == {"räume/😀"}
    unsubscribe(conn, Message(data={}, type="unsubscribe", topic="never"))  # no error
    handle_subscription_message(conn, Message(data={}, type="subscribe", topic="#"))
    handle_subscription_message(conn, Message(data={}, type="unsubscribe", topic="räume/😀"))
    assert set(conn.topics) == {"#"}


@pytest.mark.parametrize(
    "topic",
    [None, "", "a/#/b", "a+", "#/a", "a\x00b", "x" * 257, "/".join("l" * 17), 5, "\ud800"],
)
def test_an_invalid_pattern_is_invalid_subscription(topic: Any) -> None:
    conn = _connection()
    with pytest.raises(InvalidSubscription) as info:
        subscribe(conn, Message(data={}, type="subscribe", topic=topic))
    assert info.value.connection is conn
    assert info.value.code == "invalid_topic"
    assert set(conn.topics) == set()


def test_the_longest_pattern_passes() -> None:
    conn = _connection()
    longest = "/".join(["x" * 15] * 16)  # 16 levels, 255 characters
    assert len(longest) == 255
    subscribe(conn, Message(data={}, type="subscribe", topic=longest))
    assert longest in conn.topics


@pytest.mark.parametrize("kind", ["send", "broadcast", None])
def test_a_frame_that_is_not_a_subscription(kind: str | None) -> None:
    conn = _connection()
    with pytest.raises(InvalidSubscriptionMessage) as info:
        subscribe(conn, Message(data={}, type=kind, topic="t"))
    assert info.value.connection is conn and info.value.code == "invalid_frame"
    with pytest.raises(InvalidSubscriptionMessage):
        unsubscribe(conn, Message(data={}, type=kind, topic="t"))


def test_handle_subscription_message_treats_anything_else_as_unsubscribe() -> None:
    conn = _connection()
    with pytest.raises(InvalidSubscriptionMessage):
        handle_subscription_message(conn, Message(data={}, type="send", topic="t"))


# -- exception decorators --------------------------------------------------------------------------


def test_handle_passes_the_exception_to_the_handler() -> None:
    caught: list[BaseException] = []

    @handle(KeyError, lambda exc: caught.append(exc) or "handled")
    def lookup(key: str) -> str:
        """Find it."""
        return {"a": "found"}[key.lower()]

    assert lookup("A") == "found"
    assert lookup("b") == "handled"
    assert isinstance(caught[0], KeyError)
    assert lookup.__name__ == "lookup" and lookup.__doc__ == "Find it."
    with pytest.raises(AttributeError):  # other exceptions go through
        lookup(None)  # type: ignore[arg-type]


async def test_ahandle_awaits_the_handler_and_takes_sync_functions() -> None:
    async def answer(exc: ValueError) -> str:
        return f"bad: {exc}"

    @ahandle(ValueError, answer)
    def parse(text: str) -> Any:
        return json.loads(text)

    @ahandle(ValueError, answer)
    async def parse_async(text: str) -> Any:
        return json.loads(text)

    assert await parse('{"a": 1}') == {"a": 1}
    assert (await parse("nope")).startswith("bad: ")
    assert (await parse_async("nope")).startswith("bad: ")
    with pytest.raises(TypeError):
        await parse(1)  # type: ignore[arg-type]
