"""A connection of its own for `RedisBroker`'s publishes: PUBLISH packed here, replies read
from hiredis.

redis-py spends about 100 µs of CPU on one ``await redis.publish(...)`` (measured with redis-py
8.1 and hiredis: the pool checkout and health checks, a timeout context for the write and one
for the read, its observability hooks, five coroutines), several times what the round trip
itself costs the process (about 25 µs). For a chat-like app, where every inbound message is
one publish, that is most of what the publishing instance spends. `PublishLane` holds one
connection of the client's pool (opened, authenticated and selected by redis-py, TLS
included) and writes each batch of `redis_batch.PublishBatcher` on it as packed bytes, then
takes the replies from the connection's hiredis reader as the listener does
(`redis_watchdog.next_reply`).

What stays as with redis-py: a command timeout bounds each batch; an error reply fails its own
publish only; any other failure (the connection dropped, the timeout, a cancelled write)
closes the lane's connection and fails the batch, and the next batch takes a new connection. A
connection Redis closed while the lane was idle (a restart) is noticed before it is written
to, and a connection that drops before any answer came is tried once more on a new one, as
redis-py's retry would (so, as with redis-py, a publish Redis took just before closing the
connection could be delivered twice).
Without hiredis's parser in redis-py (hiredis not installed, or redis-py moved it) the lane is
off and publishes go through redis-py (`RedisLane.usable` False).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from . import redis_watchdog as reads

__all__ = ["PublishLane"]


class PublishLane:
    """Publishes batches on one connection of ``client()``'s pool (see the module docstring)."""

    def __init__(self, client: Callable[[], Redis | None], timeout: float | None) -> None:
        self._client = client
        self._timeout = timeout
        self._conn: Any = None  # the connection held, of `_owner`'s pool
        self._owner: Redis | None = None
        self._answered = 0  # answers read in the batch being written
        #: False once a connection of the pool turned out not to use hiredis's parser.
        self.usable = reads.HIREDIS_PARSER is not None

    async def publish(self, items: list[tuple[str, bytes]]) -> list[BaseException | None] | None:
        """PUBLISH every item in one write; per item None, or the error Redis answered. None
        when the lane turned out unusable (nothing was sent: publish through redis-py)."""
        redis = self._client()
        if redis is None:
            raise RedisConnectionError("the broker is not connected")
        packed = b"".join(
            [
                b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
                % (len(c := channel.encode()), c, len(message), message)
                for channel, message in items
            ]
        )
        if self._timeout is None:
            return await self._publish(redis, packed, len(items))
        async with asyncio.timeout(self._timeout):
            return await self._publish(redis, packed, len(items))

    async def _publish(
        self, redis: Redis, packed: bytes, count: int
    ) -> list[BaseException | None] | None:
        for attempt in (1, 2):
            conn = await self._connection(redis)
            if conn is None:
                return None
            self._answered = 0
            try:
                return await self._exchange(conn, packed, count)
            except (RedisConnectionError, OSError):
                # The connection is gone. Before any answer came, Redis most likely closed it
                # before it saw the batch (a restart, racing with the pool's own check): one
                # more try on a new connection, as redis-py's retry would make.
                await self._drop()
                if attempt == 2 or self._answered:
                    raise
            except BaseException:
                # Replies may be pending on it (a timeout, a cancelled write): never reuse it.
                await self._drop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(self, conn: Any, packed: bytes, count: int) -> list[BaseException | None]:
        parser = conn._parser
        writer = conn._writer
        writer.write(packed)
        await writer.drain()
        reader = parser._reader
        replies: list[BaseException | None] = []
        while len(replies) < count:
            reply = reader.gets()
            if reply is reads.NOT_ENOUGH_DATA:
                await parser.read_from_socket()  # ConnectionError when Redis closed it
                continue
            if reads.PUSH is not None and type(reply) is reads.PUSH:
                await parser.handle_push_response(reply)  # not an answer: redis-py's concern
                continue
            if isinstance(reply, RedisConnectionError):
                raise reply
            replies.append(reply if isinstance(reply, BaseException) else None)
            self._answered += 1
        return replies

    async def _connection(self, redis: Redis) -> Any:
        """The connection to write on: the one held, unless Redis closed it or the broker
        has a new client; else a new one from ``redis``'s pool."""
        conn = self._conn
        if conn is not None and self._owner is redis and _open(conn):
            return conn
        await self._drop()
        conn = await redis.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        if reads.hiredis_parser(conn) is None:
            await redis.connection_pool.release(conn)
            self.usable = False  # (a pool's connections all have the same parser)
            return None
        self._conn, self._owner = conn, redis
        return conn

    async def _drop(self) -> None:
        """Give the connection back, closed (its state is unknown)."""
        conn, owner = self._conn, self._owner
        self._conn = self._owner = None
        if conn is None or owner is None:
            return
        parser = conn._parser
        parser.on_disconnect()
        conn._close()
        # (closed already: a pool that was reset meanwhile no longer knows it, and says so)
        with contextlib.suppress(KeyError, ValueError, RedisError, OSError):
            await owner.connection_pool.release(conn)

    async def close(self) -> None:
        await self._drop()


def _open(conn: Any) -> bool:
    """Whether ``conn`` can be written to: connected, and Redis has not closed it while it
    was idle (its EOF, or bytes nobody asked for, are waiting in it)."""
    if not conn.is_connected:
        return False
    parser = conn._parser
    stream = parser._stream
    return bool(
        parser._connected
        and not stream.at_eof()
        and not parser._reader.has_data()
        and not stream._buffer
    )
