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
  Keys are stable and dot-free (see `_key`): the operation id in camelCase (``order.place``
  -> ``orderPlace``; the frame ``type`` stays ``order.place``), the topic id (``roomsRoom``).

Output is deterministic: declaration order for channels and operations, sorted keys for
components, nothing that depends on hashing.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..codes import ErrorCode
from ..protocol import MAX_ID_LENGTH
from .examples import MISSING, example_for, string_for
from .model import (
    CLOSE_CODES,
    ERROR_CODES,
    AppDescription,
    OperationDescription,
    ParamDescription,
    PayloadSchema,
    SecuritySchemeDescription,
    TopicDescription,
)
from .schemas import (
    COMPONENT_KEY,
    REF_PREFIX,
    generate_schemas,
    make_validator,
    name_document_schemas,
)

__all__ = [
    "ASYNCAPI_VERSION",
    "ASYNCAPI_VERSIONS",
    "DEFAULT_SERVER_URL",
    "ENDPOINT_CHANNEL",
    "build",
    "server_from_url",
    "subscription_regex",
    "topic_regex",
]

ASYNCAPI_VERSION = "3.0.0"
#: The AsyncAPI versions asyncws writes (3.0.0 by default: Modelina cannot read 3.1 yet).
ASYNCAPI_VERSIONS = ("3.0.0", "3.1.0")
DEFAULT_SERVER_URL = "ws://localhost:8000"
ENDPOINT_CHANNEL = "endpoint"

FRAME_ID = "AsyncwsFrameId"
ERROR_CODE = "AsyncwsErrorCode"
ERROR_DETAIL = "AsyncwsErrorDetail"
PRESENCE_MEMBER = "AsyncwsPresenceMember"
CORRELATION = "frameId"
_ENDPOINT_REF = f"#/channels/{ENDPOINT_CHANNEL}"
_SCOPED_TYPES = frozenset({"oauth2", "openIdConnect"})


def _key(text: str) -> str:
    """``text`` made a key every tool takes: the spec's ``^[a-zA-Z0-9.\\-_]+$`` without dots
    (the generator's JavaScript templates and ``asyncapi optimize`` break on them), dotted
    parts joined in camelCase: ``rooms.room`` -> ``roomsRoom``."""
    cleaned = re.sub(r"[^A-Za-z0-9._\-]+", "_", text)
    parts = [p.strip("_") for p in cleaned.split(".") if p.strip("_")]
    if not parts:
        return "_"
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _join(*parts: str) -> str:
    """Keys made of keys: ``_join("post", "reply")`` -> ``postReply``."""
    return _key(".".join(parts))


def _regex_escape(text: str) -> str:
    """Escape for an ECMAScript pattern in unicode mode (which forbids needless escapes)."""
    return "".join("\\" + c if c in "\\^$.*+?()[]{}|/" else c for c in text)


def _ref(*parts: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)}


def _tags(names: Sequence[str]) -> list[dict[str, str]]:
    return [{"name": n} for n in dict.fromkeys(names)]


