"""A neutral client description read from an AsyncAPI 3.0 document.

`describe` reads what a client of the asyncws wire protocol needs from a document (see
docs/asyncapi.md and docs/protocol.md), whether asyncws wrote it or a person did:

* the **endpoint**: the channel of the ``receive`` operations; its address is the websocket
  path (with path parameters, if any);
* **operations**: each ``receive`` operation that is not a protocol control frame
  (``subscribe``, ``unsubscribe``; ``publish`` becomes a publishing method of its topic),
  with the type of its ``data`` and of its reply's ``data`` (None when the answer is ``ack``);
* **topics**: the channels of the ``send`` operations, with their address template,
  parameters and events;
* **schemas**: the named types those payloads use, as a small type tree (`TypeNode`s) that
  each language renders its own way;
* **error codes**: the ``code`` enum of the document's ``error`` frame (or the protocol's
  codes when the document describes no error frame).

Messages are read in both shapes the loader of spec-first apps reads: a *frame* (an object
schema whose ``type`` property is a ``const``: the ``data`` property is the payload) or the
simple shape (the payload is the ``data``, the message's ``name`` the frame type).

What the document uses that a generated client cannot support is reported: ``warnings``
for what is skipped or not enforced, `CodegenError` for what makes a client impossible
(no websocket server, non-JSON content, several endpoints).
"""

from __future__ import annotations

import contextlib
import keyword
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..asyncapi.model import ERROR_CODES
from ..asyncapi.schemas import deref, pointer_parts
from ..exceptions import UsageError

__all__ = [
    "AnyNode",
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
    "describe",
    "pascal",
    "sentence",
    "snake",
    "words",
]

SCHEMA_PREFIX = "#/components/schemas/"
CONTROL_TYPES = frozenset({"subscribe", "unsubscribe", "publish"})
ANSWER_TYPES = frozenset({"ack", "error"})
WS_PROTOCOLS = frozenset({"ws", "wss"})
# What a hand-written schema may use that the generated types neither express nor check.
_UNSUPPORTED_KEYWORDS = (
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "dependencies",
    "dependentSchemas",
    "dependentRequired",
    "contains",
    "propertyNames",
    "minProperties",
    "maxProperties",
)
# Readable exception names for the protocol's error codes; other codes get PascalCase.
ERROR_CLASS_NAMES = {
    "invalid_json": "InvalidJson",
    "invalid_frame": "InvalidFrame",
    "unsupported_data": "UnsupportedData",
    "unknown_type": "UnknownType",
    "validation_error": "ValidationFailed",
    "invalid_topic": "InvalidTopic",
    "unknown_topic": "UnknownTopic",
    "forbidden": "Forbidden",
    "too_many_subscriptions": "TooManySubscriptions",
    "rate_limited": "RateLimited",
    "broker_unavailable": "BrokerUnavailable",
    "internal_error": "InternalServerError",
}
# Names the generated code defines or imports itself (both languages): a schema, an event
# or an error class never takes one of them.
RESERVED_NAMES = frozenset(
    {
        # Python: builtins and what the generated modules import
        "Any",
        "Annotated",
        "BaseModel",
        "ClassVar",
        "ConfigDict",
        "Field",
        "Literal",
        "TypeAdapter",
        "TypeAlias",
        "UUID",
        "Subscription",
        "ClientOptions",
        "ErrorDetail",
        "ErrorCode",
        "ConnectionLost",
        "ConnectionFailed",
        "RequestTimeout",
        "UnexpectedFrame",
        "BaseClient",
        "ERRORS",
        "SERVERS",
        "Exception",
        "BaseException",
        "None",
        "True",
        "False",
        # TypeScript: globals the module uses or that would confuse readers
        "Array",
        "Boolean",
        "Date",
        "Error",
        "JSON",
        "Map",
        "Math",
        "Number",
        "Object",
        "Promise",
        "Record",
        "Set",
        "String",
        "Symbol",
        "WebSocket",
        "MessageEvent",
        "CloseEvent",
        "RequestOptions",
        "SubscribeOptions",
        "EventHandler",
        "URL",
        "Frame",
        "Pending",
        "Connection",
        "TypeError",
        "ReadonlySet",
        "AsyncIterable",
        "AsyncIterator",
        "Iterator",
        "IteratorResult",
        "ReturnType",
        "Partial",
        "Readonly",
        "Function",
        "Event",
        "EventTarget",
        # Python: what the client modules import besides the models
        "Callable",
        "Generator",
        "Generic",
        "Mapping",
        "Self",
        "Sequence",
        "TracebackType",
        "TypedDict",
        "TypeVar",
        "Unpack",
        "ValidationError",
        "M",
        "T",
    }
)


class CodegenError(UsageError, ValueError):
    """The document cannot give a client (lists every blocking problem, one per line)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "\n".join(["cannot generate a client from this document:", *self.problems])
        )


# -- names ------------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """The words of an identifier-ish text: ``"rooms.room"``, ``"getUser"``, ``"HTTP-code"``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def pascal(text: str) -> str:
    """``"rooms.room"`` -> ``"RoomsRoom"``; never empty, never starts with a digit."""
    name = "".join(w[:1].upper() + w[1:] for w in words(text))
    if not name:
        return "Schema"
    return name if not name[0].isdigit() else "T" + name


def snake(text: str) -> str:
    """``"getUser"`` -> ``"get_user"``; a valid Python identifier, never a keyword."""
    name = "_".join(w.lower() for w in words(text)) or "value"
    if name[0].isdigit():
        name = "n_" + name
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        name += "_"
    return name


