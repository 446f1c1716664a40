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

The parts: `asyncws.presence_policy` (what a topic declares, what clients get; pure),
`asyncws.presence_store` (where members live: memory, Redis; the cluster broker's own is
`asyncws.brokers.cluster_presence`) and `asyncws.presence_tracker` (this instance's members,
the heartbeat, the events and the answers). This module draws them together; import from it.
"""

from __future__ import annotations

from .presence_policy import (
    Member,
    PresenceError,
    PresencePolicy,
    PresenceStats,
    check_presence_framing,
    policy_of,
)
from .presence_store import _ADD as _ADD  # the cluster's store runs the same scripts
from .presence_store import _REMOVE as _REMOVE
from .presence_store import (
    MemoryPresenceStore,
    PresenceStore,
    RedisPresenceStore,
    store_for,
)
from .presence_tracker import PresenceTracker

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
    "policy_of",
    "store_for",
]
