"""`WebSocketManager`: the local registry of connections and the bridge to the broker.

Delivery model
--------------
Every distributed send goes through the broker, on a channel that says who it is for::

    {ns}/t/{topic}     a topic (instances with a matching subscriber listen to it)
    {ns}/i/{instance}  the connections with server-assigned ids on one instance
    {ns}/c/{conn_id}   one connection with an id the client (or server code) chose
    {ns}/u/{user_id}   every connection of one user
    {ns}/b             everyone (every instance listens)

so an instance receives only what it has recipients for. A server-assigned connection id is
``{instance}.{random}``: a message to it goes to its instance's channel, with the id on a
routing line, so opening a connection costs no broker round trip (the instance channel is
subscribed once, at startup); only ids a client asked for (claimed on the broker) get a
channel of their own. A broker message is ``aws1:{instance}:{seq}:{time}\\n`` (then, on an
instance channel, ``{conn_id}\\n``) followed by the frame text, which the publisher encoded
once (``time`` is the publish time in microseconds since the epoch, for the latency histogram;
receivers also accept headers without it, as sent by older versions);
the receiving instance wraps it in one ASGI message and hands that same object to every
local recipient's `Connection.push` (no decoding, no per-recipient encoding, no task). Copies of one
publish that the broker delivers twice (an exact and a pattern subscription both matching)
carry the same header and are dropped.

Delivery is at-most-once and ordered per publisher and channel. A publish while the broker
is unreachable raises `BrokerError` (counted in ``stats["publish_errors"]`` and logged as a
warning, at most one line every few seconds). One slow or dead connection never delays the
others: each has its own bounded queue (see `Connection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from bisect import bisect_left
from collections.abc import Awaitable, Generator, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketState

from .auth import WebSocketAuthError, origin_allowed
from .brokers import BrokerInterface, create_broker
from .codes import CloseCode, ErrorCode
from .connection import Connection, ConnectionState, SlowConsumerPolicy, new_connection_id
from .exceptions import AsyncWSError, ProtocolError, TooManySubscriptionsError, UnknownTypeError
from .handshake import refuse_unavailable
from .history import POSITION_PREFIX, Recovery, split_position
from .limits import FanoutBudget, Limits
from .message import CLIENT_TYPES, Message
from .protocol import ack_frame, dumps, error_frame_for, frame_id
from .topics import (
    DEFAULT_LIMITS,
    TopicIndex,
    TopicLimits,
    is_pattern,
    validate_pattern,
    validate_topic,
)

__all__ = ["WebSocketManager"]

logger = logging.getLogger("asyncws.manager")

_CONN_ID_RE = re.compile(r"[A-Za-z0-9._~:@-]{1,128}")
#: A server-assigned connection id: ``{instance id}.{128 random bits}`` (see `_instance_of`).
_SERVER_ID_RE = re.compile(r"([A-Za-z0-9_-]{8})\.[A-Za-z0-9_-]{22}")
_MAGIC = b"aws1:"
#: Upper bounds, in seconds, of the publish-to-delivery latency histogram (`latency_counts`).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
_VALID_TOPICS_MAX = 4096  # topics remembered as valid by `publish` (then forgotten at once)
_PUBLISH_WARN_EVERY = 5.0  # seconds between two "publishes lost" warnings


class _Done:
    """An awaitable that is already complete (awaiting it is optional)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


_DONE = _Done()


# A connection's `TopicSet` itself, without the subscribing its own methods do.
_set_add = set.add
_set_discard = set.discard


def _check_message(message: object, method: str) -> Message:
    """TypeError at the call, naming the expected type, rather than an AttributeError later."""
    if not isinstance(message, Message):
        expected = "a Message or a dict" if method == "broadcast" else "a Message"
        raise TypeError(
            f"WebSocketManager.{method}() expects {expected}, got {type(message).__name__}"
        )
    return message


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


def _channel_key(value: str) -> str:
    """A conn/user id as one channel level: no '/', '+', '#' survive."""
    return quote(value, safe="")


def _instance_of(conn_id: str) -> str | None:
    """The instance that assigned ``conn_id``, if it is a server-assigned id."""
    if len(conn_id) != 31 or conn_id[8] != ".":
        return None
    m = _SERVER_ID_RE.fullmatch(conn_id)
    return m.group(1) if m is not None else None


