"""Documents in asyncws's envelope: `EnvelopeSpec` reads one into the operations and topics of
an ordinary `AsyncWS` (`AsyncWS.from_asyncapi`; see `asyncws.spec.base`).

    app = AsyncWS.from_asyncapi("specs/chat.asyncapi.yaml", broker="memory://")

    @app.handler("post")
    async def post(data: dict, conn: Connection) -> dict:
        await app.publish("roomsRoom", {"type": "posted", ...}, room=data["room"])
        return {"room": data["room"], "at": "..."}

How the document is read (the shape `asyncws spec` generates; see docs/asyncapi.md):

* The **endpoint** is the channel of the ``receive`` operations (there must be one); its
  address is the websocket path.
* A message payload is a **frame** when it is an object schema whose ``type`` property has a
  ``const``: the const is the frame type and ``properties.data`` the payload. Otherwise the
  whole payload is the ``data`` and the frame type is the message's ``name`` (or its key).
* Each ``receive`` operation whose frame type is not ``subscribe``, ``unsubscribe`` or
  ``publish`` needs a handler. Its ``reply`` (if it lists a ``reply`` frame, not only
  ``ack``/``error``) is the schema the handler's return value must match.
* Each ``send`` operation's channel is a **topic**: address template, parameters (``enum``,
  or the ``x-asyncws-schema`` constraints) and events. ``publish<Topic>`` operations (with
  ``x-asyncws-topic``) let clients publish; ``x-asyncws-scopes`` on an operation (or
  ``scopes`` of its inline security schemes) are the scopes it requires.

Payloads, replies and published events are validated with jsonschema (draft-07, the
document's ``components`` available to ``$ref``). The served document is the given one, with
``servers`` filled in from the request when it has none.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from jsonschema import Draft7Validator
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..asyncapi.model import RawSchema
from ..asyncapi.reader import protocol_problems
from ..asyncapi.schemas import deref, make_validator, pointer_parts
from ..asyncapi.v3 import server_from_url
from ..connection import Connection
from ..exceptions import PayloadValidationError
from ..presence import PresencePolicy
from ..routing import Param, Topic
from .base import AppSpec, SpecError, load_document

if TYPE_CHECKING:
    from ..app import AsyncWS

__all__ = ["EnvelopeSpec", "Frame", "SpecOperation", "read_frame"]

CONTROL_TYPES = frozenset({"subscribe", "unsubscribe", "publish"})
ANSWER_TYPES = frozenset({"ack", "error"})
_MAX_ERRORS = 50


@dataclass(frozen=True)
class Frame:
    """A message read as a frame: its ``type`` and the schema of its ``data`` (None when the
    frame has no ``data``)."""

    type: str
    data: Any
    key: str


def read_frame(document: Mapping[str, Any], ref: Any, key: str) -> Frame:
    message = deref(document, ref)
    if not isinstance(message, Mapping):
        raise SpecError([f"message {key!r} is not an object"])
    payload = message.get("payload")
    schema = deref(document, payload) if payload is not None else None
    if isinstance(schema, Mapping):
        props = schema.get("properties")
        kind = props.get("type") if isinstance(props, Mapping) else None
        kind = deref(document, kind) if kind is not None else None
        if isinstance(kind, Mapping):
            const = kind.get("const")
            if const is None and isinstance(kind.get("enum"), list) and len(kind["enum"]) == 1:
                const = kind["enum"][0]
            if isinstance(const, str):
                assert isinstance(props, Mapping)
                return Frame(const, props.get("data"), key)
    name = message.get("name")
    return Frame(name if isinstance(name, str) else key, payload, key)


def _channel_key(ref: Any) -> str:
    if not isinstance(ref, Mapping) or not isinstance(ref.get("$ref"), str):
        raise SpecError(["an operation's channel must be a reference to #/channels/..."])
    parts = pointer_parts(ref["$ref"])
    if len(parts) != 2 or parts[0] != "channels":
        raise SpecError([f"channel reference {ref['$ref']!r} must point at #/channels/<id>"])
    return parts[1]


def _scopes(operation: Mapping[str, Any], document: Mapping[str, Any]) -> list[str]:
    scopes = operation.get("x-asyncws-scopes")
    if isinstance(scopes, list):
        return [str(s) for s in scopes]
    found: list[str] = []
    for item in operation.get("security", []) or []:
        scheme = deref(document, item)
        if isinstance(scheme, Mapping):
            found += [str(s) for s in scheme.get("scopes", []) or [] if s not in found]
    return found


def _errors(validator: Draft7Validator, instance: Any) -> list[dict[str, Any]]:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [
        {"loc": list(e.absolute_path), "msg": e.message, "type": str(e.validator)}
        for e in errors[:_MAX_ERRORS]
    ]


@dataclass(frozen=True)
class SpecOperation:
    """A receive operation of the document that a handler implements."""

    id: str
    type: str
    payload: RawSchema | None
    reply: RawSchema | None
    scopes: tuple[str, ...]
    summary: str | None
    description: str | None
    tags: tuple[str, ...]
    payload_validator: Draft7Validator | None
    reply_validator: Draft7Validator | None


class _SpecMessage(BaseModel):
    """Base of the models standing for a document's event messages: any JSON object that
    the message's schema accepts (validated with jsonschema)."""

    model_config = ConfigDict(extra="allow")
    __asyncws_validator__: ClassVar[Draft7Validator | None] = None
    __asyncws_raw_schema__: ClassVar[RawSchema | None] = None

    @model_validator(mode="before")
    @classmethod
    def _validate_schema(cls, data: Any) -> Any:
        validator = cls.__asyncws_validator__
        if validator is not None:
            errors = _errors(validator, data)
            if errors:
                first = errors[0]
                where = "/".join(str(p) for p in first["loc"])
                raise ValueError(f"{first['msg']}" + (f" (at {where})" if where else ""))
        return data