def _prune(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None or an empty container."""
    return {k: v for k, v in obj.items() if v is not None and v != [] and v != {}}


class _Keys:
    """Keys of one namespace (operations, messages, channels): unique or a clear error."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.owners: dict[str, str] = {}

    def add(self, key: str, owner: str) -> str:
        if not COMPONENT_KEY.match(key):
            raise ValueError(f"{self.what} key {key!r} (from {owner}) is not a valid key")
        if key in self.owners:
            raise ValueError(
                f"{self.what} key {key!r} is used twice: by {self.owners[key]} and by {owner}; "
                "rename one of them"
            )
        self.owners[key] = owner
        return key


def _level_regex(param_enum: Sequence[str] | None) -> str:
    if param_enum is not None:
        return "(?:" + "|".join(_regex_escape(v) for v in param_enum) + ")"
    return "[^/+#]+"


def topic_regex(topic: TopicDescription) -> str:
    """A pattern for the concrete topics of a template (a parameter is one non-empty level)."""
    levels = [
        _regex_escape(lv) if isinstance(lv, str) else _level_regex(lv.enum) for lv in topic.levels()
    ]
    return "^" + "/".join(levels) + "$"


def subscription_regex(topic: TopicDescription) -> str:
    """A pattern for what a client may subscribe to: concrete topics, ``+`` in parameter
    levels, and ``#`` as the last level where every remaining level is a parameter."""
    levels = list(topic.levels())
    parts = [
        _regex_escape(lv) if isinstance(lv, str) else "(?:\\+|" + _level_regex(lv.enum) + ")"
        for lv in levels
    ]
    alternatives = ["/".join(parts)]
    for k in range(len(levels) + 1):
        if all(not isinstance(lv, str) for lv in levels[k:]):
            alternatives.append("/".join([*parts[:k], "#"]))
    return "^(?:" + "|".join(alternatives) + ")$"


# -- servers and security -------------------------------------------------------------------


def server_from_url(url: str) -> dict[str, Any]:
    """An AsyncAPI server object for ``ws://host:port/path``."""
    parts = urlsplit(url)
    protocol = parts.scheme or "ws"
    server: dict[str, Any] = {"host": parts.netloc or "localhost", "protocol": protocol}
    if parts.path and parts.path != "/":
        server["pathname"] = parts.path.rstrip("/")
    return server


_FLOW_URLS = ("authorizationUrl", "tokenUrl", "refreshUrl")


def _http_base(server_url: str) -> str:
    """The HTTP origin of a ws/wss server URL, against which relative URLs are resolved."""
    parts = urlsplit(server_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme or "http")
    return f"{scheme}://{parts.netloc or 'localhost'}/"


def has_relative_security_urls(desc: AppDescription) -> bool:
    """Whether a security scheme names a relative URL (FastAPI's ``tokenUrl="/token"``): the
    document then depends on the server it is served from."""
    for scheme in desc.security:
        openapi = scheme.openapi
        urls = [openapi.get("openIdConnectUrl")]
        for flow in dict(openapi.get("flows", {})).values():
            urls += [flow.get(k) for k in _FLOW_URLS]
        if any(isinstance(u, str) and not urlsplit(u).scheme for u in urls):
            return True
    return False


def _security_scheme(scheme: SecuritySchemeDescription, base: str) -> dict[str, Any]:
    """FastAPI's OpenAPI security scheme as an AsyncAPI 3.0 one. AsyncAPI wants absolute
    URLs: relative ones (``tokenUrl="/token"``) are resolved against ``base``."""
    openapi = dict(scheme.openapi)
    kind = openapi.get("type")
    out: dict[str, Any]
    if kind == "apiKey":
        out = {"type": "httpApiKey", "name": openapi["name"], "in": openapi["in"]}
    elif kind == "oauth2":
        flows: dict[str, Any] = {}
        for name, flow in sorted(dict(openapi.get("flows", {})).items()):
            converted = {k: v for k, v in flow.items() if k != "scopes"}
            for key in _FLOW_URLS:
                if isinstance(converted.get(key), str):
                    converted[key] = urljoin(base, converted[key])
            converted["availableScopes"] = dict(sorted(flow.get("scopes", {}).items()))
            flows[name] = converted
        out = {"type": "oauth2", "flows": flows}
    elif kind == "http":
        out = {k: openapi[k] for k in ("type", "scheme", "bearerFormat") if k in openapi}
    elif kind == "openIdConnect":
        out = {
            "type": "openIdConnect",
            "openIdConnectUrl": urljoin(base, openapi["openIdConnectUrl"]),
        }
    else:
        raise ValueError(f"security scheme {scheme.key!r}: unsupported type {kind!r}")
    where = _credential_places(scheme)
    text = scheme.description or ""
    if where:
        text = (text + "\n\n" if text else "") + "Send the credential at the handshake: " + where
    if text:
        out["description"] = text
    return out


def _credential_places(scheme: SecuritySchemeDescription) -> str:
    openapi = scheme.openapi
    places: list[str] = []
    if openapi.get("type") == "apiKey":
        location = {"header": "header", "query": "query parameter", "cookie": "cookie"}
        places.append(f"the `{openapi['name']}` {location.get(openapi['in'], openapi['in'])}")
    elif openapi.get("type") in ("oauth2", "openIdConnect") or openapi.get("scheme") == "bearer":
        places.append("`Authorization: Bearer <token>`")
        if scheme.subprotocol_prefix:
            places.append(
                f"or a `Sec-WebSocket-Protocol` entry `{scheme.subprotocol_prefix}<token>` "
                "(browsers cannot set headers; also offer a real subprotocol)"
            )
        if scheme.query_param:
            places.append(f"or the `{scheme.query_param}` query parameter")
    elif openapi.get("type") == "http":
        places.append(f"`Authorization: {str(openapi.get('scheme', '')).capitalize()} ...`")
    return ", ".join(places) + "." if places else ""


def _handshake_bindings(desc: AppDescription) -> dict[str, Any] | None:
    """The ws channel binding: the handshake's headers and query parameters we know of."""
    headers: dict[str, Any] = {}
    query: dict[str, Any] = {}
    schemes = {s.key: s for s in desc.security}
    for key in desc.handshake_security:
        scheme = schemes[key]
        openapi = scheme.openapi
        if openapi.get("type") == "apiKey":
            target = {"header": headers, "query": query}.get(str(openapi["in"]))
            if target is not None:
                target[openapi["name"]] = {
                    "type": "string",
                    "description": f"The credential of `{key}`.",
                }
            continue
        if openapi.get("type") == "http" and openapi.get("scheme") != "bearer":
            headers["Authorization"] = {
                "type": "string",
                "description": f"`{openapi.get('scheme')}` credentials ({key}).",
            }
            continue
        headers["Authorization"] = {
            "type": "string",
            "pattern": "^[Bb]earer [A-Za-z0-9\\-._~+/]+=*$",
            "description": f"`Bearer <token>` ({key}).",
        }
        if scheme.subprotocol_prefix:
            headers["Sec-WebSocket-Protocol"] = {
                "type": "string",
                "description": (
                    f"May carry the token as an entry `{scheme.subprotocol_prefix}<token>` "
                    "(for browsers, which cannot set Authorization); the server never "
                    "accepts that entry as the subprotocol."
                ),
            }
        if scheme.query_param:
            query[scheme.query_param] = {
                "type": "string",
                "description": f"The bearer token ({key}); prefer the header: URLs get logged.",
            }
    required: dict[str, list[str]] = {"query": [], "header": []}
    for param in desc.request_params:
        target = query if param.kind == "query" else headers
        schema = dict(param.schema)
        used = ", ".join(f"`{u}`" if u != "the handshake" else u for u in param.used_by)
        text = schema.get("description")
        note = f"Read by {used}." if used else ""
        if param.required:
            note += " Required: the handshake is refused (HTTP 403) without a valid value."
        schema["description"] = f"{text}\n\n{note}".strip() if text else note.strip()
        name = param.name if param.kind == "query" else _header_name(param.name)
        target[name] = schema
        if param.required:
            required[param.kind].append(name)
    if desc.allowed_origins is not None and "*" not in desc.allowed_origins:
        headers["Origin"] = {
            "type": "string",
            "description": (
                "Browsers' origin; allowed: the server's own origin, "
                + ", ".join(f"`{o}`" for o in desc.allowed_origins)
                + ". Others are refused with HTTP 403."
            ),
        }
    if not headers and not query:
        return None
    binding: dict[str, Any] = {"method": "GET"}
    if query:
        binding["query"] = {"type": "object", "properties": dict(sorted(query.items()))}
        if required["query"]:
            binding["query"]["required"] = sorted(required["query"])
    if headers:
        binding["headers"] = {"type": "object", "properties": dict(sorted(headers.items()))}
        if required["header"]:
            binding["headers"]["required"] = sorted(required["header"])
    binding["bindingVersion"] = "0.1.0"
    return {"ws": binding}


def _header_name(name: str) -> str:
    """``x-token`` -> ``X-Token`` (headers are case-insensitive; this is how they are written)."""
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def _operation_security(
    schemes: Mapping[str, dict[str, Any]], keys: Sequence[str], scopes: Sequence[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in keys:
        scheme = schemes[key]
        if scopes and scheme["type"] in _SCOPED_TYPES:
            inline = copy.deepcopy(scheme)
            inline["scopes"] = list(scopes)
            out.append(inline)
        else:
            out.append(_ref("components", "securitySchemes", key))
    return out


# -- frames ---------------------------------------------------------------------------------


def _const(value: str) -> dict[str, Any]:
    return {"type": "string", "const": value}


_POSITION_EXAMPLE = {"offset": 42, "epoch": "3f9c2a7d41b0"}


def _position_props() -> dict[str, Any]:
    """The position fields of an event of a history topic (docs/delivery.md)."""
    return {
        "offset": {
            "type": "integer",
            "minimum": 1,
            "maximum": 2**53,
            "description": "Grows by one per event of this concrete topic.",
        },
        "epoch": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": "Changes when the topic's history was lost (offsets restart).",
        },
    }


def _position_schema(description: str) -> dict[str, Any]:
    props = _position_props()
    props["offset"] = dict(props["offset"], minimum=0)
    return {
        "type": "object",
        "description": description,
        "properties": props,
        "required": ["offset", "epoch"],
    }


def _since_prop() -> dict[str, Any]:
    return {
        "since": _position_schema(
            "The last position this client saw (an event's `offset` and `epoch`, or the "
            "`position` of an `ack`): the events after it are sent before live ones."
        )
    }


def _ack_history_props() -> dict[str, Any]:
    return {
        "recovered": {
            "type": "boolean",
            "description": (
                "The answer to a subscribe with `since`: true, every missed event follows; "
                "false, the position could not be honoured (another epoch, trimmed, too far)."
            ),
        },
        "position": _position_schema(
            "A history topic's current position: the next event has `offset` + 1."
        ),
    }


def _frame(properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


def _protocol_schemas() -> dict[str, Any]:
    codes = "\n".join(f"- `{code.value}`: {ERROR_CODES[code]}" for code in ErrorCode)
    return {
        FRAME_ID: {
            "title": "FrameId",
            "description": (
                "Chosen by the client to match answers to requests: a string of at most "
                f"{MAX_ID_LENGTH} characters or an integer in JavaScript's safe range "
                "(|n| <= 2^53, so any client can echo it)."
            ),
            "oneOf": [
                {"type": "string", "maxLength": MAX_ID_LENGTH},
                {"type": "integer", "minimum": -(2**53), "maximum": 2**53},
            ],
        },
        ERROR_CODE: {
            "title": "ErrorCode",
            "description": "What went wrong:\n\n" + codes,
            "type": "string",
            "enum": [code.value for code in ErrorCode],
        },
        ERROR_DETAIL: {
            "title": "ErrorDetail",
            "description": (
                "One problem: for `validation_error`, `loc` is the path inside `data`, `msg` "
                "says what is wrong and `type` names the check that failed."
            ),
            "type": "object",
            "properties": {
                "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                "msg": {"type": "string"},
                "type": {"type": "string"},
            },
        },
    }


def _member() -> dict[str, Any]:
    """A presence member: its id (user or connection id) and the info kept for it."""
    return {
        "type": "object",
        "properties": {
            "member": {"type": "string", "description": "The user id (or connection id)."},
            "info": {"description": "What the application keeps for the member (or null)."},
        },
        "required": ["member"],
    }


def _id_prop() -> dict[str, Any]:
    return {"$ref": REF_PREFIX + FRAME_ID}


class _Builder:
    def __init__(self, desc: AppDescription, server_url: str | None) -> None:
        self.desc = desc
        self._history = any(t.history_size is not None for t in desc.topics)
        self.server_url = server_url
        self.channel_keys = _Keys("channel")
        self.operation_keys = _Keys("operation")
        self.message_keys = _Keys("message")
        self.messages: dict[str, dict[str, Any]] = {}
        self.endpoint_messages: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        base = _http_base(server_url or DEFAULT_SERVER_URL)
        self.schemes = {s.key: _security_scheme(s, base) for s in desc.security}
        self.payloads: list[PayloadSchema] = []
        self.schemas: list[dict[str, Any]] = []
        self.components: dict[str, Any] = {}
        self._next = 0  # the next of `schemas` to hand out (same order as `payloads`)

    # payload schemas are generated in one pass: collect, then look up by index
    def _collect(self) -> None:
        for op in self.desc.operations:
            if op.payload is not None:
                self.payloads.append(op.payload)
            if op.reply is not None:
                self.payloads.append(op.reply)
        for topic in self.desc.topics:
            for event in topic.events:
                self.payloads.append(event.payload)
            if topic.client_publish:
                self.payloads.append(topic.publish_payload)
        self.schemas, self.components = generate_schemas(self.payloads)
        for name in _protocol_schemas():
            if name in self.components:
                raise ValueError(f"schema name {name!r} is reserved by asyncws")
        extra = _protocol_schemas()
        if any(t.presence for t in self.desc.topics):
            extra[PRESENCE_MEMBER] = _member()
        if PRESENCE_MEMBER in self.components:
            raise ValueError(f"schema name {PRESENCE_MEMBER!r} is reserved by asyncws")
        self.components = dict(sorted({**self.components, **extra}.items()))

    def _schema(self) -> dict[str, Any]:
        schema = self.schemas[self._next]
        self._next += 1
        return schema

    # -- messages -------------------------------------------------------------------------

    def _message(
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
            message["correlationId"] = _ref("components", "correlationIds", CORRELATION)
        if example is not MISSING and self._valid(example, payload):
            message["examples"] = [{"payload": example}]
        if deprecated:
            message["deprecated"] = True
        self.messages[key] = message
        if endpoint:
            self.endpoint_messages[key] = _ref("components", "messages", key)
        return key

    def _valid(self, instance: Any, schema: dict[str, Any]) -> bool:
        document = {"components": {"schemas": self.components}}
        return bool(make_validator(schema, document).is_valid(instance))

    def _example(self, schema: dict[str, Any]) -> Any:
        return example_for(schema, self.components)

    # -- the document ---------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        desc = self.desc
        self._collect()
        self.channel_keys.add(ENDPOINT_CHANNEL, "the websocket endpoint")
        # answers first (operations refer to them), listed last in the endpoint channel
        for key in ("ack", "error", "unsubscribe"):
            self.message_keys.add(key, "the protocol")
        topic_examples = {t.id: self._topic_example(t) for t in desc.topics}
        for op in desc.operations:
            self._operation(op)
        for topic in desc.topics:
            self._topic(topic, topic_examples[topic.id])
        self._protocol_messages(next(iter(topic_examples.values()), "example"))
        self._unsubscribe()
        self.channels = {ENDPOINT_CHANNEL: self._endpoint_channel(), **self.channels}
        document: dict[str, Any] = {
            "asyncapi": desc.asyncapi_version,
            "info": self._info(),
            "defaultContentType": "application/json",
            "servers": self._servers(),
            "channels": self.channels,
            "operations": self.operations,
            "components": _prune(
                {
                    "schemas": self.components,
                    "messages": dict(sorted(self.messages.items())),
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
        refs = [_ref("components", "securitySchemes", k) for k in self.desc.handshake_security]
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
        self._message(
            "unsubscribe",
            "the protocol",
            _frame(
                {
                    "type": _const("unsubscribe"),
                    "id": _id_prop(),
                    "topic": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": self.desc.topic_max_length,
                        "description": "Exactly as subscribed.",
                    },
                },
                ["type", "topic"],
            ),
            title="unsubscribe",
            registered=True,
            summary="Stop receiving the events of a subscription.",
            example={"type": "unsubscribe", "id": 1, "topic": topic_example},
        )
        self._message(
            "ack",
            "the protocol",
            _frame(
                {"type": _const("ack"), "id": _id_prop()}
                | (_ack_history_props() if self._history else {}),
                ["type", "id"],
            ),
            title="ack",
            registered=True,
            summary="The frame with this `id` was handled and had nothing to return.",
            example={"type": "ack", "id": 1},
        )
        self._message(
            "error",
            "the protocol",
            _frame(
                {
                    "type": _const("error"),
                    "id": _id_prop(),
                    "code": {"$ref": REF_PREFIX + ERROR_CODE},
                    "message": {"type": "string", "description": "Safe to show; for humans."},
                    "errors": {"type": "array", "items": {"$ref": REF_PREFIX + ERROR_DETAIL}},
                },
                ["type", "code", "message"],
            ),
            title="error",
            registered=True,
            summary="The frame with this `id` (or a frame without a usable one) failed.",
            description=(
                "An error never closes the connection by itself; `code` says what went wrong."
            ),
            example={
                "type": "error",
                "id": 1,
                "code": "validation_error",
                "message": "invalid payload",
                "errors": [{"loc": ["text"], "msg": "Field required", "type": "missing"}],
            },
        )

    def _answers(self, *keys: str) -> dict[str, Any]:
        return {
            "channel": {"$ref": _ENDPOINT_REF},
            "messages": [_ref("channels", ENDPOINT_CHANNEL, "messages", k) for k in keys],
        }

    def _secure(
        self, operation: dict[str, Any], keys: Sequence[str], scopes: Sequence[str]
    ) -> None:
        if scopes:
            keys = list(keys) or list(self.desc.handshake_security)
        security = _operation_security(self.schemes, keys, scopes) if (scopes or keys) else []
        if security:
            operation["security"] = security
        if scopes:
            operation["x-asyncws-scopes"] = list(scopes)

    def _operation(self, op: OperationDescription) -> None:
        owner = f"operation {op.type!r}"
        properties: dict[str, Any] = {"type": _const(op.type), "id": _id_prop()}
        required = ["type"]
        data_example: Any = MISSING
        if op.payload is not None:
            properties["data"] = self._schema()
            required.append("data")
            data_example = self._example(properties["data"])
        request = _frame(properties, required)
        example: Any = {"type": op.type, "id": 1}
        if op.payload is not None:
            example = MISSING if data_example is MISSING else {**example, "data": data_example}
        request_key = self._message(
            _key(op.type),
            owner,
            request,
            title=op.type,
            summary=op.summary,
            example=example,
            deprecated=op.deprecated,
        )
        if op.reply is not None:
            reply_schema = self._schema()
            reply_example = self._example(reply_schema)
            answer = self._message(
                _join(request_key, "reply"),
                f"the reply of {owner}",
                _frame(
                    {"type": _const("reply"), "id": _id_prop(), "data": reply_schema},
                    ["type", "data"],
                ),
                title=f"{op.type} reply",
                summary=f"What `{op.type}` returns.",
                example=(
                    MISSING
                    if reply_example is MISSING
                    else {"type": "reply", "id": 1, "data": reply_example}
                ),
            )
        else:
            answer = "ack"
        key = self.operation_keys.add(_key(op.id), owner)
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": _ENDPOINT_REF},
            "summary": op.summary,
            "description": op.description,
            "tags": _tags(op.tags),
            "messages": [_ref("channels", ENDPOINT_CHANNEL, "messages", request_key)],
            "reply": self._answers(answer, "error"),
        }
        operation = _prune(operation)
        self._secure(operation, op.security, op.scopes)
        if op.deprecated:
            operation["x-deprecated"] = True
        self.operations[key] = operation

    def _topic_example(self, topic: TopicDescription) -> str:
        values: dict[str, str] = {}
        for p in topic.params:
            if p.enum:
                values[p.name] = p.enum[0]
            else:
                value = string_for(p.schema)
                values[p.name] = value if isinstance(value, str) else p.name
        return "/".join(lv if isinstance(lv, str) else values[lv.name] for lv in topic.levels())

    def _topic(self, topic: TopicDescription, concrete: str) -> None:
        channel_key = self.channel_keys.add(_key(topic.id), f"topic {topic.address!r}")
        owner = f"topic {topic.address!r}"
        topic_schema = {
            "type": "string",
            "pattern": topic_regex(topic),
            "description": f"The concrete topic, an address of `{topic.address}`.",
        }
        channel_messages: dict[str, Any] = {}
        for event in topic.events:
            data = self._schema()
            data_example = self._example(data)
            props = {"type": _const(event.name), "topic": dict(topic_schema), "data": data}
            required = ["type", "topic", "data"]
            example: Any = (
                MISSING
                if data_example is MISSING
                else {"type": event.name, "topic": concrete, "data": data_example}
            )
            if topic.history_size is not None:  # positions (docs/delivery.md)
                props |= _position_props()
                required += ["offset", "epoch"]
                if example is not MISSING:
                    example |= _POSITION_EXAMPLE
            key = self._message(
                _join(channel_key, _key(event.name)),
                f"event {event.name!r} of {owner}",
                _frame(props, required),
                title=event.title or event.name,
                summary=event.summary,
                description=event.description,
                correlated=False,
                example=example,
                endpoint=False,
            )
            channel_messages[_key(event.name)] = _ref("components", "messages", key)
        if topic.presence_events:
            for kind in ("join", "leave"):
                key = self._message(
                    _join(channel_key, kind),
                    f"presence event {kind!r} of {owner}",
                    _frame(
                        {
                            "type": _const(kind),
                            "topic": dict(topic_schema),
                            "data": _ref("components", "schemas", PRESENCE_MEMBER),
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
                channel_messages[kind] = _ref("components", "messages", key)
        channel: dict[str, Any] = {
            "address": topic.address,
            "title": topic.title,
            "summary": topic.summary,
            "description": self._topic_description(topic),
            "messages": channel_messages,
            "parameters": {p.name: self._parameter(p) for p in topic.params},
            "tags": _tags(topic.tags),
        }
        self.channels[channel_key] = _prune(channel)
        self.operations[self.operation_keys.add(channel_key, f"the events of {owner}")] = _prune(
            {
                "action": "send",
                "channel": _ref("channels", channel_key),
                "summary": topic.summary or f"Events of `{topic.address}`",
                "description": topic.description,
                "tags": _tags(topic.tags),
                "messages": [
                    _ref("channels", channel_key, "messages", k) for k in channel_messages
                ],
            }
        )
        self._subscribe(topic, channel_key, concrete)
        if topic.presence:
            self._presence(topic, channel_key, concrete, topic_schema)
        if topic.client_publish:
            self._publish(topic, channel_key, concrete, topic_schema)

    def _topic_description(self, topic: TopicDescription) -> str:
        parts = [topic.description] if topic.description else []
        parts.append(
            f"Events of this topic arrive on the `{ENDPOINT_CHANNEL}` connection after a "
            f"`subscribe` (operation `{_join('subscribe', _key(topic.id))}`)."
        )
        if topic.client_publish:
            parts.append(
                f"Clients may publish to it (operation `{_join('publish', _key(topic.id))}`)."
            )
        if topic.history_size is not None:
            parts.append(
                f"**History:** the last {topic.history_size} events of each concrete topic are "
                f"kept for {topic.history_ttl:g} s after the last publish. Every event carries "
                "its position (`offset`, `epoch`); subscribe with `since` (the last position "
                "seen) to receive what was missed, in order, before live events: the `ack` "
                "says `recovered`."
                + (
                    " **Cache mode:** every subscribe first gets the latest event."
                    if topic.cache
                    else ""
                )
            )
        return "\n\n".join(parts)

    def _parameter(self, param: ParamDescription) -> dict[str, Any]:
        schema = dict(param.schema)
        text = param.description or f"The `{param.name}` level of the address."
        rules = []
        if "pattern" in schema:
            rules.append(f"pattern `{schema['pattern']}`")
        if "minLength" in schema:
            rules.append(f"at least {schema['minLength']} characters")
        if "maxLength" in schema:
            rules.append(f"at most {schema['maxLength']} characters")
        if "format" in schema:
            rules.append(f"format `{schema['format']}`")
        if schema.get("type") in ("integer", "number"):
            rules.append(f"a{'n' if schema['type'] == 'integer' else ''} {schema['type']}")
        if rules:
            text = text.rstrip(".") + ". Constraints: " + ", ".join(rules) + "."
        out: dict[str, Any] = {"description": text}
        if param.enum is not None:
            out["enum"] = list(param.enum)
        declared = schema.get("examples")
        if param.enum:
            example: Any = param.enum[0]
        elif isinstance(declared, list) and declared and isinstance(declared[0], str):
            example = declared[0]  # the parameter type's own Field(examples=[...])
        else:
            example = string_for(schema)
        if schema.get("type") in ("integer", "number"):
            value = example_for(schema)
            example = str(value) if value is not MISSING else MISSING
        if isinstance(example, str):
            out["examples"] = [example]
        constraints = {
            k: v
            for k, v in schema.items()
            if k not in ("title", "description", "examples", "enum", "const", "default")
        }
        if constraints != {"type": "string"} and param.enum is None:
            out["x-asyncws-schema"] = constraints
        return out

    def _subscribe(self, topic: TopicDescription, channel_key: str, concrete: str) -> None:
        owner = f"subscriptions to topic {topic.address!r}"
        key = self._message(
            _join("subscribe", channel_key),
            owner,
            _frame(
                {
                    "type": _const("subscribe"),
                    "id": _id_prop(),
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
                    **(_since_prop() if topic.history_size is not None else {}),
                },
                ["type", "topic"],
            ),
            title=f"subscribe to {topic.address}",
            example={"type": "subscribe", "id": 1, "topic": concrete}
            | ({"since": _POSITION_EXAMPLE} if topic.history_size is not None else {}),
        )
        text = (
            f"Subscribe to `{topic.address}`: its events then arrive on this connection. "
            "Answered with `ack` (when the frame has an `id`) or `error` (`invalid_topic`, "
            "`unknown_topic`, `forbidden`, `too_many_subscriptions`)."
        )
        if topic.history_size is not None:
            text += (
                " The topic keeps history: the `ack` of a concrete subscribe carries the "
                "current `position`; with `since` it also says `recovered` (true: the missed "
                "events follow, in order, then live ones; false: the position could not be "
                "honoured, refetch). `since` on a wildcard is refused (`bad_request`)."
            )
        if topic.authorized:
            text += " An authorization rule of the application decides who may subscribe."
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": _ENDPOINT_REF},
            "summary": f"Subscribe to `{topic.address}`",
            "description": text,
            "messages": [_ref("channels", ENDPOINT_CHANNEL, "messages", key)],
            "reply": self._answers("ack", "error"),
        }
        self._secure(operation, (), topic.subscribe_scopes)
        operation["x-asyncws-topic"] = channel_key
        self.operations[self.operation_keys.add(key, owner)] = operation

    def _publish(
        self, topic: TopicDescription, channel_key: str, concrete: str, topic_schema: dict[str, Any]
    ) -> None:
        owner = f"client publishing to topic {topic.address!r}"
        data = self._schema()
        data_example = self._example(data)
        key = self._message(
            _join("publish", channel_key),
            owner,
            _frame(
                {
                    "type": _const("publish"),
                    "id": _id_prop(),
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
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": _ENDPOINT_REF},
            "summary": f"Publish to `{topic.address}`",
            "description": (
                "Publish a message of the topic; every subscriber receives it as an event. "
                "Answered with `ack` (when the frame has an `id`) or `error`."
            ),
            "messages": [_ref("channels", ENDPOINT_CHANNEL, "messages", key)],
            "reply": self._answers("ack", "error"),
        }
        self._secure(operation, (), topic.publish_scopes)
        operation["x-asyncws-topic"] = channel_key
        self.operations[self.operation_keys.add(key, owner)] = operation

    def _presence(
        self, topic: TopicDescription, channel_key: str, concrete: str, topic_schema: dict[str, Any]
    ) -> None:
        """The ``presence`` and ``presence_stats`` requests of a topic, and their replies."""
        owner = f"presence of topic {topic.address!r}"
        replies = {
            "presence": _frame(
                {
                    "members": {
                        "type": "array",
                        "items": _ref("components", "schemas", PRESENCE_MEMBER),
                        "description": "At most the topic's `max_members` members.",
                    },
                    "count": {"type": "integer", "minimum": 0},
                    "truncated": {
                        "type": "boolean",
                        "description": "Whether some members were left out (see `count`).",
                    },
                },
                ["members", "count", "truncated"],
            ),
            "presence_stats": _frame({"count": {"type": "integer", "minimum": 0}}, ["count"]),
        }
        examples = {
            "presence": {
                "members": [{"member": "ann", "info": None}],
                "count": 1,
                "truncated": False,
            },
            "presence_stats": {"count": 1},
        }
        for kind, data in replies.items():
            request = self._message(
                _join("presenceStats" if kind == "presence_stats" else "presence", channel_key),
                owner,
                _frame(
                    {"type": _const(kind), "id": _id_prop(), "topic": dict(topic_schema)},
                    ["type", "topic"],
                ),
                title=f"{kind} of {topic.address}",
                example={"type": kind, "id": 1, "topic": concrete},
            )
            answer = self._message(
                _join(request, "reply"),
                f"the {kind} reply of {owner}",
                _frame(
                    {"type": _const("reply"), "id": _id_prop(), "data": data},
                    ["type", "data"],
                ),
                title=f"{kind} reply",
                example={"type": "reply", "id": 1, "data": examples[kind]},
            )
            what = "the members" if kind == "presence" else "the number of members"
            operation: dict[str, Any] = {
                "action": "receive",
                "channel": {"$ref": _ENDPOINT_REF},
                "summary": f"Presence of `{topic.address}`"
                + (" (count)" if kind == "presence_stats" else ""),
                "description": (
                    f"Ask {what} of a concrete topic of `{topic.address}`, on every "
                    "instance. Who may subscribe to it may ask. Answered with `reply` or "
                    "`error` (`invalid_topic` for a pattern, `forbidden`, "
                    "`broker_unavailable` while the broker cannot be reached)."
                ),
                "messages": [_ref("channels", ENDPOINT_CHANNEL, "messages", request)],
                "reply": self._answers(answer, "error"),
            }
            self._secure(operation, (), topic.subscribe_scopes)
            operation["x-asyncws-topic"] = channel_key
            operation["x-asyncws-presence"] = kind
            self.operations[self.operation_keys.add(request, owner)] = operation

    def _unsubscribe(self) -> None:
        self.operations[self.operation_keys.add("unsubscribe", "the protocol")] = {
            "action": "receive",
            "channel": {"$ref": _ENDPOINT_REF},
            "summary": "Unsubscribe",
            "description": (
                "Stop receiving the events of a subscription (`topic` exactly as subscribed). "
                "Answered with `ack` (when the frame has an `id`, also when it was not "
                "subscribed) or `error` (`invalid_topic`)."
            ),
            "messages": [_ref("channels", ENDPOINT_CHANNEL, "messages", "unsubscribe")],
            "reply": self._answers("ack", "error"),
        }

    def _endpoint_channel(self) -> dict[str, Any]:
        desc = self.desc
        lines = [
            "The websocket endpoint. Every frame is one JSON object in one text frame, with "
            "a string `type`. Unknown extra fields are ignored.",
            "A client may add an `id` (see `FrameId`) to any frame it sends: the `ack`, "
            "`reply` or `error` that answers the frame carries the same `id`. `ack` is only "
            "sent when the frame had an `id`; errors are always sent.",
            "The events of the topics a connection subscribed to arrive on this connection "
            "too: see the topic channels.",
            f"A frame over {desc.max_frame_size} bytes closes the connection with 1009.",
        ]
        if desc.authenticated:
            text = "The handshake is authenticated"
            if desc.handshake_security:
                text += " (see the server's security schemes)"
            lines.append(text + "; a refused handshake gets HTTP 403 and no websocket.")
        lines.append(
            "Close codes:\n\n| code | meaning |\n| --- | --- |\n"
            + "\n".join(f"| {int(c)} | {text} |" for c, text in CLOSE_CODES.items())
        )
        channel: dict[str, Any] = {
            "address": desc.path,
            "title": "WebSocket endpoint",
            "description": "\n\n".join(lines),
            "messages": dict(self.endpoint_messages),
        }
        if desc.path_params:
            channel["parameters"] = {
                name: {"description": f"The `{name}` path parameter of the endpoint."}
                for name in desc.path_params
            }
        bindings = _handshake_bindings(desc)
        if bindings is not None:
            channel["bindings"] = bindings
        channel["x-asyncws-close-codes"] = {
            str(int(c)): {"name": c.name, "description": text} for c, text in CLOSE_CODES.items()
        }
        return channel


def build(desc: AppDescription, *, server_url: str | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of ``desc`` as a JSON-compatible dict.

    ``server_url`` (``ws://host:port/prefix``) is the server to list when the app declares
    none (default ``ws://localhost:8000``). Raises `ValueError` for declarations a document
    cannot hold (two things with one key, a payload pydantic cannot describe).
    """
    return _Builder(desc, server_url).build()