class WebSocketManager:
    """Connections of this instance, their subscriptions, and delivery across instances.

    ``broker_channel`` namespaces the broker channels of one application (several apps can
    share a Redis). ``broker_url`` picks the broker (``memory://``, ``redis://...``); pass
    ``broker=`` to use an instance, or the seed's ``broker_class=`` plus its kwargs.

    ``allowed_origins`` is what `new_connection` lets browsers connect from: None (default)
    means same-origin only (see `asyncws.auth.origin_allowed`), a list widens it, ``["*"]``
    allows every origin. ``limits`` bounds what one client frame of the seed protocol may
    make the server publish (`asyncws.limits.Limits`: ``max_recipients``,
    ``max_fanout_bytes``, ``fanout_bytes_rate``).
    """

    #: The seed kept one task per send here (and its tests cancel them); asyncws spawns none.
    _send_tasks: tuple[asyncio.Task[None], ...] = ()

    def __init__(
        self,
        broker_channel: str = "asyncws",
        broker_url: str | None = None,
        broker_class: Any | None = None,
        *,
        broker: BrokerInterface | None = None,
        max_queue: int = 2048,
        max_queue_bytes: int = 1 << 20,
        slow_consumer: SlowConsumerPolicy = "close",
        max_frame_size: int = 1 << 20,
        max_subscriptions: int = 256,
        topic_limits: TopicLimits = DEFAULT_LIMITS,
        drain_timeout: float = 2.0,
        allowed_origins: Sequence[str] | None = None,
        limits: Limits | None = None,
        max_wildcards: int | None = None,
        max_wildcards_per_user: int | None = None,
        max_wildcards_per_instance: int | None = None,
        **kwargs: Any,
    ) -> None:
        if "+" in broker_channel.split("/") or "#" in broker_channel.split("/"):
            raise ValueError("broker_channel must not contain wildcard levels")
        if broker is None:
            if broker_class is not None:
                broker = broker_class(**kwargs)
            else:
                broker = create_broker(broker_url or "memory://", **kwargs)
        self.broker: BrokerInterface = broker
        self.broker_channel = broker_channel
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.slow_consumer: SlowConsumerPolicy = slow_consumer
        self.max_frame_size = max_frame_size
        self.max_subscriptions = max_subscriptions
        self.topic_limits = topic_limits
        self.drain_timeout = drain_timeout
        self.allowed_origins = tuple(allowed_origins) if allowed_origins is not None else None
        self.limits = limits or Limits()
        #: Wildcard subscriptions (`rooms/+`, `a/#`): each distinct one is a Redis PSUBSCRIBE
        #: pattern that Redis matches against every PUBLISH, so they are capped per connection,
        #: per user (on this instance) and, distinct, per instance (see docs/deployment.md).
        #: Defaults: ``limits``' values.
        self.max_wildcards = _given(max_wildcards, self.limits.max_wildcards)
        self.max_wildcards_per_user = _given(
            max_wildcards_per_user, self.limits.max_wildcards_per_user
        )
        self.max_wildcards_per_instance = _given(
            max_wildcards_per_instance, self.limits.max_wildcards_per_instance
        )
        self._wildcards = 0  # distinct wildcard patterns in the index
        self._budgets: dict[Connection, FanoutBudget] = {}
        self.connections: dict[str, Connection] = {}
        self.users: dict[str, set[Connection]] = {}
        self.index: TopicIndex[Connection] = TopicIndex()
        self.instance_id = new_connection_id()[:8]
        self.accepting = True
        self.started = False
        # broker channels: topic prefix, connection prefix, user prefix, broadcast
        self._tp = f"{broker_channel}/t/"
        self._cp = f"{broker_channel}/c/"
        self._ip = f"{broker_channel}/i/"
        self._ic = self._ip + self.instance_id  # this instance's server-assigned ids
        self._up = f"{broker_channel}/u/"
        self._bc = f"{broker_channel}/b"
        self._seq = 0
        self._valid_topics: set[str] = set()  # topics `publish` validated recently
        self._head = b"%s%s:" % (_MAGIC, self.instance_id.encode())  # aws1:{instance}:
        self._last_header = b""
        self._listener: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._claims: set[str] = set()  # client-requested ids this instance holds
        #: How long a claim on a client-requested connection id lives without renewal.
        self.claim_ttl = 300.0
        self._background: set[asyncio.Task[Any]] = set()
        #: Counters for metrics and tests.
        self.stats: dict[str, int] = {
            "broker_messages": 0,
            "broker_duplicates": 0,
            "broker_malformed": 0,
            "deliveries": 0,
            "published": 0,
            "publish_errors": 0,
            "slow_consumer_drops": 0,  # drop_oldest: messages dropped (Connection.push)
            "slow_consumer_closes": 0,  # close: connections closed with 1013 (Connection.push)
        }
        #: Client frames handled, by ``type`` ("invalid" for those that were not understood).
        self.frames_in: dict[str, int] = {}
        #: Frames queued for one connection by `Connection.send_text_nowait`, by ``type`` (ack,
        #: reply, error, set_conn_id, other); broker deliveries are ``stats["deliveries"]``.
        self.frames_out: dict[str, int] = {}
        #: Publish-to-delivery latency of the broker messages this instance received: counts
        #: per bucket of `LATENCY_BUCKETS` (the last one: above them all) and their sum (s).
        self.latency_counts: list[int] = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self._lost_unlogged = 0  # failed publishes not reported in a warning yet
        self._lost_logged_at = -_PUBLISH_WARN_EVERY
        #: Topic history: positions delivered, recoveries in progress (`asyncws.history`).
        self.history = Recovery(self)
        broker.on_restored(self.history.on_broker_restored)

    # -- context manager / lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> WebSocketManager:
        await self.startup()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    def __iter__(self) -> Iterator[Connection]:
        return iter(tuple(self.connections.values()))

    def __len__(self) -> int:
        return len(self.connections)

    @property
    def active_connections(self) -> list[Connection]:
        """The connections of this instance (the seed's attribute)."""
        return list(self.connections.values())

    async def startup(self) -> None:
        """Connect the broker and start the listener. Idempotent."""
        if self.started:
            return
        self.started = True
        self.accepting = True
        await self.broker.connect()
        await self.broker.subscribe(self._bc)
        await self.broker.subscribe(self._ic)
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(
            self._listen(), name=f"asyncws-listener-{self.broker_channel}"
        )
        self._renewer = loop.create_task(self._renew_claims(), name="asyncws-claims")

    # -- connection id claims -----------------------------------------------------------------

    def _claim_key(self, conn_id: str) -> str:
        return f"{self.broker_channel}/claim/{_channel_key(conn_id)}"

    async def _claim(self, conn_id: str) -> bool:
        """Claim a client-requested id on every instance (see `BrokerInterface.claim`).

        When the broker cannot answer, the id is refused (the server assigns a random one):
        a client must never get an id that may belong to someone else.
        """
        try:
            granted = await self.broker.claim(
                self._claim_key(conn_id), self.instance_id, self.claim_ttl
            )
        except AsyncWSError:
            granted = False
        if granted:
            self._claims.add(conn_id)
        return granted

    async def _renew_claims(self) -> None:
        """Renew this instance's claims well before they expire (they expire if it dies)."""
        while True:
            await asyncio.sleep(self.claim_ttl / 3)
            for conn_id in list(self._claims):
                try:
                    await self.broker.claim(
                        self._claim_key(conn_id), self.instance_id, self.claim_ttl
                    )
                except AsyncWSError:
                    break  # the broker is down: try again next round

    async def shutdown(self) -> None:
        """Stop accepting, drain queues (bounded), close every connection with 1001, stop the
        listener and close the broker. Safe to call twice, or without `startup`."""
        self.accepting = False
        conns = list(self.connections.values())
        if conns:
            await asyncio.gather(*(c._flush(self.drain_timeout) for c in conns))
            await asyncio.gather(
                *(c._close_socket(CloseCode.GOING_AWAY, "server shutting down") for c in conns)
            )
        for conn in conns:
            self._forget(conn)
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        for task in list(self._background):
            task.cancel()
        self._background.clear()
        if self.started:
            self.started = False
            try:
                await self.broker.disconnect()
            except Exception:
                logger.exception("error while disconnecting the broker")

    # -- connections --------------------------------------------------------------------------

    async def new_connection(
        self,
        websocket: WebSocket,
        conn_id: str | None = None,
        topic: str | None = None,
        *,
        user_id: str | None = None,
        accept: bool = True,
        subprotocol: str | None = None,
    ) -> Connection:
        """Accept ``websocket`` and register it.

        ``conn_id`` is the client's wish (e.g. from the path): it is used when it is well
        formed and free on this instance; otherwise the server assigns one and tells the
        client with a ``{"type":"set_conn_id","conn_id":...}`` frame. A client can never take
        over the id of a live connection.

        A browser page from another origin (see ``allowed_origins``) is refused before accept
        with `asyncws.auth.WebSocketAuthError`: the app's exception handler answers HTTP 403.
        """
        if (
            accept
            and isinstance(websocket, HTTPConnection)  # not a test stand-in
            and websocket.application_state is WebSocketState.CONNECTING
            and not origin_allowed(websocket, self.allowed_origins)
        ):
            logger.info("websocket %s: origin not allowed", websocket.url.path)
            raise WebSocketAuthError("origin not allowed")
        conn = Connection(
            websocket,
            conn_id or self.new_connection_id(),
            user_id=user_id,
            max_queue=self.max_queue,
            max_queue_bytes=self.max_queue_bytes,
            slow_consumer=self.slow_consumer,
            max_frame_size=self.max_frame_size,
        )
        await self.attach(
            conn, accept=accept, subprotocol=subprotocol, topic=topic, claim=conn_id is not None
        )
        return conn

    async def attach(
        self,
        conn: Connection,
        *,
        accept: bool = True,
        subprotocol: str | None = None,
        topic: str | None = None,
        claim: bool = False,
    ) -> None:
        """Accept a `Connection` built by the caller and register it (see `new_connection`).

        With ``claim=True`` the connection's id came from the client: it is kept only if it is
        well formed, free on this instance and claimed on the broker (free on every instance);
        otherwise the server assigns one.
        """
        requested = conn.id
        taken = not _CONN_ID_RE.fullmatch(requested) or requested in self.connections
        instance = _instance_of(requested)
        if instance is not None:
            # server-assigned format: routed to that instance, so only ours can be taken
            # back (a client reconnecting here with the id it was given); no claim needed
            taken = taken or instance != self.instance_id
            claim = False
        if taken or (claim and not await self._claim(requested)):
            conn.id = self.new_connection_id()
        if not self.accepting:
            await refuse_unavailable(conn.websocket, "shutting down")  # before accept: 503
            conn.state = ConnectionState.CLOSED
            return
        # Register and subscribe the broker first, accept last: once the client sees the
        # handshake complete, a message to its id (or user, or topic) from any instance
        # reaches it. Until then nothing is queued for it (`push` needs an open connection).
        earlier = list(conn.topics)  # patterns put in `topics` before it was registered
        set.clear(conn.topics)
        self._register(conn)
        try:
            channel = self._conn_channel(conn.id)
            if channel is not None:
                await self._broker_subscribe(channel)
            if conn.user_id is not None:
                await self._broker_subscribe(self._up + _channel_key(conn.user_id))
            for pattern in earlier:
                await self.subscribe(conn, pattern)
            if topic:
                await self.subscribe(conn, topic)
            if accept:
                await conn.accept(subprotocol=subprotocol)
            else:
                conn.state = ConnectionState.OPEN
        except BaseException:
            self.remove_connection(conn)
            raise
        if requested != conn.id:
            conn.send_text_nowait(dumps({"type": "set_conn_id", "conn_id": conn.id}))

    def new_connection_id(self) -> str:
        """A fresh server-assigned id, ``{instance}.{random}``: routed by the instance
        channel (no broker subscription per connection)."""
        return f"{self.instance_id}.{new_connection_id()}"

    def _conn_channel(self, conn_id: str) -> str | None:
        """The broker channel of one connection id (None: it is on an instance channel)."""
        return None if _instance_of(conn_id) is not None else self._cp + _channel_key(conn_id)

    def _register(self, conn: Connection) -> None:
        conn.manager = self
        self.connections[conn.id] = conn
        if conn.user_id is not None:
            self.users.setdefault(conn.user_id, set()).add(conn)

    def remove_connection(self, connection: Connection) -> Awaitable[None]:
        """Forget a connection that is already closed (after ``WebSocketDisconnect``).

        The index is updated at once; broker unsubscriptions run in the background. Returns
        an awaitable that is already done, so ``await manager.remove_connection(c)`` (as in
        the seed's README) works as well as a plain call.
        """
        claimed = connection.id in self._claims
        channels = self._forget(connection)
        if channels or claimed:
            self._spawn(self._cleanup(channels, connection.id if claimed else None))
        return _DONE

    async def disconnect(self, connection: Connection) -> None:
        """`remove_connection`, waiting for the broker unsubscriptions (and the release of a
        client-requested id)."""
        claimed = connection.id in self._claims
        channels = self._forget(connection)
        await self._cleanup(channels, connection.id if claimed else None)

    async def _cleanup(self, channels: list[str], claimed_id: str | None) -> None:
        await self._broker_unsubscribe_many(channels)
        if claimed_id is not None and claimed_id not in self.connections:
            await self.broker.release(self._claim_key(claimed_id), self.instance_id)

    async def close_connection(
        self, connection: Connection, code: int = CloseCode.NORMAL_CLOSURE
    ) -> None:
        """Close the connection with ``code`` and forget it."""
        await connection.close(code)
        await self.disconnect(connection)

    def _forget(self, conn: Connection) -> list[str]:
        """Drop ``conn`` from every local table; return the broker channels nobody needs now."""
        if self.connections.get(conn.id) is not conn:
            return []
        del self.connections[conn.id]
        self._budgets.pop(conn, None)
        self.history.forget(conn)
        if conn.state is not ConnectionState.CLOSED:
            conn._mark_closed()
        self._claims.discard(conn.id)  # released by the caller (_cleanup)
        own = self._conn_channel(conn.id)
        channels = [own] if own is not None else []
        if conn.user_id is not None:
            peers = self.users.get(conn.user_id)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self.users[conn.user_id]
                    channels.append(self._up + _channel_key(conn.user_id))
        for pattern in conn.topics:
            self.index.remove(pattern, conn)
            if not self.index.has_pattern(pattern):
                channels.append(self._tp + pattern)
                self._wildcards -= is_pattern(pattern)
        set.clear(conn.topics)  # the set itself: its clear() would unsubscribe through us
        return channels

    def set_conn_id(self, connection: Connection, conn_id: str) -> None:
        """Give ``connection`` a new id and tell the client (seed API).

        Raises ValueError if the id is malformed or belongs to another live connection.
        """
        if not _CONN_ID_RE.fullmatch(conn_id):
            raise ValueError("invalid connection id")
        instance = _instance_of(conn_id)
        if instance is not None and instance != self.instance_id:
            raise ValueError("connection id of another instance")
        other = self.connections.get(conn_id)
        if other is not None and other is not connection:
            raise ValueError("connection id already in use")
        old = connection.id
        if self.connections.get(old) is connection:
            del self.connections[old]
            self.connections[conn_id] = connection
            old_channel, new_channel = self._conn_channel(old), self._conn_channel(conn_id)
            if old_channel is not None:
                self._spawn(self._broker_unsubscribe_many([old_channel]))
            if new_channel is not None:
                self._spawn(self._broker_subscribe(new_channel))
        connection.id = conn_id
        connection.send_text_nowait(dumps({"type": "set_conn_id", "conn_id": conn_id}))

    # -- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, connection: Connection, pattern: str) -> None:
        """Subscribe ``connection`` to an MQTT ``pattern`` (validated; InvalidTopicError)."""
        channel = self._subscribe_local(connection, pattern)
        if channel is not None:
            await self._broker_subscribe(channel)

    async def unsubscribe(self, connection: Connection, pattern: str) -> None:
        channel = self._unsubscribe_local(connection, pattern)
        if channel is not None:
            await self._broker_unsubscribe_many([channel])

    def subscribe_nowait(self, connection: Connection, pattern: str) -> str | None:
        """Update the index now and subscribe the broker in the background.

        Returns the broker channel when it is new on this instance (it is being subscribed).
        """
        channel = self._subscribe_local(connection, pattern)
        if channel is not None:
            self._spawn(self._broker_subscribe(channel))
        return channel

    def _subscribe_local(self, connection: Connection, pattern: str) -> str | None:
        """Update the index; return the broker channel to subscribe, if it is new."""
        pattern = validate_pattern(pattern, self.topic_limits)
        topics = connection._topics  # the set itself (the property costs a call)
        if pattern in topics:
            return None
        if len(topics) >= self.max_subscriptions:
            raise TooManySubscriptionsError(
                f"at most {self.max_subscriptions} subscriptions per connection"
            )
        wildcard = is_pattern(pattern)
        if wildcard:
            self._check_wildcards(connection, pattern)
        _set_add(topics, pattern)  # not TopicSet.add, which calls us
        if self.connections.get(connection.id) is not connection:
            return None  # not managed (yet): nothing to route
        first = not self.index.has_pattern(pattern)
        self.index.add(pattern, connection)
        if first:
            self._wildcards += wildcard
        return self._tp + pattern if first else None

    def _check_wildcards(self, connection: Connection, pattern: str) -> None:
        """Refuse a new wildcard subscription over the caps (`TooManySubscriptionsError`)."""
        held = sum(1 for p in connection.topics if is_pattern(p))
        if held >= self.max_wildcards:
            raise TooManySubscriptionsError(
                f"at most {self.max_wildcards} wildcard subscriptions per connection"
            )
        peers = self.users.get(connection.user_id) if connection.user_id is not None else None
        if peers:
            mine = {p for c in peers for p in c.topics if is_pattern(p)}
            if pattern not in mine and len(mine) >= self.max_wildcards_per_user:
                raise TooManySubscriptionsError(
                    f"at most {self.max_wildcards_per_user} distinct wildcard subscriptions "
                    "per user"
                )
        if not self.index.has_pattern(pattern) and (
            self._wildcards >= self.max_wildcards_per_instance
        ):
            logger.warning(
                "wildcard subscription refused: this instance holds %d distinct wildcard "
                "patterns (max_wildcards_per_instance)",
                self._wildcards,
            )
            raise TooManySubscriptionsError(
                "the server holds too many distinct wildcard subscriptions; subscribe to an "
                "exact topic or one already in use, or try again later"
            )

    def unsubscribe_nowait(self, connection: Connection, pattern: str) -> None:
        channel = self._unsubscribe_local(connection, pattern)
        if channel is not None:
            self._spawn(self._broker_unsubscribe_many([channel]))

    def _unsubscribe_local(self, connection: Connection, pattern: str) -> str | None:
        topics = connection._topics  # the set itself (the property costs a call)
        if pattern not in topics:
            return None
        _set_discard(topics, pattern)
        if self.index.remove(pattern, connection) and not self.index.has_pattern(pattern):
            self._wildcards -= is_pattern(pattern)
            return self._tp + pattern
        return None

    async def _broker_subscribe(self, channel: str) -> None:
        try:
            await self.broker.subscribe(channel)
        except Exception:
            logger.exception("broker subscribe %r failed", channel)

    async def _broker_unsubscribe_many(self, channels: Iterable[str]) -> None:
        for channel in channels:
            # A subscriber may have come back while we were getting here: a subscription to
            # the pattern, a new connection with the same id, another connection of the user.
            if self._still_needed(channel):
                continue
            try:
                await self.broker.unsubscribe(channel)
            except Exception:
                logger.exception("broker unsubscribe %r failed", channel)

    def _still_needed(self, channel: str) -> bool:
        if channel.startswith(self._tp):
            return self.index.has_pattern(channel[len(self._tp) :])
        if channel.startswith(self._cp):
            return unquote(channel[len(self._cp) :]) in self.connections
        if channel == self._ic:
            return True
        if channel.startswith(self._up):
            return unquote(channel[len(self._up) :]) in self.users
        return False

    # -- distributed sends (every instance) ---------------------------------------------------

    def broker_header(self) -> bytes:
        """The first line of a broker message from this instance (dedup and latency)."""
        self._seq += 1
        return b"%s%d:%d\n" % (self._head, self._seq, time.time_ns() // 1000)

    async def _publish(self, channel: str, text: str, route: str | None = None) -> None:
        head = self.broker_header()
        if route is not None:  # an instance channel: the connection id on its own line
            head += route.encode() + b"\n"
        try:
            await self.broker.publish(channel, head + text.encode())
        except AsyncWSError as exc:
            self.stats["publish_errors"] += 1
            self._publish_lost(channel, exc)
            raise
        self.stats["published"] += 1
        if self._lost_unlogged:
            self._publish_lost(channel, None)

    def _publish_lost(self, channel: str, exc: Exception | None) -> None:
        """Report failed publishes loudly but briefly: a warning at the first failure, then at
        most one every few seconds with the count, and a last one when publishing works again."""
        if exc is not None:
            self._lost_unlogged += 1
        now = time.monotonic()
        if exc is not None and now - self._lost_logged_at < _PUBLISH_WARN_EVERY:
            return
        logger.warning(
            "broker publish failed: %d message(s) not published since the last report "
            "(%s; total %d)%s",
            self._lost_unlogged,
            exc if exc is not None else f"last on {channel[:200]!r}",
            self.stats["publish_errors"],
            "" if exc is not None else "; publishing works again",
        )
        self._lost_unlogged = 0
        self._lost_logged_at = now

    async def publish(self, topic: str, data: Any = None, *, text: str | None = None) -> None:
        """Send to every subscriber of ``topic`` on every instance.

        ``data`` is encoded as JSON once (or pass the frame as ``text``). Raises
        `InvalidTopicError` for a bad topic and `BrokerError` when the broker is unreachable.
        """
        valid = self._valid_topics
        if (
            type(topic) is not str or topic not in valid
        ):  # validated once per topic (a bounded set of recent ones)
            topic = validate_topic(topic, self.topic_limits)
            if len(valid) >= _VALID_TOPICS_MAX:
                valid.clear()
            valid.add(topic)
        await self._publish(self._tp + topic, dumps(data) if text is None else text)

    async def publish_valid(self, topic: str, text: str) -> None:
        """`publish` for a topic the caller has validated already (`validate_topic`)."""
        await self._publish(self._tp + topic, text)

    async def publish_to_connection(
        self, conn_id: str, data: Any = None, *, text: str | None = None
    ) -> None:
        """Send to the connection with this id, wherever it is connected."""
        text = dumps(data) if text is None else text
        instance = _instance_of(conn_id)
        if instance is None:
            await self._publish(self._cp + _channel_key(conn_id), text)
        else:
            await self._publish(self._ip + instance, text, route=conn_id)

    async def publish_to_user(
        self, user_id: str, data: Any = None, *, text: str | None = None
    ) -> None:
        """Send to every connection of ``user_id`` on every instance."""
        await self._publish(self._up + _channel_key(user_id), dumps(data) if text is None else text)

    async def publish_broadcast(self, data: Any = None, *, text: str | None = None) -> None:
        """Send to every connection on every instance."""
        await self._publish(self._bc, dumps(data) if text is None else text)

    # -- local sends (this instance only; the seed's API) -------------------------------------

    def _deliver(self, targets: Iterable[Connection], text: str) -> int:
        message = {"type": "websocket.send", "text": text}
        count = 0
        for conn in targets:
            if conn.push(message):
                count += 1
        self.stats["deliveries"] += count
        return count

    # These return an awaitable that is already done: the seed's README awaits them
    # (``await manager.broadcast(msg)``), its code does not; both work.

    def send(self, message: Message) -> Awaitable[None]:
        """Deliver ``message.data`` to local subscribers of ``message.topic`` (seed API)."""
        _check_message(message, "send")
        if message.topic is not None:
            self._deliver(self.index.match(message.topic), dumps(message.data))
        return _DONE

    def broadcast(self, message: Message | dict[str, Any]) -> Awaitable[None]:
        """Deliver ``message.data`` to every local connection (seed API).

        A dict (the seed's README passes the frame it received) is the data itself.
        """
        data = message if isinstance(message, dict) else _check_message(message, "broadcast").data
        self._deliver(tuple(self.connections.values()), dumps(data))
        return _DONE

    def send_by_conn_id(self, message: Message) -> Awaitable[None]:
        """Deliver ``message.data`` to the local connection(s) named by ``message.conn_id``."""
        _check_message(message, "send_by_conn_id")
        ids = message.conn_id if isinstance(message.conn_id, list) else [message.conn_id]
        targets = [c for i in ids if isinstance(i, str) and (c := self.connections.get(i))]
        self._deliver(targets, dumps(message.data))
        return _DONE

    def send_msg(self, message: Message) -> Awaitable[None]:
        """`broadcast`, `send_by_conn_id` or `send`, by ``message.type`` (seed API)."""
        _check_message(message, "send_msg")
        if message.type == "broadcast":
            return self.broadcast(message)
        if message.type == "send_by_conn_id":
            return self.send_by_conn_id(message)
        return self.send(message)

    # -- seed client protocol -----------------------------------------------------------------

    async def receive(self, connection: Connection, message: Any) -> None:
        """Handle one frame from a seed-protocol client, on every instance.

        ``subscribe``/``unsubscribe`` change the connection's subscriptions; ``send`` goes to
        the topic's subscribers, ``broadcast`` to everyone, ``send_by_conn_id`` to the named
        connection(s). Recipients get the frame's other fields. Bad frames get an error frame;
        the connection stays open.
        """
        if (
            connection.state is ConnectionState.CLOSING
            or connection.state is ConnectionState.CLOSED
        ):
            return  # closed by the server (abuse, slow consumer, shutdown): nothing it sends counts
        raw = message.__serialize__() if isinstance(message, Message) else message
        try:
            await self._receive(connection, raw)
        except AsyncWSError as exc:
            await connection.reject(exc, raw)
            return
        except Exception:  # a bug: log it, tell the client nothing, keep the connection
            logger.exception("unhandled error while handling a client frame")
            await connection.reject(AsyncWSError("internal error"), raw)
            return
        connection.good_frame()

    async def _receive(self, connection: Connection, raw: Any) -> None:
        counts = self.frames_in
        if not isinstance(raw, dict):
            counts["invalid"] = counts.get("invalid", 0) + 1
            raise ProtocolError("a frame must be a JSON object")
        msg = Message.from_client_message(data=raw)
        kind = msg.type
        if not isinstance(kind, str) or kind not in CLIENT_TYPES:
            counts["invalid"] = counts.get("invalid", 0) + 1
            raise UnknownTypeError(f"unknown message type {str(kind)[:40]!r}")
        counts[kind] = counts.get(kind, 0) + 1
        if kind in ("subscribe", "unsubscribe"):
            if not isinstance(msg.topic, str):
                raise ProtocolError("'topic' must be a string", code=ErrorCode.INVALID_TOPIC)
            if kind == "subscribe":
                await self.subscribe(connection, msg.topic)
            else:
                await self.unsubscribe(connection, validate_pattern(msg.topic, self.topic_limits))
            if frame_id(raw) is not None:
                connection.send_text_nowait(ack_frame(frame_id(raw)))
            return
        if kind == "connect":
            return
        try:
            text = dumps(msg.data)
        except ValueError:  # e.g. nested deeper than the encoder goes: it cannot be forwarded
            raise ProtocolError(
                "the frame cannot be forwarded as JSON", code=ErrorCode.INVALID_JSON
            ) from None
        if kind == "send":
            if not isinstance(msg.topic, str):
                raise ProtocolError("'send' needs a 'topic'", code=ErrorCode.INVALID_TOPIC)
            validate_topic(msg.topic, self.topic_limits)  # invalid_topic before the budget
            self.charge(connection, 1, text)
            await self.publish(msg.topic, text=text)
        elif kind == "broadcast":
            self.charge(connection, 1, text)
            await self.publish_broadcast(text=text)
        else:  # send_by_conn_id: one broker message per distinct id, within the limits
            ids = msg.conn_id if isinstance(msg.conn_id, list) else [msg.conn_id]
            if not ids or not all(isinstance(i, str) for i in ids) or len(ids) > 1000:
                raise ProtocolError("'conn_id' must be a string or a list of strings")
            unique: list[str] = list(dict.fromkeys(ids))  # type: ignore[arg-type]
            self.charge(connection, len(unique), text, count_recipients=True)
            for conn_id in unique:
                await self.publish_to_connection(conn_id, text=text)

    def charge(
        self, connection: Connection, recipients: int, text: str, *, count_recipients: bool = False
    ) -> None:
        """Count a client frame that publishes ``text`` to ``recipients`` broker channels
        against the connection's `FanoutBudget` (raises `RateLimitedError`/`ProtocolError`)."""
        budget = self._budgets.get(connection)
        if budget is None:
            budget = FanoutBudget(self.limits)
            if self.connections.get(connection.id) is connection:  # forgotten in _forget
                self._budgets[connection] = budget
        nbytes = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        budget.charge(recipients, nbytes, count_recipients=count_recipients)

    async def reject(self, connection: Connection, exc: AsyncWSError, frame: Any = None) -> None:
        connection.send_text_nowait(error_frame_for(exc, frame_id(frame)))

    # -- the broker listener ------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.1
        # A broker hands out what it has buffered without suspending; yield to the loop every
        # `burst` messages so the connections' writers drain their queues in between (else a
        # burst longer than ``max_queue`` would overflow even a fast consumer).
        burst = max(1, min(64, self.max_queue // 4))
        count = 0
        while not self.broker.is_closed():
            try:
                async for channel, data in self.broker.listen():
                    try:
                        self._dispatch(channel, data)
                    except Exception:
                        self.stats["broker_malformed"] += 1
                        logger.exception("skipped a broker message on %r", channel[:200])
                    backoff = 0.1
                    count += 1
                    if count >= burst:
                        count = 0
                        await asyncio.sleep(0)
                if self.broker.is_closed():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("broker listener failed; restarting in %.1fs", backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _dispatch(self, channel: str, data: bytes) -> None:
        """Deliver one broker message to its local recipients (see the module docstring)."""
        stats = self.stats
        stats["broker_messages"] += 1
        position = None
        if data.startswith(POSITION_PREFIX):  # an event of a history topic
            position, data = split_position(data)
        nl = data.find(b"\n", 0, 64)
        if nl < 0 or not data.startswith(_MAGIC):
            stats["broker_malformed"] += 1
            logger.warning(
                "skipped a broker message without an asyncws header on %r", channel[:200]
            )
            return
        header = data[:nl]
        if header == self._last_header:
            stats["broker_duplicates"] += 1
            return
        self._last_header = header
        parts = header.split(b":")
        if len(parts) == 4:  # aws1:{instance}:{seq}:{time}: observe the publish-to-delivery time
            try:
                sent = int(parts[3])
            except ValueError:
                stats["broker_malformed"] += 1
                logger.warning("skipped a broker message with a bad header on %r", channel[:200])
                return
            delay = time.time() - sent / 1e6
            delay = delay if delay > 0.0 else 0.0  # clocks of two hosts may disagree a little
            self.latency_counts[bisect_left(LATENCY_BUCKETS, delay)] += 1
            self.latency_sum += delay
        if channel == self._ic:  # {conn_id}\n{frame}
            end = data.find(b"\n", nl + 1, nl + 160)
            if end < 0:
                stats["broker_malformed"] += 1
                logger.warning("skipped an instance-channel message without a connection id")
                return
            conn = self.connections.get(data[nl + 1 : end].decode())
            self._deliver((conn,) if conn is not None else (), data[end + 1 :].decode())
            return
        text = data[nl + 1 :].decode()  # UnicodeDecodeError: logged and skipped by _listen
        targets: Iterable[Connection]
        if channel.startswith(self._tp):
            targets = self.index.match(channel[len(self._tp) :])
            if position is not None:
                self.history.deliver(channel[len(self._tp) :], targets, text, position)
                return
        elif channel.startswith(self._cp):
            conn = self.connections.get(unquote(channel[len(self._cp) :]))
            targets = (conn,) if conn is not None else ()
        elif channel.startswith(self._up):
            targets = tuple(self.users.get(unquote(channel[len(self._up) :]), ()))
        elif channel == self._bc:
            targets = tuple(self.connections.values())
        else:
            return
        self._deliver(targets, text)

    # -- helpers ------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def health(self) -> dict[str, Any]:
        """The broker state and local counts, for health endpoints (plus, for a broker with
        several nodes such as Redis Cluster, its per node and per partition state)."""
        body: dict[str, Any] = {
            "broker": self.broker.state.value,
            "connections": len(self.connections),
            "patterns": len(self.index),
            "time": time.time(),
        }
        topology = getattr(self.broker, "topology", None)
        if callable(topology):
            body["broker_topology"] = topology()
        return body
