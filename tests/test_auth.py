"""asyncws.auth: bearer tokens from a websocket handshake, origin checks, scopes.

Apps are built per test and driven in memory by asyncws.testing (no network), except the
last test, which checks a real uvicorn's answers and log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import Depends, FastAPI, WebSocket
from starlette.exceptions import WebSocketException
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asyncws.auth import (
    OriginGuard,
    WebSocketAuthError,
    WebSocketOAuth2PasswordBearer,
    check_origin,
    origin_allowed,
    require_scopes,
)
from asyncws.codes import ErrorCode
from asyncws.exceptions import ForbiddenError
from asyncws.testing import TestClient, WebSocketClosed, WebSocketDenied
from tests.servers import UvicornServer

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.sig-_~+/=="


class Flag:
    """Records whether an endpoint's body ran, and what it saw."""

    def __init__(self) -> None:
        self.ran = False
        self.token: str | None = None


def dependency_app(bearer: WebSocketOAuth2PasswordBearer, flag: Flag) -> FastAPI:
    """``/ws``: the token as a dependency; accepts with "chat" if offered, sends the token."""
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket, token: str | None = Depends(bearer)) -> None:
        flag.ran, flag.token = True, token
        await websocket.accept(subprotocol=bearer.select_subprotocol(websocket, ["chat"]))
        await websocket.send_json({"token": token})
        await websocket.close()

    return app


def direct_app(bearer: WebSocketOAuth2PasswordBearer, flag: Flag, *, accept_first: bool) -> FastAPI:
    """``/ws``: the seed's style, ``token = await bearer(websocket)``, before or after accept."""
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        if accept_first:
            await websocket.accept()
        token = await bearer(websocket)
        flag.ran, flag.token = True, token
        if not accept_first:
            await websocket.accept()
        await websocket.send_json({"token": token})
        await websocket.close()

    return app


async def token_of(app: FastAPI, url: str = "/ws", **kwargs: Any) -> Any:
    async with TestClient(app) as client, client.connect(url, **kwargs) as ws:
        return (await ws.receive_json())["token"]


async def denied(app: FastAPI, url: str = "/ws", **kwargs: Any) -> int:
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as caught:
            await client.websocket_connect(url, **kwargs)
        return caught.value.status


# -- where the token comes from -------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_header_token(scheme: str) -> None:
    flag = Flag()
    app = dependency_app(WebSocketOAuth2PasswordBearer(tokenUrl="/token"), flag)
    assert await token_of(app, headers={"Authorization": f"{scheme} {TOKEN}"}) == TOKEN
    assert flag.token == TOKEN


async def test_subprotocol_token_is_never_the_accepted_subprotocol() -> None:
    bearer = WebSocketOAuth2PasswordBearer(tokenUrl="/token")
    app = dependency_app(bearer, Flag())
    async with TestClient(app) as client:
        async with client.connect("/ws", subprotocols=["chat", "bearer.sp-token"]) as ws:
            assert (await ws.receive_json())["token"] == "sp-token"
            assert ws.accepted_subprotocol == "chat"
        # Only the token offered: nothing is accepted (and certainly not the token).
        async with client.connect("/ws", subprotocols=["bearer.sp-token"]) as ws:
            assert (await ws.receive_json())["token"] == "sp-token"
            assert ws.accepted_subprotocol is None


async def test_select_subprotocol_ignores_credentials_even_when_listed() -> None:
    bearer = WebSocketOAuth2PasswordBearer(tokenUrl="/token")
    seen: dict[str, Any] = {}
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        seen["offered"] = bearer.offered_subprotocols(websocket)
        chosen = bearer.select_subprotocol(websocket, ["bearer.abc", "chat"])
        await websocket.accept(subprotocol=chosen)
        await websocket.close()

    async with (
        TestClient(app) as client,
        client.connect("/ws", subprotocols=["bearer.abc", "chat"]) as ws,
    ):
        assert ws.accepted_subprotocol == "chat"
    assert seen["offered"] == ["chat"]


async def test_custom_subprotocol_prefix() -> None:
    bearer = WebSocketOAuth2PasswordBearer(tokenUrl="/token", subprotocol_prefix="access_token.")
    app = dependency_app(bearer, Flag())
    assert await token_of(app, subprotocols=["chat", "access_token.xyz"]) == "xyz"
    assert await denied(app, subprotocols=["chat", "bearer.xyz"]) == 403


