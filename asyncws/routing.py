"""Declarations: `Router`, operations (client -> server) and topics (server -> clients).

Declaring is pure: nothing here touches a socket. An `AsyncWS` app includes routers, binds
their topics to its manager, and turns frames into handler calls (see `app.py`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from fastapi.params import Depends as DependsParam
from pydantic import BaseModel, RootModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from .dependencies import Dependant, analyze
from .exceptions import ForbiddenError, InvalidTopicError
from .history import HistoryItem, HistoryPolicy, Position
from .protocol import event_frame
from .topics import DEFAULT_LIMITS, TopicLimits, validate_topic

if TYPE_CHECKING:
    from .app import AsyncWS
    from .presence import Member, PresenceStats, PresenceTracker

__all__ = [
    "Operation",
    "Param",
    "Router",
    "Topic",
    "TopicTemplate",
    "check_authorize",
    "message_name",
]

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])
ExceptionHandler = Callable[..., Any]

_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
RESERVED_TYPES = frozenset(
    {"subscribe", "unsubscribe", "publish", "ack", "reply", "error", "presence", "presence_stats"}
)


def message_name(model: type[BaseModel]) -> str:
    """The wire ``type`` of a topic message: a ``Literal`` default of its ``type`` field, if it
    has one, else its ``model_config['title']``, else the class name."""
    type_field = model.model_fields.get("type")
    if type_field is not None and isinstance(type_field.default, str):
        return type_field.default
    title = model.model_config.get("title")
    return title if isinstance(title, str) else model.__name__


def _flatten_union(tp: Any) -> tuple[Any, ...]:
    origin = get_origin(tp)
    if origin is Annotated:
        return _flatten_union(get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        out: tuple[Any, ...] = ()
        for arg in get_args(tp):
            out += _flatten_union(arg)
        return out
    return (tp,)


@dataclass(frozen=True, slots=True)
class Param:
    """A ``{name}`` in a topic address: its type (validated with pydantic) and description."""

    name: str
    annotation: Any = str
    description: str | None = None

    @property
    def adapter(self) -> TypeAdapter[Any]:
        return _adapter(self.annotation)

    def enum(self) -> list[Any] | None:
        """The allowed values when the type says so (an Enum or a Literal)."""
        tp = self.annotation
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        if isinstance(tp, type) and issubclass(tp, Enum):
            return [m.value for m in tp]
        if get_origin(tp) is typing.Literal:
            return list(get_args(tp))
        return None

    def render(self, value: Any) -> str:
        """Validate ``value`` and turn it into one topic level."""
        try:
            checked = self.adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidTopicError(
                f"invalid value for topic parameter {self.name!r}",
                errors=[{"loc": [self.name], "msg": e["msg"]} for e in exc.errors()],
            ) from None
        text = _level_text(checked)
        if not text or "/" in text or text in ("+", "#"):
            raise InvalidTopicError(f"topic parameter {self.name!r} must be one non-empty level")
        return text

    def accepts(self, level: str) -> bool:
        """Whether a client-given level is a valid value, written the way `render` writes it
        (``n/01`` is refused for an int: messages are published on ``n/1``, a subscription
        to ``n/01`` would never receive anything)."""
        try:
            checked = self.adapter.validate_strings(level)
        except ValidationError:
            return False
        return bool(level) and _level_text(checked) == level


def _level_text(value: Any) -> str:
    return str(value.value if isinstance(value, Enum) else value)


_adapters: dict[Any, TypeAdapter[Any]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    try:
        return _adapters[tp]
    except (KeyError, TypeError):
        adapter: TypeAdapter[Any] = TypeAdapter(tp)
        with contextlib.suppress(TypeError):  # unhashable annotations are not cached
            _adapters[tp] = adapter
        return adapter


class TopicTemplate:
    """An address like ``rooms/{room}``: its levels and the parameters in them.

    Parameters are whole levels. `render` fills them; `covers` says whether a client's
    subscription pattern stays inside the template (``+`` only where a parameter is, ``#``
    only where every remaining level is a parameter).
    """

    __slots__ = ("address", "levels", "params")

    def __init__(self, address: str, params: dict[str, Param]) -> None:
        self.address = address
        self.levels: list[str | Param] = []
        for level in address.split("/"):
            m = _PARAM_RE.fullmatch(level)
            if m is not None:
                self.levels.append(params[m.group(1)])
            elif "{" in level or "}" in level:
                raise ValueError(f"topic {address!r}: a parameter must be a whole level")
            elif level in ("+", "#"):
                raise ValueError(f"topic {address!r}: declare parameters, not wildcards")
            else:
                self.levels.append(level)
        self.params = params

    def render(self, values: dict[str, Any]) -> str:
        missing = [n for n in self.params if n not in values]
        if missing:
            raise TypeError(f"topic {self.address!r}: missing parameter(s) {', '.join(missing)}")
        unknown = [n for n in values if n not in self.params]
        if unknown:
            raise TypeError(f"topic {self.address!r}: unknown parameter(s) {', '.join(unknown)}")
        return "/".join(
            lv if isinstance(lv, str) else lv.render(values[lv.name]) for lv in self.levels
        )

    def covers(self, pattern: str) -> dict[str, str | None] | None:
        """The parameter values of ``pattern`` (None for wildcard levels) if the template
        allows it, else None."""
        parts = pattern.split("/")
        values: dict[str, str | None] = {}
        for i, part in enumerate(parts):
            if part == "#":
                rest = self.levels[i:]
                if not all(isinstance(lv, Param) for lv in rest):
                    return None
                values.update({lv.name: None for lv in rest if isinstance(lv, Param)})
                return values
            if i >= len(self.levels):
                return None
            level = self.levels[i]
            if isinstance(level, str):
                if part != level:
                    return None
            elif part == "+":
                values[level.name] = None
            elif level.accepts(part):
                values[level.name] = part
            else:
                return None
        return values if len(parts) == len(self.levels) else None

    def reaches(self, pattern: str) -> dict[str, str | None] | None:
        """The parameter values (None for wildcard levels) if a subscription to ``pattern``
        would receive messages of this template, else None.

        Wider than `covers`: ``+`` also matches a fixed level and ``#`` any levels after it,
        so ``rooms/#`` reaches ``rooms/{room}/typing`` too. Every topic a subscription
        reaches must allow it (its scopes and authorization), not only the one covering it.
        """
        parts = pattern.split("/")
        values: dict[str, str | None] = {}
        for i, part in enumerate(parts):
            if part == "#":
                values.update({lv.name: None for lv in self.levels[i:] if isinstance(lv, Param)})
                return values
            if i >= len(self.levels):
                return None
            level = self.levels[i]
            if isinstance(level, str):
                if part != "+" and part != level:
                    return None
            elif part == "+":
                values[level.name] = None
            elif level.accepts(part):
                values[level.name] = part
            else:
                return None
        return values if len(parts) == len(self.levels) else None

    def match(self, topic: str) -> dict[str, str] | None:
        """The parameter values of a concrete ``topic``, or None if it is not this template."""
        covered = self.covers(topic)
        if covered is None or any(v is None for v in covered.values()):
            return None
        return {k: v for k, v in covered.items() if v is not None}


class Topic(Generic[M]):
    """A server -> client channel: an address template and its message model(s).

    ``await topic.publish(message, room="lobby")`` validates the message and the parameters,
    builds the concrete topic and sends it, through the broker, to every subscriber on every
    instance. Clients may subscribe to concrete addresses, and with ``+``/``#`` in parameter
    levels; ``authorize`` (a callable resolved like a handler: it may take the `Connection`,
    ``Depends``, the topic parameters by name and ``topic``) refuses a subscription by
    returning False or raising `ForbiddenError`. With ``client_publish=True`` clients may
    publish to it directly (the payload is validated against the message models).
    """

    def __init__(
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
        presence: Any = None,
        history: HistoryPolicy | None = None,
    ) -> None:
        from .presence import policy_of

        #: The topic's `asyncws.presence.PresencePolicy` (``presence=True`` or a policy), or None.
        self.presence_policy = policy_of(presence)
        self.address = address.strip("/")
        if not self.address:
            raise ValueError("a topic address must not be empty")
        names = _PARAM_RE.findall(self.address)
        if len(set(names)) != len(names):
            raise ValueError(f"topic {address!r}: a parameter appears twice")
        given = dict(params or {})
        self.params: dict[str, Param] = {}
        for pname in names:
            spec = given.pop(pname, str)
            if isinstance(spec, Param):
                self.params[pname] = spec
            elif isinstance(spec, FieldInfo):
                self.params[pname] = Param(pname, Annotated[str, spec], spec.description)
            else:
                self.params[pname] = Param(pname, spec)
        if given:
            raise ValueError(f"topic {address!r}: no {{{next(iter(given))}}} in the address")
        self.template = TopicTemplate(self.address, self.params)
        self.models: tuple[type[BaseModel], ...] = tuple(_flatten_union(messages))
        for model in self.models:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise TypeError(f"topic {address!r}: messages must be pydantic models")
        self.message_type: Any = messages
        self.adapter: TypeAdapter[Any] = TypeAdapter(messages)
        self.name = name or _default_name(self.address)
        self.title = title
        self.summary = summary
        self.description = description
        self.tags = list(tags)
        self.authorize = authorize
        self.client_publish = client_publish
        self.publish_scopes = list(publish_scopes)
        self.subscribe_scopes = list(subscribe_scopes)
        #: Kept history and cache mode (`asyncws.history`); None: at-most-once, no positions.
        self.history = history
        self.authorize_dependant: Dependant | None = None
        self.app: AsyncWS | None = None
        self._origin: Topic[M] | None = None  # the topic this one was copied from (prefixed)
        self._bound: Topic[M] | None = None  # the copy an app declared (see bind)

    def __repr__(self) -> str:
        return f"<Topic {self.address!r}>"

    def prefixed(self, prefix: str, tags: Sequence[str]) -> Topic[M]:
        """A copy of this topic under ``prefix`` (used by ``include_router``)."""
        if not prefix and not tags:
            return self
        address = f"{prefix.strip('/')}/{self.address}" if prefix.strip("/") else self.address
        clone = Topic[M](
            address,
            self.message_type,
            params=dict(self.params),
            name=_default_name(address) if self.name == _default_name(self.address) else self.name,
            title=self.title,
            summary=self.summary,
            description=self.description,
            tags=list(dict.fromkeys([*tags, *self.tags])),
            authorize=self.authorize,
            client_publish=self.client_publish,
            publish_scopes=self.publish_scopes,
            subscribe_scopes=self.subscribe_scopes,
            presence=self.presence_policy,
            history=self.history,
        )
        clone._origin = self
        return clone

    def topic_for(self, **params: Any) -> str:
        """The concrete topic for these parameter values (validated).

        For a router's topic included under a prefix, this is the prefixed address.
        """
        bound = self._bound
        if bound is not None and bound is not self:
            return bound.topic_for(**params)
        return validate_topic(self.template.render(params), self._limits())

    def _limits(self) -> TopicLimits:
        return self.app.manager.topic_limits if self.app is not None else DEFAULT_LIMITS

    def encode(self, message: M | dict[str, Any], topic: str) -> str:
        """Validate ``message`` against the topic's models and build the event frame."""
        if isinstance(message, BaseModel):
            if not isinstance(message, self.models):
                raise TypeError(
                    f"topic {self.address!r} does not carry {type(message).__name__} "
                    f"(expected {' | '.join(m.__name__ for m in self.models)})"
                )
            model = message
            # re-validate: a model built with model_construct() or mutated may be invalid
            _revalidate(model)
        else:
            model = self.adapter.validate_python(message)
        return self.frame_for(model, topic)

    def frame_for(self, model: BaseModel, topic: str) -> str:
        """The event frame of a model that was just validated (no second validation), in
        the framing of the app the topic belongs to (asyncws's envelope by default)."""
        data = model.model_dump_json(by_alias=True)
        framing = getattr(self.app, "framing", None)
        if framing is None:
            return event_frame(message_name(type(model)), topic, data)
        text: str = framing.event(message_name(type(model)), topic, data)
        return text

    async def publish(
        self,
        message: M | dict[str, Any],
        /,
        *,
        idempotency_key: str | None = None,
        **params: Any,
    ) -> Position | None:
        """Send ``message`` to every subscriber of the topic these parameters name.

        Raises TypeError (wrong model, missing or unknown parameters), pydantic's
        ValidationError (an invalid message) or `InvalidTopicError` (an invalid parameter
        value) before anything is sent.

        A topic with ``history`` stores the event and returns its `Position`; a publish
        retried with the same ``idempotency_key`` (within the history's ``ttl``) is stored
        and delivered once, and returns the first position. Without history: None.
        """
        bound = self._bound
        if bound is not None and bound is not self:
            # a router's topic: publish under the address the app declared (with its prefix)
            return await bound.publish(message, idempotency_key=idempotency_key, **params)
        app = self.app
        if app is None:
            raise RuntimeError(f"topic {self.address!r} is not part of an AsyncWS app yet")
        topic = self.topic_for(**params)
        text = self.encode(message, topic)
        if self.history is not None:
            return await app.manager.history.publish(topic, text, self.history, idempotency_key)
        if idempotency_key is not None:
            raise TypeError(f"topic {self.address!r} keeps no history: no idempotency_key")
        await app.manager.publish(topic, text=text)
        return None

    async def history_of(self, *, limit: int = 100, **params: Any) -> list[HistoryItem]:
        """The last ``limit`` events of the concrete topic these parameters name, oldest
        first, with their positions (e.g. for an HTTP endpoint serving recent messages).

        Raises TypeError for a topic without history, `BrokerError` when it cannot be read."""
        bound = self._bound
        if bound is not None and bound is not self:
            return await bound.history_of(limit=limit, **params)
        app = self.app
        if app is None:
            raise RuntimeError(f"topic {self.address!r} is not part of an AsyncWS app yet")
        if self.history is None:
            raise TypeError(f"topic {self.address!r} keeps no history")
        topic = self.topic_for(**params)
        items = []
        for position, frame in await app.manager.history.events(topic, limit=limit):
            obj = json.loads(frame)
            model = self.adapter.validate_python(obj["data"] if app.framing.controls else obj)
            items.append(HistoryItem(position, model))
        return items

    async def presence(self, *, limit: int | None = None, **params: Any) -> list[Member]:
        """The members of the topic these parameters name, on every instance (O(members);
        at most ``limit`` of them when given). Raises `asyncws.presence.PresenceError` for a
        topic declared without presence."""
        bound = self._bound
        if bound is not None and bound is not self:
            return await bound.presence(limit=limit, **params)
        tracker, topic = self._presence_target(params)
        members, _ = await tracker.members(topic, limit if limit is not None else 2**62)
        return members

    async def presence_stats(self, **params: Any) -> PresenceStats:
        """The number of members of the topic these parameters name (O(1))."""
        bound = self._bound
        if bound is not None and bound is not self:
            return await bound.presence_stats(**params)
        from .presence import PresenceStats

        tracker, topic = self._presence_target(params)
        return PresenceStats(await tracker.count(topic))

    def _presence_target(self, params: dict[str, Any]) -> tuple[PresenceTracker, str]:
        from .presence import PresenceError

        if self.presence_policy is None:
            raise PresenceError(f"topic {self.address!r} has no presence (declare presence=True)")
        app = self.app
        if app is None:
            raise RuntimeError(f"topic {self.address!r} is not part of an AsyncWS app yet")
        return app.presence, self.topic_for(**params)

    def bind(self, app: AsyncWS) -> None:
        """Attach this topic to ``app``; the router's own Topic objects it was copied from
        (by ``include_router``) then publish through it. A router's topic belongs to the
        last app that included it."""
        self.app = app
        self._bound = None
        origin = self._origin
        while origin is not None:
            origin.app = app
            origin._bound = self
            origin = origin._origin


