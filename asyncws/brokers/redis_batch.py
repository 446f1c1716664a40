"""Batching for the Redis brokers: many calls made in one loop tick, one round trip.

`TickBatcher` is the pattern, `PublishBatcher` its use for publishes (claims and pub/sub
subscriptions are in `asyncws.brokers.redis_claims`). The first call of a batch leads it: it
waits until the loop has run the callbacks that were ready with it (``flush_delay=0``, the
default; or ``flush_delay`` seconds; or not at all with None) and until the batch before has
been written, collecting every call made meanwhile (e.g. the frames many connections sent in
one tick, or all that arrive while a batch is in flight), up to ``max_batch`` (the next call
leads a new batch), then writes them all at once. So a call waits at most ``flush_delay`` (or
one loop tick) plus the write of the batch in flight before its own is written, and the calls
of one batcher reach Redis in the order they were made. Each caller gets its own answer; a
failed batch fails each of its calls with its own `BrokerError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from redis.asyncio import Redis

from ..exceptions import BrokerError
from .redis_lane import PublishLane

if TYPE_CHECKING:
    from .cluster_commands import ClusterCommands

__all__ = ["ClusterPublishBatcher", "PublishBatcher", "TickBatcher"]

T = TypeVar("T")  # what a call hands in
R = TypeVar("R")  # what it gets back

#: How many calls one batch holds at most (one pipelined write, or one SUBSCRIBE).
MAX_BATCH = 1000


class TickBatcher(ABC, Generic[T, R]):
    """Collects the calls made in one loop tick (see the module docstring); `write` sends
    them. Subclasses say how (`write`) and what a failed call raises (`failure`)."""

    #: Write each batch in a task of its own, so that a leader cancelled while its batch is
    #: written does not fail the calls that joined it (a task per batch; publishes, on the
    #: hot path, fail with their leader instead: a cancelled write may have been sent).
    shielded = False

    def __init__(self, flush_delay: float | None = 0.0, max_batch: int = MAX_BATCH) -> None:
        #: How long the first call of a batch waits for more: 0 until the loop ran the
        #: callbacks ready with it, None not at all.
        self.flush_delay = flush_delay
        self.max_batch = max(1, max_batch)
        # the batch whose leader waits: (item, its caller's future; None for the leader)
        self._collecting: list[tuple[T, asyncio.Future[R] | None]] | None = None
        self._write_lock = asyncio.Lock()  # one batch in flight at a time, in order
        self._writers: set[asyncio.Task[Any]] = set()
        #: Writes made (a batch may hold one call or many).
        self.batches = 0
        #: Calls that failed.
        self.errors = 0

    @abstractmethod
    async def write(self, items: list[T]) -> list[R | BaseException]:
        """Send ``items`` at once; one answer (or the exception for that call) per item.
        May raise: then every call of the batch fails."""

    @abstractmethod
    def failure(self, cause: BaseException | None) -> BrokerError:
        """The error one caller gets when its call failed (``cause``: why)."""

    async def submit(self, item: T) -> R:
        """Batch ``item`` with the calls of this tick; its own answer, or its `BrokerError`."""
        batch = self._collecting
        if batch is not None and len(batch) < self.max_batch:
            # join the batch being collected; its leader writes it
            future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            batch.append((item, future))
            return await future
        batch = self._collecting = [(item, None)]
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
        if self.shielded:
            task = self._spawn(self._write_locked(batch))
            return await asyncio.shield(task)  # the leader's
        return await self._write_locked(batch)  # type: ignore[return-value]

    async def _write_locked(self, batch: list[tuple[T, asyncio.Future[R] | None]]) -> R | None:
        """`_write`, then let the next batch go (the caller holds the write lock)."""
        try:
            return await self._write(batch)
        finally:
            self._write_lock.release()

    async def _write(self, batch: list[tuple[T, asyncio.Future[R] | None]]) -> R | None:
        """Write ``batch``: resolve its futures; return (or raise) the answer of the leader,
        the item without a future (None when there is none)."""
        self.batches += 1
        shared = False  # the whole write failed: one cause, a fresh error per caller
        try:
            results = await self.write([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError("a batch write answered the wrong number of calls")
        except Exception as exc:  # every caller gets it, as its own error
            results, shared = [exc] * len(batch), True
        except BaseException as exc:  # cancelled: nobody else waits in vain
            for _, future in batch:
                if future is not None and not future.done():
                    self.errors += 1
                    future.set_exception(self.failure(exc))
            raise
        own: BaseException | None = None
        mine: Any = None
        for (_, future), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                self.errors += 1
                own_error = not shared and isinstance(result, BrokerError)
                error = result if own_error else self.failure(result)
                if future is None:
                    own = error
                elif not future.done():
                    future.set_exception(error)
            elif future is None:
                mine = result
            elif not future.done():
                future.set_result(result)
        if own is not None:
            raise own
        return mine  # type: ignore[no-any-return]

    def _spawn_write(self, batch: list[tuple[T, asyncio.Future[R] | None]]) -> None:
        """Write a batch whose leader was cancelled before writing it (its followers wait)."""

        async def write() -> None:
            async with self._write_lock:
                with contextlib.suppress(BrokerError):
                    await self._write(batch)

        self._spawn(write())

    def _spawn(self, write: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(write)
        self._writers.add(task)
        task.add_done_callback(self._written)
        return task

    def _written(self, task: asyncio.Task[Any]) -> None:
        self._writers.discard(task)
        if not task.cancelled():
            task.exception()  # the leader's own error: it was cancelled, nobody awaits it


class PublishBatcher(TickBatcher[tuple[str, bytes], None]):
    """Batches the publishes made on ``client()`` (the broker's current command client): one
    write per batch, on a connection of its own (`redis_lane.PublishLane`; through redis-py's
    pipeline when that is off). ``timeout`` bounds each batch (the broker's command timeout)."""

    def __init__(
        self,
        client: Callable[[], Redis | None],
        flush_delay: float | None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(flush_delay)
        self._client = client
        self.lane = PublishLane(client, timeout)

    async def publish(self, channel: str, message: bytes) -> None:
        """Publish; returns once Redis took it. Raises `BrokerError` if it did not."""
        await self.submit((channel, message))

    async def write(self, items: list[tuple[str, bytes]]) -> list[BaseException | None]:
        redis = self._client()
        if redis is None:
            raise BrokerError("the broker is not connected")
        if self.lane.usable:
            results = await self.lane.publish(items)
            if results is not None:
                return results
        if len(items) == 1:
            channel, message = items[0]
            await redis.publish(channel, message)
            return [None]
        pipe = redis.pipeline(transaction=False)
        for channel, message in items:
            pipe.publish(channel, message)
        results = await pipe.execute(raise_on_error=False)
        return [r if isinstance(r, BaseException) else None for r in results]

    def failure(self, cause: BaseException | None) -> BrokerError:
        error = BrokerError("the broker is unavailable; the message was not published")
        error.__cause__ = cause
        return error


#: A publish on Redis Cluster: (partition, its script's keys, (channel, message)).
ClusterPublish = tuple[int, tuple[str, str], tuple[str, bytes]]


class ClusterPublishBatcher(TickBatcher[ClusterPublish, None]):
    """Publishes on Redis Cluster, ``script`` each (`cluster_layout.PUBLISH_SCRIPT`): one
    pipeline per primary per batch (`ClusterCommands.eval_many`), instead of a pooled
    connection per publish in flight (past 100 per node redis-py refuses more)."""

    def __init__(self, commands: ClusterCommands, script: str) -> None:
        super().__init__(0.0)
        self._commands = commands
        self._script = script

    async def write(self, items: list[ClusterPublish]) -> list[BaseException | None]:
        calls = [(part, self._script, keys, args) for part, keys, args in items]
        results = await self._commands.eval_many(calls, return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    def failure(self, cause: BaseException | None) -> BrokerError:
        error = BrokerError("the broker is unavailable; the message was not published")
        error.__cause__ = cause
        return error