async def test_query_token_only_when_enabled() -> None:
    off = dependency_app(WebSocketOAuth2PasswordBearer(tokenUrl="/token"), Flag())
    assert await denied(off, f"/ws?access_token={TOKEN.replace('+', '%2B')}") == 403
    bearer = WebSocketOAuth2PasswordBearer(tokenUrl="/token", query_param="access_token")
    on = dependency_app(bearer, Flag())
    assert await token_of(on, f"/ws?access_token={TOKEN.replace('+', '%2B')}") == TOKEN
    assert await denied(on, "/ws?other=x") == 403


async def test_token_places_in_order() -> None:
    bearer = WebSocketOAuth2PasswordBearer(tokenUrl="/token", query_param="t")
    app = dependency_app(bearer, Flag())
    assert (
        await token_of(
            app, "/ws?t=q", headers={"Authorization": "Bearer h"}, subprotocols=["bearer.s"]
        )
        == "h"
    )
    assert await token_of(app, "/ws?t=q", subprotocols=["bearer.s"]) == "s"
    assert await token_of(app, "/ws?t=q") == "q"


# -- missing or malformed -------------------------------------------------------------------

BAD_HANDSHAKES: list[dict[str, Any]] = [
    {},  # nothing
    {"headers": {"Authorization": f"Basic {TOKEN}"}},
    {"headers": {"Authorization": "Bearer"}},
    {"headers": {"Authorization": "Bearer "}},
    {"headers": {"Authorization": "Bearer two words"}},
    {"headers": {"Authorization": "Bearer <script>"}},
    {"headers": {"Authorization": "Bearer " + "a" * 8193}},
    {"headers": {"Authorization": TOKEN}},  # no scheme
    {"headers": [("Authorization", "Bearer a"), ("Authorization", "Bearer b")]},
    {"subprotocols": ["chat", "bearer."]},
    {"subprotocols": ["bearer.a", "bearer.b"]},
    {"subprotocols": ["chat"]},
    # A malformed header is not rescued by a good subprotocol token.
    {"headers": {"Authorization": "Basic x"}, "subprotocols": ["bearer.good"]},
]


@pytest.mark.parametrize("handshake", BAD_HANDSHAKES)
async def test_missing_or_malformed_refuses_the_handshake(handshake: dict[str, Any]) -> None:
    flag = Flag()
    bearer = WebSocketOAuth2PasswordBearer(tokenUrl="/token")
    assert await denied(dependency_app(bearer, flag), **handshake) == 403
    assert not flag.ran  # the endpoint never started
    flag = Flag()
    assert await denied(direct_app(bearer, flag, accept_first=False), **handshake) == 403
    assert not flag.ran


async def test_after_accept_closes_with_1008() -> None:
    flag = Flag()
    app = direct_app(WebSocketOAuth2PasswordBearer(tokenUrl="/token"), flag, accept_first=True)
    async with TestClient(app) as client, client.connect("/ws") as ws:
        with pytest.raises(WebSocketClosed) as caught:
            await ws.receive_text()
        assert caught.value.code == 1008
        assert caught.value.reason == "not authenticated"
    assert not flag.ran
    # With a token, the seed's style works.
    async with (
        TestClient(app) as client,
        client.connect("/ws", headers={"Authorization": "Bearer t"}) as ws,
    ):
        assert (await ws.receive_json())["token"] == "t"


@pytest.mark.parametrize("handshake", [BAD_HANDSHAKES[0], BAD_HANDSHAKES[1], BAD_HANDSHAKES[9]])
async def test_auto_error_false_returns_none(handshake: dict[str, Any]) -> None:
    bearer = WebSocketOAuth2PasswordBearer(tokenUrl="/token", auto_error=False)
    flag = Flag()
    assert await token_of(dependency_app(bearer, flag), **handshake) is None
    assert flag.ran and flag.token is None
    assert await token_of(direct_app(bearer, Flag(), accept_first=False), **handshake) is None


def test_auth_error_is_a_starlette_websocket_exception() -> None:
    error = WebSocketAuthError()
    assert isinstance(error, WebSocketException)
    assert (error.code, error.reason) == (1008, "not authenticated")


def test_bearer_keeps_the_oauth2_scheme() -> None:
    bearer = WebSocketOAuth2PasswordBearer(
        tokenUrl="/token", scopes={"read": "Read"}, scheme_name="ws-oauth", description="d"
    )
    assert bearer.scheme_name == "ws-oauth"
    assert bearer.auto_error is True
    assert bearer.query_param is None and bearer.subprotocol_prefix == "bearer."
    password = bearer.model.model_dump()["flows"]["password"]
    assert password["tokenUrl"] == "/token" and password["scopes"] == {"read": "Read"}
    with pytest.raises(ValueError):
        WebSocketOAuth2PasswordBearer(tokenUrl="/token", subprotocol_prefix="")


