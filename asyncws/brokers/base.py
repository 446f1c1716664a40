"""The broker interface: how instances of one application reach each other.

A broker moves opaque byte strings between *channels*. Channel names are ``/``-separated
levels; a subscription may be a pattern using the MQTT wildcards (``+`` one level, ``#`` the
remaining levels, last only). A broker MAY over-approximate patterns (Redis maps ``+`` to its
glob ``*``); the manager filters exactly, and drops the copies a broker delivers more than once
for one publish (see `WebSocketManager`).

Delivery is at-most-once: a message published while the broker is unreachable raises
`BrokerError`; a message in flight when the connection drops may be lost.

The seed's way of using a broker directly keeps working with the built-in brokers: ``publish``
takes a dict (or a seed `Message`) and sends it as JSON, and ``get_message`` hands such a
payload back as the seed's `Message` (see `encode_payload` and `seed_view`).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ..history import HistoryRead, Position

from ..message import Message
from ..protocol import dumps

__all__ = [
    "BrokerInterface",
    "BrokerMessage",
    "BrokerState",
    "BrokerT",
    "encode_payload",
    "is_valid_broker",
    "seed_view",
]

logger = logging.getLogger("asyncws.broker")


class BrokerMessage(NamedTuple):
    """One message received from the broker: the channel it was published on, and its bytes."""

    channel: str
    data: bytes


def encode_payload(message: Any) -> bytes:
    """What ``publish`` sends: bytes as they are, str as UTF-8, and, as the seed accepted them,
    a dict or a seed `Message` as JSON (a Message with its ``type``, ``topic`` and ``conn_id``).

    Anything else is a TypeError at the call.
    """
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode()
    if isinstance(message, bytearray | memoryview):
        return bytes(message)
    if isinstance(message, Message):
        message = message.__serialize__()
    if isinstance(message, dict):
        return dumps(message).encode()
    raise TypeError(
        f"publish() takes bytes, str, a dict or a Message, not {type(message).__name__}"
    )


def seed_view(message: BrokerMessage) -> BrokerMessage | Message:
    """``message``, or the seed's `Message` when its payload is one published the seed's way.

    A payload that is a JSON object with a ``type`` field (what the seed's brokers carried, and
    what ``publish`` makes of a dict) becomes ``Message(typ, topic, conn_id, data=the other
    fields)``, as the seed's ``get_message`` returned it. The manager's own messages (with their
    ``aws1:`` header) and any other payload stay a `BrokerMessage`.
    """
    data = message.data
    if data[:1] != b"{":
        return message
    try:
        obj = json.loads(data)
    except ValueError:
        return message
    if not isinstance(obj, dict) or "type" not in obj:
        return message
    return Message.from_client_message(data=obj)


class BrokerState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class BrokerInterface(ABC):
    """A pub/sub backend. The first six methods are the seed's; keep them working.

    Implementations must be safe to call ``subscribe``/``unsubscribe``/``publish`` while another
    task is blocked in `listen` (or ``get_message``).
    """

    state: BrokerState = BrokerState.DISCONNECTED

    def is_closed(self) -> bool:
        """True once `disconnect` was called: listeners stop."""
        return self.state is BrokerState.CLOSED

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def disconnect(self) -> None: ...

    @abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Receive messages published on ``channel`` (a name, or a pattern with ``+``/``#``).

        Returns once the subscription is in effect: a message published afterwards, from any
        connection, is delivered. While the broker is unreachable it returns at once and the
        subscription is made when the connection is back.
        """

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    @abstractmethod
    async def publish(self, channel: str, message: Any) -> None:
        """Publish ``message`` (bytes or str; str is UTF-8 encoded) on ``channel``.

        Raises `asyncws.exceptions.BrokerError` when the broker cannot take it.
        """

    @abstractmethod
    async def get_message(self, **kwargs: Any) -> BrokerMessage | Message | None:
        """The next message, waiting up to ``timeout`` seconds (None: until one arrives).

        The built-in brokers return a `BrokerMessage`, or the seed's `Message` for a payload
        published the seed's way (see `seed_view`); a broker of yours returns `BrokerMessage`.
        """

    async def claim(self, key: str, owner: str, ttl: float) -> bool:
        """Reserve ``key`` for ``owner`` for ``ttl`` seconds on every instance; renew it when
        ``owner`` holds it already. False when another owner holds it.

        The manager claims client-requested connection ids with it, so a client cannot take
        over the id of a connection on another instance. The default (a broker with no
        shared storage) grants every claim.
        """
        return True

    async def release(self, key: str, owner: str) -> None:  # noqa: B027 - optional hook
        """Give up ``key`` if ``owner`` holds it."""

    async def publish_history(
        self,
        channel: str,
        key: str,
        message: bytes,
        *,
        size: int,
        ttl: float,
        idempotency_key: str | None = None,
    ) -> Position:
        """Append ``message`` to the history stream ``key`` and publish it on ``channel``,
        as one atomic step; returns the position given to it (`asyncws.history`). A sharded
        broker keeps the stream where ``channel`` lives (`read_history` names it too).

        The live message is ``awh:{offset}:{epoch}\\n`` followed by ``message``. The stream
        keeps its last ``size`` entries and lives ``ttl`` seconds after the last append;
        its epoch (created when missing) changes whenever the history was lost. With an
        ``idempotency_key`` already used on this stream (within ``ttl``), nothing is
        appended nor published and the first position is returned.
        Raises `BrokerError` (also for a broker that keeps no history: the default).
        """
        from ..exceptions import BrokerError

        raise BrokerError(f"{type(self).__name__} keeps no topic history")

    async def read_history(
        self, channel: str, key: str, *, since: int | None, limit: int
    ) -> HistoryRead:
        """The position of the stream ``key`` whose events are published on ``channel`` (its
        epoch created when missing) and its entries after offset ``since``, at most
        ``limit``, oldest first; ``since=None``: the last ``limit`` entries.
        Raises `BrokerError`."""
        from ..exceptions import BrokerError

        raise BrokerError(f"{type(self).__name__} keeps no topic history")

    def on_restored(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the broker got its connection back after losing it
        (a broker that cannot lose it never calls it)."""
        self._restored_callbacks = [*getattr(self, "_restored_callbacks", ()), callback]

    def _notify_restored(self) -> None:
        for callback in getattr(self, "_restored_callbacks", ()):
            callback()

    async def listen(self) -> AsyncIterator[BrokerMessage]:
        """Yield messages until the broker is disconnected. Never busy-waits.

        The default implementation loops over ``get_message(timeout=None)``; backends override it
        to batch reads or to reconnect.
        """
        while not self.is_closed():
            message = await self.get_message(timeout=None)
            if isinstance(message, BrokerMessage):
                yield message
            else:
                if message is not None:  # a seed Message: no channel, nothing to route
                    logger.warning(
                        "get_message() returned a %s, not a BrokerMessage: skipped",
                        type(message).__name__,
                    )
                await asyncio.sleep(0)

    async def __aenter__(self) -> BrokerInterface:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()


#: The seed's name for the broker type.
BrokerT = BrokerInterface


def is_valid_broker(obj: Any) -> bool:
    """The seed's check: ``obj`` has coroutine ``subscribe``, ``unsubscribe``, ``publish`` and
    ``get_message`` methods. A broker for asyncws's manager should subclass `BrokerInterface`
    (it also uses ``connect``, ``disconnect``, ``listen`` and ``is_closed``)."""
    return all(
        inspect.iscoroutinefunction(getattr(obj, name, None))
        for name in ("subscribe", "unsubscribe", "publish", "get_message")
    )
