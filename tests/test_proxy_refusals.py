"""What the gateway refuses before it connects upstream (issue 18, findings 1 and 9).

A real gateway process (tests/apps/proxy_apps.py) in front of a real upstream: a browser page
of another origin is refused with 403 (same-origin by default, as in the app), and so is a
client that sends ``Authorization`` twice (the gateway never forwards two credentials for the
upstream to choose from). Exactly one ``Authorization`` is forwarded as before.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.servers import UvicornServer

pytestmark = pytest.mark.slow

WAIT = 10.0


@pytest.fixture(scope="module")
def gateway() -> Iterator[UvicornServer]:
    with UvicornServer("tests.apps.proxy_apps:upstream_app", ready_path="/stats") as upstream:
        env = {"ASYNCWS_TEST_UPSTREAM": f"ws://127.0.0.1:{upstream.port}"}
        with UvicornServer(
            "tests.apps.proxy_apps:gateway_app", env=env, ready_path="/stats"
        ) as server:
            yield server
            log = server.log_text()
        assert "Traceback" not in log, log


async def ended(gateway: UvicornServer, ending: dict[str, Any]) -> bool:
    """Whether a relay of the gateway ended so, polling (bounded) until it shows: endings
    are recorded once the refusal is sent, and a relay that ran before may end later."""
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as http:
        for _ in range(100):
            found = (await http.get(f"{gateway.url}/stats")).json()["endings"]
            if ending in found:
                return True
            await asyncio.sleep(0.05)
    return False


async def status_of(gateway: UvicornServer, headers: list[tuple[str, str]]) -> int | str:
    """The HTTP status of a refused handshake, or the upstream's ``info`` answer."""
    try:
        async with connect(
            gateway.ws_url("/ws"), additional_headers=headers, open_timeout=WAIT
        ) as ws:
            await ws.send("info")
            return str(await asyncio.wait_for(ws.recv(), WAIT))
    except InvalidStatus as exc:
        return int(exc.response.status_code)


async def test_a_repeated_authorization_header_is_refused(gateway: UvicornServer) -> None:
    twice = [("Authorization", "Bearer alice"), ("Authorization", "Bearer admin")]
    assert await status_of(gateway, twice) == 403
    refusal = {"by": "proxy", "code": 1008, "reason": "repeated authorization header"}
    assert await ended(gateway, refusal)
    once = await status_of(gateway, [("Authorization", "Bearer alice")])
    assert isinstance(once, str)
    assert json.loads(once)["headers"]["authorization"] == "Bearer alice"


async def test_the_gateway_is_same_origin_by_default(gateway: UvicornServer) -> None:
    assert await status_of(gateway, [("Origin", "https://evil.example")]) == 403
    assert await ended(gateway, {"by": "proxy", "code": 1008, "reason": "origin not allowed"})
    assert await status_of(gateway, [("Origin", "null")]) == 403
    own = await status_of(gateway, [("Origin", f"http://127.0.0.1:{gateway.port}")])
    assert isinstance(own, str) and json.loads(own)["path"] == "/ws"
