"""Clients for documents in their own framing (the payload is the frame).

`describe_framed` reads a document with `asyncws.asyncapi.reader.read_api` — the reader the
spec-first server uses, so both sides classify and correlate frames the same way — into a
`FramedClient`: one connection class per endpoint (websocket address), a method per receive
operation (a request, with its correlation id set and its reply awaited when the document
gives one), a callback hook per message the server sends, and a typed dict / interface per
message (its top-level properties). The frame rules (discriminators, correlation pointers)
are data in the generated module, read by a small runtime in the same file.

`render_framed` renders ``templates/clients/framed/{python,typescript}``; the output depends
only on the document and the name.
"""

from __future__ import annotations

import json
import keyword
import pprint
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..asyncapi.reader import SpecError, WireAPI, WireEndpoint, WireMessage, read_api
from ..asyncapi.schemas import deref
from .model import CodegenError, pascal, snake, words

__all__ = ["FramedClient", "describe_framed", "render_framed"]

_PY_RESERVED = frozenset({"connect", "close", "on", "receive", "request", "url", "send_frame"})
_TS_RESERVED = frozenset({"connect", "close", "on", "receive", "request", "url", "sendFrame"})


def camel(text: str) -> str:
    name = pascal(text)
    return name[:1].lower() + name[1:]


@dataclass
class Field:
    name: str
    py: str
    ts: str
    required: bool
    description: str | None = None


@dataclass
class Message:
    key: str
    name: str
    type_name: str
    fields: list[Field]
    description: str | None
    table: dict[str, Any]  # the runtime's rule: discriminators, constants, correlation


@dataclass
class Request:
    op_id: str
    py_name: str
    ts_name: str
    message: Message
    replies: list[Message]
    summary: str | None

    @property
    def doc(self) -> str:
        """What the method does, one line (the templates escape it)."""
        return self.summary or f"Send {self.message.name}."

    @property
    def reply_type(self) -> str:
        """The union of the reply types ("" when the request gets no reply)."""
        return " | ".join(r.type_name for r in self.replies)

    @property
    def reply_keys(self) -> list[str]:
        return [r.key for r in self.replies]


@dataclass
class Push:
    message: Message
    op_id: str
    py_name: str
    ts_name: str


@dataclass
class Param:
    name: str
    py_name: str
    enum: list[str] | None
    description: str | None

    @property
    def py_type(self) -> str:
        return "Literal[" + ", ".join(repr(v) for v in self.enum) + "]" if self.enum else "str"

    @property
    def ts_type(self) -> str:
        return " | ".join(json.dumps(v) for v in self.enum) if self.enum else "string"


@dataclass
class Endpoint:
    class_name: str
    address: str
    params: list[Param]
    requests: list[Request]
    pushes: list[Push]
    inbound: list[str]  # message keys the server sends, in classification order

    @property
    def py_doc(self) -> str:
        """The class docstring of the Python connection (escaped)."""
        names = ", ".join(f"``{_pydoc(p.name)}``" for p in self.params)
        about = f" (path parameters: {names})" if self.params else ""
        return f"A connection to ``{_pydoc(self.address)}``{about}."

    @property
    def py_params(self) -> str:
        """The ``params`` dict the Python constructor passes on (path parameters)."""
        return "{ " + ", ".join(f"{p.name!r}: {p.py_name}" for p in self.params) + " }"

    @property
    def ts_params(self) -> str:
        """The type of the TypeScript constructor's ``params``."""
        return "{ " + "; ".join(f"{json.dumps(p.name)}: {p.ts_type}" for p in self.params) + " }"


@dataclass
class FramedClient:
    title: str
    version: str
    name: str
    module: str  # python module / ts file base
    endpoints: list[Endpoint]
    messages: list[Message]
    default_url: str | None
    warnings: list[str] = field(default_factory=list)

    @property
    def uses_literal(self) -> bool:
        return any("Literal[" in f.py for m in self.messages for f in m.fields) or any(
            p.enum for e in self.endpoints for p in e.params
        )

    @property
    def client_class(self) -> str:
        return ", ".join(e.class_name for e in self.endpoints)

    def table(self) -> dict[str, Any]:
        return {m.key: m.table for m in self.messages}


