"""The seed's `Message`, subscription helpers and exception-handling decorators.

These keep code written for fastapi-distributed-websocket working after an import change.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .exceptions import InvalidSubscription, InvalidSubscriptionMessage, InvalidTopicError
from .topics import validate_pattern

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "Message",
    "ahandle",
    "handle",
    "handle_subscription_message",
    "is_subscription_message",
    "subscribe",
    "tag_client_message",
    "unsubscribe",
    "untag_broker_message",
    "validate_incoming_message",
]

E = TypeVar("E", bound=BaseException)

#: Types a seed client may send; anything else is answered with ``unknown_type``.
CLIENT_TYPES = frozenset(
    {"connect", "subscribe", "unsubscribe", "broadcast", "send", "send_by_conn_id"}
)

#: What a seed client asking ``presence``/``presence_stats`` is told (``unknown_type``): the
#: seed's protocol has no requests and no topic rules; the app's endpoint answers them, to
#: those its topics' subscribe rules let ask (docs/presence.md).
NOT_SEED_PRESENCE = (
    "presence requests are not part of the seed's protocol: ask on the app's asyncws endpoint"
)


class Message:
    """A seed message: ``type``, ``topic``, ``conn_id`` and the remaining fields as ``data``."""

    __slots__ = ("conn_id", "data", "topic", "type")

    def __init__(
        self,
        *,
        data: Any,
        typ: str | None = None,
        topic: str | None = None,
        conn_id: str | list[str] | None = None,
        type: str | None = None,
    ) -> None:
        self.type: str | None = type if type is not None else typ
        self.topic = topic
        self.conn_id = conn_id
        self.data = data

    @property
    def typ(self) -> str | None:  # the seed's attribute name
        return self.type

    @classmethod
    def from_client_message(cls, *, data: dict[str, Any]) -> Message:
        """Split a client frame into envelope fields and data (``data`` is not mutated)."""
        payload = dict(data)
        return cls(
            data=payload,
            type=payload.pop("type", None),
            topic=payload.pop("topic", None),
            conn_id=payload.pop("conn_id", None),
        )

    def __serialize__(self) -> dict[str, Any]:
        """The frame: data fields plus ``type``, ``topic`` and ``conn_id``."""
        out = dict(self.data) if isinstance(self.data, dict) else {"data": self.data}
        out["type"] = self.type
        out["topic"] = self.topic
        out["conn_id"] = self.conn_id
        return out

    def __repr__(self) -> str:
        return f"Message(type={self.type!r}, topic={self.topic!r}, conn_id={self.conn_id!r})"


#: Client types whose frame needs a ``topic``.
NEEDS_TOPIC = frozenset({"subscribe", "unsubscribe", "send"})


def tag_client_message(data: dict[str, Any]) -> dict[str, Any]:
    """The seed's helper: a frame without a ``topic`` is a broadcast. Returns a copy."""
    tagged = dict(data)
    if tagged.get("topic") is None:
        tagged["type"] = "broadcast"
    return tagged


def untag_broker_message(data: dict[str, Any] | str | bytes) -> tuple[Any, Any, Any, Any]:
    """The seed's helper: ``(type, topic, conn_id, data)`` of a message (a dict or its JSON).

    Missing envelope fields are None; ``data`` is a new dict (the input is not mutated).
    Raises ValueError for text that is not JSON or not a JSON object.
    """
    obj = json.loads(data) if isinstance(data, str | bytes) else dict(data)
    if not isinstance(obj, dict):
        raise ValueError("a broker message is not a JSON object")
    return obj.pop("type", None), obj.pop("topic", None), obj.pop("conn_id", None), obj


def validate_incoming_message(data: dict[str, Any]) -> None:
    """The seed's check of a client frame: ValueError unless its ``type`` is a client type,
    with a ``topic`` where the type needs one and a ``conn_id`` for ``send_by_conn_id``.

    `WebSocketManager.receive` and ``async for message in connection`` make the same checks
    and answer an error frame instead.
    """
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        raise ValueError(f"Invalid message type: {kind}")
    if data.get("topic") is None and kind in NEEDS_TOPIC:
        raise ValueError(f'Invalid message type "{kind}" with no topic')
    if data.get("conn_id") is None and kind == "send_by_conn_id":
        raise ValueError(f'Invalid message type "{kind}" with no conn_id')


def is_subscription_message(message: Message) -> bool:
    return message.type in ("subscribe", "unsubscribe")


def _checked_pattern(connection: Connection, message: Message) -> str:
    if not is_subscription_message(message):
        raise InvalidSubscriptionMessage(
            f"{message.type!r} is not a subscription message", connection=connection
        )
    try:
        limits = connection.manager.topic_limits if connection.manager else None
        return (
            validate_pattern(message.topic, limits) if limits else validate_pattern(message.topic)
        )
    except InvalidTopicError as exc:
        raise InvalidSubscription(exc.message, connection=connection) from None


def subscribe(connection: Connection, message: Message) -> None:
    """Subscribe ``connection`` to ``message.topic`` (an MQTT pattern).

    On a managed connection the manager's index is updated at once and the broker subscription
    follows in the background; prefer ``await manager.subscribe(connection, pattern)``.
    """
    pattern = _checked_pattern(connection, message)
    if connection.manager is not None:
        connection.manager.subscribe_nowait(connection, pattern)
    else:
        connection.topics.add(pattern)


def unsubscribe(connection: Connection, message: Message) -> None:
    """Unsubscribe ``connection`` from ``message.topic``."""
    pattern = _checked_pattern(connection, message)
    if connection.manager is not None:
        connection.manager.unsubscribe_nowait(connection, pattern)
    else:
        connection.topics.discard(pattern)


def handle_subscription_message(connection: Connection, message: Message) -> None:
    """`subscribe` or `unsubscribe`, by the message type."""
    if message.type == "subscribe":
        subscribe(connection, message)
    else:
        unsubscribe(connection, message)


def handle(
    exc: type[E], handler: Callable[[E], Any]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a sync function: an ``exc`` raised inside is passed to ``handler`` instead."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except exc as error:
                return handler(error)

        return wrapper

    return decorator


def ahandle(
    exc: type[E], handler: Callable[[E], Awaitable[Any]]
) -> Callable[[Callable[..., Any]], Callable[..., Awaitable[Any]]]:
    """Like `handle` for a coroutine ``handler``; the decorated function may be sync or async."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                result = func(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                return result
            except exc as error:
                return await handler(error)

        return wrapper

    return decorator
