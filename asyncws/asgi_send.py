"""The ASGI ``send`` beneath a Starlette `WebSocket`, for the delivery path.

Every frame a connection writes through Starlette passes two kinds of layer before it reaches
the server's ``send``: ``WebSocket.send``, which checks the websocket's state on each call,
and one ``sender`` coroutine per ``wrap_app_handling_exceptions`` (Starlette's
``ExceptionMiddleware``; FastAPI routes add their own), which only notes whether an HTTP
response has started. For a ``websocket.send`` message on an open websocket none of them
does anything but forward it, and together they cost about as much per delivery as
asyncws's own work (docs/performance.md, "The delivery path"). So
`Connection` sends such messages to the ``send`` beneath them (`direct_send`) and keeps
Starlette's state itself, as ``WebSocket.send`` would (an ``OSError`` from the server marks
the websocket disconnected); any other message, or a websocket in another state, still goes
through ``WebSocket.send``.

Only Starlette's own layers are skipped, recognised by the code object of the installed
Starlette's ``sender`` (and only while that code does nothing but note the response start and
forward): a user's middleware that wraps ``send`` stays in the path and sees every frame.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from types import CodeType
from typing import Any

from starlette import _exception_handler
from starlette.websockets import WebSocket

__all__ = ["Send", "direct_send"]

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _nested(code: CodeType | None, name: str) -> CodeType | None:
    if code is None:
        return None
    for const in code.co_consts:
        if isinstance(const, CodeType) and const.co_name == name:
            return const
    return None


def _starlette_sender() -> tuple[CodeType, int] | None:
    """The code of ``wrap_app_handling_exceptions``'s ``sender`` and its ``send`` cell, when
    that code is the pass-through it is in Starlette 1.10 (no other names or constants); None
    otherwise, and then no sender is skipped."""
    outer = getattr(_exception_handler, "wrap_app_handling_exceptions", None)
    sender = _nested(_nested(getattr(outer, "__code__", None), "wrapped_app"), "sender")
    if (
        sender is None
        or set(sender.co_freevars) != {"response_started", "send"}
        or sender.co_names
        or not set(sender.co_consts) <= {None, True, "type", "http.response.start"}
    ):
        return None
    return sender, sender.co_freevars.index("send")


_SENDER = _starlette_sender()


def direct_send(websocket: Any) -> Send | None:
    """The ASGI ``send`` beneath ``websocket``'s Starlette layers, or None when ``websocket``
    is not a plain Starlette `WebSocket` (a subclass that overrides ``send``, a stand-in).

    `Connection.push` steps the coroutine the send returns by hand, so the send found must be
    a coroutine function: where the server's is not (Granian's returns a future its Rust side
    resolves), the deepest Starlette layer above it that is one is used instead."""
    if not isinstance(websocket, WebSocket) or type(websocket).send is not WebSocket.send:
        return None
    send: Any = getattr(websocket, "_send", None)
    if send is None or not inspect.iscoroutinefunction(send):
        return None
    if _SENDER is not None:
        code, cell = _SENDER
        for _ in range(8):  # one per layer; a handful at most
            closure = getattr(send, "__code__", None) is code and getattr(send, "__closure__", None)
            if not closure:
                break
            inner = closure[cell].cell_contents
            if not inspect.iscoroutinefunction(inner):
                break
            send = inner
    return send  # type: ignore[no-any-return]
