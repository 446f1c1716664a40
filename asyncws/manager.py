"""`WebSocketManager`: the local registry of connections and the bridge to the broker.

The manager is a facade over small parts, each in its own module:

* `asyncws.registry` (`Registry`, pure): the local connections, users, the routing index,
  the subscription caps and publish budgets;
* `asyncws.channels` (pure): broker channel names and connection ids;
* `asyncws.bridge` (`BrokerBridge`): the broker header, publishing, the listener and local
  delivery (the hot path);
* `asyncws.claims` (`IdClaims`): claims on connection ids that clients asked for;
* `asyncws.seed`: the seed's client frames (`receive`) and local sends (``send_msg``, ...).

Delivery model
--------------
Every distributed send goes through the broker, on a channel that says who it is for
(`asyncws.channels`), so an instance receives only what it has recipients for. A
server-assigned connection id is ``{instance}.{random}``: a message to it goes to its
instance's channel, with the id on a routing line, so opening a connection costs no broker
round trip (the instance channel is subscribed once, at startup); only ids a client asked for
(claimed on the broker) get a channel of their own. The frame text is encoded once by the
publisher and the same object reaches every local recipient (`asyncws.bridge`).

Delivery is at-most-once and ordered per publisher and channel. A publish while the broker
is unreachable raises `BrokerError` (counted in ``stats["publish_errors"]`` and logged as a
warning, at most one line every few seconds). One slow or dead connection never delays the
others: each has its own bounded queue (see `Connection`).

(Why ~640 lines: this file is the public and seed-compatible surface of the manager, about
forty methods and settings, each a short delegation to a part with its docstring; the work
is in the parts. Splitting it further would split one API across files.)

Size (over 600 lines): the facade is the seed's documented API (every public method of
`WebSocketManager` stays here, each delegating in a few lines); its parts are the modules
above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketState

from . import seed
from .auth import WebSocketAuthError, origin_allowed
from .bridge import LATENCY_BUCKETS, BrokerBridge
from .brokers import BrokerInterface, create_broker
from .channels import CONN_ID_RE, Channels, channel_key, instance_of
from .claims import IdClaims
from .codes import CloseCode
from .connection import Connection, ConnectionState, SlowConsumerPolicy, new_connection_id
from .error_policy import GOING_AWAY, SHUTTING_DOWN, deny
from .exceptions import AsyncWSError
from .history import Recovery
from .limits import Limits
from .message import Message
from .protocol import dumps, error_frame_for, frame_id
from .registry import Registry
from .topics import DEFAULT_LIMITS, TopicIndex, TopicLimits, validate_topic

if TYPE_CHECKING:
    from .presence import PresenceTracker

__all__ = ["LATENCY_BUCKETS", "WebSocketManager"]

logger = logging.getLogger("asyncws.manager")

_VALID_TOPICS_MAX = 4096  # topics remembered as valid by `publish` (then forgotten at once)


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


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
        self.instance_id = new_connection_id()[:8]
        channels = Channels(broker_channel, self.instance_id)  # ValueError for wildcards
        if broker is None:
            if broker_class is not None:
                broker = broker_class(**kwargs)
            else:
                broker = create_broker(broker_url or "memory://", **kwargs)
        self.broker: BrokerInterface = broker
        self.broker_channel = broker_channel
        self.channels = channels
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.slow_consumer: SlowConsumerPolicy = slow_consumer
        self.max_frame_size = max_frame_size
        self.drain_timeout = drain_timeout
        self.allowed_origins = tuple(allowed_origins) if allowed_origins is not None else None
        limits = limits or Limits()
        #: Wildcard subscriptions are capped per connection, per user and per instance
        #: (`Registry`); the defaults are ``limits``' values.
        self.registry = Registry(
            channels,
            topic_limits=topic_limits,
            max_subscriptions=max_subscriptions,
            limits=limits,
            max_wildcards=_given(max_wildcards, limits.max_wildcards),
            max_wildcards_per_user=_given(max_wildcards_per_user, limits.max_wildcards_per_user),
            max_wildcards_per_instance=_given(
                max_wildcards_per_instance, limits.max_wildcards_per_instance
            ),
        )
        # The registry's tables themselves (never rebound): reads cost one attribute, as ever.
        self.connections: dict[str, Connection] = self.registry.connections
        self.users: dict[str, set[Connection]] = self.registry.users
        self.index: TopicIndex[Connection] = self.registry.index
        self.accepting = True
        self.started = False
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
        self.bridge = BrokerBridge(broker, channels, self.registry, self.stats, self.instance_id)
        #: Local delivery (`BrokerBridge.deliver`); history.py and the seed sends use it.
        self._deliver: Callable[[Iterable[Connection], str], int] = self.bridge.deliver
        self._tp = channels.topic_prefix  # history.py publishes on topic channels
        self.claims = IdClaims(broker, channels, self.instance_id)
        self._valid_topics: set[str] = set()  # topics `publish` validated recently
        self._listener: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        #: Client frames handled, by ``type`` ("invalid" for those that were not understood).
        self.frames_in: dict[str, int] = {}
        #: Frames queued for one connection by `Connection.send_text_nowait`, by ``type`` (ack,
        #: reply, error, set_conn_id, other); broker deliveries are ``stats["deliveries"]``.
        self.frames_out: dict[str, int] = {}
        self._events = _ConnectionEvents(self)  # what its connections report (counters)
        #: Publish-to-delivery latency (`asyncws.bridge`): counts per `LATENCY_BUCKETS` bucket.
        self.latency_counts: list[int] = self.bridge.latency_counts
        #: Topic history: positions delivered, recoveries in progress (`asyncws.history`).
        self.history = Recovery(self)
        self.bridge.history = self.history
        broker.on_restored(self.history.on_broker_restored)
        #: The presence tracker of the app on this manager (`asyncws.presence`), set while
        #: it runs with presence topics: every subscription to a concrete topic with
        #: presence joins it, however it was made (asyncws's or the seed's subscribe frame,
        #: ``connection.topics``, server code's `subscribe`), and leaves it on unsubscribe
        #: or disconnect.
        self.presence: PresenceTracker | None = None

    # -- settings held by the parts -----------------------------------------------------------

    @property
    def latency_sum(self) -> float:
        """The sum of the observed publish-to-delivery latencies (seconds)."""
        return self.bridge.latency_sum

    @property
    def limits(self) -> Limits:
        return self.registry.limits

    @property
    def topic_limits(self) -> TopicLimits:
        return self.registry.topic_limits

    @property
    def max_subscriptions(self) -> int:
        return self.registry.max_subscriptions

    @property
    def max_wildcards(self) -> int:
        """Wildcard subscriptions per connection."""
        return self.registry.max_wildcards

    @max_wildcards.setter
    def max_wildcards(self, value: int) -> None:
        self.registry.max_wildcards = value

    @property
    def max_wildcards_per_user(self) -> int:
        """Distinct wildcard subscriptions per user, on this instance."""
        return self.registry.max_wildcards_per_user

    @max_wildcards_per_user.setter
    def max_wildcards_per_user(self, value: int) -> None:
        self.registry.max_wildcards_per_user = value

    @property
    def max_wildcards_per_instance(self) -> int:
        """Distinct wildcard patterns (Redis PSUBSCRIBEs) on this instance."""
        return self.registry.max_wildcards_per_instance

    @max_wildcards_per_instance.setter
    def max_wildcards_per_instance(self, value: int) -> None:
        self.registry.max_wildcards_per_instance = value

    @property
    def _wildcards(self) -> int:
        return self.registry.wildcards

    @property
    def claim_ttl(self) -> float:
        """How long a claim on a client-requested connection id lives without renewal."""
        return self.claims.ttl

    @claim_ttl.setter
    def claim_ttl(self, value: float) -> None:
        self.claims.ttl = value

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
        await self.broker.subscribe(self.channels.broadcast)
        await self.broker.subscribe(self.channels.instance)
        loop = asyncio.get_running_loop()
        self._listener = loop.create_task(
            self.bridge.listen(self.max_queue), name=f"asyncws-listener-{self.broker_channel}"
        )
        self._renewer = loop.create_task(self.claims.renew_forever(), name="asyncws-claims")

    async def shutdown(self) -> None:
        """Stop accepting, drain queues (bounded), close every connection with 1001, stop the
        listener and close the broker. Safe to call twice, or without `startup`."""
        self.accepting = False
        conns = list(self.connections.values())
        if conns:
            await asyncio.gather(*(c.drain(self.drain_timeout) for c in conns))
            await asyncio.gather(
                *(c.close(GOING_AWAY.code, GOING_AWAY.reason, drain=0) for c in conns)
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
        taken = not CONN_ID_RE.fullmatch(requested) or requested in self.connections
        instance = instance_of(requested)
        if instance is not None:
            # server-assigned format: routed to that instance, so only ours can be taken
            # back (a client reconnecting here with the id it was given); no claim needed
            taken = taken or instance != self.instance_id
            claim = False
        if taken or (claim and not await self.claims.claim(requested)):
            conn.id = self.new_connection_id()
        if not self.accepting:
            await deny(conn.websocket, SHUTTING_DOWN)  # before accept: HTTP 503
            conn.mark_closed()
            return
        # Register and subscribe the broker first, accept last: once the client sees the
        # handshake complete, a message to its id (or user, or topic) from any instance
        # reaches it. Until then nothing is queued for it (`push` needs an open connection).
        earlier = list(conn.topics)  # patterns put in `topics` before it was registered
        set.clear(conn.topics)
        self._register(conn)
        try:
            channel = self.channels.connection(conn.id)
            if channel is not None:
                await self.bridge.subscribe(channel)
            if conn.user_id is not None:
                await self.bridge.subscribe(self.channels.user(conn.user_id))
            for pattern in earlier:
                await self.subscribe(conn, pattern)
            if topic:
                await self.subscribe(conn, topic)
            if conn.state is ConnectionState.CLOSING or conn.state is ConnectionState.CLOSED:
                pass  # closed while it was being registered (shutdown): never opened
            elif accept:
                await conn.accept(subprotocol=subprotocol)
            else:
                conn.mark_open()
        except BaseException:
            self.remove_connection(conn)
            raise
        if requested != conn.id:
            conn.send_text_nowait(dumps({"type": "set_conn_id", "conn_id": conn.id}))

    def new_connection_id(self) -> str:
        """A fresh server-assigned id, ``{instance}.{random}``: routed by the instance
        channel (no broker subscription per connection)."""
        return f"{self.instance_id}.{new_connection_id()}"

    def _register(self, conn: Connection) -> None:
        conn.manager = self
        conn.events = self._events
        self.registry.add(conn)

    def remove_connection(self, connection: Connection) -> Awaitable[None]:
        """Forget a connection that is already closed (after ``WebSocketDisconnect``).

        The index is updated at once; broker unsubscriptions run in the background. Returns
        an awaitable that is already done, so ``await manager.remove_connection(c)`` (as in
        the seed's README) works as well as a plain call.
        """
        claimed = connection.id in self.claims
        channels = self._forget(connection)
        if channels or claimed:
            self._spawn(self._cleanup(channels, connection.id if claimed else None))
        if self.presence is not None and connection in self.presence.held:
            self._spawn(self.presence.drop(connection))
        return seed.DONE

    async def disconnect(self, connection: Connection) -> None:
        """`remove_connection`, waiting for the broker unsubscriptions (and the release of a
        client-requested id)."""
        claimed = connection.id in self.claims
        channels = self._forget(connection)
        await self._cleanup(channels, connection.id if claimed else None)
        if self.presence is not None:
            await self.presence.drop(connection)

    async def _cleanup(self, channels: list[str], claimed_id: str | None) -> None:
        await self.bridge.unsubscribe_many(channels)
        if claimed_id is not None and claimed_id not in self.connections:
            await self.claims.release(claimed_id)

    async def close_connection(
        self, connection: Connection, code: int = CloseCode.NORMAL_CLOSURE
    ) -> None:
        """Close the connection with ``code`` and forget it."""
        await connection.close(code)
        await self.disconnect(connection)

    def _forget(self, conn: Connection) -> list[str]:
        """Drop ``conn`` from every local table; return the broker channels nobody needs now."""
        self.history.forget(conn)  # first: it reads the subscriptions `remove` clears
        channels = self.registry.remove(conn)
        if channels is None:
            return []
        self._released(channels)
        conn.mark_closed()
        self.claims.discard(conn.id)  # released by the caller (_cleanup)
        return channels

    def set_conn_id(self, connection: Connection, conn_id: str) -> None:
        """Give ``connection`` a new id and tell the client (seed API).

        Raises ValueError if the id is malformed or belongs to another live connection.
        """
        if not CONN_ID_RE.fullmatch(conn_id):
            raise ValueError("invalid connection id")
        instance = instance_of(conn_id)
        if instance is not None and instance != self.instance_id:
            raise ValueError("connection id of another instance")
        other = self.connections.get(conn_id)
        if other is not None and other is not connection:
            raise ValueError("connection id already in use")
        moved = self.registry.rename(connection, conn_id)
        if moved is not None:
            old_channel, new_channel = moved
            if old_channel is not None:
                self._spawn(self.bridge.unsubscribe_many([old_channel]))
            if new_channel is not None:
                self._spawn(self.bridge.subscribe(new_channel))
        connection.send_text_nowait(dumps({"type": "set_conn_id", "conn_id": conn_id}))

    # -- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, connection: Connection, pattern: str) -> None:
        """Subscribe ``connection`` to an MQTT ``pattern`` (validated; InvalidTopicError).
        A concrete topic with presence: it joins (and the join is sent) before this returns."""
        channel = self.registry.subscribe(connection, pattern)
        if channel is not None:
            await self.bridge.subscribe(channel)
        if self.presence is not None:
            await self.presence.subscribed(connection, pattern)

    async def unsubscribe(self, connection: Connection, pattern: str) -> None:
        self.history.unsubscribed(connection, pattern)
        channel = self.registry.unsubscribe(connection, pattern)
        if channel is not None:
            self._released((channel,))
            await self.bridge.unsubscribe_many([channel])
        if self.presence is not None:
            await self.presence.leave(connection, pattern)

    def subscribe_nowait(self, connection: Connection, pattern: str) -> str | None:
        """Update the index now and subscribe the broker in the background.

        Returns the broker channel when it is new on this instance (it is being subscribed).
        """
        channel = self.registry.subscribe(connection, pattern)
        if channel is not None:
            self._spawn(self.bridge.subscribe(channel))
        if self.presence is not None:
            self._spawn(self.presence.subscribed(connection, pattern))
        return channel

    def unsubscribe_nowait(self, connection: Connection, pattern: str) -> None:
        self.history.unsubscribed(connection, pattern)
        channel = self.registry.unsubscribe(connection, pattern)
        if channel is not None:
            self._released((channel,))
            self._spawn(self.bridge.unsubscribe_many([channel]))
        if self.presence is not None:
            self._spawn(self.presence.leave(connection, pattern))

    def _released(self, channels: Iterable[str]) -> None:
        """Topic channels no local connection needs now: their history positions go."""
        prefix = self._tp
        for channel in channels:
            if channel.startswith(prefix):
                self.history.released(channel[len(prefix) :])

    # -- distributed sends (every instance) ---------------------------------------------------

    def broker_header(self) -> bytes:
        """The first line of a broker message from this instance (dedup and latency)."""
        return self.bridge.header()

    def _publish_lost(self, channel: str, exc: Exception | None) -> None:
        self.bridge.publish_lost(channel, exc)

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
        await self.bridge.publish(self._tp + topic, dumps(data) if text is None else text)

    async def publish_valid(self, topic: str, text: str) -> None:
        """`publish` for a topic the caller has validated already (`validate_topic`)."""
        await self.bridge.publish(self._tp + topic, text)

    async def publish_to_connection(
        self, conn_id: str, data: Any = None, *, text: str | None = None
    ) -> None:
        """Send to the connection with this id, wherever it is connected."""
        text = dumps(data) if text is None else text
        instance = instance_of(conn_id)
        if instance is None:
            await self.bridge.publish(self.channels.conn_prefix + channel_key(conn_id), text)
        else:
            await self.bridge.publish(self.channels.instance_prefix + instance, text, route=conn_id)

    async def publish_to_user(
        self, user_id: str, data: Any = None, *, text: str | None = None
    ) -> None:
        """Send to every connection of ``user_id`` on every instance."""
        await self.bridge.publish(
            self.channels.user(user_id), dumps(data) if text is None else text
        )

    async def publish_broadcast(self, data: Any = None, *, text: str | None = None) -> None:
        """Send to every connection on every instance."""
        await self.bridge.publish(self.channels.broadcast, dumps(data) if text is None else text)

    # -- the seed's API (`asyncws.seed`) ------------------------------------------------------

    def send(self, message: Message) -> Awaitable[None]:
        """Deliver ``message.data`` to local subscribers of ``message.topic`` (seed API)."""
        return seed.send(self, message)

    def broadcast(self, message: Message | dict[str, Any]) -> Awaitable[None]:
        """Deliver ``message.data`` to every local connection (seed API).

        A dict (the seed's README passes the frame it received) is the data itself.
        """
        return seed.broadcast(self, message)

    def send_by_conn_id(self, message: Message) -> Awaitable[None]:
        """Deliver ``message.data`` to the local connection(s) named by ``message.conn_id``."""
        return seed.send_by_conn_id(self, message)

    def send_msg(self, message: Message) -> Awaitable[None]:
        """`broadcast`, `send_by_conn_id` or `send`, by ``message.type`` (seed API)."""
        return seed.send_msg(self, message)

    async def receive(self, connection: Connection, message: Any) -> None:
        """Handle one frame from a seed-protocol client, on every instance.

        ``subscribe``/``unsubscribe`` change the connection's subscriptions; ``send`` goes to
        the topic's subscribers, ``broadcast`` to everyone, ``send_by_conn_id`` to the named
        connection(s). Recipients get the frame's other fields. Bad frames get an error frame;
        the connection stays open.
        """
        await seed.receive(self, connection, message)

    def charge(
        self, connection: Connection, recipients: int, text: str, *, count_recipients: bool = False
    ) -> None:
        """Count a client frame that publishes ``text`` to ``recipients`` broker channels
        against the connection's `FanoutBudget` (raises `RateLimitedError`/`ProtocolError`)."""
        self.registry.charge(connection, recipients, text, count_recipients=count_recipients)

    async def reject(self, connection: Connection, exc: AsyncWSError, frame: Any = None) -> None:
        connection.send_text_nowait(error_frame_for(exc, frame_id(frame)))

    # -- for the parts beside the bridge (history.py) ----------------------------------------

    def topic_channel(self, topic: str) -> str:
        """The broker channel of ``topic``'s subscribers (``{ns}/t/{topic}``)."""
        return self._tp + topic

    def deliver_local(self, targets: Iterable[Connection], text: str) -> int:
        """Push the frame ``text`` to each of ``targets`` (connections of this instance) as one
        shared message, as a broker message is delivered; how many took it (a connection
        that is closing, or whose queue is full, does not)."""
        return self._deliver(targets, text)

    def publish_failed(self, topic: str, exc: Exception) -> None:
        """Report a publish on ``topic`` that the broker refused, as the manager's own are
        (a warning at the first, then at most one every few seconds with the count)."""
        self._publish_lost(topic, exc)

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` as a background task of the manager (cancelled at `shutdown`)."""
        self._spawn(coro)

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


class _ConnectionEvents:
    """`ConnectionEvents` of the manager's connections: its counters, and forgetting a
    connection closed for overflowing its queue."""

    __slots__ = ("frames_out", "manager", "stats")

    def __init__(self, manager: WebSocketManager) -> None:
        self.manager = manager
        self.stats = manager.stats
        self.frames_out = manager.frames_out

    def frame_queued(self, kind: str) -> None:
        counts = self.frames_out
        counts[kind] = counts.get(kind, 0) + 1

    def message_dropped(self, conn: Connection) -> None:
        self.stats["slow_consumer_drops"] += 1

    def overflowed(self, conn: Connection) -> None:
        self.stats["slow_consumer_closes"] += 1
        self.manager.remove_connection(conn)
