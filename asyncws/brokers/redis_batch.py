"""Publish batching for `RedisBroker`: many publishes, one pipelined round trip.

The first publish of a batch leads it: it waits until the loop has run the callbacks that
were ready with it (``flush_delay=0``, the default; or ``flush_delay`` seconds; or not at all
with None) and until the batch before has been written, collecting every publish issued
meanwhile (e.g. the frames many connections sent in one tick, or all that arrive while a
batch is in flight), then writes them all in one pipelined round trip. So a publish waits at
most ``flush_delay`` (or one loop tick) plus the round trip of the batch in flight before it
is written, and the publishes of one batcher reach Redis in the order they were made. A failed
batch fails each of its publishes with its own `BrokerError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..exceptions import BrokerError

__all__ = ["PublishBatcher"]

#: A publish in a batch: channel, message, the future its publisher awaits (None for the
#: batch's leader, which writes the batch itself).
_Publish = tuple[str, Any, "asyncio.Future[None] | None"]


class PublishBatcher:
    """Batches the publishes made on ``client()`` (the broker's current command client)."""

    def __init__(self, client: Callable[[], Redis | None], flush_delay: float | None) -> None:
        self._client = client
        #: How long the first publish of a batch waits for more: 0 until the loop ran the
        #: callbacks ready with it, None not at all.
        self.flush_delay = flush_delay
        self._collecting: list[_Publish] | None = None  # the batch whose leader waits
        self._write_lock = asyncio.Lock()  # one batch in flight at a time, in order
        self._writers: set[asyncio.Task[None]] = set()
        #: Pipelined writes that carried publishes (a batch may hold one or many).
        self.batches = 0
        #: Publishes that failed.
        self.errors = 0

    async def publish(self, channel: str, message: bytes) -> None:
        """Publish; returns once Redis took it. Raises `BrokerError` if it did not."""
        batch = self._collecting
        if batch is not None:  # join the batch being collected; its leader writes it
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            batch.append((channel, message, future))
            await future
            return
        batch = self._collecting = [(channel, message, None)]
        try:
            if self.flush_delay is not None:
                await asyncio.sleep(self.flush_delay)  # 0: one loop tick
            await self._write_lock.acquire()  # the batch before is written first
        except BaseException:
            if self._collecting is batch:
                self._collecting = None
            if len(batch) > 1:  # cancelled: whoever joined is still written
                self._spawn_write(batch[1:])
            raise
        if self._collecting is batch:
            self._collecting = None
        try:
            await self._write(batch)
        finally:
            self._write_lock.release()

    async def _write(self, batch: list[_Publish]) -> None:
        """One pipelined write of ``batch``: resolve its futures; raise the leader's error
        (the item without a future)."""
        self.batches += 1
        redis = self._client()
        failure: BaseException | None = None
        results: list[Any] = []
        if redis is None:
            failure = BrokerError("the broker is not connected")
        else:
            try:
                if len(batch) == 1:
                    channel, message, _ = batch[0]
                    results = [await redis.publish(channel, message)]
                else:
                    pipe = redis.pipeline(transaction=False)
                    for channel, message, _ in batch:
                        pipe.publish(channel, message)
                    results = await pipe.execute(raise_on_error=False)
            except (RedisError, OSError, TimeoutError) as exc:
                failure = exc
            except BaseException as exc:  # cancelled: nobody else waits in vain
                self._fail(batch, exc)
                raise
        if failure is not None:
            self._fail(batch, failure)
            results = [failure] * len(batch)
        own: BaseException | None = None
        for (_, _, future), result in zip(batch, results, strict=True):
            if future is None:
                if isinstance(result, Exception):
                    self.errors += 1
                    own = result
            elif isinstance(result, Exception):
                if failure is None:
                    self._fail([(_, _, future)], result)
            elif not future.done():
                future.set_result(None)
        if own is not None:
            if isinstance(own, BrokerError):
                raise own
            raise BrokerError("the broker is unavailable; the message was not published") from own

    def _fail(self, batch: list[_Publish], cause: BaseException) -> None:
        """Fail every publish of ``batch`` that still waits, each with its own BrokerError
        (the leader, without a future, is answered by `_write` itself)."""
        for _, _, future in batch:
            if future is None or future.done():
                continue
            self.errors += 1
            error = BrokerError("the broker is unavailable; the message was not published")
            error.__cause__ = cause
            future.set_exception(error)

    def _spawn_write(self, batch: list[_Publish]) -> None:
        """Write a batch whose leader was cancelled before writing it (its followers wait)."""

        async def write() -> None:
            async with self._write_lock:
                with contextlib.suppress(BrokerError):
                    await self._write(batch)

        task = asyncio.get_running_loop().create_task(write())
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)
