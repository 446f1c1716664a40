"""The ``components`` of a document: the payload schemas and the messages.

`Components` generates every payload schema of an `AppDescription` in one pass (pydantic
names shared models once, in ``components/schemas``), adds asyncws's own schemas (refusing
an app model that takes one of their names) and hands the schemas out in the order the
builder asks for them: each operation's payload then reply, each topic's events then its
publish payload. It also registers the messages (unique keys, an example only when it
validates against the payload).
"""

from __future__ import annotations

from typing import Any

from .envelope import CORRELATION, PRESENCE_MEMBER, member_schema, protocol_schemas
from .examples import MISSING, example_for
from .keys import Keys, ref
from .model import AppDescription, PayloadSchema
from .schemas import generate_schemas, make_validator

__all__ = ["Components"]


class Components:
    """The schemas and messages of one document being built."""

    def __init__(self, desc: AppDescription) -> None:
        payloads: list[PayloadSchema] = []
        for op in desc.operations:
            if op.payload is not None:
                payloads.append(op.payload)
            if op.reply is not None:
                payloads.append(op.reply)
        for topic in desc.topics:
            for event in topic.events:
                payloads.append(event.payload)
            if topic.client_publish:
                payloads.append(topic.publish_payload)
        self._schemas, components = generate_schemas(payloads)
        self._next = 0  # the next of `_schemas` to hand out (same order as `payloads`)
        extra = protocol_schemas()
        for name in extra:
            if name in components:
                raise ValueError(f"schema name {name!r} is reserved by asyncws")
        if any(t.presence for t in desc.topics):
            extra[PRESENCE_MEMBER] = member_schema()
        if PRESENCE_MEMBER in components:
            raise ValueError(f"schema name {PRESENCE_MEMBER!r} is reserved by asyncws")
        #: ``components/schemas``, sorted by name.
        self.schemas: dict[str, Any] = dict(sorted({**components, **extra}.items()))
        self.message_keys = Keys("message")
        #: ``components/messages``, by key.
        self.messages: dict[str, dict[str, Any]] = {}
        #: References to the messages on the endpoint channel.
        self.endpoint_messages: dict[str, Any] = {}

    def next_schema(self) -> dict[str, Any]:
        """The schema of the next payload (see the module docstring for the order)."""
        schema = self._schemas[self._next]
        self._next += 1
        return schema

    def example(self, schema: dict[str, Any]) -> Any:
        """An example of ``schema`` (or `MISSING`)."""
        return example_for(schema, self.schemas)

    def _valid(self, instance: Any, schema: dict[str, Any]) -> bool:
        document = {"components": {"schemas": self.schemas}}
        return bool(make_validator(schema, document).is_valid(instance))

    def message(
        self,
        key: str,
        owner: str,
        payload: dict[str, Any],
        *,
        title: str | None = None,
        summary: str | None = None,
        description: str | None = None,
        correlated: bool = True,
        example: Any = MISSING,
        deprecated: bool = False,
        endpoint: bool = True,
        registered: bool = False,
    ) -> str:
        """Add the message ``key`` (owned by ``owner``, for errors; ``registered``: the key
        was taken already) and return its key. ``correlated`` messages carry the frame id
        correlation; ``endpoint`` ones are listed on the endpoint channel."""
        if not registered:
            self.message_keys.add(key, owner)
        message: dict[str, Any] = {"name": key}
        if title:
            message["title"] = title
        if summary:
            message["summary"] = summary
        if description:
            message["description"] = description
        message["payload"] = payload
        if correlated:
            message["correlationId"] = ref("components", "correlationIds", CORRELATION)
        if example is not MISSING and self._valid(example, payload):
            message["examples"] = [{"payload": example}]
        if deprecated:
            message["deprecated"] = True
        self.messages[key] = message
        if endpoint:
            self.endpoint_messages[key] = ref("components", "messages", key)
        return key
