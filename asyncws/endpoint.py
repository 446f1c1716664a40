"""The websocket endpoint of an `AsyncWS` app: the handshake, then the frame loop.

The handshake checks the origin, the connection limits, authentication and the
``on_connect`` hooks before accepting, so a refused client gets an HTTP status (403, or
503 for capacity) and never a half-open websocket. The frame loop then handles one frame at
a time, in order (a slow handler delays only its own connection), within the rate limit and
the idle timeout, and ends with the disconnect hooks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .auth import origin_allowed
from .calls import send_frame
from .connection import Connection, ConnectionState
from .dependencies import Resolver
from .error_policy import (
    FLOOD,
    HANDSHAKE_TIMEOUT,
    IDLE,
    OPEN_FAILED,
    ORIGIN_REFUSED,
    OVER_CAPACITY,
    TOKEN_EXPIRED,
    USER_OVER_CAPACITY,
    Where,
    apply,
    decide,
    deny,
)
from .exceptions import ForbiddenError, RateLimitedError
from .limits import TokenBucket

if TYPE_CHECKING:
    from .app import AsyncWS
    from .compiled import Compiled

__all__ = ["default_expiry", "serve"]

logger = logging.getLogger("asyncws.app")


async def serve(app: AsyncWS, websocket: WebSocket) -> None:
    """The websocket endpoint: handshake (origin, auth, hooks), then the frame loop.

    An idle connection waits in this coroutine and the receive it awaits, nothing else: the
    frame loop is written inline, because every coroutine an idle connection is suspended in
    costs it a frame (about 250 bytes each, kept for the connection's life).
    """
    compiled = app.compile()
    conn = await _open(app, websocket, compiled)
    if conn is None:
        return
    expiry = _expiry_timer(app, conn)
    try:
        try:
            await app.attached(conn)
        except Exception:
            logger.exception("connection %s: opening it failed; closing with 1011", conn.id)
            await conn.close(OPEN_FAILED.code, OPEN_FAILED.reason)
            return
        # The frame loop: one frame at a time, in order, within the rate and idle limits.
        limits = app.limits
        framing = app.framing_of(conn)
        bucket = TokenBucket(limits.rate, limits.burst)
        over_rate = 0
        while True:
            try:
                if limits.idle_timeout is None:
                    text = await conn.receive_text()
                else:
                    # asyncio.timeout, not wait_for: wait_for (Python 3.11) runs the receive in
                    # a task of its own, one more task per idle connection
                    async with asyncio.timeout(limits.idle_timeout):
                        text = await conn.receive_text()
            except WebSocketDisconnect:
                break
            except TimeoutError:
                await conn.close(IDLE.code, IDLE.reason)
                break
            if not bucket.take():
                over_rate += 1
                if over_rate > limits.rate_strikes:
                    logger.warning("connection %s: sustained flood; closing with 1008", conn.id)
                    await conn.close(FLOOD.code, FLOOD.reason)
                    break
                send_frame(
                    conn,
                    framing.error(
                        RateLimitedError(f"over {limits.rate:g} frames per second; slow down"),
                        framing.correlation_in(text),
                    ),
                )
                continue
            over_rate = 0
            try:
                await app.handle_frame(conn, text)
            except Exception as exc:
                answer = decide(exc, Where.FRAME, "a frame")
                if not await apply(conn, answer, framing.error, framing.correlation_in(text)):
                    break
            else:
                conn.good_frame()
            if not _is_open(conn):  # closed while handling the frame
                break
    finally:
        if expiry is not None:
            expiry.cancel()
        await app.manager.disconnect(conn)  # (it leaves presence too)
        for hook in compiled.disconnect_hooks:
            resolver = Resolver(conn, websocket, path_params=dict(websocket.path_params))
            try:
                await resolver.run(hook)
            except Exception:
                logger.exception("on_disconnect hook failed")
            finally:
                await resolver.aclose()


async def _open(app: AsyncWS, websocket: WebSocket, compiled: Compiled) -> Connection | None:
    """The handshake: the accepted, attached connection, or None when it was refused."""
    manager = app.manager
    if not origin_allowed(
        websocket, app.allowed_origins, server_origin=app.public_address.origin(websocket)
    ):
        logger.info("websocket %s: origin not allowed", websocket.url.path)
        await deny(websocket, ORIGIN_REFUSED)
        return None
    limits = app.limits
    # A handshake holds its slot from here (authenticate may await): otherwise every
    # handshake in flight would see the same free slot.
    if len(manager.connections) + app._handshaking >= limits.max_connections:
        logger.warning("connection refused: %d connections (the limit)", limits.max_connections)
        await deny(websocket, OVER_CAPACITY)
        return None
    app._handshaking += 1
    held = True
    try:
        conn = Connection(
            websocket,
            manager.new_connection_id(),
            max_queue=manager.max_queue,
            max_queue_bytes=manager.max_queue_bytes,
            slow_consumer=manager.slow_consumer,
            max_frame_size=manager.max_frame_size,
        )
        try:
            # asyncio.timeout, not wait_for: no extra task per connection (storms)
            async with asyncio.timeout(limits.handshake_timeout):
                accepted = await _handshake(app, conn, websocket, compiled)
        except TimeoutError:
            logger.warning("handshake timed out after %.1fs", limits.handshake_timeout)
            await deny(websocket, HANDSHAKE_TIMEOUT)
            return None
        if not accepted:
            return None
        if conn.user_id is not None and (
            len(manager.users.get(conn.user_id, ())) >= limits.max_connections_per_user
        ):
            logger.info(
                "connection refused: user over %d connections",
                limits.max_connections_per_user,
            )
            await deny(websocket, USER_OVER_CAPACITY)
            return None
        # scope["state"] is what ``websocket.state`` wraps: read it without building a State
        # object that the websocket would keep for the connection's life
        state = websocket.scope.get("state")
        subprotocol = state.get("asyncws_subprotocol") if state else None
        # The slot passes to the connection: attach registers it before its first await.
        app._handshaking -= 1
        held = False
        await manager.attach(conn, subprotocol=subprotocol)
    finally:
        if held:
            app._handshaking -= 1
    if not _is_open(conn):  # refused (shutting down): no websocket
        return None
    return conn


def _expiry_timer(app: AsyncWS, conn: Connection) -> asyncio.TimerHandle | None:
    """Close the connection with 4001 (token expired) when its credentials expire."""
    if conn.principal is None:
        return None
    expires = app._expires_at(conn.principal)
    if expires is None:
        return None
    loop = asyncio.get_running_loop()
    return loop.call_later(max(0.0, expires - time.time()), _expire, app, conn)


def _expire(app: AsyncWS, conn: Connection) -> None:
    if conn.state is not ConnectionState.OPEN:
        return
    logger.info("connection %s: credentials expired; closing with 4001", conn.id)
    task = asyncio.get_running_loop().create_task(
        conn.close(TOKEN_EXPIRED.code, TOKEN_EXPIRED.reason)
    )
    app._closing.add(task)
    task.add_done_callback(app._closing.discard)


async def _handshake(
    app: AsyncWS, conn: Connection, websocket: WebSocket, compiled: Compiled
) -> bool:
    """Authenticate and run on_connect hooks; refuse (before accept) as the error policy
    says on failure."""
    resolver = Resolver(conn, websocket, path_params=dict(websocket.path_params))
    try:
        if compiled.authenticate is not None:
            principal = await resolver.run(compiled.authenticate)
            if principal is None:
                raise ForbiddenError("authentication required")
            conn.principal = principal
            if app._user_id is not None:
                conn.user_id = app._user_id(principal)
        for hook in compiled.connect_hooks:
            if await resolver.run(hook) is False:
                raise ForbiddenError("connection refused")
    except Exception as exc:
        await deny(websocket, decide(exc, Where.HANDSHAKE))
        return False
    finally:
        await resolver.aclose()
    return websocket.application_state is WebSocketState.CONNECTING


def default_expiry(principal: Any) -> float | None:
    """The ``exp`` of a principal (a JWT claims dict, or an object with ``exp``), if any."""
    exp = principal.get("exp") if isinstance(principal, dict) else getattr(principal, "exp", None)
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def _is_open(conn: Connection) -> bool:
    return conn.state is ConnectionState.OPEN
