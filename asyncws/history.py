"""Topic history: positions, recovery after a reconnect, and cache mode.

A topic declared with ``history=HistoryPolicy(size=..., ttl=...)`` keeps its last ``size``
events per concrete topic (``rooms/lobby``) in a stream of the broker, for ``ttl`` seconds
after the last publish. Every event of such a topic gets a **position**: an ``offset`` that
grows by one per event of that concrete topic, and an ``epoch`` that changes whenever the
stream's history was lost (Redis restarted empty, the stream expired). The broker appends the
event and publishes it live in one atomic step, so a live event and its history entry never
disagree (see `asyncws.brokers.base.BrokerInterface.publish_history`).

A client that subscribes with ``since`` (the last position it saw) gets, after the ``ack``
(``recovered: true``), every event it missed, in order, then the live ones: live events that
arrive while the history is being read are held back for that subscriber and merged by
offset, so there is no gap and no duplicate. When the position cannot be honoured (another
epoch, trimmed past it, more than ``max_recovery`` events behind) the ack says
``recovered: false`` with the current position, and live events follow: the application
refetches its state its own way. Topics without history cost exactly what they did.

Everything here but `Recovery`'s few awaits is pure: the wire parsing of ``since``, the
merge, the splicing of positions into event frames (through the app's `Framing`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .exceptions import AsyncWSError, BrokerError, ProtocolError
from .topics import is_pattern, topic_matches

if TYPE_CHECKING:
    from .connection import Connection
    from .framing import Framing
    from .manager import WebSocketManager

__all__ = [
    "HistoryEntry",
    "HistoryItem",
    "HistoryPolicy",
    "HistoryRead",
    "Position",
    "Recovery",
    "new_epoch",
    "parse_since",
    "position_line",
    "split_position",
]

logger = logging.getLogger("asyncws.history")

#: The first line of a broker message that carries a position: ``awh:{offset}:{epoch}\n``.
POSITION_PREFIX = b"awh:"
_MAX_OFFSET = 2**53  # JavaScript's safe integers: a client can hold every offset exactly
_MAX_EPOCH = 64


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """How much history a topic keeps, per concrete topic.

    ``size``: at most this many events (the oldest are trimmed). ``ttl``: seconds the history
    lives after the last publish (then it is gone, and the next publish starts a new epoch).
    ``max_recovery``: at most this many missed events are replayed to one subscriber; a
    client further behind gets ``recovered: false`` (default: ``size``). ``cache``: deliver
    the latest event to every new subscriber (the "current state" pattern).
    """

    size: int = 100
    ttl: float = 300.0
    max_recovery: int | None = None
    cache: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 1_000_000:
            raise ValueError("HistoryPolicy.size must be between 1 and 1,000,000")
        if not self.ttl > 0:
            raise ValueError("HistoryPolicy.ttl must be positive (seconds)")
        if self.max_recovery is not None and self.max_recovery < 0:
            raise ValueError("HistoryPolicy.max_recovery must not be negative")

    @property
    def recovery_limit(self) -> int:
        return self.size if self.max_recovery is None else min(self.max_recovery, self.size)


class Position(NamedTuple):
    """Where an event sits in its topic's stream."""

    offset: int
    epoch: str

    def as_json(self) -> dict[str, Any]:
        return {"offset": self.offset, "epoch": self.epoch}


class HistoryItem(NamedTuple):
    """An event read back from a topic's history (`Topic.history_of`)."""

    position: Position
    message: Any


class HistoryEntry(NamedTuple):
    """One stored event: its offset and the broker message it was published as."""

    offset: int
    data: bytes


class HistoryRead(NamedTuple):
    """What a history read found: the stream's current position, the offset of its oldest
    entry (0 when empty) and the entries asked for, oldest first."""

    position: Position
    first: int
    entries: list[HistoryEntry]


def new_epoch() -> str:
    return uuid.uuid4().hex[:12]


def position_line(offset: int, epoch: str) -> bytes:
    return b"%s%d:%s\n" % (POSITION_PREFIX, offset, epoch.encode())


def split_position(data: bytes) -> tuple[Position | None, bytes]:
    """The position a broker message carries (None when it has none) and the rest of it."""
    if not data.startswith(POSITION_PREFIX):
        return None, data
    nl = data.find(b"\n", 0, 128)
    if nl < 0:
        return None, data
    offset, _, epoch = data[len(POSITION_PREFIX) : nl].partition(b":")
    return Position(int(offset), epoch.decode()), data[nl + 1 :]


