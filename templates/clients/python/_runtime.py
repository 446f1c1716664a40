"""The connection machinery of the client: requests matched to their answers by `id`,
subscriptions, reconnection with exponential backoff.

It speaks the asyncws wire protocol (JSON objects in websocket text frames) on the
`websockets` package; nothing here depends on asyncws. This file is the same in every
client `asyncws codegen` writes: what differs (the names of the client's exceptions and of
its logger) and the frame types of asyncws's envelope are in `_header`.

Written by `asyncws codegen` with the client: do not edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random
import re
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypedDict, TypeVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from ._header import (
    ANSWERS,
    ERROR,
    LOGGER,
    SUBSCRIBE,
    UNSUBSCRIBE,
    ClientError,
    ServerError,
)
from .errors import (
    ConnectionFailed,
    ConnectionLost,
    RequestTimeout,
    UnexpectedFrame,
    error_from_frame,
    validation_failed,
)

__all__ = [
    "UNSET",
    "BaseClient",
    "ClientOptions",
    "Presence",
    "PresenceMember",
    "PresenceStats",
    "Subscription",
    "build",
    "dump",
    "fill_topic",
    "parse_reply",
    "topic_matches",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

logger = logging.getLogger(LOGGER)

_PARAMETER = re.compile(r"\{([^{}]+)\}")
_MAX_FRAME = 16 * 1024 * 1024


class PresenceMember(BaseModel):
    """A member of a topic with presence: its id (user or connection id) and its info."""

    member: str
    info: Any = None


class Presence(BaseModel):
    """The answer of a ``presence`` request (at most the server's cap of members)."""

    members: list[PresenceMember]
    count: int
    truncated: bool = False


class PresenceStats(BaseModel):
    """The answer of a ``presence_stats`` request."""

    count: int


class _Unset:
    """The default of keyword arguments that were not given."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class ClientOptions(TypedDict, total=False):
    """The options of a client (see `BaseClient`)."""

    token: str | None
    params: Mapping[str, str] | None
    headers: Mapping[str, str] | None
    subprotocols: Sequence[str] | None
    timeout: float
    open_timeout: float
    reconnect: bool
    initial_backoff: float
    max_backoff: float
    max_queue: int
    on_error: Callable[[ServerError], object] | None
    on_recovery: Callable[[str, bool], object] | None


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether a concrete topic matches a subscription pattern (`+`: one level, `#`: the
    remaining levels, including none)."""
    levels = topic.split("/")
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(parts) == len(levels)


def _level(name: str, value: object) -> str:
    if value is None:
        return "+"
    text = str(value)
    if not text or any(c in text for c in "/+#") or any(ord(c) < 0x20 for c in text):
        raise ValueError(f"{name}={text!r} is not a topic level")
    return text


def fill_topic(address: str, values: Mapping[str, object]) -> str:
    """A topic from an address template: each `{name}` replaced by its value, or by `+`
    (any) when the value is None."""
    return _PARAMETER.sub(lambda m: _level(m.group(1), values.get(m.group(1))), address)


def fill_path(address: str, values: Mapping[str, object]) -> str:
    """The endpoint path with its parameters (URL-quoted)."""
    return _PARAMETER.sub(lambda m: quote(str(values[m.group(1)]), safe=""), address)


def build(model: type[M], data: M | None, fields: Mapping[str, Any]) -> M:
    """The payload of a request: ``data`` itself, or a model made of keyword arguments
    (invalid ones raise the `validation_error` exception, as the server would)."""
    given = {k: v for k, v in fields.items() if v is not UNSET}
    if data is not None:
        if given:
            raise TypeError(f"pass a {model.__name__} or keyword arguments, not both")
        return data
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise validation_failed(exc) from None


def dump(value: Any) -> Any:
    """A payload as JSON-ready data (models by alias)."""
    return to_jsonable_python(value, by_alias=True)


def parse_reply(adapter: TypeAdapter[T], answer: Mapping[str, Any], op: str) -> T:
    """The ``data`` of a reply frame, validated."""
    try:
        return adapter.validate_python(answer.get("data"))
    except ValidationError as exc:
        message = f"the reply to {op!r} does not match the document: {exc}"
        raise UnexpectedFrame(message) from exc


class Subscription(Generic[T]):
    """A subscription to a topic (a concrete address or a pattern): an async context
    manager and an async iterator of typed events.

    ``async with client.subscribe_...(...) as events: async for event in events: ...``;
    or with ``on_event``: ``sub = await client.subscribe_...(..., on_event=handle)``
    then ``await sub.close()``. Entering it sends ``subscribe`` and waits for the
    ``ack`` (an error frame raises its exception). After a reconnection the client
    subscribes again; if the server then refuses, the iterator raises that error.
    Events that arrive while the queue is full push out the oldest (counted in
    ``dropped``).
    """

    def __init__(
        self,
        client: BaseClient,
        topic: str,
        parse: Callable[[Any], T],
        types: frozenset[str],
        on_event: Callable[[T], object] | None,
        max_queue: int,
    ) -> None:
        self.topic = topic
        self.dropped = 0
        #: After a reconnection, on a history topic: True when every missed event was
        #: delivered again, False when the server could not (refetch your state). None
        #: before any reconnection.
        self.recovered: bool | None = None
        self._client = client
        self._parse = parse
        self._types = types
        self._on_event = on_event
        self._events: deque[T] = deque(maxlen=max_queue)
        self._ready = asyncio.Event()
        self._active = False
        self._closed = False
        self._error: BaseException | None = None
        self._worker: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """Whether the server has the subscription right now (False while reconnecting,
        after a refusal and once closed)."""
        return (
            self._active
            and not self._closed
            and self._error is None
            and self.topic in self._client._server_topics
        )

    def __await__(self) -> Generator[Any, None, Self]:
        return self.start().__await__()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        if self._on_event is not None:
            raise TypeError("a subscription with on_event cannot be iterated")
        return self

    async def __anext__(self) -> T:
        event = await self._next()
        if event is _END:
            raise StopAsyncIteration
        return event  # type: ignore[no-any-return]

    async def _next(self) -> Any:
        while True:
            if self._events:
                return self._events.popleft()
            if self._error is not None:
                raise self._error
            if self._closed:
                return _END
            self._ready.clear()
            await self._ready.wait()

    async def start(self) -> Self:
        """Subscribe (once): returns when the server acknowledged it."""
        if self._closed:
            raise RuntimeError(f"the subscription to {self.topic!r} is closed")
        if not self._active:
            await self._client._add_subscription(self)
            self._active = True
            if self._on_event is not None and self._worker is None:
                self._worker = asyncio.create_task(self._run_callbacks())
        return self

    async def close(self) -> None:
        """Unsubscribe (unless another subscription of this client has the same topic)
        and end the iteration."""
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        if self._active:
            self._active = False
            await self._client._remove_subscription(self)
        worker, self._worker = self._worker, None
        if worker is not None and worker is not asyncio.current_task():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    def _accepts(self, kind: str, topic: str) -> bool:
        return kind in self._types and topic_matches(self.topic, topic)

    def _deliver(self, frame: Mapping[str, Any]) -> None:
        try:
            event = self._parse(frame)
        except ValidationError as exc:
            logger.warning("unexpected event on %s: %s", self.topic, exc)
            return
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
        self._events.append(event)
        self._ready.set()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._active = False
        self._ready.set()

    def _end(self) -> None:
        self._closed = True
        self._active = False
        self._ready.set()

    async def _run_callbacks(self) -> None:
        callback = self._on_event
        assert callback is not None
        while True:
            try:
                event = await self._next()
            except ClientError as exc:  # it failed: nothing more comes
                logger.warning("subscription to %s ended: %s", self.topic, exc)
                return
            if event is _END:
                return
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("on_event failed (%s)", self.topic)


_END: Any = object()


class BaseClient:
    """A connection to the server, with requests, subscriptions and reconnection.

    ``url`` is the server (``ws://host:port``: the document's endpoint path is added)
    or the full websocket URL (used as given when it has a path); ``http(s)://`` means
    ``ws(s)://``. ``token`` is sent as ``Authorization: Bearer <token>``; ``params`` are
    added to the query string (e.g. credentials a server reads from it); ``headers``
    and ``subprotocols`` go to the handshake. ``timeout`` is the default time to wait
    for an answer, ``open_timeout`` for the handshake.

    With ``reconnect`` (the default) a lost connection is opened again after
    ``initial_backoff`` seconds, doubling up to ``max_backoff`` (with jitter), and the
    active subscriptions are renewed; requests waiting for an answer fail with
    `ConnectionLost`, new ones wait for the connection (within their timeout).
    ``max_queue`` is the default number of events a subscription keeps for its
    iterator. ``on_error`` is called with error frames that answer no request.

    Topics with history: the client keeps the last position of each concrete topic
    (`positions`) and subscribes again with ``since`` after a reconnection, so missed
    events arrive first; ``on_recovery(topic, recovered)`` (and each subscription's
    ``recovered``) says whether the server could replay them all (False: refetch).
    """

    #: The websocket path the document gives (None: it has parameters).
    endpoint: str | None = None

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        timeout: float = 10.0,
        open_timeout: float = 10.0,
        reconnect: bool = True,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_queue: int = 1000,
        on_error: Callable[[ServerError], object] | None = None,
        on_recovery: Callable[[str, bool], object] | None = None,
    ) -> None:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(f"{url!r} is not a ws://, wss://, http(s):// URL")
        if initial_backoff <= 0 or max_backoff < initial_backoff:
            raise ValueError("expected 0 < initial_backoff <= max_backoff")
        self.url = url
        self.timeout = timeout
        self.open_timeout = open_timeout
        self.reconnect = reconnect
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_queue = max_queue
        self.on_error = on_error
        self.on_recovery = on_recovery
        self._path = self.endpoint
        self._token = token
        self._params = dict(params or {})
        self._headers = dict(headers or {})
        self._subprotocols = list(subprotocols or [])
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._last_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._subscriptions: list[Subscription[Any]] = []
        self._server_topics: set[str] = set()
        #: The last position seen per concrete topic of a history topic ({offset, epoch}):
        #: sent as ``since`` when the client subscribes again after a reconnection.
        self.positions: dict[str, dict[str, Any]] = {}
        self._topics_lock = asyncio.Lock()
        self._resubscribing: asyncio.Task[None] | None = None

    # -- the connection ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the websocket is open right now."""
        return self._connected.is_set()

    def websocket_url(self) -> str:
        """The URL the client connects to."""
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        path = parts.path
        if path in ("", "/"):
            if self._path is None:
                raise ValueError("pass the parameters of the endpoint's path")
            path = self._path
        query = parts.query
        if self._params:
            extra = urlencode(list(self._params.items()))
            query = f"{query}&{extra}" if query else extra
        return urlunsplit((scheme, parts.netloc, path, query, ""))

    async def _open(self) -> ClientConnection:
        url = self.websocket_url()
        headers = dict(self._headers)
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        subprotocols = [Subprotocol(p) for p in self._subprotocols] or None
        try:
            return await connect(
                url,
                additional_headers=headers,
                subprotocols=subprotocols,
                open_timeout=self.open_timeout,
                max_size=_MAX_FRAME,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            message = f"{url}: the server refused the connection (HTTP {status})"
            raise ConnectionFailed(message, status=status) from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise ConnectionFailed(f"{url}: cannot connect ({exc})") from exc

    async def connect(self) -> None:
        """Open the connection (`ConnectionFailed` when it cannot be opened)."""
        if self._reader is not None:
            return
        self._closing = False
        self._ws = await self._open()
        self._connected.set()
        self._reader = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Close the connection: pending requests fail, subscriptions end."""
        self._closing = True
        for subscription in list(self._subscriptions):
            subscription._end()
        self._subscriptions.clear()
        self._server_topics.clear()
        ws, self._ws = self._ws, None
        self._connected.clear()
        if ws is not None:
            await ws.close()
        for task in (self._resubscribing, self._reader):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reader = self._resubscribing = None
        self._fail_pending(ConnectionLost("the client was closed"))

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the connection is open (after a reconnection)."""
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    async def _run(self) -> None:
        ws = self._ws
        while ws is not None:
            try:
                async for raw in ws:
                    self._dispatch(raw)
            except ConnectionClosed:
                pass
            self._connected.clear()
            code = ws.close_code
            lost = ConnectionLost(f"the connection was closed (code {code})")
            self._fail_pending(lost)
            if self._closing:
                return
            if not self.reconnect:
                self._ws = None
                for subscription in list(self._subscriptions):
                    subscription._fail(lost)
                self._subscriptions.clear()
                self._server_topics.clear()
                return
            logger.info("connection lost (code %s): reconnecting", code)
            self._server_topics.clear()
            ws = await self._reconnect()
            self._ws = ws
            if ws is not None:
                self._connected.set()
                self._resubscribing = asyncio.create_task(self._resubscribe())

    async def _reconnect(self) -> ClientConnection | None:
        attempt = 0
        while not self._closing:
            delay = min(self.max_backoff, self.initial_backoff * 2 ** min(attempt, 32))
            attempt += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                return await self._open()
            except ConnectionFailed as exc:
                logger.info("reconnection attempt %d failed: %s", attempt, exc)
        return None

    async def _resubscribe(self) -> None:
        async with self._topics_lock:
            for topic in list(dict.fromkeys(s.topic for s in self._subscriptions)):
                try:
                    # a history topic: what was missed comes first (docs/delivery.md)
                    since = self.positions.get(topic)
                    answer = await self.request(SUBSCRIBE, topic=topic, since=since)
                    self._subscribed(topic, answer)
                except ServerError as exc:
                    refused = [s for s in self._subscriptions if s.topic == topic]
                    for subscription in refused:
                        subscription._fail(exc)
                        self._subscriptions.remove(subscription)
                    continue
                except (ConnectionLost, RequestTimeout):
                    return  # the next reconnection tries again
                self._server_topics.add(topic)

    def _fail_pending(self, error: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            logger.warning("the server sent a frame that is not JSON")
            return
        if not isinstance(frame, dict):
            return
        kind = frame.get("type")
        frame_id = frame.get("id")
        if kind in ANSWERS and isinstance(frame_id, int) and frame_id in self._pending:
            future = self._pending.pop(frame_id)
            if not future.done():
                future.set_result(frame)
            return
        if kind == ERROR:
            error = error_from_frame(frame)
            if self.on_error is None:
                logger.warning("error frame: %s", error)
                return
            try:
                self.on_error(error)
            except Exception:
                logger.exception("on_error failed")
            return
        topic = frame.get("topic")
        if isinstance(kind, str) and isinstance(topic, str):
            offset, epoch = frame.get("offset"), frame.get("epoch")
            if isinstance(offset, int) and isinstance(epoch, str):
                self.positions[topic] = {"offset": offset, "epoch": epoch}
            for subscription in self._subscriptions:
                if subscription._accepts(kind, topic):
                    subscription._deliver(frame)

    # -- requests ---------------------------------------------------------------------

    async def _wait_ws(self) -> ClientConnection:
        while True:
            if self._closing or self._reader is None or self._reader.done():
                raise ConnectionLost("not connected (use `async with`, or connect())")
            ws = self._ws
            if ws is not None and self._connected.is_set():
                return ws
            await self._connected.wait()

    async def request(
        self,
        frame_type: str,
        data: Any = UNSET,
        *,
        topic: str | None = None,
        timeout: float | None = None,
        since: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send a frame (``{"type", "id", "data"?, "topic"?, "since"?}``) and return its
        answer (``ack`` or ``reply``); an ``error`` answer raises its exception."""
        limit = self.timeout if timeout is None else timeout
        frame: dict[str, Any] = {"type": frame_type}
        if topic is not None:
            frame["topic"] = topic
        if since is not None:
            frame["since"] = dict(since)
        if data is not UNSET:
            frame["data"] = data
        try:
            async with asyncio.timeout(limit):
                ws = await self._wait_ws()
                self._last_id += 1
                frame_id = frame["id"] = self._last_id
                loop = asyncio.get_running_loop()
                future: asyncio.Future[dict[str, Any]] = loop.create_future()
                self._pending[frame_id] = future
                text = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
                try:
                    await ws.send(text)
                    answer = await future
                finally:
                    self._pending.pop(frame_id, None)
        except TimeoutError:
            raise RequestTimeout(f"no answer to {frame_type!r} in {limit}s") from None
        except ConnectionClosed as exc:
            raise ConnectionLost(f"the connection was closed ({exc})") from exc
        if answer.get("type") == ERROR:
            raise error_from_frame(answer)
        return answer

    # -- subscriptions ----------------------------------------------------------------

    def subscription(
        self,
        topic: str,
        parse: Callable[[Any], T],
        types: frozenset[str],
        on_event: Callable[[T], object] | None = None,
        max_queue: int | None = None,
    ) -> Subscription[T]:
        """A subscription to ``topic`` (not started: enter it or await it)."""
        queue = self.max_queue if max_queue is None else max_queue
        return Subscription(self, topic, parse, types, on_event, queue)

    async def _add_subscription(self, subscription: Subscription[Any]) -> None:
        async with self._topics_lock:
            if subscription.topic not in self._server_topics:
                answer = await self.request(SUBSCRIBE, topic=subscription.topic)
                self._subscribed(subscription.topic, answer)
                self._server_topics.add(subscription.topic)
            self._subscriptions.append(subscription)

    def _subscribed(self, topic: str, answer: Mapping[str, Any]) -> None:
        """Note the position and ``recovered`` of a subscribe's ack (history topics)."""
        position, recovered = answer.get("position"), answer.get("recovered")
        if isinstance(position, dict) and recovered is not True:
            # a new start (or recovery refused): from where the topic is now; when
            # recovered, the replayed events move the position as they arrive
            self.positions[topic] = dict(position)
        if isinstance(recovered, bool):
            for subscription in self._subscriptions:
                if subscription.topic == topic:
                    subscription.recovered = recovered
            if self.on_recovery is not None:
                try:
                    self.on_recovery(topic, recovered)
                except Exception:
                    logger.exception("on_recovery failed")

    async def _remove_subscription(self, subscription: Subscription[Any]) -> None:
        async with self._topics_lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)
            topic = subscription.topic
            still_used = any(s.topic == topic for s in self._subscriptions)
            if topic in self._server_topics and not still_used:
                self._server_topics.discard(topic)
                if self.connected:
                    with contextlib.suppress(
                        ServerError,
                        ConnectionLost,
                        RequestTimeout,
                    ):
                        await self.request(UNSUBSCRIBE, topic=topic)
