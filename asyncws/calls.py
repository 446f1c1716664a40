"""Calling an operation's handler in an `AsyncWS` app, and answering it.

`call` resolves the handler's parameters (a flat call for handlers that take only their
payload, the connection or the websocket; the `Resolver` for dependencies), runs it, and
answers with the reply frames (validated against the operation's reply model) or an ack.
An exception goes through `handle_exception`: a router's exception handlers, then the app's,
then the built-in mapping.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.exceptions import WebSocketException as StarletteWebSocketException

from .connection import Connection
from .dependencies import Resolver
from .exceptions import AsyncWSError, ForbiddenError, from_http_exception, from_websocket_exception
from .routing import Operation

if TYPE_CHECKING:
    from .app import AsyncWS

__all__ = ["answer", "call", "handle_exception", "require_scopes", "send_frame"]

logger = logging.getLogger("asyncws.app")


async def call(app: AsyncWS, conn: Connection, op: Operation, frame: Any) -> None:
    require_scopes(app, conn, op.scopes)
    compiled = app._compiled or app.compile()
    flat = compiled.flat.get(op.type)
    if flat is not None:
        # A handler that takes only its payload, the connection or the websocket (no
        # dependencies, no `yield`): called directly, no Resolver (same semantics).
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for kind, positional, name in flat:
            value = (
                getattr(frame, "data", None)
                if kind == "payload"
                else conn
                if kind == "connection"
                else conn.websocket
            )
            if positional:
                args.append(value)
            else:
                kwargs[name] = value
        try:
            result = op.dependant.call(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            await handle_exception(app, conn, op, exc, frame.id)
            return
        answer(app, conn, op, result, frame)
        return
    ws = conn.websocket
    resolver = Resolver(
        conn, ws, payload=getattr(frame, "data", None), path_params=dict(ws.path_params)
    )
    try:
        try:
            before = app._compiled.dependencies.get(op.type) if app._compiled else None
            if before is not None:
                await resolver.run(before)
            result = await resolver.run(op.dependant)
        except Exception as exc:
            try:  # yield dependencies see the exception (rollback), then it is answered
                await resolver.aclose(exc)
            except Exception:
                logger.exception("a dependency's teardown failed in %r", op.type)
            await handle_exception(app, conn, op, exc, frame.id)
            return
        answer(app, conn, op, result, frame)
    finally:
        try:
            await resolver.aclose()
        except Exception:
            logger.exception("a dependency's teardown failed in %r", op.type)


def answer(app: AsyncWS, conn: Connection, op: Operation, result: Any, frame: Any) -> None:
    """The reply frames (validated against the operation's reply model) or the ack, in
    the connection's framing."""
    framing = app.framing_of(conn)
    adapter = op.reply_adapter
    if adapter is None:
        send_frame(conn, framing.ack(frame))
        return
    try:
        data = adapter.dump_json(adapter.validate_python(result), by_alias=True).decode()
    except Exception as exc:  # the handler broke its own contract: a server bug
        logger.error("operation %r returned an invalid reply", op.type, exc_info=exc)
        send_frame(conn, framing.error(AsyncWSError("internal error"), frame.id))
        return
    # asyncws framing: like acks, only a frame with an id is answered
    for text in framing.replies(frame, data):
        conn.send_text_nowait(text)


async def handle_exception(
    app: AsyncWS, conn: Connection, op: Operation | None, exc: Exception, id: Any
) -> None:
    framing = app.framing_of(conn)
    handler = None
    for router in op.routers if op is not None else ():
        handler = _lookup(router.exception_handlers, exc)
        if handler is not None:
            break
    if handler is None:
        handler = _lookup(app.exception_handlers, exc)
    if handler is not None:
        try:
            answer = handler(conn, exc)
            if inspect.isawaitable(answer):
                answer = await answer
        except AsyncWSError as raised:
            answer = raised
        except Exception:
            logger.exception("exception handler for %s failed", type(exc).__name__)
            answer = AsyncWSError("internal error")
        if answer is not None and not isinstance(answer, AsyncWSError):
            logger.error(
                "exception handler for %s returned %r; expected an AsyncWSError or None",
                type(exc).__name__,
                type(answer).__name__,
            )
            answer = AsyncWSError("internal error")
        if isinstance(answer, AsyncWSError):
            send_frame(conn, framing.error(answer, id))
        return
    if isinstance(exc, AsyncWSError):
        send_frame(conn, framing.error(exc, id))
        return
    if isinstance(exc, StarletteHTTPException):  # FastAPI code raises them everywhere
        logger.info(
            "%s %d in operation %r: %s",
            type(exc).__name__,
            exc.status_code,
            op.type if op else "?",
            exc.detail,
        )
        send_frame(conn, framing.error(from_http_exception(exc.status_code, exc.detail), id))
        return
    if isinstance(exc, StarletteWebSocketException):  # FastAPI's way to say "close it"
        logger.info(
            "connection %s closed with %d by %s: %s",
            conn.id,
            exc.code,
            type(exc).__name__,
            exc.reason,
        )
        # the client learns why (an error frame answering its frame), then the close
        send_frame(conn, framing.error(from_websocket_exception(exc.code, exc.reason), id))
        await conn.close(exc.code, exc.reason or "")
        return
    logger.error(
        "unhandled %s in operation %r", type(exc).__name__, op.type if op else "?", exc_info=exc
    )
    send_frame(conn, framing.error(AsyncWSError("internal error"), id))


def require_scopes(app: AsyncWS, conn: Connection, required: Sequence[str]) -> None:
    """`ForbiddenError` unless ``conn``'s principal has every scope in ``required``."""
    if not required:
        return
    granted = set(app.scopes_of(conn.principal))
    missing = [s for s in required if s not in granted]
    if missing:
        raise ForbiddenError(f"missing scope(s): {' '.join(missing)}")


def send_frame(conn: Connection, text: str | None) -> None:
    """Queue ``text`` for ``conn``, if the framing built a frame (None: nothing to send)."""
    if text is not None:
        conn.send_text_nowait(text)


def _lookup(
    handlers: dict[type[BaseException], Callable[..., Any]], exc: BaseException
) -> Callable[..., Any] | None:
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            return handler
    return None
