"""Where things live on a Redis Cluster: partitions, hash tags, feeds. Pure, no I/O.

Channels and partitions
A channel ``c`` lives in partition ``crc32(c) % partitions`` and is sent to Redis as
``{tag}c``, where ``tag`` is the partition's hash tag. The tags are chosen so the partitions'
slots are evenly spaced over the 16384 slots, so with the slots spread evenly over the
primaries (what ``redis-cli --cluster create`` does) each primary carries an equal share of
the partitions, and every channel of a partition stays on one slot, hence one node.
Publishing goes straight to the primary owning the slot (no broadcast over the cluster
bus), and each instance keeps **one subscribing connection per primary**, not per channel.

Wildcard patterns
Redis has no sharded ``PSUBSCRIBE``. A publish also copies the message (in the same Lua call
and slot: one round trip, no ``CROSSSLOT``) to its partition's *feed* ``{tag}#``, prefixed
with the channel name, whenever some instance reads that feed. An instance holding at least
one pattern subscribes to all the feeds (``partitions`` subscriptions, shared by all its
patterns) and keeps only the messages that match one of its patterns and that it does not
also receive exactly. The cost: such an instance reads every message published in the
cluster, as a single Redis ``PSUBSCRIBE *`` would, and Redis does one more ``SPUBLISH`` per
publish; with no pattern anywhere, a publish is one ``SPUBLISH`` plus a ``PUBSUB
SHARDNUMSUB`` check. Exact topics, connection ids, users and broadcast cost nothing extra.

Keys
Claims (the manager's connection-id reservations) use the same ``{tag}`` placement: each is
one key, one slot, one node. A history topic's stream, meta hash and idempotency keys carry
the tag of the partition its *channel* lives in (`history_keys`), so appending, publishing
live and copying to the feed are one script on one slot (`asyncws.brokers.redis_scripts`).
Presence keeps one topic index per partition (`asyncws.brokers.cluster_presence`), so no
script touches two slots.

The slots of the partitions are what `RedisClusterBroker` maps to primaries (`slot_owners`,
from a ``CLUSTER SLOTS`` reply).
"""

from __future__ import annotations

import functools
from binascii import crc_hqx
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "DEFAULT_PARTITIONS",
    "FEED",
    "PUBLISH_SCRIPT",
    "SLOTS",
    "Address",
    "decode_feed",
    "history_keys",
    "key_slot",
    "parse_cluster_url",
    "partition_tags",
    "slot_owners",
]

SLOTS = 16384
DEFAULT_PARTITIONS = 128
FEED = "#"  # a pattern level: never the name of a channel anyone publishes on

Address = tuple[str, int]

# KEYS[1] the channel, KEYS[2] its partition's feed; ARGV[1] the channel name, ARGV[2] the data.
# The feed copy is made only while some instance reads that feed (it holds a pattern): with no
# wildcard subscriber anywhere, a publish costs one SPUBLISH (and its replication) as usual.
PUBLISH_SCRIPT = """
local n = redis.call('SPUBLISH', KEYS[1], ARGV[2])
if redis.call('PUBSUB', 'SHARDNUMSUB', KEYS[2])[2] > 0 then
  redis.call('SPUBLISH', KEYS[2], #ARGV[1] .. ':' .. ARGV[1] .. ARGV[2])
end
return n
"""


def key_slot(tag: str) -> int:
    """The Redis Cluster slot of a key whose hash tag is ``tag`` (CRC16/XMODEM mod 16384)."""
    return crc_hqx(tag.encode(), 0) % SLOTS


@functools.cache
def partition_tags(partitions: int = DEFAULT_PARTITIONS) -> tuple[str, ...]:
    """One hash tag per partition: partition ``i``'s slot lies in the ``i``-th ``1/partitions``
    of the slot space, so primaries serving equal contiguous slot ranges get equal shares."""
    if not 1 <= partitions <= SLOTS:
        raise ValueError(f"partitions must be between 1 and {SLOTS}")
    tags: list[str | None] = [None] * partitions
    left = partitions
    n = 0
    while left:
        tag = format(n, "x")
        i = key_slot(tag) * partitions // SLOTS
        if tags[i] is None:
            tags[i] = tag
            left -= 1
        n += 1
    return tuple(t for t in tags if t is not None)


def parse_cluster_url(url: str) -> tuple[list[Address], dict[str, Any], int]:
    """The seed nodes, the client options (credentials, TLS) and ``partitions`` of a URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis+cluster", "rediss+cluster"):
        raise ValueError(f"not a Redis Cluster URL: {url!r}")
    options: dict[str, Any] = {}
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if password:
            options["password"] = unquote(password)
    if parts.scheme == "rediss+cluster":
        options["ssl"] = True
    seeds: list[Address] = []
    for item in netloc.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = item.strip(), "6379"
        seeds.append((host.strip("[]") or "127.0.0.1", int(port or 6379)))
    if not seeds:
        raise ValueError(f"no host in {url!r}")
    query = parse_qs(parts.query)
    partitions = int(query.get("partitions", [str(DEFAULT_PARTITIONS)])[0])
    partition_tags(partitions)  # validates
    return seeds, options, partitions


def slot_owners(
    reply: Any, via: Address, slots: tuple[int, ...]
) -> tuple[list[Address | None], list[Address]]:
    """From a ``CLUSTER SLOTS`` reply: the primary of each of ``slots`` (None: unserved), and
    every node named. A node announced without a host is at ``via``'s host."""
    ranges: list[tuple[int, int, Address]] = []
    known: list[Address] = []
    for entry in reply:
        start, end = int(entry[0]), int(entry[1])
        nodes = [_address(node, via) for node in entry[2:]]
        if nodes:
            ranges.append((start, end, nodes[0]))
        known += nodes
    owners = [next((a for s, e, a in ranges if s <= slot <= e), None) for slot in slots]
    return owners, list(dict.fromkeys(known))


def _address(node: Any, via: Address) -> Address:
    host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
    return (host or via[0], int(node[1]))


def decode_feed(data: bytes) -> tuple[str, bytes] | None:
    """A feed message (``len:channel`` + data, see `PUBLISH_SCRIPT`): (channel, data)."""
    colon = data.find(b":", 0, 12)
    if colon < 0 or not data[:colon].isdigit():
        return None
    end = colon + 1 + int(data[:colon])
    if end > len(data):
        return None
    return data[colon + 1 : end].decode("utf-8", "replace"), data[end:]


def history_keys(tag: str, channel: str, key: str, idempotency_key: str | None) -> list[str]:
    """The keys of the `CLUSTER_APPEND` script for the history ``key`` of ``channel``, whose
    partition's hash tag is ``tag``: stream, meta hash, live channel, feed, and the
    idempotency key when there is one (`CLUSTER_READ` takes the first two)."""
    keys = [f"{{{tag}}}{key}:s", f"{{{tag}}}{key}:m", f"{{{tag}}}{channel}", f"{{{tag}}}{FEED}"]
    if idempotency_key is not None:
        keys.append(f"{{{tag}}}{key}:i:{idempotency_key}")
    return keys
