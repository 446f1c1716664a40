"""FastAPI's OpenAPI document (and so ``/docs``) links to the websocket API, and the AsyncAPI
page links to ``/docs`` when the app has them."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from asyncws import AsyncWS
from asyncws.asyncapi import link_openapi
from asyncws.testing import TestClient


def build(**fastapi_options: object) -> tuple[AsyncWS, FastAPI]:
    ws = AsyncWS(title="Linked", version="2.0.0")

    @ws.operation("ping")
    async def ping() -> None:
        pass

    app = FastAPI(title="HTTP side", lifespan=ws.lifespan, **fastapi_options)  # type: ignore[arg-type]
    return ws, app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.get(path)


async def test_the_lifespan_links_openapi_to_the_asyncapi_page() -> None:
    ws, app = build(description="The shop's HTTP API.")
    app.include_router(ws.asgi_router, prefix="/realtime")
    async with TestClient(app):
        openapi = (await _get(app, "/openapi.json")).json()
        page = (await _get(app, "/realtime/asyncapi")).text
    assert openapi["x-asyncapi"] == [
        {
            "title": "Linked",
            "version": "2.0.0",
            "websocket": "/realtime/ws",
            "docs": "/realtime/asyncapi",
            "document": "/realtime/asyncapi.json",
        }
    ]
    description = openapi["info"]["description"]
    assert description.startswith("The shop's HTTP API.\n\n**WebSocket API**: Linked 2.0.0")
    assert "[the docs](/realtime/asyncapi)" in description
    assert 'id="link-openapi"' in page and 'href="/docs"' in page


async def test_twice_started_apps_link_once() -> None:
    ws, app = build()
    app.include_router(ws.asgi_router)
    async with TestClient(app):
        pass
    async with TestClient(app):
        openapi = (await _get(app, "/openapi.json")).json()
    assert len(openapi["x-asyncapi"]) == 1
    assert openapi["info"]["description"].count("**WebSocket API**") == 1


async def test_no_openapi_no_link() -> None:
    ws, app = build(openapi_url=None)
    app.include_router(ws.asgi_router)
    assert link_openapi(app, ws) is False
    async with TestClient(app):
        page = (await _get(app, "/asyncapi")).text
    assert 'id="link-openapi"' not in page


async def test_docs_disabled_no_link_on_the_page() -> None:
    ws, app = build(docs_url=None)
    app.include_router(ws.asgi_router)
    async with TestClient(app):
        page = (await _get(app, "/asyncapi")).text
        openapi = (await _get(app, "/openapi.json")).json()
    assert 'id="link-openapi"' not in page
    assert openapi["x-asyncapi"][0]["docs"] == "/asyncapi"  # the JSON still links


def test_an_app_that_does_not_serve_the_asyncapi_routes_is_not_linked() -> None:
    ws, app = build()
    assert link_openapi(app, ws) is False
    assert "x-asyncapi" not in app.openapi()