def _component_name(key: str) -> str:
    """A class name for a ``components/schemas`` key: ``Post`` stays ``Post``, dotted and
    dashed keys are joined (``Model-Input`` -> ``ModelInput``)."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", key) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Schema"
    return name if not name[0].isdigit() else "T" + name


class _Names:
    """Allocates unique type names: the first free of the candidates, else numbered."""

    def __init__(self) -> None:
        self.taken: set[str] = set(RESERVED_NAMES)

    def take(self, *candidates: str) -> str:
        for candidate in candidates:
            if candidate and candidate not in self.taken:
                self.taken.add(candidate)
                return candidate
        base = candidates[0] if candidates else "Schema"
        n = 2
        while f"{base}{n}" in self.taken:
            n += 1
        self.taken.add(f"{base}{n}")
        return f"{base}{n}"


# -- the type tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeNode:
    """A type, independent of the target language. ``kind`` tells templates what it is."""

    kind: ClassVar[str] = "any"


@dataclass(frozen=True)
class AnyNode(TypeNode):
    """Anything JSON (an empty schema, or what cannot be expressed)."""

    kind: ClassVar[str] = "any"


@dataclass(frozen=True)
class PrimitiveNode(TypeNode):
    """``string``, ``integer``, ``number``, ``boolean`` or ``null``, with a ``format`` and
    the JSON Schema constraints that apply (``minLength``, ``pattern``, ``minimum``, ...)."""

    kind: ClassVar[str] = "primitive"
    name: str
    format: str | None = None
    constraints: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class LiteralNode(TypeNode):
    """``const`` or ``enum``: one of these JSON values."""

    kind: ClassVar[str] = "literal"
    values: tuple[Any, ...]


@dataclass(frozen=True)
class ListNode(TypeNode):
    kind: ClassVar[str] = "list"
    item: TypeNode
    constraints: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class TupleNode(TypeNode):
    kind: ClassVar[str] = "tuple"
    items: tuple[TypeNode, ...]


@dataclass(frozen=True)
class DictNode(TypeNode):
    """An object with arbitrary keys (``additionalProperties``)."""

    kind: ClassVar[str] = "dict"
    value: TypeNode


@dataclass(frozen=True)
class UnionNode(TypeNode):
    """``oneOf``/``anyOf``/a list of types; ``discriminator`` names the property whose
    ``const`` tells the members apart (only when every member is a named object with it)."""

    kind: ClassVar[str] = "union"
    members: tuple[TypeNode, ...]
    discriminator: str | None = None


@dataclass(frozen=True)
class RefNode(TypeNode):
    """A named schema (`NamedSchema`): a class or a type alias."""

    kind: ClassVar[str] = "ref"
    name: str


def is_nullable(node: TypeNode) -> bool:
    if isinstance(node, PrimitiveNode):
        return node.name == "null"
    if isinstance(node, LiteralNode):
        return None in node.values
    if isinstance(node, UnionNode):
        return any(is_nullable(m) for m in node.members)
    return isinstance(node, AnyNode)


def iter_refs(node: TypeNode) -> Iterator[str]:
    """The names of the named schemas a type uses directly."""
    if isinstance(node, RefNode):
        yield node.name
    elif isinstance(node, ListNode):
        yield from iter_refs(node.item)
    elif isinstance(node, DictNode):
        yield from iter_refs(node.value)
    elif isinstance(node, TupleNode | UnionNode):
        for item in node.items if isinstance(node, TupleNode) else node.members:
            yield from iter_refs(item)


@dataclass
class FieldDescription:
    """A property of an object schema."""

    name: str  # on the wire
    type: TypeNode
    required: bool
    description: str | None = None
    has_default: bool = False
    default: Any = None
    deprecated: bool = False

    @property
    def nullable(self) -> bool:
        return is_nullable(self.type)


@dataclass
class NamedSchema:
    """A named type: an object (``fields``) or an alias of ``type``."""

    name: str
    description: str | None = None
    fields: list[FieldDescription] | None = None  # None: an alias
    type: TypeNode | None = None  # aliases
    extra: TypeNode | None = None  # objects: the type of additionalProperties, if any
    source: str = ""  # where it comes from, for messages

    @property
    def is_object(self) -> bool:
        return self.fields is not None

    def refs(self) -> Iterator[str]:
        if self.fields is not None:
            for f in self.fields:
                yield from iter_refs(f.type)
            if self.extra is not None:
                yield from iter_refs(self.extra)
        elif self.type is not None:
            yield from iter_refs(self.type)


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
        return _template_parts(self.address)


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


# -- reading ----------------------------------------------------------------------------------

_PARAM_RE = re.compile(r"\{([^{}]+)\}")


def _template_parts(address: str) -> list[tuple[str, bool]]:
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


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def sentence(text: str) -> str:
    """``text`` ending with a full stop (unless it ends with punctuation already)."""
    text = text.rstrip()
    return text if not text or text[-1] in ".!?:)`" else text + "."


def combine(summary: str | None, description: str | None) -> str | None:
    """A summary and a description as one text (without saying the summary twice)."""
    if summary and description:
        if description.startswith(summary.rstrip(".")):
            return description
        return sentence(summary) + "\n\n" + description
    return summary or description


_BOILERPLATE = re.compile(
    r"^(Events of this topic arrive on the `[^`]+` connection after a `subscribe`"
    r"|Clients may publish to it \(operation )"
)


def _topic_text(text: str | None) -> str | None:
    """A topic's description without the sentences asyncws adds for the protocol."""
    if text is None:
        return None
    kept = [p for p in text.split("\n\n") if not _BOILERPLATE.match(p.strip())]
    return "\n\n".join(kept).strip() or None