def _revalidate(model: BaseModel) -> None:
    """Validate a model instance's current field values (by field name), without going
    through its serializers: catches ``model_construct()`` and mutation mistakes."""
    values = dict(model.__dict__)
    if model.__pydantic_extra__:
        values.update(model.__pydantic_extra__)
    if isinstance(model, RootModel):
        type(model).model_validate(model.root)
    elif _VALIDATE_BY_NAME:
        type(model).model_validate(values, by_alias=False, by_name=True)
    else:  # pragma: no cover - pydantic < 2.11: fields with aliases must allow their name
        type(model).model_validate(values)


_VALIDATE_BY_NAME = "by_name" in inspect.signature(BaseModel.model_validate).parameters


def _default_name(address: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.\-]+", ".", address.replace("{", "").replace("}", "")).strip(".")
    return name or "root"


@dataclass(slots=True)
class Operation:
    """A client -> server message type bound to a handler."""

    type: str
    handler: Callable[..., Any]
    dependant: Dependant
    payload: Any  # the payload annotation, or None
    payload_adapter: TypeAdapter[Any] | None
    reply: Any  # the reply annotation, or None
    reply_adapter: TypeAdapter[Any] | None
    summary: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    deprecated: bool = False
    operation_id: str | None = None
    router: Router | None = None
    #: ``Depends(...)`` markers run before the handler (enclosing routers' first); their
    #: values are discarded, their exceptions answer the frame like the handler's would.
    dependencies: list[Any] = field(default_factory=list)
    #: The routers the operation was declared in and included through, innermost first:
    #: where its exception handlers are looked up (then the app's).
    routers: tuple[Router, ...] = ()

    @property
    def name(self) -> str:
        return self.operation_id or self.type


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

    def topic(self, address: str, messages: Any, **options: Any) -> Topic[Any]:
        """Declare a topic; returns it so handlers can ``await topic.publish(...)``."""
        options["tags"] = list(dict.fromkeys([*self.tags, *options.get("tags", ())]))
        topic: Topic[Any] = Topic(address, messages, **options)
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
        ``data``; its return annotation, unless None, is the reply model. ``dependencies``
        (``Depends(...)`` markers) run before the handler, after the router's own.
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
        reserved: frozenset[str] = RESERVED_TYPES,
    ) -> Operation:
        if not _NAME_RE.fullmatch(type):
            raise ValueError(f"operation type {type!r}: use 1-64 of [A-Za-z0-9_.-]")
        if type in reserved:
            raise ValueError(f"operation type {type!r} is reserved by the protocol")
        if type in self.operations:
            raise ValueError(f"operation {type!r} is declared twice")
        extra_deps = [*self.dependencies, *dependencies]
        for marker in extra_deps:
            _check_marker(marker, type)
        owner = getattr(func, "__qualname__", type)
        # path_params None: a router that does not know the endpoint yet; parameters nothing
        # else explains may be endpoint path parameters, checked when an app includes it
        dependant = analyze(
            func,
            allow_payload=True,
            path_params=path_params or frozenset(),
            defer_unknown=path_params is None,
            owner=owner,
        )
        payload = dependant.payload
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception:
            hints = getattr(func, "__annotations__", {})
        reply = hints.get("return")
        if reply is None or reply is types.NoneType:
            reply = None
        doc = (func.__doc__ or "").strip()
        op = Operation(
            type=type,
            handler=func,
            dependant=dependant,
            payload=payload.annotation if payload else None,
            payload_adapter=payload.adapter if payload else None,
            reply=reply,
            reply_adapter=TypeAdapter(reply) if reply is not None else None,
            summary=summary or (doc.splitlines()[0] if doc else None),
            description=description or (doc if doc and "\n" in doc else None),
            tags=list(dict.fromkeys([*self.tags, *tags])),  # the router's, then its own
            scopes=[*scopes],
            deprecated=deprecated,
            operation_id=operation_id,
            router=self,
            dependencies=extra_deps,
            routers=(self,),
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
            _check_marker(marker, "include_router")
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


def _check_marker(marker: Any, where: str) -> None:
    if not isinstance(marker, DependsParam):
        raise TypeError(f"{where}: dependencies must be Depends(...) or Security(...) markers")


def check_authorize(result: Any, topic: Topic[Any]) -> None:
    """Turn an authorization hook's return value into a refusal."""
    if result is False:
        raise ForbiddenError(f"not allowed to subscribe to {topic.address!r}")
