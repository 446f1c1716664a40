"""`redis+cluster://`: Redis Cluster with sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``).

URL: ``redis+cluster://[user:password@]host:port[,host:port...]/[?partitions=128]``
(``rediss+cluster://`` for TLS). The hosts are seeds: any live one is asked for the slot map
(``CLUSTER SLOTS``); every instance of one application must use the same ``partitions``.

Where channels, claims, history streams and presence live, and how wildcard subscriptions
work, is `asyncws.brokers.cluster_layout` (128 hash-tagged partitions; per-partition feeds).
A history topic's stream shares the slot of its channel (`publish_history`, `read_history`:
one script each, `asyncws.brokers.redis_scripts`); presence is `presence_store`.

Failure and slot moves
    When a node's connection drops (a primary killed) or Redis unsubscribes us from a slot that
    moved (``sunsubscribe`` pushed after ``CLUSTER SETSLOT``), the affected channels are
    re-homed: the broker re-reads the slot map from any live node, with backoff, until a
    reachable primary serves the slot (a promoted replica), then subscribes there. Publishes
    follow ``MOVED``/``ASK`` redirections. Messages published while a slot has no reachable
    primary fail with `BrokerError` (counted in ``publish_errors``); messages in flight when a
    node dies are lost (at-most-once, as on one Redis). ``reconnects`` counts the recoveries,
    ``node_losses`` the node connections lost. A watchdog PINGs idle node connections every
    ``health_interval`` seconds and drops one that does not answer within another interval.

Modules: the slot map, the subscriptions wanted and where each one is, and what the node links
report are one state, kept here (why this file passes 600 lines); running commands (`cluster_commands`), the queue to the
listener (`cluster_inbox`), the node connections (`cluster_node`), placement (`cluster_layout`)
and presence (`cluster_presence`) are modules of their own.

Why not redis-py's ``RedisCluster.pubsub()``: its sharded reads poll the node connections in
turn with a timeout (``get_sharded_message``), so a listener either busy-waits or waits on one
node while another has messages; and it re-homes channels only when a command run through it
gets a ``MOVED``, so a subscriber that publishes nothing never learns that its slot moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ..exceptions import BrokerError
from ..history import POSITION_PREFIX, HistoryRead, Position, new_epoch
from ..topics import TopicIndex, is_pattern
from . import redis_scripts as scripts
from .base import BrokerInterface, BrokerMessage, BrokerState
from .cluster_commands import ClusterCommands
from .cluster_inbox import Inbox
from .cluster_layout import (
    FEED,
    PUBLISH_SCRIPT,
    Address,
    decode_feed,
    history_keys,
    key_slot,
    parse_cluster_url,
    partition_tags,
    slot_owners,
)
from .cluster_node import NodeLink, watch_links
from .redis_batch import ClusterPublishBatcher
from .redis_claims import (
    ClusterClaimBatcher,
    PubSubCommand,
    SubscriptionBatcher,
    claim_within,
    release_quietly,
    runs,
)

if TYPE_CHECKING:
    from .cluster_presence import ClusterPresenceStore

__all__ = ["RedisClusterBroker"]

logger = logging.getLogger("asyncws.broker")


class RedisClusterBroker(BrokerInterface):
    """Redis Cluster broker over sharded pub/sub (see the module docstring).

    `subscribe` returns once the owning primary confirmed the subscription (or at once while
    that slot has no reachable primary: the subscription is made when it has one).
    ``max_pending`` bounds the messages read from Redis but not yet taken by `listen`; past it
    the node readers stop reading (TCP backpressure), as the single-node broker does.
    """

    def __init__(
        self,
        url: str,
        *,
        partitions: int | None = None,
        health_interval: float = 15.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 2.0,
        failover_poll: float = 0.1,
        connect_timeout: float = 3.0,
        command_timeout: float = 5.0,
        max_pending: int = 65536,
        history_concurrency: int = 32,
        **redis_kwargs: Any,
    ) -> None:
        seeds, options, url_partitions = parse_cluster_url(url)
        self.url = url
        self.seeds = seeds
        self.partitions = partitions if partitions is not None else url_partitions
        self.tags = partition_tags(self.partitions)
        self.slots = tuple(key_slot(tag) for tag in self.tags)
        self._feeds = tuple(f"{{{tag}}}{FEED}" for tag in self.tags)
        self._feed_bytes = {feed.encode() for feed in self._feeds}
        self.health_interval = health_interval
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.failover_poll = failover_poll
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._options = {**options, **redis_kwargs}
        self._owners: list[Address | None] = [None] * self.partitions
        self._known: list[Address] = list(seeds)
        #: The command connections (publish, claims, history, presence), one per node.
        self.commands = ClusterCommands(
            self, self._options, connect_timeout=connect_timeout, command_timeout=command_timeout
        )
        # at most `history_concurrency` history and presence scripts in flight: each one in
        # flight holds a connection, and a storm of recoveries queues here instead
        self.script_slots = asyncio.Semaphore(history_concurrency)
        self._links: dict[Address, NodeLink] = {}
        self._opening: dict[Address, asyncio.Future[NodeLink | None]] = {}
        # What we want subscribed: Redis channel name -> partition; and where it is now.
        self._wanted: dict[str, int] = {}
        self._where: dict[str, NodeLink] = {}
        self._names: dict[bytes, str] = {}  # Redis channel (bytes) -> broker channel
        self._channels: set[str] = set()
        self._active: set[str] = set()  # exact channels confirmed on a live link
        self._patterns = TopicIndex[str]()
        self._keepalive = f"asyncws:keepalive:{uuid.uuid4().hex}"
        self._inbox = Inbox(max_pending, closed=self.is_closed, on_restored=self._notify_restored)
        self.space = self._inbox.space  # cleared while max_pending messages wait (LinkOwner)
        self._dirty = asyncio.Event()
        self._recovery: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._feeds_pending: asyncio.Future[None] | None = None
        self._subscribing: dict[str, asyncio.Future[None]] = {}
        # claims, and exact channels' (un)subscribes, of one loop tick go together
        self._claims = ClusterClaimBatcher(self.commands, self._key)
        self._publishes = ClusterPublishBatcher(self.commands, PUBLISH_SCRIPT)
        self._pubsub_commands = SubscriptionBatcher(self._send_commands)
        self._confirming: set[asyncio.Task[None]] = set()  # waits for batches' confirmations
        self._closing: set[asyncio.Task[None]] = set()  # lost links being closed
        self._started = False
        #: Recoveries after a lost node or a moved slot (subscriptions re-homed).
        self.reconnects = 0
        #: Node connections lost (a node died, was frozen, or dropped us).
        self.node_losses = 0
        #: Subscriptions Redis dropped because their slot moved.
        self.slot_moves = 0
        self.publish_errors = 0
        #: Feed messages dropped because no local pattern matched (the cost of wildcards).
        self.feed_dropped = 0

    # -- names --------------------------------------------------------------------------------

    def partition_of(self, channel: str) -> int:
        return zlib.crc32(channel.encode()) % self.partitions

    def redis_channel(self, channel: str) -> str:
        """The sharded channel name Redis sees for ``channel``."""
        return f"{{{self.tags[self.partition_of(channel)]}}}{channel}"

    def _key(self, key: str) -> tuple[int, str]:
        part = self.partition_of(key)
        return part, f"{{{self.tags[part]}}}{key}"

    # -- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._started:
            return
        self._started = True
        self.state = BrokerState.DISCONNECTED
        loop = asyncio.get_running_loop()
        if await self._refresh():
            self.state = BrokerState.CONNECTED
        else:
            logger.warning("no Redis Cluster node reachable at startup; will keep retrying")
            self.state = BrokerState.RECONNECTING
            self._dirty.set()
        self._recovery = loop.create_task(self._recover(), name="asyncws-cluster-recovery")
        watch = watch_links(
            lambda: list(self._links.values()),
            self.health_interval,
            self._command_timeout,
            self.is_closed,
        )
        self._watchdog = loop.create_task(watch, name="asyncws-cluster-watchdog")

    async def disconnect(self) -> None:
        if self.state is BrokerState.CLOSED and not self._started:
            return
        self.state = BrokerState.CLOSED
        self._started = False
        tasks = [t for t in (self._recovery, self._watchdog) if t is not None]
        self._recovery = self._watchdog = None
        for task in tasks:
            task.cancel()
        links = list(self._links.values())
        self._links.clear()
        tasks += [asyncio.ensure_future(link.close()) for link in links]
        tasks += self._closing
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        await self.commands.close()
        self._where.clear()
        self._active.clear()
        self._inbox.close()

    # -- topology -----------------------------------------------------------------------------

    async def _refresh(self) -> bool:
        """Re-read the slot map from the first live node; False when none answered."""
        candidates = list(dict.fromkeys([*self._known, *self.seeds]))
        random.shuffle(candidates)
        for addr in candidates:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    reply = await self.commands.client(addr).execute_command(  # type: ignore[no-untyped-call]
                        "CLUSTER", "SLOTS"
                    )
            except (RedisError, OSError, TimeoutError):
                continue
            self._apply_slots(reply, addr)
            return True
        return False

    def _apply_slots(self, reply: Any, via: Address) -> None:
        self._owners, known = slot_owners(reply, via, self.slots)
        self._known = list(dict.fromkeys([*known, *self.seeds]))

    def _kick(self) -> None:
        self._dirty.set()

    async def _recover(self) -> None:
        """Keep every wanted channel subscribed on the primary that owns its slot."""
        backoff = self.reconnect_min
        while not self.is_closed():
            await self._dirty.wait()
            self._dirty.clear()
            ok = await self._refresh()
            if ok:
                await self._assign()
            if ok and self._settled():
                if self.state is BrokerState.RECONNECTING:
                    self.reconnects += 1
                    logger.warning("Redis Cluster subscriptions restored")
                self.state = BrokerState.CONNECTED
                backoff = self.reconnect_min
                self._close_idle_links()
                continue
            if self.state is not BrokerState.CLOSED:
                self.state = BrokerState.RECONNECTING
            self._dirty.set()
            # A live node answered, but a slot's primary is unreachable: a failover is under
            # way, and asking again is cheap; poll often, so the promoted replica is found
            # within ``failover_poll``. Nothing answered at all: back off.
            delay = min(backoff, self.failover_poll) if ok else backoff
            await asyncio.sleep(delay * (0.5 + random.random()))
            backoff = min(backoff * 2, self.reconnect_max)

    def _settled(self) -> bool:
        for name, part in self._wanted.items():
            link = self._where.get(name)
            if link is None or not link.up or link.addr != self._owners[part]:
                return False
        return True

    async def _assign(self) -> None:
        """Subscribe what is not where it should be (one SSUBSCRIBE per slot)."""
        groups: dict[tuple[Address, int], list[str]] = {}
        for name, part in list(self._wanted.items()):
            owner = self._owners[part]
            link = self._where.get(name)
            if owner is None or (link is not None and link.up and link.addr == owner):
                continue
            if link is not None and link.up:  # the slot moved while our link lives: leave it
                self._where.pop(name, None)
                self._drop_active(name)
                await link.unsubscribe([name], self._command_timeout)
            groups.setdefault((owner, part), []).append(name)
        if groups:
            # Channels come back on a new subscription: what was published meanwhile was
            # missed. The listener tells the manager (`on_restored`: history topics fill the
            # gap) when it reaches this mark, before any message the new subscriptions bring.
            self._inbox.mark_restored()
        futures: list[asyncio.Future[None]] = []
        for (owner, _part), names in groups.items():
            link = await self._link(owner)
            if link is None:
                continue
            futures += await self._send_subscribe(link, names)
        if futures:
            await asyncio.wait(futures, timeout=self._command_timeout)

    def _close_idle_links(self) -> None:
        for addr, link in list(self._links.items()):
            if not link.channels and addr not in self._owners:
                self._links.pop(addr, None)
                self._spawn_close(link)

    # -- node links ---------------------------------------------------------------------------

    async def _link(self, addr: Address) -> NodeLink | None:
        """The live subscribing connection to ``addr``, opened if needed (None: unreachable)."""
        link = self._links.get(addr)
        if link is not None and link.up:
            return link
        pending = self._opening.get(addr)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[NodeLink | None] = asyncio.get_running_loop().create_future()
        self._opening[addr] = future
        try:
            link = await NodeLink.open(
                addr,
                self,
                keepalive=self._keepalive,
                connect_timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                options=self._options,
            )
            if link is not None and self.is_closed():
                await link.close()
                link = None
            if link is not None:
                old = self._links.get(addr)
                self._links[addr] = link
                if old is not None:
                    self._spawn_close(old)
            future.set_result(link)
            return link
        except BaseException:
            future.set_result(None)
            raise
        finally:
            self._opening.pop(addr, None)

    async def _send_subscribe(self, link: NodeLink, names: list[str]) -> list[asyncio.Future[None]]:
        for name in names:
            self._where[name] = link
        return await link.subscribe(names, self._command_timeout)

    def _spawn_close(self, link: NodeLink) -> None:
        with contextlib.suppress(RuntimeError):
            task = asyncio.get_running_loop().create_task(link.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # -- what the node links report (`LinkOwner`) ---------------------------------------------

    def link_lost(self, link: NodeLink, exc: BaseException) -> None:
        if self._links.get(link.addr) is link:
            del self._links[link.addr]
        if self.is_closed():
            return
        self.node_losses += 1
        logger.warning(
            "Redis Cluster node %s lost (%s); re-homing %d channel(s)",
            link.name,
            exc,
            len(link.channels),
        )
        for name in link.channels:
            if self._where.get(name) is link:
                del self._where[name]
                self._drop_active(name)
        self.state = BrokerState.RECONNECTING
        self._kick()
        self._spawn_close(link)

    def link_message(self, link: NodeLink, channel: bytes, data: bytes) -> bool:
        if channel in self._feed_bytes:
            item = self._from_feed(data)
            if item is None:
                return False
        else:
            name = self._names.get(channel)
            if name is None:  # unsubscribed meanwhile
                return False
            item = BrokerMessage(name, data)
        return self._inbox.put(item)

    def link_confirmed(self, link: NodeLink, channel: bytes) -> None:
        name = self._names.get(channel)
        if (
            name is not None
            and name in self._channels
            and self._where.get(channel.decode()) is link
        ):
            self._active.add(name)

    def link_dropped(self, link: NodeLink, channel: str) -> None:
        if self._where.get(channel) is link:
            del self._where[channel]
        self._drop_active(channel)
        self.slot_moves += 1
        self._kick()

    def link_moved(self, link: NodeLink, slot: int) -> None:
        """An SSUBSCRIBE on ``link`` was refused for ``slot``: re-home that slot's channels."""
        for name, part in self._wanted.items():
            if self.slots[part] == slot and self._where.get(name) is link:
                del self._where[name]
                link.channels.discard(name)
                self._drop_active(name)
        link.release_waiters(self._slot_of_name, slot)
        self._kick()

    def _slot_of_name(self, name: bytes) -> int | None:
        part = self._wanted.get(name.decode())
        return None if part is None else self.slots[part]

    def _drop_active(self, name: str) -> None:
        channel = self._names.get(name.encode())
        if channel is not None:
            self._active.discard(channel)

    def _from_feed(self, data: bytes) -> BrokerMessage | None:
        decoded = decode_feed(data)
        if decoded is None:
            return None
        channel, payload = decoded
        if channel in self._active:  # the exact copy arrives as well
            return None
        if not self._patterns.match(channel):
            self.feed_dropped += 1
            return None
        return BrokerMessage(channel, payload)

    # -- subscribe ----------------------------------------------------------------------------

    def _want(self, names: Iterable[tuple[str, int, str | None]]) -> list[str]:
        added = []
        for name, part, channel in names:
            if name not in self._wanted:
                self._wanted[name] = part
                if channel is not None:
                    self._names[name.encode()] = channel
                added.append(name)
        return added

    async def subscribe(self, channel: str) -> None:
        if is_pattern(channel):
            first = len(self._patterns) == 0
            self._patterns.add(channel, channel)
            if first:
                done = self._feeds_pending = asyncio.get_running_loop().create_future()
                try:
                    await self._subscribe_names(
                        self._want((feed, part, None) for part, feed in enumerate(self._feeds))
                    )
                finally:
                    done.set_result(None)
            elif self._feeds_pending is not None and not self._feeds_pending.done():
                # The feeds are being subscribed for another pattern: wait for the same.
                await asyncio.wait([self._feeds_pending], timeout=self._command_timeout * 2)
            return
        if channel in self._channels:
            pending = self._subscribing.get(channel)
            if pending is not None:  # in flight: return once the first one has
                await asyncio.wait([pending], timeout=self._command_timeout * 2)
            return
        self._channels.add(channel)
        done = self._subscribing[channel] = asyncio.get_running_loop().create_future()
        try:
            confirmed = await self._pubsub_commands.submit(("subscribe", channel))
            if confirmed is not None:
                await asyncio.shield(confirmed)  # shared by the batch: never cancel it
        finally:
            del self._subscribing[channel]
            done.set_result(None)

    async def _send_commands(self, items: list[PubSubCommand]) -> asyncio.Task[None] | None:
        """Send a batch of subscribes and unsubscribes of exact channels, in order: one
        SSUBSCRIBE (SUNSUBSCRIBE) per slot for each run of a kind; return the task that waits
        (bounded) for the confirmations (None: nothing to wait for)."""
        futures: list[asyncio.Future[None]] = []
        for command, channels in runs(items):
            if command == "subscribe":
                wanted = ((self.redis_channel(c), self.partition_of(c), c) for c in channels)
                futures += await self._send_names(self._want(wanted))
            else:
                await self._unsubscribe_names([self.redis_channel(c) for c in channels])
        if not futures:
            return None
        task = asyncio.get_running_loop().create_task(self._confirmed(futures))
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)
        return task

    async def _confirmed(self, futures: list[asyncio.Future[None]]) -> None:
        await asyncio.wait(futures, timeout=self._command_timeout)

    async def _subscribe_names(self, names: list[str]) -> None:
        futures = await self._send_names(names)
        if futures:
            await asyncio.wait(futures, timeout=self._command_timeout)

    async def _send_names(self, names: list[str]) -> list[asyncio.Future[None]]:
        """SSUBSCRIBE ``names`` (wanted already), one command per slot; their confirmations."""
        if not names or self.is_closed():
            return []
        by_owner: dict[tuple[Address, int], list[str]] = {}
        for name in names:
            part = self._wanted[name]
            owner = self._owners[part]
            if owner is None:
                self._kick()
                continue
            by_owner.setdefault((owner, part), []).append(name)
        futures: list[asyncio.Future[None]] = []
        for (owner, _part), group in by_owner.items():
            link = await self._link(owner)
            if link is None:
                self.state = BrokerState.RECONNECTING
                self._kick()
                continue
            futures += await self._send_subscribe(link, group)
        return futures

    async def unsubscribe(self, channel: str) -> None:
        if is_pattern(channel):
            if not self._patterns.remove(channel, channel):
                return
            if len(self._patterns) == 0:
                await self._unsubscribe_names(list(self._feeds))
            return
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        self._active.discard(channel)
        await self._pubsub_commands.submit(("unsubscribe", channel))

    async def _unsubscribe_names(self, names: list[str]) -> None:
        by_link: dict[NodeLink, list[str]] = {}
        for name in names:
            self._wanted.pop(name, None)
            link = self._where.pop(name, None)
            if link is not None:
                by_link.setdefault(link, []).append(name)
        for link, group in by_link.items():
            by_slot: dict[int, list[str]] = {}
            for name in group:
                by_slot.setdefault(key_slot(name[1 : name.index("}")]), []).append(name)
            for same_slot in by_slot.values():
                await link.unsubscribe(same_slot, self._command_timeout)
        for name in names:
            if name not in self._wanted:
                self._names.pop(name.encode(), None)

    # -- where partitions live (`SlotMap`, for `ClusterCommands`) -----------------------------

    def owner(self, part: int) -> Address | None:
        return self._owners[part]

    def redirected(self, part: int, addr: Address) -> None:
        self._owners[part] = addr
        self._kick()  # other slots may have moved too

    def kick(self) -> None:
        self._kick()

    # -- commands (publish, claims, history) --------------------------------------------------

    async def publish(self, channel: str, message: Any) -> None:
        if not self._started:
            raise BrokerError("the broker is not connected")
        data = message.encode() if isinstance(message, str) else message
        part = zlib.crc32(channel.encode()) % self.partitions
        keys = (f"{{{self.tags[part]}}}{channel}", self._feeds[part])
        try:
            await self._publishes.submit((part, keys, (channel, data)))
        except BrokerError:
            self.publish_errors += 1
            raise

    async def claim(self, key: str, owner: str, ttl: float) -> bool:
        """Claim ``key``, batched with the claims of this loop tick: one pipeline per
        primary (`redis_claims.ClusterClaimBatcher`)."""
        if not self._started:
            raise BrokerError("the broker is not connected")
        within = self._connect_timeout + 2 * self._command_timeout
        return await claim_within(self._claims, key, owner, ttl, within)

    async def release(self, key: str, owner: str) -> None:
        if not self._started:
            return
        await release_quietly(self._claims, key, owner)

    @property
    def claim_batches(self) -> int:
        """Batches of claims or releases written (one pipeline per primary each)."""
        return self._claims.batches

    @property
    def subscribe_batches(self) -> int:
        """Batches of subscribes and unsubscribes sent (one command per slot and run)."""
        return self._pubsub_commands.batches

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
        """`redis_scripts.CLUSTER_APPEND` on the primary of ``channel``'s partition: XADD,
        SPUBLISH with the offset (and the feed copy), one slot (`cluster_layout.history_keys`)."""
        part = self.partition_of(channel)
        keys = history_keys(self.tags[part], channel, key, idempotency_key)
        args = (channel, message, size, max(1, int(ttl * 1000)), new_epoch(), POSITION_PREFIX)
        try:
            reply = await self.run_script(part, scripts.CLUSTER_APPEND, keys, args)
        except BrokerError:
            self.publish_errors += 1
            raise
        return scripts.appended(reply)

    async def read_history(
        self, channel: str, key: str, *, since: int | None, limit: int
    ) -> HistoryRead:
        part = self.partition_of(channel)
        keys = history_keys(self.tags[part], channel, key, None)[:2]
        since_arg = "" if since is None else since
        args = (since_arg, max(0, limit), new_epoch(), scripts.READ_META_TTL_MS)
        return scripts.history_read(
            await self.run_script(part, scripts.CLUSTER_READ, keys, args), since
        )

    async def run_script(
        self, part: int, script: str, keys: list[str], args: tuple[Any, ...]
    ) -> Any:
        if not self._started:
            raise BrokerError("the broker is not connected")
        async with self.script_slots:
            return await self.commands.eval(part, script, keys, args)

    def presence_store(self, namespace: str) -> ClusterPresenceStore:
        """Members on the cluster, one topic index per partition (`asyncws.presence`)."""
        from .cluster_presence import ClusterPresenceStore

        return ClusterPresenceStore(self, namespace)

    # -- receive (`asyncws.brokers.cluster_inbox`) ------------------------------------------

    async def get_message(self, **kwargs: Any) -> BrokerMessage | None:
        return await self._inbox.get(kwargs.get("timeout", 0.0))

    def listen(self) -> AsyncIterator[BrokerMessage]:
        """Yield messages until `disconnect`; node failures are handled by the broker."""
        return self._inbox.drain()

    # -- state --------------------------------------------------------------------------------

    def topology(self) -> dict[str, Any]:
        """Per node and per partition state, for ``/health`` and the metrics."""
        nodes: dict[str, dict[str, Any]] = {}
        owners = self._owners
        needed = {owners[part] for name, part in self._wanted.items()}
        for addr in dict.fromkeys(a for a in owners if a is not None):
            link = self._links.get(addr)
            live = link is not None and link.up
            # "idle": nothing of ours lives on that primary, so no connection is kept to it.
            state = "connected" if live else ("down" if addr in needed else "idle")
            nodes[f"{addr[0]}:{addr[1]}"] = {
                "state": state,
                "up": state != "down",
                "partitions": sum(1 for a in owners if a == addr),
                "channels": len(link.channels) if link is not None else 0,
                "messages": link.messages if link is not None else 0,
            }
        pending = sorted({part for name, part in self._wanted.items() if name not in self._where})
        return {
            "partitions": self.partitions,
            "unserved_partitions": sum(1 for a in owners if a is None),
            "pending_partitions": pending,
            "nodes": nodes,
            "node_losses": self.node_losses,
            "slot_moves": self.slot_moves,
            "publish_errors": self.publish_errors,
        }
