"""FastAPI's exceptions raised in operations, dependencies and hooks become error frames.

``HTTPException`` maps by status (401/403 forbidden, 404 not_found, 422 validation_error,
...) with its ``detail``; ``WebSocketException`` answers with an error frame and then closes
with its code. None of them is an ``internal_error`` or an ERROR log line.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, WebSocketException
from pydantic import BaseModel

from asyncws import AsyncWS, Connection, ErrorCode, NotFoundError, Router
from asyncws.exceptions import from_http_exception, from_websocket_exception
from asyncws.testing import TestClient, WebSocketDenied


class Item(BaseModel):
    id: int


class Status(BaseModel):
    code: int
    detail: Any = None


def items() -> dict[int, Item]:
    return {1: Item(id=1)}


def must_be_admin(conn: Connection) -> None:
    if conn.websocket.query_params.get("role") != "admin":
        raise HTTPException(status_code=403, detail="admins only")


def build() -> tuple[AsyncWS, FastAPI]:
    ws = AsyncWS(title="exceptions")
    router = Router()

    @router.operation("get")
    async def get(msg: Item, known: Annotated[dict[int, Item], Depends(items)]) -> Item:
        if msg.id not in known:
            raise HTTPException(status_code=404, detail=f"no item {msg.id}")
        return known[msg.id]

    @router.operation("status")
    async def status(msg: Status) -> None:
        raise HTTPException(status_code=msg.code, detail=msg.detail)

    @router.operation("admin", dependencies=[Depends(must_be_admin)])
    async def admin() -> None:
        pass

    @router.operation("close")
    async def close() -> None:
        raise WebSocketException(code=1008, reason="session revoked")

    router.topic("private/{name}", Item, authorize=refuse_topic)
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return ws, app


def refuse_topic(name: str | None) -> bool:
    raise HTTPException(status_code=401, detail="log in first")


def only_known(conn: Connection) -> dict[str, str]:
    if "user" not in conn.websocket.query_params:
        raise HTTPException(status_code=401, detail="who are you?")
    return {"name": conn.websocket.query_params["user"]}


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="asyncws")
    return caplog


def _no_errors(caplog: pytest.LogCaptureFixture) -> None:
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_http_exceptions_in_a_handler_or_dependency_become_error_frames(
    quiet: pytest.LogCaptureFixture,
) -> None:
    _, app = build()
    async with TestClient(app) as c, c.connect("/ws") as s:
        assert (await s.call("get", {"id": 1}))["data"] == {"id": 1}
        missing = await s.call("get", {"id": 7})
        assert missing["code"] == ErrorCode.NOT_FOUND == "not_found"
        assert missing["message"] == "no item 7"
        refused = await s.call("admin")
        assert (refused["code"], refused["message"]) == ("forbidden", "admins only")
        # the connection is fine afterwards
        assert (await s.call("get", {"id": 1}))["type"] == "reply"
    async with TestClient(app) as c, c.connect("/ws?role=admin") as s:
        assert (await s.call("admin"))["type"] == "ack"
    _no_errors(quiet)
    assert "no item 7" in quiet.text  # logged at INFO, for the operator


@pytest.mark.parametrize(
    ("status", "detail", "code", "message"),
    [
        (401, "log in", "forbidden", "log in"),
        (403, None, "forbidden", "Forbidden"),
        (404, "gone", "not_found", "gone"),
        (409, "already there", "bad_request", "already there"),
        (400, {"why": "dict"}, "bad_request", "Bad Request"),
        (429, "slow down", "rate_limited", "slow down"),
        (503, "maintenance", "internal_error", "maintenance"),
    ],
)
async def test_http_status_codes_map_by_the_documented_rule(
    quiet: pytest.LogCaptureFixture, status: int, detail: Any, code: str, message: str
) -> None:
    _, app = build()
    async with TestClient(app) as c, c.connect("/ws") as s:
        answer = await s.call("status", {"code": status, "detail": detail})
        assert answer == {"type": "error", "id": answer["id"], "code": code, "message": message}
    _no_errors(quiet)


async def test_a_422_detail_list_becomes_field_errors(quiet: pytest.LogCaptureFixture) -> None:
    _, app = build()
    detail = [{"loc": ["body", "name"], "msg": "Field required", "type": "missing"}]
    async with TestClient(app) as c, c.connect("/ws") as s:
        answer = await s.call("status", {"code": 422, "detail": detail})
    assert answer["code"] == "validation_error"
    assert answer["message"].startswith("Unprocessable")  # the phrase: Entity or Content
    assert answer["errors"] == detail
    _no_errors(quiet)


async def test_a_websocket_exception_sends_an_error_frame_then_closes(
    quiet: pytest.LogCaptureFixture,
) -> None:
    _, app = build()
    async with TestClient(app) as c, c.connect("/ws") as s:
        await s.send_json({"type": "close", "id": 5})
        frame = await s.receive_json()
        assert frame == {
            "type": "error",
            "id": 5,
            "code": "forbidden",
            "message": "session revoked",
        }
        assert await s.expect_closed() == 1008
        assert s.close_reason == "session revoked"
    _no_errors(quiet)


async def test_an_http_exception_in_an_authorize_hook_is_an_error_frame(
    quiet: pytest.LogCaptureFixture,
) -> None:
    _, app = build()
    async with TestClient(app) as c, c.connect("/ws") as s:
        answer = await s.subscribe("private/ann")
        assert (answer["code"], answer["message"]) == ("forbidden", "log in first")
    _no_errors(quiet)


async def test_an_http_exception_at_the_handshake_refuses_with_403(
    quiet: pytest.LogCaptureFixture,
) -> None:
    ws = AsyncWS(title="auth", authenticate=only_known)

    @ws.operation("ping")
    async def ping() -> None:
        pass

    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c:
        with pytest.raises(WebSocketDenied) as denied:
            async with c.connect("/ws"):
                pass
        assert denied.value.status == 403
        async with c.connect("/ws?user=ann") as s:
            assert (await s.call("ping"))["type"] == "ack"
    _no_errors(quiet)


async def test_an_exception_handler_still_wins(quiet: pytest.LogCaptureFixture) -> None:
    ws, app = build()

    @ws.exception_handler(HTTPException)
    def mine(conn: Connection, exc: HTTPException) -> NotFoundError:
        return NotFoundError(f"mine: {exc.detail}")

    async with TestClient(app) as c, c.connect("/ws") as s:
        answer = await s.call("status", {"code": 500, "detail": "x"})
    assert (answer["code"], answer["message"]) == ("not_found", "mine: x")


def test_the_mapping_functions() -> None:
    assert from_http_exception(404).message == "Not Found"
    assert from_http_exception(599).code is ErrorCode.INTERNAL_ERROR
    assert from_http_exception(404, "x" * 2000).message == "x" * 500
    assert from_websocket_exception(1013).code is ErrorCode.RATE_LIMITED
    assert from_websocket_exception(1011, "db").code is ErrorCode.INTERNAL_ERROR
    assert from_websocket_exception(4003).message == "closed with 4003"
    assert from_websocket_exception(4003).code is ErrorCode.FORBIDDEN
