"""Declarations: `Router`, operations (client -> server) and topics (server -> clients).

Declaring is pure: nothing here touches a socket. An `AsyncWS` app includes routers, binds
their topics to its manager, and turns frames into handler calls (see `app.py`).
"""

from __future__ import annotations

import contextlib
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from .dependencies import Dependant, analyze
from .exceptions import ForbiddenError, InvalidTopicError
from .protocol import event_frame
from .topics import DEFAULT_LIMITS, TopicLimits, validate_topic

if TYPE_CHECKING:
    from .app import AsyncWS

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
RESERVED_TYPES = frozenset({"subscribe", "unsubscribe", "publish", "ack", "reply", "error"})


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
        text = str(checked.value if isinstance(checked, Enum) else checked)
        if not text or "/" in text or text in ("+", "#"):
            raise InvalidTopicError(f"topic parameter {self.name!r} must be one non-empty level")
        return text

    def accepts(self, level: str) -> bool:
        """Whether a client-given level is a valid value (validated from its string form)."""
        try:
            self.adapter.validate_strings(level)
        except ValidationError:
            return False
        return bool(level)


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
    ) -> None:
        self.address = address.strip("/")
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
        self.authorize_dependant: Dependant | None = None
        self.app: AsyncWS | None = None

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
            tags=[*tags, *self.tags],
            authorize=self.authorize,
            client_publish=self.client_publish,
            publish_scopes=self.publish_scopes,
            subscribe_scopes=self.subscribe_scopes,
        )
        clone._origin = self  # type: ignore[attr-defined]
        return clone

    def topic_for(self, **params: Any) -> str:
        """The concrete topic for these parameter values (validated)."""
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
            type(model).model_validate(model.model_dump())
        else:
            model = self.adapter.validate_python(message)
        return event_frame(message_name(type(model)), topic, model.model_dump_json(by_alias=True))

    async def publish(self, message: M | dict[str, Any], /, **params: Any) -> None:
        """Send ``message`` to every subscriber of the topic these parameters name."""
        app = self.app or getattr(getattr(self, "_bound", None), "app", None)
        if app is None:
            raise RuntimeError(f"topic {self.address!r} is not part of an AsyncWS app yet")
        topic = self.topic_for(**params)
        await app.manager.publish(topic, text=self.encode(message, topic))

    def bind(self, app: AsyncWS) -> None:
        self.app = app
        origin = getattr(self, "_origin", None)
        while origin is not None:  # the router's own Topic object publishes through the app too
            origin.app = app
            origin = getattr(origin, "_origin", None)


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

    # -- declarations -------------------------------------------------------------------------

    def topic(self, address: str, messages: Any, **options: Any) -> Topic[Any]:
        """Declare a topic; returns it so handlers can ``await topic.publish(...)``."""
        topic: Topic[Any] = Topic(address, messages, **options)
        self.add_topic(topic)
        return topic

    def add_topic(self, topic: Topic[Any]) -> None:
        if any(t.address == topic.address for t in self.topics):
            raise ValueError(f"topic {topic.address!r} is declared twice")
        self.topics.append(topic)

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
    ) -> Callable[[F], F]:
        """Bind frames of this ``type`` to the decorated handler.

        The handler's payload parameter (a pydantic model) is validated from the frame's
        ``data``; its return annotation, unless None, is the reply model.
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
        path_params: frozenset[str] = frozenset(),
    ) -> Operation:
        if not _NAME_RE.fullmatch(type):
            raise ValueError(f"operation type {type!r}: use 1-64 of [A-Za-z0-9_.-]")
        if type in RESERVED_TYPES:
            raise ValueError(f"operation type {type!r} is reserved by the protocol")
        if type in self.operations:
            raise ValueError(f"operation {type!r} is declared twice")
        owner = getattr(func, "__qualname__", type)
        dependant = analyze(func, allow_payload=True, path_params=path_params, owner=owner)
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
            tags=list(tags),
            scopes=[*scopes],
            deprecated=deprecated,
            operation_id=operation_id,
            router=self,
        )
        self.operations[type] = op
        return op

    def exception_handler(
        self, exc_class: type[BaseException]
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Map an exception raised by this router's handlers to an error frame.

        The handler gets ``(connection, exc)`` and returns an `AsyncWSError` to send (its
        code and message), or None when it answered the client itself.
        """

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            self.exception_handlers[exc_class] = func
            return func

        return decorator

    def include_router(self, router: Router, *, prefix: str = "", tags: Sequence[str] = ()) -> None:
        """Add another router's operations and topics (topics get ``prefix``)."""
        for op_type, op in router.operations.items():
            if op_type in self.operations:
                raise ValueError(f"operation {op_type!r} is declared twice")
            self.operations[op_type] = _retag(op, tags)
        full = "/".join(p.strip("/") for p in (prefix, router.prefix) if p.strip("/"))
        for topic in router.topics:
            self.add_topic(topic.prefixed(full, [*tags, *router.tags]))
        for exc, handler in router.exception_handlers.items():
            self.exception_handlers.setdefault(exc, handler)


def _retag(op: Operation, tags: Iterable[str]) -> Operation:
    extra = [t for t in tags if t not in op.tags]
    if not extra:
        return op
    clone = Operation(**{f: getattr(op, f) for f in op.__dataclass_fields__})
    clone.tags = [*extra, *op.tags]
    return clone


def check_authorize(result: Any, topic: Topic[Any]) -> None:
    """Turn an authorization hook's return value into a refusal."""
    if result is False:
        raise ForbiddenError(f"not allowed to subscribe to {topic.address!r}")