def parse_since(value: Any) -> Position | None:
    """A client's ``since`` (``{"offset": int, "epoch": str}``), or None when absent.

    Raises `ProtocolError` (``invalid_frame``) for anything else: a negative or unsafe
    offset, a missing or overlong epoch, extra nesting."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError("'since' must be an object {offset, epoch}")
    offset, epoch = value.get("offset"), value.get("epoch")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= _MAX_OFFSET:
        raise ProtocolError("'since.offset' must be an integer between 0 and 2^53")
    if not isinstance(epoch, str) or not 0 < len(epoch) <= _MAX_EPOCH or not epoch.isalnum():
        raise ProtocolError("'since.epoch' must be the epoch string the server sent")
    return Position(offset, epoch)


def honoured(since: Position, read: HistoryRead, limit: int) -> bool:
    """Whether every event after ``since`` is in ``read`` (its entries after ``since``, at most
    ``limit + 1`` of them): same epoch, not ahead of the stream, not trimmed past, not more
    than ``limit`` behind."""
    top = read.position
    if since.epoch != top.epoch or since.offset > top.offset:
        return False
    if since.offset == top.offset:
        return True
    if read.first == 0 or read.first > since.offset + 1:
        return False  # trimmed past it (or the stream is gone while its epoch stayed)
    return len(read.entries) <= limit and read.entries[-1].offset == top.offset


def stream_key(broker_channel: str, topic: str) -> str:
    """The broker key of a concrete topic's history (its stream, epoch and idempotency keys
    are named after it). A Redis Cluster broker prefixes the hash tag of the partition the
    topic's channel lives in, so they share the slot of the live channel."""
    return f"{broker_channel}:h:{{{topic}}}"


def _payload(data: bytes) -> str:
    """The event frame inside a stored broker message (after asyncws's header line)."""
    nl = data.find(b"\n", 0, 64)
    return data[nl + 1 :].decode()


