"""The AsyncAPI routes and the Host header (issue 18, finding 8).

/asyncapi.json, /asyncapi.yaml and /asyncapi fill ``servers`` (and OAuth2 URLs relative to it)
from the request unless the app pins ``public_url``. Answers built from the request carry
``Vary: Host`` and ``Cache-Control: private, no-cache`` so that a shared cache cannot serve a
poisoned Host to everyone; ``X-Forwarded-Host``/``-Proto`` count only from trusted peers.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI, Security

from asyncws import AsyncWS, Router
from asyncws.auth import WebSocketOAuth2PasswordBearer

ROUTES = ("/asyncapi.json", "/asyncapi.yaml", "/asyncapi")
EVIL = {"host": "evil.example"}


def build(**kwargs: Any) -> FastAPI:
    bearer = WebSocketOAuth2PasswordBearer(tokenUrl="/token")

    async def authenticate(token: str = Security(bearer)) -> dict[str, str]:
        return {"sub": token}

    router = Router()

    @router.operation("ping")
    async def ping() -> str:
        return "pong"

    ws = AsyncWS(title="pinned", authenticate=authenticate, **kwargs)
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return app


async def get(app: FastAPI, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.get(url, headers=headers)


def server_and_token_url(response: httpx.Response) -> tuple[dict[str, Any], str]:
    document = yaml.safe_load(response.text)  # JSON is YAML too
    scheme = next(iter(document["components"]["securitySchemes"].values()))
    return document["servers"]["default"], scheme["flows"]["password"]["tokenUrl"]


@pytest.mark.parametrize("route", ROUTES)
async def test_answers_that_reflect_host_say_so(route: str) -> None:
    response = await get(build(), route, EVIL)
    assert response.status_code == 200
    assert response.headers["vary"] == "Host"
    assert response.headers["cache-control"] == "private, no-cache"
    assert "evil.example" in response.text  # reflected (documented), but never shared


async def test_a_pinned_public_url_ignores_host_and_forwarded_headers() -> None:
    app = build(public_url="https://chat.example")
    headers = {**EVIL, "x-forwarded-host": "evil.example", "x-forwarded-proto": "http"}
    for route in ROUTES:
        response = await get(app, route, headers)
        assert "evil.example" not in response.text
        assert "vary" not in response.headers
        assert response.headers["cache-control"] == "no-cache"
    server, token_url = server_and_token_url(await get(app, "/asyncapi.json", headers))
    assert server["host"] == "chat.example" and server["protocol"] == "wss"
    assert token_url == "https://chat.example/token"


async def test_forwarded_headers_only_from_trusted_peers() -> None:
    forwarded = {"host": "10.0.0.5:8000", "x-forwarded-host": "api.example"}
    forwarded["x-forwarded-proto"] = "https"
    untrusting = await get(build(), "/asyncapi.json", forwarded)
    server, token_url = server_and_token_url(untrusting)
    assert server["host"] == "10.0.0.5:8000" and token_url == "http://10.0.0.5:8000/token"

    trusted = await get(build(forwarded_allow_ips="127.0.0.1"), "/asyncapi.json", forwarded)
    server, token_url = server_and_token_url(trusted)
    assert server == {**server, "host": "api.example", "protocol": "wss"}
    assert token_url == "https://api.example/token"
    assert trusted.headers["vary"] == "Host, X-Forwarded-Host, X-Forwarded-Proto"

    elsewhere = await get(build(forwarded_allow_ips=["10.0.0.0/8"]), "/asyncapi.json", forwarded)
    assert server_and_token_url(elsewhere)[0]["host"] == "10.0.0.5:8000"
