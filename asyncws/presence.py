"""Presence: who is on a topic, across every instance, with join and leave events.

Declared per topic: ``router.topic("rooms/{room}", Message, presence=True)`` or
``presence=PresencePolicy(...)``. A connection is a *member* of a concrete topic while it is
subscribed to exactly that topic, however it subscribed (a subscribe frame, asyncws's or the
seed's, or server code: `WebSocketManager` tells the tracker); a wildcard subscription such
as ``rooms/+`` joins nothing.
With ``track="user"`` (the default) a member is the connection's user id (its connection id
when it has none): a user with two tabs is one member, who leaves when the last tab closes,
on whichever instances the tabs are. With ``track="connection"`` every connection is a member.

Where members live
------------------
In the broker, so every instance sees the same members:

* ``memory://``: in the process (shared by the brokers of one named hub);
* ``redis://``: three keys per topic: ``asyncws:{NS/TOPIC}:ph`` (a sorted set of
  ``member\\x00instance`` holders, scored by their expiry time), ``...:pi`` (a hash member ->
  info JSON) and ``...:pr`` (a hash member -> how many instances hold it). The count is
  ``HLEN`` of the info hash (O(1)), the members an ``HSCAN`` of it (O(members)).
  ``asyncws:{NS}:ptopics`` (a sorted set) lists the topics that have members, for the sweep;
* ``redis+cluster://``: the same keys, tagged with one of the broker's partitions, and one
  topic index per partition, so every script touches one slot
  (`asyncws.brokers.cluster_presence`).

Every instance refreshes its holders every ``ttl / 3`` seconds (one script call per topic) and
sweeps every topic of expired holders. An instance that dies (``kill -9``) stops refreshing:
its members are gone within ``ttl`` plus one sweep interval (``ttl * 4 / 3``; 40 s with the
default ``ttl=30``), and a ``leave`` event is sent for each by the instance whose sweep removed
it (the removal is atomic: exactly one instance sends it). When Redis is unreachable, joins
and leaves are kept here and reconciled as soon as it answers again; when it restarts (its
data gone), every instance registers the members of its live connections again (and sends
``join`` again for them). See `PresenceTracker` and docs/presence.md.

Events and requests
-------------------
With ``events=True`` (the default) the topic's subscribers get
``{"type": "join", "topic": T, "data": {"member": M, "info": I}}`` when a member arrives and
``{"type": "leave", ...}`` when it is gone, exactly once per change. Clients ask
``{"type": "presence", "id": 1, "topic": T}`` (answered by a ``reply`` with
``{"members": [{"member", "info"}...], "count": N, "truncated": bool}``, at most
``max_members`` entries) and ``{"type": "presence_stats", "id": 2, "topic": T}`` (a ``reply``
with ``{"count": N}``). Who may subscribe to ``T`` may ask (the topic's scopes and
``authorize``); a topic without presence answers ``bad_request``, a pattern ``invalid_topic``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .codes import ErrorCode
from .exceptions import AsyncWSError, BrokerError, InvalidTopicError
from .protocol import dumps
from .topics import is_pattern

if TYPE_CHECKING:
    from .brokers.base import BrokerInterface
    from .connection import Connection
    from .manager import WebSocketManager

__all__ = [
    "Member",
    "MemoryPresenceStore",
    "PresenceError",
    "PresencePolicy",
    "PresenceStats",
    "PresenceStore",
    "PresenceTracker",
    "RedisPresenceStore",
    "check_presence_framing",
    "store_for",
]

logger = logging.getLogger("asyncws.presence")


class PresenceError(AsyncWSError):
    """A presence request the topic cannot answer (it has no presence)."""

    code = ErrorCode.BAD_REQUEST


@dataclass(frozen=True)
class PresencePolicy:
    """How a topic tracks its members.

    ``track``: ``"user"`` (the connection's user id, else its id) or ``"connection"``.
    ``info``: a callable ``(connection) -> JSON-able`` giving the info kept per member
    (default: none, ``null``). ``events``: send ``join``/``leave`` to the topic's subscribers.
    ``max_members``: the most members one ``presence`` answer holds (the count is exact).
    ``ttl``: seconds a member outlives the instance holding it when that instance dies.
    """

    track: Literal["user", "connection"] = "user"
    info: Callable[[Connection], Any] | None = None
    events: bool = True
    max_members: int = 1000
    ttl: float = 30.0

    def __post_init__(self) -> None:
        if self.track not in ("user", "connection"):
            raise ValueError("PresencePolicy.track is 'user' or 'connection'")
        if self.max_members < 1:
            raise ValueError("PresencePolicy.max_members must be at least 1")
        if self.ttl <= 0:
            raise ValueError("PresencePolicy.ttl must be positive")

    def member_of(self, conn: Connection) -> str:
        if self.track == "user" and conn.user_id is not None:
            return conn.user_id
        return conn.id

    def info_of(self, conn: Connection) -> Any:
        return None if self.info is None else self.info(conn)


def policy_of(value: bool | PresencePolicy | None) -> PresencePolicy | None:
    """The policy a topic's ``presence=`` option declares (None: no presence)."""
    if value is None or value is False:
        return None
    if value is True:
        return PresencePolicy()
    if isinstance(value, PresencePolicy):
        return value
    raise TypeError("presence= takes True, False or a PresencePolicy")


@dataclass(frozen=True)
class Member:
    """One member of a topic: its id (user or connection id) and its info."""

    member: str
    info: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"member": self.member, "info": self.info}