def _json_type(schema: Any, document: Mapping[str, Any], depth: int = 0) -> tuple[str, str]:
    """(python, typescript) annotations for a schema, shallow (nested objects are dicts)."""
    schema = deref(document, schema) if isinstance(schema, Mapping) else schema
    if not isinstance(schema, Mapping) or depth > 4:
        return "Any", "unknown"
    if "const" in schema:
        return f"Literal[{_py_lit(schema['const'])}]", json.dumps(schema["const"])
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str | int | bool) for v in enum):
        return (
            "Literal[" + ", ".join(_py_lit(v) for v in enum) + "]",
            " | ".join(json.dumps(v) for v in enum),
        )
    kind = schema.get("type")
    if kind == "string":
        return "str", "string"
    if kind == "integer":
        return "int", "number"
    if kind == "number":
        return "float", "number"
    if kind == "boolean":
        return "bool", "boolean"
    if kind == "null":
        return "None", "null"
    if kind == "array":
        py, ts = _json_type(schema.get("items", {}), document, depth + 1)
        return f"list[{py}]", f"Array<{ts}>"
    if kind == "object":
        return "dict[str, Any]", "Record<string, unknown>"
    for combo in ("oneOf", "anyOf"):
        if isinstance(schema.get(combo), list):
            parts = [_json_type(s, document, depth + 1) for s in schema[combo]]
            return " | ".join(dict.fromkeys(p for p, _ in parts)), " | ".join(
                dict.fromkeys(t for _, t in parts)
            )
    return "Any", "unknown"


def _py_lit(value: Any) -> str:
    return repr(value)


def _message(api: WireAPI, message: WireMessage, taken: set[str]) -> Message:
    document = api.document
    schema = deref(document, message.schema) if isinstance(message.schema, Mapping) else {}
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    required = set(schema.get("required") or []) if isinstance(schema, Mapping) else set()
    shape = message.shape
    auto = set(shape.constants()) | ({shape.correlation[0]} if shape.correlation else set())
    fields = []
    for prop, sub in (props or {}).items() if isinstance(props, Mapping) else ():
        py, ts = _json_type(sub, document)
        sub_d = deref(document, sub) if isinstance(sub, Mapping) else {}
        fields.append(
            Field(
                prop,
                py,
                ts,
                prop in required and prop not in auto,
                sub_d.get("description") if isinstance(sub_d, Mapping) else None,
            )
        )
    base = pascal(message.title or message.name)
    type_name = base if base.endswith("Message") else base + "Message"
    while type_name in taken:
        type_name += "_"
    taken.add(type_name)
    table: dict[str, Any] = {
        "name": message.name,
        "discriminator": {k: list(v) for k, v in shape.discriminator.items()},
        "constants": shape.constants(),
        "correlation": list(shape.correlation) if shape.correlation else None,
        "props": sorted(props or {}) if isinstance(props, Mapping) else [],
    }
    if shape.correlation and isinstance(props, Mapping):
        target = deref(document, props.get(shape.correlation[0], {}))
        if isinstance(target, Mapping) and target.get("type") == "string":
            table["correlation_type"] = "string"
    return Message(
        message.key,
        message.name,
        type_name,
        fields,
        message.summary or message.description,
        table,
    )


def _method(name: str, reserved: frozenset[str], taken: set[str], style: str) -> str:
    base = snake(name) if style == "py" else camel(name)
    if base in reserved or (style == "py" and keyword.iskeyword(base)):
        base += "_op" if style == "py" else "Op"
    while base in taken:
        base += "_" if style == "py" else "2"
    taken.add(base)
    return base


