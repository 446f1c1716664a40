"""The error policy: how asyncws answers what went wrong, decided in one place.

`decide` turns an exception into exactly one `Answer`:

* `ErrorFrame`: an error frame answers the client's frame and the connection stays open
  (a frame that was the client's fault costs it strikes; see `STRIKE_COST`);
* `Close`: the connection is closed with a code and a reason (after an error frame saying
  why, when there is one);
* `Deny`: at the handshake, before accept: an HTTP status (403 for "who are you?" and "not
  from there", 503 for "full" or "shutting down", through the ASGI denial-response
  extension; see `asyncws.handshake`).

============================  ==========================================================
raised                        answer
============================  ==========================================================
at the handshake              ``Deny(403)``: `AsyncWSError`, FastAPI's ``HTTPException`` and
                              ``WebSocketException``, a pydantic ``ValidationError`` are
                              refusals (logged as info); anything else is a bug (logged
                              with its traceback), refused the same way
`AsyncWSError`                an error frame with its code; in the frame loop a strike
                              unless the error is the server's (``broker_unavailable``,
                              ``internal_error``): a client is never closed for retrying
                              while Redis is down
``HTTPException``             an error frame mapped from its status (`from_http_exception`)
``WebSocketException``        an error frame mapped from its code, then a close with its
                              code and reason (FastAPI's way to say "close it")
anything else                 ``internal_error`` (the traceback goes to the log, nothing
                              to the client); the connection survives
============================  ==========================================================

The answers to events that are not exceptions (a flood, a slow consumer, shutting down, ...)
are the constants below, so every close code asyncws chooses is chosen here. `apply` carries
an answer out on an open connection and `deny` at a handshake; close reasons are cut to the
123 bytes of a close frame (`asyncws.protocol.close_reason`). Exception texts never reach
the client except as the client-safe ``message`` of an `AsyncWSError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.exceptions import WebSocketException as StarletteWebSocketException
from starlette.websockets import WebSocket

from .codes import CloseCode, ErrorCode
from .exceptions import AsyncWSError, from_http_exception, from_websocket_exception
from .handshake import refuse

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "ABUSE",
    "FLOOD",
    "FRAME_TOO_BIG",
    "GOING_AWAY",
    "HANDSHAKE_TIMEOUT",
    "IDLE",
    "INTERNAL",
    "OPEN_FAILED",
    "ORIGIN_REFUSED",
    "OVER_CAPACITY",
    "SHUTTING_DOWN",
    "SLOW_CONSUMER",
    "STRIKE_COST",
    "STRIKE_LIMIT",
    "TOKEN_EXPIRED",
    "USER_OVER_CAPACITY",
    "Answer",
    "Close",
    "Deny",
    "ErrorFrame",
    "Where",
    "apply",
    "decide",
    "deny",
]

logger = logging.getLogger("asyncws.errors")


class Where(Enum):
    """Where an exception was raised: it decides what the answer may be."""

    HANDSHAKE = "handshake"  # before accept: authenticate, on_connect hooks
    FRAME = "frame"  # decoding or dispatching a client frame (the endpoint loop, the seed)
    OPERATION = "operation"  # a handler or hook, after the exception handlers declined it


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """Answer with an error frame for ``error``; the connection stays open."""

    error: AsyncWSError
    strike: bool = False  # the client's fault: it counts toward closing an abusive client


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with ``code`` and ``reason`` (after ``error``'s frame, if any)."""

    code: int
    reason: str
    error: AsyncWSError | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    """Refuse a handshake with HTTP ``status``; ``code`` closes it before accept where the
    server has no denial responses (every ASGI server answers that with 403)."""

    status: int
    code: int
    reason: str = ""


Answer = ErrorFrame | Close | Deny

#: Strikes a rejected client frame costs; each good frame takes one back, so a client that
#: sends more bad frames than good ones ends up closed. Past `STRIKE_LIMIT` (the 21st bad
#: frame in a row) the connection is closed with `ABUSE` (1008).
STRIKE_COST = 2
STRIKE_LIMIT = 40

INTERNAL = AsyncWSError("internal error")

# -- the answers to events that are not exceptions --------------------------------------------

