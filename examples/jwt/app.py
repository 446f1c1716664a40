"""Bearer-token (JWT) authentication with scopes, per operation and per topic.

Run it::

    pip install "asyncws[jwt]"
    ASYNCWS_JWT_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \\
        asyncws run examples.jwt.app:app

Get a token (a demo endpoint: any user name, the password "secret")::

    curl -s localhost:8000/token -H 'content-type: application/json' \\
         -d '{"username": "ann", "password": "secret", "scope": "notes:read notes:write"}'

and connect with ``Authorization: Bearer <token>``, or, from a browser, with the subprotocol
``bearer.<token>`` (``new WebSocket(url, ["bearer." + token])``). When the token expires the
server closes the connection with 4001; get a new token and reconnect.
"""

from __future__ import annotations

import os
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field

from asyncws import AsyncWS, Connection, Router, WebSocketOAuth2PasswordBearer
from asyncws.auth import WebSocketAuthError

# Every instance must share the secret (32 bytes or more); without one, this process makes
# up its own, so its tokens only work on it.
SECRET = os.environ.get("ASYNCWS_JWT_SECRET") or secrets.token_urlsafe(32)
ALGORITHM = "HS256"
SCOPES = {"notes:read": "Read the notes of a board", "notes:write": "Add notes"}

bearer = WebSocketOAuth2PasswordBearer(tokenUrl="/token", scopes=SCOPES)


def issue_token(user: str, scopes: list[str], ttl: float = 3600.0) -> str:
    """A signed token for ``user`` with ``scopes``, valid for ``ttl`` seconds."""
    now = time.time()
    claims = {"sub": user, "scope": " ".join(scopes), "iat": int(now), "exp": now + ttl}
    return jwt.encode(claims, SECRET, algorithm=ALGORITHM)


def principal(token: Annotated[str, Depends(bearer)]) -> dict[str, Any]:
    """The connection's principal: the token's verified claims (refused with 403 otherwise)."""
    try:
        claims = jwt.decode(
            token, SECRET, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.PyJWTError:
        raise WebSocketAuthError("invalid or expired token") from None
    return {
        "sub": claims["sub"],
        "scopes": str(claims.get("scope", "")).split(),
        "exp": claims["exp"],
    }


# -- the API ----------------------------------------------------------------------------------

Board = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,32}$", examples=["team"])]


class NewNote(BaseModel):
    board: Board
    text: str = Field(min_length=1, max_length=500)


class Note(BaseModel):
    author: str
    text: str
    at: datetime


router = Router(tags=["notes"])
notes = router.topic(
    "boards/{board}/notes",
    Note,
    params={"board": Board},
    description="Notes added to a board.",
    subscribe_scopes=["notes:read"],
)


@router.operation("add_note", scopes=["notes:write"])
async def add_note(msg: NewNote, conn: Connection) -> Note:
    """Add a note to a board (needs the `notes:write` scope)."""
    note = Note(author=conn.principal["sub"], text=msg.text, at=datetime.now(UTC))
    await notes.publish(note, board=msg.board)
    return note


ws = AsyncWS(
    title="Notes",
    version="1.0.0",
    description="Boards of notes, behind bearer tokens with scopes.",
    broker=os.environ.get("ASYNCWS_BROKER_URL", "memory://"),
    authenticate=principal,
    user_id=lambda p: p["sub"],
)
ws.include_router(router)

app = FastAPI(title="Notes", lifespan=ws.lifespan)
app.include_router(ws.asgi_router)


class Login(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    password: str
    scope: str = "notes:read"


@app.post("/token")
async def token(login: Login) -> dict[str, str]:
    """Demo token endpoint: every user's password is "secret"."""
    if login.password != "secret":
        raise HTTPException(status_code=401, detail="bad credentials")
    scopes = [s for s in login.scope.split() if s in SCOPES]
    return {"access_token": issue_token(login.username, scopes), "token_type": "bearer"}