def describe_framed(
    document: Mapping[str, Any] | WireAPI,
    name: str | None = None,
    *,
    skip_unsupported: bool = False,
) -> FramedClient:
    """The client description of a document in its own framing (raises `CodegenError`
    listing what cannot be generated; ``skip_unsupported`` makes those warnings)."""
    if isinstance(document, WireAPI):
        api = document
    else:
        try:
            api = read_api(document, skip_unsupported=skip_unsupported)
        except SpecError as exc:
            raise CodegenError(exc.problems) from None
    if not api.endpoints:
        raise CodegenError(["the document has no operation on a websocket address"])
    base = name or api.title
    client_words = words(base) or ["api"]
    messages: dict[str, Message] = {}
    taken: set[str] = set()

    def msg(m: WireMessage) -> Message:
        if m.key not in messages:
            messages[m.key] = _message(api, m, taken)
        return messages[m.key]

    endpoints = []
    class_names: set[str] = set()
    for ep in api.endpoints:
        endpoints.append(_endpoint(api, ep, msg, client_words, class_names, len(api.endpoints)))
    default_url = None
    for server in api.servers.values():
        host = server.get("host")
        if isinstance(host, str):
            default_url = f"{server.get('protocol', 'ws')}://{host}"
            break
    return FramedClient(
        title=api.title,
        version=api.version,
        name=pascal(base),
        module="_".join(w.lower() for w in client_words) + "_client",
        endpoints=endpoints,
        messages=list(messages.values()),
        default_url=default_url,
        warnings=list(api.skipped),
    )


def _endpoint(
    api: WireAPI,
    ep: WireEndpoint,
    msg: Any,
    client_words: list[str],
    class_names: set[str],
    count: int,
) -> Endpoint:
    prefix = "".join(w[:1].upper() + w[1:] for w in client_words)
    class_name = prefix + "Client" if count == 1 else prefix + pascal(ep.name) + "Client"
    while class_name in class_names:
        class_name += "_"
    class_names.add(class_name)
    py_taken: set[str] = set()
    ts_taken: set[str] = set()
    requests = []
    for op in ep.receive:
        for m in op.messages:
            requests.append(
                Request(
                    op.id,
                    _method(
                        op.id if len(op.messages) == 1 else m.name, _PY_RESERVED, py_taken, "py"
                    ),
                    _method(
                        op.id if len(op.messages) == 1 else m.name, _TS_RESERVED, ts_taken, "ts"
                    ),
                    msg(m),
                    [msg(r) for r in op.replies],
                    op.summary,
                )
            )
    pushes = []
    for op in ep.send:
        for m in op.messages:
            pushes.append(
                Push(
                    msg(m),
                    op.id,
                    _method("on " + m.name, _PY_RESERVED, py_taken, "py"),
                    _method("on " + m.name, _TS_RESERVED, ts_taken, "ts"),
                )
            )
    params = [
        Param(p.name, _param_name(p.name), list(p.enum) if p.enum else None, p.description)
        for p in ep.params.values()
    ]
    return Endpoint(
        class_name,
        ep.address,
        params,
        requests,
        pushes,
        [m.key for m in ep.outbound()],
    )


def _param_name(name: str) -> str:
    py = snake(name)
    return py + "_" if py in ("self", "url", "timeout", "params") else py


def render_framed(client: FramedClient, lang: str, env: Any) -> dict[str, str]:
    """The files of the client (relative path -> text)."""
    env = env.overlay()
    env.filters["pystr"] = repr
    env.filters["pylist"] = lambda items: repr(list(items))
    env.filters["pydoc"] = _pydoc
    env.filters["tsstr"] = json.dumps
    env.filters["tsdoc"] = _tsdoc
    context = {
        "client": client,
        "table_py": pprint.pformat(client.table(), width=88, sort_dicts=True),
        "table_json": json.dumps(client.table(), indent=2, sort_keys=True),
    }
    if lang == "python":
        text = env.get_template("clients/framed/python/client.py.j2").render(**context)
        return {client.module + ".py": text}
    if lang == "typescript":
        text = env.get_template("clients/framed/typescript/client.ts.j2").render(**context)
        return {client.module.replace("_", "-") + ".ts": text}
    raise ValueError(f"unknown language {lang!r}")


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())


def _pydoc(text: str) -> str:
    """One line of docstring text: backslashes doubled, no quote at either end, no
    triple quotes."""
    line = _one_line(text).replace("\\", "\\\\").replace('"', "'")
    return line


def _tsdoc(text: str) -> str:
    """One line of JSDoc text (a comment end cannot occur)."""
    return _one_line(text).replace("*/", "* /")