class _Pending:
    """A subscriber whose recovery is in progress: live events are held back here."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[tuple[int, str]] = []


def _no_policy(topic: str) -> HistoryPolicy | None:
    return None


class Recovery:
    """One manager's history state: positions delivered, recoveries in progress.

    ``framing`` writes positions into event frames (set by the app; asyncws's envelope by
    default); ``policy_of`` gives the `HistoryPolicy` of a concrete topic (set by the app:
    the policy of the declared topic it is an address of). `deliver` is the dispatch path of
    every positioned broker message.

    Memory: ``delivered`` (the gap filling's starting points) holds one entry per concrete
    topic a local connection is subscribed to exactly, plus at most ``max_tracked`` topics
    reached only through wildcard subscriptions (beyond it, those get no gap filling); an
    entry is dropped when the last local subscription matching its topic goes (`released`).
    """

    #: Concrete topics tracked for gap filling through wildcard subscriptions only, at most.
    max_tracked = 10_000

    def __init__(self, manager: WebSocketManager) -> None:
        self.manager = manager
        self.framing: Framing | None = None
        self.policy_of: Callable[[str], HistoryPolicy | None] = _no_policy
        self._pending: dict[tuple[Connection, str], _Pending] = {}
        #: Per topic and connection: the offset its recovery sent up to (until passed). By
        #: topic, so a quiet topic's floors cost nothing to the deliveries of the others.
        self._floors: dict[str, dict[Connection, Position]] = {}
        #: The last position delivered on this instance, per concrete topic (gap filling).
        self.delivered: dict[str, Position] = {}
        self.stats = {"recoveries": 0, "recovered": 0, "not_recovered": 0, "replayed": 0}
        self.stats |= {"gap_fills": 0, "gap_events": 0, "duplicates": 0, "unavailable": 0}
        self._filling: dict[str, list[tuple[Position, str]]] = {}

    # -- frames -------------------------------------------------------------------------------

    def frame(self, text: str, position: Position) -> str:
        framing = self.framing
        if framing is None:
            from .framing import AsyncWSFraming

            framing = self.framing = AsyncWSFraming()
        return framing.positioned(text, position.offset, position.epoch)

    # -- publish ------------------------------------------------------------------------------

    async def publish(
        self, topic: str, text: str, policy: HistoryPolicy, idempotency_key: str | None = None
    ) -> Position:
        """Append ``text`` (an event frame) to ``topic``'s history and publish it live."""
        manager = self.manager
        data = manager.broker_header() + text.encode()
        try:
            position = await manager.broker.publish_history(
                manager.topic_channel(topic),
                stream_key(manager.broker_channel, topic),
                data,
                size=policy.size,
                ttl=policy.ttl,
                idempotency_key=idempotency_key,
            )
        except AsyncWSError as exc:
            manager.stats["publish_errors"] += 1
            manager.publish_failed(topic, exc)
            raise
        manager.stats["published"] += 1
        return position

    async def read(self, topic: str, *, since: int | None, limit: int) -> HistoryRead:
        manager = self.manager
        return await manager.broker.read_history(
            manager.topic_channel(topic),
            stream_key(manager.broker_channel, topic),
            since=since,
            limit=limit,
        )

    async def events(self, topic: str, *, limit: int = 100) -> list[tuple[Position, str]]:
        """The last ``limit`` events of a concrete topic, oldest first: their positions and
        their frames as published (without the position)."""
        read = await self.read(topic, since=None, limit=max(0, limit))
        epoch = read.position.epoch
        return [(Position(e.offset, epoch), _payload(e.data)) for e in read.entries]

    # -- dispatch -----------------------------------------------------------------------------

    def deliver(self, topic: str, targets: Iterable[Connection], text: str, pos: Position) -> None:
        """Deliver a positioned live event: drop what this instance delivered already (a gap
        fill may have), hold it back for subscribers being recovered."""
        last = self.delivered.get(topic)
        if last is not None and last.epoch == pos.epoch and pos.offset <= last.offset:
            self.stats["duplicates"] += 1
            return
        filling = self._filling.get(topic)
        if filling is not None:
            filling.append((pos, text))
            return
        self._deliver(topic, targets, text, pos)

    def _deliver(self, topic: str, targets: Iterable[Connection], text: str, pos: Position) -> None:
        delivered = self.delivered
        if (
            topic in delivered
            or len(delivered) < self.max_tracked
            or self.manager.index.has_pattern(topic)  # an exact subscription: always
        ):
            delivered[topic] = pos
        frame = self.frame(text, pos)
        pending = self._pending
        floors = self._floors.get(topic) if self._floors else None
        if pending or floors:
            now: list[Connection] = []
            for conn in targets:
                held = pending.get((conn, topic)) if pending else None
                if held is not None:
                    held.events.append((pos.offset, frame))
                    continue
                if floors:
                    floor = floors.get(conn)
                    if floor is not None:
                        if floor.epoch == pos.epoch and pos.offset <= floor.offset:
                            self.stats["duplicates"] += 1
                            continue  # already sent by its recovery
                        del floors[conn]  # passed: from here on, live events only
                now.append(conn)
            if floors is not None and not floors:
                del self._floors[topic]
            targets = now
        self.manager.deliver_local(targets, frame)

    def unsubscribed(self, conn: Connection, topic: str) -> None:
        """``conn`` let go of ``topic``: drop what its recovery kept."""
        floors = self._floors.get(topic) if self._floors else None
        if floors is not None and floors.pop(conn, None) is not None and not floors:
            del self._floors[topic]

    def forget(self, conn: Connection) -> None:
        """``conn`` is going (call it while ``conn.topics`` still lists its subscriptions):
        drop what recovery kept for it."""
        if self._floors:
            for topic in conn.topics:
                self.unsubscribed(conn, topic)

    def released(self, pattern: str) -> None:
        """The last local subscription to ``pattern`` (a topic or a wildcard) is gone: drop
        the positions of the concrete topics no local subscription matches any more."""
        delivered = self.delivered
        if not delivered:
            return
        match = self.manager.index.match
        if is_pattern(pattern):
            gone = [t for t in delivered if topic_matches(t, pattern) and not match(t)]
        else:
            gone = [pattern] if pattern in delivered and not match(pattern) else []
        for topic in gone:
            if topic not in self._filling:  # a gap fill in flight delivers (and drops) it
                del delivered[topic]

    # -- subscribe with recovery --------------------------------------------------------------

    async def subscribe(
        self,
        conn: Connection,
        topic: str,
        policy: HistoryPolicy,
        since: Position | None,
        ack: Any,
    ) -> None:
        """Subscribe ``conn`` to the concrete history ``topic``; send ``ack(recovered,
        position)`` (a callable that queues the ack frame), then the missed events (or, in
        cache mode, the latest), then live events, without gap or duplicate.

        Raises `BrokerError` when the history cannot be read (the subscription is undone)."""
        manager = self.manager
        key = (conn, topic)
        held = _Pending()
        self._pending[key] = held
        subscribed = topic not in conn.topics
        try:
            await manager.subscribe(conn, topic)
            limit = policy.recovery_limit
            want_since = since.offset if since is not None else None
            if since is None:
                read = await self.read(topic, since=None, limit=1 if policy.cache else 0)
            else:
                read = await self.read(topic, since=want_since, limit=limit + 1)
                if policy.cache and not honoured(since, read, limit):
                    read = await self.read(topic, since=None, limit=1)  # the latest, then
        except BaseException as exc:
            self._pending.pop(key, None)
            if isinstance(exc, BrokerError):
                self.stats["unavailable"] += 1  # answered broker_unavailable: try again
            if subscribed:
                await manager.unsubscribe(conn, topic)
            raise
        try:
            pos = read.position
            recovered: bool | None = None
            replay: list[HistoryEntry] = []
            if since is not None:
                self.stats["recoveries"] += 1
                recovered = honoured(since, read, limit)
                if recovered:
                    replay = read.entries
                    self.stats["recovered"] += 1
                    self.stats["replayed"] += len(replay)
                else:
                    self.stats["not_recovered"] += 1
            if policy.cache and not recovered and read.entries:
                replay = read.entries[-1:]  # the current state (the read asked for the latest)
            ack(recovered, pos)
            floor = since.offset if recovered and since is not None else pos.offset
            if replay and not recovered:
                floor = pos.offset - 1
            frames: list[str] = []
            for entry in replay:
                if entry.offset > floor:
                    floor = entry.offset
                    frames.append(
                        self.frame(_payload(entry.data), Position(entry.offset, pos.epoch))
                    )
            floor = max(floor, pos.offset) if not recovered else floor
            for offset, frame in held.events:
                if offset > floor:
                    floor = offset
                    frames.append(frame)
            for frame in frames:
                manager.deliver_local((conn,), frame)
            # A live event at or below ``floor`` may still be on its way from the broker
            # (published before the read, dispatched after it): it was sent, drop it then.
            self._floors.setdefault(topic, {})[conn] = Position(floor, pos.epoch)
        finally:
            self._pending.pop(key, None)

    # -- instances recover too ----------------------------------------------------------------

    def on_broker_restored(self) -> None:
        """The broker's hook: it reconnected (called in its listener, before it hands out
        the next message). From here on, live events of every history topic this instance
        delivered are held back until its gap is filled (`fill_gaps`)."""
        manager = self.manager
        gaps: dict[str, tuple[Position, HistoryPolicy]] = {}
        for topic, last in list(self.delivered.items()):
            policy = self.policy_of(topic)
            if policy is None or not manager.index.match(topic):
                del self.delivered[topic]  # nobody here listens to it any more
            elif topic not in self._filling:
                self._filling[topic] = []
                gaps[topic] = (last, policy)
        if gaps:
            manager.spawn(self.fill_gaps(gaps))

    async def fill_gaps(self, gaps: dict[str, tuple[Position, HistoryPolicy]]) -> None:
        """Deliver to local subscribers what was published on their history topics while
        this instance was not listening: the events after the last position it delivered
        (at most each topic's ``max_recovery``), then the live events held back meanwhile."""
        await asyncio.gather(*(self._fill(topic, *gap) for topic, gap in gaps.items()))

    async def _fill(self, topic: str, last: Position, policy: HistoryPolicy) -> None:
        manager = self.manager
        try:
            read = await self.read(topic, since=last.offset, limit=policy.recovery_limit)
        except (AsyncWSError, OSError) as exc:
            logger.warning("history gap fill of %r failed (%s)", topic[:200], exc)
            read = None
        finally:
            buffer = self._filling.pop(topic, [])
        if read is not None and read.position.epoch == last.epoch:
            self.stats["gap_fills"] += 1
            pos = last
            for entry in read.entries:
                if entry.offset > pos.offset:
                    pos = Position(entry.offset, last.epoch)
                    self.stats["gap_events"] += 1
                    self._deliver(topic, manager.index.match(topic), _payload(entry.data), pos)
        for live_pos, text in buffer:
            self.deliver(topic, manager.index.match(topic), text, live_pos)
