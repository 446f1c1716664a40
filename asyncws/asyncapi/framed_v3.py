"""The AsyncAPI 3.0 document of a code-first app in the document framing.

``AsyncWS(framing=DocumentFraming(discriminator="event", correlation="reqid"))`` puts each
payload on the wire as it is, so the document says exactly that (see `asyncws.framing`):

* one channel, ``endpoint``, at the app's path; every message is on it;
* each operation is a ``receive`` operation whose message payload is the operation's
  payload model, with the discriminator property as a ``const`` of the operation type
  (added with ``allOf`` when the model does not declare it), and whose reply lists the
  reply model (the item model of a ``list[...]`` reply: each item is one frame);
* each topic event is a message of a ``send`` operation on the endpoint (the server
  pushes it; the document framing has no subscribe frames);
* the correlation id, when the framing has one, is every request's and reply's
  ``correlationId`` (its location);
* ``error`` is the frame of every failure (``{"error": {code, message, errors}}``).

`asyncws.asyncapi.reader.read_api` reads the result back with the same frame rules the
endpoint uses, which the tests check.
"""

from __future__ import annotations

import typing
from typing import Any

from .model import AppDescription, PayloadSchema, TypeSchema
from .schemas import generate_schemas, name_document_schemas
from .v3 import DEFAULT_SERVER_URL, server_from_url

__all__ = ["build_framed"]

ENDPOINT = "endpoint"
CORRELATION = "correlation"


def _ref(*parts: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(parts)}


def _item(payload: PayloadSchema | None) -> PayloadSchema | None:
    """The item schema of a ``list[X]`` reply (each item is a frame of its own)."""
    if isinstance(payload, TypeSchema) and typing.get_origin(payload.annotation) is list:
        (item,) = typing.get_args(payload.annotation) or (Any,)
        return TypeSchema(item, payload.mode)
    return payload


def _with_discriminator(schema: dict[str, Any], prop: str, value: str, components: Any) -> Any:
    target = schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        target = components.get(ref.rsplit("/", 1)[-1], {})
    declared = (target.get("properties") or {}).get(prop)
    if isinstance(declared, dict) and declared.get("const") == value:
        return schema
    tag = {"type": "object", "properties": {prop: {"const": value}}, "required": [prop]}
    return {"allOf": [schema, tag]} if schema else tag


def _error_frame() -> dict[str, Any]:
    """``{"error": {code, message, errors}}``: the frame of every failure."""
    return {
        "type": "object",
        "title": "Error",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object"}},
                },
                "required": ["code", "message"],
            }
        },
        "required": ["error"],
    }


class _FramedBuilder:
    """One document: the payload schemas generated in one pass, then the messages (the
    error first, each operation's request and reply, each topic's events)."""

    def __init__(self, desc: AppDescription) -> None:
        self.desc = desc
        payloads: list[PayloadSchema] = []
        #: per operation: the index of its payload and of its reply's item in ``payloads``
        self.slots: list[tuple[int | None, int | None]] = []
        for op in desc.operations:
            p = r = None
            if op.payload is not None:
                payloads.append(op.payload)
                p = len(payloads) - 1
            reply = _item(op.reply)
            if reply is not None:
                payloads.append(reply)
                r = len(payloads) - 1
            self.slots.append((p, r))
        self.event_slots: list[int] = []
        for topic in desc.topics:
            for event in topic.events:
                payloads.append(event.payload)
                self.event_slots.append(len(payloads) - 1)
        self.schemas, self.components = generate_schemas(payloads) if payloads else ([], {})
        self.correlation = (
            _ref("components", "correlationIds", CORRELATION) if desc.correlation else None
        )
        self.messages: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}

    def message(self, key: str, payload: Any, correlated: bool, **text: Any) -> dict[str, str]:
        body: dict[str, Any] = {"name": key, "title": key}
        body.update({k: v for k, v in text.items() if v})
        body["payload"] = payload
        if correlated and self.correlation is not None:
            body["correlationId"] = self.correlation
        self.messages[key] = body
        return _ref("channels", ENDPOINT, "messages", key)

    def build(self, server_url: str | None) -> dict[str, Any]:
        desc = self.desc
        error_ref = self.message(
            "error", _error_frame(), True, summary="A frame failed: its `code` says why."
        )
        self._requests(error_ref)
        self._pushes()
        self.operations["errors"] = {
            "action": "send",
            "channel": _ref("channels", ENDPOINT),
            "summary": "Sent for a frame that failed.",
            "messages": [error_ref],
        }
        document: dict[str, Any] = {
            "asyncapi": desc.asyncapi_version,
            "x-asyncws-framing": "document",
            "info": {"title": desc.title, "version": desc.version}
            | ({"description": desc.description} if desc.description else {}),
            "defaultContentType": "application/json",
            "servers": dict(desc.servers)
            if desc.servers
            else {"default": server_from_url(server_url or DEFAULT_SERVER_URL)},
            "channels": {
                ENDPOINT: {
                    "address": desc.path,
                    "title": "The websocket endpoint",
                    "messages": self.messages,
                }
            },
            "operations": self.operations,
            "components": {"schemas": self.components},
        }
        if desc.correlation:
            document["components"]["correlationIds"] = {
                CORRELATION: {
                    "description": "Chosen by the client; the answer carries the same value.",
                    "location": desc.correlation,
                }
            }
        if not self.components:
            del document["components"]["schemas"]
        name_document_schemas(document)
        return document

    def _requests(self, error_ref: dict[str, str]) -> None:
        """A ``receive`` operation per operation: its request, and its reply when it has one."""
        discriminator = self.desc.discriminator or "type"
        for op, (p, r) in zip(self.desc.operations, self.slots, strict=True):
            schema = self.schemas[p] if p is not None else {}
            request = self.message(
                op.type,
                _with_discriminator(schema, discriminator, op.type, self.components),
                True,
                summary=op.summary,
            )
            body: dict[str, Any] = {
                "action": "receive",
                "channel": _ref("channels", ENDPOINT),
                "messages": [request],
            }
            if op.summary:
                body["summary"] = op.summary
            if op.description:
                body["description"] = op.description
            if r is not None:
                body["reply"] = {
                    "channel": _ref("channels", ENDPOINT),
                    "messages": [self.message(op.type + "Reply", self.schemas[r], True), error_ref],
                }
            self.operations[op.id] = body

    def _pushes(self) -> None:
        """A ``send`` operation per topic: its events, pushed by the server."""
        slots = iter(self.event_slots)
        for topic in self.desc.topics:
            refs = [
                self.message(event.name, self.schemas[next(slots)], False, summary=event.summary)
                for event in topic.events
            ]
            key = "".join(w[:1].upper() + w[1:] for w in topic.id.split(".")) or topic.id
            self.operations[key] = {
                "action": "send",
                "channel": _ref("channels", ENDPOINT),
                "summary": topic.summary or f"Pushed by the server ({topic.address}).",
                "messages": refs,
            }


def build_framed(desc: AppDescription, *, server_url: str | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``desc`` (an app in the document framing)."""
    return _FramedBuilder(desc).build(server_url)
