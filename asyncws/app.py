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

`AsyncWS` holds the declarations and plugs into FastAPI; the work is done by one module per
step: `asyncws.compiled` (what the declarations compile to), `asyncws.endpoint` (handshake
and frame loop), `asyncws.dispatch` (one frame: control frames, publish, presence, history)
and `asyncws.calls` (operation handlers and their exception handlers).

An app built from an AsyncAPI document (`from_asyncapi`) is an `AsyncWS` too: it is given an
`asyncws.spec.AppSpec` (``spec=``), which declares the document's operations and topics on it
and which `compile`, the endpoint hooks (`framing_of`, `attached`, `handle_frame`), the
websocket routes and the served document consult. Nothing subclasses `AsyncWS`.

Size (just over 600 lines): the public application object; each of its ~40 documented
parameters and methods delegates to the modules named above.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from .compiled import Compiled
from .connection import Connection, SlowConsumerPolicy
from .dependencies import analyze
from .dispatch import handle_frame
from .endpoint import default_expiry as _default_expiry
from .endpoint import serve
from .forwarded import PublicAddress
from .framing import AsyncWSFraming, Framing
from .front_door import FrontDoor
from .history import HistoryPolicy
from .limits import Limits
from .manager import WebSocketManager
from .presence import PresencePolicy, PresenceTracker, check_presence_framing
from .routing import Operation, Router, Topic
from .server_check import check_server
from .topics import DEFAULT_LIMITS, TopicLimits

if TYPE_CHECKING:
    from pathlib import Path

    from .spec.base import AppSpec

__all__ = ["AsyncWS"]

logger = logging.getLogger("asyncws.app")


