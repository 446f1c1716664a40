"""Exceptions raised by asyncws.

Hierarchy::

    AsyncWSError                     base of asyncws's own errors; carries an ErrorCode
                                     (mistakes in declarations are TypeError/ValueError)
    ├── ProtocolError                a frame that does not follow the wire protocol
    │   └── UnknownTypeError         no operation for the frame's ``type``
    ├── PayloadValidationError       a payload that does not match its model (field errors)
    ├── InvalidTopicError            a topic or pattern with bad syntax or over the limits
    │   │                            (also a ValueError)
    │   └── UnknownTopicError        a topic that is not declared
    ├── ForbiddenError               authorization refused
    ├── NotFoundError                what the frame names does not exist
    ├── TooManySubscriptionsError
    ├── RateLimitedError
    ├── BrokerError                  the broker could not take a message (publish failed)
    ├── PresenceError                a presence request on a topic without presence
    │                                (asyncws.presence)
    ├── WebSocketException           the seed's base: carries the ``connection``
    │   ├── InvalidSubscription
    │   └── InvalidSubscriptionMessage
    └── UsageError                   asyncws used in a way that cannot work; never a wire
        │                            error (its text is for the developer, not the client)
        ├── SpecError                an AsyncAPI document that cannot be served or called
        │   │                        (asyncws.asyncapi.reader; also a ValueError)
        │   └── SpecError            ... or that the handlers do not match
        │                            (asyncws.spec_first)
        ├── CodegenError             a document no client can be generated from
        │                            (asyncws.codegen; also a ValueError)
        └── CLIError                 a bad ``asyncws`` command line (exit status 2)

Outside it: `asyncws.auth.WebSocketAuthError` is Starlette's ``WebSocketException`` (its
``code`` is the close code, 1008): Starlette and FastAPI close the websocket with it (HTTP 403
before accept), and asyncws answers it like every ``WebSocketException`` from FastAPI code
(an error frame, then the close; see `from_websocket_exception`), not like an `AsyncWSError`
(whose ``code`` is an `ErrorCode` and which leaves the connection open).

An `AsyncWSError` raised while a frame is handled becomes an error frame (``code``, ``message``,
``errors``, the frame's ``id``); the connection stays open (though a client that keeps sending
frames the framework rejects is closed with 1008, see docs/protocol.md). Any other exception becomes an
``internal_error`` frame without details, and its traceback goes to the log, except for the
exceptions FastAPI code raises: `from_http_exception` and `from_websocket_exception` turn
``HTTPException`` and ``WebSocketException`` into error frames (docs/reference/errors.md).
A `UsageError` that escapes a handler is answered like a bug, ``internal_error`` without its
text.
"""

from __future__ import annotations

from http import HTTPStatus
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
    "NotFoundError",
    "PayloadValidationError",
    "ProtocolError",
    "RateLimitedError",
    "TooManySubscriptionsError",
    "UnknownTopicError",
    "UnknownTypeError",
    "UsageError",
    "WebSocketException",
    "from_http_exception",
    "from_websocket_exception",
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


class NotFoundError(AsyncWSError):
    code = ErrorCode.NOT_FOUND


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


class UsageError(AsyncWSError):
    """asyncws used in a way that cannot work: a document, a generator input, a command
    line. Raised while setting up, never to answer a frame: ``str(exc)`` says what is wrong
    and is meant for the developer; ``message`` (what a client would see if one escaped a
    handler) is only ``"internal error"``."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.message = "internal error"


class _Mapped(AsyncWSError):
    """An error frame for an exception from FastAPI code: the code is per instance."""

    def __init__(
        self, code: ErrorCode, message: str, *, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, errors=errors)
        self.code = code  # type: ignore[misc]


_BY_STATUS: dict[int, ErrorCode] = {
    401: ErrorCode.FORBIDDEN,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    410: ErrorCode.NOT_FOUND,
    422: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.RATE_LIMITED,
}
_BY_CLOSE_CODE: dict[int, ErrorCode] = {
    1003: ErrorCode.UNSUPPORTED_DATA,
    1011: ErrorCode.INTERNAL_ERROR,
    1013: ErrorCode.RATE_LIMITED,
}
_MAX_MESSAGE = 500


def _status_code(status: int) -> ErrorCode:
    found = _BY_STATUS.get(status)
    if found is not None:
        return found
    return ErrorCode.BAD_REQUEST if 400 <= status < 500 else ErrorCode.INTERNAL_ERROR


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _field_errors(detail: Any) -> list[dict[str, Any]] | None:
    """FastAPI's 422 ``detail`` (a list of ``{"loc", "msg", "type"}``) as error-frame errors."""
    if not isinstance(detail, list):
        return None
    out: list[dict[str, Any]] = []
    for item in detail[:50]:
        if isinstance(item, dict) and isinstance(item.get("msg"), str):
            loc = item.get("loc", [])
            out.append(
                {
                    "loc": [p for p in loc if isinstance(p, str | int)]
                    if isinstance(loc, list | tuple)
                    else [],
                    "msg": item["msg"],
                    "type": str(item.get("type", "value_error")),
                }
            )
    return out or None


def from_http_exception(status_code: int, detail: Any = None) -> AsyncWSError:
    """The error frame for an ``HTTPException(status_code, detail)`` raised while a frame is
    handled (FastAPI code raises them everywhere).

    401 and 403 are ``forbidden``, 404 and 410 ``not_found``, 422 ``validation_error``, 429
    ``rate_limited``, any other 4xx ``bad_request`` and 5xx ``internal_error``. The message is
    ``detail`` when it is a string (FastAPI shows it to HTTP clients too), else the status's
    phrase; a 422 ``detail`` list of ``{"loc", "msg", "type"}`` becomes ``errors``.
    """
    code = _status_code(status_code)
    message = detail if isinstance(detail, str) and detail else _phrase(status_code)
    errors = _field_errors(detail) if code is ErrorCode.VALIDATION_ERROR else None
    return _Mapped(code, message[:_MAX_MESSAGE], errors=errors)


def from_websocket_exception(close_code: int, reason: str | None = None) -> AsyncWSError:
    """The error frame sent before closing for a ``WebSocketException(code, reason)``.

    1003 is ``unsupported_data``, 1011 ``internal_error``, 1013 ``rate_limited``; any other
    close code (1008, the policy violation FastAPI's security helpers use, or an application
    code 4000-4999) is ``forbidden``. The message is the reason, else ``"closed with CODE"``.
    """
    code = _BY_CLOSE_CODE.get(close_code, ErrorCode.FORBIDDEN)
    return _Mapped(code, (reason or f"closed with {close_code}")[:_MAX_MESSAGE])
