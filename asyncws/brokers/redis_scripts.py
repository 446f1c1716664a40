"""The Lua scripts asyncws runs on Redis, and how their replies read. Pure, no I/O.

Claims (`CLAIM`, `RELEASE`): one key each, on one node or one cluster slot.

History (`asyncws.history`): a concrete topic's stream ``K:s``, its meta hash ``K:m``
(``e``: the epoch, ``o``: the last offset) and its idempotency keys ``K:i:{key}``. A missing
meta hash means the history was lost (Redis restarted empty, flushed, expired): a new epoch,
the stream (if any survived) is dropped and offsets restart at 1. Appending and publishing the
live message are one script, so the two never disagree.

- One Redis (`APPEND`, `READ`): ``PUBLISH`` of the live message.
- Redis Cluster (`CLUSTER_APPEND`, `CLUSTER_READ`): the keys carry the hash tag of the
  partition the topic's channel lives in (`asyncws.brokers.cluster_layout`), so the stream,
  its meta hash, the live channel and the partition's wildcard feed are one slot and the
  script ``SPUBLISH``\\ es on the primary that stores the stream. The meta hash also records
  the node that wrote it (``n``, ``CLUSTER MYID``): a stream served by another node than the
  one that wrote it (a replica promoted after a failover, or the slot migrated) gets a new
  epoch, keeping its entries and offsets. Replication is asynchronous, so a promoted replica
  may lack the last appends of the dead primary; asyncws cannot tell, and reusing those
  offsets for other events would make recovery lie. A new epoch makes every client that
  comes back with an older position refetch (``recovered: false``) instead.
"""

from __future__ import annotations

from typing import Any

from ..history import HistoryEntry, HistoryRead, Position

__all__ = [
    "APPEND",
    "CLAIM",
    "CLUSTER_APPEND",
    "CLUSTER_READ",
    "READ",
    "READ_META_TTL_MS",
    "RELEASE",
    "appended",
    "history_read",
    "text",
]

# Claim KEYS[1] for ARGV[1] for ARGV[2] ms unless someone else holds it (renews our own).
CLAIM = """
local held = redis.call('GET', KEYS[1])
if (not held) or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_EPOCH = """
local function epoch_of(stream, meta, fresh)
  local e = redis.call('HGET', meta, 'e')
  if not e then
    e = fresh
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'e', e, 'o', 0)
  end
  return e
end
"""
# The same, and a new epoch when another node wrote the meta hash (see the module docstring).
_CLUSTER_EPOCH = """
local function epoch_of(stream, meta, fresh)
  local me = redis.call('CLUSTER', 'MYID')
  local held = redis.call('HMGET', meta, 'e', 'n')
  local e = held[1]
  if not e then
    e = fresh
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'e', e, 'o', 0, 'n', me)
  elseif held[2] ~= me then
    e = fresh
    redis.call('HSET', meta, 'e', e, 'n', me)
  end
  return e
end
"""

# KEYS: 1 stream, 2 meta, then (cluster) 3 channel, 4 feed; the idempotency key is the last
# key when there is one (KEYS[IDEM]). ARGV: 1 channel, 2 message, 3 maxlen, 4 ttl ms,
# 5 fresh epoch, 6 position prefix. Returns {offset, epoch}.
_APPEND_BODY = """
local e = epoch_of(KEYS[1], KEYS[2], ARGV[5])
local idem = KEYS[IDEM]
if idem then
  local seen = redis.call('GET', idem)
  if seen then
    local o, at = string.match(seen, '^(%d+):?(%w*)$')
    if at == nil or at == '' then at = e end
    return {tonumber(o), at}
  end
end
local o = redis.call('HINCRBY', KEYS[2], 'o', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], '0-' .. o, 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if idem then redis.call('SET', idem, o .. ':' .. e, 'PX', ARGV[4]) end
local live = ARGV[6] .. o .. ':' .. e .. '\\n' .. ARGV[2]
"""
APPEND = (
    _EPOCH
    + _APPEND_BODY.replace("IDEM", "3")
    + """
redis.call('PUBLISH', ARGV[1], live)
return {o, e}
"""
)
# The feed copy is made only while some instance reads that feed (as `PUBLISH_SCRIPT`).
CLUSTER_APPEND = (
    _CLUSTER_EPOCH
    + _APPEND_BODY.replace("IDEM", "5")
    + """
redis.call('SPUBLISH', KEYS[3], live)
if redis.call('PUBSUB', 'SHARDNUMSUB', KEYS[4])[2] > 0 then
  redis.call('SPUBLISH', KEYS[4], #ARGV[1] .. ':' .. ARGV[1] .. live)
end
return {o, e}
"""
)

# KEYS: 1 stream, 2 meta. ARGV: 1 since ('' for the latest), 2 limit, 3 fresh epoch, 4 ttl ms
# for a new meta hash. Returns {epoch, last offset, first offset kept (0: none), entries}.
_READ_BODY = """
local fresh = redis.call('EXISTS', KEYS[2]) == 0
local e = epoch_of(KEYS[1], KEYS[2], ARGV[3])
if fresh then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
local o = tonumber(redis.call('HGET', KEYS[2], 'o'))
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first = 0
if #head > 0 then first = tonumber(string.sub(head[1][1], 3)) end
local limit = tonumber(ARGV[2])
local entries = {}
if limit > 0 then
  if ARGV[1] == '' then
    entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', limit)
  else
    entries = redis.call('XRANGE', KEYS[1], '(0-' .. ARGV[1], '+', 'COUNT', limit)
  end
end
return {e, o, first, entries}
"""
READ = _EPOCH + _READ_BODY
CLUSTER_READ = _CLUSTER_EPOCH + _READ_BODY

#: How long a meta hash created by a read (a topic nobody published on yet) lives, in ms.
READ_META_TTL_MS = 3_600_000


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(fields: Any) -> bytes:
    """The ``d`` field of a stream entry (its only one)."""
    value = fields[1] if isinstance(fields, list) else fields.get(b"d", fields.get("d"))
    return value if isinstance(value, bytes) else str(value).encode()


def history_read(reply: Any, since: int | None) -> HistoryRead:
    """A `READ` / `CLUSTER_READ` reply (``since=None``: the entries came newest first)."""
    entries = [HistoryEntry(int(text(eid)[2:]), _field(fields)) for eid, fields in reply[3]]
    if since is None:
        entries.reverse()
    return HistoryRead(Position(int(reply[1]), text(reply[0])), int(reply[2]), entries)


def appended(reply: Any) -> Position:
    """An `APPEND` / `CLUSTER_APPEND` reply."""
    return Position(int(reply[0]), text(reply[1]))
