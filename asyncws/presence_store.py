"""Where presence members live: the `PresenceStore` interface, `MemoryPresenceStore` (one
process, shared by the brokers of one named hub) and `RedisPresenceStore` (three keys per
topic, one Lua script per change), and `store_for`, which picks the store of a broker (the
cluster broker brings its own, `asyncws.brokers.cluster_presence`). The key layout and what
the scripts promise are in `asyncws.presence`."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .exceptions import BrokerError
from .presence_policy import Member

if TYPE_CHECKING:
    from .brokers.base import BrokerInterface

__all__ = ["MemoryPresenceStore", "PresenceStore", "RedisPresenceStore", "store_for"]


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
