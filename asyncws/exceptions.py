"""Exceptions raised by asyncws.

Hierarchy::

    AsyncWSError                     base of everything asyncws raises; carries an ErrorCode
    ├── ProtocolError                a frame that does not follow the wire protocol
    │   └── UnknownTypeError         no operation for the frame's ``type``
    ├── PayloadValidationError       a payload that does not match its model (field errors)
    ├── InvalidTopicError            a topic or pattern with bad syntax or over the limits
    │   └── UnknownTopicError        a topic that is not declared
    ├── ForbiddenError               authorization refused
    ├── TooManySubscriptionsError
    ├── RateLimitedError
    ├── BrokerError                  the broker could not take a message (publish failed)
    └── WebSocketException           the seed's base: carries the ``connection``
        ├── InvalidSubscription
        └── InvalidSubscriptionMessage

An `AsyncWSError` raised while a frame is handled becomes an error frame (``code``, ``message``,
``errors``, the frame's ``id``); the connection stays open. Any other exception becomes an
``internal_error`` frame without details, and its traceback goes to the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .codes import ErrorCode

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "AsyncWSError",
    "BrokerError",
    "ForbiddenError",
    "InvalidSubscription",
    "InvalidSubscriptionMessage",
    "InvalidTopicError",
    "PayloadValidationError",
    "ProtocolError",
    "RateLimitedError",
    "TooManySubscriptionsError",
    "UnknownTopicError",
    "UnknownTypeError",
    "WebSocketException",
]


class AsyncWSError(Exception):
    """Base class; ``code`` is the error frame's code, ``message`` is safe to show a client."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str = "", *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


class ProtocolError(AsyncWSError):
    code = ErrorCode.INVALID_FRAME

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, errors=errors)
        if code is not None:
            self.code = code  # type: ignore[misc]


class UnknownTypeError(ProtocolError):
    code = ErrorCode.UNKNOWN_TYPE


class PayloadValidationError(AsyncWSError):
    code = ErrorCode.VALIDATION_ERROR


class InvalidTopicError(AsyncWSError, ValueError):
    code = ErrorCode.INVALID_TOPIC


class UnknownTopicError(InvalidTopicError):
    code = ErrorCode.UNKNOWN_TOPIC


class ForbiddenError(AsyncWSError):
    code = ErrorCode.FORBIDDEN


class TooManySubscriptionsError(AsyncWSError):
    code = ErrorCode.TOO_MANY_SUBSCRIPTIONS


class RateLimitedError(AsyncWSError):
    code = ErrorCode.RATE_LIMITED


class BrokerError(AsyncWSError):
    code = ErrorCode.BROKER_UNAVAILABLE


class WebSocketException(AsyncWSError):
    """The seed's exception base: binds the `Connection` so a handler can answer it."""

    def __init__(self, message: str, *, connection: Connection | None = None) -> None:
        super().__init__(message)
        self.connection = connection


class InvalidSubscription(WebSocketException):
    """A subscription pattern with invalid syntax (seed name)."""

    code = ErrorCode.INVALID_TOPIC


class InvalidSubscriptionMessage(WebSocketException):
    """A subscription frame that is malformed or not subscribe/unsubscribe (seed name)."""

    code = ErrorCode.INVALID_FRAME
