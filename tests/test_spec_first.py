"""Spec-first apps: an AsyncAPI document drives an app whose handlers are bound by id.

"Round trip" means: a document -> an app built from it -> the document generated from that app's
declarations is equivalent to the first (`asyncws.asyncapi.checks.compare`: the same
channels, addresses, parameters, operations, actions, scopes and message payloads after
``$ref`` resolution).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from asyncws import AsyncWS, AsyncWSFraming, Connection
from asyncws.asyncapi import build_document, describe
from asyncws.asyncapi.checks import check_document, compare
from asyncws.asyncapi.v3 import build
from asyncws.spec_first import SpecApp, SpecError, app_from_spec, load_document
from asyncws.testing import TestClient
from examples.chat import app as chat
from tests import asyncapi_apps
from tests.servers import REPO_ROOT

CHAT_SPEC = REPO_ROOT / "specs" / "chat.asyncapi.yaml"
ECHO_SPEC = REPO_ROOT / "specs" / "echo.asyncapi.yaml"


def _regenerated(app: AsyncWS) -> dict[str, Any]:
    return build(describe(app))


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(lambda: load_document(CHAT_SPEC), id="chat-yaml"),
        pytest.param(lambda: build_document(asyncapi_apps.shop), id="shop"),
        pytest.param(lambda: build_document(asyncapi_apps.keyed), id="keyed"),
        pytest.param(lambda: build_document(asyncapi_apps.minimal), id="minimal"),
    ],
)
def test_round_trip(document: Any) -> None:
    original = document()
    app = app_from_spec(original)
    regenerated = _regenerated(app)
    assert check_document(regenerated) == []
    assert compare(original, regenerated) == []


def test_round_trip_of_a_hand_written_document() -> None:
    app = app_from_spec(ECHO_SPEC)
    assert [(op.type, op.name) for op in app.operations.values()] == [
        ("echo", "echo"),
        ("shout", "shout"),
    ]
    assert [t.address for t in app.topics] == ["news/{section}"]
    regenerated = _regenerated(app)
    assert check_document(regenerated) == []
    # The generated document has the asyncws frame envelope; the payloads inside it are
    # the hand-written ones.
    echo = regenerated["components"]["messages"]["echo"]["payload"]
    assert echo["properties"]["data"] == {"$ref": "#/components/schemas/Text"}
    # ... named after their place (an id, and a title for the object) and otherwise as written
    text = regenerated["components"]["schemas"]["Text"]
    assert (text["title"], text["x-parser-schema-id"]) == ("Text", "Text")
    assert text["properties"]["text"].pop("x-parser-schema-id") == "TextText"
    bare = {k: v for k, v in text.items() if k not in ("title", "x-parser-schema-id")}
    assert bare == load_document(ECHO_SPEC)["components"]["schemas"]["Text"]


def test_compare_finds_differences() -> None:
    original = load_document(CHAT_SPEC)
    changed = copy.deepcopy(original)
    changed["components"]["schemas"]["Post"]["properties"]["text"]["maxLength"] = 10
    changed["channels"]["roomsRoom"]["address"] = "room/{room}"
    del changed["operations"]["whoami"]
    differences = compare(original, changed)
    assert any(
        d.startswith("/operations/post/messages/0/properties/data/properties/text/maxLength")
        for d in differences
    ), differences
    assert '/channels/roomsRoom/address: expected "rooms/{room}", got "room/{room}"' in (
        differences
    )
    assert any(d.startswith("/operations/whoami: missing") for d in differences)
    # documentation-only changes are not differences
    cosmetic = copy.deepcopy(original)
    cosmetic["components"]["schemas"]["Post"]["description"] = "changed"
    cosmetic["info"]["title"] = "changed"
    assert compare(original, cosmetic) == []


def test_missing_and_unknown_handlers_fail_at_startup() -> None:
    app = app_from_spec(CHAT_SPEC)

    @app.handler("post")
    def post(data: dict[str, Any], conn: Connection) -> dict[str, Any]:
        return {}

    @app.handler("postt")
    def typo(data: dict[str, Any], conn: Connection) -> None:
        return None

    with pytest.raises(SpecError) as info:
        app.compile()
    problems = info.value.problems
    assert "no handler for operation 'whoami' (frames of type 'whoami')" in problems
    assert any("'postt', which is not a receive operation" in p for p in problems)
    assert len(problems) == 5  # join, typing, direct, whoami + the typo
    with pytest.raises(SpecError, match="two handlers"):
        app.handler("post")(post)


def test_documents_that_cannot_drive_an_app() -> None:
    with pytest.raises(SpecError, match=r"only 3\.x"):
        load_document({"asyncapi": "2.6.0"})
    document = load_document(ECHO_SPEC)
    document["channels"]["other"] = {"address": "/other"}
    document["operations"]["shout"]["channel"] = {"$ref": "#/channels/other"}
    document["operations"]["shout"]["messages"] = []
    with pytest.raises(SpecError, match="several channels"):
        app_from_spec(document)


def _chat_app() -> SpecApp:
    app = app_from_spec(CHAT_SPEC)

    @app.handler("post")
    async def post(data: dict[str, Any], conn: Connection) -> dict[str, Any]:
        at = "2024-05-01T10:00:00Z"
        await app.publish(
            "rooms.room",
            {"type": "posted", "user": "ann", "text": data["text"], "at": at},
            room=data["room"],
        )
        if data["text"] == "bad reply":
            return {"room": data["room"]}  # "at" is missing
        return {"room": data["room"], "at": at}

    for name in ("join", "typing", "direct"):
        app.handler(name)(lambda data, conn: None)

    @app.handler("whoami")
    def whoami(data: None, conn: Connection) -> dict[str, Any]:
        assert data is None
        return {"name": "ann", "connection_id": conn.id}

    return app


async def test_spec_app_serves_the_protocol() -> None:
    app = _chat_app()
    assert app.path == "/ws"
    api = FastAPI(lifespan=app.lifespan)
    api.include_router(app.asgi_router)
    async with TestClient(api) as client, client.connect("/ws") as ws:
        assert (await ws.subscribe("rooms/lobby"))["type"] == "ack"
        bad_topic = await ws.subscribe("rooms/NOT VALID")
        assert bad_topic["type"] == "error"
        assert bad_topic["code"] == "unknown_topic"

        reply = await ws.call("post", {"room": "lobby", "text": "hi"})
        assert reply == {
            "type": "reply",
            "id": reply["id"],
            "data": {"room": "lobby", "at": "2024-05-01T10:00:00Z"},
        }
        event = await ws.receive_event("rooms/lobby")
        assert event["type"] == "posted"
        assert event["data"]["text"] == "hi"

        invalid = await ws.call("post", {"room": "lobby", "text": ""})
        assert invalid["type"] == "error"
        assert invalid["code"] == "validation_error"
        assert invalid["errors"][0]["loc"] == ["text"]

        wrong = await ws.call("post", {"room": "lobby", "text": "bad reply"})
        assert wrong["type"] == "error"
        assert wrong["code"] == "internal_error"

        me = await ws.call("whoami")
        assert me["data"]["name"] == "ann"
        assert (await ws.call("join", {"room": "lobby"}))["type"] == "ack"


async def test_spec_app_validates_published_events() -> None:
    app = _chat_app()
    api = FastAPI(lifespan=app.lifespan)
    api.include_router(app.asgi_router)
    async with TestClient(api):
        with pytest.raises(Exception, match="required"):
            await app.publish("rooms.room", {"type": "posted", "user": "ann"}, room="lobby")
        with pytest.raises(KeyError):
            await app.publish("nowhere", {}, room="lobby")
        # by send-operation id and by address too
        assert app.spec.find_topic("users.user.inbox") is app.spec.find_topic("users/{user}/inbox")


async def test_hand_written_spec_app() -> None:
    app = app_from_spec(ECHO_SPEC)

    @app.handler("echo")
    def echo(data: dict[str, Any], conn: Connection) -> dict[str, Any]:
        return {"text": data["text"]}

    @app.handler("shout")
    async def shout(data: dict[str, Any], conn: Connection) -> None:
        await app.publish("news", data["headline"], section=data["section"])

    api = FastAPI(lifespan=app.lifespan)
    api.include_router(app.asgi_router)
    async with TestClient(api) as client, client.connect("/echo") as ws:
        assert (await ws.call("echo", {"text": "hello"}))["data"] == {"text": "hello"}
        assert (await ws.subscribe("news/+"))["type"] == "ack"
        assert (await ws.subscribe("news/weather"))["code"] == "unknown_topic"
        headline = {"title": "Rain", "urgent": False}
        ack = await ws.call("shout", {"section": "world", "headline": headline})
        assert ack["type"] == "ack"
        event = await ws.receive_event("news/world")
        assert event == {"type": "headline", "topic": "news/world", "data": headline}


async def test_client_publish_and_scopes_from_the_document() -> None:
    document = build_document(asyncapi_apps.shop)
    granted: list[str] = []
    app = app_from_spec(document, authenticate=lambda: {"scopes": granted})
    app.handler("order.place")(lambda data, conn: {"id": data["items"][0]["sku"], "status": "x"})
    app.handler("cancelOrder")(lambda data, conn: None)
    assert app.path == "/ws/{tenant}"
    support = app.spec.find_topic("support.ticket.chat")
    assert support.client_publish
    assert support.publish_scopes == ["chat"]
    assert app.operations["order.place"].scopes == ["orders:write"]
    api = FastAPI(lifespan=app.lifespan)
    api.include_router(app.asgi_router)
    async with TestClient(api) as client, client.connect("/ws/acme") as ws:
        refused = await ws.subscribe("support/T123/chat")
        assert refused["code"] == "forbidden"
        granted.append("chat")
        assert (await ws.subscribe("support/T123/chat"))["type"] == "ack"
        frame = {"type": "publish", "id": 9, "topic": "support/T123/chat", "data": {"text": "hi"}}
        await ws.send_json(frame)
        assert (await ws.receive_until(lambda f: f.get("id") == 9))["type"] == "ack"
        event = await ws.receive_event("support/T123/chat")
        assert event["data"] == {"text": "hi"}
        await ws.send_json({**frame, "id": 10, "data": {"text": ""}})
        error = await ws.receive_until(lambda f: f.get("id") == 10)
        assert error["code"] == "validation_error"


async def test_served_document_is_the_given_one() -> None:
    app = _chat_app()
    api = FastAPI()
    api.include_router(app.asgi_router)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="https://chat.example") as c:
        served = (await c.get("/asyncapi.json")).json()
    original = load_document(CHAT_SPEC)
    assert served["servers"] == {"default": {"host": "chat.example", "protocol": "wss"}}
    assert {k: v for k, v in served.items() if k != "servers"} == {
        k: v for k, v in original.items() if k != "servers"
    }
    assert compare(original, build_document(chat.ws)) == []


def test_asyncws_from_asyncapi() -> None:
    app = AsyncWS.from_asyncapi(ECHO_SPEC, broker="memory://")
    assert isinstance(app, SpecApp)
    assert app.title == "Echo"
    assert sorted(app.spec.spec_operations) == ["echo", "shout"]


# -- spec-first apps are ordinary apps ---------------------------------------------------------


QUOTES_SPEC = REPO_ROOT / "tests" / "specs" / "quotes.asyncapi.yaml"


def test_an_app_built_from_a_document_is_an_ordinary_asyncws() -> None:
    from asyncws.document_app import DocumentApp
    from asyncws.spec import DocumentSpec, EnvelopeSpec

    envelope = AsyncWS.from_asyncapi(ECHO_SPEC)
    framed = AsyncWS.from_asyncapi(QUOTES_SPEC)
    assert type(envelope) is AsyncWS and type(framed) is AsyncWS
    assert isinstance(envelope.spec, EnvelopeSpec) and isinstance(framed.spec, DocumentSpec)
    assert isinstance(envelope, SpecApp) and not isinstance(envelope, DocumentApp)
    assert isinstance(framed, DocumentApp) and not isinstance(framed, SpecApp)
    assert not isinstance(AsyncWS(), SpecApp) and not isinstance(object(), DocumentApp)
    assert framed.framing is framed.spec.framing and framed.framing.name == "document"


def test_a_spec_given_to_asyncws_directly() -> None:
    """`load_spec` reads; `AsyncWS(spec=...)` binds it: the document's declarations, its
    path and title (the app's own arguments win), its handlers checked at compile."""
    from asyncws.spec import load_spec

    spec = load_spec(ECHO_SPEC)
    app = AsyncWS(**{**spec.app_arguments, "title": "Mine"}, spec=spec)
    assert app.spec is spec and spec.app is app
    assert (app.title, app.path) == ("Mine", "/echo")
    assert sorted(op.type for op in app.operations.values()) == ["echo", "shout"]
    assert [t.address for t in app.topics] == ["news/{section}"]
    with pytest.raises(RuntimeError, match="one app"):
        AsyncWS(spec=spec)  # a spec declares on the app it drives
    with pytest.raises(SpecError, match="no handler for operation 'echo'"):
        app.compile()
    app.handler("echo")(lambda data, conn: data)
    app.handler("shout")(lambda data, conn: data)
    assert app.compile() is app.compile()
    framed = load_spec(QUOTES_SPEC)
    with pytest.raises(ValueError, match="fixes the framing"):
        AsyncWS(framing=AsyncWSFraming(), spec=framed)


def test_what_is_only_for_apps_built_from_a_document() -> None:
    code_first = AsyncWS()
    with pytest.raises(TypeError, match="built from a document"):
        code_first.handler("echo")
    with pytest.raises(AttributeError):
        code_first.document  # noqa: B018
    envelope = AsyncWS.from_asyncapi(ECHO_SPEC)
    framed = AsyncWS.from_asyncapi(QUOTES_SPEC)
    with pytest.raises(TypeError, match="own framing: use publish"):
        asyncio.run(envelope.send("x", {}))
    with pytest.raises(TypeError, match="envelope: use send"):
        asyncio.run(framed.publish("x", {}))
    with pytest.raises(TypeError, match="own framing"):
        envelope.on_open(lambda conn: None)


def test_the_old_names_still_work_with_a_deprecation_warning() -> None:
    from asyncws.document_app import DocumentApp

    with pytest.warns(DeprecationWarning, match=r"SpecApp\(\.\.\.\) is deprecated"):
        old = SpecApp(ECHO_SPEC, broker="memory://")
    assert type(old) is AsyncWS and old.title == "Echo"
    with pytest.warns(DeprecationWarning, match="DocumentApp"):
        framed = DocumentApp(QUOTES_SPEC, skip_unsupported=True)
    assert type(framed) is AsyncWS and framed.framing.name == "document"
    # what only SpecApp / DocumentApp had is on the spec now; the old way warns
    with pytest.warns(DeprecationWarning, match=r"app.document is deprecated: use app.spec"):
        assert old.document is old.spec.document  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match="app.api"):
        assert framed.api is framed.spec.api  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        old.api  # type: ignore[attr-defined]  # noqa: B018  (an envelope spec has no api)
    from asyncws.asyncapi import spec_first as shim

    assert shim.SpecApp is SpecApp and shim.SpecError is SpecError
