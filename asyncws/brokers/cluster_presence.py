"""Presence members on a Redis Cluster (`asyncws.presence`), every script on one slot.

A topic's presence lives in one of the broker's partitions (``crc32(namespace/topic)``) and its
keys carry that partition's hash tag: ``{tag}asyncws:NS/TOPIC:ph`` (holders scored by
expiry), ``:pi`` (member -> info) and ``:pr`` (member -> instances holding it), as on one
Redis. The index of topics with members is **one sorted set per partition**,
``{tag}asyncws:NS:ptopics``, in the same slot as the topics it lists, so a join or a leave
(the same scripts as on one Redis) touches one slot.

The sweep runs one script per partition (`SWEEP_PARTITION`): it walks that partition's index
and removes every expired holder of its topics, then the topics left without a live holder,
and returns who left. Each instance's sweep is ``partitions`` script calls (128 by default),
pipelined per primary (one round trip per primary), per ``ttl / 3``, whatever the number of
topics; most of them read an empty index. One Redis does one call per topic instead (and one
for the index).
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING, Any

from ..presence import _ADD, _REMOVE, Member, PresenceStore
from .redis_scripts import text

if TYPE_CHECKING:
    from .redis_cluster import RedisClusterBroker

__all__ = ["SWEEP_PARTITION", "ClusterPresenceStore"]

# KEYS[1] the partition's topic index; ARGV: 1 now, 2 most holders removed per topic,
# 3 the key prefix of the partition's topics -> a flat list topic, member, info of those that
# left. The topics' keys are not declared: they are built from the index, and share its tag.
SWEEP_PARTITION = """
local topics = redis.call('ZRANGE', KEYS[1], 0, 9999)
local gone = {}
for _, t in ipairs(topics) do
  local base = ARGV[3] .. t
  local holders, info, refs = base .. ':ph', base .. ':pi', base .. ':pr'
  local expired = redis.call('ZRANGEBYSCORE', holders, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
  for _, holder in ipairs(expired) do
    redis.call('ZREM', holders, holder)
    local m = string.sub(holder, 1, string.find(holder, '\\0', 1, true) - 1)
    if redis.call('HINCRBY', refs, m, -1) <= 0 then
      gone[#gone + 1] = t
      gone[#gone + 1] = m
      gone[#gone + 1] = redis.call('HGET', info, m) or 'null'
      redis.call('HDEL', refs, m)
      redis.call('HDEL', info, m)
    end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return gone
"""


class ClusterPresenceStore(PresenceStore):
    """Members in the cluster of ``broker`` (see the module docstring)."""

    sweep_batch = 1000  # expired holders removed per topic and sweep round

    def __init__(self, broker: RedisClusterBroker, namespace: str) -> None:
        self._broker = broker
        self.namespace = namespace

    def partition_of(self, topic: str) -> int:
        return zlib.crc32(f"{self.namespace}/{topic}".encode()) % self._broker.partitions

    def _prefix(self, part: int) -> str:
        return f"{{{self._broker.tags[part]}}}asyncws:{self.namespace}/"

    def keys(self, topic: str) -> list[str]:
        """The holders, info and refs keys of ``topic``, in its partition's slot."""
        base = self._prefix(self.partition_of(topic)) + topic
        return [f"{base}:ph", f"{base}:pi", f"{base}:pr"]

    def index_key(self, part: int) -> str:
        """The index of the topics with members in partition ``part``."""
        return f"{{{self._broker.tags[part]}}}asyncws:{self.namespace}:ptopics"

    async def _run(self, part: int, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self._broker.run_script(part, script, keys, tuple(args))

    async def add(
        self, topic: str, instance: str, members: dict[str, str], expiry: float
    ) -> list[str]:
        part = self.partition_of(topic)
        args: list[Any] = [topic, instance, repr(expiry)]
        for member, info in members.items():
            args += [member, info]
        joined = await self._run(part, _ADD, [*self.keys(topic), self.index_key(part)], args)
        return [text(m) for m in joined]

    async def remove(self, topic: str, instance: str, member: str) -> tuple[str, str] | None:
        part = self.partition_of(topic)
        info = await self._run(part, _REMOVE, self.keys(topic), [instance, member])
        return None if info is None else (member, text(info))

    async def sweep(self, now: float) -> list[tuple[str, str, str]]:
        calls = [
            (
                p,
                SWEEP_PARTITION,
                [self.index_key(p)],
                [repr(now), self.sweep_batch, self._prefix(p)],
            )
            for p in range(self._broker.partitions)
        ]
        async with self._broker.script_slots:
            replies = await self._broker.commands.eval_many(calls)
        gone: list[tuple[str, str, str]] = []
        for flat in replies:
            for i in range(0, len(flat), 3):
                gone.append((text(flat[i]), text(flat[i + 1]), text(flat[i + 2])))
        return gone

    async def members(self, topic: str, limit: int) -> tuple[list[Member], int]:
        part = self.partition_of(topic)
        info_key = self.keys(topic)[1]
        commands = self._broker.commands
        count = int(await commands.execute(part, "HLEN", info_key))
        out: list[Member] = []
        cursor: Any = 0
        while len(out) < limit:
            reply = await commands.execute(
                part, "HSCAN", info_key, cursor, "COUNT", min(limit, 1000)
            )
            cursor, chunk = reply
            pairs = (
                chunk.items()
                if isinstance(chunk, dict)
                else zip(chunk[::2], chunk[1::2], strict=True)
            )
            for member, info in pairs:
                if len(out) < limit:
                    out.append(Member(text(member), json.loads(info)))
            if not int(cursor):
                break
        return out, count

    async def count(self, topic: str) -> int:
        part = self.partition_of(topic)
        return int(await self._broker.commands.execute(part, "HLEN", self.keys(topic)[1]))

    async def has(self, topic: str, member: str) -> bool:
        part = self.partition_of(topic)
        return bool(
            await self._broker.commands.execute(part, "HEXISTS", self.keys(topic)[1], member)
        )
