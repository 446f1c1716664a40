"""Framing: how the messages of an API map to websocket frames, and back. Pure, no I/O.

Every part of the declarative layer that reads or writes frames goes through a `Framing`:
the endpoint (`asyncws.app`), topic events, history positions, spec-first apps; the AsyncAPI
reader (used by the client generators and ``asyncws check``) describes messages with its
`MessageShape` and `classify`. The seed's imperative API (`WebSocketManager.receive`,
``async for message in connection``) speaks its own dialect, with `asyncws.protocol`. Two
framings exist:

* `AsyncWSFraming` (the default of code-first apps): asyncws's envelope
  ``{"type", "id", "topic", "data"}``, with ``ack``/``reply``/``error`` answers and the
  ``subscribe``/``unsubscribe``/``publish`` control frames (see ``docs/protocol.md``).
* `DocumentFraming`: the message payload *is* the frame, as in most hand-written AsyncAPI
  WebSocket APIs (``{"event": "ping", "reqid": 42}``). Which message a frame is comes from
  its discriminator properties (a ``const`` or ``enum``, or the schema ``discriminator``
  keyword with the message ``name`` as value), then from a schema match when nothing else
  tells two messages apart; a request and its reply are correlated by the value at the
  message's ``correlationId.location`` (``$message.payload#/reqid``), not a fixed ``id``.

`MessageShape` is what a framing knows of one message; `classify` picks the shape of a
decoded frame. Errors in the document framing are frames of their own,
``{"error": {"code", "message", "errors"?}}`` with the request's correlation value at its
location when the request had one (see ``docs/asyncapi.md``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from .exceptions import AsyncWSError, PayloadValidationError, ProtocolError, UnknownTypeError
from .protocol import (
    ack_frame,
    decode_json,
    dumps,
    error_frame_for,
    event_frame,
    frame_id,
    reply_frame,
)

if TYPE_CHECKING:
    from .routing import Operation

__all__ = [
    "AsyncWSFraming",
    "DocumentFraming",
    "Framing",
    "InboundFrame",
    "MessageShape",
    "classify",
    "correlation_pointer",
    "get_pointer",
    "indistinct",
    "set_pointer",
    "shape_of",
]

_MISSING = object()


def correlation_pointer(location: str) -> tuple[str, ...]:
    """The JSON pointer parts of a ``correlationId.location`` (``$message.payload#/reqid``).

    Raises ValueError for a location that is not in the payload (``$message.header#...``:
    websocket frames have no headers) or is not a runtime expression at all."""
    prefix = "$message.payload#"
    if location.startswith("$message.header"):
        raise ValueError(
            f"correlationId location {location!r} is in the message header: "
            "websocket frames have no headers (use $message.payload#/...)"
        )
    if not location.startswith(prefix):
        raise ValueError(f"correlationId location {location!r} is not $message.payload#/...")
    pointer = location[len(prefix) :]
    if not pointer.startswith("/") or pointer == "/":
        raise ValueError(f"correlationId location {location!r} names no property")
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/"))


def get_pointer(obj: Any, parts: Sequence[str]) -> Any:
    """The value at ``parts`` in ``obj``, or None when there is none."""
    for part in parts:
        if isinstance(obj, Mapping):
            obj = obj.get(part, _MISSING)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
        if obj is _MISSING:
            return None
    return obj


def set_pointer(obj: dict[str, Any], parts: Sequence[str], value: Any) -> None:
    """Set ``value`` at ``parts`` in ``obj``, creating objects on the way."""
    target = obj
    for part in parts[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            target[part] = nxt
        target = nxt
    target[parts[-1]] = value


@dataclass(frozen=True)
class MessageShape:
    """What a framing knows of one message of the document framing.

    ``discriminator`` maps a top-level property to the values that mark this message (a
    ``const`` is one value, an ``enum`` several); ``required`` are its required top-level
    properties; ``correlation`` the pointer to its correlation id; ``matches`` a schema
    check used only when discriminators leave several candidates.
    """

    key: str
    name: str
    discriminator: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    correlation: tuple[str, ...] | None = None
    matches: Callable[[Any], bool] | None = field(default=None, compare=False)
    operation: str | None = None

    def fits(self, obj: Mapping[str, Any]) -> bool:
        """Whether the discriminators admit ``obj``: a ``const`` property must be there with
        its value; an ``enum`` one, when there, must have one of its values (when it is
        missing, the message's validation says so, not "unknown message")."""
        for prop, values in self.discriminator.items():
            if prop in obj:
                if obj[prop] not in values:
                    return False
            elif len(values) == 1:
                return False
        return True

    def score(self, obj: Mapping[str, Any]) -> int:
        """How many discriminator properties of ``obj`` this message names."""
        return sum(1 for prop in self.discriminator if prop in obj)

    def constants(self) -> dict[str, Any]:
        """The discriminator properties with exactly one value (filled in when missing)."""
        return {p: v[0] for p, v in self.discriminator.items() if len(v) == 1}


def shape_of(
    key: str,
    name: str,
    schema: Any,
    *,
    correlation: tuple[str, ...] | None = None,
    matches: Callable[[Any], bool] | None = None,
    operation: str | None = None,
) -> MessageShape:
    """The shape of a message from its (dereferenced) payload schema.

    A top-level property with a ``const`` or a (short) ``enum`` of scalars is a
    discriminator; a schema ``discriminator: prop`` whose property has neither makes the
    message ``name`` the value."""
    discriminator: dict[str, tuple[Any, ...]] = {}
    required: frozenset[str] = frozenset()
    if isinstance(schema, Mapping):
        props = schema.get("properties")
        if isinstance(props, Mapping):
            for prop, sub in props.items():
                if not isinstance(sub, Mapping):
                    continue
                if "const" in sub:
                    discriminator[prop] = (sub["const"],)
                elif _scalar_enum(sub.get("enum")):
                    discriminator[prop] = tuple(sub["enum"])
            named = schema.get("discriminator")
            if isinstance(named, str) and named in props and named not in discriminator:
                discriminator[named] = (name,)
        req = schema.get("required")
        if isinstance(req, list):
            required = frozenset(str(r) for r in req)
    return MessageShape(
        key=key,
        name=name,
        discriminator=discriminator,
        required=required,
        correlation=correlation,
        matches=matches,
        operation=operation,
    )


def _scalar_enum(values: Any) -> bool:
    return (
        isinstance(values, list)
        and 0 < len(values) <= 64
        and all(isinstance(v, str | int | bool) for v in values)
    )


def classify(obj: Any, shapes: Sequence[MessageShape]) -> MessageShape | None:
    """The message a decoded frame is, among ``shapes``; None when it is none of them.

    Candidates are the shapes whose discriminators and required properties admit the frame;
    of those, the ones with the most discriminator properties win (a frame with
    ``event: subscriptionStatus, status: error`` is the error variant, not the generic
    status); a schema match decides what is left; a tie goes to the first in document
    order (and when no schema admits the frame, the first too: its validation says why).
    """
    if not isinstance(obj, Mapping):
        return None
    candidates = [s for s in shapes if s.fits(obj)]
    if len(candidates) > 1:
        most = max(s.score(obj) for s in candidates)
        candidates = [s for s in candidates if s.score(obj) == most]
    if len(candidates) > 1:
        # what the schemas admit; when none does, the first (its validation says why)
        candidates = [s for s in candidates if s.matches is None or s.matches(obj)] or candidates
    return candidates[0] if candidates else None


def indistinct(shapes: Sequence[MessageShape]) -> list[tuple[MessageShape, MessageShape]]:
    """Pairs of shapes that no discriminator tells apart (only a schema match can)."""
    pairs = []
    for i, a in enumerate(shapes):
        for b in shapes[i + 1 :]:
            if set(a.discriminator) != set(b.discriminator):
                continue  # the more specific one wins when its extra property is there
            if all(set(a.discriminator[p]) & set(b.discriminator[p]) for p in a.discriminator):
                pairs.append((a, b))
    return pairs


@dataclass(frozen=True)
class InboundFrame:
    """A client frame as the endpoint sees it: the operation it is for (``type``), its
    correlation value (``id``), the payload (``data``) and, in the document framing, the
    message it was classified as."""

    type: str
    id: Any = None
    data: Any = None
    message: MessageShape | None = None


class Framing(ABC):
    """How frames are read and written. ``controls`` tells whether asyncws's
    ``subscribe``/``unsubscribe``/``publish`` control frames exist in this framing."""

    name: str
    controls: bool

    @abstractmethod
    def decoder(self, operations: Iterable[Operation]) -> Any:
        """An object whose ``validate(text)`` turns a client frame into a frame with
        ``type``, ``id`` and ``data`` (raising the `AsyncWSError` that answers a bad one)."""

    @abstractmethod
    def replies(self, frame: Any, data_json: str) -> list[str]:
        """The frames answering ``frame`` with a handler's result (JSON text)."""

    @abstractmethod
    def ack(self, frame: Any) -> str | None:
        """The frame telling that ``frame`` was handled and returned nothing (or None)."""

    @abstractmethod
    def correlation_in(self, text: str | None) -> Any:
        """Best effort, on the error path: the correlation value of a raw client frame."""

    @abstractmethod
    def error(self, exc: AsyncWSError, correlation: Any) -> str | None:
        """The frame answering a failed client frame (``correlation`` is its id)."""

    @abstractmethod
    def event(self, kind: str, topic: str, data_json: str) -> str:
        """The frame of a topic event (``kind`` is the message name)."""

    def positioned(self, frame: str, offset: int, epoch: str) -> str:
        """An event frame of a history topic with its position (`asyncws.history`). A
        framing without room for it sends the frame as it is."""
        return frame

    def subscribed(self, frame: Any, recovered: bool | None, offset: int, epoch: str) -> str | None:
        """The ack of a subscribe to a history topic: the current position and, when the
        client asked with ``since``, whether everything it missed follows."""
        return self.ack(frame)


class AsyncWSFraming(Framing):
    """asyncws's envelope (``docs/protocol.md``); the default of `AsyncWS` apps."""

    name = "asyncws"
    controls = True

    def decoder(self, operations: Iterable[Operation]) -> Any:
        from .frames import FrameValidator

        return FrameValidator(operations)

    def replies(self, frame: Any, data_json: str) -> list[str]:
        return [] if frame.id is None else [reply_frame(frame.id, data_json)]

    def ack(self, frame: Any) -> str | None:
        return None if frame.id is None else ack_frame(frame.id)

    def correlation_in(self, text: str | None) -> Any:
        from .frames import safe_id

        return frame_id(safe_id(text))

    def error(self, exc: AsyncWSError, correlation: Any) -> str | None:
        return error_frame_for(exc, correlation)

    def event(self, kind: str, topic: str, data_json: str) -> str:
        return event_frame(kind, topic, data_json)

    def positioned(self, frame: str, offset: int, epoch: str) -> str:
        # the envelope ends with its "data": one splice, no re-encoding of the event
        return f'{frame[:-1]},"offset":{offset},"epoch":{dumps(epoch)}}}'

    def subscribed(self, frame: Any, recovered: bool | None, offset: int, epoch: str) -> str | None:
        if frame.id is None:
            return None
        body: dict[str, Any] = {"type": "ack", "id": frame.id}
        if recovered is not None:
            body["recovered"] = recovered
        body["position"] = {"offset": offset, "epoch": epoch}
        return dumps(body)


class DocumentFraming(Framing):
    """The payload is the frame (``AsyncWS(framing=DocumentFraming(...))``).

    For a code-first app: a frame's operation is the value of its ``discriminator``
    property (``event`` in ``{"event": "ping", "reqid": 1}`` names the operation
    ``ping``); the whole frame is validated against the operation's payload model; the
    handler's reply is sent as its own frame, with the request's ``correlation`` value
    (a property name or a JSON pointer, ``"reqid"`` or ``"/meta/id"``) copied into it. A
    handler may return a list: each item is one reply frame. Topic events are their
    payloads as they are. Operations that return nothing are not acknowledged.

    ``shapes`` (used by spec-first apps) replaces the discriminator lookup by `classify`.
    """

    name = "document"
    controls = False

    def __init__(
        self,
        *,
        discriminator: str = "type",
        correlation: str | None = None,
        shapes: Sequence[MessageShape] = (),
        error: Callable[[AsyncWSError, Any], Any] | None = None,
    ) -> None:
        self.discriminator = discriminator
        if correlation is None:
            self.correlation: tuple[str, ...] | None = None
        elif correlation.startswith("$message"):
            self.correlation = correlation_pointer(correlation)
        elif correlation.startswith("/"):
            self.correlation = tuple(correlation[1:].split("/"))
        else:
            self.correlation = (correlation,)
        self.shapes = list(shapes)
        self._error = error

    def with_shapes(self, shapes: Sequence[MessageShape]) -> DocumentFraming:
        """A copy of this framing that classifies frames by ``shapes``."""
        out = DocumentFraming(discriminator=self.discriminator, shapes=shapes, error=self._error)
        out.correlation = self.correlation
        return out

    def decoder(self, operations: Iterable[Operation]) -> _DocumentDecoder:
        return _DocumentDecoder(self, {op.type: op for op in operations})

    def correlation_of(self, obj: Any, shape: MessageShape | None = None) -> Any:
        """The correlation value of a decoded frame (by its message's location, else the
        framing's), or None."""
        pointer = shape.correlation if shape is not None and shape.correlation else None
        pointer = pointer or self.correlation
        if pointer is None:
            return None
        value = get_pointer(obj, pointer)
        return value if isinstance(value, str | int) and not isinstance(value, bool) else None

    def with_correlation(self, obj: Any, value: Any, pointer: tuple[str, ...] | None = None) -> Any:
        pointer = pointer or self.correlation
        if value is None or pointer is None or not isinstance(obj, dict):
            return obj
        if get_pointer(obj, pointer) is None:
            obj = dict(obj)
            set_pointer(obj, pointer, value)
        return obj

    def replies(self, frame: Any, data_json: str) -> list[str]:
        value = json.loads(data_json)
        items = value if isinstance(value, list) else [value]
        return [dumps(self.with_correlation(item, frame.id)) for item in items]

    def ack(self, frame: Any) -> str | None:
        return None

    def correlation_in(self, text: str | None) -> Any:
        if text is None or len(text) > 1 << 20:
            return None
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(obj, dict):
            return None
        shape = classify(obj, self.shapes) if self.shapes else None
        if shape is not None or not self.shapes:
            pointers = [shape.correlation if shape is not None else None, self.correlation]
        else:  # a frame that is no message: where any message of the endpoint has it
            pointers = list(dict.fromkeys(s.correlation for s in self.shapes))
        for pointer in pointers:
            if pointer is None:
                continue
            value = get_pointer(obj, pointer)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return _Correlation(value, pointer)
        return None

    def error(self, exc: AsyncWSError, correlation: Any) -> str | None:
        pointer = self.correlation
        if isinstance(correlation, _Correlation):
            correlation, pointer = correlation.value, correlation.pointer
        if self._error is not None:
            built = self._error(exc, correlation)
            return None if built is None else dumps(built)
        body: dict[str, Any] = {"code": str(exc.code), "message": exc.message or str(exc.code)}
        if exc.errors:
            body["errors"] = exc.errors
        return dumps(self.with_correlation({"error": body}, correlation, pointer))

    def event(self, kind: str, topic: str, data_json: str) -> str:
        return data_json


@dataclass(frozen=True)
class _Correlation:
    """A correlation value and where the request carried it (the error frame puts it there)."""

    value: Any
    pointer: tuple[str, ...] | None


class _DocumentDecoder:
    """Decodes a document-framed client frame into an `InboundFrame`."""

    def __init__(self, framing: DocumentFraming, operations: Mapping[str, Operation]) -> None:
        self.framing = framing
        self.operations = dict(operations)
        self._adapters: dict[str, TypeAdapter[Any]] = {
            kind: TypeAdapter(op.payload)
            for kind, op in self.operations.items()
            if op.payload is not None
        }

    def validate(self, text: str) -> InboundFrame:
        obj = decode_json(text)
        if not isinstance(obj, dict):
            raise ProtocolError("a frame must be a JSON object")
        framing = self.framing
        shape: MessageShape | None = None
        kind: str
        if framing.shapes:
            shape = classify(obj, framing.shapes)
            if shape is None or shape.operation is None:
                raise UnknownTypeError("the frame is none of the messages this endpoint receives")
            kind = shape.operation
        else:
            given = obj.get(framing.discriminator)
            if not isinstance(given, str) or not given:
                raise ProtocolError(f"{framing.discriminator!r} must be a non-empty string")
            kind = given
            if kind not in self.operations:
                raise UnknownTypeError(f"unknown message type {kind[:40]!r}")
        correlation = framing.correlation_of(obj, shape)
        adapter = self._adapters.get(kind)
        data: Any = obj
        if adapter is not None:
            try:
                data = adapter.validate_python(obj)
            except PydanticValidationError as exc:
                from .frames import field_errors

                raise PayloadValidationError(
                    "invalid payload", errors=field_errors(exc.errors(include_url=False), 0)
                ) from None
        return InboundFrame(kind, correlation, data, shape)
