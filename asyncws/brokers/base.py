"""The broker interface: how instances of one application reach each other.

A broker moves opaque byte strings between *channels*. Channel names are ``/``-separated
levels; a subscription may be a pattern using the MQTT wildcards (``+`` one level, ``#`` the
remaining levels, last only). A broker MAY over-approximate patterns (Redis maps ``+`` to its
glob ``*``); the manager filters exactly, and drops the copies a broker delivers more than once
for one publish (see `WebSocketManager`).

Delivery is at-most-once: a message published while the broker is unreachable raises
`BrokerError`; a message in flight when the connection drops may be lost.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ..history import HistoryRead, Position

__all__ = ["BrokerInterface", "BrokerMessage", "BrokerState"]


class BrokerMessage(NamedTuple):
    """One message received from the broker: the channel it was published on, and its bytes."""

    channel: str
    data: bytes


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
    async def get_message(self, **kwargs: Any) -> BrokerMessage | None:
        """The next message, waiting up to ``timeout`` seconds (None: until one arrives)."""

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
        as one atomic step; returns the position given to it (`asyncws.history`).

        The live message is ``awh:{offset}:{epoch}\\n`` followed by ``message``. The stream
        keeps its last ``size`` entries and lives ``ttl`` seconds after the last append;
        its epoch (created when missing) changes whenever the history was lost. With an
        ``idempotency_key`` already used on this stream (within ``ttl``), nothing is
        appended nor published and the first position is returned.
        Raises `BrokerError` (also for a broker that keeps no history: the default).
        """
        from ..exceptions import BrokerError

        raise BrokerError(f"{type(self).__name__} keeps no topic history")

    async def read_history(self, key: str, *, since: int | None, limit: int) -> HistoryRead:
        """The stream's position (its epoch created when missing) and its entries after
        offset ``since``, at most ``limit``, oldest first; ``since=None``: the last
        ``limit`` entries. Raises `BrokerError`."""
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
            if message is not None:
                yield message
            else:
                await asyncio.sleep(0)

    async def __aenter__(self) -> BrokerInterface:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()
