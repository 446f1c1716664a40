"""The messages `RedisClusterBroker`'s node links read, waiting for its listener.

One queue for every node: the readers (`asyncws.brokers.cluster_node`) append, the broker's
`listen` (or ``get_message``) takes, in arrival order. It is bounded by ``max_pending``: at
the bound ``space`` is cleared and the readers stop reading until the listener has taken half
of it (TCP backpressure, as on one Redis).

A *restored* mark in the queue says subscriptions were re-homed at that point (a node lost,
a slot moved): the listener calls ``on_restored`` when it reaches it, before any message the
new subscriptions brought, so history topics fill their gap from the right position.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from .base import BrokerMessage

__all__ = ["Inbox"]

_RESTORED = BrokerMessage("", b"")  # the mark, found by identity


class Inbox:
    """A bounded queue of broker messages (see the module docstring)."""

    def __init__(
        self, max_pending: int, *, closed: Callable[[], bool], on_restored: Callable[[], None]
    ) -> None:
        self._max_pending = max_pending
        self._closed = closed
        self._on_restored = on_restored
        self._queue: deque[BrokerMessage] = deque()
        self._waiter: asyncio.Future[None] | None = None
        #: Cleared while ``max_pending`` messages wait (the readers wait for it).
        self.space = asyncio.Event()
        self.space.set()

    def put(self, item: BrokerMessage) -> bool:
        """Queue ``item``; True when the inbox is full (the reader waits for ``space``)."""
        queue = self._queue
        queue.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if len(queue) >= self._max_pending:
            self.space.clear()
            return True
        return False

    def mark_restored(self) -> None:
        self._queue.append(_RESTORED)

    def close(self) -> None:
        """Drop what waits; wake a waiting listener (it sees the broker closed)."""
        self._queue.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.space.set()

    def _took(self) -> None:
        if not self.space.is_set() and len(self._queue) <= self._max_pending // 2:
            self.space.set()

    async def get(self, timeout: float | None) -> BrokerMessage | None:
        """The next message, waiting up to ``timeout`` seconds (None: until one comes)."""
        if not self._queue and not self._closed() and (timeout is None or timeout > 0):
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait([waiter], timeout=timeout)
            finally:
                self._waiter = None
        while self._queue:
            item = self._queue.popleft()
            self._took()
            if item is _RESTORED:
                self._on_restored()
                continue
            return item
        return None

    async def drain(self) -> AsyncIterator[BrokerMessage]:
        """Yield messages until the broker is closed."""
        queue = self._queue
        loop = asyncio.get_running_loop()
        while not self._closed():
            while queue:
                item = queue.popleft()
                if not self.space.is_set():
                    self._took()
                if item is _RESTORED:
                    self._on_restored()
                    continue
                yield item
            if self._closed():
                return
            waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
