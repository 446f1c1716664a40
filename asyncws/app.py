"""`AsyncWS`: the application object — a router with an endpoint, a manager and a lifespan.

    ws = AsyncWS(title="Chat", version="1.0.0", broker="memory://")
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)   # the websocket endpoint (+ the AsyncAPI routes)

Frames are handled one at a time per connection, in order. Every inbound frame is validated
by pydantic straight from its JSON text against the union of every envelope the app accepts
(discriminated by ``type``), so JSON is decoded once. Failures become error frames with a
code; handler exceptions go through the exception handlers; anything unexpected becomes
``internal_error`` (traceback to the log, nothing to the client) and the connection survives.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.exceptions import WebSocketException as StarletteWebSocketException
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .auth import origin_allowed
from .codes import CloseCode, ErrorCode
from .connection import Connection, ConnectionState, SlowConsumerPolicy
from .dependencies import Dependant, Resolver, analyze, analyze_dependencies
from .exceptions import (
    AsyncWSError,
    ForbiddenError,
    InvalidTopicError,
    PayloadValidationError,
    ProtocolError,
    RateLimitedError,
    UnknownTopicError,
    from_http_exception,
    from_websocket_exception,
)
from .forwarded import PublicAddress
from .frames import PublishFrame, SubscribeFrame, field_errors, safe_id
from .framing import AsyncWSFraming, Framing
from .handshake import refuse_unavailable
from .history import Position, parse_since
from .limits import Limits, TokenBucket
from .manager import WebSocketManager
from .presence import PresenceError, PresenceTracker
from .protocol import dumps, event_frame
from .routing import Operation, Router, Topic, check_authorize, message_name
from .topics import DEFAULT_LIMITS, TopicLimits, is_pattern, validate_pattern, validate_topic

__all__ = ["AsyncWS"]

logger = logging.getLogger("asyncws.app")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "asyncws"


class AsyncWS(Router):
    """A declarative websocket application: include routers, plug it into FastAPI.

    It is a `Router` (``operation``, ``topic``, ``exception_handler``, ``include_router``)
    with a websocket endpoint (`asgi_router`), a `WebSocketManager` (connections and the
    broker) and a `lifespan` that starts and stops them. Frames are handled one at a time
    per connection, in order.

    Args:
        title: The AsyncAPI ``info.title``; its slug is the default ``broker_channel``.
        version: The AsyncAPI ``info.version`` (of your API, not of asyncws).
        description: The AsyncAPI ``info.description`` (Markdown).
        broker: The broker URL: ``memory://`` (one process; ``memory://name`` shares a hub
            between the managers of one process), ``redis://host:6379/0``, ``rediss://``,
            ``redis+cluster://``, ``redis+sentinel://`` (see `asyncws.create_broker`).
        manager: A `WebSocketManager` to use instead of building one; then ``broker``,
            ``broker_channel``, ``topic_limits`` and the queue, frame and subscription
            fields of ``limits`` are the manager's own (its wildcard limits follow
            ``limits`` when it is given).
        path: The websocket endpoint's path. It may hold parameters (``/t/{tenant}/ws``)
            that handlers, hooks and dependencies receive by name.
        broker_channel: The namespace of this app's broker channels: apps sharing a Redis
            need different ones.
        authenticate: Resolved like a handler (``Depends``, the `Connection`, path
            parameters) at the handshake, before accepting. Its result becomes
            ``connection.principal``; None, a `ForbiddenError` or a
            `asyncws.auth.WebSocketAuthError` refuses the handshake with HTTP 403.
        user_id: ``principal -> str | None``: the connection's user id (``conn.user_id``:
            sends to a user, per-user limits, presence).
        scopes_of: ``principal -> scopes``, checked against the ``scopes`` of operations
            and topics. Default: the principal's ``scopes`` attribute or key (a list, or a
            space-separated string).
        allowed_origins: Browser origins allowed to connect besides the app's own (others
            get HTTP 403, against cross-site websocket hijacking); ``["*"]`` allows every
            origin. None: the app's own origin only. A client that sends no ``Origin``
            (not a browser) is allowed (see `asyncws.auth.origin_allowed`).
        public_url: The app's public address (``https://chat.example``), pinned: the app's
            own origin and the server the AsyncAPI document lists. None: the request's
            scheme and ``Host``.
        forwarded_allow_ips: Peers (IP addresses, CIDR networks or ``"*"``) whose
            ``X-Forwarded-Proto``/``-Host`` headers count (default: none; see
            `asyncws.forwarded`).
        limits: The bounds on connections, frames, queues, subscriptions and fan-out
            (`Limits`; what happens over each is in `asyncws.limits`).
        expires_at: ``principal -> epoch seconds | None``: when the credentials expire; the
            connection is then closed with 4001 (`CloseCode.TOKEN_EXPIRED`) and the client
            authenticates again. Default: the principal's ``exp`` (attribute or key).
        topic_limits: The longest topic (256 characters) and the most levels (16) clients
            may use (`TopicLimits`).
        contact: The AsyncAPI ``info.contact`` (``{"name", "url", "email"}``).
        license: The AsyncAPI ``info.license`` (``{"name", "url"}``).
        info_tags: The AsyncAPI ``info.tags``: names, or ``{"name", "description"}``.
        servers: The AsyncAPI ``servers``, instead of one built from the request (or from
            ``public_url``).
        asyncapi_url: The path of the AsyncAPI document as JSON; None: not served.
        asyncapi_yaml_url: The path of the document as YAML; None: not served.
        docs_url: The path of the HTML documentation page; None: not served.
        tags: Tags of the app's own operations and topics (included routers bring theirs).
        framing: How messages map to frames (`asyncws.framing`): asyncws's envelope
            (`AsyncWSFraming`, the default) or the payload as the frame
            (`DocumentFraming`), to implement an existing wire protocol.
        asyncapi_version: The version of the document it serves: ``"3.0.0"`` or
            ``"3.1.0"``.
        max_queue: Deprecated: ``limits=Limits(max_queue=...)``.
        max_queue_bytes: Deprecated: ``limits=Limits(max_queue_bytes=...)``.
        slow_consumer: Deprecated: ``limits=Limits(slow_consumer=...)``.
        max_frame_size: Deprecated: ``limits=Limits(max_frame_size=...)``.
        max_subscriptions: Deprecated: ``limits=Limits(max_subscriptions=...)``.

    Raises:
        ValueError: an ``asyncapi_version`` asyncws does not write, or an invalid limit.
    """

    def __init__(
        self,
        *,
        title: str = "asyncws app",
        version: str = "0.1.0",
        description: str | None = None,
        broker: str = "memory://",
        manager: WebSocketManager | None = None,
        path: str = "/ws",
        broker_channel: str | None = None,
        authenticate: Callable[..., Any] | None = None,
        user_id: Callable[[Any], str | None] | None = None,
        scopes_of: Callable[[Any], Sequence[str]] | None = None,
        allowed_origins: Sequence[str] | None = None,
        public_url: str | None = None,
        forwarded_allow_ips: str | Sequence[str] | None = None,
        limits: Limits | None = None,
        expires_at: Callable[[Any], float | None] | None = None,
        topic_limits: TopicLimits = DEFAULT_LIMITS,
        contact: dict[str, str] | None = None,
        license: dict[str, str] | None = None,
        info_tags: Sequence[str | dict[str, str]] = (),
        servers: dict[str, dict[str, Any]] | None = None,
        asyncapi_url: str | None = "/asyncapi.json",
        asyncapi_yaml_url: str | None = "/asyncapi.yaml",
        docs_url: str | None = "/asyncapi",
        tags: Sequence[str] = (),
        framing: Framing | None = None,
        asyncapi_version: str = "3.0.0",
        # deprecated: fields of `limits` now (a DeprecationWarning each)
        max_queue: int | None = None,
        max_queue_bytes: int | None = None,
        slow_consumer: SlowConsumerPolicy | None = None,
        max_frame_size: int | None = None,
        max_subscriptions: int | None = None,
    ) -> None:
        super().__init__(tags=tags)
        self._has_history = False
        self.framing: Framing = framing if framing is not None else AsyncWSFraming()
        if asyncapi_version not in ("3.0.0", "3.1.0"):
            raise ValueError(
                f"asyncapi_version {asyncapi_version!r}: asyncws writes 3.0.0 or 3.1.0"
            )
        self.asyncapi_version = asyncapi_version
        self.title = title
        self.version = version
        self.description = description
        self.path = path
        self.contact = contact
        self.license = license
        self.info_tags = list(info_tags)
        self.servers = servers
        self.asyncapi_url = asyncapi_url
        self.asyncapi_yaml_url = asyncapi_yaml_url
        self.docs_url = docs_url
        self.limits = Limits.with_arguments(
            limits,
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
            slow_consumer=slow_consumer,
            max_frame_size=max_frame_size,
            max_subscriptions=max_subscriptions,
        )
        self._expires_at = expires_at or _default_expiry
        self._closing: set[asyncio.Task[None]] = set()
        self.allowed_origins = tuple(allowed_origins) if allowed_origins is not None else None
        self.public_address = PublicAddress(public_url, forwarded_allow_ips)
        self._handshaking = 0  # connection slots held by handshakes in progress
        # `is None`, not `or`: a manager with no connections is falsy (it has __len__)
        self.manager = (
            manager
            if manager is not None
            else WebSocketManager(
                broker_channel or _slug(title),
                broker_url=broker,
                max_queue=self.limits.max_queue,
                max_queue_bytes=self.limits.max_queue_bytes,
                slow_consumer=self.limits.slow_consumer,
                max_frame_size=self.limits.max_frame_size,
                max_subscriptions=self.limits.max_subscriptions,
                topic_limits=topic_limits,
                allowed_origins=allowed_origins,
                limits=self.limits,
            )
        )
        self.manager.history.framing = self.framing  # positions go into this app's frames
        if manager is not None and limits is not None:  # the app's limits, a given manager
            self.manager.max_wildcards = self.limits.max_wildcards
            self.manager.max_wildcards_per_user = self.limits.max_wildcards_per_user
            self.manager.max_wildcards_per_instance = self.limits.max_wildcards_per_instance
        self.path_params = frozenset(re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}", path))
        self.authenticate = authenticate
        self._user_id = user_id
        self._scopes_of = scopes_of
        self._connect_hooks: list[Callable[..., Any]] = []
        self._disconnect_hooks: list[Callable[..., Any]] = []
        self._compiled: _Compiled | None = None
        self._asgi_router: APIRouter | None = None
        self._presence: PresenceTracker | None = None

    @property
    def presence(self) -> PresenceTracker:
        """The presence tracker of this instance (`asyncws.presence`), made on first use."""
        if self._presence is None:
            self._presence = PresenceTracker(self.manager)
            self._presence.framing = self.framing
        return self._presence

    def _presence_ttls(self) -> list[float]:
        return [t.presence_policy.ttl for t in self.topics if t.presence_policy is not None]

    # -- declarations -------------------------------------------------------------------------

    def on_connect(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``func`` at the handshake, before accepting: return False or raise
        `ForbiddenError` to refuse with HTTP 403. Resolved like a handler (Connection,
        WebSocket, Depends, endpoint path parameters)."""
        self._connect_hooks.append(func)
        self._compiled = None
        return func

    def on_disconnect(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``func`` after a connection ended (it gets the `Connection`)."""
        self._disconnect_hooks.append(func)
        self._compiled = None
        return func

    def add_topic(self, topic: Topic[Any]) -> None:
        super().add_topic(topic)
        topic.bind(self)
        self._compiled = None
        if topic.history is not None:
            self._has_history = True  # subscribes look for history topics from now on

    def add_operation(
        self,
        type: str,
        func: Callable[..., Any],
        *,
        summary: str | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        scopes: Sequence[str] = (),
        deprecated: bool = False,
        operation_id: str | None = None,
        path_params: frozenset[str] | None = None,
        dependencies: Sequence[Any] = (),
        reserved: frozenset[str] | None = None,
    ) -> Operation:
        """`Router.add_operation`; ``path_params`` default to the endpoint's, and without
        control frames (`DocumentFraming`) no type is reserved."""
        if reserved is None and not self.framing.controls:
            reserved = frozenset()  # no control frames: `subscribe` may be an operation
        op = super().add_operation(
            type,
            func,
            summary=summary,
            description=description,
            tags=tags,
            scopes=scopes,
            deprecated=deprecated,
            operation_id=operation_id,
            path_params=self.path_params if path_params is None else path_params,
            dependencies=dependencies,
            reserved=reserved,
        )
        self._compiled = None
        return op

    def include_router(
        self,
        router: Router,
        *,
        prefix: str = "",
        tags: Sequence[str] = (),
        dependencies: Sequence[Any] = (),
    ) -> None:
        """Include ``router``'s operations and topics; what it declares later is included too
        (see `Router.include_router`)."""
        super().include_router(router, prefix=prefix, tags=tags, dependencies=dependencies)
        self._compiled = None

    def _put_operation(self, op: Operation) -> None:
        if op.router is not self:
            # A router does not know the endpoint's path parameters: analyze its handlers
            # again, now strictly (a parameter nothing explains is a TypeError here).
            op.dependant = analyze(
                op.handler,
                allow_payload=True,
                path_params=self.path_params,
                owner=getattr(op.handler, "__qualname__", op.type),
            )
        super()._put_operation(op)
        self._compiled = None

    # -- FastAPI integration ------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """Start the manager (broker, listener) and stop it: ``FastAPI(lifespan=ws.lifespan)``.

        To combine with your own lifespan: ``async with ws.lifespan(app): ...`` inside it.
        Given the FastAPI app, it also links its OpenAPI document (``/docs``) to this app's
        AsyncAPI page (`asyncws.asyncapi.link_openapi`).
        """
        self.compile()
        from .serve import check_server

        check_server(self)  # warns when uvicorn lets bigger (compressed) frames through
        if app is not None:
            from .asyncapi import link_openapi

            link_openapi(app, self)
        await self.manager.startup()
        ttls = self._presence_ttls()
        if ttls:
            self.presence.start(ttls)
        try:
            yield
        finally:
            if self._presence is not None:
                await self._presence.stop()  # leave events while the broker is still there
            await self.manager.shutdown()

    @property
    def asgi_router(self) -> APIRouter:
        """An APIRouter with the websocket endpoint and the AsyncAPI document and docs routes."""
        if self._asgi_router is None:
            router = APIRouter()
            # A plain Starlette route: the endpoint resolves its own dependencies per frame, so
            # FastAPI's per-connection dependency machinery (3.6 KiB a connection) buys nothing.
            router.routes.append(
                WebSocketRoute(self.path, self.endpoint, name=f"{_slug(self.title)}-ws")
            )
            from .asyncapi import add_routes

            add_routes(self, router)
            self._asgi_router = router
        return self._asgi_router

    @classmethod
    def from_asyncapi(cls, document: Any, **kwargs: Any) -> Any:
        """An app driven by an AsyncAPI 3 document (a path or a mapping); bind handlers
        with ``@app.handler("operationId")``. See `asyncws.spec_first` (asyncws's envelope)
        and `asyncws.document_app` (the document's own framing)."""
        from .spec_first import app_from_spec

        return app_from_spec(document, **kwargs)

    # -- compilation --------------------------------------------------------------------------

    def compile(self) -> _Compiled:
        """Build the frame validator and resolve hooks (done once, lazily)."""
        if self._compiled is None:
            self._compiled = _Compiled(self)
        return self._compiled

    # -- the endpoint -------------------------------------------------------------------------

    async def endpoint(self, websocket: WebSocket) -> None:
        """The websocket endpoint: handshake (origin, auth, hooks), then the frame loop."""
        compiled = self.compile()
        manager = self.manager
        if not origin_allowed(
            websocket, self.allowed_origins, server_origin=self.public_address.origin(websocket)
        ):
            logger.info("websocket %s: origin not allowed", websocket.url.path)
            await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403
            return
        limits = self.limits
        # A handshake holds its slot from here (authenticate may await): otherwise every
        # handshake in flight would see the same free slot.
        if len(manager.connections) + self._handshaking >= limits.max_connections:
            logger.warning("connection refused: %d connections (the limit)", limits.max_connections)
            await refuse_unavailable(websocket, "too many connections")  # HTTP 503
            return
        self._handshaking += 1
        held = True
        try:
            conn = Connection(
                websocket,
                manager.new_connection_id(),
                max_queue=manager.max_queue,
                max_queue_bytes=manager.max_queue_bytes,
                slow_consumer=manager.slow_consumer,
                max_frame_size=manager.max_frame_size,
            )
            try:
                # asyncio.timeout, not wait_for: no extra task per connection (storms)
                async with asyncio.timeout(limits.handshake_timeout):
                    accepted = await self._handshake(conn, websocket, compiled)
            except TimeoutError:
                logger.warning("handshake timed out after %.1fs", limits.handshake_timeout)
                if websocket.application_state is WebSocketState.CONNECTING:
                    await websocket.close(CloseCode.TRY_AGAIN_LATER)
                return
            if not accepted:
                return
            if conn.user_id is not None and (
                len(manager.users.get(conn.user_id, ())) >= limits.max_connections_per_user
            ):
                logger.info(
                    "connection refused: user over %d connections",
                    limits.max_connections_per_user,
                )
                await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: HTTP 403
                return
            subprotocol = getattr(websocket.state, "asyncws_subprotocol", None)
            # The slot passes to the connection: attach registers it before its first await.
            self._handshaking -= 1
            held = False
            await manager.attach(conn, subprotocol=subprotocol)
        finally:
            if held:
                self._handshaking -= 1
        if not _is_open(conn):  # refused (shutting down): no websocket
            return
        framing = self.framing_of(conn)
        bucket = TokenBucket(limits.rate, limits.burst)
        over_rate = 0
        expiry = self._expiry_timer(conn)
        try:
            try:
                await self.attached(conn)
            except Exception:
                logger.exception("connection %s: opening it failed; closing with 1011", conn.id)
                await conn.close(CloseCode.INTERNAL_ERROR, "internal error")
                return
            while True:
                try:
                    if limits.idle_timeout is None:
                        text = await conn.receive_text()
                    else:
                        text = await asyncio.wait_for(conn.receive_text(), limits.idle_timeout)
                except WebSocketDisconnect:
                    break
                except TimeoutError:
                    await conn.close(CloseCode.NORMAL_CLOSURE, "idle timeout")
                    break
                if not bucket.take():
                    over_rate += 1
                    if over_rate > limits.rate_strikes:
                        logger.warning("connection %s: sustained flood; closing with 1008", conn.id)
                        await conn.close(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
                        break
                    _send(
                        conn,
                        framing.error(
                            RateLimitedError(f"over {limits.rate:g} frames per second; slow down"),
                            framing.correlation_in(text),
                        ),
                    )
                    continue
                over_rate = 0
                try:
                    await self.handle_frame(conn, text)
                except AsyncWSError as exc:
                    answer = framing.error(exc, framing.correlation_in(text))
                    if not await conn.reject(exc, safe_id(text), text=answer or ""):
                        break
                except Exception as exc:  # a bug: tell the client nothing, keep the connection
                    logger.error(
                        "unhandled %s while handling a frame", type(exc).__name__, exc_info=exc
                    )
                    _send(
                        conn,
                        framing.error(AsyncWSError("internal error"), framing.correlation_in(text)),
                    )
                else:
                    conn.good_frame()
                if not _is_open(conn):  # closed while handling the frame
                    break
        finally:
            if expiry is not None:
                expiry.cancel()
            await manager.disconnect(conn)
            if self._presence is not None:
                await self._presence.drop(conn)
            for hook in compiled.disconnect_hooks:
                resolver = Resolver(conn, websocket, path_params=dict(websocket.path_params))
                try:
                    await resolver.run(hook)
                except Exception:
                    logger.exception("on_disconnect hook failed")
                finally:
                    await resolver.aclose()

    def framing_of(self, conn: Connection) -> Framing:
        """The framing of a connection's frames (one per app; spec-first apps with several
        endpoints have one per endpoint)."""
        return self.framing

    async def attached(self, conn: Connection) -> None:
        """Called once a connection is accepted and attached, before its first frame."""

    def _expiry_timer(self, conn: Connection) -> asyncio.TimerHandle | None:
        """Close the connection with 4001 (token expired) when its credentials expire."""
        if conn.principal is None:
            return None
        expires = self._expires_at(conn.principal)
        if expires is None:
            return None
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, expires - time.time()), self._expire, conn)

    def _expire(self, conn: Connection) -> None:
        if conn.state is not ConnectionState.OPEN:
            return
        logger.info("connection %s: credentials expired; closing with 4001", conn.id)
        task = asyncio.get_running_loop().create_task(
            conn.close(CloseCode.TOKEN_EXPIRED, "token expired")
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _handshake(self, conn: Connection, websocket: WebSocket, compiled: _Compiled) -> bool:
        """Authenticate and run on_connect hooks; refuse with 403 (before accept) on failure."""
        resolver = Resolver(conn, websocket, path_params=dict(websocket.path_params))
        try:
            if compiled.authenticate is not None:
                principal = await resolver.run(compiled.authenticate)
                if principal is None:
                    raise ForbiddenError("authentication required")
                conn.principal = principal
                if self._user_id is not None:
                    conn.user_id = self._user_id(principal)
            for hook in compiled.connect_hooks:
                if await resolver.run(hook) is False:
                    raise ForbiddenError("connection refused")
        except (
            AsyncWSError,
            StarletteWebSocketException,
            StarletteHTTPException,
            PydanticValidationError,
        ) as exc:
            if websocket.application_state is WebSocketState.CONNECTING:
                await websocket.close(CloseCode.POLICY_VIOLATION)  # -> HTTP 403
            logger.info("handshake refused: %s", getattr(exc, "message", exc))
            return False
        except Exception:
            logger.exception("handshake failed")
            if websocket.application_state is WebSocketState.CONNECTING:
                await websocket.close(CloseCode.INTERNAL_ERROR)
            return False
        finally:
            await resolver.aclose()
        return websocket.application_state is WebSocketState.CONNECTING

    # -- frames -------------------------------------------------------------------------------

    async def handle_frame(self, conn: Connection, text: str | None) -> None:
        """Handle one client frame; raises `AsyncWSError` for the error frame to answer."""
        compiled = self._compiled or self.compile()
        counts = self.manager.frames_in  # for metrics
        if text is None:
            counts["invalid"] = counts.get("invalid", 0) + 1
            raise ProtocolError(
                "binary frames are not supported; send JSON text", code=ErrorCode.UNSUPPORTED_DATA
            )
        try:
            frame = compiled.frames.validate(text)
        except AsyncWSError:
            counts["invalid"] = counts.get("invalid", 0) + 1
            raise
        kind = frame.type
        counts[kind] = counts.get(kind, 0) + 1
        if not self.framing.controls:
            await self._call(conn, compiled.operations[kind], frame)
        elif kind == "subscribe":
            await self._subscribe(conn, frame)
        elif kind == "unsubscribe":
            pattern = validate_pattern(frame.topic, self.manager.topic_limits)
            await self.manager.unsubscribe(conn, pattern)
            if self._presence is not None:
                await self._presence.leave(conn, pattern)
            _send(conn, self.framing.ack(frame))
        elif kind == "publish":
            await self._client_publish(conn, frame)
        elif kind == "presence" or kind == "presence_stats":
            await self._presence_request(conn, frame)
        else:
            await self._call(conn, compiled.operations[kind], frame)

    async def _subscribe(self, conn: Connection, frame: SubscribeFrame) -> None:
        pattern = validate_pattern(frame.topic, self.manager.topic_limits)
        covering, _ = self._find_topic(pattern)  # a declared topic must cover it
        if not await self._may_subscribe(conn, pattern, frame.id):
            return
        policy = covering.presence_policy
        if frame.since is not None or (
            self._has_history and self._history_topic(pattern) is not None
        ):
            await self._subscribe_history(conn, frame, pattern)  # it answers the frame
            if policy is not None and not is_pattern(pattern) and pattern in conn.topics:
                await self.presence.join(conn, pattern, policy)
            return
        await self.manager.subscribe(conn, pattern)
        if policy is not None and not is_pattern(pattern):
            await self.presence.join(conn, pattern, policy)
        _send(conn, self.framing.ack(frame))

    async def _presence_request(self, conn: Connection, frame: Any) -> None:
        """``presence`` / ``presence_stats``: answered like an operation (see
        `asyncws.presence`); who may subscribe to the topic may ask."""
        pattern = validate_pattern(frame.topic, self.manager.topic_limits)
        if is_pattern(pattern):
            raise InvalidTopicError("presence needs a concrete topic, not a pattern")
        topic, _ = self._find_topic(pattern)
        policy = topic.presence_policy
        if policy is None:
            raise PresenceError("this topic has no presence")
        if not await self._may_subscribe(conn, pattern, frame.id):
            return
        tracker = self.presence
        if frame.type == "presence_stats":
            data = dumps({"count": await tracker.count(pattern)})
        else:
            members, count = await tracker.members(pattern, policy.max_members)
            data = dumps(
                {
                    "members": [m.as_dict() for m in members],
                    "count": count,
                    "truncated": count > len(members),
                }
            )
        for text in self.framing.replies(frame, data):
            conn.send_text_nowait(text)

    async def _may_subscribe(self, conn: Connection, pattern: str, frame_id: Any) -> bool:
        """Whether ``conn`` may subscribe to ``pattern``: raises `ForbiddenError`, or answers
        a failing ``authorize`` hook through the exception handlers and returns False."""
        # ... and every topic it would receive messages of must allow it: `rooms/#` also
        # reaches `rooms/{room}/secret`, `u/+` also reaches a fixed `u/admin`.
        for topic in self.topics:
            values = topic.template.reaches(pattern)
            if values is None:
                continue
            self._require_scopes(conn, topic.subscribe_scopes)
            if topic.authorize_dependant is None:
                continue
            typed = {
                name: None if raw is None else topic.params[name].adapter.validate_strings(raw)
                for name, raw in values.items()
            }
            resolver = Resolver(
                conn,
                None,
                extra={**typed, "topic": pattern, "pattern": pattern},
                path_params=dict(conn.websocket.path_params),
            )
            try:
                check_authorize(await resolver.run(topic.authorize_dependant), topic)
            except AsyncWSError:
                raise
            except Exception as exc:  # the hook failed: the app's exception handlers decide
                await self._handle_exception(conn, None, exc, frame_id)
                return False
            finally:
                await resolver.aclose()
        return True

    def _history_topic(self, pattern: str) -> Topic[Any] | None:
        """The history topic of a concrete address (None for a pattern or a plain topic)."""
        if is_pattern(pattern):
            return None
        for topic in self.topics:
            if topic.history is not None and topic.template.covers(pattern) is not None:
                return topic
        return None

    async def _subscribe_history(self, conn: Connection, frame: Any, pattern: str) -> None:
        """Subscribe with the topic's position in the ack and, with ``since``, recovery
        (`asyncws.history`): bad ``since`` or none to honour it with is an error frame."""
        since = parse_since(frame.since)
        topic = self._history_topic(pattern)
        if topic is None or topic.history is None:
            if is_pattern(pattern):
                raise ProtocolError(
                    "'since' needs a concrete topic, not a wildcard", code=ErrorCode.BAD_REQUEST
                )
            raise ProtocolError(
                "'since' on a topic that keeps no history", code=ErrorCode.BAD_REQUEST
            )
        framing = self.framing
        self.manager.history.framing = framing

        def ack(recovered: bool | None, position: Position) -> None:
            _send(conn, framing.subscribed(frame, recovered, position.offset, position.epoch))

        await self.manager.history.subscribe(conn, pattern, topic.history, since, ack)

    def _find_topic(self, pattern: str) -> tuple[Topic[Any], dict[str, str | None]]:
        for topic in self.topics:
            values = topic.template.covers(pattern)
            if values is not None:
                return topic, values
        raise UnknownTopicError("no such topic (or wildcards where the topic does not allow them)")

    async def _client_publish(self, conn: Connection, frame: PublishFrame) -> None:
        compiled = self._compiled or self.compile()
        route = compiled.publish_routes.get(frame.topic)
        if route is None:
            route = self._publish_route(frame.topic)
            compiled.remember(frame.topic, route)
        if route.scopes:
            self._require_scopes(conn, route.scopes)
        try:
            model = route.validate(frame.data)
        except PydanticValidationError as exc:
            raise PayloadValidationError(
                "invalid message for this topic", errors=field_errors(exc.errors(), 0)
            ) from None
        # validated just above: encode it as it is (Topic.encode would validate it again);
        # the topic was validated when its route was built
        text = route.frame(model)
        self.manager.charge(conn, 1, text)
        history = route.topic.history
        if history is not None:
            await self.manager.history.publish(route.concrete, text, history)
        else:
            await self.manager.publish_valid(route.concrete, text)
        _send(conn, self.framing.ack(frame))

    def _publish_route(self, address: str) -> _PublishRoute:
        """Validate a concrete topic and resolve what a client publish to it needs.

        Raises the error a client gets (invalid topic, unknown topic, not client-publishable).
        """
        concrete = validate_topic(address, self.manager.topic_limits)
        topic, _ = self._find_topic(concrete)
        scopes: list[str] = []
        # every topic the address belongs to must allow it (their subscribers receive it)
        for other in self.topics:
            if other is topic or other.template.covers(concrete) is not None:
                if not other.client_publish:
                    raise ForbiddenError("clients may not publish to this topic")
                scopes.extend(s for s in other.publish_scopes if s not in scopes)
        return _PublishRoute(concrete, topic, tuple(scopes), self.framing)

    def _require_scopes(self, conn: Connection, required: Sequence[str]) -> None:
        if not required:
            return
        granted = set(self.scopes_of(conn.principal))
        missing = [s for s in required if s not in granted]
        if missing:
            raise ForbiddenError(f"missing scope(s): {' '.join(missing)}")

    def scopes_of(self, principal: Any) -> Sequence[str]:
        """The scopes granted to a principal: ``scopes_of=`` if given, else its ``scopes``
        attribute or key, else none."""
        if self._scopes_of is not None:
            return self._scopes_of(principal)
        if isinstance(principal, dict):
            found = principal.get("scopes", ())
        else:
            found = getattr(principal, "scopes", ())
        if isinstance(found, str):
            return found.split()
        return list(found or ())

    async def _call(self, conn: Connection, op: Operation, frame: Any) -> None:
        self._require_scopes(conn, op.scopes)
        compiled = self._compiled or self.compile()
        flat = compiled.flat.get(op.type)
        if flat is not None:
            # A handler that takes only its payload, the connection or the websocket (no
            # dependencies, no `yield`): called directly, no Resolver (same semantics).
            args: list[Any] = []
            kwargs: dict[str, Any] = {}
            for kind, positional, name in flat:
                value = (
                    getattr(frame, "data", None)
                    if kind == "payload"
                    else conn
                    if kind == "connection"
                    else conn.websocket
                )
                if positional:
                    args.append(value)
                else:
                    kwargs[name] = value
            try:
                result = op.dependant.call(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                await self._handle_exception(conn, op, exc, frame.id)
                return
            self._answer(conn, op, result, frame)
            return
        ws = conn.websocket
        resolver = Resolver(
            conn, ws, payload=getattr(frame, "data", None), path_params=dict(ws.path_params)
        )
        try:
            try:
                before = self._compiled.dependencies.get(op.type) if self._compiled else None
                if before is not None:
                    await resolver.run(before)
                result = await resolver.run(op.dependant)
            except Exception as exc:
                try:  # yield dependencies see the exception (rollback), then it is answered
                    await resolver.aclose(exc)
                except Exception:
                    logger.exception("a dependency's teardown failed in %r", op.type)
                await self._handle_exception(conn, op, exc, frame.id)
                return
            self._answer(conn, op, result, frame)
        finally:
            try:
                await resolver.aclose()
            except Exception:
                logger.exception("a dependency's teardown failed in %r", op.type)

    def _answer(self, conn: Connection, op: Operation, result: Any, frame: Any) -> None:
        """The reply frames (validated against the operation's reply model) or the ack, in
        the connection's framing."""
        framing = self.framing_of(conn)
        adapter = op.reply_adapter
        if adapter is None:
            _send(conn, framing.ack(frame))
            return
        try:
            data = adapter.dump_json(adapter.validate_python(result), by_alias=True).decode()
        except Exception as exc:  # the handler broke its own contract: a server bug
            logger.error("operation %r returned an invalid reply", op.type, exc_info=exc)
            _send(conn, framing.error(AsyncWSError("internal error"), frame.id))
            return
        # asyncws framing: like acks, only a frame with an id is answered
        for text in framing.replies(frame, data):
            conn.send_text_nowait(text)

    async def _handle_exception(
        self, conn: Connection, op: Operation | None, exc: Exception, id: Any
    ) -> None:
        framing = self.framing_of(conn)
        handler = None
        for router in op.routers if op is not None else ():
            handler = _lookup(router.exception_handlers, exc)
            if handler is not None:
                break
        if handler is None:
            handler = _lookup(self.exception_handlers, exc)
        if handler is not None:
            try:
                answer = handler(conn, exc)
                if inspect.isawaitable(answer):
                    answer = await answer
            except AsyncWSError as raised:
                answer = raised
            except Exception:
                logger.exception("exception handler for %s failed", type(exc).__name__)
                answer = AsyncWSError("internal error")
            if answer is not None and not isinstance(answer, AsyncWSError):
                logger.error(
                    "exception handler for %s returned %r; expected an AsyncWSError or None",
                    type(exc).__name__,
                    type(answer).__name__,
                )
                answer = AsyncWSError("internal error")
            if isinstance(answer, AsyncWSError):
                _send(conn, framing.error(answer, id))
            return
        if isinstance(exc, AsyncWSError):
            _send(conn, framing.error(exc, id))
            return
        if isinstance(exc, StarletteHTTPException):  # FastAPI code raises them everywhere
            logger.info(
                "%s %d in operation %r: %s",
                type(exc).__name__,
                exc.status_code,
                op.type if op else "?",
                exc.detail,
            )
            _send(conn, framing.error(from_http_exception(exc.status_code, exc.detail), id))
            return
        if isinstance(exc, StarletteWebSocketException):  # FastAPI's way to say "close it"
            logger.info(
                "connection %s closed with %d by %s: %s",
                conn.id,
                exc.code,
                type(exc).__name__,
                exc.reason,
            )
            # the client learns why (an error frame answering its frame), then the close
            _send(conn, framing.error(from_websocket_exception(exc.code, exc.reason), id))
            await conn.close(exc.code, exc.reason or "")
            return
        logger.error(
            "unhandled %s in operation %r", type(exc).__name__, op.type if op else "?", exc_info=exc
        )
        _send(conn, framing.error(AsyncWSError("internal error"), id))


def _send(conn: Connection, text: str | None) -> None:
    if text is not None:
        conn.send_text_nowait(text)


def _default_expiry(principal: Any) -> float | None:
    """The ``exp`` of a principal (a JWT claims dict, or an object with ``exp``), if any."""
    exp = principal.get("exp") if isinstance(principal, dict) else getattr(principal, "exp", None)
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _is_open(conn: Connection) -> bool:
    return conn.state is ConnectionState.OPEN


def _lookup(
    handlers: dict[type[BaseException], Callable[..., Any]], exc: BaseException
) -> Callable[..., Any] | None:
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            return handler
    return None


class _PublishRoute:
    """What a client publish to one concrete topic needs, resolved once (see `_Compiled`):
    the topic declaration, the scopes every covering topic requires, and, in asyncws's
    envelope, the event frame's head per message model."""

    __slots__ = ("concrete", "framing", "heads", "scopes", "topic", "validate")

    def __init__(
        self, concrete: str, topic: Topic[Any], scopes: tuple[str, ...], framing: Framing
    ) -> None:
        self.concrete = concrete
        self.topic = topic
        self.scopes = scopes
        # the head cache is for asyncws's envelope; another framing builds its own frames
        self.framing = None if isinstance(framing, AsyncWSFraming) else framing
        self.heads: dict[type[Any], str] = {}
        # pydantic-core's validator itself: TypeAdapter.validate_python only forwards to it
        self.validate: Callable[[Any], Any] = topic.adapter.validator.validate_python

    def frame(self, model: Any) -> str:
        """The event frame of a validated model (`Topic.frame_for`, its head cached)."""
        cls = type(model)
        # model_dump_json(by_alias=True) without its keyword-forwarding wrapper
        data: str = model.__pydantic_serializer__.to_json(model, by_alias=True).decode()
        if self.framing is not None:
            return self.framing.event(message_name(cls), self.concrete, data)
        head = self.heads.get(cls)
        if head is None:
            head = event_frame(message_name(cls), self.concrete, "")[:-1]  # without the "}"
            self.heads[cls] = head
        return head + data + "}"


_FLAT_KINDS = frozenset({"payload", "connection", "websocket"})

#: Concrete topics whose publish route is kept (see `_Compiled.remember`): bounded, so a
#: client publishing to ever new topics costs a resolution per publish, never memory.
PUBLISH_ROUTES_MAX = 4096


class _Compiled:
    """Everything derived from the declarations, built once before serving."""

    def remember(self, address: str, route: _PublishRoute) -> None:
        routes = self.publish_routes
        if len(routes) >= PUBLISH_ROUTES_MAX:
            del routes[next(iter(routes))]  # the oldest: insertion order
        routes[address] = route

    def __init__(self, app: AsyncWS) -> None:
        #: Client publish routes by concrete topic (filled on first use; declarations
        #: changing build a new `_Compiled`, so entries never go stale).
        self.publish_routes: dict[str, _PublishRoute] = {}
        self.operations: dict[str, Operation] = dict(app.operations)
        self.dependencies: dict[str, Dependant] = {}
        for op in self.operations.values():
            before = analyze_dependencies(
                op.dependencies, path_params=app.path_params, owner=f"operation {op.type!r}"
            )
            if before is not None:
                self.dependencies[op.type] = before
        self.frames = app.framing.decoder(self.operations.values())
        #: Operations whose handler takes only its payload, the connection and/or the
        #: websocket, without other dependencies: (kind, positional, name) per parameter.
        self.flat: dict[str, list[tuple[str, bool, str]]] = {}
        for op in self.operations.values():
            dep = op.dependant
            if (
                op.type in self.dependencies
                or dep.is_gen
                or dep.is_async_gen
                or any(p.kind not in _FLAT_KINDS for p in dep.params)
            ):
                continue
            self.flat[op.type] = [(p.kind, p.positional, p.name) for p in dep.params]
        self.authenticate: Dependant | None = (
            analyze(app.authenticate, path_params=app.path_params) if app.authenticate else None
        )
        self.connect_hooks = [analyze(h, path_params=app.path_params) for h in app._connect_hooks]
        self.disconnect_hooks = [
            analyze(h, path_params=app.path_params) for h in app._disconnect_hooks
        ]
        for topic in app.topics:
            if topic.authorize is not None:
                topic.authorize_dependant = analyze(
                    topic.authorize,
                    extra=frozenset([*topic.params, "topic", "pattern"]),
                    path_params=app.path_params,
                )
