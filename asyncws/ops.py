"""Operational endpoints: health checks for load balancers, and metrics when installed.

    from asyncws.ops import ops_router
    app.include_router(ops_router(ws.manager))
    # GET /health        200 {"status": "ok"}
    #                    503 {"status": "unavailable"}
    # GET /health/live   200 while the process serves HTTP at all
    # GET /metrics       Prometheus metrics (when prometheus_client is installed)

``/health`` is a *readiness* check: it answers 503 while the broker is not connected (the
instance still serves its local clients, but what they publish is refused with
``broker_unavailable``) and once shutdown has begun (so a load balancer stops sending new
connections before the drain). Do not use it as a *liveness* check that restarts the process:
a Redis outage would restart every instance at once for nothing; ``/health/live`` is for that.
See docs/operations.md.

``/health`` answers its status only: anyone who can reach it learns nothing else.
``health_detail=True`` (or ``detail=True`` on the pieces) adds the broker state, the instance
id, the connection and pattern counts and the broker's reconnects, for a port that only the
operators reach.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .brokers import BrokerState
from .manager import WebSocketManager

__all__ = [
    "health_endpoint",
    "health_route",
    "health_status",
    "liveness_route",
    "ops_router",
]

_NO_STORE = {"Cache-Control": "no-store"}


def health_status(manager: WebSocketManager, *, detail: bool = False) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of the health check of ``manager``.

    200 when the manager runs, accepts connections and its broker is connected; else 503.
    The body is ``{"status": "ok"}`` (or ``"unavailable"``); with ``detail`` it is
    `WebSocketManager.health` plus ``status``, ``accepting``, ``instance`` and the broker's
    ``reconnects``.
    """
    broker = manager.broker
    ok = manager.started and manager.accepting and broker.state is BrokerState.CONNECTED
    if not detail:
        return (200 if ok else 503), {"status": "ok" if ok else "unavailable"}
    body = manager.health()
    body.update(
        status="ok" if ok else "unavailable",
        accepting=manager.accepting and manager.started,
        instance=manager.instance_id,
        reconnects=int(getattr(broker, "reconnects", 0)),
    )
    return (200 if ok else 503), body


def health_endpoint(
    manager: WebSocketManager, *, detail: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """An ``async`` Starlette/FastAPI endpoint answering `health_status`."""

    async def health(request: Request) -> Response:
        status, body = health_status(manager, detail=detail)
        return JSONResponse(body, status_code=status, headers=_NO_STORE)

    return health


def health_route(
    manager: WebSocketManager, path: str = "/health", *, detail: bool = False
) -> Route:
    """A GET/HEAD route for the readiness check: ``app.router.routes.append(health_route(m))``."""
    return Route(
        path,
        health_endpoint(manager, detail=detail),
        methods=["GET"],
        name="asyncws-health",
        include_in_schema=False,
    )


async def _alive(request: Request) -> Response:
    return JSONResponse({"status": "alive"}, headers=_NO_STORE)


def liveness_route(path: str = "/health/live") -> Route:
    """A GET/HEAD route that answers 200 as long as the process serves HTTP."""
    return Route(path, _alive, methods=["GET"], name="asyncws-live", include_in_schema=False)


def ops_router(
    manager: WebSocketManager,
    *,
    health_path: str = "/health",
    live_path: str | None = "/health/live",
    metrics_path: str | None = "/metrics",
    metrics: bool | None = None,
    health_detail: bool = False,
) -> APIRouter:
    """An APIRouter with the health check, the liveness check and the metrics.

    ``health_detail`` adds counts and the instance id to ``/health`` (see `health_status`).

    ``metrics``: None (default) serves ``metrics_path`` when prometheus_client is installed;
    True requires it (ImportError otherwise); False leaves metrics out.
    """
    router = APIRouter()
    router.routes.append(health_route(manager, health_path, detail=health_detail))
    if live_path is not None:
        router.routes.append(liveness_route(live_path))
    if metrics_path is not None and metrics is not False:
        try:
            from .metrics import metrics_route

            route = metrics_route(manager, metrics_path)
        except ImportError:
            if metrics:
                raise
        else:
            router.routes.append(route)
    return router
