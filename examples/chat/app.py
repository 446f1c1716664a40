"""The asyncws chat: rooms, posting, typing indicators and direct messages.

Run it (memory broker, one process)::

    asyncws run examples.chat.app:app --reload      # then open http://127.0.0.1:8000/

Several instances on Redis: ``ASYNCWS_BROKER_URL=redis://127.0.0.1:6379/0 asyncws run ...`` on
different ports. The user name comes from the ``user`` query parameter: a demo shortcut in
place of real authentication (see docs/security.md for bearer tokens).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from asyncws import AsyncWS, Connection, ForbiddenError, Router
from asyncws.ops import ops_router

RoomName = Annotated[
    str, Field(pattern=r"^[a-z0-9-]{1,32}$", description="A room name", examples=["lobby"])
]
UserName = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="A user name", examples=["ann"])
]


# -- messages ---------------------------------------------------------------------------------


class Post(BaseModel):
    """Post a message in a room."""

    room: RoomName
    text: str = Field(min_length=1, max_length=2000, examples=["Hello, world!"])


class Posted(BaseModel):
    """A message posted in a room."""

    type: Literal["posted"] = "posted"
    user: str
    text: str
    at: datetime


class Joined(BaseModel):
    """Someone subscribed to the room."""

    type: Literal["joined"] = "joined"
    user: str


class Typing(BaseModel):
    """Someone is typing in a room."""

    user: str


class TypingIn(BaseModel):
    room: RoomName


class Member(BaseModel):
    """Someone in a room. Nothing is published on ``rooms/{room}/members``: its subscribers
    are the room's members (presence), who come and go as ``join`` and ``leave`` events."""

    user: str


class Direct(BaseModel):
    """Send a private message to a user (every connection of that user gets it)."""

    to: UserName
    text: str = Field(min_length=1, max_length=2000)


class DirectMessage(BaseModel):
    """A private message."""

    sender: str = Field(alias="from")
    text: str
    at: datetime

    model_config = {"populate_by_name": True}


class Me(BaseModel):
    name: str
    connection_id: str


class Receipt(BaseModel):
    """What the server answers to a post."""

    room: str
    at: datetime


# -- declarations -----------------------------------------------------------------------------

router = Router(tags=["chat"])

rooms = router.topic(
    "rooms/{room}",
    Annotated[Posted | Joined, Field(discriminator="type")],
    params={"room": RoomName},
    description="Everything that happens in a room: posts and arrivals.",
)
typing = router.topic(
    "rooms/{room}/typing",
    Typing,
    params={"room": RoomName},
    description="Typing indicators of a room.",
)


members = router.topic(
    "rooms/{room}/members",
    Member,
    params={"room": RoomName},
    name="members",
    description=(
        "Who is in a room: subscribe to be a member; ask `presence` for the members (on every "
        "instance) and receive `join`/`leave` as they change."
    ),
    presence=True,
)


def only_me(user: str | None, conn: Connection) -> bool:
    """A user's inbox is theirs alone (no wildcards, no peeking)."""
    return user is not None and user == conn.user_id


inbox = router.topic(
    "users/{user}/inbox",
    DirectMessage,
    params={"user": UserName},
    description="Private messages to one user. Only that user may subscribe.",
    authorize=only_me,
)


def user_name(conn: Connection) -> str:
    if conn.user_id is None:  # pragma: no cover - authenticate always sets it
        raise ForbiddenError("not logged in")
    return conn.user_id


User = Annotated[str, Depends(user_name)]


@router.operation("post")
async def post(msg: Post, user: User) -> Receipt:
    """Post a message to a room; every subscriber of the room receives it."""
    now = datetime.now(UTC)
    await rooms.publish(Posted(user=user, text=msg.text, at=now), room=msg.room)
    return Receipt(room=msg.room, at=now)


@router.operation("join")
async def join(msg: TypingIn, user: User) -> None:
    """Tell a room you arrived (subscribe to ``rooms/{room}`` to see it)."""
    await rooms.publish(Joined(user=user), room=msg.room)


@router.operation("typing")
async def typing_indicator(msg: TypingIn, user: User) -> None:
    """Say you are typing in a room."""
    await typing.publish(Typing(user=user), room=msg.room)


@router.operation("direct")
async def direct(msg: Direct, user: User) -> None:
    """Send a private message to a user's inbox."""
    dm = DirectMessage(sender=user, text=msg.text, at=datetime.now(UTC))
    await inbox.publish(dm, user=msg.to)


@router.operation("whoami")
async def whoami(conn: Connection, user: User) -> Me:
    """Who the server thinks you are."""
    return Me(name=user, connection_id=conn.id)


def authenticate(
    user: Annotated[
        str,
        Query(
            pattern=r"^[A-Za-z0-9_-]{1,32}$",
            description="Your user name (demo authentication: connect with `?user=ann`).",
            examples=["ann"],
        ),
    ],
) -> dict[str, str]:
    """Demo authentication: the user name from ``?user=`` (same rule as `UserName`).

    A declared ``Query`` parameter: the handshake is refused (HTTP 403) without a valid one,
    and the AsyncAPI document (the endpoint's ws bindings) says so.
    """
    return {"name": user}


ws = AsyncWS(
    title="asyncws chat",
    version="1.0.0",
    description="A chat with rooms, typing indicators and direct messages.",
    broker=os.environ.get("ASYNCWS_BROKER_URL", "memory://"),
    authenticate=authenticate,
    user_id=lambda principal: principal["name"],
)
ws.include_router(router)

app = FastAPI(title="asyncws chat", lifespan=ws.lifespan)
app.include_router(ws.asgi_router)
app.include_router(ops_router(ws.manager))  # /health, /health/live, /metrics

_PAGE = (Path(__file__).parent / "index.html").read_text(encoding="utf-8")


@app.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> str:
    """The chat page (self-contained: no external resources)."""
    return _PAGE