def _event_model(name: str, raw: RawSchema, document: Mapping[str, Any]) -> type[BaseModel]:
    namespace = {
        "model_config": ConfigDict(extra="allow", title=name),
        "__asyncws_validator__": make_validator(raw.schema, document),
        "__asyncws_raw_schema__": raw,
        "__module__": __name__,
    }
    class_name = re.sub(r"\W+", "_", name).strip("_") or "Message"
    return type(f"Spec_{class_name}", (_SpecMessage,), namespace)


def _param(name: str, spec: Mapping[str, Any]) -> Param:
    description = spec.get("description")
    enum = spec.get("enum")
    annotation: Any = str
    if isinstance(enum, list) and enum:
        annotation = Literal[tuple(str(v) for v in enum)]
    else:
        constraints = spec.get("x-asyncws-schema")
        if isinstance(constraints, Mapping):
            kwargs = {
                arg: constraints[key]
                for key, arg in (
                    ("pattern", "pattern"),
                    ("minLength", "min_length"),
                    ("maxLength", "max_length"),
                )
                if key in constraints
            }
            if constraints.get("type") == "integer":
                annotation = int
            elif kwargs:
                annotation = Annotated[str, Field(**kwargs)]
    return Param(name, annotation, description if isinstance(description, str) else None)


