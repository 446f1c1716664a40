"""An AsyncAPI 3 document as the client reader sees it: channels, operations, messages.

`Document` wraps the document for one reading: it resolves references (a broken one is a
problem, not an exception), collects the warnings and the blocking problems, and reads the
messages of operations in both shapes spec-first apps read: a *frame* (an object schema
whose ``type`` property is a ``const``: the ``data`` property is the payload) or the simple
shape (the payload is the ``data``, the message's ``name`` the frame type).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

from ..asyncapi.schemas import deref, pointer_parts
from .model import ParamDescription

__all__ = ["Document", "Frame", "is_json_content_type", "text_of"]

#: A message read as a frame: ``(key, frame type, data schema, data required, message)``.
Frame = tuple[str, str, Any, bool, Mapping[str, Any]]


def text_of(value: Any) -> str | None:
    """A non-blank string, stripped; else None."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def is_json_content_type(content_type: str) -> bool:
    """Whether messages of ``content_type`` are JSON text (``application/json``, ``*+json``)."""
    main = content_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or main.endswith("+json") or main == "text/json"


_JSON_SCHEMA_FORMATS = re.compile(
    r"^application/(vnd\.aai\.asyncapi(\+json|\+yaml)?|schema\+json|schema\+yaml)(;.*)?$"
)


class Document:
    """One reading of a document: its ``warnings`` (what a client will not support) and
    ``problems`` (what makes a client impossible)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.doc = document
        self.warnings: list[str] = []
        self.problems: list[str] = []

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def deref(self, obj: Any, where: str) -> Any:
        try:
            return deref(self.doc, obj)
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return None

    def channel_key(self, ref: Any, where: str) -> str | None:
        if not isinstance(ref, Mapping) or not isinstance(ref.get("$ref"), str):
            self.problems.append(f"{where}: the channel must be a reference to #/channels/<id>")
            return None
        try:
            parts = pointer_parts(ref["$ref"])
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return None
        if len(parts) != 2 or parts[0] != "channels":
            self.problems.append(f"{where}: channel {ref['$ref']!r} is not #/channels/<id>")
            return None
        channels = self.doc.get("channels")
        if not isinstance(channels, Mapping) or not isinstance(channels.get(parts[1]), Mapping):
            self.problems.append(f"{where}: channel {parts[1]!r} is not defined")
            return None
        return parts[1]

    def operations(self) -> list[tuple[str, Mapping[str, Any]]]:
        ops = self.doc.get("operations")
        if not isinstance(ops, Mapping):
            return []
        return [(str(k), v) for k, v in ops.items() if isinstance(v, Mapping)]

    def channel(self, key: str) -> Mapping[str, Any]:
        channel = self.doc["channels"][key]
        assert isinstance(channel, Mapping)
        return channel

    def message_refs(self, op: Mapping[str, Any], channel: Mapping[str, Any]) -> list[Any]:
        refs = op.get("messages")
        if isinstance(refs, list) and refs:
            return refs
        messages = channel.get("messages")
        return list(messages.values()) if isinstance(messages, Mapping) else []

    def message(self, ref: Any, where: str) -> tuple[str, Mapping[str, Any]] | None:
        """The key (the last part of the reference) and the message object, if usable."""
        key = where
        if isinstance(ref, Mapping) and isinstance(ref.get("$ref"), str):
            with contextlib.suppress(ValueError):
                key = pointer_parts(ref["$ref"])[-1]
        message = self.deref(ref, where)
        if not isinstance(message, Mapping):
            if message is not None:
                self.problems.append(f"{where}: a message must be an object")
            return None
        content_type = message.get("contentType") or self.doc.get("defaultContentType")
        if isinstance(content_type, str) and not is_json_content_type(content_type):
            self.warn(
                f"message {key!r} has content type {content_type!r}: only JSON text frames "
                "are supported, so what uses it is left out"
            )
            return None
        if message.get("headers") is not None:
            self.warn(
                f"message {key!r} declares headers: websocket frames have none, they are ignored"
            )
        return key, message

    def payload(self, message: Mapping[str, Any], key: str) -> tuple[bool, Any]:
        """``(ok, schema)`` of a message payload (``schema`` None when it has none)."""
        payload = message.get("payload")
        if isinstance(payload, Mapping) and "schemaFormat" in payload:
            fmt = str(payload.get("schemaFormat"))
            if not _JSON_SCHEMA_FORMATS.match(fmt):
                self.warn(
                    f"message {key!r}: payload schema format {fmt!r} is not supported (only "
                    "AsyncAPI and JSON Schema): what uses it is left out"
                )
                return False, None
            payload = payload.get("schema")
        return True, payload

    def frame(self, ref: Any, where: str) -> Frame | None:
        """``(key, frame type, data schema, data required, message)`` of a message."""
        found = self.message(ref, where)
        if found is None:
            return None
        key, message = found
        ok, payload = self.payload(message, key)
        if not ok:
            return None
        schema = self.deref(payload, f"message {key!r}") if payload is not None else None
        if isinstance(schema, Mapping):
            props = schema.get("properties")
            kind = props.get("type") if isinstance(props, Mapping) else None
            kind = self.deref(kind, f"message {key!r}") if kind is not None else None
            if isinstance(kind, Mapping):
                const = kind.get("const")
                enum = kind.get("enum")
                if const is None and isinstance(enum, list) and len(enum) == 1:
                    const = enum[0]
                if isinstance(const, str):
                    assert isinstance(props, Mapping)
                    required = schema.get("required")
                    data_required = isinstance(required, list) and "data" in required
                    return key, const, props.get("data"), data_required, message
        name = message.get("name")
        return key, name if isinstance(name, str) else key, payload, True, message

    def answers(self, op: Mapping[str, Any], op_id: str) -> list[tuple[str, str, Any, bool]]:
        """The answer frames of an operation's reply: ``(key, frame type, data, required)``."""
        reply = op.get("reply")
        if reply is None:
            return []
        reply = self.deref(reply, f"operation {op_id!r}")
        if not isinstance(reply, Mapping):
            return []
        if reply.get("address") is not None:
            self.warn(
                f"operation {op_id!r}: a reply address is not supported: answers come on "
                "the same connection"
            )
        answers = []
        for i, ref in enumerate(reply.get("messages") or []):
            frame = self.frame(ref, f"operation {op_id!r} reply {i}")
            if frame is not None:
                answers.append(frame[:4])
        return answers

    def message_description(self, key: str) -> str | None:
        components = self.doc.get("components")
        messages = components.get("messages") if isinstance(components, Mapping) else None
        message = messages.get(key) if isinstance(messages, Mapping) else None
        if isinstance(message, Mapping):
            return text_of(message.get("summary")) or text_of(message.get("description"))
        return None

    def param(self, name: str, channel: Mapping[str, Any], where: str) -> ParamDescription:
        params = channel.get("parameters")
        spec = params.get(name) if isinstance(params, Mapping) else None
        spec = self.deref(spec, where) if spec is not None else None
        if not isinstance(spec, Mapping):
            return ParamDescription(name)
        enum = spec.get("enum")
        schema = spec.get("x-asyncws-schema")
        schema = schema if isinstance(schema, Mapping) else {}
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error:
                pattern = None
        examples = spec.get("examples")
        return ParamDescription(
            name=name,
            description=text_of(spec.get("description")),
            enum=tuple(str(v) for v in enum) if isinstance(enum, list) and enum else None,
            pattern=pattern if isinstance(pattern, str) else None,
            integer=schema.get("type") == "integer",
            examples=tuple(examples) if isinstance(examples, list) else (),
        )
