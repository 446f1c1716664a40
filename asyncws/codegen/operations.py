"""The requests and topics of a client, read from a document's operations.

``receive`` operations on the endpoint channel are what a client sends. Those in asyncws's
envelope that are control frames are not methods of their own: ``subscribe`` and
``unsubscribe`` are the subscription API (their ``x-asyncws-topic`` says whose scopes they
carry), ``publish`` becomes the publishing method of its topic, ``presence`` and
``presence_stats`` the presence methods. Every other one is a request (`OperationDescription`)
with the type of its ``data`` and of its reply's ``data`` (None when the answer is ``ack``).

``send`` operations are the topics: each channel with an address is one
(`TopicDescription`), its messages the events; a topic's short name comes from the fixed
levels of its address (``rooms/{room}/typing`` -> ``rooms_typing``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .document import Document, Frame, text_of
from .model import EventDescription, OperationDescription, TopicDescription, template_parts
from .names import Names, pascal, snake, words
from .schemas import SchemaReader
from .typetree import AnyNode, TypeNode, union

__all__ = ["ANSWER_TYPES", "Requests", "read_requests", "read_topics"]

#: The frame types that answer a request (never a request of their own).
ANSWER_TYPES = frozenset({"ack", "error"})


@dataclass
class Requests:
    """What the receive operations say: the requests, and per topic (channel id, from
    ``x-asyncws-topic``) who may publish, the scopes of a subscribe, and presence."""

    operations: list[OperationDescription] = field(default_factory=list)
    #: topic -> (operation id, the type of its data, scopes)
    publish: dict[str, tuple[str, TypeNode | None, tuple[str, ...]]] = field(default_factory=dict)
    subscribe_scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    presence: set[str] = field(default_factory=set)


def read_requests(document: Document, schemas: SchemaReader, endpoint: str) -> Requests:
    """The requests of the ``receive`` operations (all on the ``endpoint`` channel)."""
    found = Requests()
    for op_id, op in document.operations():
        if op.get("action") != "receive":
            continue
        frame = _request_frame(document, op_id, op, endpoint)
        if frame is None or _control(document, schemas, op_id, op, frame, found):
            continue
        frame_type = frame[1]
        if frame_type in ANSWER_TYPES or frame_type == "reply":
            document.warn(
                f"operation {op_id!r} uses the reserved frame type {frame_type!r}: left out"
            )
            continue
        found.operations.append(_operation(document, schemas, op_id, op, frame))
    return found


def _request_frame(
    document: Document, op_id: str, op: Mapping[str, Any], endpoint: str
) -> Frame | None:
    """The one frame an operation's client sends (else a warning: it is left out)."""
    channel = document.channel(endpoint)
    refs = document.message_refs(op, channel)
    frames = [document.frame(ref, f"operation {op_id!r}") for ref in refs]
    usable = [f for f in frames if f is not None]
    if len(usable) != len(frames):
        document.warn(f"operation {op_id!r} is left out: its message cannot be used")
        return None
    if len(usable) != 1:
        document.warn(
            f"operation {op_id!r} is left out: it has {len(usable)} messages (a request "
            "is one frame type)"
        )
        return None
    return usable[0]


def _control(
    document: Document,
    schemas: SchemaReader,
    op_id: str,
    op: Mapping[str, Any],
    frame: Frame,
    found: Requests,
) -> bool:
    """Note a control frame of asyncws's envelope in ``found``; False for a request."""
    _, frame_type, data, _, _ = frame
    topic = op.get("x-asyncws-topic")
    if op.get("x-asyncws-presence") in ("presence", "presence_stats"):
        if isinstance(topic, str):
            found.presence.add(topic)
        return True  # the topic's presence methods cover them
    if frame_type in ("subscribe", "unsubscribe"):
        if frame_type == "subscribe" and isinstance(topic, str):
            found.subscribe_scopes[topic] = _scopes(op)
        return True  # the subscription API covers them
    if frame_type != "publish":
        return False
    if not isinstance(topic, str):
        document.warn(
            f"operation {op_id!r} publishes but names no topic (x-asyncws-topic): left out"
        )
        return True
    node = (
        schemas.payload(data, f"{topic}Publish", f"operation {op_id!r}")
        if data is not None
        else None
    )
    found.publish[topic] = (op_id, node, _scopes(op))
    return True


def _operation(
    document: Document, schemas: SchemaReader, op_id: str, op: Mapping[str, Any], frame: Frame
) -> OperationDescription:
    key, frame_type, data, data_required, message = frame
    payload = (
        schemas.payload(data, key, f"operation {op_id!r} payload") if data is not None else None
    )
    replies = [a for a in document.answers(op, op_id) if a[1] not in ANSWER_TYPES]
    reply: TypeNode | None = None
    reply_description: str | None = None
    if replies:
        nodes = [
            schemas.payload(d, k, f"operation {op_id!r} reply") if d is not None else AnyNode()
            for k, _, d, _ in replies
        ]
        reply = nodes[0] if len(nodes) == 1 else union(nodes)
        reply_description = document.message_description(replies[0][0])
    return OperationDescription(
        id=op_id,
        frame_type=frame_type,
        summary=text_of(op.get("summary")) or text_of(message.get("summary")),
        description=text_of(op.get("description")) or text_of(message.get("description")),
        payload=payload,
        payload_required=data_required,
        reply=reply,
        reply_description=reply_description,
        scopes=_scopes(op),
        deprecated=op.get("deprecated") is True,
    )


