"""The wire protocol v1, as pure functions: frames in, envelopes out; envelopes in, text out.

Nothing here does I/O, so every rule can be tested without an event loop (see
`docs/protocol.md`).

Client -> server frames are JSON objects with a string ``type``, an optional ``id`` (a string
of at most 64 characters or an integer, echoed by whatever answers the frame), and, by type,
``topic`` and ``data``. Server -> client frames are built here once per message and the same
``str`` goes to every recipient.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic_core import to_json

from .codes import CloseCode, ErrorCode
from .exceptions import AsyncWSError, ProtocolError

__all__ = [
    "MAX_CLOSE_REASON",
    "MAX_ID_LENGTH",
    "CloseCode",
    "ErrorCode",
    "FrameId",
    "ack_frame",
    "close_reason",
    "decode_json",
    "dumps",
    "error_frame",
    "error_frame_for",
    "event_frame",
    "frame_id",
    "parse_frame",
    "reply_frame",
]

FrameId = int | str | None
MAX_ID_LENGTH: Final = 64
#: Bytes of a close frame's reason: 125 bytes of control-frame payload minus the 2-byte code
#: (RFC 6455 section 5.5).
MAX_CLOSE_REASON: Final = 123
_MAX_ID_INT: Final = 2**53  # JavaScript's safe integers: a browser must be able to echo it

_dumps_str = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# A lone surrogate ("\ud800" in JSON) decodes to a str that UTF-8 cannot encode: such a
# string must never be echoed or forwarded (sending it fails, and breaks the connection).
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_HINT = re.compile("\\\\u[dD][89a-fA-F]|[\ud800-\udfff]")  # an escape, or raw


def dumps(obj: Any) -> str:
    """Encode ``obj`` as compact JSON text (pydantic models, dataclasses and datetimes too)."""
    if isinstance(obj, str):
        return _dumps_str(obj)
    return to_json(obj).decode()


def frame_id(obj: Any) -> FrameId:
    """The frame's ``id`` when it is a usable one, else None (so errors can still be correlated)."""
    if not isinstance(obj, Mapping):
        return None
    value = obj.get("id")
    if isinstance(value, str) and len(value) <= MAX_ID_LENGTH and not _SURROGATE.search(value):
        return value
    if type(value) is int and -_MAX_ID_INT <= value <= _MAX_ID_INT:
        return value
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999999: valid JSON syntax, but it would be sent as Infinity
        raise ValueError("number out of range")
    return value


def _has_lone_surrogate(obj: Any) -> bool:
    stack = [obj]
    while stack:  # no recursion: json.loads already bounded the depth
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def decode_json(text: str) -> Any:
    """Decode a client's JSON text, strictly: what is decoded can always be encoded again as
    JSON and UTF-8 (to be echoed or forwarded to other clients).

    Raises `ProtocolError` (``invalid_json``) for invalid JSON, and also for ``NaN`` and
    ``Infinity`` (not JSON), numbers that overflow a double, lone surrogates (``"\\ud800"``)
    and nesting too deep for Python's parser.
    """
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except ValueError:  # JSONDecodeError, NaN/Infinity, out of range, too many int digits
        raise ProtocolError("the frame is not valid JSON", code=ErrorCode.INVALID_JSON) from None
    except RecursionError:
        raise ProtocolError("the frame nests too deeply", code=ErrorCode.INVALID_JSON) from None
    if _SURROGATE_HINT.search(text) is not None and _has_lone_surrogate(obj):
        raise ProtocolError(
            "the frame is not valid JSON (a lone surrogate)", code=ErrorCode.INVALID_JSON
        )
    return obj


def parse_frame(text: str | bytes | None) -> dict[str, Any]:
    """Decode one client frame into its JSON object, checking the envelope fields.

    Raises `ProtocolError` with the right code: ``unsupported_data`` (no text, e.g. a binary
    frame), ``invalid_json``, ``invalid_frame`` (not an object, ``type`` missing or not a
    string, a bad ``id`` or ``topic`` field type).
    """
    if not isinstance(text, str):
        raise ProtocolError(
            "binary frames are not supported; send JSON text", code=ErrorCode.UNSUPPORTED_DATA
        )
    obj = decode_json(text)
    if not isinstance(obj, dict):
        raise ProtocolError("a frame must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind:
        raise ProtocolError("'type' must be a non-empty string")
    if "id" in obj and obj["id"] is not None and frame_id(obj) is None:
        raise ProtocolError(
            f"'id' must be a string of at most {MAX_ID_LENGTH} characters or a safe integer"
        )
    topic = obj.get("topic")
    if topic is not None and not isinstance(topic, str):
        raise ProtocolError("'topic' must be a string")
    return obj


def _head(kind: str, id: FrameId) -> str:
    head = '{"type":' + _dumps_str(kind)
    if id is not None:
        head += ',"id":' + (_dumps_str(id) if isinstance(id, str) else str(id))
    return head


def ack_frame(id: FrameId) -> str:
    """``{"type":"ack","id":...}``: the frame was handled and had nothing to return."""
    return _head("ack", id) + "}"


def reply_frame(id: FrameId, data_json: str) -> str:
    """``{"type":"reply","id":...,"data":...}`` with ``data`` already encoded."""
    return _head("reply", id) + ',"data":' + data_json + "}"


def event_frame(kind: str, topic: str, data_json: str) -> str:
    """``{"type":kind,"topic":...,"data":...}``: a topic event, encoded once for all recipients."""
    return (
        '{"type":'
        + _dumps_str(kind)
        + ',"topic":'
        + _dumps_str(topic)
        + ',"data":'
        + data_json
        + "}"
    )


def error_frame(
    code: ErrorCode | str,
    message: str,
    id: FrameId = None,
    errors: list[dict[str, Any]] | None = None,
) -> str:
    """``{"type":"error","id":...,"code":...,"message":...,"errors":[...]}``."""
    out = _head("error", id) + ',"code":' + _dumps_str(str(code))
    out += ',"message":' + _dumps_str(message)
    if errors:
        out += ',"errors":' + dumps(errors)
    return out + "}"


def error_frame_for(exc: AsyncWSError, id: FrameId = None) -> str:
    """The error frame answering ``exc`` (its ``code``, client-safe ``message`` and ``errors``)."""
    return error_frame(exc.code, exc.message or str(exc.code), id, exc.errors)


def close_reason(reason: str) -> str:
    """``reason`` cut to the `MAX_CLOSE_REASON` bytes of UTF-8 a close frame can carry,
    never splitting a character (a lone surrogate, which UTF-8 cannot carry, becomes ``?``)."""
    if reason.isascii():
        return reason[:MAX_CLOSE_REASON]
    data = reason.encode("utf-8", "replace")
    return data[:MAX_CLOSE_REASON].decode("utf-8", "ignore")
