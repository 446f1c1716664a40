"""One subscribing connection to one Redis Cluster primary, and its reader task.

`NodeLink` sends ``SSUBSCRIBE``/``SUNSUBSCRIBE`` for channels of that primary's slots and reads
what comes back, reporting to its owner (`RedisClusterBroker`, through `LinkOwner`):

- a message (``smessage``) -> ``link_message``; when that answers "full" the reader waits for
  ``owner.space`` before reading on (TCP backpressure, as the single-node broker);
- a confirmation (``ssubscribe``) -> the futures `subscribe` returned, and ``link_confirmed``;
- an ``sunsubscribe`` it did not ask for (Redis drops the channels of a slot that moved) ->
  ``link_dropped``; a ``MOVED`` answer to an ``SSUBSCRIBE`` (our slot map was stale) ->
  ``link_moved``;
- a broken connection, or the watchdog giving up (``stale``) -> ``link_lost``, once.

The connection also holds a plain ``SUBSCRIBE`` to a private keepalive channel, so it stays in
pub/sub mode when it has no shard channel left, and so a PING is answered in pub/sub form.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AskError, MovedError, RedisError, ResponseError

from .cluster_layout import Address

__all__ = ["LinkOwner", "NodeLink", "quiet_close", "watch_links"]

logger = logging.getLogger("asyncws.broker")


class LinkOwner(Protocol):
    """What a `NodeLink` reports to (the broker)."""

    space: asyncio.Event  # set while the owner can take more messages

    def link_message(self, link: NodeLink, channel: bytes, data: bytes) -> bool:
        """A message; True when the owner is full (the reader waits for ``space``)."""
        ...

    def link_confirmed(self, link: NodeLink, channel: bytes) -> None: ...

    def link_dropped(self, link: NodeLink, channel: str) -> None: ...

    def link_moved(self, link: NodeLink, slot: int) -> None: ...

    def link_lost(self, link: NodeLink, exc: BaseException) -> None: ...


class NodeLink:
    """The subscribing connection to the primary at ``addr`` (see the module docstring)."""

    def __init__(self, addr: Address, client: Redis, pubsub: PubSub, owner: LinkOwner) -> None:
        self.addr = addr
        self.name = f"{addr[0]}:{addr[1]}"
        self.client = client
        self.pubsub = pubsub
        self.owner = owner
        self.channels: set[str] = set()  # Redis channel names sent or confirmed
        self.leaving: dict[str, int] = {}  # SUNSUBSCRIBEs sent by us, not confirmed yet
        self.waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.up = True
        self.stale = False  # the watchdog gave up on it
        self.last_seen = time.monotonic()  # when a read last returned
        self.pinged_at = 0.0
        self.messages = 0

    @classmethod
    async def open(
        cls,
        addr: Address,
        owner: LinkOwner,
        *,
        keepalive: str,
        connect_timeout: float,
        command_timeout: float,
        options: dict[str, Any],
    ) -> NodeLink | None:
        """Connect and start reading; None when the node cannot be reached."""
        client = Redis(
            host=addr[0],
            port=addr[1],
            socket_connect_timeout=connect_timeout,
            socket_keepalive=True,  # the reader blocks without a timeout: no socket_timeout
            retry=Retry(NoBackoff(), retries=0),  # a broken link is the owner's to re-home
            **options,
        )
        pubsub = client.pubsub()
        try:
            async with asyncio.timeout(connect_timeout + command_timeout):
                await pubsub.subscribe(keepalive)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.debug("Redis Cluster node %s:%d unreachable (%s)", addr[0], addr[1], exc)
            await quiet_close(pubsub)
            await quiet_close(client)
            return None
        link = cls(addr, client, pubsub, owner)
        link.reader = asyncio.get_running_loop().create_task(
            link._read(), name=f"asyncws-cluster-{link.name}"
        )
        return link

    async def subscribe(self, names: list[str], timeout: float) -> list[asyncio.Future[None]]:
        """SSUBSCRIBE ``names`` (all of one slot); the futures resolve on confirmation, or
        when the link is lost."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for name in names:
            future = loop.create_future()
            self.waiters.setdefault(name.encode(), []).append(future)
            futures.append(future)
            self.channels.add(name)
        if not self.up:
            self.release_waiters()
            return futures
        try:
            async with asyncio.timeout(timeout):
                await self.pubsub.ssubscribe(*names)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("Redis Cluster SSUBSCRIBE on %s failed (%s)", self.name, exc)
            self.lost(exc)
        return futures

    async def unsubscribe(self, names: list[str], timeout: float) -> None:
        """SUNSUBSCRIBE ``names`` (all of one slot); no wait for the confirmation."""
        if not self.up:
            self.channels.difference_update(names)
            return
        for name in names:
            self.channels.discard(name)
            self.leaving[name] = self.leaving.get(name, 0) + 1
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                await self.pubsub.sunsubscribe(*names)

    async def ping(self, timeout: float) -> None:
        self.pinged_at = time.monotonic()
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                await self.pubsub.ping()

    def give_up(self) -> None:
        """The watchdog's verdict: no answer to a PING. The reader reports the loss."""
        self.stale = True
        if self.reader is not None and not self.reader.done():
            self.reader.cancel()

    def release_waiters(self, slot_of: Any = None, slot: int | None = None) -> None:
        """Resolve the pending confirmations (all, or those whose ``slot_of(name)`` is
        ``slot``): their subscribe calls return; the owner re-homes the channels."""
        for name, futures in list(self.waiters.items()):
            if slot is not None and slot_of(name) != slot:
                continue
            del self.waiters[name]
            for future in futures:
                if not future.done():
                    future.set_result(None)

    def lost(self, exc: BaseException) -> None:
        if not self.up:
            return
        self.up = False
        self.release_waiters()
        self.owner.link_lost(self, exc)

    async def close(self) -> None:
        self.up = False
        reader = self.reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            reader.cancel()
            await asyncio.wait([reader], timeout=1.0)
        self.release_waiters()
        await quiet_close(self.pubsub)
        await quiet_close(self.client)

    async def _read(self) -> None:
        pubsub, owner = self.pubsub, self.owner
        while True:
            try:
                raw = await pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                if self.stale:
                    self.lost(TimeoutError("no answer to PING"))
                    return
                raise
            except (MovedError, AskError) as exc:  # an SSUBSCRIBE sent to a former owner
                self.last_seen = time.monotonic()
                owner.link_moved(self, exc.slot_id)
                continue
            except ResponseError as exc:  # e.g. CLUSTERDOWN: keep reading, re-home later
                logger.warning("Redis Cluster node %s: %s", self.name, exc)
                continue
            except (RedisError, OSError, TimeoutError, RuntimeError) as exc:
                self.lost(exc)
                return
            self.last_seen = time.monotonic()
            if raw is None:
                continue
            kind = raw["type"]
            if kind == "smessage":
                self.messages += 1
                if owner.link_message(self, raw["channel"], raw["data"]):
                    await owner.space.wait()
            elif kind == "ssubscribe":
                channel = raw["channel"]
                for future in self.waiters.pop(channel, ()):
                    if not future.done():
                        future.set_result(None)
                owner.link_confirmed(self, channel)
            elif kind == "sunsubscribe":
                name = raw["channel"].decode()
                left = self.leaving.get(name)
                if left:  # the answer to one of ours (even if subscribed again since)
                    if left == 1:
                        del self.leaving[name]
                    else:
                        self.leaving[name] = left - 1
                elif name in self.channels:  # Redis dropped it: its slot moved
                    self.channels.discard(name)
                    owner.link_dropped(self, name)


async def watch_links(
    links: Callable[[], Iterable[NodeLink]],
    interval: float,
    timeout: float,
    closed: Callable[[], bool],
) -> None:
    """The watchdog: PING the links idle for ``interval``; give up on one still silent
    ``interval`` after its PING (its reader reports the loss)."""
    while not closed():
        await asyncio.sleep(interval if interval < 1.0 else interval / 4)
        now = time.monotonic()
        for link in links():
            if not link.up:
                continue
            if link.pinged_at > link.last_seen and now - link.pinged_at > interval:
                link.give_up()
            elif now - link.last_seen > interval and link.pinged_at <= link.last_seen:
                await link.ping(timeout)


async def quiet_close(client: Any, within: float = 1.0) -> None:
    """Close a Redis client or pub/sub without raising: it may already be broken."""
    if client is None:
        return
    with contextlib.suppress(RedisError, OSError, TimeoutError, RuntimeError):
        await asyncio.wait_for(client.aclose(), within)