def _is_json_content_type(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or main.endswith("+json") or main == "text/json"


_JSON_SCHEMA_FORMATS = re.compile(
    r"^application/(vnd\.aai\.asyncapi(\+json|\+yaml)?|schema\+json|schema\+yaml)(;.*)?$"
)


class _Reader:
    """One pass over a document; see `describe`."""

    def __init__(self, document: Mapping[str, Any], name: str | None) -> None:
        self.doc = document
        self.warnings: list[str] = []
        self.problems: list[str] = []
        self.names = _Names()
        self.schemas: dict[str, NamedSchema] = {}
        self.components: Mapping[str, Any] = self._components()
        # every component gets its name first, so inline objects never steal one
        self.component_names: dict[str, str] = {
            key: self.names.take(_component_name(key)) for key in sorted(self.components)
        }
        self._reading: set[str] = set()
        self.presence_topics: set[str] = set()  # topics with x-asyncws-presence operations
        self.client_name = pascal(name) if name else self._default_name()
        self.names.taken |= {
            self.client_name + "Client",
            self.client_name + "Error",
            self.client_name + "ClientError",
            self.client_name + "Options",
        }

    # -- helpers --------------------------------------------------------------------------

    def _components(self) -> Mapping[str, Any]:
        components = self.doc.get("components")
        schemas = components.get("schemas") if isinstance(components, Mapping) else None
        return schemas if isinstance(schemas, Mapping) else {}

    def _default_name(self) -> str:
        info = self.doc.get("info")
        title = info.get("title") if isinstance(info, Mapping) else None
        return pascal(title) if isinstance(title, str) and words(title) else "Api"

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def deref(self, obj: Any, where: str) -> Any:
        try:
            return deref(self.doc, obj)
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return None

    def _channel_key(self, ref: Any, where: str) -> str | None:
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

    def _operations(self) -> list[tuple[str, Mapping[str, Any]]]:
        ops = self.doc.get("operations")
        if not isinstance(ops, Mapping):
            return []
        return [(str(k), v) for k, v in ops.items() if isinstance(v, Mapping)]

    def _channel(self, key: str) -> Mapping[str, Any]:
        channel = self.doc["channels"][key]
        assert isinstance(channel, Mapping)
        return channel

    def _message_refs(self, op: Mapping[str, Any], channel: Mapping[str, Any]) -> list[Any]:
        refs = op.get("messages")
        if isinstance(refs, list) and refs:
            return refs
        messages = channel.get("messages")
        return list(messages.values()) if isinstance(messages, Mapping) else []

    # -- messages -------------------------------------------------------------------------

    def _message(self, ref: Any, where: str) -> tuple[str, Mapping[str, Any]] | None:
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
        if isinstance(content_type, str) and not _is_json_content_type(content_type):
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

    def _payload(self, message: Mapping[str, Any], key: str) -> tuple[bool, Any]:
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

    def _frame(self, ref: Any, where: str) -> tuple[str, str, Any, bool, Mapping[str, Any]] | None:
        """``(key, frame type, data schema, data required, message)`` of a message."""
        found = self._message(ref, where)
        if found is None:
            return None
        key, message = found
        ok, payload = self._payload(message, key)
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

    # -- schemas --------------------------------------------------------------------------

    def named(self, key: str) -> RefNode:
        """The named schema of a component (read once)."""
        name = self.component_names[key]
        if name not in self.schemas and name not in self._reading:
            self._reading.add(name)
            schema = self.components[key]
            self.schemas[name] = self._named_schema(name, schema, f"components/schemas/{key}")
            self._reading.discard(name)
        return RefNode(name)

    def _check_keywords(self, schema: Mapping[str, Any], where: str) -> None:
        for keyword_ in _UNSUPPORTED_KEYWORDS:
            if keyword_ in schema:
                self.warn(f"{where}: {keyword_!r} is not checked by the generated client")

    def _named_schema(self, name: str, schema: Any, where: str) -> NamedSchema:
        if isinstance(schema, Mapping):
            self._check_keywords(schema, where)
            schema = self._merge_all_of(schema, where)
        description = _text(schema.get("description")) if isinstance(schema, Mapping) else None
        if isinstance(schema, Mapping) and self._is_object(schema):
            fields, extra = self._object(name, schema, where)
            return NamedSchema(name, description, fields=fields, extra=extra, source=where)
        node = self.read(schema, name, where)
        return NamedSchema(name, description, type=node, source=where)

    @staticmethod
    def _is_object(schema: Mapping[str, Any]) -> bool:
        kind = schema.get("type")
        has_props = isinstance(schema.get("properties"), Mapping) and bool(schema["properties"])
        if kind == "object" or (kind is None and has_props):
            if any(k in schema for k in ("oneOf", "anyOf")):
                return False
            return has_props
        return False

    def _merge_all_of(self, schema: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        parts = schema.get("allOf")
        if not isinstance(parts, list) or not parts:
            return schema
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        if len(parts) == 1 and not any(
            k in rest for k in ("properties", "type", "oneOf", "anyOf", "items")
        ):
            only = parts[0]
            if isinstance(only, Mapping) and "$ref" in only:
                return {**rest, "$ref": only["$ref"]} if rest else only
            target = self.deref(only, where)
            return {**target, **rest} if isinstance(target, Mapping) else schema
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in [*parts, rest]:
            target = self.deref(part, where)
            if isinstance(target, Mapping):
                target = self._merge_all_of(target, where)
            if not isinstance(target, Mapping) or not (
                self._is_object(target) or target.get("type") == "object" or not target
            ):
                if isinstance(target, Mapping) and set(target) <= {"description", "title"}:
                    continue
                self.warn(f"{where}: allOf of non-object schemas is not supported: any value")
                return {}
            merged["properties"].update(target.get("properties", {}) or {})
            merged["required"] += [
                r for r in target.get("required", []) or [] if r not in merged["required"]
            ]
            for k in ("description", "title", "additionalProperties"):
                if k in target:
                    merged[k] = target[k]
        return merged

    def read(self, schema: Any, hint: str, where: str) -> TypeNode:
        """The type of a schema; inline objects become named schemas called after ``hint``."""
        if schema is True or schema is None or (isinstance(schema, Mapping) and not schema):
            return AnyNode()
        if schema is False or not isinstance(schema, Mapping):
            self.warn(f"{where}: schema {schema!r} is not supported: any value")
            return AnyNode()
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref.startswith(SCHEMA_PREFIX) and ref[len(SCHEMA_PREFIX) :] in self.components:
                node: TypeNode = self.named(ref[len(SCHEMA_PREFIX) :])
            elif not ref.startswith("#/"):
                self.warn(f"{where}: external reference {ref!r} is not supported: any value")
                return AnyNode()
            else:
                target = self.deref({"$ref": ref}, where)
                if target is None:
                    return AnyNode()
                if ref in self._reading:
                    self.warn(f"{where}: recursive reference {ref!r} outside components")
                    return AnyNode()
                self._reading.add(ref)
                node = self.read(target, hint, where)
                self._reading.discard(ref)
            if schema.get("nullable") is True:
                node = _union([node, PrimitiveNode("null")])
            return node
        self._check_keywords(schema, where)
        schema = self._merge_all_of(schema, where)
        if not schema:
            return AnyNode()
        node = self._read_plain(schema, hint, where)
        if schema.get("nullable") is True:
            node = _union([node, PrimitiveNode("null")])
        return node

    def _read_plain(self, schema: Mapping[str, Any], hint: str, where: str) -> TypeNode:
        if "const" in schema:
            return LiteralNode((schema["const"],))
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            values = tuple(dict.fromkeys(v for v in enum if _is_scalar(v)))
            if len(values) != len(enum):
                self.warn(f"{where}: enum values that are arrays/objects are not supported")
            return LiteralNode(values) if values else AnyNode()
        for union_key in ("oneOf", "anyOf"):
            members = schema.get(union_key)
            if isinstance(members, list) and members:
                nodes = [
                    self.read(
                        m,
                        hint if len(members) == 1 else f"{hint}{i + 1}",
                        f"{where}/{union_key}/{i}",
                    )
                    for i, m in enumerate(members)
                ]
                return _union(nodes, self._discriminator(schema, nodes, where))
        kind = schema.get("type")
        if isinstance(kind, list):
            rest = {k: v for k, v in schema.items() if k != "type"}
            return _union([self._read_plain({**rest, "type": k}, hint, where) for k in kind if k])
        if kind == "object" or (kind is None and "properties" in schema):
            if self._is_object(schema):
                title = schema.get("title")
                name = self.names.take(
                    *([pascal(title)] if isinstance(title, str) and words(title) else []),
                    pascal(hint),
                )
                self.schemas[name] = NamedSchema(
                    name, _text(schema.get("description")), source=where
                )
                fields, extra = self._object(name, schema, where)
                self.schemas[name].fields = fields
                self.schemas[name].extra = extra
                return RefNode(name)
            extra_schema = schema.get("additionalProperties", True)
            return DictNode(
                AnyNode()
                if extra_schema in (True, None) or extra_schema == {}
                else self.read(extra_schema, f"{hint}Value", f"{where}/additionalProperties")
            )
        if kind == "array" or (kind is None and "items" in schema):
            items = schema.get("items")
            constraints = _constraints(schema, ("minItems", "maxItems", "uniqueItems"))
            if isinstance(items, list):
                return TupleNode(
                    tuple(
                        self.read(item, f"{hint}Item{i + 1}", f"{where}/items/{i}")
                        for i, item in enumerate(items)
                    )
                )
            return ListNode(self.read(items, f"{hint}Item", f"{where}/items"), constraints)
        if kind in ("string", "integer", "number", "boolean", "null"):
            return self._primitive(kind, schema, where)
        if kind is not None:
            self.warn(f"{where}: type {kind!r} is not supported: any value")
        return AnyNode()

    def _primitive(self, kind: str, schema: Mapping[str, Any], where: str) -> PrimitiveNode:
        keys: tuple[str, ...] = ()
        if kind == "string":
            keys = ("minLength", "maxLength", "pattern")
        elif kind in ("integer", "number"):
            keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
        constraints = list(_constraints(schema, keys))
        # draft-04 boolean exclusiveMinimum/Maximum
        for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if schema.get(flag) is True and bound in schema:
                constraints = [(k, v) for k, v in constraints if k not in (flag, bound)]
                constraints.append((flag, schema[bound]))
            elif isinstance(schema.get(flag), bool):
                constraints = [(k, v) for k, v in constraints if k != flag]
        pattern = dict(constraints).get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, TypeError):
                self.warn(f"{where}: pattern {pattern!r} is not checked by the client")
                constraints = [(k, v) for k, v in constraints if k != "pattern"]
        fmt = schema.get("format") if kind == "string" else None
        return PrimitiveNode(kind, fmt if isinstance(fmt, str) else None, tuple(constraints))

    def _discriminator(
        self, schema: Mapping[str, Any], nodes: list[TypeNode], where: str
    ) -> str | None:
        disc = schema.get("discriminator")
        if isinstance(disc, Mapping):
            disc = disc.get("propertyName")
        if not isinstance(disc, str):
            return None
        for node in nodes:
            target = self.schemas.get(node.name) if isinstance(node, RefNode) else None
            fields = {f.name: f for f in target.fields or []} if target is not None else {}
            prop = fields.get(disc)
            if (
                prop is None
                or not isinstance(prop.type, LiteralNode)
                or not all(isinstance(v, str) for v in prop.type.values)
            ):
                self.warn(
                    f"{where}: discriminator {disc!r} is not a const of every member: a plain "
                    "union (members are tried in turn)"
                )
                return None
        return disc

    def _object(
        self, name: str, schema: Mapping[str, Any], where: str
    ) -> tuple[list[FieldDescription], TypeNode | None]:
        required = schema.get("required")
        required_set = set(required) if isinstance(required, list) else set()
        fields: list[FieldDescription] = []
        for prop_name, prop in (schema.get("properties") or {}).items():
            prop_where = f"{where}/properties/{prop_name}"
            node = self.read(prop, f"{name}{pascal(str(prop_name))}", prop_where)
            resolved = self.deref(prop, prop_where) if isinstance(prop, Mapping) else None
            description = None
            default_present = False
            default: Any = None
            deprecated = False
            if isinstance(prop, Mapping):
                description = _text(prop.get("description"))
                default_present = "default" in prop
                default = prop.get("default")
                deprecated = prop.get("deprecated") is True
            if description is None and isinstance(resolved, Mapping) and "$ref" not in prop:
                description = _text(resolved.get("description"))
            fields.append(
                FieldDescription(
                    name=str(prop_name),
                    type=node,
                    required=prop_name in required_set,
                    description=description,
                    has_default=default_present,
                    default=default,
                    deprecated=deprecated,
                )
            )
        extra = schema.get("additionalProperties")
        extra_node: TypeNode | None = None
        if isinstance(extra, Mapping) and extra:
            extra_node = self.read(extra, f"{name}Value", f"{where}/additionalProperties")
        elif extra is True:
            extra_node = AnyNode()
        return fields, extra_node

    def payload(self, schema: Any, hint: str, where: str) -> TypeNode:
        """The type of a payload; an inline object becomes a named schema (``hint``)."""
        resolved = schema
        if isinstance(schema, Mapping) and "$ref" not in schema:
            self._check_keywords(schema, where)
            resolved = self._merge_all_of(schema, where)
            if self._is_object(resolved):
                title = resolved.get("title")
                name = self.names.take(
                    *([pascal(title)] if isinstance(title, str) and words(title) else []),
                    pascal(hint),
                    pascal(hint) + "Data",
                )
                self.schemas[name] = NamedSchema(
                    name, _text(resolved.get("description")), source=where
                )
                fields, extra = self._object(name, resolved, where)
                self.schemas[name].fields = fields
                self.schemas[name].extra = extra
                return RefNode(name)
        return self.read(schema, pascal(hint), where)

    # -- the document ---------------------------------------------------------------------

    def describe(self) -> ClientDescription:
        doc = self.doc
        version = str(doc.get("asyncapi", ""))
        if not version.startswith("3."):
            raise CodegenError(
                [f"AsyncAPI version {version or '(missing)'}: only 3.x is supported"]
            )
        default_type = doc.get("defaultContentType")
        if isinstance(default_type, str) and not _is_json_content_type(default_type):
            self.problems.append(
                f"defaultContentType {default_type!r}: asyncws clients speak JSON text frames"
            )
        servers = self._servers()
        endpoint = self._endpoint()
        if self.problems:
            raise CodegenError(self.problems)
        assert endpoint is not None
        channel = self._channel(endpoint)
        address = channel.get("address")
        address = address if isinstance(address, str) else "/"
        endpoint_params = [
            self._param(name, channel, f"channel {endpoint!r}")
            for name, is_param in _template_parts(address)
            if is_param
        ]
        if endpoint_params:
            self.warn(
                f"the endpoint address {address!r} has parameters: the client's constructor "
                "takes them as arguments"
            )
        operations, publish, subscribe_scopes = self._read_operations(endpoint)
        topics = self._read_topics(endpoint, publish, subscribe_scopes)
        error_codes = self._error_codes(endpoint)
        auth = self._auth()
        if self.problems:
            raise CodegenError(self.problems)
        if not operations and not topics:
            raise CodegenError(["the document has no operation a client can use"])
        info = doc.get("info") if isinstance(doc.get("info"), Mapping) else {}
        assert isinstance(info, Mapping)
        return ClientDescription(
            name=self.client_name,
            title=str(info.get("title") or "AsyncAPI"),
            version=str(info.get("version") or ""),
            description=_text(info.get("description")),
            endpoint=None if endpoint_params else "/" + address.lstrip("/"),
            endpoint_address="/" + address.lstrip("/"),
            endpoint_params=endpoint_params,
            servers=servers,
            operations=operations,
            topics=topics,
            schemas=self.schemas,
            error_codes=error_codes,
            auth=auth,
            warnings=self.warnings,
        )

    def _servers(self) -> list[ServerDescription]:
        servers = self.doc.get("servers")
        if not isinstance(servers, Mapping) or not servers:
            return []
        found: list[ServerDescription] = []
        skipped: list[str] = []
        for key, server in servers.items():
            server = self.deref(server, f"server {key!r}")
            if not isinstance(server, Mapping):
                continue
            protocol = str(server.get("protocol", "")).lower()
            if protocol not in WS_PROTOCOLS:
                skipped.append(f"{key} ({protocol or 'no protocol'})")
                continue
            host = str(server.get("host", "")).rstrip("/")
            pathname = str(server.get("pathname", "") or "").rstrip("/")
            if pathname and not pathname.startswith("/"):
                pathname = "/" + pathname
            found.append(
                ServerDescription(
                    str(key), f"{protocol}://{host}{pathname}", _text(server.get("description"))
                )
            )
        if skipped and not found:
            self.problems.append(
                "no server speaks ws or wss (" + ", ".join(skipped) + "): asyncws clients "
                "speak the websocket protocol only"
            )
        elif skipped:
            self.warn("servers that do not speak ws/wss are left out: " + ", ".join(skipped))
        return found

    def _endpoint(self) -> str | None:
        keys: list[str] = []
        for op_id, op in self._operations():
            if op.get("action") != "receive":
                continue
            key = self._channel_key(op.get("channel"), f"operation {op_id!r}")
            if key is not None and key not in keys:
                keys.append(key)
        if len(keys) > 1:
            self.problems.append(
                f"receive operations use several channels ({', '.join(keys)}): a client talks "
                "to one websocket endpoint (the channel of the receive operations)"
            )
            return None
        if keys:
            return keys[0]
        # no requests: the endpoint is the one channel that is not a topic
        topics = set()
        for op_id, op in self._operations():
            if op.get("action") == "send":
                key = self._channel_key(op.get("channel"), f"operation {op_id!r}")
                topics.add(key)
        channels = self.doc.get("channels")
        rest = [k for k in (channels or {}) if k not in topics]
        if len(rest) == 1:
            return str(rest[0])
        self.problems.append(
            "cannot tell which channel is the websocket endpoint: no receive operation, and "
            f"{len(rest)} channels are not topics"
        )
        return None

    def _param(self, name: str, channel: Mapping[str, Any], where: str) -> ParamDescription:
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
            description=_text(spec.get("description")),
            enum=tuple(str(v) for v in enum) if isinstance(enum, list) and enum else None,
            pattern=pattern if isinstance(pattern, str) else None,
            integer=schema.get("type") == "integer",
            examples=tuple(examples) if isinstance(examples, list) else (),
        )

    def _answers(self, op: Mapping[str, Any], op_id: str) -> list[tuple[str, str, Any, bool]]:
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
            frame = self._frame(ref, f"operation {op_id!r} reply {i}")
            if frame is not None:
                answers.append(frame[:4])
        return answers

    def _read_operations(
        self, endpoint: str
    ) -> tuple[
        list[OperationDescription],
        dict[str, tuple[str, TypeNode | None, Any]],
        dict[str, tuple[str, ...]],
    ]:
        operations: list[OperationDescription] = []
        publish: dict[str, tuple[str, TypeNode | None, Any]] = {}
        subscribe_scopes: dict[str, tuple[str, ...]] = {}
        for op_id, op in self._operations():
            if op.get("action") != "receive":
                continue
            channel = self._channel(endpoint)
            refs = self._message_refs(op, channel)
            frames = [self._frame(ref, f"operation {op_id!r}") for ref in refs]
            usable = [f for f in frames if f is not None]
            if len(usable) != len(frames):
                self.warn(f"operation {op_id!r} is left out: its message cannot be used")
                continue
            if len(usable) != 1:
                self.warn(
                    f"operation {op_id!r} is left out: it has {len(usable)} messages (a request "
                    "is one frame type)"
                )
                continue
            key, frame_type, data, data_required, message = usable[0]
            scopes = _scopes(op)
            if op.get("x-asyncws-presence") in ("presence", "presence_stats"):
                topic = op.get("x-asyncws-topic")
                if isinstance(topic, str):
                    self.presence_topics.add(topic)
                continue  # the topic's presence methods cover them
            if frame_type in ("subscribe", "unsubscribe"):
                topic = op.get("x-asyncws-topic")
                if frame_type == "subscribe" and isinstance(topic, str):
                    subscribe_scopes[topic] = scopes
                continue  # the subscription API covers them
            if frame_type == "publish":
                topic = op.get("x-asyncws-topic")
                if not isinstance(topic, str):
                    self.warn(
                        f"operation {op_id!r} publishes but names no topic (x-asyncws-topic): "
                        "left out"
                    )
                    continue
                node = (
                    self.payload(data, f"{topic}Publish", f"operation {op_id!r}")
                    if data is not None
                    else None
                )
                publish[topic] = (op_id, node, scopes)
                continue
            if frame_type in ANSWER_TYPES or frame_type == "reply":
                self.warn(
                    f"operation {op_id!r} uses the reserved frame type {frame_type!r}: left out"
                )
                continue
            payload = (
                self.payload(data, key, f"operation {op_id!r} payload")
                if data is not None
                else None
            )
            replies = [a for a in self._answers(op, op_id) if a[1] not in ANSWER_TYPES]
            reply: TypeNode | None = None
            reply_description: str | None = None
            if replies:
                nodes = [
                    self.payload(d, k, f"operation {op_id!r} reply") if d is not None else AnyNode()
                    for k, _, d, _ in replies
                ]
                reply = nodes[0] if len(nodes) == 1 else _union(nodes)
                reply_message = self._message_description(replies[0][0])
                reply_description = reply_message
            operations.append(
                OperationDescription(
                    id=op_id,
                    frame_type=frame_type,
                    summary=_text(op.get("summary")) or _text(message.get("summary")),
                    description=_text(op.get("description")) or _text(message.get("description")),
                    payload=payload,
                    payload_required=data_required,
                    reply=reply,
                    reply_description=reply_description,
                    scopes=scopes,
                    deprecated=op.get("deprecated") is True,
                )
            )
        return operations, publish, subscribe_scopes

    def _message_description(self, key: str) -> str | None:
        components = self.doc.get("components")
        messages = components.get("messages") if isinstance(components, Mapping) else None
        message = messages.get(key) if isinstance(messages, Mapping) else None
        if isinstance(message, Mapping):
            return _text(message.get("summary")) or _text(message.get("description"))
        return None

    def _read_topics(
        self,
        endpoint: str,
        publish: Mapping[str, tuple[str, TypeNode | None, Any]],
        subscribe_scopes: Mapping[str, tuple[str, ...]],
    ) -> list[TopicDescription]:
        topics: list[TopicDescription] = []
        seen: set[str] = set()
        pending: list[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]] = []
        for op_id, op in self._operations():
            if op.get("action") != "send":
                continue
            key = self._channel_key(op.get("channel"), f"operation {op_id!r}")
            if key is None or key in seen:
                continue
            if key == endpoint:
                self.warn(
                    f"send operation {op_id!r} uses the endpoint channel: events outside "
                    "topics cannot be subscribed to, left out"
                )
                continue
            channel = self._channel(key)
            address = channel.get("address")
            if not isinstance(address, str) or not address:
                self.warn(f"send operation {op_id!r}: channel {key!r} has no address, left out")
                continue
            seen.add(key)
            pending.append((op_id, key, op, channel))
        names = _topic_names([(k, c["address"]) for _, k, _, c in pending])
        for op_id, key, op, channel in pending:
            topic = self._topic(op_id, key, op, channel, names[key], publish, subscribe_scopes)
            if topic is not None:
                topics.append(topic)
        for topic_key in publish:
            if topic_key not in seen:
                self.warn(
                    f"publishing to {topic_key!r}: no send operation has that channel, left out"
                )
        return topics

    def _topic(
        self,
        op_id: str,
        key: str,
        op: Mapping[str, Any],
        channel: Mapping[str, Any],
        name: str,
        publish: Mapping[str, tuple[str, TypeNode | None, Any]],
        subscribe_scopes: Mapping[str, tuple[str, ...]],
    ) -> TopicDescription | None:
        address = str(channel["address"])
        params = [
            self._param(p, channel, f"channel {key!r}")
            for p, is_param in _template_parts(address)
            if is_param
        ]
        events: list[EventDescription] = []
        for i, ref in enumerate(self._message_refs(op, channel)):
            frame = self._frame(ref, f"topic {key!r} message {i}")
            if frame is None:
                continue
            msg_key, frame_type, data, _, message = frame
            if any(e.frame_type == frame_type for e in events):
                self.warn(f"topic {key!r}: two events have the type {frame_type!r}, one is kept")
                continue
            base = pascal(msg_key)
            event_name = self.names.take(
                f"{base}Event", f"{pascal(name)}{base}Event", f"{pascal(key)}{base}Event"
            )
            node = (
                self.payload(data, msg_key, f"topic {key!r} event {msg_key!r}")
                if data is not None
                else None
            )
            events.append(
                EventDescription(
                    key=msg_key,
                    frame_type=frame_type,
                    name=event_name,
                    data=node,
                    description=_text(message.get("description")) or _text(message.get("summary")),
                )
            )
        if not events:
            self.warn(f"topic {key!r} has no usable event: left out")
            return None
        union_name = self.names.take(f"{pascal(name)}Event") if len(events) > 1 else None
        pub = publish.get(key)
        return TopicDescription(
            id=key,
            address=address,
            name=name,
            params=params,
            events=events,
            event_type=union_name or events[0].name,
            union_name=union_name,
            description=_topic_text(
                _text(op.get("description")) or _text(channel.get("description"))
            ),
            summary=_text(op.get("summary")),
            publish=pub[1] if pub is not None else None,
            publish_operation=pub[0] if pub is not None else None,
            subscribe_scopes=subscribe_scopes.get(key, ()),
            publish_scopes=tuple(pub[2]) if pub is not None else (),
            presence=key in self.presence_topics,
        )

    def _error_codes(self, endpoint: str) -> list[ErrorCodeDescription]:
        codes: list[tuple[str, str | None]] = []
        for op_id, op in self._operations():
            if op.get("action") != "receive":
                continue
            reply = self.deref(op.get("reply"), op_id) if op.get("reply") is not None else None
            refs = reply.get("messages") if isinstance(reply, Mapping) else None
            for ref in refs if isinstance(refs, list) else []:
                found = self._message(ref, f"operation {op_id!r} reply")
                if found is None:
                    continue
                ok, payload = self._payload(found[1], found[0])
                schema = self.deref(payload, found[0]) if ok and payload is not None else None
                props = schema.get("properties") if isinstance(schema, Mapping) else None
                if not isinstance(props, Mapping):
                    continue
                kind = self.deref(props.get("type"), found[0]) if "type" in props else None
                if not isinstance(kind, Mapping) or kind.get("const") != "error":
                    continue
                code = self.deref(props.get("code"), found[0]) if "code" in props else None
                if isinstance(code, Mapping) and isinstance(code.get("enum"), list):
                    documented = _bullets(code.get("description"))
                    for value in code["enum"]:
                        if isinstance(value, str) and value not in dict(codes):
                            codes.append((value, documented.get(value)))
        if not codes:
            self.warn(
                "the document describes no error frame with a `code` enum: the client knows "
                "the asyncws protocol's error codes"
            )
            codes = [(str(code), text) for code, text in ERROR_CODES.items()]
        known = {str(k): v for k, v in ERROR_CODES.items()}
        return [
            ErrorCodeDescription(
                code=code,
                class_name=self.names.take(
                    ERROR_CLASS_NAMES.get(code, pascal(code)),
                    ERROR_CLASS_NAMES.get(code, pascal(code)) + "Error",
                ),
                description=text or known.get(code),
            )
            for code, text in codes
        ]

    def _auth(self) -> list[AuthDescription]:
        components = self.doc.get("components")
        schemes = components.get("securitySchemes") if isinstance(components, Mapping) else None
        if not isinstance(schemes, Mapping):
            return []
        found: list[AuthDescription] = []
        for key, scheme in schemes.items():
            scheme = self.deref(scheme, f"security scheme {key!r}")
            if not isinstance(scheme, Mapping):
                continue
            kind = scheme.get("type")
            description = _text(scheme.get("description"))
            if kind in ("oauth2", "openIdConnect") or (
                kind == "http" and str(scheme.get("scheme", "")).lower() == "bearer"
            ):
                found.append(AuthDescription(str(key), "token", None, description))
            elif kind in ("httpApiKey", "apiKey") and scheme.get("in") in ("query", "header"):
                found.append(
                    AuthDescription(
                        str(key), str(scheme["in"]), str(scheme.get("name")), description
                    )
                )
            else:
                self.warn(
                    f"security scheme {key!r} ({kind}) is not supported by the generated "
                    "client: pass what it needs with params=/headers="
                )
                found.append(AuthDescription(str(key), "other", None, description))
        return found


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _union(nodes: list[TypeNode], discriminator: str | None = None) -> TypeNode:
    flat: list[TypeNode] = []
    for node in nodes:
        # a discriminated union stays one member (its discriminator applies to it alone)
        split = isinstance(node, UnionNode) and node.discriminator is None
        members = node.members if isinstance(node, UnionNode) and split else (node,)
        for member in members:
            if member not in flat:
                flat.append(member)
    if any(isinstance(n, AnyNode) for n in flat):
        return AnyNode()
    literals = [n for n in flat if isinstance(n, LiteralNode)]
    if len(literals) > 1:  # one literal with every value, where the first one was
        merged = LiteralNode(tuple(dict.fromkeys(v for n in literals for v in n.values)))
        flat = [merged if n is literals[0] else n for n in flat if n not in literals[1:]]
    if len(flat) == 1:
        return flat[0]
    # null last: `str | None` reads better than `None | str`
    flat.sort(key=lambda n: isinstance(n, PrimitiveNode) and n.name == "null")
    return UnionNode(tuple(flat), discriminator)


