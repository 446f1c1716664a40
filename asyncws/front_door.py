"""`FrontDoor`: serve an app's websocket endpoint before the ASGI app behind it (opt-in).

``ws.in_front_of(app)`` (`AsyncWS.in_front_of`) returns one of these. A websocket handshake
for one of the app's endpoint paths goes straight to the endpoint; every other request (HTTP,
other websocket paths, the lifespan) goes to ``app`` unchanged. What that saves is memory: an
idle connection otherwise stays suspended, for its whole life, in every layer the request
went through (FastAPI's middleware stack, its included-router dispatch, Starlette's routing
and exception wrappers), about 3-5 KiB per connection with FastAPI 0.165
(docs/performance.md). The price is what those layers did for that path:

* the ``app``'s middleware (``app.add_middleware``, ``@app.middleware``) does not run for it;
* the ``app``'s exception handlers do not see it (asyncws answers errors itself, and an
  exception that escapes the endpoint goes to the server, as it would through Starlette);
* ``websocket.app`` is ``app`` (set here, as Starlette would), but there is no
  ``scope["router"]`` or ``scope["route"]``.

Everything asyncws does (origin check, limits, authentication, hooks, dependencies) is the
same, and the routes of ``app`` (include ``ws.asgi_router`` there as usual: its AsyncAPI
routes are served by ``app``) are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from starlette.routing import Match, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

__all__ = ["FrontDoor"]


class FrontDoor:
    """An ASGI app: the websocket ``routes`` first, then ``app`` for everything else."""

    def __init__(self, app: ASGIApp, routes: Sequence[WebSocketRoute]) -> None:
        self.app = app
        self.websocket_routes = tuple(routes)

    @property
    def routes(self) -> list[Any]:
        """The front routes, then the app's (how ``asyncws run`` / ``check`` find the app)."""
        inner = getattr(self.app, "router", self.app)
        return [*self.websocket_routes, *getattr(inner, "routes", ())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            endpoint = self._match(scope)
            if endpoint is not None:
                scope.setdefault("app", self.app)
                await endpoint(WebSocket(scope, receive, send))
                return
        await self.app(scope, receive, send)

    def _match(self, scope: Scope) -> Callable[[WebSocket], Any] | None:
        for route in self.websocket_routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                endpoint: Callable[[WebSocket], Any] = route.endpoint
                return endpoint
        return None
