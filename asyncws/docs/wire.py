"""What the asyncws wire protocol (``docs/protocol.md``) makes of a document.

The ``type`` of the frames carrying a message (`_wire_type`) and of the frame invoking an
operation (`_op_wire_type`); whether a payload schema describes the whole frame (an envelope:
``type`` plus ``data`` / ``id`` / ``topic``) or only its ``data`` (`_is_envelope`), and the
part of an envelope worth showing on a card (`_frame_body`); whether a reply carries data
beyond an ``ack`` or an ``error`` (`_answers_with_data`); and the pieces of the example frames
(`_first_example`, `_param_value`, `_frame_shape`). Every function reads the document
through a `_Resolver` and tolerates anything.

Package-internal: ``__all__`` names what the other modules of `asyncws.docs` use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .schema import SchemaNode, _as_dict, _list, _Resolver
from .text import _json_text
from .views import MessageView, ParamView

__all__ = [
    "_answers_with_data",
    "_first_example",
    "_frame_body",
    "_frame_shape",
    "_is_envelope",
    "_is_null_schema",
    "_op_wire_type",
    "_param_value",
    "_wire_type",
]


def _frame_body(envelope: SchemaNode | None) -> SchemaNode | None:
    """The part of an envelope's tree worth showing on an operation card: its ``data``, else
    the envelope without ``type`` and ``id`` (e.g. a subscription's ``topic``), else None."""
    if envelope is None:
        return None
    data = next((c for c in envelope.children if c.name == "data"), None)
    if data is not None:
        return data
    rest = [c for c in envelope.children if c.name not in ("type", "id")]
    if not rest:
        return None
    return SchemaNode(label="object", children=rest)


def _answers_with_data(replies: list[MessageView]) -> bool:
    """Whether a reply carries data: some reply message is more than an ``ack`` or an
    ``error`` (which answer every frame with an ``id``). No listed message: say yes."""
    return not replies or any(m.wire_type not in ("ack", "error") for m in replies)


def _first_example(message: Mapping[str, Any]) -> Any:
    for example in _list(message.get("examples")):
        if isinstance(example, Mapping) and "payload" in example:
            return example["payload"]
    return None


def _frame_shape(frame: Mapping[str, Any]) -> str:
    """``{"type": "post", "id": …, "data": …}``: the envelope of a frame, values elided."""
    parts = [
        f"{json.dumps(k)}: " + (_json_text(v) if k == "type" else "…") for k, v in frame.items()
    ]
    return "{" + ", ".join(parts) + "}"


def _param_value(param: ParamView) -> str | None:
    if param.default is not None:
        return param.default
    if param.examples:
        return param.examples[0]
    if param.enum:
        return param.enum[0]
    return None


def _is_envelope(schema: Any, resolver: _Resolver) -> bool:
    """Whether a payload schema describes the whole frame (``type`` + ``data``), not ``data``."""
    target, _ = resolver.deref(schema)
    properties = _as_dict(target.get("properties"))
    if "type" not in properties or _const_of(properties["type"], resolver) is None:
        return False
    return any(key in properties for key in ("data", "id", "topic"))


def _is_null_schema(schema: Any, resolver: _Resolver) -> bool:
    target, _ = resolver.deref(schema)
    return target.get("type") == "null" or schema is None


def _const_of(schema: Any, resolver: _Resolver) -> str | None:
    target, _ = resolver.deref(schema)
    if isinstance(target.get("const"), str):
        return str(target["const"])
    enum = target.get("enum")
    if isinstance(enum, list) and len(enum) == 1 and isinstance(enum[0], str):
        return enum[0]
    return None


def _wire_type(message: Mapping[str, Any], resolver: _Resolver) -> str | None:
    """The ``type`` of the frames carrying this message, when the document says so."""
    if isinstance(message.get("x-asyncws-type"), str):
        return str(message["x-asyncws-type"])
    payload, _ = resolver.deref(message.get("payload"))
    type_schema = _as_dict(payload.get("properties")).get("type")
    if type_schema is not None:
        return _const_of(type_schema, resolver)
    return None


def _op_wire_type(
    key: str, op: Mapping[str, Any], messages: list[MessageView], resolver: _Resolver
) -> str:
    """The ``type`` a client puts in the frame invoking an operation: an ``x-asyncws-type``,
    else the ``type`` constant of an envelope payload, else the operation's id."""
    if isinstance(op.get("x-asyncws-type"), str):
        return str(op["x-asyncws-type"])
    for message in messages:
        if isinstance(message.raw.get("x-asyncws-type"), str):
            return str(message.raw["x-asyncws-type"])
        payload = message.raw.get("payload")
        if message.wire_type is not None and _is_envelope(payload, resolver):
            return message.wire_type
    return key
