"""What an `AsyncWS` app derives from its declarations, built once before serving.

`Compiled` holds the frame decoder (the union of every envelope the app accepts), the
operations' dependencies, the flat-call table and the analysed hooks; `PublishRoute` is what
a client publish to one concrete topic needs, resolved once and cached (bounded) per topic.
Declarations changing build a new `Compiled` (``app._compiled = None``), so nothing cached
here goes stale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .dependencies import Dependant, analyze, analyze_dependencies
from .framing import AsyncWSFraming, Framing
from .protocol import event_frame
from .routing import Operation, Topic, message_name

if TYPE_CHECKING:
    from .app import AsyncWS

__all__ = ["PUBLISH_ROUTES_MAX", "Compiled", "PublishRoute"]


class PublishRoute:
    """What a client publish to one concrete topic needs, resolved once (see `Compiled`):
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

#: Concrete topics whose publish route is kept (see `Compiled.remember`): bounded, so a
#: client publishing to ever new topics costs a resolution per publish, never memory.
PUBLISH_ROUTES_MAX = 4096


class Compiled:
    """Everything derived from the declarations, built once before serving."""

    def remember(self, address: str, route: PublishRoute) -> None:
        routes = self.publish_routes
        if len(routes) >= PUBLISH_ROUTES_MAX:
            del routes[next(iter(routes))]  # the oldest: insertion order
        routes[address] = route

    def __init__(self, app: AsyncWS) -> None:
        #: Client publish routes by concrete topic (filled on first use; declarations
        #: changing build a new `Compiled`, so entries never go stale).
        self.publish_routes: dict[str, PublishRoute] = {}
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
