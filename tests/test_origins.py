"""Same-origin by default (issue 18, finding 1): cross-site websocket hijacking is refused.

A cookie-authenticated app (tests/apps/cookie_app.py, written as docs/security.md describes)
is probed over real websockets with a foreign Origin, ``Origin: null`` and no Origin, and in
headless Chromium from a page on a sibling port of 127.0.0.1 (same site: its SameSite=Strict
cookie is sent) and from its own page. The rules themselves (`asyncws.auth.origin_allowed`)
and every place that uses them (the app's handshake, the seed's ``new_connection``, the
proxy) are checked in process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from asyncws import AsyncWS, Router, WebSocketManager
from asyncws.auth import origin_allowed, request_origin
from asyncws.forwarded import PublicAddress, normalize_origin
from asyncws.testing import TestClient, WebSocketDenied
from tests.browser import launch_chromium
from tests.servers import UvicornServer

WAIT = 10.0
COOKIE = {"Cookie": "session=s-ann"}
TRANSFER = json.dumps({"type": "transfer", "id": 1, "data": {"to": "mallory", "amount": 100}})


def websocket_for(
    headers: Sequence[tuple[str, str]], *, scheme: str = "ws", client: str = "10.0.0.1"
) -> WebSocket:
    scope = {
        "type": "websocket",
        "scheme": scheme,
        "path": "/ws",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "subprotocols": [],
        "client": (client, 50000),
    }

    async def never(*_: Any) -> Any:
        raise AssertionError("not used")

    return WebSocket(scope, never, never)


# -- the comparison -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "host", "origin", "allowed"),
    [
        ("wss", "app.example", "https://app.example", True),
        ("wss", "app.example", "https://app.example:443", True),  # default port normalised
        ("wss", "app.example:443", "https://app.example", True),
        ("wss", "APP.example", "https://app.example/", True),
        ("ws", "app.example", "http://app.example:80", True),
        ("ws", "127.0.0.1:8000", "http://127.0.0.1:8000", True),
        ("ws", "[::1]:8000", "http://[::1]:8000", True),
        ("ws", "127.0.0.1:8000", "http://127.0.0.1:8001", False),  # a sibling port
        ("ws", "app.example", "https://app.example", False),  # another scheme
        ("wss", "app.example", "http://app.example", False),
        ("wss", "app.example", "https://evil.example", False),
        ("wss", "app.example", "https://app.example.evil.example", False),
        ("wss", "app.example", "https://evil.example/https://app.example", False),
        ("wss", "app.example", "null", False),
        ("wss", "app.example", "https://user@app.example", False),
        ("wss", "app.example", "not an origin", False),
        ("wss", "bad host!", "https://bad host!", False),  # no usable Host: no same-origin
    ],
)
def test_same_origin_by_default(scheme: str, host: str, origin: str, allowed: bool) -> None:
    websocket = websocket_for([("Host", host), ("Origin", origin)], scheme=scheme)
    assert origin_allowed(websocket) is allowed
    assert origin_allowed(websocket, None) is allowed
    assert origin_allowed(websocket, []) is allowed


def test_a_list_widens_star_opts_out_null_only_when_listed() -> None:
    def ws(origin: str) -> WebSocket:
        return websocket_for([("Host", "app.example"), ("Origin", origin)], scheme="wss")

    listed = ["https://admin.example", "wss://tools.example"]  # ws(s) read as http(s)
    assert origin_allowed(ws("https://app.example"), listed)  # same-origin still passes
    assert origin_allowed(ws("https://admin.example:443"), listed)
    assert origin_allowed(ws("https://tools.example"), listed)
    assert not origin_allowed(ws("https://evil.example"), listed)
    assert not origin_allowed(ws("null"), listed)
    assert origin_allowed(ws("null"), ["null"])
    assert origin_allowed(ws("https://evil.example"), ["*"])
    assert origin_allowed(ws("null"), ["*"])
    # no Origin: not a browser page; allowed unless the caller says otherwise
    assert origin_allowed(websocket_for([("Host", "app.example")]))
    assert not origin_allowed(websocket_for([("Host", "app.example")]), allow_missing=False)
    two = websocket_for(
        [("Host", "app.example"), ("Origin", "https://app.example"), ("Origin", "https://x.io")],
        scheme="wss",
    )
    assert not origin_allowed(two)


def test_the_server_origin_can_be_pinned_or_forwarded_by_a_trusted_proxy() -> None:
    behind = [
        ("Host", "10.0.0.5:8000"),
        ("X-Forwarded-Host", "app.example"),
        ("X-Forwarded-Proto", "https"),
        ("Origin", "https://app.example"),
    ]
    assert request_origin(websocket_for(behind)) == "http://10.0.0.5:8000"
    assert not origin_allowed(websocket_for(behind))  # forwarded headers are not believed
    trusted = PublicAddress(forwarded_allow_ips=["10.0.0.0/8"])
    assert trusted.origin(websocket_for(behind, client="10.1.2.3")) == "https://app.example"
    assert trusted.origin(websocket_for(behind, client="192.0.2.9")) == "http://10.0.0.5:8000"
    pinned = PublicAddress("https://app.example")
    own = pinned.origin(websocket_for(behind))
    assert own == "https://app.example"
    assert origin_allowed(websocket_for(behind), server_origin=own)
    assert normalize_origin("WSS://App.Example:443/") == "https://app.example"
    with pytest.raises(ValueError):
        PublicAddress("ftp://app.example")


# -- every place uses it --------------------------------------------------------------------


def declarative(**kwargs: Any) -> FastAPI:
    router = Router()

    @router.operation("ping")
    async def ping() -> str:
        return "pong"

    ws = AsyncWS(**kwargs)
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return app


async def test_the_app_handshake_is_same_origin_by_default() -> None:
    """The in-memory client's Host is ``testserver`` and its scheme ``ws``."""
    async with TestClient(declarative()) as client:
        for origin in ("https://evil.example", "null", "http://testserver:81"):
            with pytest.raises(WebSocketDenied) as denied:
                await client.websocket_connect("/ws", headers={"origin": origin})
            assert denied.value.status == 403
        for headers in ({"origin": "http://testserver"}, {"origin": "http://TESTSERVER:80"}, {}):
            async with client.connect("/ws", headers=headers) as s:
                assert (await s.call("ping"))["data"] == "pong"
    async with (
        TestClient(declarative(allowed_origins=["*"])) as client,
        client.connect("/ws", headers={"origin": "https://evil.example"}) as s,
    ):
        assert (await s.call("ping"))["data"] == "pong"
    async with TestClient(declarative(public_url="https://chat.example")) as client:
        with pytest.raises(WebSocketDenied):  # the pinned origin is the app's own, not Host's
            await client.websocket_connect("/ws", headers={"origin": "http://testserver"})
        async with client.connect("/ws", headers={"origin": "https://chat.example"}) as s:
            assert (await s.call("ping"))["data"] == "pong"


