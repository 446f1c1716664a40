"""Declaring on a router after ``include_router`` works as declaring before.

A user writes ``ws.include_router(router)`` near the top of a module and declares operations
below it: they must be in the document and answer on the wire, not be ``unknown_type``.
"""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, Connection, Router
from asyncws.asyncapi import build_document
from asyncws.testing import TestClient


class Note(BaseModel):
    text: str


def tagged() -> str:
    return "dep"


seen: list[str] = []


def record() -> None:
    seen.append("outer dependency")


def build() -> tuple[AsyncWS, FastAPI, Router, Router]:
    ws = AsyncWS(title="late")
    outer = Router(tags=["outer"])
    inner = Router(prefix="inner", tags=["inner"])
    outer.include_router(inner, prefix="o", dependencies=[Depends(record)])
    ws.include_router(outer, prefix="app")  # before anything is declared
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return ws, app, outer, inner


async def test_operations_and_topics_declared_after_include_router_work() -> None:
    ws, app, outer, inner = build()
    notes = inner.topic("notes", Note, client_publish=True)

    @inner.operation("late")
    async def late(msg: Note) -> Note:
        await notes.publish(msg)
        return Note(text=msg.text.upper())

    @outer.operation("later")
    async def later(conn: Connection) -> None:
        pass

    assert set(ws.operations) == {"late", "later"}
    assert [t.address for t in ws.topics] == ["app/o/inner/notes"]
    assert ws.operations["late"].tags == ["outer", "inner"]
    document = build_document(ws)
    assert {c["address"] for c in document["channels"].values()} >= {"app/o/inner/notes"}
    assert any(key.startswith("late") for key in document["operations"]), document["operations"]

    seen.clear()
    async with TestClient(app) as c, c.connect("/ws") as s:
        assert (await s.subscribe("app/o/inner/notes"))["type"] == "ack"
        answer = await s.call("late", {"text": "hi"})
        assert answer["data"] == {"text": "HI"}
        event = await s.receive_event("app/o/inner/notes")
        assert event["data"] == {"text": "hi"}
        assert (await s.call("later"))["type"] == "ack"
    assert seen == ["outer dependency"]  # the include's dependencies apply to late ones too


async def test_a_declaration_after_the_app_served_frames_is_seen_by_the_next_frame() -> None:
    _, app, outer, _ = build()
    async with TestClient(app) as c, c.connect("/ws") as s:
        assert (await s.call("ping"))["code"] == "unknown_type"

        @outer.operation("ping")
        async def ping() -> None:
            pass

        assert (await s.call("ping"))["type"] == "ack"


def test_a_late_duplicate_fails_loudly_at_the_declaration() -> None:
    ws, _, _, inner = build()

    @ws.operation("taken")
    async def taken() -> None:
        pass

    with pytest.raises(ValueError, match="'taken' is declared twice"):

        @inner.operation("taken")
        async def again() -> None:
            pass

    inner.topic("t", Note)
    with pytest.raises(ValueError, match="declared twice"):
        ws.topic("app/o/inner/t", Note)


def test_a_router_cannot_include_itself_through_another() -> None:
    a, b = Router(), Router()
    a.include_router(b)
    with pytest.raises(ValueError, match="cannot include itself"):
        b.include_router(a)
    with pytest.raises(ValueError, match="cannot include itself"):
        a.include_router(a)


def test_a_late_handler_with_an_unexplained_parameter_fails_at_the_declaration() -> None:
    ws = AsyncWS(title="strict", path="/ws/{tenant}")
    router = Router()
    ws.include_router(router)

    @router.operation("ok")
    async def ok(tenant: str, dep: str = Depends(tagged)) -> None:  # a path parameter: fine
        pass

    with pytest.raises(TypeError, match="cannot tell what to pass as parameter 'mystery'"):

        @router.operation("bad")
        async def bad(mystery: int) -> None:
            pass