@dataclass(frozen=True)
class PresenceStats:
    count: int


# -- stores ------------------------------------------------------------------------------------


class PresenceStore:
    """Where members are kept. ``add`` and ``remove`` return the members that joined or left
    *everywhere* (a member held by another instance neither joins nor leaves)."""

    async def add(
        self, topic: str, instance: str, members: dict[str, str], expiry: float
    ) -> list[str]:
        """Hold ``members`` (member -> info JSON) for ``instance`` until ``expiry`` (epoch s),
        refreshing those it holds; returns those that were nobody's member before."""
        raise NotImplementedError

    async def remove(self, topic: str, instance: str, member: str) -> tuple[str, str] | None:
        """Drop ``instance``'s hold; returns (member, info JSON) when nobody holds it now."""
        raise NotImplementedError

    async def sweep(self, now: float) -> list[tuple[str, str, str]]:
        """Drop every expired hold; returns (topic, member, info JSON) of those that left."""
        raise NotImplementedError

    async def members(self, topic: str, limit: int) -> tuple[list[Member], int]:
        """Up to ``limit`` members and the exact count."""
        raise NotImplementedError

    async def count(self, topic: str) -> int:
        raise NotImplementedError

    async def has(self, topic: str, member: str) -> bool:
        """Whether ``member`` is a member of ``topic`` (held by any instance). This default
        reads the members; the stores here answer in O(1)."""
        found, _ = await self.members(topic, 2**31)
        return any(m.member == member for m in found)


@dataclass
class _TopicState:
    holders: dict[tuple[str, str], float] = field(default_factory=dict)  # (member, inst) -> exp
    info: dict[str, str] = field(default_factory=dict)
    refs: dict[str, int] = field(default_factory=dict)


class MemoryPresenceStore(PresenceStore):
    """Members in this process (``memory://``): shared by the brokers of one hub."""

    def __init__(self) -> None:
        self.topics: dict[str, _TopicState] = {}

    async def add(
        self, topic: str, instance: str, members: dict[str, str], expiry: float
    ) -> list[str]:
        state = self.topics.setdefault(topic, _TopicState())
        joined = []
        for member, info in members.items():
            key = (member, instance)
            if key not in state.holders:
                state.refs[member] = state.refs.get(member, 0) + 1
                if state.refs[member] == 1:
                    joined.append(member)
            state.holders[key] = expiry
            state.info[member] = info
        return joined

    async def remove(self, topic: str, instance: str, member: str) -> tuple[str, str] | None:
        state = self.topics.get(topic)
        if state is None or state.holders.pop((member, instance), None) is None:
            return None
        return self._unref(topic, state, member)

    def _unref(self, topic: str, state: _TopicState, member: str) -> tuple[str, str] | None:
        left = state.refs.get(member, 1) - 1
        if left > 0:
            state.refs[member] = left
            return None
        state.refs.pop(member, None)
        info = state.info.pop(member, "null")
        if not state.holders:
            self.topics.pop(topic, None)
        return member, info

    async def sweep(self, now: float) -> list[tuple[str, str, str]]:
        gone = []
        for topic, state in list(self.topics.items()):
            for key, expiry in list(state.holders.items()):
                if expiry <= now:
                    del state.holders[key]
                    left = self._unref(topic, state, key[0])
                    if left is not None:
                        gone.append((topic, *left))
        return gone

    async def members(self, topic: str, limit: int) -> tuple[list[Member], int]:
        state = self.topics.get(topic)
        if state is None:
            return [], 0
        out = [Member(m, json.loads(i)) for m, i in list(state.info.items())[:limit]]
        return out, len(state.info)

    async def count(self, topic: str) -> int:
        state = self.topics.get(topic)
        return 0 if state is None else len(state.info)

    async def has(self, topic: str, member: str) -> bool:
        state = self.topics.get(topic)
        return state is not None and member in state.info


