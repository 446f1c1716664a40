"""The neutral description of a document read in its own framing: `WireAPI`.

`asyncws.asyncapi.reader.read_api` makes it; spec-first apps (`asyncws.document_app`), the
framed client generators (`asyncws.codegen.framed`) and ``asyncws check`` read it. A
`WireAPI` is a list of `WireEndpoint`s (one per websocket address), each with the
operations the server receives and sends (`WireOperation`), their messages (`WireMessage`,
with the `MessageShape` both sides use to recognise a frame) and the address parameters
(`WireParam`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..framing import MessageShape
from .schemas import make_validator

__all__ = ["WireAPI", "WireEndpoint", "WireMessage", "WireOperation", "WireParam"]


@dataclass(frozen=True)
class WireMessage:
    """One message: its key, name, payload schema (references into the document kept) and
    the `MessageShape` both sides use to recognise its frames."""

    key: str
    name: str
    schema: Any
    shape: MessageShape
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    correlation: str | None = None  # the location, as written


@dataclass(frozen=True)
class WireParam:
    """A parameter of an endpoint address: from the URL path, checked against ``enum`` (or
    the ``x-asyncws-schema`` constraints)."""

    name: str
    description: str | None = None
    enum: tuple[str, ...] | None = None
    default: str | None = None
    examples: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None


@dataclass
class WireOperation:
    """An operation, from the server's side: ``receive`` (clients send ``messages``, the
    server may answer with one of ``replies``) or ``send`` (the server pushes them)."""

    id: str
    action: str
    channel: str
    messages: list[WireMessage]
    replies: list[WireMessage] = field(default_factory=list)
    summary: str | None = None
    description: str | None = None


@dataclass
class WireEndpoint:
    """A websocket address and everything that goes over its connections."""

    address: str  # the URL path template, e.g. "/v1/marketdata/{symbol}"
    channels: list[str]
    params: dict[str, WireParam]
    receive: list[WireOperation] = field(default_factory=list)
    send: list[WireOperation] = field(default_factory=list)

    def inbound(self) -> list[MessageShape]:
        """What clients send, each shape naming its operation."""
        return [m.shape for op in self.receive for m in op.messages]

    def outbound(self) -> list[WireMessage]:
        """What the server sends: replies first (in operation order), then pushes."""
        seen: dict[str, WireMessage] = {}
        for op in self.receive:
            for m in op.replies:
                seen.setdefault(m.key, m)
        for op in self.send:
            for m in op.messages:
                seen.setdefault(m.key, m)
        return list(seen.values())

    @property
    def name(self) -> str:
        return self.channels[0]


@dataclass
class WireAPI:
    """A document read in its own framing."""

    title: str
    version: str
    description: str | None
    document: dict[str, Any]
    endpoints: list[WireEndpoint]
    servers: dict[str, Any]
    skipped: list[str] = field(default_factory=list)

    def operation(self, op_id: str) -> tuple[WireEndpoint, WireOperation]:
        for endpoint in self.endpoints:
            for op in (*endpoint.receive, *endpoint.send):
                if op.id == op_id:
                    return endpoint, op
        raise KeyError(f"no operation {op_id!r} in the document")

    def validator(self, schema: Any) -> Callable[[Any], list[dict[str, Any]]]:
        """A function returning the validation errors of an instance of ``schema``."""
        checker = make_validator(schema, self.document)

        def errors(instance: Any) -> list[dict[str, Any]]:
            found = sorted(checker.iter_errors(instance), key=lambda e: list(e.absolute_path))
            return [
                {"loc": list(e.absolute_path), "msg": e.message, "type": str(e.validator)}
                for e in found[:50]
            ]

        return errors
