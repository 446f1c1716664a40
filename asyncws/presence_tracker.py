"""`PresenceTracker`: this instance's members, the heartbeat that keeps them alive in the
store, the join/leave events and the answers to ``presence`` / ``presence_stats`` requests
(see `asyncws.presence` for the whole story)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .exceptions import BrokerError, InvalidTopicError
from .presence_policy import Member, PresenceError, PresencePolicy
from .presence_store import store_for
from .protocol import dumps
from .topics import is_pattern

if TYPE_CHECKING:
    from .connection import Connection
    from .manager import WebSocketManager

__all__ = ["PresenceTracker"]

logger = logging.getLogger("asyncws.presence")


class PresenceTracker:
    """This instance's members (refcounted per connection) and the heartbeat that keeps them
    alive in the store. One per app; `asyncws.app.AsyncWS` drives it.

    **When the broker cannot be reached**, connections still come and go here. A member that
    joined meanwhile is registered by the next heartbeat that reaches the broker (its ``join``
    sent then); one that left is removed by it (its ``leave`` sent then, also when a Redis
    restart lost the member: the subscribers still count it). Until that is done the heartbeat
    tries every ``retry_interval`` seconds, and at once when the broker's connection comes
    back (`BrokerInterface.on_restored`), so an outage is reconciled about as soon as it ends,
    not when ``ttl`` expires the holders.

    **Pub/sub keeps nothing**: an instance that has not resubscribed yet misses the events sent
    meanwhile. So after this instance's broker connection came back, or a heartbeat
    reconciled something, the events it sent from ``resend_after`` seconds before that on are
    sent once more ``resend_after`` seconds later (by then every instance has reconnected: the
    broker's longest reconnect delay, jittered, plus a second), those that still hold. Around
    an outage a subscriber may thus get a ``join`` of a member it knows or a ``leave`` of one
    it does not: events are to be applied as set operations.
    """

    def __init__(self, manager: WebSocketManager) -> None:
        self.manager = manager
        self.store = store_for(manager.broker, manager.broker_channel)
        # (topic, member) -> the connections holding it here
        self.local: dict[tuple[str, str], set[Connection]] = {}
        self.policies: dict[str, PresencePolicy] = {}  # topic -> its policy
        self.held: dict[Connection, set[str]] = {}  # connection -> its presence topics
        self._info: dict[tuple[str, str], str] = {}
        # joined here while the broker was unreachable (never registered by this instance)
        self._unregistered: set[tuple[str, str]] = set()
        # left here while the broker was unreachable: (info, whether it had been registered)
        self._departed: dict[tuple[str, str], tuple[str, bool]] = {}
        self.interval = 10.0
        self.retry_interval = 1.0
        self._failing = False  # the last heartbeat could not reach the broker
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None  # made by start(), on the loop it runs on
        # the events sent lately: (monotonic time, kind, topic, member, info)
        self._recent: deque[tuple[float, str, str, str, str]] = deque(maxlen=10_000)
        self._again_since: float | None = None  # send the events since then again
        self._resender: asyncio.Task[None] | None = None
        self.resend_after = 1.5 * float(getattr(manager.broker, "reconnect_max", 5.0)) + 1.0
        manager.broker.on_restored(self._restored)
        #: The app's framing (`asyncws.framing.Framing`) for the join/leave event frames.
        self.framing: Any = None
        #: The policy of a concrete topic, None when it has no presence: the app sets it
        #: from its declared topics.
        self.policy_for: Callable[[str], PresencePolicy | None] = lambda topic: None

    @property
    def instance(self) -> str:
        return self.manager.instance_id

    def start(self, ttls: Iterable[float]) -> None:
        ttl = min(ttls, default=30.0)
        self.interval = ttl / 3
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._heartbeat(self._wake), name="asyncws-presence"
            )

    async def stop(self) -> None:
        """Leave every topic this instance holds (leave events), stop the heartbeat."""
        tasks = [t for t in (self._task, self._resender) if t is not None]
        self._task = self._resender = self._wake = None
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in list(self.held):
            await self.drop(conn)
        # what is left to retry belongs to this run (the holders expire in the broker)
        self._departed.clear()
        self._unregistered.clear()
        self._recent.clear()
        self._again_since = None
        self._failing = False

    async def join(self, conn: Connection, topic: str, policy: PresencePolicy) -> None:
        member = policy.member_of(conn)
        key = (topic, member)
        topics = self.held.setdefault(conn, set())
        if topic in topics:
            return
        topics.add(topic)
        self.policies[topic] = policy
        holders = self.local.setdefault(key, set())
        holders.add(conn)
        info = dumps(policy.info_of(conn))
        self._info[key] = info
        if len(holders) > 1:
            return
        # back before the broker heard that it left: it never left for the subscribers
        departed = self._departed.pop(key, None)
        try:
            joined = await self.store.add(
                topic, self.instance, {member: info}, time.time() + policy.ttl
            )
        except BrokerError:
            logger.warning("presence: could not register %r on %r; retrying", member, topic)
            if departed is None or not departed[1]:
                self._unregistered.add(key)
            self._wake_up()  # the heartbeat registers it when the broker is back
            return
        if joined:
            await self._event("join", topic, member, info)

    async def leave(self, conn: Connection, topic: str) -> None:
        topics = self.held.get(conn)
        if topics is None or topic not in topics:
            return
        topics.discard(topic)
        if not topics:
            del self.held[conn]
        policy = self.policies[topic]
        key = (topic, policy.member_of(conn))
        holders = self.local.get(key)
        if holders is None:
            return
        holders.discard(conn)
        if holders:
            return
        del self.local[key]
        info = self._info.pop(key, "null")
        registered = key not in self._unregistered
        self._unregistered.discard(key)
        try:
            await self._remove(key, info, registered)
        except BrokerError:
            self._departed[key] = (info, registered)
            self._wake_up()  # the heartbeat removes it when the broker is back

    async def _remove(self, key: tuple[str, str], info: str, registered: bool) -> bool:
        """Drop this instance's hold of a member; ``leave`` when nobody holds it now.
        Returns whether it sent one."""
        topic, member = key
        left = await self.store.remove(topic, self.instance, member)
        if left is not None:
            await self._event("leave", topic, *left)
            return True
        if not registered or await self.store.has(topic, member):
            return False
        # This instance's hold was gone too: the broker lost its data (a Redis restart) and
        # nobody registered the member again, but the subscribers still count it.
        await self._event("leave", topic, member, info)
        if await self.store.has(topic, member):
            # another instance registered it again meanwhile, and its join may have gone out
            # before this leave: the last event must say it is there
            await self._event("join", topic, member, info)
        return True

    async def subscribed(self, conn: Connection, pattern: str) -> None:
        """``conn`` subscribed to ``pattern``, whichever way (a subscribe frame in asyncws's
        framing or the seed's, server code): it joins when that is a concrete topic with
        presence."""
        if is_pattern(pattern):
            return
        policy = self.policy_for(pattern)
        if policy is not None:
            await self.join(conn, pattern, policy)

    async def request(self, kind: str, topic: str, policy: PresencePolicy | None = None) -> str:
        """The data (JSON) answering a ``presence`` or ``presence_stats`` request for
        ``topic``; raises `InvalidTopicError` for a pattern, `PresenceError` for a topic
        without presence, `BrokerError` when the broker cannot answer. Authorization is the
        caller's."""
        if is_pattern(topic):
            raise InvalidTopicError("presence needs a concrete topic, not a pattern")
        policy = policy or self.policy_for(topic)
        if policy is None:
            raise PresenceError("this topic has no presence")
        if kind == "presence_stats":
            return dumps({"count": await self.count(topic)})
        members, count = await self.members(topic, policy.max_members)
        found = [
            m.as_dict() for m in {m.member: m for m in members}.values()
        ]  # (a scan may repeat)
        # The count and the members are two reads: a member may come or go in between. A
        # scan that stopped short of the cap saw them all, so its length is the count.
        count = len(found) if len(found) < policy.max_members else max(count, len(found))
        return dumps({"members": found, "count": count, "truncated": count > len(found)})

    async def drop(self, conn: Connection) -> None:
        """Leave every presence topic of ``conn`` (it disconnected)."""
        for topic in list(self.held.get(conn, ())):
            await self.leave(conn, topic)

    async def _event(
        self, kind: str, topic: str, member: str, info: str, *, record: bool = True
    ) -> None:
        policy = self.policies.get(topic)
        if policy is not None and not policy.events:
            return
        if record:
            self._recent.append((time.monotonic(), kind, topic, member, info))
        data = '{"member":' + dumps(member) + ',"info":' + info + "}"
        try:
            await self.manager.publish(topic, text=self._frame(kind, topic, data))
        except BrokerError:
            logger.warning("presence: the %s event of %r on %r was lost", kind, member, topic)

    def _frame(self, kind: str, topic: str, data: str) -> str:
        framing = self.framing
        if framing is None:
            from .protocol import event_frame

            return event_frame(kind, topic, data)
        text: str = framing.event(kind, topic, data)
        return text

    async def refresh(self) -> None:
        """One heartbeat: re-register this instance's members (sending the joins that the
        broker missed or lost), remove those that left while it was unreachable, then sweep
        expired holders of every instance. Raises `BrokerError` when the broker is down."""
        by_topic: dict[str, dict[str, str]] = {}
        for (topic, member), info in list(self._info.items()):
            by_topic.setdefault(topic, {})[member] = info
        now = time.time()
        reconciled = False
        for topic, members in by_topic.items():
            policy = self.policies[topic]
            joined = await self.store.add(topic, self.instance, members, now + policy.ttl)
            self._unregistered.difference_update((topic, m) for m in members)
            for member in joined:  # joined while the broker was down, or Redis lost it
                await self._event("join", topic, member, members[member])
                reconciled = True
        for key, (info, registered) in list(self._departed.items()):
            if key not in self.local:  # (one that came back here was refreshed above)
                reconciled = await self._remove(key, info, registered) or reconciled
            self._departed.pop(key, None)
        if reconciled:
            self._send_again()
        for topic, member, info in await self.store.sweep(now):
            await self._event("leave", topic, member, info)

    def _restored(self) -> None:
        """The broker's connection came back: reconcile now, and send lately sent events
        again for the instances that were not subscribed when they went out."""
        self._wake_up()
        self._send_again()

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _send_again(self) -> None:
        if self._task is None:  # not started, or stopped
            return
        since = time.monotonic() - self.resend_after
        if self._again_since is None or since < self._again_since:
            self._again_since = since
        if self._resender is None:
            self._resender = asyncio.get_running_loop().create_task(
                self._resend(), name="asyncws-presence-again"
            )

    async def _resend(self) -> None:
        """After ``resend_after`` seconds: the events sent since ``_again_since`` once more,
        those that still hold (a join of a member held here, a leave of a member gone)."""
        await asyncio.sleep(self.resend_after)
        since, self._again_since, self._resender = self._again_since or 0.0, None, None
        for sent, kind, topic, member, info in list(self._recent):
            if sent < since:
                continue
            here = (topic, member) in self.local
            if kind == "join" and not here:
                continue
            try:
                if kind == "leave" and (here or await self.store.has(topic, member)):
                    continue
            except BrokerError:
                return  # down again: its next reconnect sends them
            await self._event(kind, topic, member, info, record=False)

    async def _heartbeat(self, wake: asyncio.Event) -> None:
        while True:
            wait = self.interval
            if self._failing or self._departed or self._unregistered:
                wait = min(wait, self.retry_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), wait)
            wake.clear()
            try:
                await self.refresh()
            except BrokerError as exc:
                if not self._failing:
                    logger.warning(
                        "presence heartbeat failed (%s); retrying every %.1fs",
                        exc,
                        min(self.interval, self.retry_interval),
                    )
                self._failing = True
            except Exception:
                logger.exception("presence heartbeat failed")
            else:
                if self._failing:
                    logger.warning("presence heartbeat reached the broker again")
                self._failing = False

    async def members(self, topic: str, limit: int) -> tuple[list[Member], int]:
        return await self.store.members(topic, limit)

    async def count(self, topic: str) -> int:
        return await self.store.count(topic)
