"""`Connection`: one websocket, its identity, its subscriptions and its outgoing queue.

Sending never blocks the caller and keeps the order of messages. While the socket takes
data, `Connection.push` writes a message at once (the ASGI send is stepped inline, like an
eager task: it completes without suspending when the transport is writable). The first time
the transport pushes back, the unfinished send is handed to ONE writer task, and every later
message goes into ONE bounded queue that this writer drains, in order, before it ends. So an
idle connection holds no task and no queue, and a slow one holds exactly one of each.

The queue is bounded twice: at ``max_queue`` messages and at ``max_queue_bytes`` bytes of
frame payload (default 1 MiB; a message larger than that is still taken while the queue is
empty, so one big frame is not refused to a connection that is only briefly behind). When a
message would cross either bound the slow-consumer policy applies: ``"close"`` (default)
closes the connection with 1013 (try again later) and logs it; ``"drop_oldest"`` drops the
oldest queued messages until it fits and counts them in `dropped`. Messages are shared
between recipients (never copied), so a stalled connection holds at most ``max_queue_bytes``
of frames beyond what every healthy one needs anyway, plus what the server's transport buffers.

The connection owns its state (`ConnectionState`): ``CONNECTING → OPEN → CLOSING → CLOSED``
(or straight to CLOSED when the peer goes away or the handshake is refused); any other
change raises RuntimeError, as Starlette's ``WebSocket`` does for messages out of order.
Whoever registers it (the manager) learns what it needs through `ConnectionEvents`: the
frames queued, the messages dropped and an overflow that closed it.

A `Connection` can also be built by hand around a websocket (the seed's way): its state follows
the websocket's (OPEN if it is accepted already), ``async for message in connection`` yields the
client's frames as seed `Message` objects, and ``connection.topics`` is a `TopicSet` whose changes
reach the manager's routing index once the connection is registered.

Size (over 600 lines): one concept, the connection's lifecycle and its send path, kept in
one file because the inline send, the writer and the queue bounds share state that a split
would expose (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .asgi_send import Send, direct_send
from .codes import CloseCode, ErrorCode
from .error_policy import FRAME_TOO_BIG, SLOW_CONSUMER, Where, apply, decide
from .exceptions import AsyncWSError, ProtocolError, UnknownTypeError
from .message import CLIENT_TYPES, NEEDS_TOPIC, NOT_SEED_PRESENCE, Message
from .protocol import close_reason, decode_json, dumps, error_frame_for, frame_id, parse_frame
from .topicset import TopicSet

if TYPE_CHECKING:
    from .manager import WebSocketManager

__all__ = [
    "Connection",
    "ConnectionEvents",
    "ConnectionState",
    "SlowConsumerPolicy",
    "TopicSet",
    "new_connection_id",
]

logger = logging.getLogger("asyncws.connection")

SlowConsumerPolicy = Literal["close", "drop_oldest"]
Outgoing = dict[str, Any]  # an ASGI "websocket.send" message, shared by every recipient
T = TypeVar("T")


def new_connection_id() -> str:
    """A server-assigned connection id: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


class ConnectionState(Enum):
    CONNECTING = "connecting"  # created, not accepted yet
    OPEN = "open"  # accepted; frames flow both ways
    CLOSING = "closing"  # close started: nothing more is queued
    CLOSED = "closed"  # the socket is gone


#: The state changes a connection allows (`Connection._enter`); any other one is a bug.
_NEXT: dict[ConnectionState, frozenset[ConnectionState]] = {
    ConnectionState.CONNECTING: frozenset(
        {ConnectionState.OPEN, ConnectionState.CLOSING, ConnectionState.CLOSED}
    ),
    ConnectionState.OPEN: frozenset({ConnectionState.CLOSING, ConnectionState.CLOSED}),
    ConnectionState.CLOSING: frozenset({ConnectionState.CLOSED}),
    ConnectionState.CLOSED: frozenset(),
}