async def test_the_seed_new_connection_is_same_origin_by_default() -> None:
    manager = WebSocketManager("origins-seed")
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        connection = await manager.new_connection(websocket)
        async for message in connection.iter_json():
            await manager.receive(connection, message)
        await manager.remove_connection(connection)

    async with manager, TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            await client.websocket_connect("/ws", headers={"origin": "https://evil.example"})
        assert denied.value.status == 403
        assert len(manager) == 0
        async with client.connect("/ws", headers={"origin": "http://testserver"}) as s:
            await s.send_json({"type": "subscribe", "topic": "t", "id": 1})
            assert (await s.receive_json())["type"] == "ack"


# -- the cookie app over real websockets ------------------------------------------------------


@pytest.fixture(scope="module")
def bank() -> Iterator[UvicornServer]:
    with UvicornServer("tests.apps.cookie_app:app", ready_path="/actions") as server:
        yield server
        log = server.log_text()
    assert "Traceback" not in log, log


async def actions(server: UvicornServer) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as http:
        response = await http.get(server.url + "/actions")
        found: list[dict[str, Any]] = response.json()
        return found


def actions_now(server: UvicornServer) -> list[dict[str, Any]]:
    """`actions` for sync code (Playwright's sync API runs its own loop in this thread)."""
    found: list[dict[str, Any]] = httpx.get(server.url + "/actions", trust_env=False).json()
    return found


async def try_transfer(server: UvicornServer, headers: dict[str, str]) -> int | dict[str, Any]:
    """The HTTP status of a refused handshake, or the answer to one transfer."""
    try:
        async with connect(
            server.ws_url("/ws"), additional_headers=headers, open_timeout=WAIT
        ) as ws:
            await ws.send(TRANSFER)
            answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            return answer
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.slow
async def test_cookie_app_refuses_foreign_and_null_origins(bank: UvicornServer) -> None:
    before = len(await actions(bank))
    assert await try_transfer(bank, {**COOKIE, "Origin": "https://evil.example"}) == 403
    assert await try_transfer(bank, {**COOKIE, "Origin": "null"}) == 403
    sibling = f"http://127.0.0.1:{bank.port + 1}"
    assert await try_transfer(bank, {**COOKIE, "Origin": sibling}) == 403
    assert len(await actions(bank)) == before  # nothing was done as ann
    # the app's own page, and a client that is not a browser (no Origin: documented)
    own = await try_transfer(bank, {**COOKIE, "Origin": f"http://127.0.0.1:{bank.port}"})
    assert isinstance(own, dict) and own["data"]["user"] == "ann"
    cli = await try_transfer(bank, COOKIE)
    assert isinstance(cli, dict) and cli["data"]["user"] == "ann"
    assert len(await actions(bank)) == before + 2


@pytest.mark.slow
@pytest.mark.browser
def test_chromium_page_on_a_sibling_port_is_refused(bank: UvicornServer) -> None:
    """A page on 127.0.0.1:other-port is same-site (its Strict cookie goes along) but not
    same-origin: its websocket is refused; the app's own page works."""
    with (
        UvicornServer("tests.apps.cookie_app:app", ready_path="/actions") as sibling,
        launch_chromium() as browser,
    ):
        page = browser.new_page()
        page.set_default_timeout(WAIT * 1000)
        page.goto(f"{bank.url}/login?user=ann")  # SameSite=Strict session cookie
        before = len(actions_now(bank))
        page.goto(f"{sibling.url}/?127.0.0.1:{bank.port}")
        page.wait_for_function("document.title !== 'page'")
        assert page.title() == "closed 1006"  # the handshake failed (403)
        assert len(actions_now(bank)) == before
        page.goto(f"{bank.url}/")
        page.wait_for_function("document.title !== 'page'")
        answer = json.loads(page.title().removeprefix("answer "))
        assert answer["type"] == "reply" and answer["data"]["user"] == "ann"
        assert len(actions_now(bank)) == before + 1