#: What `SpecApp` / `DocumentApp` offered besides `AsyncWS`'s own, now on ``app.spec``.
_MOVED_TO_SPEC = frozenset(
    {
        "api",
        "check_handlers",
        "document",
        "endpoint_channel",
        "endpoints",
        "find_topic",
        "frame",
        "has_own_servers",
        "served_document",
        "spec_operations",
    }
)


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
        spec: An AsyncAPI document read for this app (`asyncws.spec.AppSpec`, what
            `from_asyncapi` passes): it declares the document's operations and topics, and
            the app serves that document, checks its handlers against it at `compile`, and
            takes its framing, routes and frame handler when the document has its own.
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
        spec: AppSpec | None = None,
        # deprecated: fields of `limits` now (a DeprecationWarning each)
        max_queue: int | None = None,
        max_queue_bytes: int | None = None,
        slow_consumer: SlowConsumerPolicy | None = None,
        max_frame_size: int | None = None,
        max_subscriptions: int | None = None,
    ) -> None:
        super().__init__(tags=tags)
        self._has_history = False
        if spec is not None and spec.framing is not None:
            if framing is not None and framing is not spec.framing:
                raise ValueError("the document fixes the framing: give no framing= with it")
            framing = spec.framing
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
        self.manager.history.policy_of = self._history_policy  # gap filling reads it
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
        self._compiled: Compiled | None = None
        self._asgi_router: APIRouter | None = None
        self._presence: PresenceTracker | None = None
        self.spec: AppSpec | None = spec
        self._spec_frames = spec.frame_handler if spec is not None else None
        if spec is not None:
            spec.bind(self)  # declares the document's operations and topics

    @property
    def presence(self) -> PresenceTracker:
        """The presence tracker of this instance (`asyncws.presence`), made on first use."""
        if self._presence is None:
            self._presence = PresenceTracker(self.manager)
            self._presence.framing = self.framing
            self._presence.policy_for = self._presence_policy
        return self._presence

    def _presence_policy(self, topic: str) -> PresencePolicy | None:
        """The presence policy of the declared topic covering a concrete ``topic``."""
        for declared in self.topics:
            if declared.template.covers(topic) is not None:
                return declared.presence_policy
        return None

    def _presence_topics(self) -> list[tuple[str, PresencePolicy]]:
        return [(t.address, t.presence_policy) for t in self.topics if t.presence_policy]

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
        if topic.history is not None and not self.framing.positions:
            raise TypeError(
                f"topic {topic.address!r} keeps history, which needs asyncws's envelope: in "
                f"the {self.framing.name} framing an event has no place for its position and "
                "no subscribe frame carries 'since' (docs/delivery.md)"
            )
        super().add_topic(topic)
        topic.bind(self)
        self._compiled = None
        if topic.history is not None:
            self._has_history = True  # subscribes look for history topics from now on

    def _history_policy(self, topic: str) -> HistoryPolicy | None:
        """The history policy of the declared topic that ``topic`` is an address of."""
        for declared in self.topics:
            if declared.history is not None and declared.template.covers(topic) is not None:
                return declared.history
        return None

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
        check_server(self)  # warns when uvicorn lets bigger (compressed) frames through
        if app is not None:
            from .asyncapi import link_openapi

            link_openapi(app, self)
        presence = self._presence_topics()
        check_presence_framing(self.framing, presence)
        await self.manager.startup()
        if presence:
            self.presence.start(policy.ttl for _, policy in presence)
            self.manager.presence = self.presence  # every kind of subscription joins
        try:
            yield
        finally:
            if self._presence is not None:
                await self._presence.stop()  # leave events while the broker is still there
                if self.manager.presence is self._presence:
                    self.manager.presence = None
            await self.manager.shutdown()

    @property
    def asgi_router(self) -> APIRouter:
        """An APIRouter with the websocket endpoint and the AsyncAPI document and docs routes."""
        if self._asgi_router is None:
            router = APIRouter()
            routes = self.spec.routes() if self.spec is not None else None
            if routes is None:
                # A plain Starlette route: the endpoint resolves its own dependencies per
                # frame, so FastAPI's per-connection dependency machinery (3.6 KiB a
                # connection) buys nothing.
                routes = [
                    WebSocketRoute(
                        self.path, self._route_endpoint(), name=f"{_slug(self.title)}-ws"
                    )
                ]
            router.routes.extend(routes)
            from .asyncapi import add_routes

            add_routes(self, router)
            self._asgi_router = router
        return self._asgi_router

    def _route_endpoint(self) -> Callable[[WebSocket], Any]:
        """What the route calls: `serve` itself (through a partial, so an idle connection is
        not also suspended in the `endpoint` method: one coroutine frame less, ~300 bytes),
        unless a subclass overrides `endpoint`."""
        if type(self).endpoint is not AsyncWS.endpoint:
            return self.endpoint
        route = functools.partial(serve, self)
        route.__self__ = self  # type: ignore[attr-defined]  # how `asyncws check` finds the app
        return route

    def in_front_of(self, app: Any) -> FrontDoor:
        """An ASGI app that serves this app's websocket endpoint first and passes every other
        request to ``app`` (opt-in: serve what it returns instead of ``app``).

        An idle connection then skips every layer of ``app`` (for FastAPI 0.165: its
        middleware stack and its included-router dispatch, about 3-5 KiB per connection,
        docs/performance.md). The price: ``app``'s middleware and exception handlers do not
        run for the endpoint's path (see `asyncws.front_door`). Include `asgi_router` in
        ``app`` as usual (its AsyncAPI routes are served there) and keep
        ``FastAPI(lifespan=ws.lifespan)``: the lifespan passes through.
        """
        routes = [r for r in self.asgi_router.routes if isinstance(r, WebSocketRoute)]
        return FrontDoor(app, routes)

    @classmethod
    def from_asyncapi(
        cls,
        document: str | Path | Any,
        *,
        framing: Literal["asyncws", "document"] | None = None,
        skip_unsupported: bool = False,
        **kwargs: Any,
    ) -> AsyncWS:
        """An app driven by an AsyncAPI 3 document (a path or a mapping); bind handlers
        with ``@app.handler("operationId")``. ``kwargs`` go to `AsyncWS` (``broker=``,
        ``authenticate=``, ...; the title, version, description and path default to the
        document's).

        ``framing`` says how the document's messages are framed (default: what the document
        says): ``"asyncws"``, asyncws's envelope (`asyncws.spec.envelope`), or
        ``"document"``, the payload is the frame (`asyncws.spec.document`, any AsyncAPI
        WebSocket API); ``skip_unsupported`` (document framing) leaves out, with a warning,
        what asyncws cannot serve. Raises `asyncws.spec.SpecError` listing every problem."""
        from .spec import load_spec

        spec = load_spec(document, framing=framing, skip_unsupported=skip_unsupported)
        return cls(**{**spec.app_arguments, **kwargs}, spec=spec)

    # -- apps built from a document (`asyncws.spec`) ----------------------------------------

    def _spec_or_fail(self, what: str) -> AppSpec:
        if self.spec is None:
            raise TypeError(f"{what} is for apps built from a document (AsyncWS.from_asyncapi)")
        return self.spec

    def handler(self, operation_id: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Bind the decorated function to the receive operation ``operation_id`` of the
        document (an app built by `from_asyncapi`). In asyncws's envelope it is called as
        ``handler(data, conn)`` and returns the reply (see `asyncws.spec.envelope`); in the
        document's own framing as ``handler(message, conn)`` (plus ``params=``) and returns
        the reply frame(s) (see `asyncws.spec.document`). Sync or async."""
        spec = self._spec_or_fail("handler()")

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            spec.handle(operation_id, func)
            self._compiled = None  # compile checks the handlers against the document again
            return func

        return decorator

    async def publish(self, name: str, data: Any, /, **params: Any) -> None:
        """Publish ``data`` (an event, validated against the document) to the topic named
        by channel id or send operation id (an app built from a document in asyncws's
        envelope), with its address parameters."""
        await self._spec_or_fail("publish()").publish(name, data, **params)

    async def send(
        self,
        name: str,
        message: Any,
        /,
        *,
        connection: Connection | str | None = None,
        user: str | None = None,
        **params: Any,
    ) -> None:
        """Push ``message`` (a frame of the send operation or message ``name``, checked
        against the document) to one connection, every connection of ``user``, or every
        connection to the operation's address (an app built from a document in its own
        framing; see `asyncws.spec.document.DocumentSpec.send`)."""
        spec = self._spec_or_fail("send()")
        await spec.send(name, message, connection=connection, user=user, **params)

    def on_open(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``func(conn)`` once a connection is open, before its first frame (an app
        built from a document in its own framing; see
        `asyncws.spec.document.DocumentSpec.on_open`)."""
        return self._spec_or_fail("on_open()").on_open(func)

    if not TYPE_CHECKING:  # (type checkers see no such attributes: they are deprecated)

        def __getattr__(self, name: str) -> Any:
            # `SpecApp` and `DocumentApp` had these; an app built from a document has a spec
            spec = self.__dict__.get("spec")
            if name in _MOVED_TO_SPEC and spec is not None and hasattr(spec, name):
                warnings.warn(
                    f"app.{name} is deprecated: use app.spec.{name}",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(spec, name)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- compilation --------------------------------------------------------------------------

    def compile(self) -> Compiled:
        """Build the frame validator and resolve hooks (done once, lazily)."""
        if self._compiled is None:
            if self.spec is not None:
                self.spec.check()  # every receive operation has a handler, and no more
            self._compiled = Compiled(self)
        return self._compiled

    # -- the endpoint and the frames (`asyncws.endpoint`, `asyncws.dispatch`) ---------------

    async def endpoint(self, websocket: WebSocket) -> None:
        """The websocket endpoint: handshake (origin, auth, hooks), then the frame loop."""
        await serve(self, websocket)

    def framing_of(self, conn: Connection) -> Framing:
        """The framing of a connection's frames (one per app; an app serving a document
        with several endpoints has one per endpoint, from its spec)."""
        if self.spec is not None:
            found = self.spec.framing_of(conn)
            if found is not None:
                return found
        return self.framing

    async def attached(self, conn: Connection) -> None:
        """Called once a connection is accepted and attached, before its first frame."""
        if self.spec is not None:
            await self.spec.attached(conn)

    async def handle_frame(self, conn: Connection, text: str | None) -> None:
        """Handle one client frame; raises `AsyncWSError` for the error frame to answer."""
        if self._spec_frames is not None:  # a document in its own framing answers its frames
            await self._spec_frames(conn, text)
        else:
            await handle_frame(self, conn, text)

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
