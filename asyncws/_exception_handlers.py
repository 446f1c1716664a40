"""The seed's ``distributed_websocket._exception_handlers`` import path.

``send_error_message`` answers the exception's connection with an asyncws error frame
(``{"type": "error", "code": ..., "message": ...}``; the seed sent ``{"error": message}``, which
a client could not tell from data another client sent).
"""

from __future__ import annotations

from .exceptions import WebSocketException
from .protocol import error_frame_for

__all__ = ["send_error_message"]


async def send_error_message(exc: WebSocketException) -> None:
    """Send ``exc`` as an error frame to ``exc.connection`` (the seed's ``ahandle`` handler)."""
    connection = exc.connection
    if connection is not None:
        connection.send_text_nowait(error_frame_for(exc, None))