# KEYS: holders, info, refs, topics index; ARGV: topic, instance, expiry, then member/info pairs
_ADD = """
local joined = {}
for i = 4, #ARGV, 2 do
  local m = ARGV[i]
  if redis.call('ZADD', KEYS[1], ARGV[3], m .. '\\0' .. ARGV[2]) == 1 then
    if redis.call('HINCRBY', KEYS[3], m, 1) == 1 then joined[#joined + 1] = m end
  end
  redis.call('HSET', KEYS[2], m, ARGV[i + 1])
end
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
return joined
"""

# KEYS: holders, info, refs; ARGV: instance, member -> the member's info when it left
_REMOVE = """
if redis.call('ZREM', KEYS[1], ARGV[2] .. '\\0' .. ARGV[1]) == 0 then return false end
if redis.call('HINCRBY', KEYS[3], ARGV[2], -1) > 0 then return false end
local info = redis.call('HGET', KEYS[2], ARGV[2]) or 'null'
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return info
"""

# KEYS: holders, info, refs; ARGV: now, max -> flat list member, info of those that left
_SWEEP = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local gone = {}
for _, holder in ipairs(expired) do
  redis.call('ZREM', KEYS[1], holder)
  local m = string.sub(holder, 1, string.find(holder, '\\0', 1, true) - 1)
  if redis.call('HINCRBY', KEYS[3], m, -1) <= 0 then
    gone[#gone + 1] = m
    gone[#gone + 1] = redis.call('HGET', KEYS[2], m) or 'null'
    redis.call('HDEL', KEYS[3], m)
    redis.call('HDEL', KEYS[2], m)
  end
end
return gone
"""


class RedisPresenceStore(PresenceStore):
    """Members in one Redis (see the module). ``client`` is a ``redis.asyncio`` client, or a
    callable returning it (the broker's current one). A join or a leave touches one topic's
    keys and the topic index: fine on one node (a cluster uses `ClusterPresenceStore`)."""

    sweep_batch = 1000  # expired holders removed per topic and sweep round

    def __init__(self, client: Any, namespace: str = "asyncws") -> None:
        self._client = client
        self.namespace = namespace
        self._scripts: dict[str, Any] = {}

    def client(self) -> Any:
        client = self._client() if callable(self._client) else self._client
        if client is None:
            raise BrokerError("the broker is not connected")
        return client

    def keys(self, topic: str) -> list[str]:
        """The holders, info and refs keys of ``topic``, in one hash slot."""
        tag = "{" + self.namespace + "/" + topic.replace("}", "%7D") + "}"
        return [f"asyncws:{tag}:ph", f"asyncws:{tag}:pi", f"asyncws:{tag}:pr"]

    def index_key(self) -> str:
        return "asyncws:{" + self.namespace + "}:ptopics"

    def _script(self, source: str) -> Any:
        client = self.client()
        script = self._scripts.get(source)
        if script is None or script.registered_client is not client:
            script = client.register_script(source)
            self._scripts[source] = script
        return script

    async def _run(self, source: str, keys: list[str], args: list[Any]) -> Any:
        from redis.exceptions import RedisError

        try:
            return await self._script(source)(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerError("the broker is unavailable") from exc

    async def add(
        self, topic: str, instance: str, members: dict[str, str], expiry: float
    ) -> list[str]:
        args: list[Any] = [topic, instance, repr(expiry)]
        for member, info in members.items():
            args += [member, info]
        joined = await self._run(_ADD, [*self.keys(topic), self.index_key()], args)
        return [_text(m) for m in joined]

    async def remove(self, topic: str, instance: str, member: str) -> tuple[str, str] | None:
        info = await self._run(_REMOVE, self.keys(topic), [instance, member])
        return None if info is None else (member, _text(info))

    async def sweep(self, now: float) -> list[tuple[str, str, str]]:
        from redis.exceptions import RedisError

        client = self.client()
        try:
            # topics whose last refresh is older than a whole ttl have no live holder left
            topics = [_text(t) for t in await client.zrange(self.index_key(), 0, 9999)]
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerError("the broker is unavailable") from exc
        gone: list[tuple[str, str, str]] = []
        for topic in topics:
            flat = await self._run(_SWEEP, self.keys(topic), [repr(now), self.sweep_batch])
            for i in range(0, len(flat), 2):
                gone.append((topic, _text(flat[i]), _text(flat[i + 1])))
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await client.zremrangebyscore(self.index_key(), "-inf", repr(now))
        return gone

    async def members(self, topic: str, limit: int) -> tuple[list[Member], int]:
        from redis.exceptions import RedisError

        client = self.client()
        info_key = self.keys(topic)[1]
        out: list[Member] = []
        try:
            count = int(await client.hlen(info_key))
            cursor: Any = 0
            while len(out) < limit:
                cursor, chunk = await client.hscan(info_key, cursor, count=min(limit, 1000))
                for member, info in chunk.items():
                    if len(out) < limit:
                        out.append(Member(_text(member), json.loads(info)))
                if not cursor:
                    break
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerError("the broker is unavailable") from exc
        return out, count

    async def count(self, topic: str) -> int:
        from redis.exceptions import RedisError

        try:
            return int(await self.client().hlen(self.keys(topic)[1]))
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerError("the broker is unavailable") from exc

    async def has(self, topic: str, member: str) -> bool:
        from redis.exceptions import RedisError

        try:
            return bool(await self.client().hexists(self.keys(topic)[1], member))
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerError("the broker is unavailable") from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def store_for(broker: BrokerInterface, namespace: str) -> PresenceStore:
    """The store of ``broker``: its own ``presence_store(namespace)`` when it has one (the
    cluster broker's `ClusterPresenceStore`), else by kind."""
    own = getattr(broker, "presence_store", None)
    if callable(own):
        store: PresenceStore = own(namespace)
        return store
    from .brokers.memory import InMemoryBroker
    from .brokers.redis import RedisBroker

    if isinstance(broker, RedisBroker):
        return RedisPresenceStore(lambda: broker._redis, namespace)
    if isinstance(broker, InMemoryBroker):
        hub: Any = broker.hub
        stores: dict[str, MemoryPresenceStore] = hub.__dict__.setdefault("presence_stores", {})
        return stores.setdefault(namespace, MemoryPresenceStore())
    # Members kept in one process would be wrong as soon as a second instance runs: refuse
    # at startup rather than answer half the room.
    raise TypeError(
        f"presence topics need a broker that keeps members for every instance: "
        f"{type(broker).__name__} has no presence store (memory://, redis://, "
        f"redis+sentinel:// and redis+cluster:// have one; a custom broker can define "
        f"presence_store(namespace))"
    )


def check_presence_framing(framing: Any, topics: Iterable[tuple[str, PresencePolicy]]) -> None:
    """TypeError for ``join``/``leave`` events in a framing without control frames
    (`asyncws.framing.DocumentFraming`): its events are their payloads as they are, so a join
    would look like any other event and match no message of the document. Such an app keeps
    presence with ``events=False``: members come from server code's subscriptions
    (``ws.manager.subscribe(conn, topic)``) and it reads them with ``topic.presence()``."""
    if getattr(framing, "controls", True):
        return
    for address, policy in topics:
        if policy.events:
            raise TypeError(
                f"topic {address!r}: {type(framing).__name__} has no join/leave frames (its "
                f"events are their payloads); declare presence=PresencePolicy(events=False) "
                f"and read the members with topic.presence()"
            )


# -- the tracker -------------------------------------------------------------------------------


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