ORIGIN_REFUSED = Deny(403, CloseCode.POLICY_VIOLATION, "origin not allowed")
USER_OVER_CAPACITY = Deny(403, CloseCode.POLICY_VIOLATION, "too many connections for this user")
OVER_CAPACITY = Deny(503, CloseCode.TRY_AGAIN_LATER, "too many connections")
SHUTTING_DOWN = Deny(503, CloseCode.TRY_AGAIN_LATER, "shutting down")
HANDSHAKE_TIMEOUT = Deny(403, CloseCode.TRY_AGAIN_LATER, "handshake timed out")
IDLE = Close(CloseCode.NORMAL_CLOSURE, "idle timeout")
FLOOD = Close(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
ABUSE = Close(CloseCode.POLICY_VIOLATION, "too many invalid frames")
SLOW_CONSUMER = Close(CloseCode.TRY_AGAIN_LATER, "slow consumer")
FRAME_TOO_BIG = Close(CloseCode.MESSAGE_TOO_BIG, "frame too big")
TOKEN_EXPIRED = Close(CloseCode.TOKEN_EXPIRED, "token expired")
GOING_AWAY = Close(CloseCode.GOING_AWAY, "server shutting down")
OPEN_FAILED = Close(CloseCode.INTERNAL_ERROR, "internal error")

_REFUSED = Deny(403, CloseCode.POLICY_VIOLATION)
_HANDSHAKE_FAILED = Deny(403, CloseCode.INTERNAL_ERROR)
_SERVER_SIDE = frozenset({ErrorCode.BROKER_UNAVAILABLE, ErrorCode.INTERNAL_ERROR})
_REFUSALS = (
    AsyncWSError,
    StarletteWebSocketException,
    StarletteHTTPException,
    PydanticValidationError,
)


def decide(exc: BaseException, where: Where, what: str = "") -> Answer:
    """The one answer to ``exc`` raised ``where`` (``what``: the operation, for the log)."""
    if where is Where.HANDSHAKE:
        if isinstance(exc, _REFUSALS):
            logger.info("handshake refused: %s", getattr(exc, "message", exc))
            return _REFUSED
        logger.error("handshake failed", exc_info=exc)
        return _HANDSHAKE_FAILED
    if isinstance(exc, AsyncWSError):
        return ErrorFrame(exc, strike=where is Where.FRAME and exc.code not in _SERVER_SIDE)
    if isinstance(exc, StarletteHTTPException):  # FastAPI code raises them everywhere
        logger.info(
            "%s %d in %s: %s", type(exc).__name__, exc.status_code, what or where.value, exc.detail
        )
        return ErrorFrame(from_http_exception(exc.status_code, exc.detail))
    if isinstance(exc, StarletteWebSocketException):  # FastAPI's way to say "close it"
        logger.info(
            "closing with %d for %s in %s: %s",
            exc.code,
            type(exc).__name__,
            what or where.value,
            exc.reason,
        )
        # the client learns why (an error frame answering its frame), then the close
        return Close(exc.code, exc.reason or "", from_websocket_exception(exc.code, exc.reason))
    logger.error("unhandled %s in %s", type(exc).__name__, what or where.value, exc_info=exc)
    return ErrorFrame(INTERNAL)


async def apply(
    conn: Connection,
    answer: Answer,
    error_frame: Callable[[AsyncWSError, Any], str | None],
    correlation: Any = None,
) -> bool:
    """Carry ``answer`` out on an accepted connection; False when the connection was closed.

    ``error_frame(error, correlation)`` builds the error frame in the connection's framing
    (`Framing.error`, `asyncws.protocol.error_frame_for`); None: nothing is sent.
    """
    if isinstance(answer, Deny):
        raise RuntimeError(f"{answer!r} answers a handshake, not an open connection")
    if answer.error is not None:
        text = error_frame(answer.error, correlation)
        if text:
            conn.send_text_nowait(text)
    if isinstance(answer, Close):
        await conn.close(answer.code, answer.reason)
        return False
    if answer.strike and conn.strike(STRIKE_COST) > STRIKE_LIMIT:
        logger.warning("connection %s: too many bad frames; closing with 1008", conn.id)
        await conn.close(ABUSE.code, ABUSE.reason)
        return False
    return True


async def deny(websocket: WebSocket, answer: Answer) -> None:
    """Refuse the handshake of ``websocket`` (not accepted yet) as ``answer`` says."""
    if isinstance(answer, Deny):
        await refuse(websocket, answer.status, answer.code, answer.reason)
    elif isinstance(answer, Close):
        await refuse(websocket, 403, answer.code, answer.reason)
    else:
        await refuse(websocket, 403, CloseCode.POLICY_VIOLATION)
