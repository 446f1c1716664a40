"""The seed dialect: fastapi-distributed-websocket's client frames and local sends.

`WebSocketManager.receive`, ``send``, ``broadcast``, ``send_by_conn_id`` and ``send_msg``
are these functions (the manager is the facade). Client frames are JSON objects with a
``type`` of `asyncws.message.CLIENT_TYPES`: ``subscribe``/``unsubscribe`` change the
connection's subscriptions; ``send`` goes to the topic's subscribers, ``broadcast`` to
everyone, ``send_by_conn_id`` to the named connection(s), each on every instance and within
the connection's publish budget (`asyncws.limits.FanoutBudget`). Recipients get the frame's
``data`` (the other fields). The local sends reach this instance's connections only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any

from .codes import ErrorCode
from .connection import Connection, ConnectionState
from .error_policy import Where, apply, decide
from .exceptions import ProtocolError, UnknownTypeError
from .message import CLIENT_TYPES, NOT_SEED_PRESENCE, Message
from .protocol import ack_frame, dumps, error_frame_for, frame_id
from .topics import validate_pattern, validate_topic

if TYPE_CHECKING:
    from .manager import WebSocketManager

__all__ = ["DONE", "broadcast", "receive", "send", "send_by_conn_id", "send_msg"]


class _Done:
    """An awaitable that is already complete (awaiting it is optional)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


#: What the seed's local sends return: its README awaits them (``await manager.broadcast(m)``),
#: its code does not; both work.
DONE = _Done()


def check_message(message: object, method: str) -> Message:
    """TypeError at the call, naming the expected type, rather than an AttributeError later."""
    if not isinstance(message, Message):
        expected = "a Message or a dict" if method == "broadcast" else "a Message"
        raise TypeError(
            f"WebSocketManager.{method}() expects {expected}, got {type(message).__name__}"
        )
    return message


# -- local sends (this instance only) ---------------------------------------------------------


def send(manager: WebSocketManager, message: Message) -> Awaitable[None]:
    check_message(message, "send")
    if message.topic is not None:
        manager._deliver(manager.index.match(message.topic), dumps(message.data))
    return DONE


def broadcast(manager: WebSocketManager, message: Message | dict[str, Any]) -> Awaitable[None]:
    data = message if isinstance(message, dict) else check_message(message, "broadcast").data
    manager._deliver(tuple(manager.connections.values()), dumps(data))
    return DONE


def send_by_conn_id(manager: WebSocketManager, message: Message) -> Awaitable[None]:
    check_message(message, "send_by_conn_id")
    ids = message.conn_id if isinstance(message.conn_id, list) else [message.conn_id]
    targets = [c for i in ids if isinstance(i, str) and (c := manager.connections.get(i))]
    manager._deliver(targets, dumps(message.data))
    return DONE


def send_msg(manager: WebSocketManager, message: Message) -> Awaitable[None]:
    check_message(message, "send_msg")
    if message.type == "broadcast":
        return broadcast(manager, message)
    if message.type == "send_by_conn_id":
        return send_by_conn_id(manager, message)
    return send(manager, message)


# -- client frames (every instance) -----------------------------------------------------------


async def receive(manager: WebSocketManager, connection: Connection, message: Any) -> None:
    """Handle one client frame; bad frames get an error frame and the connection stays open."""
    if connection.state is ConnectionState.CLOSING or connection.state is ConnectionState.CLOSED:
        return  # closed by the server (abuse, slow consumer, shutdown): nothing it sends counts
    raw = message.__serialize__() if isinstance(message, Message) else message
    try:
        await handle(manager, connection, raw)
    except Exception as exc:  # answered as the error policy says (a bug: internal_error)
        await apply(
            connection, decide(exc, Where.FRAME, "a seed frame"), error_frame_for, frame_id(raw)
        )
        return
    connection.good_frame()


async def handle(manager: WebSocketManager, connection: Connection, raw: Any) -> None:
    """Act on one decoded client frame; raises the `AsyncWSError` its error frame answers."""
    counts = manager.frames_in
    if not isinstance(raw, dict):
        counts["invalid"] = counts.get("invalid", 0) + 1
        raise ProtocolError("a frame must be a JSON object")
    msg = Message.from_client_message(data=raw)
    kind = msg.type
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        counts["invalid"] = counts.get("invalid", 0) + 1
        if kind in ("presence", "presence_stats"):
            raise UnknownTypeError(NOT_SEED_PRESENCE)
        raise UnknownTypeError(f"unknown message type {str(kind)[:40]!r}")
    counts[kind] = counts.get(kind, 0) + 1
    if kind in ("subscribe", "unsubscribe"):
        if not isinstance(msg.topic, str):
            raise ProtocolError("'topic' must be a string", code=ErrorCode.INVALID_TOPIC)
        if kind == "subscribe":
            await manager.subscribe(connection, msg.topic)
        else:
            await manager.unsubscribe(connection, validate_pattern(msg.topic, manager.topic_limits))
        if frame_id(raw) is not None:
            connection.send_text_nowait(ack_frame(frame_id(raw)))
        return
    if kind == "connect":
        return
    try:
        text = dumps(msg.data)
    except ValueError:  # e.g. nested deeper than the encoder goes: it cannot be forwarded
        raise ProtocolError(
            "the frame cannot be forwarded as JSON", code=ErrorCode.INVALID_JSON
        ) from None
    if kind == "send":
        if not isinstance(msg.topic, str):
            raise ProtocolError("'send' needs a 'topic'", code=ErrorCode.INVALID_TOPIC)
        validate_topic(msg.topic, manager.topic_limits)  # invalid_topic before the budget
        manager.charge(connection, 1, text)
        await manager.publish(msg.topic, text=text)
    elif kind == "broadcast":
        manager.charge(connection, 1, text)
        await manager.publish_broadcast(text=text)
    else:  # send_by_conn_id: one broker message per distinct id, within the limits
        ids = msg.conn_id if isinstance(msg.conn_id, list) else [msg.conn_id]
        if not ids or not all(isinstance(i, str) for i in ids) or len(ids) > 1000:
            raise ProtocolError("'conn_id' must be a string or a list of strings")
        unique: list[str] = list(dict.fromkeys(ids))  # type: ignore[arg-type]
        manager.charge(connection, len(unique), text, count_recipients=True)
        for conn_id in unique:
            await manager.publish_to_connection(conn_id, text=text)
