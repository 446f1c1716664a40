"""Dispatch of one client frame in an `AsyncWS` app: control frames and operations.

`handle_frame` validates a frame (one pass, from its JSON text) and acts on it: ``subscribe``
(with the topic's ``authorize`` hook, history recovery and presence), ``unsubscribe``,
``publish`` (a cached route per concrete topic), ``presence``/``presence_stats`` requests, or
an operation (`asyncws.calls`). It raises the `AsyncWSError` whose error frame answers the
frame; the endpoint loop (`asyncws.endpoint`) decides what that costs the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from .calls import call, handle_exception, require_scopes, send_frame
from .codes import ErrorCode
from .compiled import PublishRoute
from .connection import Connection
from .dependencies import Resolver
from .exceptions import (
    AsyncWSError,
    ForbiddenError,
    InvalidTopicError,
    PayloadValidationError,
    ProtocolError,
    UnknownTopicError,
)
from .frames import PublishFrame, SubscribeFrame, field_errors
from .history import Position, parse_since
from .presence import PresenceError
from .routing import Topic, check_authorize
from .topics import is_pattern, validate_pattern, validate_topic

if TYPE_CHECKING:
    from .app import AsyncWS

__all__ = ["find_topic", "handle_frame", "may_subscribe", "require_scopes"]


async def handle_frame(app: AsyncWS, conn: Connection, text: str | None) -> None:
    """Handle one client frame; raises `AsyncWSError` for the error frame to answer."""
    compiled = app._compiled or app.compile()
    counts = app.manager.frames_in  # for metrics
    if text is None:
        counts["invalid"] = counts.get("invalid", 0) + 1
        raise ProtocolError(
            "binary frames are not supported; send JSON text", code=ErrorCode.UNSUPPORTED_DATA
        )
    try:
        frame = compiled.frames.validate(text)
    except AsyncWSError:
        counts["invalid"] = counts.get("invalid", 0) + 1
        raise
    kind = frame.type
    counts[kind] = counts.get(kind, 0) + 1
    if not app.framing.controls:
        await call(app, conn, compiled.operations[kind], frame)
    elif kind == "subscribe":
        await _subscribe(app, conn, frame)
    elif kind == "unsubscribe":
        pattern = validate_pattern(frame.topic, app.manager.topic_limits)
        await app.manager.unsubscribe(conn, pattern)  # (it leaves presence too)
        send_frame(conn, app.framing.ack(frame))
    elif kind == "publish":
        await _client_publish(app, conn, frame)
    elif kind == "presence" or kind == "presence_stats":
        await _presence_request(app, conn, frame)
    else:
        await call(app, conn, compiled.operations[kind], frame)


async def _subscribe(app: AsyncWS, conn: Connection, frame: SubscribeFrame) -> None:
    pattern = validate_pattern(frame.topic, app.manager.topic_limits)
    find_topic(app, pattern)  # a declared topic must cover it
    if not await may_subscribe(app, conn, pattern, frame.id):
        return
    # A concrete topic with presence: manager.subscribe joins it, and its join is published
    # before the ack (so the subscriber's instance delivers the join first).
    if frame.since is not None or (app._has_history and _history_topic(app, pattern) is not None):
        await _subscribe_history(app, conn, frame, pattern)  # it answers the frame
        return
    await app.manager.subscribe(conn, pattern)
    send_frame(conn, app.framing.ack(frame))


async def _presence_request(app: AsyncWS, conn: Connection, frame: Any) -> None:
    """``presence`` / ``presence_stats``: answered like an operation (see
    `asyncws.presence`); who may subscribe to the topic may ask."""
    pattern = validate_pattern(frame.topic, app.manager.topic_limits)
    if is_pattern(pattern):
        raise InvalidTopicError("presence needs a concrete topic, not a pattern")
    topic, _ = find_topic(app, pattern)
    policy = topic.presence_policy
    if policy is None:
        raise PresenceError("this topic has no presence")
    if not await may_subscribe(app, conn, pattern, frame.id):
        return
    data = await app.presence.request(frame.type, pattern, policy)
    for text in app.framing.replies(frame, data):
        conn.send_text_nowait(text)


async def may_subscribe(app: AsyncWS, conn: Connection, pattern: str, frame_id: Any) -> bool:
    """Whether ``conn`` may subscribe to ``pattern``: raises `ForbiddenError`, or answers
    a failing ``authorize`` hook through the exception handlers and returns False."""
    # ... and every topic it would receive messages of must allow it: `rooms/#` also
    # reaches `rooms/{room}/secret`, `u/+` also reaches a fixed `u/admin`.
    for topic in app.topics:
        values = topic.template.reaches(pattern)
        if values is None:
            continue
        require_scopes(app, conn, topic.subscribe_scopes)
        if topic.authorize_dependant is None:
            continue
        typed = {
            name: None if raw is None else topic.params[name].adapter.validate_strings(raw)
            for name, raw in values.items()
        }
        resolver = Resolver(
            conn,
            None,
            extra={**typed, "topic": pattern, "pattern": pattern},
            path_params=dict(conn.websocket.path_params),
        )
        try:
            check_authorize(await resolver.run(topic.authorize_dependant), topic)
        except AsyncWSError:
            raise
        except Exception as exc:  # the hook failed: the app's exception handlers decide
            await handle_exception(app, conn, None, exc, frame_id)
            return False
        finally:
            await resolver.aclose()
    return True


def _history_topic(app: AsyncWS, pattern: str) -> Topic[Any] | None:
    """The history topic of a concrete address (None for a pattern or a plain topic)."""
    if is_pattern(pattern):
        return None
    for topic in app.topics:
        if topic.history is not None and topic.template.covers(pattern) is not None:
            return topic
    return None


async def _subscribe_history(app: AsyncWS, conn: Connection, frame: Any, pattern: str) -> None:
    """Subscribe with the topic's position in the ack and, with ``since``, recovery
    (`asyncws.history`): bad ``since`` or none to honour it with is an error frame."""
    since = parse_since(frame.since)
    topic = _history_topic(app, pattern)
    if topic is None or topic.history is None:
        if is_pattern(pattern):
            raise ProtocolError(
                "'since' needs a concrete topic, not a wildcard", code=ErrorCode.BAD_REQUEST
            )
        raise ProtocolError("'since' on a topic that keeps no history", code=ErrorCode.BAD_REQUEST)
    framing = app.framing
    app.manager.history.framing = framing

    def ack(recovered: bool | None, position: Position) -> None:
        send_frame(conn, framing.subscribed(frame, recovered, position.offset, position.epoch))

    await app.manager.history.subscribe(conn, pattern, topic.history, since, ack)


def find_topic(app: AsyncWS, pattern: str) -> tuple[Topic[Any], dict[str, str | None]]:
    for topic in app.topics:
        values = topic.template.covers(pattern)
        if values is not None:
            return topic, values
    raise UnknownTopicError("no such topic (or wildcards where the topic does not allow them)")


async def _client_publish(app: AsyncWS, conn: Connection, frame: PublishFrame) -> None:
    compiled = app._compiled or app.compile()
    route = compiled.publish_routes.get(frame.topic)
    if route is None:
        route = _publish_route(app, frame.topic)
        compiled.remember(frame.topic, route)
    if route.scopes:
        require_scopes(app, conn, route.scopes)
    try:
        model = route.validate(frame.data)
    except PydanticValidationError as exc:
        raise PayloadValidationError(
            "invalid message for this topic", errors=field_errors(exc.errors(), 0)
        ) from None
    # validated just above: encode it as it is (Topic.encode would validate it again);
    # the topic was validated when its route was built
    text = route.frame(model)
    app.manager.charge(conn, 1, text)
    history = route.topic.history
    if history is not None:
        await app.manager.history.publish(route.concrete, text, history)
    else:
        await app.manager.publish_valid(route.concrete, text)
    send_frame(conn, app.framing.ack(frame))


def _publish_route(app: AsyncWS, address: str) -> PublishRoute:
    """Validate a concrete topic and resolve what a client publish to it needs.

    Raises the error a client gets (invalid topic, unknown topic, not client-publishable).
    """
    concrete = validate_topic(address, app.manager.topic_limits)
    topic, _ = find_topic(app, concrete)
    scopes: list[str] = []
    # every topic the address belongs to must allow it (their subscribers receive it)
    for other in app.topics:
        if other is topic or other.template.covers(concrete) is not None:
            if not other.client_publish:
                raise ForbiddenError("clients may not publish to this topic")
            scopes.extend(s for s in other.publish_scopes if s not in scopes)
    return PublishRoute(concrete, topic, tuple(scopes), app.framing)
