"""`memory://`: an in-process broker, for one process and for tests.

``memory://`` gives each broker its own hub; brokers created from the same named URL
(``memory://shared``) in one process share a hub, so several managers can be tested together.
A subscriber's queue is bounded: a publisher waits when a subscriber falls behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from ..message import Message
from ..topics import TopicIndex, is_pattern
from .base import BrokerInterface, BrokerMessage, BrokerState, encode_payload, seed_view

__all__ = ["InMemoryBroker", "MemoryHub"]


class MemoryHub:
    """Routes published messages to the in-memory brokers subscribed to them."""

    def __init__(self) -> None:
        self.index: TopicIndex[InMemoryBroker] = TopicIndex()
        self.claims: dict[str, tuple[str, float]] = {}  # key -> (owner, expiry)

    def route(self, channel: str) -> set[InMemoryBroker]:
        return self.index.match(channel)


class InMemoryBroker(BrokerInterface):
    """A broker living in this process. ``maxsize`` bounds each subscriber's pending messages."""

    _named_hubs: ClassVar[dict[str, MemoryHub]] = {}

    def __init__(self, name: str = "", *, maxsize: int = 65536) -> None:
        if name:
            self.hub = self._named_hubs.setdefault(name, MemoryHub())
        else:
            self.hub = MemoryHub()
        self._queue: asyncio.Queue[BrokerMessage | None] = asyncio.Queue(maxsize)
        self._channels: set[str] = set()

    async def connect(self) -> None:
        if self.state is BrokerState.CLOSED:
            # Connected again after disconnect: drop what was pending (and the wake-up None).
            self._queue = asyncio.Queue(self._queue.maxsize)
        self.state = BrokerState.CONNECTED

    async def disconnect(self) -> None:
        if self.state is BrokerState.CLOSED:
            return
        self.hub.index.remove_all(self, tuple(self._channels))
        self._channels.clear()
        self.state = BrokerState.CLOSED
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)  # wake a blocked listener

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        self.hub.index.add(channel, self)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self.hub.index.remove(channel, self)

    async def publish(self, channel: str, message: Any) -> None:
        if is_pattern(channel):
            raise ValueError("cannot publish on a pattern")
        item = BrokerMessage(channel, encode_payload(message))
        for broker in self.hub.route(channel):
            await broker._queue.put(item)

    async def claim(self, key: str, owner: str, ttl: float) -> bool:
        now = time.monotonic()
        held = self.hub.claims.get(key)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self.hub.claims[key] = (owner, now + ttl)
        return True

    async def release(self, key: str, owner: str) -> None:
        held = self.hub.claims.get(key)
        if held is not None and held[0] == owner:
            del self.hub.claims[key]

    async def get_message(self, **kwargs: Any) -> BrokerMessage | Message | None:
        """The next message (see `BrokerInterface.get_message`); ``timeout`` defaults to 0."""
        timeout: float | None = kwargs.get("timeout", 0.0)
        if self.state is BrokerState.CLOSED:
            return None
        try:
            if timeout is None:
                item = await self._queue.get()
            elif timeout <= 0:
                item = self._queue.get_nowait()
            else:
                item = await asyncio.wait_for(self._queue.get(), timeout)
        except (TimeoutError, asyncio.QueueEmpty):
            return None
        return None if item is None else seed_view(item)

    async def listen(self) -> AsyncIterator[BrokerMessage]:
        queue = self._queue
        while self.state is not BrokerState.CLOSED:
            item = await queue.get()
            if item is None:
                return
            yield item
