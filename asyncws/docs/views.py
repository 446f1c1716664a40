"""The views: what the page template receives, as plain dataclasses.

One per message, channel parameter, channel, operation, server and security scheme; the page
model (`asyncws.docs.page`) computes them once from the document, and their field names are
what ``templates/docs/*.j2`` read. Texts are raw document strings (the template escapes
them); examples and frames are already JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .schema import SchemaNode

__all__ = [
    "ChannelView",
    "HandshakeView",
    "MessageView",
    "OperationView",
    "ParamView",
    "SecurityView",
    "ServerView",
]


@dataclass
class MessageView:
    key: str
    anchor: str
    name: str
    title: str | None
    summary: str | None
    description: str | None
    content_type: str | None
    payload: SchemaNode | None
    headers: SchemaNode | None
    examples: list[tuple[str, str]]
    wire_type: str | None
    raw: dict[str, Any] = field(repr=False)
    body: SchemaNode | None = None  # what an operation card shows: the frame's data
    envelope: bool = False

    @property
    def generic(self) -> bool:
        """An ``ack`` or an ``error``: answers to any frame, shown briefly on cards."""
        return self.wire_type in ("ack", "error")


@dataclass
class ParamView:
    name: str
    description: str | None
    constraints: list[tuple[str, str]]
    enum: list[str]
    default: str | None
    examples: list[str]
    location: str | None


@dataclass
class ChannelView:
    key: str
    anchor: str
    address: str | None
    title: str | None
    summary: str | None
    description: str | None
    params: list[ParamView]
    messages: list[MessageView]
    is_topic: bool


@dataclass
class OperationView:
    key: str
    anchor: str
    action: str
    badge: str
    title: str | None
    summary: str | None
    description: str | None
    channel: ChannelView | None
    messages: list[MessageView]
    reply_messages: list[MessageView]
    reply_address: str | None
    reply_channel: ChannelView | None
    tags: list[str]
    security: list[str]
    wire_type: str | None
    frame: str | None
    frame_shape: str | None
    event_frames: list[tuple[str, str]]


@dataclass
class ServerView:
    key: str
    url: str
    protocol: str
    description: str | None
    security: list[str]


@dataclass
class SecurityView:
    key: str
    anchor: str
    type: str
    description: str | None
    details: list[tuple[str, str]]
    flows: list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]]


@dataclass
class HandshakeView:
    """A query parameter or header the websocket handshake takes (the endpoint's ws bindings)."""

    kind: str  # "query" or "header"
    name: str
    required: bool
    description: str | None
    example: str | None
    constraints: list[tuple[str, str]]

    @property
    def summary(self) -> str | None:
        """The first paragraph of the description (what the console shows)."""
        if not self.description:
            return None
        return self.description.strip().split("\n\n")[0].replace("\n", " ")
