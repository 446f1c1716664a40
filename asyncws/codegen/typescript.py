"""The TypeScript client: one module, no dependency beyond the platform ``WebSocket``.

`render` turns a `ClientDescription` into ``{name}-client.ts``: interfaces and unions for
the schemas, an interface per event and a union per topic, a class hierarchy of errors, and
the client class (promises for replies, subscriptions that are async iterables or call a
callback, reconnection with backoff). The template (``templates/clients/typescript/``) lays
the module out; this module names things and renders types and literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..codes import FrameType
from .layout import jsdoc, ts_str, ts_value
from .model import (
    AnyNode,
    ClientDescription,
    DictNode,
    FieldDescription,
    ListNode,
    LiteralNode,
    NamedSchema,
    OperationDescription,
    PrimitiveNode,
    RefNode,
    TopicDescription,
    TupleNode,
    TypeNode,
    UnionNode,
    combine,
    pascal,
    words,
)

__all__ = ["module_name", "render", "ts_type"]

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
# Members of the generated client class: an operation never takes these names.
_CLIENT_MEMBERS = frozenset(
    {
        "close",
        "connect",
        "connected",
        "connection",
        "constructor",
        "endpoint",
        "request",
        "subscription",
        "url",
        "waitConnected",
        "websocketUrl",
    }
)
_CONSTRAINT_TEXT = {
    "minLength": "minLength",
    "maxLength": "maxLength",
    "pattern": "pattern",
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusiveMinimum",
    "exclusiveMaximum": "exclusiveMaximum",
    "multipleOf": "multipleOf",
    "minItems": "minItems",
    "maxItems": "maxItems",
    "uniqueItems": "uniqueItems",
}


def module_name(client: ClientDescription) -> str:
    """``Chat`` -> ``chat-client.ts``."""
    return "-".join(w.lower() for w in words(client.name)) + "-client.ts"


def camel(text: str) -> str:
    name = pascal(text)
    return name[:1].lower() + name[1:]


def ts_key(name: str) -> str:
    """A property name: bare when it is an identifier, else quoted."""
    return name if _IDENTIFIER.match(name) else ts_str(name)


def ts_type(node: TypeNode | None) -> str:
    """The TypeScript type of a node."""
    if node is None or isinstance(node, AnyNode):
        return "unknown"
    if isinstance(node, RefNode):
        return node.name
    if isinstance(node, PrimitiveNode):
        return {
            "string": "string",
            "integer": "number",
            "number": "number",
            "boolean": "boolean",
            "null": "null",
        }[node.name]
    if isinstance(node, LiteralNode):
        return " | ".join(ts_value(v) for v in node.values) or "never"
    if isinstance(node, ListNode):
        item = ts_type(node.item)
        return f"({item})[]" if " | " in item else f"{item}[]"
    if isinstance(node, TupleNode):
        return "[" + ", ".join(ts_type(i) for i in node.items) + "]"
    if isinstance(node, DictNode):
        return "{ [key: string]: " + ts_type(node.value) + " }"
    if isinstance(node, UnionNode):
        parts: list[str] = []
        for member in node.members:
            text = ts_type(member)
            if text not in parts:
                parts.append(text)
        return " | ".join(parts)
    raise TypeError(f"unknown type node {node!r}")


def alias_body(text: str, prefix: int) -> str:
    """The right-hand side of ``type X =`` (with its leading space): one line when it fits,
    else one union member per line."""
    if prefix + 1 + len(text) + 1 <= 100:
        return " " + text
    parts = _split_union(text)
    if len(parts) < 2:
        return " " + text
    return "".join(f"\n  | {p}" for p in parts)


def _split_union(text: str) -> list[str]:
    """The top-level members of a union type (outside brackets and strings)."""
    parts: list[str] = []
    depth = 0
    start = 0
    in_string = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif depth == 0 and text.startswith(" | ", i):
            parts.append(text[start:i])
            start = i + 3
            i += 2
        i += 1
    parts.append(text[start:])
    return parts


def _constraints(node: TypeNode) -> list[str]:
    items: tuple[tuple[str, Any], ...] = ()
    if isinstance(node, PrimitiveNode | ListNode):
        items = node.constraints
    return [
        f"{_CONSTRAINT_TEXT[k]} `{v}`" if k == "pattern" else f"{_CONSTRAINT_TEXT[k]} {ts_value(v)}"
        for k, v in items
        if k in _CONSTRAINT_TEXT
    ]


def _field_doc(f: FieldDescription) -> str | None:
    parts = []
    if f.description:
        parts.append(f.description)
    if isinstance(f.type, PrimitiveNode) and f.type.format:
        parts.append(f"Format: `{f.type.format}`.")
    constraints = _constraints(f.type)
    if constraints:
        parts.append("Constraints: " + ", ".join(constraints) + ".")
    if f.has_default:
        parts.append(f"Default: `{ts_value(f.default)}`.")
    if f.deprecated:
        parts.append("@deprecated")
    return jsdoc("\n\n".join(parts), 2) if parts else None


@dataclass
class _Prop:
    key: str
    type: str
    optional: bool
    doc: str | None


@dataclass
class _Interface:
    name: str
    doc: str | None
    props: list[_Prop]
    extra: str | None = None


@dataclass
class _Alias:
    name: str
    type: str
    doc: str | None


@dataclass
class _Method:
    """A method of the client class, laid out: its doc comment, its head (``name(...): T {``,
    which may span lines) and the statements of its body."""

    name: str
    doc: str
    head: str
    body: list[str]


def _rejects(client: ClientDescription) -> str:
    return (
        f"Rejects with a `{client.error_class}` (a subclass per error code) when the server "
        "answers with an error, `RequestTimeout` without an answer within `options.timeout` "
        "milliseconds (default: the client's), `ConnectionLost` when the connection drops "
        "first."
    )


def _member(name: str, taken: set[str], suffix: str) -> str:
    if name in _CLIENT_MEMBERS:
        name += suffix
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _schema(schema: NamedSchema) -> _Interface | _Alias:
    doc = jsdoc(schema.description, 0) if schema.description else None
    if schema.fields is None:
        return _Alias(
            schema.name, alias_body(ts_type(schema.type), len(f"export type {schema.name} =")), doc
        )
    props = [
        _Prop(ts_key(f.name), ts_type(f.type), not f.required, _field_doc(f)) for f in schema.fields
    ]
    return _Interface(schema.name, doc, props, "unknown" if schema.extra is not None else None)


def _operation(client: ClientDescription, op: OperationDescription, taken: set[str]) -> _Method:
    reply = ts_type(op.reply) if op.reply is not None else None
    text = combine(op.summary, op.description) or f"The `{op.frame_type}` operation."
    details = []
    if reply is not None:
        details.append(f"Resolves with the reply (`{reply}`).")
    else:
        details.append("Resolves when the server acknowledges it (`ack`).")
    if op.scopes:
        details.append("Needs the scopes: " + ", ".join(f"`{s}`" for s in op.scopes) + ".")
    details.append(_rejects(client))
    if op.deprecated:
        details.append("@deprecated")
    name = _member(camel(op.id), taken, "Op")
    data = f"data: {ts_type(op.payload)}, " if op.payload is not None else ""
    request = f"this.request({ts_str(op.frame_type)}, {'data' if data else 'undefined'}, options)"
    head = f"async {name}({data}options: RequestOptions = {{}}): Promise<{reply or 'void'}> {{"
    if reply is not None:
        body = [f"const answer = await {request};", f"return answer.data as {reply};"]
    else:
        body = [f"await {request};"]
    return _Method(name, jsdoc(text + "\n\n" + "\n\n".join(details), 2), head, body)


@dataclass
class _Param:
    """A parameter of a topic address: ``params[key]`` fills ``{name}``."""

    key: str
    name: str  # a literal
    type: str


def _head(name: str, params: list[str], returns: str) -> str:
    """A method head with one parameter per line (the caller indents the first line)."""
    lines = "".join(f"    {p},\n" for p in params)
    return f"{name}(\n{lines}  ): {returns} {{"


def _object_type(params: list[_Param], optional: bool) -> str:
    """The type of a topic's ``params`` argument (``Record<string, never>``: it has none)."""
    if not params:
        return "Record<string, never>"
    mark = "?" if optional else ""
    return "{ " + "; ".join(f"{p.key}{mark}: {p.type}" for p in params) + " }"


def _topic(client: ClientDescription, topic: TopicDescription, taken: set[str]) -> list[_Method]:
    """``subscribe*``, and ``publish*`` and the presence methods where the topic has them."""
    params: list[_Param] = []
    docs = []
    for param in topic.params:
        if param.enum:
            kind = " | ".join(ts_str(v) for v in param.enum)
        else:
            kind = "number" if param.integer else "string"
        params.append(_Param(ts_key(param.name), ts_str(param.name), kind))
        about = (param.description or "a level of the address").rstrip(".")
        docs.append(f"`{param.name}`: {about}")
    values = "{ " + ", ".join(f"{p.key}: params[{p.name}]" for p in params) + " }"
    fill = f"const topic = fillTopic({ts_str(topic.address)}, {values if params else '{}'});"
    event = topic.event_type
    types = ", ".join(ts_str(e.frame_type) for e in topic.events)
    name = _member("subscribe" + pascal(topic.name), taken, "_")
    methods = [
        _Method(
            name,
            _subscribe_doc(client, topic, docs),
            _head(
                name,
                [
                    f"params: {_object_type(params, True)} = {{}}",
                    f"options: SubscribeOptions<{event}> = {{}}",
                ],
                f"Promise<Subscription<{event}>>",
            ),
            [fill, f"return this.connection.subscription<{event}>(topic, [{types}], options);"],
        )
    ]
    required = f"params: {_object_type(params, False)}"
    if topic.publish is not None:
        name = _member("publish" + pascal(topic.name), taken, "_")
        text = (
            f"Publish an event to `{topic.address}`: every subscriber receives it. Resolves "
            "when the server acknowledges it."
        )
        if topic.publish_scopes:
            scopes = ", ".join(f"`{s}`" for s in topic.publish_scopes)
            text += f" Needs the scopes: {scopes}."
        request = f"await this.request({ts_str(FrameType.PUBLISH)}, data, {{ ...options, topic }});"
        methods.append(
            _Method(
                name,
                jsdoc(text + "\n\n" + _rejects(client), 2),
                "async "
                + _head(
                    name,
                    [f"data: {ts_type(topic.publish)}", required, "options: RequestOptions = {}"],
                    "Promise<void>",
                ),
                [fill, request],
            )
        )
    if topic.presence:
        methods += _presence(client, topic, taken, required, fill)
    return methods


def _subscribe_doc(client: ClientDescription, topic: TopicDescription, params: list[str]) -> str:
    about = topic.description or topic.summary or ""
    text = f"Subscribe to `{topic.address}`." + (f" {about}" if about else "")
    details = [
        "Resolves when the server acknowledged the subscription (rejects with a "
        f"`{client.error_class}`, e.g. `Forbidden`, when it refuses). Iterate it with "
        "`for await (const event of subscription)`, or pass `options.onEvent`; `close()` "
        "ends it. After a reconnection the client subscribes again.",
    ]
    if params:
        details.append("Parameters (a missing one means any: `+`): " + "; ".join(params) + ".")
    if topic.subscribe_scopes:
        scopes = ", ".join(f"`{s}`" for s in topic.subscribe_scopes)
        details.append(f"Needs the scopes: {scopes}.")
    return jsdoc(text + "\n\n" + "\n\n".join(details), 2)


def _presence(
    client: ClientDescription, topic: TopicDescription, taken: set[str], params: str, fill: str
) -> list[_Method]:
    """``presence*`` (the members of a concrete topic) and ``presenceStats*``."""
    members = _member("presence" + pascal(topic.name), taken, "_")
    stats = _member("presenceStats" + pascal(topic.name), taken, "_")
    docs = {
        FrameType.PRESENCE: (
            f"The members of a `{topic.address}` topic, on every server instance (at most the "
            "server's cap: see `truncated` and `count`)."
        ),
        FrameType.PRESENCE_STATS: f"The number of members of a `{topic.address}` topic.",
    }
    methods = []
    for kind, name, model in (
        (FrameType.PRESENCE, members, "Presence"),
        (FrameType.PRESENCE_STATS, stats, "PresenceStats"),
    ):
        request = f"this.request({ts_str(kind)}, undefined, {{ ...options, topic }})"
        methods.append(
            _Method(
                name,
                jsdoc(docs[kind] + "\n\n" + _rejects(client), 2),
                "async "
                + _head(name, [params, "options: RequestOptions = {}"], f"Promise<{model}>"),
                [fill, f"const answer = await {request};", f"return answer.data as {model};"],
            )
        )
    return methods


def _events(client: ClientDescription) -> tuple[list[_Interface], list[_Alias]]:
    """An interface per event (``type``, ``topic``, ``data``), a union per topic with
    several events."""
    events = []
    unions = []
    for topic in client.topics:
        for event in topic.events:
            text = f"`{event.frame_type}` on `{topic.address}`"
            if event.description:
                text += f": {event.description}"
            about = jsdoc(f"The concrete topic: an address of `{topic.address}`.", 2)
            props = [
                _Prop("type", ts_str(event.frame_type), False, None),
                _Prop("topic", "string", False, about),
                _Prop("data", ts_type(event.data), False, None),
            ]
            events.append(_Interface(event.name, jsdoc(text, 0), props))
        if topic.union_name:
            members = " | ".join(e.name for e in topic.events)
            unions.append(
                _Alias(
                    topic.union_name,
                    alias_body(members, len(f"export type {topic.union_name} =")),
                    jsdoc(f"An event of `{topic.address}`.", 0),
                )
            )
    return events, unions


def _docs(client: ClientDescription) -> dict[str, str]:
    """The module's and the client class's doc comments."""
    title = f"{client.title} {client.version}".strip()
    about = f"\n\n{client.description}" if client.description else ""
    if client.endpoint is not None:
        endpoint = f"`{client.endpoint}` (added to a `url` without a path)."
    else:
        endpoint = f"`{client.endpoint_address}`: give its parameters in `options.path`."
    return {
        "title": title,
        "module_doc": jsdoc(
            f"The client of {title}.{about}\n\nOne module, no dependencies: it needs the "
            "platform `WebSocket` (browsers, Node.js 22 and later; or pass "
            "`options.WebSocket`).\n\nGenerated by `asyncws codegen` from the AsyncAPI "
            "document: do not edit.",
            0,
        ),
        "class_doc": jsdoc(
            f"A client of {title}.{about}\n\nThe websocket endpoint is {endpoint} One method "
            "per operation, one `subscribe*` method per topic.",
            0,
        ),
    }


def render(client: ClientDescription, env: Any) -> dict[str, str]:
    """The module (path relative to the output directory -> text)."""
    schemas = [_schema(s) for s in sorted(client.schemas.values(), key=lambda s: s.name)]
    events, unions = _events(client)
    taken: set[str] = set()
    methods = [_operation(client, op, taken) for op in client.operations]
    for topic in client.topics:
        methods += _topic(client, topic, taken)
    endpoint_params = [
        _Param(ts_key(p.name), ts_str(p.name), "number" if p.integer else "string")
        for p in client.endpoint_params
    ]
    context = {
        "client": client,
        **_docs(client),
        "schemas": schemas,
        "events": events,
        "unions": unions,
        "methods": methods,
        "errors": client.error_codes,
        "error_code_type": alias_body(
            " | ".join(ts_str(e.code) for e in client.error_codes) or "string",
            len("export type ErrorCode ="),
        ),
        "servers": [(ts_str(s.name), ts_str(s.url)) for s in client.servers],
        "endpoint": ts_str(client.endpoint) if client.endpoint is not None else "null",
        "endpoint_address": ts_str(client.endpoint_address),
        "endpoint_params": endpoint_params,
        "path_type": "{ " + "; ".join(f"{p.key}: {p.type}" for p in endpoint_params) + " }",
        "options_type": client.name + "Options" if client.endpoint_params else "ClientOptions",
        "jsdoc": jsdoc,
        "ts_str": ts_str,
    }
    text = env.get_template("clients/typescript/client.ts.j2").render(context)
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return {module_name(client): "\n".join(out).strip("\n") + "\n"}
