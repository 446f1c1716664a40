"""asyncws's envelope in JSON Schema: the parts of the frames every document shares.

The ``components/schemas`` asyncws adds (`protocol_schemas`: the frame id, the error code
enum, an error detail; `member_schema` for presence), the frame object of each message
(`frame`: ``{"type": <const>, ...}``), the position fields of history topics and the
payloads of the protocol's own messages (``ack``, ``error``, ``unsubscribe``) and of the
presence replies. Names are ``Asyncws*`` so they never collide with an app's models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..codes import ErrorCode
from ..protocol import MAX_ID_LENGTH
from .keys import ref
from .model import ERROR_CODES
from .schemas import REF_PREFIX

__all__ = [
    "CORRELATION",
    "ERROR_CODE",
    "ERROR_DETAIL",
    "FRAME_ID",
    "POSITION_EXAMPLE",
    "PRESENCE_MEMBER",
    "ack_history_props",
    "ack_schema",
    "const",
    "error_example",
    "error_schema",
    "frame",
    "id_prop",
    "member_schema",
    "position_props",
    "presence_example",
    "presence_replies",
    "protocol_schemas",
    "since_prop",
    "unsubscribe_schema",
]

FRAME_ID = "AsyncwsFrameId"
ERROR_CODE = "AsyncwsErrorCode"
ERROR_DETAIL = "AsyncwsErrorDetail"
PRESENCE_MEMBER = "AsyncwsPresenceMember"
#: The key of the correlation id of every request and answer (``$message.payload#/id``).
CORRELATION = "frameId"


def const(value: str) -> dict[str, Any]:
    return {"type": "string", "const": value}


POSITION_EXAMPLE = {"offset": 42, "epoch": "3f9c2a7d41b0"}


def position_props() -> dict[str, Any]:
    """The position fields of an event of a history topic (docs/delivery.md)."""
    return {
        "offset": {
            "type": "integer",
            "minimum": 1,
            "maximum": 2**53,
            "description": "Grows by one per event of this concrete topic.",
        },
        "epoch": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": "Changes when the topic's history was lost (offsets restart).",
        },
    }


def _position_schema(description: str) -> dict[str, Any]:
    props = position_props()
    props["offset"] = dict(props["offset"], minimum=0)
    return {
        "type": "object",
        "description": description,
        "properties": props,
        "required": ["offset", "epoch"],
    }


def since_prop() -> dict[str, Any]:
    return {
        "since": _position_schema(
            "The last position this client saw (an event's `offset` and `epoch`, or the "
            "`position` of an `ack`): the events after it are sent before live ones."
        )
    }


def ack_history_props() -> dict[str, Any]:
    return {
        "recovered": {
            "type": "boolean",
            "description": (
                "The answer to a subscribe with `since`: true, every missed event follows; "
                "false, the position could not be honoured (another epoch, trimmed, too far)."
            ),
        },
        "position": _position_schema(
            "A history topic's current position: the next event has `offset` + 1."
        ),
    }


def frame(properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


def protocol_schemas() -> dict[str, Any]:
    codes = "\n".join(f"- `{code.value}`: {ERROR_CODES[code]}" for code in ErrorCode)
    return {
        FRAME_ID: {
            "title": "FrameId",
            "description": (
                "Chosen by the client to match answers to requests: a string of at most "
                f"{MAX_ID_LENGTH} characters or an integer in JavaScript's safe range "
                "(|n| <= 2^53, so any client can echo it)."
            ),
            "oneOf": [
                {"type": "string", "maxLength": MAX_ID_LENGTH},
                {"type": "integer", "minimum": -(2**53), "maximum": 2**53},
            ],
        },
        ERROR_CODE: {
            "title": "ErrorCode",
            "description": "What went wrong:\n\n" + codes,
            "type": "string",
            "enum": [code.value for code in ErrorCode],
        },
        ERROR_DETAIL: {
            "title": "ErrorDetail",
            "description": (
                "One problem: for `validation_error`, `loc` is the path inside `data`, `msg` "
                "says what is wrong and `type` names the check that failed."
            ),
            "type": "object",
            "properties": {
                "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                "msg": {"type": "string"},
                "type": {"type": "string"},
            },
        },
    }


def member_schema() -> dict[str, Any]:
    """A presence member: its id (user or connection id) and the info kept for it."""
    return {
        "type": "object",
        "properties": {
            "member": {"type": "string", "description": "The user id (or connection id)."},
            "info": {"description": "What the application keeps for the member (or null)."},
        },
        "required": ["member"],
    }


def id_prop() -> dict[str, Any]:
    return {"$ref": REF_PREFIX + FRAME_ID}


def unsubscribe_schema(topic_max_length: int) -> dict[str, Any]:
    """The ``unsubscribe`` frame."""
    return frame(
        {
            "type": const("unsubscribe"),
            "id": id_prop(),
            "topic": {
                "type": "string",
                "minLength": 1,
                "maxLength": topic_max_length,
                "description": "Exactly as subscribed.",
            },
        },
        ["type", "topic"],
    )


def ack_schema(history: bool) -> dict[str, Any]:
    """The ``ack`` frame (with ``recovered`` and ``position`` when a topic keeps history)."""
    return frame(
        {"type": const("ack"), "id": id_prop()} | (ack_history_props() if history else {}),
        ["type", "id"],
    )


def error_schema() -> dict[str, Any]:
    """The ``error`` frame."""
    return frame(
        {
            "type": const("error"),
            "id": id_prop(),
            "code": {"$ref": REF_PREFIX + ERROR_CODE},
            "message": {"type": "string", "description": "Safe to show; for humans."},
            "errors": {"type": "array", "items": {"$ref": REF_PREFIX + ERROR_DETAIL}},
        },
        ["type", "code", "message"],
    )


def error_example() -> dict[str, Any]:
    return {
        "type": "error",
        "id": 1,
        "code": "validation_error",
        "message": "invalid payload",
        "errors": [{"loc": ["text"], "msg": "Field required", "type": "missing"}],
    }


def presence_replies() -> dict[str, dict[str, Any]]:
    """The ``data`` of the replies to ``presence`` and ``presence_stats``."""
    return {
        "presence": frame(
            {
                "members": {
                    "type": "array",
                    "items": ref("components", "schemas", PRESENCE_MEMBER),
                    "description": "At most the topic's `max_members` members.",
                },
                "count": {"type": "integer", "minimum": 0},
                "truncated": {
                    "type": "boolean",
                    "description": "Whether some members were left out (see `count`).",
                },
            },
            ["members", "count", "truncated"],
        ),
        "presence_stats": frame({"count": {"type": "integer", "minimum": 0}}, ["count"]),
    }


def presence_example(kind: str) -> dict[str, Any]:
    """The ``data`` of an example reply to ``presence`` or ``presence_stats``."""
    if kind == "presence_stats":
        return {"count": 1}
    return {"members": [{"member": "ann", "info": None}], "count": 1, "truncated": False}
