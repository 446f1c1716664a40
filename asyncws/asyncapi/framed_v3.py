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


def build_framed(desc: AppDescription, *, server_url: str | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``desc`` (an app in the document framing)."""
    discriminator = desc.discriminator or "type"
    payloads: list[PayloadSchema] = []
    slots: list[tuple[str, int | None, int | None]] = []
    for op in desc.operations:
        p = r = None
        if op.payload is not None:
            payloads.append(op.payload)
            p = len(payloads) - 1
        reply = _item(op.reply)
        if reply is not None:
            payloads.append(reply)
            r = len(payloads) - 1
        slots.append((op.type, p, r))
    event_slots: list[int] = []
    for topic in desc.topics:
        for event in topic.events:
            payloads.append(event.payload)
            event_slots.append(len(payloads) - 1)
    schemas, components = generate_schemas(payloads) if payloads else ([], {})
    correlation = _ref("components", "correlationIds", CORRELATION) if desc.correlation else None
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    def message(key: str, payload: Any, correlated: bool, **text: Any) -> dict[str, str]:
        body: dict[str, Any] = {"name": key, "title": key}
        body.update({k: v for k, v in text.items() if v})
        body["payload"] = payload
        if correlated and correlation is not None:
            body["correlationId"] = correlation
        messages[key] = body
        return _ref("channels", ENDPOINT, "messages", key)

    error_ref = message(
        "error",
        {
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
        },
        True,
        summary="A frame failed: its `code` says why.",
    )
    for op, (kind, p, r) in zip(desc.operations, slots, strict=True):
        schema = schemas[p] if p is not None else {}
        request = message(
            kind,
            _with_discriminator(schema, discriminator, kind, components),
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
            reply_key = kind + "Reply"
            body["reply"] = {
                "channel": _ref("channels", ENDPOINT),
                "messages": [message(reply_key, schemas[r], True), error_ref],
            }
        operations[op.id] = body
    i = 0
    for topic in desc.topics:
        refs = []
        for event in topic.events:
            refs.append(message(event.name, schemas[event_slots[i]], False, summary=event.summary))
            i += 1
        operations["".join(w[:1].upper() + w[1:] for w in topic.id.split(".")) or topic.id] = {
            "action": "send",
            "channel": _ref("channels", ENDPOINT),
            "summary": topic.summary or f"Pushed by the server ({topic.address}).",
            "messages": refs,
        }
    operations["errors"] = {
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
                "messages": messages,
            }
        },
        "operations": operations,
        "components": {"schemas": components},
    }
    if desc.correlation:
        document["components"]["correlationIds"] = {
            CORRELATION: {
                "description": "Chosen by the client; the answer carries the same value.",
                "location": desc.correlation,
            }
        }
    if not components:
        del document["components"]["schemas"]
    name_document_schemas(document)
    return document
