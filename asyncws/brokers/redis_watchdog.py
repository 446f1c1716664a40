"""The blocking read of `RedisBroker`'s pub/sub connection, and the watchdog that cuts it.

The listener reads without a timeout, so an idle instance costs nothing and no timer is armed
per message (a read only stamps ``last_seen``). The watchdog wakes about once per
``interval``: nothing read for ``interval``, it PINGs; still nothing read ``interval`` after
the PING while a read is blocked, it interrupts that read, which raises `NoPong` so the
listener's reconnect path runs. `disconnect` interrupts a read too (`ReadWatch.interrupt`),
which then returns None instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.client import PubSub

__all__ = ["NoPong", "ReadWatch", "next_reply"]

logger = logging.getLogger("asyncws.broker")

_now = time.monotonic  # the watchdog's clock; stamped once per message read
_PUBLISHED = (b"message", b"pmessage")


async def next_reply(pubsub: PubSub, timeout: float | None) -> Any:
    """The next reply on ``pubsub``, as `PubSub.get_message` returns it, except that a message
    published on a channel comes as Redis' reply itself: a list ``[b"message", channel, data]``
    or ``[b"pmessage", glob, channel, data]``.

    The blocking read of the listener (``timeout`` None) reads that reply from the connection
    directly: redis-py's ``get_message`` would wrap it in a retry wrapper (the pub/sub client
    has no retries: a failure reconnects through the broker), time it for its observability
    hooks, check a health interval asyncws does not set and build a dict for it, about as much
    CPU per message as the rest of asyncws's listener (docs/performance.md). Every other reply
    (confirmations, unsubscribes, PONGs) still goes through ``handle_message``, so redis-py's
    own bookkeeping of the subscriptions is unchanged. Like ``get_message(timeout=None)`` in
    redis-py 8, the read never times out (``socket_timeout`` applies to commands only).
    """
    conn: Any = pubsub.connection  # None until the first subscribe
    if timeout is not None or conn is None or not conn.is_connected or conn.health_check_interval:
        return await pubsub.get_message(timeout=timeout)
    response = await conn.read_response(
        timeout=None if conn.socket_timeout is None else math.inf,
        # On any error (a dropped socket, the watchdog's interrupt) the connection is closed
        # here, as redis-py's own pub/sub read does through its reconnect: the broker then
        # drops this pub/sub, and a half-open transport must not outlive it.
        disconnect_on_error=True,
        push_request=True,
    )
    if type(response) is list and len(response) > 2 and response[0] in _PUBLISHED:
        return response
    return await pubsub.handle_message(response)  # type: ignore[no-untyped-call]


class NoPong(TimeoutError):
    """The watchdog's PING went unanswered: the blocked read was interrupted."""


class ReadWatch:
    """Who reads the pub/sub connection, when it last returned, and the watchdog over it.

    ``current()`` is the broker's pub/sub connection (None while reconnecting), ``ping`` sends
    a PING on it, ``closed()`` says the broker was disconnected, ``on_stale()`` is called when
    the watchdog gives up on a read.
    """

    def __init__(
        self,
        *,
        current: Callable[[], PubSub | None],
        ping: Callable[[PubSub], Awaitable[None]],
        closed: Callable[[], bool],
        on_stale: Callable[[], None],
    ) -> None:
        self._current = current
        self._ping = ping
        self._closed = closed
        self._on_stale = on_stale
        self.reader: asyncio.Task[Any] | None = None  # the task blocked in a read, if any
        self._interrupted: asyncio.Task[Any] | None = None  # by `interrupt`: read returns None
        self._stale: asyncio.Task[Any] | None = None  # by the watchdog: read raises NoPong
        self.last_seen = 0.0  # when a read last returned something (or the connection opened)

    def seen(self) -> None:
        self.last_seen = _now()

    async def read(self, pubsub: PubSub, timeout: float | None) -> Any:
        """One read of ``pubsub`` (the caller holds the broker's read lock).

        Returns None when `interrupt` cut it short (callers then see the broker closed)."""
        task = asyncio.current_task()
        self.reader = task
        try:
            raw = await next_reply(pubsub, timeout)
            if raw is not None:
                self.last_seen = _now()  # the watchdog's only per-message cost
            return raw
        except asyncio.CancelledError:
            if task is None:
                raise
            stale, interrupted = self._stale is task, self._interrupted is task
            if not (stale or interrupted):
                raise
            if stale:
                self._stale = None
                task.uncancel()
            if interrupted:
                self._interrupted = None
                task.uncancel()
            if task.cancelling():  # somebody else cancelled it as well
                raise
            if interrupted:
                return None
            raise NoPong("Redis did not answer a PING") from None
        finally:
            self.reader = None

    async def interrupt(self, read_lock: asyncio.Lock) -> None:
        """Cut a blocked read short (it returns None) and wait, bounded, until it let go of
        ``read_lock``: a connection closed under a reader would be reopened by redis-py."""
        reader = self.reader
        if reader is None or reader is asyncio.current_task() or reader.done():
            return
        self._interrupted = reader
        reader.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0), read_lock:
                pass
        self._interrupted = None

    async def watch(self, interval: float) -> None:
        """The health check, off the read path (one wake-up per ``interval``). While nobody
        reads (the consumer is busy), an answer may be waiting unread: no verdict until a
        read blocks."""
        recheck = min(interval, 0.25)
        pinged: PubSub | None = None  # the connection an unanswered PING went out on
        ping_at = 0.0
        while not self._closed():
            pubsub = self._current()
            now = _now()
            if pubsub is None:  # reconnecting: the listener deals with it
                pinged = None
                wake = now + interval
            elif pinged is pubsub and self.last_seen <= ping_at:  # PING not answered yet
                reader = self.reader
                if now < ping_at + interval:
                    wake = ping_at + interval
                elif reader is None or reader.done() or reader is self._stale:
                    wake = now + recheck
                else:
                    logger.warning("Redis did not answer a PING; reconnecting")
                    self._on_stale()
                    self._stale = reader
                    reader.cancel()
                    wake = now + recheck  # the next reader too, should this one not drop it
            elif now < self.last_seen + interval:
                pinged = None
                wake = self.last_seen + interval
            else:
                pinged, ping_at = pubsub, now
                await self._ping(pubsub)
                wake = ping_at + interval
            await asyncio.sleep(max(wake - _now(), 0.0))