class EnvelopeSpec(AppSpec):
    """A document in asyncws's envelope, read (see the module docstring): its receive
    operations (``spec_operations``, each needing a handler) and its topics, declared on the
    app it is bound to. Raises `SpecError` listing every problem of the document."""

    def __init__(self, source: str | Path | Mapping[str, Any]) -> None:
        super().__init__()
        doc = load_document(source)
        info = doc.get("info", {}) if isinstance(doc.get("info"), Mapping) else {}
        self.document = doc
        self.spec_operations: dict[str, SpecOperation] = {}
        self.topics: list[Topic[Any]] = []
        problems: list[str] = protocol_problems(doc)
        try:
            endpoint = self._find_endpoint(problems)
        except ValueError as exc:
            raise SpecError([str(exc)]) from None
        self.app_arguments = {
            "title": str(info.get("title", "asyncws app")),
            "version": str(info.get("version", "0.1.0")),
            "description": info.get("description"),
        }
        if endpoint is not None:
            address = doc["channels"][endpoint].get("address")
            if isinstance(address, str) and address:
                self.app_arguments["path"] = "/" + address.lstrip("/")
        self.endpoint_channel = endpoint
        try:
            self._read_operations(problems)
            self._read_topics(endpoint, problems)
        except SpecError:
            raise
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise SpecError(problems)

    def bind(self, app: AsyncWS) -> None:
        """Declare the operations (each calling its handler) and the topics on ``app``."""
        super().bind(app)
        problems: list[str] = []
        for spec_op in self.spec_operations.values():
            try:
                app.add_operation(
                    spec_op.type,
                    self._wrapper(spec_op),
                    summary=spec_op.summary,
                    description=spec_op.description,
                    tags=spec_op.tags,
                    scopes=spec_op.scopes,
                    operation_id=spec_op.id if spec_op.id != spec_op.type else None,
                )
            except ValueError as exc:
                problems.append(f"operation {spec_op.id!r}: {exc}")
        for topic in self.topics:
            try:
                app.add_topic(topic)
            except (ValueError, TypeError) as exc:
                problems.append(f"topic {topic.name!r}: {exc}")
        if problems:
            raise SpecError(problems)

    # -- reading the document -------------------------------------------------------------

    def _operations(self) -> dict[str, Mapping[str, Any]]:
        ops = self.document.get("operations", {})
        return {k: v for k, v in ops.items() if isinstance(v, Mapping)} if ops else {}

    def _find_endpoint(self, problems: list[str]) -> str | None:
        channels = {
            _channel_key(op.get("channel"))
            for op in self._operations().values()
            if op.get("action") == "receive"
        }
        if len(channels) > 1:
            problems.append(
                "receive operations use several channels "
                f"({', '.join(sorted(channels))}): an app has one websocket endpoint"
            )
            return None
        if not channels:
            return None
        (key,) = channels
        if key not in self.document.get("channels", {}):
            problems.append(f"channel {key!r} is referenced but not defined")
            return None
        return key

    def _raw(self, schema: Any) -> RawSchema:
        components = self.document.get("components", {}).get("schemas", {})
        return RawSchema(schema=schema, components=components)

    def _read_operations(self, problems: list[str]) -> None:
        doc = self.document
        for op_id, op in self._operations().items():
            if op.get("action") != "receive":
                continue
            refs = op.get("messages") or list(
                doc["channels"]
                .get(_channel_key(op.get("channel")), {})
                .get("messages", {})
                .values()
            )
            frames = [read_frame(doc, ref, op_id) for ref in refs]
            if len(frames) != 1:
                problems.append(
                    f"operation {op_id!r}: a receive operation needs exactly one message"
                )
                continue
            frame = frames[0]
            if frame.type in CONTROL_TYPES or op.get("x-asyncws-presence"):
                continue  # handled by the framework (subscribe/unsubscribe/publish, presence)
            reply: RawSchema | None = None
            answer = op.get("reply")
            if isinstance(answer, Mapping):
                answer = deref(doc, answer)
                for i, ref in enumerate(answer.get("messages", []) or []):
                    reply_frame = read_frame(doc, ref, f"{op_id}.reply.{i}")
                    if reply_frame.type not in ANSWER_TYPES:
                        reply = self._raw(reply_frame.data if reply_frame.data is not None else {})
            payload = self._raw(frame.data) if frame.data is not None else None
            tags = tuple(
                str(t.get("name")) for t in op.get("tags", []) or [] if isinstance(t, Mapping)
            )
            self.spec_operations[op_id] = SpecOperation(
                id=op_id,
                type=frame.type,
                payload=payload,
                reply=reply,
                scopes=tuple(_scopes(op, doc)),
                summary=op.get("summary"),
                description=op.get("description"),
                tags=tags,
                payload_validator=make_validator(payload.schema, doc) if payload else None,
                reply_validator=make_validator(reply.schema, doc) if reply else None,
            )

    def _read_topics(self, endpoint: str | None, problems: list[str]) -> None:
        doc = self.document
        ops = self._operations()
        control: dict[str, dict[str, list[str]]] = {}
        for op in ops.values():
            topic_key = op.get("x-asyncws-topic")
            if op.get("action") != "receive" or not isinstance(topic_key, str):
                continue
            refs = op.get("messages") or []
            if op.get("x-asyncws-presence"):  # the topic has presence (asyncws.presence)
                control.setdefault(topic_key, {})["presence"] = []
                continue
            kinds = {read_frame(doc, ref, topic_key).type for ref in refs}
            for kind in kinds & {"subscribe", "publish"}:
                control.setdefault(topic_key, {})[kind] = _scopes(op, doc)
        for op_id, op in ops.items():
            if op.get("action") != "send":
                continue
            key = _channel_key(op.get("channel"))
            if key == endpoint:
                problems.append(
                    f"send operation {op_id!r} uses the endpoint channel: events go on topics "
                    "(channels with their own address)"
                )
                continue
            channel = doc.get("channels", {}).get(key)
            if not isinstance(channel, Mapping) or not isinstance(channel.get("address"), str):
                problems.append(f"send operation {op_id!r}: channel {key!r} has no address")
                continue
            if any(t.name == key for t in self.topics):
                continue
            try:
                self.topics.append(self._topic(key, channel, op, control.get(key, {})))
            except (ValueError, TypeError) as exc:
                problems.append(f"topic {key!r}: {exc}")

    def _topic(
        self,
        key: str,
        channel: Mapping[str, Any],
        operation: Mapping[str, Any],
        control: Mapping[str, list[str]],
    ) -> Topic[Any]:
        doc = self.document
        refs = operation.get("messages") or list(channel.get("messages", {}).values())
        models: list[type[BaseModel]] = []
        presence_events = False
        for i, ref in enumerate(refs):
            frame = read_frame(doc, ref, f"{key}.{i}")
            if "presence" in control and frame.type in ("join", "leave"):
                presence_events = True  # sent by asyncws.presence, not a message of the app
                continue
            schema = frame.data if frame.data is not None else {}
            models.append(_event_model(frame.type, self._raw(schema), doc))
        if not models:
            raise ValueError("a topic needs at least one message")
        params = {
            name: _param(name, deref(doc, spec))
            for name, spec in (channel.get("parameters") or {}).items()
        }
        messages: Any = models[0] if len(models) == 1 else Union[tuple(models)]  # noqa: UP007
        topic: Topic[Any] = Topic(
            channel["address"],
            messages,
            params=params,
            name=key,
            title=channel.get("title"),
            summary=channel.get("summary"),
            description=channel.get("description"),
            tags=[str(t.get("name")) for t in channel.get("tags", []) or []],
            client_publish="publish" in control,
            publish_scopes=control.get("publish", []),
            subscribe_scopes=control.get("subscribe", []),
            presence=PresencePolicy(events=presence_events) if "presence" in control else None,
        )
        if "publish" in control:
            publish_schema = self._publish_schema(key)
            if publish_schema is not None:
                topic.publish_schema = publish_schema  # type: ignore[attr-defined]
        return topic

    def _publish_schema(self, topic_key: str) -> RawSchema | None:
        for op in self._operations().values():
            if op.get("x-asyncws-topic") != topic_key or op.get("action") != "receive":
                continue
            for ref in op.get("messages") or []:
                frame = read_frame(self.document, ref, topic_key)
                if frame.type == "publish" and frame.data is not None:
                    return self._raw(frame.data)
        return None

    # -- handlers -------------------------------------------------------------------------

    def _wrapper(self, spec_op: SpecOperation) -> Callable[..., Any]:
        spec = self

        async def call(conn: Connection, data: Any = None) -> Any:
            return await spec._dispatch(spec_op, data, conn)

        async def call_without_data(conn: Connection) -> Any:
            return await spec._dispatch(spec_op, None, conn)

        func = call if spec_op.payload is not None else call_without_data
        hints: dict[str, Any] = {"conn": Connection}
        if spec_op.payload is not None:
            hints["data"] = Any
        hints["return"] = Any if spec_op.reply is not None else None
        func.__annotations__ = hints
        func.__qualname__ = func.__name__ = f"spec_operation_{spec_op.type}"
        func.__asyncws_spec__ = spec_op  # type: ignore[attr-defined]
        return func

    async def _dispatch(self, spec_op: SpecOperation, data: Any, conn: Connection) -> Any:
        if spec_op.payload_validator is not None:
            errors = _errors(spec_op.payload_validator, data)
            if errors:
                raise PayloadValidationError("invalid payload", errors=errors)
        handler = self.handlers.get(spec_op.id)
        if handler is None:  # compile() refuses to start without handlers; be safe anyway
            raise RuntimeError(f"no handler for operation {spec_op.id!r}")
        result = handler(data, conn)
        if inspect.isawaitable(result):
            result = await result
        if spec_op.reply_validator is not None:
            errors = _errors(spec_op.reply_validator, result)
            if errors:
                raise RuntimeError(
                    f"the handler of {spec_op.id!r} returned a reply that does not match the "
                    f"document: {errors[0]['msg']} at {errors[0]['loc']}"
                )
            return result
        return None

    def handle(self, operation_id: str, func: Callable[..., Any]) -> None:
        """Bind ``func`` to the receive operation ``operation_id``: it is called as
        ``func(data, conn)`` (sync or async) with the validated payload (None when the
        operation has none) and returns the reply (validated against the document) or None.
        A dotted id of an older asyncws document (``order.place``) binds the operation now
        called ``orderPlace``."""
        if operation_id not in self.spec_operations and _undotted(operation_id) in (
            self.spec_operations
        ):
            operation_id = _undotted(operation_id)
        super().handle(operation_id, func)

    def receives(self) -> dict[str, str]:
        return {op_id: f"frames of type {op.type!r}" for op_id, op in self.spec_operations.items()}

    # -- publishing and serving -----------------------------------------------------------

    def find_topic(self, name: str) -> Topic[Any]:
        """A topic by channel id, by the id of its send operation, or by address. A dotted
        id of documents asyncws wrote before ids lost their dots (``rooms.room``) finds the
        channel now called ``roomsRoom``."""
        undotted = _undotted(name)
        for topic in self.topics:
            if name in (topic.name, topic.address) or (undotted != name and topic.name == undotted):
                return topic
        operation = self._operations().get(name)
        if operation is not None and operation.get("action") == "send":
            key = _channel_key(operation.get("channel"))
            for topic in self.topics:
                if topic.name == key:
                    return topic
        raise KeyError(f"no topic {name!r} in the document")

    async def publish(self, name: str, data: Any, /, **params: Any) -> None:
        """Publish ``data`` (an event of the topic, validated against the document) to the
        topic named by channel id or send operation id, with its address parameters."""
        await self.find_topic(name).publish(dict(data), **params)

    def has_own_servers(self, servers: Mapping[str, Any] | None) -> bool:
        """Whether the served document keeps its servers: ``servers=`` was given, or the
        document lists servers other than the ``default`` placeholder asyncws generates."""
        listed = self.document.get("servers")
        return bool(servers) or (isinstance(listed, Mapping) and set(listed) - {"default"} != set())

    def served_document(
        self, server_url: str | None, servers: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The given document (a copy) with its servers: ``servers=`` if given, the
        document's own, or else one ``default`` server for ``server_url`` (keeping the
        placeholder's security requirements)."""
        document = copy.deepcopy(self.document)
        if servers:
            chosen: dict[str, Any] = copy.deepcopy(dict(servers))
        elif self.has_own_servers(servers):
            return document
        else:
            placeholder = dict(document.get("servers", {}).get("default", {}))
            rest = {
                k: v for k, v in placeholder.items() if k not in ("host", "protocol", "pathname")
            }
            chosen = {"default": {**server_from_url(server_url or "ws://localhost:8000"), **rest}}
        ordered: dict[str, Any] = {}
        for k, v in document.items():
            if k in ("channels", "operations", "components") and "servers" not in ordered:
                ordered["servers"] = chosen
            if k != "servers":
                ordered[k] = v
        ordered.setdefault("servers", chosen)
        return ordered


def _undotted(name: str) -> str:
    """``rooms.room`` -> ``roomsRoom`` (how asyncws writes ids since 0.2, see the CHANGELOG)."""
    parts = [p for p in name.split(".") if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:]) if parts else name
