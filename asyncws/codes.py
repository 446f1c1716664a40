"""Error codes (sent in error frames), close codes (sent when a connection ends) and the
frame types of asyncws's own frames.

All are part of the wire protocol: `docs/protocol.md` and `docs/reference/errors.md` list
the codes, and the generated AsyncAPI document describes them. Close codes follow RFC 6455
section 7.4.1.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["CloseCode", "ErrorCode", "FrameType"]


class FrameType(StrEnum):
    """The ``type`` of the frames of asyncws's envelope that are not an application's own
    (`docs/protocol.md`): the answers, which carry the ``id`` of the frame they answer, and
    the control frames a client sends. The generated clients take them from here."""

    ACK = "ack"
    REPLY = "reply"
    ERROR = "error"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    PUBLISH = "publish"
    PRESENCE = "presence"
    PRESENCE_STATS = "presence_stats"


class CloseCode(IntEnum):
    """WebSocket close codes asyncws uses (RFC 6455 section 7.4.1).

    asyncws closes with all but 1002, 1003 and 1012, which it names because the proxy relays
    them and the AsyncAPI document describes them. A code used before the handshake is
    accepted becomes an HTTP 403 (or 503, see `asyncws.handshake`), not a close frame.
    """

    NORMAL_CLOSURE = 1000  # also: idle timeout
    GOING_AWAY = 1001  # server shutting down
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008  # sustained abuse (bad frames, a flood), auth failure, origin
    MESSAGE_TOO_BIG = 1009  # frame over the configured maximum
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013  # slow consumer: the outgoing queue overflowed (also: capacity)
    BAD_GATEWAY = 1014  # proxy: the upstream failed
    TOKEN_EXPIRED = 4001  # the principal's credentials expired: authenticate and reconnect


class ErrorCode(StrEnum):
    """The ``code`` of an error frame: stable strings a client can switch on."""

    INVALID_JSON = "invalid_json"  # the frame is not JSON
    INVALID_FRAME = "invalid_frame"  # JSON, but not an object / wrong envelope field types
    UNSUPPORTED_DATA = "unsupported_data"  # a binary frame where text is expected
    UNKNOWN_TYPE = "unknown_type"  # no operation with that ``type``
    VALIDATION_ERROR = "validation_error"  # the payload does not match its model
    INVALID_TOPIC = "invalid_topic"  # bad syntax, over the length/depth limits
    UNKNOWN_TOPIC = "unknown_topic"  # not a declared topic
    FORBIDDEN = "forbidden"  # authorization refused
    NOT_FOUND = "not_found"  # what the frame names does not exist (HTTPException 404, 410)
    BAD_REQUEST = "bad_request"  # refused: an HTTPException 4xx with no closer code, a bad `since`
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    RATE_LIMITED = "rate_limited"
    BROKER_UNAVAILABLE = "broker_unavailable"  # the message could not be published
    INTERNAL_ERROR = "internal_error"  # a bug on the server; details are in its log
