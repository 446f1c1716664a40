"""Refusing a websocket handshake with the HTTP status that says why.

Before ``accept()`` a websocket can still be answered with a plain HTTP response. A close
before accept makes every ASGI server answer **403**, which is right for "who are you?" and
"not from that origin", but wrong for "the server is full" or "shutting down": a client, a
load balancer or a retry policy reads 403 as final. `refuse` answers **503** (with
``Retry-After``) for those when the server supports the ASGI websocket denial-response
extension (uvicorn's websocket implementations and `asyncws.testing` do), and falls back to
a close (403) when it does not.
"""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketState

from .codes import CloseCode

__all__ = ["refuse", "refuse_unavailable"]


async def refuse(websocket: WebSocket, status: int, code: int, reason: str = "") -> None:
    """Refuse the handshake of ``websocket`` (not accepted yet) with HTTP ``status``.

    Falls back to ``close(code)`` (HTTP 403) when the server has no denial responses; does
    nothing when the websocket is no longer connecting.
    """
    if websocket.application_state is not WebSocketState.CONNECTING:
        return
    if status != 403 and "websocket.http.response" in websocket.scope.get("extensions", {}):
        headers = {"Retry-After": "1", "Cache-Control": "no-store"} if status == 503 else {}
        await websocket.send_denial_response(
            PlainTextResponse(reason or "refused", status_code=status, headers=headers)
        )
        return
    await websocket.close(code, reason)


async def refuse_unavailable(websocket: WebSocket, reason: str) -> None:
    """A capacity refusal (over ``max_connections``, shutting down): HTTP 503, else 403."""
    await refuse(websocket, 503, int(CloseCode.TRY_AGAIN_LATER), reason)
