"""``max_connections`` holds while ``authenticate`` awaits (issue 18, finding 7).

A handshake reserves its connection slot before it awaits anything and gives it back when it
is refused; a capacity refusal is HTTP 503 (try again later), not 403. Checked in process and
against a real uvicorn with 30 concurrent handshakes, a limit of 5 and a 0.3 s authenticate.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from asyncws import AsyncWS, Connection, Router
from asyncws.limits import Limits
from asyncws.testing import TestClient, WebSocketDenied, WebSocketSession
from tests.servers import UvicornServer

LIMIT = 5
CONCURRENT = 30
WAIT = 20.0


def slow_app(delay: float, gate: asyncio.Event | None = None) -> tuple[FastAPI, AsyncWS]:
    router = Router()

    @router.operation("ping")
    async def ping() -> str:
        return "pong"

    async def authenticate(conn: Connection) -> dict[str, str] | None:
        await asyncio.sleep(delay)  # a slow session store
        if gate is not None and conn.websocket.query_params.get("refuse"):
            return None
        return {"user": conn.websocket.query_params.get("user", "u")}

    ws = AsyncWS(
        title="capacity",
        authenticate=authenticate,
        user_id=lambda p: p["user"],
        limits=Limits(max_connections=LIMIT),
    )
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return app, ws


async def test_concurrent_handshakes_cannot_exceed_max_connections() -> None:
    app, ws = slow_app(0.3)
    async with TestClient(app) as client:

        async def attempt(n: int) -> WebSocketSession | int:
            try:
                return await client.websocket_connect(f"/ws?user=u{n}")
            except WebSocketDenied as denied:
                return denied.status

        results = await asyncio.gather(*(attempt(n) for n in range(CONCURRENT)))
        sessions = [r for r in results if isinstance(r, WebSocketSession)]
        statuses = [r for r in results if isinstance(r, int)]
        assert len(sessions) == LIMIT and statuses == [503] * (CONCURRENT - LIMIT)
        assert len(ws.manager.connections) == LIMIT
        for session in sessions:
            await session.close()


async def test_a_refused_handshake_gives_its_slot_back() -> None:
    app, ws = slow_app(0.05, gate=asyncio.Event())
    async with TestClient(app) as client:
        refused = [client.websocket_connect(f"/ws?refuse=1&user=r{n}") for n in range(LIMIT)]
        for outcome in await asyncio.gather(*refused, return_exceptions=True):
            assert isinstance(outcome, WebSocketDenied) and outcome.status == 403
        assert ws._handshaking == 0
        async with client.connect("/ws?user=ok") as s:  # the slots are free again
            assert (await s.call("ping"))["data"] == "pong"


@pytest.mark.slow
async def test_thirty_concurrent_handshakes_on_uvicorn() -> None:
    env = {"ASYNCWS_MAX_CONNECTIONS": str(LIMIT), "ASYNCWS_AUTH_DELAY": "0.3"}
    with UvicornServer("tests.apps.cookie_app:app", env=env, ready_path="/actions") as server:

        async def attempt() -> ClientConnection | int:
            try:
                return await connect(
                    server.ws_url("/ws"),
                    additional_headers={"Cookie": "session=s-ann"},
                    open_timeout=WAIT,
                )
            except InvalidStatus as exc:
                return int(exc.response.status_code)

        results: list[Any] = await asyncio.gather(*(attempt() for _ in range(CONCURRENT)))
        opened = [r for r in results if isinstance(r, ClientConnection)]
        statuses = sorted(r for r in results if isinstance(r, int))
        try:
            print(f"\n{len(opened)} of {CONCURRENT} accepted; refused: {statuses}")
            assert len(opened) == LIMIT
            assert statuses == [503] * (CONCURRENT - LIMIT)
        finally:
            await asyncio.gather(*(ws.close() for ws in opened))
