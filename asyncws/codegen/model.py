"""The neutral client description: what a generated client of asyncws's envelope is made of.

`asyncws.codegen.reader.describe` reads it from an AsyncAPI 3 document (see that module for
how); the renderers (`asyncws.codegen.python`, `asyncws.codegen.typescript`) turn it into
code. A `ClientDescription` has:

* the **endpoint**: the websocket path (with path parameters, if any) and the servers;
* **operations**: the requests a client sends, with the type of their ``data`` and of their
  reply's ``data`` (None when the answer is ``ack``);
* **topics**: address templates, parameters and events, and whether clients may publish;
* **schemas**: the named types those payloads use, as a small type tree
  (`asyncws.codegen.typetree`) that each language renders its own way;
* **error codes** and the **authentication** schemes, for the error classes and the docs;
* **warnings**: what the document uses that the client cannot support.

What makes a client impossible raises `CodegenError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import UsageError
from .names import combine, pascal, sentence, snake, words
from .typetree import (
    AnyNode,
    DictNode,
    FieldDescription,
    ListNode,
    LiteralNode,
    NamedSchema,
    PrimitiveNode,
    RefNode,
    TupleNode,
    TypeNode,
    UnionNode,
)

__all__ = [
    "AnyNode",
    "AuthDescription",
    "ClientDescription",
    "CodegenError",
    "DictNode",
    "ErrorCodeDescription",
    "EventDescription",
    "FieldDescription",
    "ListNode",
    "LiteralNode",
    "NamedSchema",
    "OperationDescription",
    "ParamDescription",
    "PrimitiveNode",
    "RefNode",
    "ServerDescription",
    "TopicDescription",
    "TupleNode",
    "TypeNode",
    "UnionNode",
    "combine",
    "pascal",
    "sentence",
    "snake",
    "template_parts",
    "words",
]


class CodegenError(UsageError, ValueError):
    """The document cannot give a client (lists every blocking problem, one per line)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "\n".join(["cannot generate a client from this document:", *self.problems])
        )


# -- the client -------------------------------------------------------------------------------


@dataclass
class OperationDescription:
    """A client -> server request: ``{"type": frame_type, "id": ..., "data": payload}``."""

    id: str
    frame_type: str
    summary: str | None
    description: str | None
    payload: TypeNode | None  # None: the frame has no data
    payload_required: bool
    reply: TypeNode | None  # None: answered with ack
    reply_description: str | None = None
    scopes: tuple[str, ...] = ()
    deprecated: bool = False


@dataclass
class ParamDescription:
    """A ``{name}`` of a topic or endpoint address."""

    name: str
    description: str | None = None
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    integer: bool = False
    examples: tuple[Any, ...] = ()


@dataclass
class EventDescription:
    """A message of a topic: ``{"type": frame_type, "topic": ..., "data": data}``;
    ``name`` is the envelope's class name (``PostedEvent``)."""

    key: str
    frame_type: str
    name: str
    data: TypeNode | None
    description: str | None = None


@dataclass
class TopicDescription:
    """A topic channel: its address template, parameters and events; ``name`` is the part
    of method names (``rooms`` for ``subscribe_rooms``), ``event_type`` the name of the
    union of its events (or of the only event's envelope)."""

    id: str
    address: str
    name: str
    params: list[ParamDescription]
    events: list[EventDescription]
    event_type: str
    union_name: str | None
    description: str | None = None
    summary: str | None = None
    publish: TypeNode | None = None  # clients may publish this
    publish_operation: str | None = None
    subscribe_scopes: tuple[str, ...] = ()
    publish_scopes: tuple[str, ...] = ()
    presence: bool = False  # `presence` / `presence_stats` requests (x-asyncws-presence)

    @property
    def segments(self) -> list[tuple[str, bool]]:
        """The address as ``(text, is_parameter)`` parts."""
        return template_parts(self.address)


@dataclass
class ErrorCodeDescription:
    code: str
    class_name: str
    description: str | None


@dataclass
class ServerDescription:
    name: str
    url: str
    description: str | None = None


@dataclass
class AuthDescription:
    """How the handshake is authenticated, for documentation: ``token`` (bearer-like
    schemes), ``query``/``header`` (API keys, with their name) or ``other``."""

    key: str
    kind: str
    name: str | None = None
    description: str | None = None


@dataclass
class ClientDescription:
    """Everything a generated client is made of; see the module docstring."""

    name: str  # PascalCase base: ChatClient, ChatError
    title: str
    version: str
    description: str | None
    endpoint: str | None  # the websocket path; None when it has parameters
    endpoint_address: str
    endpoint_params: list[ParamDescription]
    servers: list[ServerDescription]
    operations: list[OperationDescription]
    topics: list[TopicDescription]
    schemas: dict[str, NamedSchema]
    error_codes: list[ErrorCodeDescription]
    auth: list[AuthDescription]
    warnings: list[str] = field(default_factory=list)

    @property
    def client_class(self) -> str:
        return self.name + "Client"

    @property
    def error_class(self) -> str:
        return self.name + "Error"

    @property
    def base_error_class(self) -> str:
        return self.name + "ClientError"

    def ordered_schemas(self) -> list[NamedSchema]:
        """Aliases without references to classes first (in dependency order), then objects
        by name, then the other aliases in dependency order: what Python needs, since an
        alias is evaluated where it is defined."""
        aliases = {n: s for n, s in self.schemas.items() if not s.is_object}
        objects = sorted((s for s in self.schemas.values() if s.is_object), key=lambda s: s.name)

        def uses_object(name: str, seen: frozenset[str] = frozenset()) -> bool:
            schema = self.schemas[name]
            if schema.is_object:
                return True
            return any(
                uses_object(r, seen | {name}) for r in schema.refs() if r not in seen | {name}
            )

        ordered: list[str] = []

        def visit(name: str, stack: tuple[str, ...] = ()) -> None:
            if name in ordered or name in stack or name not in aliases:
                return
            for ref in sorted(aliases[name].refs()):
                visit(ref, (*stack, name))
            ordered.append(name)

        for name in sorted(aliases):
            visit(name)
        first = [aliases[n] for n in ordered if not uses_object(n)]
        last = [aliases[n] for n in ordered if uses_object(n)]
        return [*first, *objects, *last]


# -- addresses -------------------------------------------------------------------------------

_PARAM_RE = re.compile(r"\{([^{}]+)\}")


def template_parts(address: str) -> list[tuple[str, bool]]:
    """An address template as ``(text, is_parameter)`` parts: ``rooms/{room}`` ->
    ``[("rooms/", False), ("room", True)]``."""
    parts: list[tuple[str, bool]] = []
    pos = 0
    for match in _PARAM_RE.finditer(address):
        if match.start() > pos:
            parts.append((address[pos : match.start()], False))
        parts.append((match.group(1), True))
        pos = match.end()
    if pos < len(address):
        parts.append((address[pos:], False))
    return parts