class ConnectionEvents(Protocol):
    """What a connection reports to whoever registered it (`WebSocketManager`: counters)."""

    def frame_queued(self, kind: str) -> None:
        """A frame the server built was queued (``kind``: ack, reply, error, ...)."""

    def message_dropped(self, conn: Connection) -> None:
        """``drop_oldest``: a queued message was dropped to make room."""

    def overflowed(self, conn: Connection) -> None:
        """``close``: the queue overflowed and the connection is closing with 1013; forget it
        now (the peer may never read again, nor answer the close)."""


class Connection:
    """A websocket with an id, an optional user id, subscriptions and a bounded outgoing queue.

    ``id`` is assigned (or validated) by the server and unique on its manager; ``user_id``
    groups the connections of one user. ``topics`` holds the subscription patterns (a
    `TopicSet`: changing it on a registered connection subscribes or unsubscribes it).
    """

    __slots__ = (
        "__weakref__",
        "_asgi_send",
        "_closed",
        "_drained",
        "_queue",
        "_queued_bytes",
        "_state",
        "_topics",
        "_writer",
        "close_code",
        "dropped",
        "events",
        "id",
        "manager",
        "max_frame_size",
        "max_queue",
        "max_queue_bytes",
        "principal",
        "slow_consumer",
        "strikes",
        "user_id",
        "websocket",
    )

    def __init__(
        self,
        websocket: WebSocket,
        conn_id: str | None = None,
        topic: str | None = None,
        *,
        user_id: str | None = None,
        max_queue: int = 2048,
        slow_consumer: SlowConsumerPolicy = "close",
        max_frame_size: int = 1 << 20,
        max_queue_bytes: int = 1 << 20,
    ) -> None:
        self.websocket = websocket
        # The server's send beneath Starlette's layers (`asyncws.asgi_send`), for deliveries.
        self._asgi_send: Send | None = direct_send(websocket)
        self.id: str = conn_id or new_connection_id()
        self.user_id = user_id
        self._topics = TopicSet(self, (topic,) if topic else ())
        # Built around a websocket accepted already (the seed's way): open at once.
        self._state = ConnectionState.OPEN if _accepted(websocket) else ConnectionState.CONNECTING
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.slow_consumer: SlowConsumerPolicy = slow_consumer
        self.max_frame_size = max_frame_size
        self.manager: WebSocketManager | None = None
        #: Told what the manager counts (`ConnectionEvents`); set when it is registered.
        self.events: ConnectionEvents | None = None
        #: Whatever authentication produced for this connection (a user, claims, ...).
        self.principal: Any = None
        self.dropped = 0
        self.strikes = 0  # for rejected frames (`asyncws.error_policy`); good ones take one back
        self.close_code: int | None = None
        self._queue: deque[Outgoing] | None = None  # created at the first backpressure
        self._queued_bytes = 0  # frame payload of the queue and of the send in progress
        self._writer: asyncio.Task[None] | None = None
        self._closed: asyncio.Event | None = None
        self._drained: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.id} user={self.user_id!r} {self.state.value}>"

    @property
    def state(self) -> ConnectionState:
        """Where the connection is in its life (changed only by the connection itself)."""
        return self._state

    def _enter(self, state: ConnectionState) -> None:
        if state not in _NEXT[self._state]:
            raise RuntimeError(
                f"connection {self.id}: {self._state.value} -> {state.value} is not allowed"
            )
        self._state = state

    @property
    def topics(self) -> TopicSet:
        """The subscription patterns. On a registered connection, adding or removing one
        subscribes or unsubscribes it on the manager (see `TopicSet`)."""
        return self._topics

    @topics.setter
    def topics(self, patterns: Iterable[str]) -> None:
        wanted = set(patterns)
        current = self._topics
        for pattern in [p for p in current if p not in wanted]:
            current.discard(pattern)
        for pattern in wanted:
            current.add(pattern)

    # -- lifecycle ----------------------------------------------------------------------------

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        """Accept the websocket (if not done yet): frames can be sent from now on.

        RuntimeError once the connection is closing or closed.
        """
        if self.websocket.application_state is WebSocketState.CONNECTING:
            await self.websocket.accept(subprotocol=subprotocol, headers=headers)
        self.mark_open()

    def mark_open(self) -> None:
        """Open without accepting here (the websocket was accepted by its owner)."""
        if self._state is not ConnectionState.OPEN:
            self._enter(ConnectionState.OPEN)

    async def close(
        self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "", *, drain: float = 1.0
    ) -> None:
        """Close the websocket with ``code`` and ``reason`` (cut to the 123 bytes a close frame
        holds), after sending what is already queued (for at most ``drain`` seconds). Does
        nothing when the connection is closing or closed already."""
        if self._state is ConnectionState.CLOSING or self._state is ConnectionState.CLOSED:
            return
        self._enter(ConnectionState.CLOSING)
        if drain > 0:
            await self.drain(drain)
        await self._close_socket(code, reason)

    async def _close_socket(self, code: int, reason: str = "") -> None:
        self._stop_writer()
        self.close_code = code
        ws = self.websocket
        if ws.application_state is not WebSocketState.DISCONNECTED and (
            ws.client_state is not WebSocketState.DISCONNECTED
        ):
            # Wait for the close frame at most 2 s, but do not cancel it: a peer that is not
            # reading now (full TCP window) still gets it if it reads again.
            closing = _spawn(ws.close(code, close_reason(reason)))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(closing), 2.0)
        self.mark_closed()

    def mark_closed(self) -> None:
        """The socket is gone (or was never accepted): CLOSED, queue dropped, writer stopped.
        Idempotent."""
        if self._state is not ConnectionState.CLOSED:
            self._enter(ConnectionState.CLOSED)
        self._clear_queue()
        self._stop_writer()
        if self._closed is not None:
            self._closed.set()

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()

    async def drain(self, within: float) -> None:
        """Wait until the writer has sent everything queued, for at most ``within`` seconds."""
        if self._writer is None:
            return
        if self._drained is None:
            self._drained = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), within)

    # -- sending ------------------------------------------------------------------------------

    def push(self, message: Outgoing) -> bool:
        """Send or queue an ASGI send message (shared, never mutated). False if it was not
        taken: the connection is not open, or the ``"close"`` policy just closed it.

        With nothing pending, the ASGI send is run until it completes or would wait for the
        transport; in the latter case a writer task finishes it and sends the backlog, then
        ends. (One function: this runs once per delivery.)
        """
        if self._state is not _OPEN and not self._opened_meanwhile():
            return False
        if self._writer is not None:
            return self._enqueue(message)
        send = self._asgi_send  # see `_send`
        coro: Any
        if (
            send is not None
            and self.websocket.application_state is _WS_CONNECTED
            and message["type"] == "websocket.send"
        ):
            coro = send(message)
        else:
            coro = self.websocket.send(message)
        try:
            step = coro.send(None)
            # A bare yield is a checkpoint (``asyncio.sleep(0)``; anyio's memory streams, as in
            # Starlette's TestClient, start every send with one), not a wait: step past it.
            for _ in range(_CHECKPOINTS):
                if step is not None:
                    break
                step = coro.send(None)
        except StopIteration:
            return True
        except Exception as exc:  # the socket went away: the reader ends the connection
            self._send_failed(exc)
            return False
        if self._queue is None:
            self._queue = deque()
        size = _size(message)
        self._queued_bytes += size  # held until sent, like the queued ones
        self._writer = asyncio.get_running_loop().create_task(
            self._write_loop(_Resume(coro, step), size)
        )
        return True

    def _enqueue(self, message: Outgoing) -> bool:
        """Queue behind the writer, applying the slow-consumer policy at the bounds."""
        queue = self._queue
        assert queue is not None
        size = _size(message)
        while queue and (
            len(queue) >= self.max_queue or self._queued_bytes + size > self.max_queue_bytes
        ):
            if self.slow_consumer != "drop_oldest":
                self._overflow(size)
                return False
            self._queued_bytes -= _size(queue.popleft())
            self.dropped += 1
            if self.events is not None:
                self.events.message_dropped(self)
        queue.append(message)
        self._queued_bytes += size
        return True

    def _clear_queue(self) -> None:
        if self._queue is not None:
            self._queue.clear()
        self._queued_bytes = 0

    def _opened_meanwhile(self) -> bool:
        """A hand-built connection whose websocket was accepted directly (``websocket.accept()``,
        not `accept`) after it was built: it is open now."""
        if self._state is ConnectionState.CONNECTING and _accepted(self.websocket):
            self._enter(ConnectionState.OPEN)
            return True
        return False

    def _send(self, message: Outgoing) -> Any:
        """The coroutine that sends ``message`` (the writer's; `push` has it inline): a
        ``websocket.send`` on a websocket Starlette holds open goes straight to the server's
        send (`asyncws.asgi_send`: Starlette's ``WebSocket.send`` would only check that state
        and forward it); anything else goes through ``WebSocket.send``."""
        send = self._asgi_send
        if (
            send is not None
            and self.websocket.application_state is _WS_CONNECTED
            and message["type"] == "websocket.send"
        ):
            return send(message)
        return self.websocket.send(message)

    def _send_failed(self, exc: Exception) -> None:
        """A send raised: the socket went away (or was closed under us). Keep Starlette's
        state as its ``WebSocket.send`` does (an OSError from the server: disconnected) and
        stop sending; the reader ends the connection."""
        if isinstance(exc, OSError) and self._asgi_send is not None:
            ws = self.websocket
            if ws.application_state is _WS_CONNECTED:
                ws.application_state = WebSocketState.DISCONNECTED
        if self._state is _OPEN:
            self._enter(ConnectionState.CLOSING)

    @property
    def queued(self) -> int:
        """How many messages wait in the outgoing queue."""
        return len(self._queue) if self._queue is not None else 0

    @property
    def queued_bytes(self) -> int:
        """How many bytes of frames wait in the outgoing queue (with the one being sent)."""
        return self._queued_bytes

    def send_text_nowait(self, text: str) -> bool:
        """Queue one text frame (reported by type to `events`, the manager's ``frames_out``)."""
        if not self.push({"type": "websocket.send", "text": text}):
            return False
        if self.events is not None:
            self.events.frame_queued(_frame_kind(text))
        return True

    async def send_text(self, text: str) -> None:
        """Queue one text frame; RuntimeError if the connection is not open (never a silent drop).

        A slow consumer closed for a full queue (1013) raises too; with ``"drop_oldest"`` the
        frame is queued and the oldest one dropped.
        """
        if not self.send_text_nowait(text):
            raise RuntimeError(
                f"connection {self.id} is {self.state.value}: the frame was not sent"
            )

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Queue ``data`` as a JSON text frame (seed API; returns once queued).

        RuntimeError if the connection is not open, as Starlette's ``WebSocket.send_json``.
        """
        await self.send_text(dumps(data))

    def _overflow(self, size: int) -> None:
        logger.warning(
            "connection %s: outgoing queue full (%d messages, %d bytes; limits %d, %d); "
            "closing with 1013",
            self.id,
            self.queued,
            self._queued_bytes + size,
            self.max_queue,
            self.max_queue_bytes,
        )
        self._enter(ConnectionState.CLOSING)
        self.close_code = SLOW_CONSUMER.code
        self._clear_queue()
        self._stop_writer()
        _spawn(self._close_socket(SLOW_CONSUMER.code, SLOW_CONSUMER.reason))
        # The manager forgets it now: the peer may never read again (nor answer the close),
        # and its handler may stay blocked in receive() until the TCP connection dies.
        if self.events is not None:
            self.events.overflowed(self)

    async def _write_loop(self, first: Any, size: int) -> None:
        """Finish the send the transport pushed back on, send the backlog, then end.

        A message's bytes count against ``max_queue_bytes`` until its send has completed.
        """
        try:
            await first
            self._queued_bytes -= size
            queue = self._queue
            while queue:
                message = queue.popleft()
                await self._send(message)
                self._queued_bytes -= _size(message)
            if self._drained is not None:
                self._drained.set()
                self._drained = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket went away: stop sending, the reader ends it
            self._clear_queue()
            self._send_failed(exc)
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None

    # -- receiving ----------------------------------------------------------------------------

    async def receive_text(self) -> str | None:
        """The next text frame; None for a binary frame. Raises WebSocketDisconnect at the end.

        A frame over ``max_frame_size`` (counted in characters for text, bytes for binary;
        the server's ``--ws-max-size`` bounds the bytes, see `asyncws.serve`) closes the
        connection with 1009.
        """
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            self.mark_closed()
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        text = message.get("text")
        size = len(text) if text is not None else len(message.get("bytes") or b"")
        if size > self.max_frame_size:
            await self._close_socket(FRAME_TOO_BIG.code, FRAME_TOO_BIG.reason)
            raise WebSocketDisconnect(FRAME_TOO_BIG.code)
        return text

    async def receive_json(self, mode: str = "text") -> Any:
        """The next frame decoded as JSON (seed API). Raises WebSocketDisconnect at the end."""
        return parse_json_text(await self.receive_text())

    # iter_frames / iter_json / __aiter__ return the one generator `_iter_decoded` instead of
    # wrapping it in a generator of their own: an idle connection waits in every generator
    # frame it is suspended in (~300 bytes each, for the connection's life).

    def iter_frames(self) -> AsyncIterator[dict[str, Any]]:
        """Yield client frames that follow the protocol envelope; answer the others.

        A frame that is not JSON, not an object or binary gets an error frame and is skipped;
        the iteration ends cleanly when the client disconnects (or is closed for abuse).
        """
        return self._iter_decoded(parse_frame)

    def iter_json(self) -> AsyncIterator[Any]:
        """Yield decoded JSON objects until the client disconnects (seed API).

        Frames that are not JSON objects are answered with an error frame and skipped.
        """
        return self._iter_decoded(_json_object)

    def __aiter__(self) -> AsyncIterator[Message]:
        """``async for message in connection``: the client's frames as seed `Message` objects.

        As in the seed, a frame must be a JSON object with a client ``type``, a ``topic`` where
        the type needs one and a ``conn_id`` for ``send_by_conn_id``. Other frames are answered
        with an error frame and skipped (the seed yielded None for them); the iteration ends when
        the client disconnects.
        """
        return self._iter_decoded(_client_message)

    async def _iter_decoded(self, decode: Callable[[str | None], T]) -> AsyncIterator[T]:
        """Receive and ``decode`` frames until the end; answer the ones it refuses."""
        while (
            self._state is not ConnectionState.CLOSING and self._state is not ConnectionState.CLOSED
        ):
            try:
                text = await self.receive_text()
            except WebSocketDisconnect:
                return
            try:
                value = decode(text)
            except ProtocolError as exc:
                if not await self.reject(exc, None):
                    return
                continue
            yield value

    async def reject(self, exc: AsyncWSError, frame: Any, *, text: str | None = None) -> bool:
        """Answer a bad frame with an error frame; False if the connection was closed for abuse.

        The error policy decides (`asyncws.error_policy`): a frame that was the client's
        fault costs it strikes, and too many close the connection with 1008; errors that are
        the server's (``broker_unavailable``, ``internal_error``) cost nothing. ``text`` is
        the error frame to send when the app's framing is not asyncws's envelope (an empty
        string sends nothing).
        """
        answer = decide(exc, Where.FRAME)
        if text is None:
            return await apply(self, answer, error_frame_for, frame_id(frame))
        return await apply(self, answer, lambda _error, _id: text)

    def strike(self, cost: int) -> int:
        """Count a bad frame against the connection; its strikes now (`asyncws.error_policy`)."""
        self.strikes += cost
        return self.strikes

    def good_frame(self) -> None:
        if self.strikes:
            self.strikes -= 1

    async def wait_closed(self) -> None:
        if self._closed is None:
            self._closed = asyncio.Event()
        if self._state is ConnectionState.CLOSED:
            return
        await self._closed.wait()


def _size(message: Outgoing) -> int:
    """The payload bytes of an ASGI send message (UTF-8 for text; ASCII is counted at once)."""
    text = message.get("text")
    if text is not None:
        return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    data = message.get("bytes")
    return len(data) if data is not None else 0


def _json_object(text: str | None) -> dict[str, Any]:
    obj = parse_json_text(text)
    if not isinstance(obj, dict):
        raise ProtocolError("a frame must be a JSON object")
    return obj


def _client_message(text: str | None) -> Message:
    """A seed client frame as a `Message` (the checks of the seed's ``validate_incoming_message``)."""
    frame = _json_object(text)
    kind = frame.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        if kind in ("presence", "presence_stats"):
            raise UnknownTypeError(NOT_SEED_PRESENCE)
        raise UnknownTypeError(f"Invalid message type: {str(kind)[:40]}")
    if frame.get("topic") is None and kind in NEEDS_TOPIC:
        raise ProtocolError(f"{kind!r} needs a 'topic'", code=ErrorCode.INVALID_TOPIC)
    if frame.get("conn_id") is None and kind == "send_by_conn_id":
        raise ProtocolError("'send_by_conn_id' needs a 'conn_id'")
    return Message.from_client_message(data=frame)


def _accepted(websocket: WebSocket) -> bool:
    return (
        websocket.application_state is WebSocketState.CONNECTED
        and websocket.client_state is WebSocketState.CONNECTED
    )


def parse_json_text(text: str | None) -> Any:
    """Decode JSON text; ProtocolError for binary frames and invalid JSON (strictly: no NaN,
    Infinity, lone surrogates; see `decode_json`), so what a client sends can be forwarded."""
    if text is None:
        raise ProtocolError("binary frames are not supported", code=ErrorCode.UNSUPPORTED_DATA)
    return decode_json(text)


_CHECKPOINTS = 4  # bare yields stepped past inline by `Connection.push`
# Looked up once: an Enum member read through its class costs ~0.1 µs, on every delivery.
_OPEN = ConnectionState.OPEN
_WS_CONNECTED = WebSocketState.CONNECTED
_KNOWN_KINDS = frozenset({"ack", "reply", "error", "set_conn_id"})


def _frame_kind(text: str) -> str:
    """The ``type`` of a frame the server built (they start with ``{"type":"``), for metrics."""
    if text.startswith('{"type":"'):
        end = text.find('"', 9, 32)
        if end > 0 and (kind := text[9:end]) in _KNOWN_KINDS:
            return kind
    return "other"


_background: set[asyncio.Task[Any]] = set()


def _spawn(coro: Any) -> asyncio.Task[Any]:
    """Run ``coro`` in a task that is kept alive and whose exception is never unretrieved."""
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled():
        task.exception()  # the peer went away while closing: nothing to report


class _Resume:
    """Await the rest of a coroutine that was stepped once by hand (see `Connection.push`).

    It forwards what the task sends or throws into the coroutine, exactly as if the task had
    driven the coroutine from its start.
    """

    __slots__ = ("coro", "step")

    def __init__(self, coro: Any, step: Any) -> None:
        self.coro, self.step = coro, step

    def __await__(self) -> Any:
        coro, step = self.coro, self.step
        while True:
            try:
                value = yield step
            except BaseException as exc:
                try:
                    step = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    step = coro.send(value)
                except StopIteration as stop:
                    return stop.value
