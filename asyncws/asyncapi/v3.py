"""The AsyncAPI 3.0.0 document of an `AppDescription`.

The document describes the wire protocol completely, so a client can be written (or
generated) from it alone:

* **Message payloads are whole frames.** A message's ``payload`` is the JSON object that goes
  on the wire: ``{"type": <const>, "id": ..., "data": {"$ref": ...}}`` for an operation,
  ``{"type": <event name>, "topic": ..., "data": ...}`` for an event. The application's
  models are ``components/schemas`` referenced from ``data``.
* **One channel for the websocket endpoint** (address: the endpoint path) carries every
  frame that is not a topic event: the operations' requests, ``subscribe`` /
  ``unsubscribe`` / ``publish``, and the server's ``reply`` / ``ack`` / ``error``. Its ws
  bindings describe the handshake (credentials in headers or the query) and its
  ``x-asyncws-close-codes`` the close codes.
* **One channel per topic** (address: the template, e.g. ``rooms/{room}``) with the events
  it carries; its events arrive on the endpoint connection after a ``subscribe``.
* **Operations** are the server's: ``receive`` for what a client sends (each operation, one
  ``subscribe<Topic>`` per topic, ``unsubscribe``, ``publish<Topic>`` where clients may
  publish), with a ``reply`` listing the answer frames; ``send`` for each topic's events.
  Keys are stable and dot-free (see `asyncws.asyncapi.keys.key`): the operation id in
  camelCase (``order.place`` -> ``orderPlace``; the frame ``type`` stays ``order.place``),
  the topic id (``roomsRoom``).

Output is deterministic: declaration order for channels and operations, sorted keys for
components, nothing that depends on hashing.

The parts live in modules of their own: `asyncws.asyncapi.keys` (keys and references),
`asyncws.asyncapi.bindings` (servers, security schemes, the handshake's bindings),
`asyncws.asyncapi.envelope` (asyncws's frames as schemas), `asyncws.asyncapi.channels` (the
endpoint and topic channels) and `asyncws.asyncapi.components` (payload schemas and
messages); this module builds the operations and puts the document together.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from .bindings import (
    has_relative_security_urls,
    http_base,
    operation_security,
    security_scheme,
    server_from_url,
)
from .channels import (
    ENDPOINT_CHANNEL,
    ENDPOINT_REF,
    endpoint_channel,
    subscription_regex,
    topic_channel,
    topic_example,
    topic_regex,
)
from .components import Components
from .envelope import (
    CORRELATION,
    POSITION_EXAMPLE,
    PRESENCE_MEMBER,
    ack_schema,
    const,
    error_example,
    error_schema,
    frame,
    id_prop,
    position_props,
    presence_example,
    presence_replies,
    since_prop,
    unsubscribe_schema,
)
from .examples import MISSING
from .keys import Keys, join, key, prune, ref, tags
from .model import AppDescription, OperationDescription, TopicDescription
from .schemas import name_document_schemas

__all__ = [
    "ASYNCAPI_VERSION",
    "ASYNCAPI_VERSIONS",
    "DEFAULT_SERVER_URL",
    "ENDPOINT_CHANNEL",
    "build",
    "has_relative_security_urls",
    "server_from_url",
    "subscription_regex",
    "topic_regex",
]

ASYNCAPI_VERSION = "3.0.0"
#: The AsyncAPI versions asyncws writes (3.0.0 by default: Modelina cannot read 3.1 yet).
ASYNCAPI_VERSIONS = ("3.0.0", "3.1.0")
DEFAULT_SERVER_URL = "ws://localhost:8000"


def _answers(*keys: str) -> dict[str, Any]:
    """The ``reply`` of an operation: these messages, on the endpoint channel."""
    return {
        "channel": {"$ref": ENDPOINT_REF},
        "messages": [ref("channels", ENDPOINT_CHANNEL, "messages", k) for k in keys],
    }


def _receive(messages: str, answers: Sequence[str], **fields: Any) -> dict[str, Any]:
    """A ``receive`` operation on the endpoint: a client sends ``messages``, the server
    answers with one of ``answers``."""
    return {
        "action": "receive",
        "channel": {"$ref": ENDPOINT_REF},
        **fields,
        "messages": [ref("channels", ENDPOINT_CHANNEL, "messages", messages)],
        "reply": _answers(*answers),
    }


class _Builder:
    def __init__(self, desc: AppDescription, server_url: str | None) -> None:
        self.desc = desc
        self._history = any(t.history_size is not None for t in desc.topics)
        self.server_url = server_url
        self.channel_keys = Keys("channel")
        self.operation_keys = Keys("operation")
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        base = http_base(server_url or DEFAULT_SERVER_URL)
        self.schemes = {s.key: security_scheme(s, base) for s in desc.security}
        self.parts = Components(desc)

    # -- the document ---------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        desc = self.desc
        self.channel_keys.add(ENDPOINT_CHANNEL, "the websocket endpoint")
        # answers first (operations refer to them), listed last in the endpoint channel
        for name in ("ack", "error", "unsubscribe"):
            self.parts.message_keys.add(name, "the protocol")
        topic_examples = {t.id: topic_example(t) for t in desc.topics}
        for op in desc.operations:
            self._operation(op)
        for topic in desc.topics:
            self._topic(topic, topic_examples[topic.id])
        self._protocol_messages(next(iter(topic_examples.values()), "example"))
        self._unsubscribe()
        self.channels = {
            ENDPOINT_CHANNEL: endpoint_channel(desc, self.parts.endpoint_messages),
            **self.channels,
        }
        document: dict[str, Any] = {
            "asyncapi": desc.asyncapi_version,
            "info": self._info(),
            "defaultContentType": "application/json",
            "servers": self._servers(),
            "channels": self.channels,
            "operations": self.operations,
            "components": prune(
                {
                    "schemas": self.parts.schemas,
                    "messages": dict(sorted(self.parts.messages.items())),
                    "securitySchemes": dict(sorted(self.schemes.items())),
                    "correlationIds": {
                        CORRELATION: {
                            "description": (
                                "The `id` a client put in a frame; the frame that answers it "
                                "(`ack`, `reply` or `error`) carries the same `id`."
                            ),
                            "location": "$message.payload#/id",
                        }
                    },
                }
            ),
        }
        name_document_schemas(document)
        return document

    def _info(self) -> dict[str, Any]:
        desc = self.desc
        info: dict[str, Any] = {"title": desc.title, "version": desc.version}
        if desc.description:
            info["description"] = desc.description
        if desc.contact:
            info["contact"] = dict(desc.contact)
        if desc.license:
            info["license"] = dict(desc.license)
        if desc.tags:
            info["tags"] = [dict(t) for t in desc.tags]
        return info

    def _servers(self) -> dict[str, Any]:
        refs = [ref("components", "securitySchemes", k) for k in self.desc.handshake_security]
        if self.desc.servers:
            servers = copy.deepcopy({k: dict(v) for k, v in self.desc.servers.items()})
            for server in servers.values():
                if refs and "security" not in server:
                    server["security"] = refs
            return servers
        server = server_from_url(self.server_url or DEFAULT_SERVER_URL)
        if refs:
            server["security"] = refs
        return {"default": server}

    def _protocol_messages(self, topic_example: str) -> None:
        parts = self.parts
        parts.message(
            "unsubscribe",
            "the protocol",
            unsubscribe_schema(self.desc.topic_max_length),
            title="unsubscribe",
            registered=True,
            summary="Stop receiving the events of a subscription.",
            example={"type": "unsubscribe", "id": 1, "topic": topic_example},
        )
        parts.message(
            "ack",
            "the protocol",
            ack_schema(self._history),
            title="ack",
            registered=True,
            summary="The frame with this `id` was handled and had nothing to return.",
            example={"type": "ack", "id": 1},
        )
        parts.message(
            "error",
            "the protocol",
            error_schema(),
            title="error",
            registered=True,
            summary="The frame with this `id` (or a frame without a usable one) failed.",
            description=(
                "An error never closes the connection by itself; `code` says what went wrong."
            ),
            example=error_example(),
        )

    def _secure(
        self, operation: dict[str, Any], keys: Sequence[str], scopes: Sequence[str]
    ) -> None:
        if scopes:
            keys = list(keys) or list(self.desc.handshake_security)
        security = operation_security(self.schemes, keys, scopes) if (scopes or keys) else []
        if security:
            operation["security"] = security
        if scopes:
            operation["x-asyncws-scopes"] = list(scopes)

    # -- operations -----------------------------------------------------------------------

    def _operation(self, op: OperationDescription) -> None:
        parts = self.parts
        owner = f"operation {op.type!r}"
        properties: dict[str, Any] = {"type": const(op.type), "id": id_prop()}
        example: Any = {"type": op.type, "id": 1}
        if op.payload is not None:
            properties["data"] = parts.next_schema()
            data_example = parts.example(properties["data"])
            example = MISSING if data_example is MISSING else {**example, "data": data_example}
        request_key = parts.message(
            key(op.type),
            owner,
            frame(properties, ["type", "data"] if op.payload is not None else ["type"]),
            title=op.type,
            summary=op.summary,
            example=example,
            deprecated=op.deprecated,
        )
        answer = self._reply(op, request_key, owner) if op.reply is not None else "ack"
        operation_key = self.operation_keys.add(key(op.id), owner)
        operation = prune(
            _receive(
                request_key,
                (answer, "error"),
                summary=op.summary,
                description=op.description,
                tags=tags(op.tags),
            )
        )
        self._secure(operation, op.security, op.scopes)
        if op.deprecated:
            operation["x-deprecated"] = True
        self.operations[operation_key] = operation

    def _reply(self, op: OperationDescription, request_key: str, owner: str) -> str:
        """The ``reply`` message of an operation that returns something."""
        schema = self.parts.next_schema()
        data_example = self.parts.example(schema)
        return self.parts.message(
            join(request_key, "reply"),
            f"the reply of {owner}",
            frame({"type": const("reply"), "id": id_prop(), "data": schema}, ["type", "data"]),
            title=f"{op.type} reply",
            summary=f"What `{op.type}` returns.",
            example=(
                MISSING
                if data_example is MISSING
                else {"type": "reply", "id": 1, "data": data_example}
            ),
        )

    def _topic(self, topic: TopicDescription, concrete: str) -> None:
        channel_key = self.channel_keys.add(key(topic.id), f"topic {topic.address!r}")
        owner = f"topic {topic.address!r}"
        topic_schema = {
            "type": "string",
            "pattern": topic_regex(topic),
            "description": f"The concrete topic, an address of `{topic.address}`.",
        }
        messages = self._events(topic, channel_key, concrete, topic_schema)
        self.channels[channel_key] = topic_channel(topic, messages)
        self.operations[self.operation_keys.add(channel_key, f"the events of {owner}")] = prune(
            {
                "action": "send",
                "channel": ref("channels", channel_key),
                "summary": topic.summary or f"Events of `{topic.address}`",
                "description": topic.description,
                "tags": tags(topic.tags),
                "messages": [ref("channels", channel_key, "messages", k) for k in messages],
            }
        )
        self._subscribe(topic, channel_key, concrete)
        if topic.presence:
            self._presence(topic, channel_key, concrete, topic_schema)
        if topic.client_publish:
            self._publish(topic, channel_key, concrete, topic_schema)

    def _events(
        self, topic: TopicDescription, channel_key: str, concrete: str, topic_schema: dict[str, Any]
    ) -> dict[str, Any]:
        """The messages of a topic channel (its events, and ``join``/``leave`` when it has
        presence events), by key."""
        parts = self.parts
        owner = f"topic {topic.address!r}"
        channel_messages: dict[str, Any] = {}
        for event in topic.events:
            data = parts.next_schema()
            data_example = parts.example(data)
            props = {"type": const(event.name), "topic": dict(topic_schema), "data": data}
            required = ["type", "topic", "data"]
            example: Any = (
                MISSING
                if data_example is MISSING
                else {"type": event.name, "topic": concrete, "data": data_example}
            )
            if topic.history_size is not None:  # positions (docs/delivery.md)
                props |= position_props()
                required += ["offset", "epoch"]
                if example is not MISSING:
                    example |= POSITION_EXAMPLE
            message = parts.message(
                join(channel_key, key(event.name)),
                f"event {event.name!r} of {owner}",
                frame(props, required),
                title=event.title or event.name,
                summary=event.summary,
                description=event.description,
                correlated=False,
                example=example,
                endpoint=False,
            )
            channel_messages[key(event.name)] = ref("components", "messages", message)
        if topic.presence_events:
            for kind in ("join", "leave"):
                message = parts.message(
                    join(channel_key, kind),
                    f"presence event {kind!r} of {owner}",
                    frame(
                        {
                            "type": const(kind),
                            "topic": dict(topic_schema),
                            "data": ref("components", "schemas", PRESENCE_MEMBER),
                        },
                        ["type", "topic", "data"],
                    ),
                    title=kind,
                    summary=(
                        "A member arrived (presence)." if kind == "join" else "A member left."
                    ),
                    correlated=False,
                    example={"type": kind, "topic": concrete, "data": {"member": "ann"}},
                    endpoint=False,
                )
                channel_messages[kind] = ref("components", "messages", message)
        return channel_messages

    def _subscribe(self, topic: TopicDescription, channel_key: str, concrete: str) -> None:
        owner = f"subscriptions to topic {topic.address!r}"
        history = topic.history_size is not None
        message = self.parts.message(
            join("subscribe", channel_key),
            owner,
            frame(
                {
                    "type": const("subscribe"),
                    "id": id_prop(),
                    "topic": {
                        "type": "string",
                        "pattern": subscription_regex(topic),
                        "maxLength": self.desc.topic_max_length,
                        "description": (
                            f"A concrete address of `{topic.address}`, or a pattern with `+` "
                            "in parameter levels (`#` last, where every remaining level is a "
                            "parameter)."
                        ),
                    },
                    **(since_prop() if history else {}),
                },
                ["type", "topic"],
            ),
            title=f"subscribe to {topic.address}",
            example={"type": "subscribe", "id": 1, "topic": concrete}
            | ({"since": dict(POSITION_EXAMPLE)} if history else {}),
        )
        text = (
            f"Subscribe to `{topic.address}`: its events then arrive on this connection. "
            "Answered with `ack` (when the frame has an `id`) or `error` (`invalid_topic`, "
            "`unknown_topic`, `forbidden`, `too_many_subscriptions`)."
        )
        if history:
            text += (
                " The topic keeps history: the `ack` of a concrete subscribe carries the "
                "current `position`; with `since` it also says `recovered` (true: the missed "
                "events follow, in order, then live ones; false: the position could not be "
                "honoured, refetch). `since` on a wildcard is refused (`bad_request`)."
            )
        if topic.authorized:
            text += " An authorization rule of the application decides who may subscribe."
        operation = _receive(
            message,
            ("ack", "error"),
            summary=f"Subscribe to `{topic.address}`",
            description=text,
        )
        self._secure(operation, (), topic.subscribe_scopes)
        operation["x-asyncws-topic"] = channel_key
        self.operations[self.operation_keys.add(message, owner)] = operation

    def _publish(
        self, topic: TopicDescription, channel_key: str, concrete: str, topic_schema: dict[str, Any]
    ) -> None:
        owner = f"client publishing to topic {topic.address!r}"
        data = self.parts.next_schema()
        data_example = self.parts.example(data)
        message = self.parts.message(
            join("publish", channel_key),
            owner,
            frame(
                {
                    "type": const("publish"),
                    "id": id_prop(),
                    "topic": dict(topic_schema),
                    "data": data,
                },
                ["type", "topic", "data"],
            ),
            title=f"publish to {topic.address}",
            example=(
                MISSING
                if data_example is MISSING
                else {"type": "publish", "id": 1, "topic": concrete, "data": data_example}
            ),
        )
        operation = _receive(
            message,
            ("ack", "error"),
            summary=f"Publish to `{topic.address}`",
            description=(
                "Publish a message of the topic; every subscriber receives it as an event. "
                "Answered with `ack` (when the frame has an `id`) or `error`."
            ),
        )
        self._secure(operation, (), topic.publish_scopes)
        operation["x-asyncws-topic"] = channel_key
        self.operations[self.operation_keys.add(message, owner)] = operation

    def _presence(
        self, topic: TopicDescription, channel_key: str, concrete: str, topic_schema: dict[str, Any]
    ) -> None:
        """The ``presence`` and ``presence_stats`` requests of a topic, and their replies."""
        owner = f"presence of topic {topic.address!r}"
        for kind, data in presence_replies().items():
            request = self.parts.message(
                join("presenceStats" if kind == "presence_stats" else "presence", channel_key),
                owner,
                frame(
                    {"type": const(kind), "id": id_prop(), "topic": dict(topic_schema)},
                    ["type", "topic"],
                ),
                title=f"{kind} of {topic.address}",
                example={"type": kind, "id": 1, "topic": concrete},
            )
            answer = self.parts.message(
                join(request, "reply"),
                f"the {kind} reply of {owner}",
                frame({"type": const("reply"), "id": id_prop(), "data": data}, ["type", "data"]),
                title=f"{kind} reply",
                example={"type": "reply", "id": 1, "data": presence_example(kind)},
            )
            what = "the members" if kind == "presence" else "the number of members"
            operation = _receive(
                request,
                (answer, "error"),
                summary=f"Presence of `{topic.address}`"
                + (" (count)" if kind == "presence_stats" else ""),
                description=(
                    f"Ask {what} of a concrete topic of `{topic.address}`, on every "
                    "instance. Who may subscribe to it may ask. Answered with `reply` or "
                    "`error` (`invalid_topic` for a pattern, `forbidden`, "
                    "`broker_unavailable` while the broker cannot be reached)."
                ),
            )
            self._secure(operation, (), topic.subscribe_scopes)
            operation["x-asyncws-topic"] = channel_key
            operation["x-asyncws-presence"] = kind
            self.operations[self.operation_keys.add(request, owner)] = operation

    def _unsubscribe(self) -> None:
        self.operations[self.operation_keys.add("unsubscribe", "the protocol")] = _receive(
            "unsubscribe",
            ("ack", "error"),
            summary="Unsubscribe",
            description=(
                "Stop receiving the events of a subscription (`topic` exactly as subscribed). "
                "Answered with `ack` (when the frame has an `id`, also when it was not "
                "subscribed) or `error` (`invalid_topic`)."
            ),
        )


def build(desc: AppDescription, *, server_url: str | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``desc`` as a JSON-compatible dict.

    ``server_url`` (``ws://host:port/prefix``) is the server to list when the app declares
    none (default ``ws://localhost:8000``). Raises `ValueError` for declarations a document
    cannot hold (two things with one key, a payload pydantic cannot describe).
    """
    return _Builder(desc, server_url).build()
