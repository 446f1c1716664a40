"""The JWT example: tokens in the header or the subprotocol, scopes, expiry closes with 4001."""

from __future__ import annotations

import httpx
import pytest

from asyncws import CloseCode
from asyncws.testing import TestClient, WebSocketDenied
from examples.jwt.app import app, issue_token


async def test_no_token_or_a_bad_one_is_refused_at_the_handshake() -> None:
    forged = issue_token("ann", ["notes:read"]) + "x"
    async with TestClient(app) as client:
        for headers in ({}, {"authorization": "Bearer " + forged}, {"authorization": "Basic x"}):
            with pytest.raises(WebSocketDenied) as denied:
                await client.websocket_connect("/ws", headers=headers)
            assert denied.value.status == 403
        expired = issue_token("ann", ["notes:read"], ttl=-10)
        with pytest.raises(WebSocketDenied):
            await client.websocket_connect("/ws", headers={"authorization": f"Bearer {expired}"})


async def test_scopes_per_operation_and_per_topic() -> None:
    reader = {"authorization": "Bearer " + issue_token("ann", ["notes:read"])}
    writer = issue_token("bob", ["notes:read", "notes:write"])
    async with (
        TestClient(app) as client,
        client.connect("/ws", headers=reader) as ann,
        client.connect("/ws", subprotocols=["bearer." + writer]) as bob,
    ):
        assert bob.accepted_subprotocol is None  # the token is never echoed back
        assert (await ann.subscribe("boards/team/notes"))["type"] == "ack"
        denied = await ann.call("add_note", {"board": "team", "text": "hi"})
        assert denied["code"] == "forbidden" and "notes:write" in denied["message"]
        reply = await bob.call("add_note", {"board": "team", "text": "hello"})
        assert reply["type"] == "reply" and reply["data"]["author"] == "bob"
        event = await ann.receive_event("boards/team/notes")
        assert event["data"]["text"] == "hello"

    nobody = {"authorization": "Bearer " + issue_token("eve", [])}
    async with TestClient(app) as client, client.connect("/ws", headers=nobody) as eve:
        refused = await eve.subscribe("boards/team/notes")
        assert refused["code"] == "forbidden"


async def test_the_connection_closes_with_4001_when_the_token_expires() -> None:
    short = {"authorization": "Bearer " + issue_token("ann", ["notes:read"], ttl=1.5)}
    async with TestClient(app) as client, client.connect("/ws", headers=short) as ann:
        assert (await ann.subscribe("boards/team/notes"))["type"] == "ack"
        assert await ann.expect_closed(timeout=6) == CloseCode.TOKEN_EXPIRED == 4001


async def test_token_endpoint() -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        bad = await http.post("/token", json={"username": "ann", "password": "nope"})
        assert bad.status_code == 401
        ok = await http.post(
            "/token", json={"username": "ann", "password": "secret", "scope": "notes:write x"}
        )
        assert ok.status_code == 200
    token = ok.json()["access_token"]
    async with TestClient(app) as client:
        headers = {"authorization": f"Bearer {token}"}
        async with client.connect("/ws", headers=headers) as ann:
            reply = await ann.call("add_note", {"board": "b", "text": "t"})
            assert reply["type"] == "reply"
