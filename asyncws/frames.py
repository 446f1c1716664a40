"""The declarative protocol's client frames, validated by pydantic in one pass.

Every frame an `AsyncWS` app accepts in asyncws's envelope (`asyncws.framing.AsyncWSFraming`)
is one model of a discriminated union (on ``type``): ``subscribe``, ``unsubscribe``,
``publish``, ``presence``, ``presence_stats`` and one envelope per operation whose ``data``
is the operation's payload model. `FrameValidator.validate` parses and validates a frame from
its JSON text at once (JSON is decoded once, in pydantic-core) and maps every failure to the
one protocol error that answers it (see `docs/protocol.md`): text that is not JSON is
``invalid_json``, an unknown tag is ``unknown_type``, an error under ``data`` is
``validation_error`` with field locations, anything else in the envelope is
``invalid_frame``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
)

from .codes import ErrorCode
from .exceptions import AsyncWSError, PayloadValidationError, ProtocolError, UnknownTypeError
from .protocol import frame_id

if TYPE_CHECKING:
    from .routing import Operation

__all__ = [
    "FrameValidator",
    "PresenceFrame",
    "PresenceStatsFrame",
    "PublishFrame",
    "SubscribeFrame",
    "UnsubscribeFrame",
    "field_errors",
    "safe_id",
]

FrameIdT = Union[  # noqa: UP007 - the same safe range as protocol.frame_id
    Annotated[StrictInt, Field(ge=-(2**53), le=2**53)],
    Annotated[str, StringConstraints(max_length=64)],
]


class _Base(BaseModel):
    """Envelope fields; anything else in a frame is ignored."""

    model_config = ConfigDict(extra="ignore")


class SubscribeFrame(_Base):
    type: Literal["subscribe"]
    id: FrameIdT | None = None
    topic: str
    #: The last position the client saw on a history topic (checked by asyncws.history).
    since: Any = None


class UnsubscribeFrame(_Base):
    type: Literal["unsubscribe"]
    id: FrameIdT | None = None
    topic: str


class PublishFrame(_Base):
    type: Literal["publish"]
    id: FrameIdT | None = None
    topic: str
    data: Any = None


class PresenceFrame(_Base):
    """``presence``: the members of a concrete topic (see `asyncws.presence`)."""

    type: Literal["presence"]
    id: FrameIdT | None = None
    topic: str


class PresenceStatsFrame(_Base):
    """``presence_stats``: the number of members of a concrete topic."""

    type: Literal["presence_stats"]
    id: FrameIdT | None = None
    topic: str


def safe_id(text: str | None) -> dict[str, Any] | None:
    """Best effort, for the error path (decoding again is fine there): the decoded frame
    when it is an object with a usable ``id`` (`asyncws.protocol.frame_id` reads it), else
    None. Text over 1 MiB is not decoded."""
    if not text or len(text) > 1 << 20:
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) and frame_id(obj) is not None else None


def field_errors(errors: Sequence[Any], skip: int) -> list[dict[str, Any]]:
    """pydantic's errors as an error frame's ``errors``: the first 50, each ``loc`` without
    its first ``skip`` parts (the envelope's), with ``msg`` and ``type``."""
    out = []
    for e in errors[:50]:
        loc = [p for p in e["loc"][skip:]]
        out.append({"loc": loc, "msg": e["msg"], "type": e["type"]})
    return out


class FrameValidator:
    """Validates client frames against the envelopes of an app's operations."""

    def __init__(self, operations: Iterable[Operation]) -> None:
        envelopes: list[Any] = [
            SubscribeFrame,
            UnsubscribeFrame,
            PublishFrame,
            PresenceFrame,
            PresenceStatsFrame,
        ]
        for i, op in enumerate(operations):
            data_field: Any = (op.payload, ...) if op.payload is not None else (Any, None)
            envelopes.append(
                create_model(
                    f"Frame_{i}",
                    __base__=_Base,
                    type=(Literal[op.type], ...),  # type: ignore[arg-type]
                    id=(FrameIdT | None, None),
                    data=data_field,
                )
            )
        union: Any = Annotated[Union[tuple(envelopes)], Field(discriminator="type")]  # noqa: UP007
        self._adapter: TypeAdapter[Any] = TypeAdapter(union)
        # pydantic-core's validator itself: TypeAdapter.validate_json only forwards to it
        self._validate_json = self._adapter.validator.validate_json

    def validate(self, text: str) -> Any:
        """The frame's envelope model; raises the `AsyncWSError` that answers a bad frame."""
        try:
            return self._validate_json(text)
        except ValidationError as exc:
            raise self.error(exc) from None

    def error(self, exc: ValidationError) -> AsyncWSError:
        """Map pydantic's errors on the envelope union to one protocol error."""
        errors = exc.errors(include_url=False)
        first = errors[0]
        kind = first["type"]
        loc = first["loc"]
        if kind == "json_invalid":
            return ProtocolError("the frame is not valid JSON", code=ErrorCode.INVALID_JSON)
        if kind == "union_tag_invalid":
            given = first["input"].get("type") if isinstance(first["input"], dict) else None
            if not isinstance(given, str) or not given:
                return ProtocolError("'type' must be a non-empty string")
            return UnknownTypeError(f"unknown message type {given[:40]!r}")
        if kind == "union_tag_not_found":
            return ProtocolError("'type' is missing")
        if len(loc) <= 1:  # the frame itself (or the envelope model) is not an object
            return ProtocolError("a frame must be a JSON object")
        field = loc[1]
        if field == "data":
            missing = kind == "missing" and len(loc) == 2
            return PayloadValidationError(
                "'data' is required" if missing else "invalid payload",
                errors=field_errors([e for e in errors if e["loc"][1:2] == ("data",)], 2),
            )
        if field == "id":
            return ProtocolError("'id' must be a string of at most 64 characters or an integer")
        if field == "topic":
            return ProtocolError("'topic' is required and must be a string")
        if field == "type":
            return ProtocolError("'type' must be a string")
        return ProtocolError("invalid frame")