def _constraints(schema: Mapping[str, Any], keys: Iterable[str]) -> tuple[tuple[str, Any], ...]:
    return tuple(
        (k, schema[k])
        for k in keys
        if k in schema and (isinstance(schema[k], int | float | str) or k == "uniqueItems")
    )


def _scopes(op: Mapping[str, Any]) -> tuple[str, ...]:
    scopes = op.get("x-asyncws-scopes")
    if isinstance(scopes, list):
        return tuple(str(s) for s in scopes)
    found: list[str] = []
    for item in op.get("security", []) or []:
        if isinstance(item, Mapping):
            found += [str(s) for s in item.get("scopes", []) or [] if str(s) not in found]
    return tuple(found)


def _bullets(text: Any) -> dict[str, str]:
    """``- `code`: meaning`` lines of a description."""
    if not isinstance(text, str):
        return {}
    found: dict[str, str] = {}
    for match in re.finditer(r"^\s*[-*]\s+`([^`]+)`\s*:\s*(.+)$", text, re.MULTILINE):
        found[match.group(1)] = match.group(2).strip()
    return found


def _topic_names(topics: list[tuple[str, str]]) -> dict[str, str]:
    """A short snake_case name per topic, from the fixed levels of its address
    (``rooms/{room}/typing`` -> ``rooms_typing``); the channel id where that is ambiguous."""
    short: dict[str, str] = {}
    for key, address in topics:
        fixed = [text for text, is_param in _template_parts(address) if not is_param]
        short[key] = snake(" ".join(fixed)) if any(words(t) for t in fixed) else snake(key)
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    return {key: (name if counts[name] == 1 else snake(key)) for key, name in short.items()}


def describe(document: Mapping[str, Any], name: str | None = None) -> ClientDescription:
    """The client described by an AsyncAPI 3.x document; ``name`` is the base of the class
    names (default: the document's title: ``"Chat"`` gives ``ChatClient``)."""
    reader = _Reader(document, name)
    return reader.describe()
