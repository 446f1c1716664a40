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
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

# redis-py's hiredis parser (a connection's parser when hiredis is installed), what its reader
# answers while no whole reply is buffered, and hiredis' type of a RESP3 push (redis-py 8
# speaks RESP3 by default: every published message is one). Without them (redis-py or hiredis
# moved them) the listener reads through `Connection.read_response` only.
HIREDIS_PARSER: Any = None
NOT_ENOUGH_DATA: Any = object()
PUSH: Any = None
with contextlib.suppress(ImportError):
    from redis._parsers.hiredis import NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _AsyncHiredisParser as HIREDIS_PARSER
with contextlib.suppress(ImportError):
    from hiredis import PushNotification as PUSH

__all__ = [
    "HIREDIS_PARSER",
    "NOT_ENOUGH_DATA",
    "PUBLISHED",
    "PUSH",
    "REPLY_LISTS",
    "NoPong",
    "ReadWatch",
    "buffered_reply",
    "hiredis_parser",
    "is_published",
    "next_reply",
    "settle",
]

logger = logging.getLogger("asyncws.broker")

_now = time.monotonic  # the watchdog's clock; stamped once per message read
PUBLISHED = (b"message", b"pmessage")  # the kinds of reply a published message comes as
#: The types an array reply comes as: a list (RESP2, or redis-py's Python parsers) or, from
#: hiredis on RESP3, a `hiredis.PushNotification` (a list).
REPLY_LISTS = frozenset(t for t in (list, PUSH) if t is not None)


def is_published(reply: Any) -> bool:
    """Whether ``reply`` is a message published on a channel (``[b"message", channel,
    data]`` or ``[b"pmessage", glob, channel, data]``)."""
    return type(reply) in REPLY_LISTS and len(reply) > 2 and reply[0] in PUBLISHED


async def next_reply(pubsub: PubSub, timeout: float | None) -> Any:
    """The next reply on ``pubsub``, as `PubSub.get_message` returns it, except that a message
    published on a channel comes as Redis' reply itself (`is_published`), and None for a
    push redis-py consumes (a maintenance notification).

    The blocking read of the listener (``timeout`` None) reads that reply from the connection
    directly: redis-py's ``get_message`` would wrap it in a retry wrapper (the pub/sub client
    has no retries: a failure reconnects through the broker), time it for its observability
    hooks, check a health interval asyncws does not set and build a dict for it, and its
    parser would format each RESP3 push into a debug log line, together several times the CPU
    of the rest of asyncws's listener per message (docs/performance.md). With hiredis the
    reply is taken from hiredis' reader, which the socket's bytes are fed to as redis-py's own
    read feeds them. Every other reply (confirmations, unsubscribes, PONGs, other pushes) still
    goes through redis-py (`settle`), so its bookkeeping of the subscriptions is unchanged.
    Like ``get_message(timeout=None)`` in redis-py 8, the read never times out
    (``socket_timeout`` applies to commands only).
    """
    conn: Any = pubsub.connection  # None until the first subscribe
    if timeout is not None or conn is None or not conn.is_connected or conn.health_check_interval:
        return await pubsub.get_message(timeout=timeout)
    parser = hiredis_parser(conn)
    if parser is None:
        response = await conn.read_response(
            timeout=None if conn.socket_timeout is None else math.inf,
            # On any error (a dropped socket, the watchdog's interrupt) the connection is
            # closed here, as redis-py's own pub/sub read does through its reconnect: the
            # broker then drops this pub/sub, and a half-open transport must not outlive it.
            disconnect_on_error=True,
            push_request=True,
        )
    else:
        response = _take(conn, parser)
        while response is NOT_ENOUGH_DATA:
            try:
                await parser.read_from_socket()
            except OSError as exc:  # as redis-py's read: closed, then a ConnectionError
                await conn.disconnect(nowait=True)
                raise RedisConnectionError(f"Error while reading from Redis: {exc.args}") from exc
            except BaseException:  # the watchdog's interrupt, a closed socket: closed too
                await conn.disconnect(nowait=True)
                raise
            response = _take(conn, parser)
    if is_published(response):
        return response
    return await settle(pubsub, response)


def buffered_reply(pubsub: PubSub) -> Any:
    """A reply that already sits in ``pubsub``'s connection, taken without awaiting; None when
    there is none, or when only the asynchronous read (`next_reply`) may take it.

    Redis sends a burst of published messages in one TCP segment, and hiredis holds every
    reply of it once the first one was read; a read would still run its coroutines and the
    broker's read lock for each of them. Taking them here costs one C call each. Only on a
    connection in the state in which `next_reply` reads from hiredis itself; errors are raised
    as redis-py's read raises them (the connection closed first). A reply that is not a
    published message is returned too: the caller hands it to `settle`, as `next_reply` does.
    The caller must own the read: nobody holds the broker's read lock, and nothing is awaited
    between that test and this call.
    """
    conn: Any = pubsub.connection
    if conn is None or conn.health_check_interval:
        return None
    parser = hiredis_parser(conn)
    if parser is None:
        return None
    response = _take(conn, parser)
    return None if response is NOT_ENOUGH_DATA else response


def hiredis_parser(conn: Any) -> Any:
    """``conn``'s parser if it is redis-py's hiredis parser and connected (its replies can be
    taken from hiredis' reader), else None."""
    parser = conn._parser
    if HIREDIS_PARSER is None or type(parser) is not HIREDIS_PARSER or not parser._connected:
        return None
    return parser


async def settle(pubsub: PubSub, reply: Any) -> Any:
    """What redis-py makes of a ``reply`` that is not a published message, taken from hiredis
    by `next_reply` or `buffered_reply`: a RESP3 push goes to the parser's push handlers (as
    its read would send it; None when they consume it), then to ``handle_message``."""
    if PUSH is not None and type(reply) is PUSH:
        conn: Any = pubsub.connection
        reply = await conn._parser.handle_push_response(reply)
        if reply is None:
            return None
    return await pubsub.handle_message(reply)  # type: ignore[no-untyped-call]


def _take(conn: Any, parser: Any) -> Any:
    """The next whole reply in hiredis' reader (``NOT_ENOUGH_DATA`` when none), with the
    errors raised as redis-py's read raises them."""
    response = parser._reader.gets()
    if response is NOT_ENOUGH_DATA:
        return response
    if type(response) in REPLY_LISTS:
        if response and isinstance(response[0], RedisConnectionError):
            _close(conn)
            raise response[0]
        return response
    if isinstance(response, RedisConnectionError):
        _close(conn)
        raise response
    if isinstance(response, ResponseError):
        raise response
    return response


def _close(conn: Any) -> None:
    """Close ``conn`` at once, as redis-py's read does after an error (`disconnect_on_error`)
    when it cannot wait: a half-open transport must not outlive the dropped pub/sub."""
    conn._parser.on_disconnect()
    conn._close()


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

    def take(self, pubsub: PubSub) -> Any:
        """A reply already read from the socket (`buffered_reply`), or None: for a caller
        that could take the broker's read lock without waiting and awaits nothing before."""
        raw = buffered_reply(pubsub)
        if raw is not None:
            self.last_seen = _now()
        return raw

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