# -- origin ---------------------------------------------------------------------------------


def fake_websocket(headers: Sequence[tuple[str, str]] = ()) -> WebSocket:
    scope = {
        "type": "websocket",
        "path": "/ws",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "subprotocols": [],
    }

    async def receive() -> Any:
        raise AssertionError("not used")

    async def send(message: Any) -> None:
        raise AssertionError("not used")

    return WebSocket(scope, receive, send)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example", True),
        ("https://APP.example", True),
        ("https://app.example:443", True),
        ("https://app.example/", True),
        ("http://localhost:5173", True),
        ("http://app.example", False),  # another scheme is another origin
        ("https://app.example:8443", False),
        ("https://evil.example", False),
        ("https://app.example.evil.example", False),
        ("https://evil.example/https://app.example", False),
        ("null", False),
        ("not an origin", False),
        ("https://user@app.example", False),
        ("", False),
    ],
)
def test_origin_allowed(origin: str, allowed: bool) -> None:
    websocket = fake_websocket([("Origin", origin)])
    assert origin_allowed(websocket, ["https://app.example", "http://localhost:5173"]) is allowed


def test_origin_special_cases() -> None:
    assert origin_allowed(fake_websocket(), ["https://app.example"])  # not a browser
    assert not origin_allowed(fake_websocket(), ["https://app.example"], allow_missing=False)
    assert origin_allowed(fake_websocket([("Origin", "https://x.example")]), ["*"])
    assert origin_allowed(fake_websocket([("Origin", "null")]), ["null"])
    two = fake_websocket([("Origin", "https://app.example"), ("Origin", "https://evil.example")])
    assert not origin_allowed(two, ["https://app.example"])


async def test_origin_guard_refuses_other_origins_before_the_endpoint() -> None:
    flag = Flag()
    app = FastAPI()

    @app.websocket("/guarded", dependencies=[Depends(OriginGuard(["https://app.example"]))])
    async def guarded(websocket: WebSocket) -> None:
        flag.ran = True
        await websocket.accept()
        await websocket.send_json({"token": "ok"})

    @app.websocket("/direct")
    async def direct(websocket: WebSocket) -> None:
        await check_origin(websocket, ["https://app.example"], allow_missing=False)
        flag.ran = True
        await websocket.accept()
        await websocket.send_json({"token": "ok"})

    evil = {"headers": {"Origin": "https://evil.example"}}
    assert await denied(app, "/guarded", **evil) == 403
    assert await denied(app, "/direct", **evil) == 403
    assert await denied(app, "/direct") == 403  # allow_missing=False
    assert not flag.ran
    good = {"headers": {"Origin": "https://app.example"}}
    assert await token_of(app, "/guarded", **good) == "ok"
    assert await token_of(app, "/direct", **good) == "ok"
    assert await token_of(app, "/guarded") == "ok"  # no Origin: not a browser


# -- scopes ---------------------------------------------------------------------------------


def test_require_scopes() -> None:
    require_scopes(["read", "write"], ["read"])
    require_scopes(["read"], [])
    with pytest.raises(ForbiddenError) as caught:
        require_scopes(["read"], ["write", "read", "admin", "write"])
    error = caught.value
    assert error.code == ErrorCode.FORBIDDEN
    assert error.message == "missing scopes: write, admin"
    assert error.errors == [
        {"type": "missing_scope", "scope": "write"},
        {"type": "missing_scope", "scope": "admin"},
    ]


# -- a real server --------------------------------------------------------------------------


@pytest.mark.slow
async def test_real_server_answers_403_or_1008_and_logs_no_error() -> None:
    """uvicorn: HTTP 403 before accept, close 1008 after, a token works, and no traceback."""

    def open_ws(url: str, **kwargs: Any) -> connect:
        return connect(url, proxy=None, open_timeout=5, close_timeout=5, **kwargs)

    with UvicornServer("tests.apps.proxy_apps:upstream_app", ready_path="/stats") as server:
        with pytest.raises(InvalidStatus) as caught:
            async with open_ws(server.ws_url("/secure")):
                pass
        assert caught.value.response.status_code == 403
        headers = {"Authorization": "Bearer real"}
        async with open_ws(server.ws_url("/secure"), additional_headers=headers) as ws:
            assert await asyncio.wait_for(ws.recv(), 5) == "real"
        async with open_ws(server.ws_url("/secure-late")) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        log = server.log_text()
    assert "Traceback" not in log and "Exception" not in log, log