# -- topics -----------------------------------------------------------------------------------

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


def read_topics(
    document: Document, schemas: SchemaReader, endpoint: str, requests: Requests
) -> list[TopicDescription]:
    """The topics: the channels of the ``send`` operations (other than the endpoint)."""
    topics: list[TopicDescription] = []
    seen: set[str] = set()
    pending: list[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]] = []
    for op_id, op in document.operations():
        if op.get("action") != "send":
            continue
        key = document.channel_key(op.get("channel"), f"operation {op_id!r}")
        if key is None or key in seen:
            continue
        if key == endpoint:
            document.warn(
                f"send operation {op_id!r} uses the endpoint channel: events outside "
                "topics cannot be subscribed to, left out"
            )
            continue
        channel = document.channel(key)
        address = channel.get("address")
        if not isinstance(address, str) or not address:
            document.warn(f"send operation {op_id!r}: channel {key!r} has no address, left out")
            continue
        seen.add(key)
        pending.append((op_id, key, op, channel))
    names = _topic_names([(k, c["address"]) for _, k, _, c in pending])
    for _, key, op, channel in pending:
        topic = _topic(document, schemas, key, op, channel, names[key], requests)
        if topic is not None:
            topics.append(topic)
    for topic_key in requests.publish:
        if topic_key not in seen:
            document.warn(
                f"publishing to {topic_key!r}: no send operation has that channel, left out"
            )
    return topics


def _topic(
    document: Document,
    schemas: SchemaReader,
    key: str,
    op: Mapping[str, Any],
    channel: Mapping[str, Any],
    name: str,
    requests: Requests,
) -> TopicDescription | None:
    address = str(channel["address"])
    params = [
        document.param(p, channel, f"channel {key!r}")
        for p, is_param in template_parts(address)
        if is_param
    ]
    events = _events(document, schemas, key, op, channel, name)
    if not events:
        document.warn(f"topic {key!r} has no usable event: left out")
        return None
    union_name = schemas.names.take(f"{pascal(name)}Event") if len(events) > 1 else None
    pub = requests.publish.get(key)
    return TopicDescription(
        id=key,
        address=address,
        name=name,
        params=params,
        events=events,
        event_type=union_name or events[0].name,
        union_name=union_name,
        description=_topic_text(
            text_of(op.get("description")) or text_of(channel.get("description"))
        ),
        summary=text_of(op.get("summary")),
        publish=pub[1] if pub is not None else None,
        publish_operation=pub[0] if pub is not None else None,
        subscribe_scopes=requests.subscribe_scopes.get(key, ()),
        publish_scopes=tuple(pub[2]) if pub is not None else (),
        presence=key in requests.presence,
    )


def _events(
    document: Document,
    schemas: SchemaReader,
    key: str,
    op: Mapping[str, Any],
    channel: Mapping[str, Any],
    name: str,
) -> list[EventDescription]:
    """The events of a topic: one per frame type (an event's class is ``<Message>Event``)."""
    names: Names = schemas.names
    events: list[EventDescription] = []
    for i, ref in enumerate(document.message_refs(op, channel)):
        frame = document.frame(ref, f"topic {key!r} message {i}")
        if frame is None:
            continue
        msg_key, frame_type, data, _, message = frame
        if any(e.frame_type == frame_type for e in events):
            document.warn(f"topic {key!r}: two events have the type {frame_type!r}, one is kept")
            continue
        base = pascal(msg_key)
        event_name = names.take(
            f"{base}Event", f"{pascal(name)}{base}Event", f"{pascal(key)}{base}Event"
        )
        node = (
            schemas.payload(data, msg_key, f"topic {key!r} event {msg_key!r}")
            if data is not None
            else None
        )
        events.append(
            EventDescription(
                key=msg_key,
                frame_type=frame_type,
                name=event_name,
                data=node,
                description=text_of(message.get("description")) or text_of(message.get("summary")),
            )
        )
    return events


def _scopes(op: Mapping[str, Any]) -> tuple[str, ...]:
    scopes = op.get("x-asyncws-scopes")
    if isinstance(scopes, list):
        return tuple(str(s) for s in scopes)
    found: list[str] = []
    for item in op.get("security", []) or []:
        if isinstance(item, Mapping):
            found += [str(s) for s in item.get("scopes", []) or [] if str(s) not in found]
    return tuple(found)


def _topic_names(topics: list[tuple[str, str]]) -> dict[str, str]:
    """A short snake_case name per topic, from the fixed levels of its address
    (``rooms/{room}/typing`` -> ``rooms_typing``); the channel id where that is ambiguous."""
    short: dict[str, str] = {}
    for key, address in topics:
        fixed = [text for text, is_param in template_parts(address) if not is_param]
        short[key] = snake(" ".join(fixed)) if any(words(t) for t in fixed) else snake(key)
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    return {key: (name if counts[name] == 1 else snake(key)) for key, name in short.items()}
