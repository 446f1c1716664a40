"""A cookie-authenticated app, written the way docs/security.md describes, for the origin tests.

- ``GET /login?user=NAME`` sets the session cookie (``SameSite`` from ``ASYNCWS_SAMESITE``,
  default ``strict``) and answers a page;
- ``GET /`` is a page that opens ``/ws`` on its own origin and sends one ``transfer``;
- ``/ws``: `AsyncWS` whose ``authenticate`` reads the cookie; ``transfer`` records what the
  authenticated user did (the action a cross-site page must not be able to perform);
- ``GET /actions``: every transfer done so far, for the tests to see what happened.

Environment: ``ASYNCWS_ALLOWED_ORIGINS`` (space-separated; unset: the default, same-origin),
``ASYNCWS_MAX_CONNECTIONS`` and ``ASYNCWS_AUTH_DELAY`` (seconds ``authenticate`` awaits).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from asyncws import AsyncWS, Connection, Router
from asyncws.limits import Limits

SESSIONS = {"s-ann": "ann", "s-bob": "bob"}
AUTH_DELAY = float(os.environ.get("ASYNCWS_AUTH_DELAY", "0"))
actions: list[dict[str, Any]] = []


class Transfer(BaseModel):
    to: str
    amount: int


router = Router()


@router.operation("transfer")
async def transfer(msg: Transfer, conn: Connection) -> dict[str, Any]:
    done = {"user": conn.user_id, "to": msg.to, "amount": msg.amount}
    actions.append(done)
    return done


async def authenticate(conn: Connection) -> dict[str, str] | None:
    if AUTH_DELAY:
        await asyncio.sleep(AUTH_DELAY)  # a slow session store
    user = SESSIONS.get(conn.websocket.cookies.get("session", ""))
    return {"name": user} if user is not None else None


_origins = os.environ.get("ASYNCWS_ALLOWED_ORIGINS")
ws = AsyncWS(
    title="bank",
    authenticate=authenticate,
    user_id=lambda principal: principal["name"],
    allowed_origins=_origins.split() if _origins is not None else None,
    limits=Limits(max_connections=int(os.environ.get("ASYNCWS_MAX_CONNECTIONS", "10000"))),
)
ws.include_router(router)

app = FastAPI(lifespan=ws.lifespan)
app.include_router(ws.asgi_router)

# The page reports through document.title, which the browser test reads.
_PAGE = """<!doctype html><title>page</title><script>
const url = (location.search.slice(1) || location.host);
const ws = new WebSocket("ws://" + url + "/ws");
ws.onopen = () => ws.send(JSON.stringify(
  {type: "transfer", id: 1, data: {to: "mallory", amount: 100}}));
ws.onmessage = (e) => { document.title = "answer " + e.data; };
ws.onclose = (e) => { if (!document.title.startsWith("answer")) document.title = "closed " + e.code; };
</script>"""


@app.get("/login")
async def login(user: str) -> HTMLResponse:
    session = next(s for s, name in SESSIONS.items() if name == user)
    response = HTMLResponse("<!doctype html><title>logged in</title>")
    samesite = os.environ.get("ASYNCWS_SAMESITE", "strict")
    response.set_cookie("session", session, httponly=True, samesite=samesite)  # type: ignore[arg-type]
    return response


@app.get("/")
async def page() -> HTMLResponse:
    return HTMLResponse(_PAGE)


@app.get("/actions")
async def list_actions() -> JSONResponse:
    return JSONResponse(actions)
