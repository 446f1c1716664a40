"""The page model: `_Page` reads a document once into everything the template shows.

Info, servers and security schemes, channels with their parameters, messages (each once, by
its ``$ref``), operations with their badge (SEND / RECEIVE / REQUEST) and example frames,
the component schemas as trees, the table of contents, and the data of the console's JSON
island (`_Page.console_data`). The document is never trusted: it is read through a
`_Resolver` and the lenient accessors of `asyncws.docs.schema`, and the results are views
(`asyncws.docs.views`) of plain text for the autoescaping template.

Package-internal: ``__all__`` names what the other modules of `asyncws.docs` use.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from .schema import (
    _CONSTRAINT_KEYS,
    SchemaNode,
    _Anchors,
    _as_dict,
    _list,
    _ref_name,
    _Resolver,
    _synthesize,
    _TreeBuilder,
)
from .text import _json_text, _pretty
from .views import (
    ChannelView,
    HandshakeView,
    MessageView,
    OperationView,
    ParamView,
    SecurityView,
    ServerView,
)
from .wire import (
    _answers_with_data,
    _first_example,
    _frame_body,
    _frame_shape,
    _is_envelope,
    _is_null_schema,
    _op_wire_type,
    _param_value,
    _wire_type,
)

__all__ = ["_Page"]


def _rest(description: Any, summary: Any) -> str | None:
    """A description without a first paragraph that repeats the summary (docstrings)."""
    if not isinstance(description, str):
        return None
    first, _, rest = description.strip().partition("\n\n")
    if _same_text(first, summary):
        return rest.strip() or None
    return description


def _same_text(a: Any, b: Any) -> bool:
    """Whether two texts say the same (case, spacing and a final period aside)."""

    def norm(text: Any) -> str:
        return re.sub(r"\s+", " ", str(text or "")).strip().rstrip(".").lower()

    return isinstance(a, str) and isinstance(b, str) and norm(a) == norm(b)


class _Page:
    """Everything the template shows, computed once from the document."""

    def __init__(self, document: Mapping[str, Any], ws_url_path: str | None) -> None:
        self.document = document
        self.resolver = _Resolver(document)
        self.anchors = _Anchors()
        self.trees = _TreeBuilder(self.resolver, self.anchors)
        info = _as_dict(document.get("info"))
        self.asyncapi = str(document.get("asyncapi", "?"))
        self.title = str(info.get("title") or "AsyncAPI document")
        self.version = str(info.get("version") or "")
        self.description = info.get("description")
        self.contact = {
            k: str(v) for k, v in _as_dict(info.get("contact")).items() if isinstance(v, str)
        }
        self.license = {
            k: str(v) for k, v in _as_dict(info.get("license")).items() if isinstance(v, str)
        }
        self.tags = [self._tag(t) for t in _list(info.get("tags"))]
        self.default_content_type = document.get("defaultContentType")
        self.security = self._security_schemes()
        self.servers = self._servers()
        self._messages: dict[str, MessageView] = {}
        self.channels = self._channels()
        self.ws_path = ws_url_path or self._endpoint_path()
        self.handshake = self._handshake()
        self.operations = self._operations()
        self.messages = self._all_messages()
        self.schemas = self._schemas()

    # -- small pieces -------------------------------------------------------------------------

    def _tag(self, raw: Any) -> tuple[str, str | None]:
        tag, _ = self.resolver.deref(raw)
        return str(tag.get("name", "?")), tag.get("description")

    def _security_names(self, raw: Any) -> list[str]:
        names = []
        for item in _list(raw):
            if isinstance(item, Mapping) and isinstance(item.get("$ref"), str):
                names.append(_ref_name(item["$ref"]) or "?")
            elif isinstance(item, Mapping) and isinstance(item.get("type"), str):
                names.append(str(item["type"]))
        return names

    def _security_schemes(self) -> list[SecurityView]:
        schemes = _as_dict(_as_dict(self.document.get("components")).get("securitySchemes"))
        out = []
        for key, raw in schemes.items():
            scheme, _ = self.resolver.deref(raw)
            details = [
                (k, v if isinstance(v, str) else _json_text(v))
                for k, v in scheme.items()
                if k not in ("type", "description", "flows")
            ]
            flows = []  # OAuth 2: (flow, its URLs, its scopes)
            for flow_name, raw_flow in _as_dict(scheme.get("flows")).items():
                flow = _as_dict(raw_flow)
                scopes = _as_dict(flow.get("availableScopes") or flow.get("scopes"))
                flows.append(
                    (
                        str(flow_name),
                        [
                            (k, str(v))
                            for k, v in flow.items()
                            if k not in ("availableScopes", "scopes")
                            and isinstance(v, str | int | float)
                        ],
                        [(str(k), str(v)) for k, v in scopes.items()],
                    )
                )
            out.append(
                SecurityView(
                    key=str(key),
                    anchor=self.anchors.get("security", str(key)),
                    type=str(scheme.get("type", "?")),
                    description=scheme.get("description"),
                    details=details,
                    flows=flows,
                )
            )
        return out

    def _servers(self) -> list[ServerView]:
        out = []
        for key, raw in _as_dict(self.document.get("servers")).items():
            server, _ = self.resolver.deref(raw)
            protocol = str(server.get("protocol", ""))
            host = str(server.get("host", ""))
            pathname = str(server.get("pathname", ""))
            url = f"{protocol}://{host}{pathname}" if protocol else host + pathname
            out.append(
                ServerView(
                    key=str(key),
                    url=url,
                    protocol=protocol
                    + (f" {server['protocolVersion']}" if server.get("protocolVersion") else ""),
                    description=server.get("description"),
                    security=self._security_names(server.get("security")),
                )
            )
        return out

    # -- messages -----------------------------------------------------------------------------

    def _message(self, raw: Any, fallback_key: str) -> MessageView:
        message, pointer = self.resolver.deref(raw)
        key = pointer or fallback_key
        found = self._messages.get(key)
        if found is not None:
            return found
        name = str(
            message.get("name") or _ref_name(pointer) or fallback_key.rsplit("/", 1)[-1] or "?"
        )
        payload = self.trees.build(message["payload"]) if "payload" in message else None
        headers = self.trees.build(message["headers"]) if "headers" in message else None
        examples = []
        for i, example in enumerate(_list(message.get("examples"))):
            if not isinstance(example, Mapping):
                continue
            label = str(example.get("name") or example.get("summary") or f"example {i + 1}")
            if "payload" in example:
                examples.append((label, _pretty(example["payload"])))
            if "headers" in example:
                examples.append((label + " (headers)", _pretty(example["headers"])))
        view = MessageView(
            key=key,
            anchor=self.anchors.get("message", key.lstrip("#/")),
            name=name,
            title=message.get("title"),
            summary=message.get("summary"),
            description=_rest(message.get("description"), message.get("summary")),
            content_type=message.get("contentType") or self.default_content_type,
            payload=payload,
            headers=headers,
            examples=examples,
            wire_type=_wire_type(message, self.resolver),
            raw=message,
        )
        view.envelope = _is_envelope(message.get("payload"), self.resolver)
        view.body = _frame_body(payload) if view.envelope else payload
        self._messages[key] = view
        return view

    def _all_messages(self) -> list[MessageView]:
        components = _as_dict(_as_dict(self.document.get("components")).get("messages"))
        for key, raw in components.items():
            self._message(raw, f"#/components/messages/{_escape_pointer(str(key))}")
        return list(self._messages.values())

    # -- channels -----------------------------------------------------------------------------

    def _channels(self) -> dict[str, ChannelView]:
        out: dict[str, ChannelView] = {}
        for key, raw in _as_dict(self.document.get("channels")).items():
            channel, _ = self.resolver.deref(raw)
            pointer = f"#/channels/{_escape_pointer(str(key))}"
            params = []
            for pname, praw in _as_dict(channel.get("parameters")).items():
                param, _ = self.resolver.deref(praw)
                schema, _ = self.resolver.deref(param.get("x-asyncws-schema"))
                enum = _list(param.get("enum")) or _list(schema.get("enum"))
                params.append(
                    ParamView(
                        name=str(pname),
                        description=param.get("description"),
                        constraints=[
                            (k, str(schema[k]))
                            for k in _CONSTRAINT_KEYS
                            if isinstance(schema.get(k), str | int | float)
                        ],
                        enum=[str(v) for v in enum],
                        default=str(param["default"]) if "default" in param else None,
                        examples=[str(v) for v in _list(param.get("examples"))],
                        location=param.get("location"),
                    )
                )
            messages = [
                self._message(mraw, f"{pointer}/messages/{_escape_pointer(str(mkey))}")
                for mkey, mraw in _as_dict(channel.get("messages")).items()
            ]
            address = channel.get("address")
            kind = channel.get("x-asyncws-kind")
            is_topic = (
                kind == "topic"
                if isinstance(kind, str)
                else isinstance(address, str) and bool(address) and not address.startswith("/")
            )
            out[pointer] = ChannelView(
                key=str(key),
                anchor=self.anchors.get("channel", str(key)),
                address=address if isinstance(address, str) else None,
                title=channel.get("title"),
                summary=channel.get("summary"),
                description=channel.get("description"),
                params=params,
                messages=messages,
                is_topic=is_topic,
            )
        return out

    def _channel_for(self, raw: Any) -> ChannelView | None:
        if isinstance(raw, Mapping) and isinstance(raw.get("$ref"), str):
            return self.channels.get(raw["$ref"])
        return None

    def _endpoint_path(self) -> str | None:
        for channel in self.channels.values():
            raw, _ = self.resolver.deref(self.document["channels"][channel.key])
            if raw.get("x-asyncws-kind") == "endpoint" and channel.address:
                return channel.address
        for channel in self.channels.values():
            if channel.address and channel.address.startswith("/"):
                return channel.address
        for server in _as_dict(self.document.get("servers")).values():
            pathname = _as_dict(server).get("pathname")
            if isinstance(pathname, str) and pathname:
                return pathname
        return None

    def _handshake(self) -> list[HandshakeView]:
        """What the handshake takes: the ws bindings' ``query`` and ``headers`` of the
        endpoint channel (the one at the console's path, else the first with bindings)."""
        candidates = []
        for channel in self.channels.values():
            raw, _ = self.resolver.deref(self.document["channels"][channel.key])
            ws = _as_dict(_as_dict(raw.get("bindings")).get("ws"))
            if ws.get("query") is not None or ws.get("headers") is not None:
                candidates.append((channel.address == self.ws_path, ws))
        if not candidates:
            return []
        ws = sorted(candidates, key=lambda c: not c[0])[0][1]
        out: list[HandshakeView] = []
        for kind, key in (("query", "query"), ("header", "headers")):
            schema, _ = self.resolver.deref(ws.get(key))
            required = {str(r) for r in _list(schema.get("required"))}
            for name, prop in _as_dict(schema.get("properties")).items():
                target, _ = self.resolver.deref(prop)
                example = None
                for candidate in (
                    target.get("default"),
                    *_list(target.get("examples")),
                    *_list(target.get("enum")),
                ):
                    if isinstance(candidate, str | int | float) and not isinstance(candidate, bool):
                        example = str(candidate)
                        break
                constraints = [
                    (k, str(target[k]))
                    for k in ("type", "pattern", "minimum", "maximum", "minLength", "maxLength")
                    if isinstance(target.get(k), str | int | float)
                ]
                description = target.get("description")
                out.append(
                    HandshakeView(
                        kind=kind,
                        name=str(name),
                        required=str(name) in required,
                        description=description if isinstance(description, str) else None,
                        example=example,
                        constraints=constraints,
                    )
                )
        return out

    # -- operations ---------------------------------------------------------------------------

    def _operations(self) -> list[OperationView]:
        out = []
        hints = self._param_hints()
        for key, raw in _as_dict(self.document.get("operations")).items():
            op, _ = self.resolver.deref(raw)
            pointer = f"#/operations/{_escape_pointer(str(key))}"
            channel = self._channel_for(op.get("channel"))
            if "messages" in op:
                messages = [
                    self._message(m, f"{pointer}/messages/{i}")
                    for i, m in enumerate(_list(op.get("messages")))
                ]
            else:  # no list: every message of the channel
                messages = list(channel.messages) if channel else []
            reply, _ = self.resolver.deref(op.get("reply"))
            reply_channel = self._channel_for(reply.get("channel")) if reply else None
            reply_messages = [
                self._message(m, f"{pointer}/reply/messages/{i}")
                for i, m in enumerate(_list(reply.get("messages")))
            ]
            if reply and not reply_messages and reply_channel is not None:
                reply_messages = list(reply_channel.messages)
            reply_address, _ = self.resolver.deref(reply.get("address"))
            action = str(op.get("action", "?"))
            badge = {"send": "SEND", "receive": "RECEIVE"}.get(action, action.upper())
            if action == "receive" and reply and _answers_with_data(reply_messages):
                badge = "REQUEST"
            wire_type = None
            frame = None
            frame_shape = None
            event_frames: list[tuple[str, str]] = []
            if action == "receive" and (channel is None or not channel.is_topic):
                wire_type = _op_wire_type(str(key), op, messages, self.resolver)
                example_frame = self._frame(wire_type, messages, hints)
                frame = _pretty(example_frame)
                frame_shape = _frame_shape(example_frame)
            elif action == "send" and channel is not None and channel.is_topic:
                event_frames = [
                    (m.wire_type or m.name, _pretty(self._event_frame(channel, m, hints)))
                    for m in messages
                ]
            out.append(
                OperationView(
                    key=str(key),
                    anchor=self.anchors.get("op", str(key)),
                    action=action,
                    badge=badge,
                    title=None
                    if _same_text(op.get("title"), op.get("summary"))
                    else op.get("title"),
                    summary=op.get("summary"),
                    description=_rest(op.get("description"), op.get("summary")),
                    channel=channel,
                    messages=messages,
                    reply_messages=reply_messages,
                    reply_address=(
                        str(reply_address.get("location"))
                        if reply_address.get("location")
                        else None
                    ),
                    reply_channel=reply_channel,
                    tags=[self._tag(t)[0] for t in _list(op.get("tags"))],
                    security=self._security_names(op.get("security")),
                    wire_type=wire_type,
                    frame=frame,
                    frame_shape=frame_shape,
                    event_frames=event_frames,
                )
            )
        return out

    def _param_hints(self) -> dict[str, Any]:
        """A value per channel parameter name (its default, example or first enum value)."""
        hints: dict[str, Any] = {}
        for channel in self.channels.values():
            for param in channel.params:
                value = _param_value(param)
                if value is not None:
                    hints.setdefault(param.name, value)
        return hints

    def _event_frame(
        self, channel: ChannelView, message: MessageView, hints: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An example event frame of a topic: ``{"type", "topic", "data"}``."""
        topic = channel.address or ""
        for param in channel.params:
            value = _param_value(param)
            topic = topic.replace("{" + param.name + "}", value if value is not None else "x")
        example = _first_example(message.raw)
        if example is None:
            example = _synthesize(message.raw.get("payload"), self.resolver, hints)
        if message.envelope and isinstance(example, Mapping):
            return dict(example)
        return {"type": message.wire_type or message.name, "topic": topic, "data": example}

    def _frame(
        self, wire_type: str, messages: list[MessageView], hints: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An example client frame for an operation: ``{"type", "id", "data"}``."""
        frame: dict[str, Any] = {"type": wire_type, "id": 1}
        if not messages:
            return frame
        message = messages[0].raw
        example = _first_example(message)
        payload_schema = message.get("payload")
        if _is_envelope(payload_schema, self.resolver):
            envelope = example if isinstance(example, Mapping) else None
            if envelope is None:
                envelope = _synthesize(payload_schema, self.resolver, hints) or {}
            return {
                "type": wire_type,
                "id": 1,
                **{k: v for k, v in envelope.items() if k not in ("type", "id")},
            }
        if example is None and payload_schema is not None:
            example = _synthesize(payload_schema, self.resolver, hints)
        if example is not None or (
            payload_schema is not None and not _is_null_schema(payload_schema, self.resolver)
        ):
            frame["data"] = example
        return frame

    # -- schemas ------------------------------------------------------------------------------

    def _schemas(self) -> list[tuple[str, str, SchemaNode]]:
        schemas = _as_dict(_as_dict(self.document.get("components")).get("schemas"))
        out = []
        for key in schemas:
            ref = f"#/components/schemas/{_escape_pointer(str(key))}"
            node = self.trees.build({"$ref": ref})
            node.name, node.ref, node.ref_anchor = str(key), None, None
            out.append((str(key), self.anchors.get("schema", str(key)), node))
        return out

    # -- for the template and the console -----------------------------------------------------

    @property
    def requests(self) -> list[OperationView]:
        return [op for op in self.operations if op.action != "send"]

    @property
    def events(self) -> list[OperationView]:
        return [op for op in self.operations if op.action == "send"]

    @property
    def topics(self) -> list[ChannelView]:
        return [c for c in self.channels.values() if c.is_topic]

    def toc(self) -> Iterator[tuple[str, str, int, str | None]]:
        """(anchor, label, level, badge) entries of the table of contents."""
        yield "info", "Overview", 0, None
        if self.servers or self.security:
            yield "servers", "Servers & security", 0, None
        yield "console", "Live console", 0, None
        if self.operations:
            yield "operations", "Operations", 0, None
            for op in self.operations:
                yield op.anchor, op.key, 1, op.badge
        if self.channels:
            yield "channels", "Channels", 0, None
            for channel in self.channels.values():
                yield channel.anchor, channel.address or channel.key, 1, None
        if self.messages:
            yield "messages", "Messages", 0, None
            for message in self.messages:
                yield message.anchor, message.name, 1, None
        if self.schemas:
            yield "schemas", "Schemas", 0, None

    def console_data(self) -> dict[str, Any]:
        """What the console script needs (embedded as JSON, read with JSON.parse)."""
        security_query = ""
        for scheme in self.security:
            details = dict(scheme.details)
            if scheme.type == "httpApiKey" and details.get("in") == "query" and details.get("name"):
                security_query = f"?{details['name']}="
                break
        needed = [h for h in self.handshake if h.kind == "query" and (h.required or h.example)]
        if any(h.required for h in needed):
            security_query = "?" + "&".join(
                f"{_urlencode(h.name)}={_urlencode(h.example or '')}" for h in needed if h.required
            )
        servers = [s.url for s in self.servers]
        ack = _as_dict(_as_dict(self.document.get("components")).get("messages")).get("ack")
        ack_props = _as_dict(_as_dict(_as_dict(ack).get("payload")).get("properties"))
        return {
            "history": "recovered" in ack_props,  # topics with history: subscribe with since
            "title": self.title,
            "path": self.ws_path or "",
            "query": security_query,
            "handshake": [
                {"kind": h.kind, "name": h.name, "required": h.required, "example": h.example or ""}
                for h in self.handshake
            ],
            "servers": servers,
            "operations": [
                {
                    "id": op.key,
                    "type": op.wire_type,
                    "badge": op.badge,
                    "frame": op.frame,
                    "anchor": op.anchor,
                }
                for op in self.operations
                if op.frame is not None
            ],
            "topics": [
                {
                    "channel": c.key,
                    "address": c.address,
                    "anchor": c.anchor,
                    "params": [
                        {
                            "name": p.name,
                            "description": p.description or "",
                            "enum": p.enum,
                            "value": _param_value(p) or "",
                        }
                        for p in c.params
                    ],
                }
                for c in self.topics
            ],
            "events": {m.wire_type or m.name: m.anchor for c in self.topics for m in c.messages},
        }


def _urlencode(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
