"""The channels of the document: the websocket endpoint and one per topic.

A topic channel's address is its template (``rooms/{room}``); `topic_regex` is the pattern
of its concrete topics and `subscription_regex` of what a client may subscribe to (``+`` in
parameter levels, ``#`` last). `parameter` describes an address parameter, `topic_channel`
and `endpoint_channel` assemble the channel objects (the endpoint's carries every frame that
is not a topic event, its handshake bindings and the close codes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .bindings import handshake_bindings
from .examples import MISSING, example_for, string_for
from .keys import join, key, prune, tags
from .model import CLOSE_CODES, AppDescription, ParamDescription, TopicDescription

__all__ = [
    "ENDPOINT_CHANNEL",
    "ENDPOINT_REF",
    "endpoint_channel",
    "parameter",
    "subscription_regex",
    "topic_channel",
    "topic_example",
    "topic_regex",
]

ENDPOINT_CHANNEL = "endpoint"
ENDPOINT_REF = f"#/channels/{ENDPOINT_CHANNEL}"


def _regex_escape(text: str) -> str:
    """Escape for an ECMAScript pattern in unicode mode (which forbids needless escapes)."""
    return "".join("\\" + c if c in "\\^$.*+?()[]{}|/" else c for c in text)


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


def topic_example(topic: TopicDescription) -> str:
    """A concrete topic of ``topic`` for the examples (a parameter's first enum value or an
    example of its schema)."""
    values: dict[str, str] = {}
    for p in topic.params:
        if p.enum:
            values[p.name] = p.enum[0]
        else:
            value = string_for(p.schema)
            values[p.name] = value if isinstance(value, str) else p.name
    return "/".join(lv if isinstance(lv, str) else values[lv.name] for lv in topic.levels())


def topic_channel(topic: TopicDescription, messages: dict[str, Any]) -> dict[str, Any]:
    """The channel of a topic, with its events (``messages``: references by key)."""
    channel: dict[str, Any] = {
        "address": topic.address,
        "title": topic.title,
        "summary": topic.summary,
        "description": _topic_description(topic),
        "messages": messages,
        "parameters": {p.name: parameter(p) for p in topic.params},
        "tags": tags(topic.tags),
    }
    return prune(channel)


def _topic_description(topic: TopicDescription) -> str:
    parts = [topic.description] if topic.description else []
    parts.append(
        f"Events of this topic arrive on the `{ENDPOINT_CHANNEL}` connection after a "
        f"`subscribe` (operation `{join('subscribe', key(topic.id))}`)."
    )
    if topic.client_publish:
        parts.append(f"Clients may publish to it (operation `{join('publish', key(topic.id))}`).")
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


def parameter(param: ParamDescription) -> dict[str, Any]:
    """The parameter object of an address parameter: its constraints in words, an example,
    and ``x-asyncws-schema`` (its schema beyond a plain string)."""
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


def endpoint_channel(desc: AppDescription, messages: dict[str, Any]) -> dict[str, Any]:
    """The channel of the websocket endpoint: every frame that is not a topic event
    (``messages``), the handshake's bindings and the close codes."""
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
        "messages": dict(messages),
    }
    if desc.path_params:
        channel["parameters"] = {
            name: {"description": f"The `{name}` path parameter of the endpoint."}
            for name in desc.path_params
        }
    bindings = handshake_bindings(desc)
    if bindings is not None:
        channel["bindings"] = bindings
    channel["x-asyncws-close-codes"] = {
        str(int(c)): {"name": c.name, "description": text} for c, text in CLOSE_CODES.items()
    }
    return channel
