"""`Router`: a group of operations (client -> server) and topics (server -> clients).

Declaring is pure: a router only records declarations, and an `AsyncWS` app includes it,
binds its topics to the app's manager and turns frames into handler calls (see `app.py`).
Once bound, a router's `Topic` objects publish through the app (`Topic.publish` sends to
the broker).

The pieces live in modules of their own, re-exported here: `asyncws.addresses` (topic
address templates and their `Param`), `asyncws.topic` (`Topic`), `asyncws.operation`
(`Operation`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .addresses import Param, TopicTemplate
from .history import HistoryPolicy
from .operation import RESERVED_TYPES, Operation, check_marker, operation_for
from .topic import Topic, check_authorize, message_name

if TYPE_CHECKING:
    from .presence import PresencePolicy

__all__ = [
    "RESERVED_TYPES",
    "Operation",
    "Param",
    "Router",
    "Topic",
    "TopicTemplate",
    "check_authorize",
    "message_name",
]

F = TypeVar("F", bound=Callable[..., Any])
ExceptionHandler = Callable[..., Any]


class Router:
    """A group of operations and topics, included in an `AsyncWS` app (or another router)."""

    def __init__(
        self,
        *,
        prefix: str = "",
        tags: Sequence[str] = (),
        dependencies: Sequence[Any] = (),
    ) -> None:
        self.prefix = prefix
        self.tags = list(tags)
        self.dependencies = list(dependencies)
        self.operations: dict[str, Operation] = {}
        self.topics: list[Topic[Any]] = []
        self.exception_handlers: dict[type[BaseException], ExceptionHandler] = {}
        #: Where this router was included: declarations made later reach them too.
        self._included_in: list[_Inclusion] = []

    # -- declarations -------------------------------------------------------------------------

    def topic(
        self,
        address: str,
        messages: Any,
        *,
        params: dict[str, Any] | None = None,
        name: str | None = None,
        title: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        authorize: Callable[..., Any] | None = None,
        client_publish: bool = False,
        publish_scopes: Sequence[str] = (),
        subscribe_scopes: Sequence[str] = (),
        presence: bool | PresencePolicy | None = None,
        history: HistoryPolicy | None = None,
    ) -> Topic[Any]:
        """Declare a topic; returns it so handlers can ``await topic.publish(...)``.

        Args:
            address: The address template, ``rooms/{room}`` (parameters are whole levels).
            messages: The pydantic model of its events, or a union of models.
            params: The type of each address parameter (a type, ``Field(...)`` or `Param`;
                default ``str``).
            name: The AsyncAPI channel id (default: from the address, ``rooms.room``).
            title: The AsyncAPI channel title.
            summary: The AsyncAPI channel summary.
            description: The AsyncAPI channel description.
            tags: AsyncAPI tags, after this router's own.
            authorize: A hook resolved like a handler that refuses a subscription by
                returning False or raising `ForbiddenError`.
            client_publish: Whether clients may publish to it (validated against
                ``messages``).
            publish_scopes: Scopes a client needs to publish to it.
            subscribe_scopes: Scopes a client needs to subscribe to it.
            presence: True or a `asyncws.presence.PresencePolicy`: track its members.
            history: A `HistoryPolicy`: keep its events for recovery (``since``).

        Raises:
            ValueError: a bad address or ``params``, or an address declared twice.
            TypeError: ``messages`` that are not pydantic models.
        """
        topic: Topic[Any] = Topic(
            address,
            messages,
            params=params,
            name=name,
            title=title,
            summary=summary,
            description=description,
            tags=list(dict.fromkeys([*self.tags, *tags])),
            authorize=authorize,
            client_publish=client_publish,
            publish_scopes=publish_scopes,
            subscribe_scopes=subscribe_scopes,
            presence=presence,
            history=history,
        )
        self.add_topic(topic)
        return topic

    def add_topic(self, topic: Topic[Any]) -> None:
        if any(t.address == topic.address for t in self.topics):
            raise ValueError(f"topic {topic.address!r} is declared twice")
        self.topics.append(topic)
        for link in self._included_in:  # declared after an include_router: pass it on
            link.parent.add_topic(link.topic(topic))

    def operation(
        self,
        type: str,
        *,
        summary: str | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        scopes: Sequence[str] = (),
        deprecated: bool = False,
        operation_id: str | None = None,
        dependencies: Sequence[Any] = (),
    ) -> Callable[[F], F]:
        """Bind frames of this ``type`` to the decorated handler.

        The handler's payload parameter (a pydantic model) is validated from the frame's
        ``data``; its return annotation, unless None, is the reply model. It may also take
        the `Connection`, the ``WebSocket``, ``Depends(...)`` values and the endpoint's
        path parameters.

        Args:
            type: The frame ``type`` (1-64 of ``[A-Za-z0-9_.-]``, not a control frame's).
            summary: The AsyncAPI operation summary (default: the docstring's first line).
            description: The AsyncAPI operation description (default: the docstring, when
                it has several lines).
            tags: AsyncAPI tags, after this router's own.
            scopes: Scopes a connection needs to send these frames (``forbidden`` without).
            deprecated: Marks the operation deprecated in the AsyncAPI document.
            operation_id: The AsyncAPI operation id (default: ``type``).
            dependencies: ``Depends(...)`` markers run before the handler, after the
                router's own; their values are discarded.

        Raises:
            ValueError: a bad or reserved type, or a type declared twice.
            TypeError: a dependency that is not a marker, or a handler parameter nothing
                explains.
        """

        def decorator(func: F) -> F:
            self.add_operation(
                type,
                func,
                summary=summary,
                description=description,
                tags=tags,
                scopes=scopes,
                deprecated=deprecated,
                operation_id=operation_id,
                dependencies=dependencies,
            )
            return func

        return decorator

    receive = operation  # the AsyncAPI word: the server receives this message

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
        """Bind frames of ``type`` to ``func`` (what `operation` does, undecorated).

        ``path_params`` are the endpoint's path parameters the handler may take (None: not
        known yet, checked when an app includes the router); ``reserved`` the frame types
        no operation may take (default `RESERVED_TYPES`, the control frames and answers of
        asyncws's envelope). The other arguments are `operation`'s.
        """
        if type in self.operations:
            raise ValueError(f"operation {type!r} is declared twice")
        op = operation_for(
            type,
            func,
            router=self,
            summary=summary,
            description=description,
            tags=tags,
            scopes=scopes,
            deprecated=deprecated,
            operation_id=operation_id,
            path_params=path_params,
            dependencies=dependencies,
            reserved=RESERVED_TYPES if reserved is None else reserved,
        )
        self._put_operation(op)
        return op

    def _put_operation(self, op: Operation) -> None:
        """Store ``op`` and hand a copy to every router (or app) this one was included in,
        so that declaring after ``include_router`` works as declaring before."""
        if op.type in self.operations:
            raise ValueError(f"operation {op.type!r} is declared twice")
        for link in self._included_in:
            link.parent._check_new_operation(op.type)
        self.operations[op.type] = op
        for link in self._included_in:
            link.parent._put_operation(link.operation(op))

    def _check_new_operation(self, op_type: str) -> None:
        if op_type in self.operations:
            raise ValueError(
                f"operation {op_type!r} is declared twice (once in an included router)"
            )
        for link in self._included_in:
            link.parent._check_new_operation(op_type)

    def exception_handler(
        self, exc_class: type[BaseException]
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Map an exception raised by this router's operations to an error frame.

        The handler (sync or async) gets ``(connection, exc)`` and returns (or raises) an
        `AsyncWSError` to send (its code and message), or returns None when it answered the
        client itself. Handlers apply to the operations declared in this router and in the
        routers it includes; the innermost router with a handler for the exception's class
        (or a base class) wins, then the app's handlers.
        """

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self.exception_handlers[exc_class] = func
            return func

        return decorator

    def include_router(
        self,
        router: Router,
        *,
        prefix: str = "",
        tags: Sequence[str] = (),
        dependencies: Sequence[Any] = (),
    ) -> None:
        """Add another router's operations and topics.

        Topic addresses get ``prefix`` (and the included router's own ``prefix``); operation
        types do not (they are one flat namespace per app). ``tags`` and the included
        router's own ``tags`` are added to both;
        ``dependencies`` (and this router's own) run before the included operations.

        Operations and topics declared on ``router`` after this call are included too (an
        operation type declared twice is a ValueError at the second declaration).
        """
        if router is self or self._reaches(router):
            raise ValueError("a router cannot include itself (directly or through another)")
        for op_type in router.operations:
            self._check_new_operation(op_type)
        extra_deps = [*self.dependencies, *dependencies]
        for marker in extra_deps:
            check_marker(marker, "include_router")
        link = _Inclusion(self, router, prefix, list(tags), extra_deps)
        for op in list(router.operations.values()):
            self._put_operation(link.operation(op))
        for topic in list(router.topics):
            self.add_topic(link.topic(topic))
        router._included_in.append(link)

    def _reaches(self, other: Router) -> bool:
        """Whether this router is included in ``other`` (directly or through others)."""
        return any(
            link.parent is other or link.parent._reaches(other) for link in self._included_in
        )


@dataclass(frozen=True, slots=True)
class _Inclusion:
    """``parent.include_router(child, prefix=..., tags=..., dependencies=...)``: how a
    declaration of ``child`` looks from ``parent``."""

    parent: Router
    child: Router
    prefix: str
    tags: list[str]
    dependencies: list[Any]

    def operation(self, op: Operation) -> Operation:
        return _included(op, [*self.tags, *self.child.tags], self.dependencies, self.parent)

    def topic(self, topic: Topic[Any]) -> Topic[Any]:
        full = "/".join(p.strip("/") for p in (self.prefix, self.child.prefix) if p.strip("/"))
        return topic.prefixed(full, [*self.tags, *self.child.tags])


def _included(op: Operation, tags: Iterable[str], deps: list[Any], parent: Router) -> Operation:
    """A copy of ``op`` as seen from ``parent`` (more tags, dependencies, handler scope)."""
    clone = Operation(**{f: getattr(op, f) for f in op.__dataclass_fields__})
    clone.tags = list(dict.fromkeys([*tags, *op.tags]))  # outer first, no duplicates
    clone.dependencies = [*deps, *op.dependencies]
    clone.routers = (*op.routers, parent)
    return clone
