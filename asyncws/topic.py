"""`Topic`: a declared server -> client channel, and how its events are published.

A topic is an address template (`asyncws.addresses`) and the pydantic models of its
messages. Declaring one is pure; once an `AsyncWS` app includes it (`Topic.bind`), its
`publish` validates and encodes an event once and sends it through the app's manager to
the broker, and so to every subscriber on every instance; `history_of`, `presence` and
`presence_stats` read the broker too. The matching of client patterns against topics is
`asyncws.topics`.
"""

from __future__ import annotations

import inspect
import json
import re
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, RootModel, TypeAdapter

from .addresses import Param, TopicTemplate, declared_params
from .dependencies import Dependant
from .exceptions import ForbiddenError
from .history import HistoryItem, HistoryPolicy, Position
from .protocol import event_frame
from .topics import DEFAULT_LIMITS, TopicLimits, validate_topic

if TYPE_CHECKING:
    from .app import AsyncWS
    from .presence import Member, PresencePolicy, PresenceStats, PresenceTracker

__all__ = ["Topic", "check_authorize", "message_name"]

M = TypeVar("M", bound=BaseModel)


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


class Topic(Generic[M]):
    """A server -> client channel: an address template and its message model(s).

    ``await topic.publish(message, room="lobby")`` validates the message and the parameters,
    builds the concrete topic and sends it, through the broker, to every subscriber on every
    instance. Clients may subscribe to concrete addresses, and with ``+``/``#`` in parameter
    levels.

    Args:
        address: The address template, ``rooms/{room}``: each ``{name}`` is a whole level
            (leading and trailing ``/`` are dropped).
        messages: The pydantic model of its events, or a union of models (``A | B``,
            optionally ``Annotated`` with a discriminator).
        params: The type of each parameter, by name: a type (``int``, an Enum, a
            ``Literal``), a pydantic ``Field(...)`` (constraints on a string) or a `Param`.
            Default: ``str``.
        name: The AsyncAPI channel id. Default: from the address (``rooms.room``).
        title: The AsyncAPI channel title.
        summary: The AsyncAPI channel summary.
        description: The AsyncAPI channel description (Markdown).
        tags: AsyncAPI tags of the topic and its operations.
        authorize: A callable resolved like a handler (the `Connection`, ``Depends``, the
            topic parameters by name, ``topic``) that refuses a subscription by returning
            False or raising `ForbiddenError`.
        client_publish: Whether clients may publish to it with ``publish`` frames (the
            payload is validated against ``messages``).
        publish_scopes: Scopes a client needs to publish to it.
        subscribe_scopes: Scopes a client needs to subscribe to it.
        presence: True or a `asyncws.presence.PresencePolicy`: track who is subscribed
            (``presence`` requests, ``join``/``leave`` events). None or False: no presence.
        history: A `HistoryPolicy`: keep its events, with positions and recovery after a
            reconnect (``since``). None: at-most-once delivery, no positions.

    Raises:
        ValueError: an empty address, a parameter that is not a whole level or appears
            twice, a ``params`` entry the address does not have.
        TypeError: ``messages`` that are not pydantic models, a bad ``presence``.
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
        presence: bool | PresencePolicy | None = None,
        history: HistoryPolicy | None = None,
    ) -> None:
        from .presence import policy_of

        #: The topic's `asyncws.presence.PresencePolicy` (``presence=True`` or a policy), or None.
        self.presence_policy = policy_of(presence)
        self.address = address.strip("/")
        if not self.address:
            raise ValueError("a topic address must not be empty")
        self.params: dict[str, Param] = declared_params(self.address, params)
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


def check_authorize(result: Any, topic: Topic[Any]) -> None:
    """Turn an authorization hook's return value into a refusal."""
    if result is False:
        raise ForbiddenError(f"not allowed to subscribe to {topic.address!r}")
