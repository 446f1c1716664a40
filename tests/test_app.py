"""The AsyncWS application: endpoint, lifespan, operations, topics, hooks, errors.

Everything runs through the in-memory `asyncws.testing.TestClient`: real ASGI messages, no
network, bounded waits (every receive has a timeout), no sleeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import WebSocketException as StarletteWebSocketException

from asyncws import (
    AsyncWS,
    AsyncWSError,
    Connection,
    ErrorCode,
    ForbiddenError,
    InvalidTopicError,
    Limits,
    Router,
)
from asyncws.testing import TestClient, WebSocketDenied, WebSocketSession

# -- a small app with one of everything --------------------------------------------------------


class Say(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str = Field(pattern=r"^[a-z]+$")
    text: str = Field(min_length=1)
    count: int = 1


class Said(BaseModel):
    type: Literal["said"] = "said"
    user: str
    text: str


class Left(BaseModel):
    type: Literal["left"] = "left"
    user: str


class Note(BaseModel):
    text: str = Field(max_length=10)


class Echo(BaseModel):
    text: str


class Teapot(Exception):
    pass


def query_user(conn: Connection) -> dict[str, str]:
    return {"name": conn.websocket.query_params.get("user", "anon")}


def own_name(name: str | None, conn: Connection) -> bool:
    return name == conn.user_id


# Dependencies used in Annotated[..., Depends(...)] live at module level: with
# `from __future__ import annotations` an annotation can only name module-level objects.


def tenant_upper(tenant: str) -> str:
    return tenant.upper()


def header_token(conn: Connection) -> str:
    return conn.websocket.headers.get("x-token", "")


def query_level(conn: Connection) -> int:
    return int(conn.websocket.query_params.get("level", "0"))


def valid_token(conn: Connection) -> str:
    token = conn.websocket.headers.get("x-token")
    if token != "good":  # what WebSocketOAuth2PasswordBearer and FastAPI code raise
        raise StarletteWebSocketException(code=1008, reason="token expired")
    return token


def build(**options: Any) -> tuple[AsyncWS, FastAPI]:
    """A fresh app (module-level routers would share state between tests)."""
    router = Router(tags=["test"])
    rooms = router.topic(
        "rooms/{room}", Annotated[Said | Left, Field(discriminator="type")], description="a room"
    )
    router.topic("notes/{n}", Note, params={"n": int}, client_publish=True)
    router.topic("fixed/news", Note)
    router.topic("secret/{name}", Note, authorize=own_name)

    @router.operation("say")
    async def say(msg: Say, conn: Connection) -> None:
        await rooms.publish(Said(user=conn.user_id or "?", text=msg.text), room=msg.room)

    @router.operation("echo")
    def echo(msg: Say) -> Echo:  # a sync handler with a reply
        return Echo(text=msg.text * msg.count)

    @router.operation("ping")
    async def ping() -> None:
        pass

    @router.operation("boom")
    async def boom() -> None:
        raise RuntimeError("the database password is hunter2")

    @router.operation("bad-reply")
    async def bad_reply() -> Echo:
        return {"text": ["not", "a", "string"]}  # type: ignore[return-value]

    @router.operation("refuse")
    async def refuse() -> None:
        raise ForbiddenError("not you")

    @router.operation("teapot")
    async def teapot() -> None:
        raise Teapot()

    ws = AsyncWS(
        authenticate=query_user,
        user_id=lambda p: p["name"],
        **options,
    )
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return ws, app


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    _, app = build()
    async with TestClient(app, timeout=3) as c:
        yield c


@pytest.fixture
async def ws(client: TestClient) -> AsyncIterator[WebSocketSession]:
    async with client.connect("/ws?user=ann") as session:
        yield session


# -- the app object --------------------------------------------------------------------------


async def test_lifespan_starts_and_stops_the_manager() -> None:
    ws, app = build()
    assert not ws.manager.started
    async with TestClient(app):
        assert ws.manager.started
    assert not ws.manager.started


async def test_lifespan_can_be_combined_with_the_users_own() -> None:
    ws, _ = build()
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("mine up")
        async with ws.lifespan(app):
            events.append("asyncws up")
            yield
        events.append("down")

    app = FastAPI(lifespan=lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c, c.connect("/ws") as s:
        assert (await s.call("ping"))["type"] == "ack"
    assert events == ["mine up", "asyncws up", "down"]


async def test_the_endpoint_path_is_configurable() -> None:
    _, app = build(path="/api/socket")
    async with TestClient(app) as c:
        async with c.connect("/api/socket") as s:
            assert await s.call("ping") == {"type": "ack", "id": 1}
        with pytest.raises(WebSocketDenied):
            await c.websocket_connect("/ws")  # no route: refused


async def test_endpoint_path_parameters_reach_handlers_and_dependencies() -> None:
    ws = AsyncWS(path="/t/{tenant}/ws")
    seen: list[Any] = []

    @ws.operation("where")
    async def where(tenant: str, upper: Annotated[str, Depends(tenant_upper)]) -> Echo:
        return Echo(text=f"{tenant}:{upper}")

    router = Router()

    @router.operation("where2")
    async def where2(tenant: str) -> Echo:  # declared before the app knew its path params
        return Echo(text=tenant)

    ws.include_router(router)

    @ws.on_connect
    def hello(tenant: str) -> None:
        seen.append(tenant)

    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c, c.connect("/t/acme/ws") as s:
        assert (await s.call("where"))["data"] == {"text": "acme:ACME"}
        assert (await s.call("where2"))["data"] == {"text": "acme"}
    assert seen == ["acme"]


async def test_include_router_prefixes_topics_and_adds_tags() -> None:
    inner = Router(prefix="inner", tags=["inner"])
    topic = inner.topic("things/{id}", Note)

    @inner.operation("make", tags=["op"])
    async def make(note: Note) -> None:
        await topic.publish(note, id="1")

    outer = Router(tags=["outer"])
    outer.include_router(inner, prefix="v1", tags=["x"])
    ws = AsyncWS()
    ws.include_router(outer, prefix="api", tags=["y"])
    assert [t.address for t in ws.topics] == ["api/v1/inner/things/{id}"]
    assert ws.operations["make"].tags == ["y", "outer", "x", "inner", "op"]
    assert set(ws.topics[0].tags) >= {"x", "inner", "y", "outer"}
    assert inner.operations["make"].tags == ["inner", "op"]  # the router's own is untouched

    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c, c.connect("/ws") as s:
        # the unprefixed address is not declared in the app
        assert (await s.subscribe("inner/things/1"))["code"] == "unknown_topic"
        assert (await s.subscribe("api/v1/inner/things/1"))["type"] == "ack"
        assert (await s.call("make", {"text": "hi"}))["type"] == "ack"
        # the router's own Topic object publishes under the prefixed address
        event = await s.receive_event()
        assert event == {"type": "Note", "topic": "api/v1/inner/things/1", "data": {"text": "hi"}}
        assert topic.topic_for(id="2") == "api/v1/inner/things/2"


async def test_two_apps_in_one_fastapi_app_are_independent() -> None:
    def make(title: str, op: str) -> tuple[AsyncWS, Any]:
        router = Router()
        news = router.topic("news", Note)  # the same address in both apps

        async def handler(note: Note) -> None:
            await news.publish(note)

        router.add_operation(op, handler)
        ws = AsyncWS(title=title, path=f"/{op}")
        ws.include_router(router)
        return ws, news

    ws1, _ = make("asyncws app", "one")
    ws2, _ = make("asyncws app", "two")  # same title: same default broker channel

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with ws1.lifespan(app), ws2.lifespan(app):
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(ws1.asgi_router)
    app.include_router(ws2.asgi_router)
    async with TestClient(app) as c, c.connect("/one") as a, c.connect("/two") as b:
        assert (await a.subscribe("news"))["type"] == "ack"
        assert (await b.subscribe("news"))["type"] == "ack"
        # each app only knows its own operations
        assert (await a.call("two", {"text": "x"}))["code"] == "unknown_type"
        assert (await b.call("one", {"text": "x"}))["code"] == "unknown_type"
        # a message published in app one reaches app one's subscribers only
        assert (await a.call("one", {"text": "for one"}))["type"] == "ack"
        assert (await a.receive_event("news"))["data"] == {"text": "for one"}
        assert (await b.call("two", {"text": "for two"}))["type"] == "ack"
        # b's next event is its own app's message, not app one's
        assert (await b.receive_event("news"))["data"] == {"text": "for two"}
        assert ws1.manager.connections.keys().isdisjoint(ws2.manager.connections.keys())
        assert len(ws1.manager) == len(ws2.manager) == 1


# -- operations --------------------------------------------------------------------------------


async def test_a_reply_is_validated_and_correlated_by_id(ws: WebSocketSession) -> None:
    await ws.send_json(
        {"type": "echo", "id": "abc", "data": {"room": "x", "text": "ho", "count": 2}}
    )
    assert await ws.receive_json() == {"type": "reply", "id": "abc", "data": {"text": "hoho"}}


async def test_a_frame_without_id_gets_no_reply(
    ws: WebSocketSession, caplog: pytest.LogCaptureFixture
) -> None:
    await ws.send_json({"type": "echo", "data": {"room": "x", "text": "a"}})
    await ws.send_json({"type": "bad-reply"})  # still validated; errors are always sent
    await ws.send_json({"type": "ping", "id": 1})
    assert await ws.receive_json() == {
        "type": "error",
        "code": "internal_error",
        "message": "internal error",
    }
    assert await ws.receive_json() == {"type": "ack", "id": 1}
    assert "bad-reply" in caplog.text


async def test_no_reply_means_an_ack_only_when_the_frame_had_an_id(ws: WebSocketSession) -> None:
    await ws.send_json({"type": "ping"})  # no id: no answer at all
    await ws.send_json({"type": "ping", "id": 7})
    assert await ws.receive_json() == {"type": "ack", "id": 7}  # the first frame got nothing


async def test_ids_are_echoed_exactly(ws: WebSocketSession) -> None:
    for id in [0, -1, 2**53, "", "x" * 64, "é"]:
        await ws.send_json({"type": "ping", "id": id})
        assert await ws.receive_json() == {"type": "ack", "id": id}


async def test_frames_are_handled_in_order(ws: WebSocketSession) -> None:
    for i in range(20):
        await ws.send_json({"type": "ping", "id": i})
    assert [(await ws.receive_json())["id"] for _ in range(20)] == list(range(20))


async def test_extra_envelope_fields_are_ignored(ws: WebSocketSession) -> None:
    await ws.send_json({"type": "ping", "id": 1, "whatever": [1, 2]})
    assert await ws.receive_json() == {"type": "ack", "id": 1}


async def test_a_handler_can_publish_to_a_topic(ws: WebSocketSession) -> None:
    assert (await ws.subscribe("rooms/lobby"))["type"] == "ack"
    assert await ws.call("say", {"room": "lobby", "text": "hi"}) == {"type": "ack", "id": 2}
    assert await ws.receive_event("rooms/lobby") == {
        "type": "said",
        "topic": "rooms/lobby",
        "data": {"type": "said", "user": "ann", "text": "hi"},
    }


# -- bad input: every bad frame gets an error frame, the connection stays -----------------------

BAD_FRAMES: list[tuple[str, str, dict[str, Any]]] = [
    # (name, frame text, the expected answer's fields)
    ("invalid JSON", "{nope", {"code": "invalid_json"}),
    ("truncated JSON", '{"type": "ping", "id": 1', {"code": "invalid_json"}),
    ("empty text", "", {"code": "invalid_json"}),
    ("a JSON array", "[1, 2]", {"code": "invalid_frame"}),
    ("a JSON string", '"ping"', {"code": "invalid_frame"}),
    ("JSON null", "null", {"code": "invalid_frame"}),
    ("missing type", '{"id": 1}', {"code": "invalid_frame", "id": 1}),
    ("type not a string", '{"type": 5, "id": 1}', {"code": "invalid_frame", "id": 1}),
    ("empty type", '{"type": "", "id": 1}', {"code": "invalid_frame", "id": 1}),
    ("unknown type", '{"type": "fly", "id": 1}', {"code": "unknown_type", "id": 1}),
    ("server-only type", '{"type": "reply", "id": 1}', {"code": "unknown_type", "id": 1}),
    ("id is a list", '{"type": "ping", "id": [1]}', {"code": "invalid_frame"}),
    ("id is a float", '{"type": "ping", "id": 1.5}', {"code": "invalid_frame"}),
    ("id is a bool", '{"type": "ping", "id": true}', {"code": "invalid_frame"}),
    ("id too long", json.dumps({"type": "ping", "id": "x" * 65}), {"code": "invalid_frame"}),
    ("id too big", json.dumps({"type": "ping", "id": 2**53 + 1}), {"code": "invalid_frame"}),
    (
        "missing data",
        '{"type": "echo", "id": 1}',
        {"code": "validation_error", "id": 1, "message": "'data' is required"},
    ),
    (
        "data not an object",
        '{"type": "echo", "id": 1, "data": "hi"}',
        {"code": "validation_error", "id": 1, "errors": [{"loc": [], "type": "model_type"}]},
    ),
    (
        "a missing field",
        '{"type": "echo", "id": 1, "data": {"room": "a"}}',
        {"code": "validation_error", "id": 1, "errors": [{"loc": ["text"], "type": "missing"}]},
    ),
    (
        "wrong field types",
        '{"type": "echo", "id": 1, "data": {"room": 1, "text": "a", "count": "many"}}',
        {
            "code": "validation_error",
            "id": 1,
            "errors": [
                {"loc": ["room"], "type": "string_type"},
                {"loc": ["count"], "type": "int_parsing"},
            ],
        },
    ),
    (
        "a constraint violated",
        '{"type": "echo", "id": 1, "data": {"room": "UPPER", "text": "a"}}',
        {
            "code": "validation_error",
            "id": 1,
            "errors": [{"loc": ["room"], "type": "string_pattern_mismatch"}],
        },
    ),
    (
        "an extra field (forbidden by the model)",
        '{"type": "echo", "id": 1, "data": {"room": "a", "text": "a", "evil": 1}}',
        {
            "code": "validation_error",
            "id": 1,
            "errors": [{"loc": ["evil"], "type": "extra_forbidden"}],
        },
    ),
    (
        "subscribe without topic",
        '{"type": "subscribe", "id": 1}',
        {"code": "invalid_frame", "id": 1},
    ),
    (
        "topic not a string",
        '{"type": "subscribe", "id": 1, "topic": 5}',
        {"code": "invalid_frame", "id": 1},
    ),
    (
        "topic not declared",
        '{"type": "subscribe", "id": 1, "topic": "nowhere"}',
        {"code": "unknown_topic", "id": 1},
    ),
    (
        "a parameter that does not validate",
        '{"type": "subscribe", "id": 1, "topic": "notes/abc"}',
        {"code": "unknown_topic", "id": 1},
    ),
    (
        "a parameter not written as published",
        '{"type": "subscribe", "id": 1, "topic": "notes/012"}',
        {"code": "unknown_topic", "id": 1},
    ),
    (
        "too many levels",
        '{"type": "subscribe", "id": 1, "topic": "rooms/a/b"}',
        {"code": "unknown_topic", "id": 1},
    ),
    (
        "wildcard on a fixed level",
        '{"type": "subscribe", "id": 1, "topic": "+/lobby"}',
        {"code": "unknown_topic", "id": 1},
    ),
    (
        "wildcard on a topic without parameters",
        '{"type": "subscribe", "id": 1, "topic": "fixed/+"}',
        {"code": "unknown_topic", "id": 1},
    ),
    (
        "everything",
        '{"type": "subscribe", "id": 1, "topic": "#"}',
        {"code": "unknown_topic", "id": 1},
    ),
    (
        "invalid pattern: a+",
        '{"type": "subscribe", "id": 1, "topic": "rooms/a+"}',
        {"code": "invalid_topic", "id": 1},
    ),
    (
        "invalid pattern: # not last",
        '{"type": "subscribe", "id": 1, "topic": "#/rooms"}',
        {"code": "invalid_topic", "id": 1},
    ),
    (
        "empty topic",
        '{"type": "subscribe", "id": 1, "topic": ""}',
        {"code": "invalid_topic", "id": 1},
    ),
    (
        "control character",
        '{"type": "subscribe", "id": 1, "topic": "rooms/a\\u0000"}',
        {"code": "invalid_topic", "id": 1},
    ),
    (
        "topic too long",
        json.dumps({"type": "subscribe", "id": 1, "topic": "rooms/" + "a" * 300}),
        {"code": "invalid_topic", "id": 1},
    ),
    (
        "unsubscribe invalid pattern",
        '{"type": "unsubscribe", "id": 1, "topic": "a/#/b"}',
        {"code": "invalid_topic", "id": 1},
    ),
    (
        "forbidden subscription",
        '{"type": "subscribe", "id": 1, "topic": "secret/bob"}',
        {"code": "forbidden", "id": 1},
    ),
    (
        "forbidden wildcard subscription",
        '{"type": "subscribe", "id": 1, "topic": "secret/+"}',
        {"code": "forbidden", "id": 1},
    ),
    (
        "client publish not allowed",
        '{"type": "publish", "id": 1, "topic": "rooms/lobby", "data": {"type": "said", "user": "x", "text": "y"}}',
        {"code": "forbidden", "id": 1},
    ),
    (
        "client publish to an undeclared topic",
        '{"type": "publish", "id": 1, "topic": "nowhere", "data": {}}',
        {"code": "unknown_topic", "id": 1},
    ),
    (
        "client publish to a pattern",
        '{"type": "publish", "id": 1, "topic": "notes/+", "data": {"text": "a"}}',
        {"code": "invalid_topic", "id": 1},
    ),
    (
        "client publish with an invalid payload",
        '{"type": "publish", "id": 1, "topic": "notes/1", "data": {"text": "far too long for a note"}}',
        {
            "code": "validation_error",
            "id": 1,
            "errors": [{"loc": ["text"], "type": "string_too_long"}],
        },
    ),
    (
        "client publish without data",
        '{"type": "publish", "id": 1, "topic": "notes/1"}',
        {"code": "validation_error", "id": 1},
    ),
    (
        "a handler raising",
        '{"type": "boom", "id": 1}',
        {"code": "internal_error", "id": 1, "message": "internal error"},
    ),
    (
        "a handler returning an invalid reply",
        '{"type": "bad-reply", "id": 1}',
        {"code": "internal_error", "id": 1, "message": "internal error"},
    ),
    (
        "a handler raising an asyncws error",
        '{"type": "refuse", "id": 1}',
        {"code": "forbidden", "id": 1, "message": "not you"},
    ),
]


def _contains(actual: Any, expected: Any) -> bool:
    """``expected`` is a sub-structure of ``actual`` (dict keys, list items in order)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _contains(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_contains(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)


@pytest.mark.parametrize(
    ("text", "expected"), [(t, e) for _, t, e in BAD_FRAMES], ids=[n for n, _, _ in BAD_FRAMES]
)
async def test_bad_input_gets_an_error_frame_and_the_connection_survives(
    ws: WebSocketSession, text: str, expected: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncws")
    await ws.send_text(text)
    answer = await ws.receive_json()
    assert answer["type"] == "error"
    assert _contains(answer, expected), answer
    assert isinstance(answer["message"], str) and answer["message"]
    if "id" not in expected:
        assert "id" not in answer  # an unusable id is never echoed
    for error in answer.get("errors", []):
        assert set(error) == {"loc", "msg", "type"}
    # the same connection keeps working
    assert await ws.call("ping") == {"type": "ack", "id": 1}


async def test_a_binary_frame_is_unsupported_data(ws: WebSocketSession) -> None:
    await ws.send_bytes(b'{"type": "ping", "id": 1}')
    answer = await ws.receive_json()
    assert answer["type"] == "error" and answer["code"] == ErrorCode.UNSUPPORTED_DATA
    assert await ws.call("ping") == {"type": "ack", "id": 1}


async def test_validation_errors_name_every_field(ws: WebSocketSession) -> None:
    answer = await ws.call("echo", {"room": "", "count": []})
    assert answer["code"] == "validation_error"
    locs = {tuple(e["loc"]): e["msg"] for e in answer["errors"]}
    assert set(locs) == {("room",), ("text",), ("count",)}
    assert locs[("text",)] == "Field required"


async def test_an_unexpected_exception_is_logged_and_not_shown(
    ws: WebSocketSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncws")
    answer = await ws.call("boom")
    assert answer == {
        "type": "error",
        "id": 1,
        "code": "internal_error",
        "message": "internal error",
    }
    assert "hunter2" not in json.dumps(answer)
    records = [r for r in caplog.records if r.exc_info]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert isinstance(records[0].exc_info[1], RuntimeError)  # type: ignore[index]
    assert "hunter2" in caplog.text and "Traceback" in caplog.text
    assert await ws.call("ping") == {"type": "ack", "id": 2}


async def test_an_invalid_reply_is_an_internal_error_with_a_log_record(
    ws: WebSocketSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncws")
    answer = await ws.call("bad-reply")
    assert answer == {
        "type": "error",
        "id": 1,
        "code": "internal_error",
        "message": "internal error",
    }
    (record,) = [r for r in caplog.records if r.exc_info]
    assert "bad-reply" in record.getMessage()
    assert isinstance(record.exc_info[1], ValidationError)  # type: ignore[index]
    assert await ws.call("ping") == {"type": "ack", "id": 2}


async def test_an_abusive_connection_is_closed_with_1008(ws: WebSocketSession) -> None:
    for _ in range(21):
        await ws.send_text("not json")
    assert await ws.expect_closed() == 1008


async def test_a_frame_over_the_size_limit_closes_with_1009() -> None:
    _, app = build(limits=Limits(max_frame_size=100))
    async with TestClient(app) as c, c.connect("/ws") as s:
        await s.send_json({"type": "ping", "id": 1, "pad": "x" * 200})
        assert await s.expect_closed() == 1009


# -- exception handlers --------------------------------------------------------------------------


async def test_exception_handlers_on_routers_and_the_app() -> None:
    log: list[str] = []
    a = Router()
    b = Router()
    inner = Router()

    @a.operation("a-key")
    async def a_key() -> None:
        raise KeyError("a")

    @a.operation("a-teapot")
    async def a_teapot() -> None:
        raise Teapot()

    @b.operation("b-key")
    async def b_key() -> None:
        raise KeyError("b")

    @inner.operation("inner-key")
    async def inner_key() -> None:
        raise KeyError("inner")

    @inner.operation("inner-value")
    async def inner_value() -> None:
        raise ValueError("inner")

    @a.exception_handler(KeyError)
    def a_keys(conn: Connection, exc: KeyError) -> AsyncWSError:
        log.append(f"a:{exc.args[0]}")
        return ForbiddenError("router a says no")

    @inner.exception_handler(LookupError)  # a base class of KeyError
    async def inner_lookups(conn: Connection, exc: LookupError) -> AsyncWSError:
        return InvalidTopicError("inner says lookup")

    a.include_router(inner)
    ws = AsyncWS()

    @ws.exception_handler(Exception)
    async def everything(conn: Connection, exc: Exception) -> None:
        log.append(f"app:{type(exc).__name__}")
        conn.send_text_nowait('{"type":"custom"}')  # answered the client itself

    ws.include_router(a)
    ws.include_router(b)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c, c.connect("/ws") as s:
        assert await s.call("a-key") == {
            "type": "error",
            "id": 1,
            "code": "forbidden",
            "message": "router a says no",
        }
        # the innermost router with a handler wins, even for a base class
        assert (await s.call("inner-key"))["code"] == "invalid_topic"
        # a router's handler does not apply to another router's operations
        await s.send_json({"type": "b-key", "id": 9})
        assert await s.receive_json() == {"type": "custom"}
        # an exception no router handles goes to the app's handlers
        await s.send_json({"type": "a-teapot", "id": 10})
        assert await s.receive_json() == {"type": "custom"}
        await s.send_json({"type": "inner-value", "id": 11})
        assert await s.receive_json() == {"type": "custom"}
    assert log == ["a:a", "app:KeyError", "app:Teapot", "app:ValueError"]


async def test_an_exception_handler_can_raise_the_error_to_send() -> None:
    ws, app = build()

    @ws.exception_handler(Teapot)
    def teapot(conn: Connection, exc: Teapot) -> None:
        raise AsyncWSError("I'm a teapot")

    async with TestClient(app) as c, c.connect("/ws") as s:
        assert await s.call("teapot") == {
            "type": "error",
            "id": 1,
            "code": "internal_error",
            "message": "I'm a teapot",
        }


@pytest.mark.parametrize("mistake", ["raises", "returns junk"])
async def test_a_failing_exception_handler_is_an_internal_error(
    mistake: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncws")
    ws, app = build()

    @ws.exception_handler(Teapot)
    def teapot(conn: Connection, exc: Teapot) -> Any:
        if mistake == "raises":
            raise ZeroDivisionError
        return "oops"

    async with TestClient(app) as c, c.connect("/ws") as s:
        answer = await s.call("teapot")
        assert answer == {
            "type": "error",
            "id": 1,
            "code": "internal_error",
            "message": "internal error",
        }
        assert await s.call("ping") == {"type": "ack", "id": 2}
    assert caplog.records


async def test_asyncws_errors_raised_by_handlers_can_be_handled_too() -> None:
    ws, app = build()

    @ws.exception_handler(ForbiddenError)
    def forbidden(conn: Connection, exc: ForbiddenError) -> AsyncWSError:
        return ForbiddenError(f"handled: {exc.message}")

    async with TestClient(app) as c, c.connect("/ws") as s:
        assert (await s.call("refuse"))["message"] == "handled: not you"


async def test_a_starlette_websocket_exception_closes_the_connection_with_its_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncws")
    ws, app = build()
    gone: list[str] = []

    @ws.operation("secure")
    async def secure(token: Annotated[str, Depends(valid_token)]) -> Echo:
        return Echo(text=token)

    @ws.operation("leave")
    async def leave(conn: Connection) -> None:
        await conn.close(4001, "bye")  # a handler may close its connection itself

    @ws.on_disconnect
    def bye(conn: Connection) -> None:
        gone.append(conn.id)

    async with TestClient(app) as c:
        async with c.connect("/ws", headers={"x-token": "good"}) as s:
            assert (await s.call("secure"))["data"] == {"text": "good"}
        async with c.connect("/ws", headers={"x-token": "stale"}) as s:
            await s.send_json({"type": "secure", "id": 1})
            assert await s.expect_closed() == 1008
            assert s.close_reason == "token expired"
        async with c.connect("/ws") as s:
            await s.send_json({"type": "leave", "id": 1})
            assert await s.expect_closed() == 4001
    assert len(gone) == 3
    assert not caplog.records  # not a server error
    assert len(ws.manager) == 0


# -- lifecycle hooks -----------------------------------------------------------------------------


class Spy:
    """Records the ASGI messages an app sends, to prove what it did (and did not) do."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def spy_send(message: Any) -> None:
            if scope["type"] == "websocket":
                self.sent.append(message["type"])
            await send(message)

        await self.app(scope, receive, spy_send)


@pytest.mark.parametrize("how", ["returns False", "raises ForbiddenError", "raises a bug"])
async def test_on_connect_can_refuse_with_403_before_accepting(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="asyncws")
    ws, app = build()
    seen: list[Connection] = []

    @ws.on_connect
    async def gate(conn: Connection) -> bool:
        seen.append(conn)
        if conn.user_id != "ann":
            if how == "returns False":
                return False
            if how == "raises ForbiddenError":
                raise ForbiddenError("go away")
            raise RuntimeError("bug in the hook")
        return True

    spy = Spy(app)
    async with TestClient(spy) as c:  # type: ignore[arg-type]
        with pytest.raises(WebSocketDenied) as denied:
            await c.websocket_connect("/ws?user=bob")
        assert denied.value.status == 403
        assert "websocket.accept" not in spy.sent
        assert spy.sent == ["websocket.close"]
        assert len(ws.manager) == 0
        async with c.connect("/ws?user=ann") as s:
            assert (await s.call("ping"))["type"] == "ack"
    assert [c.user_id for c in seen] == ["bob", "ann"]
    assert seen[0].principal == {"name": "bob"}  # authentication ran first
    if how == "raises a bug":
        assert any(r.exc_info for r in caplog.records)


async def test_authenticate_returning_none_refuses_the_handshake() -> None:
    def nobody(conn: Connection) -> None:
        return None

    ws = AsyncWS(authenticate=nobody)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c:
        with pytest.raises(WebSocketDenied) as denied:
            await c.websocket_connect("/ws")
        assert denied.value.status == 403


async def test_on_connect_hooks_can_use_dependencies() -> None:
    ws, app = build()
    calls: list[str] = []

    @ws.on_connect
    def gate(tok: Annotated[str, Depends(header_token)]) -> bool:
        calls.append(tok)
        return tok == "good"

    async with TestClient(app) as c:
        with pytest.raises(WebSocketDenied):
            await c.websocket_connect("/ws", headers={"x-token": "bad"})
        async with c.connect("/ws", headers={"x-token": "good"}) as s:
            assert (await s.call("ping"))["type"] == "ack"
    assert calls == ["bad", "good"]


async def test_on_disconnect_runs_after_the_connection_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ws, app = build()
    gone: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    @ws.on_disconnect
    async def bye(conn: Connection) -> None:
        await gone.put((conn.user_id or "", conn.id in ws.manager.connections))

    @ws.on_disconnect
    def broken(conn: Connection) -> None:
        raise RuntimeError("a failing hook does not stop the others")

    async with TestClient(app) as c:
        async with c.connect("/ws?user=ann") as s:
            assert (await s.subscribe("rooms/lobby"))["type"] == "ack"
        # close() returns once the endpoint finished, hooks included
        assert await asyncio.wait_for(gone.get(), 3) == ("ann", False)
        assert len(ws.manager) == 0
        assert not ws.manager.index.has_pattern("rooms/lobby")
        # a refused handshake never ran on_disconnect
        ws.on_connect(lambda: False)
        with pytest.raises(WebSocketDenied):
            await c.websocket_connect("/ws")
        assert gone.empty()
    assert "a failing hook" in caplog.text


async def test_a_server_shutting_down_refuses_new_connections() -> None:
    ws, app = build()
    ran: list[Connection] = []

    @ws.on_disconnect
    def bye(conn: Connection) -> None:
        ran.append(conn)

    spy = Spy(app)
    async with TestClient(spy) as c:  # type: ignore[arg-type]
        ws.manager.accepting = False  # what shutdown() does first
        with pytest.raises(WebSocketDenied) as denied:
            await c.websocket_connect("/ws")
        assert denied.value.status == 503  # capacity, not a verdict on the client
        assert spy.sent == ["websocket.http.response.start", "websocket.http.response.body"]
        ws.manager.accepting = True
    assert ran == []  # never accepted: no on_disconnect


async def test_disallowed_origins_are_refused() -> None:
    _, app = build(allowed_origins=["https://chat.example"])
    async with TestClient(app) as c:
        with pytest.raises(WebSocketDenied) as denied:
            await c.websocket_connect("/ws", headers={"origin": "https://evil.example"})
        assert denied.value.status == 403
        async with c.connect("/ws", headers={"origin": "https://chat.example/"}) as s:
            assert (await s.call("ping"))["type"] == "ack"
        async with c.connect("/ws") as s:  # not a browser
            assert (await s.call("ping"))["type"] == "ack"


# -- scopes --------------------------------------------------------------------------------------


async def test_operation_and_topic_scopes() -> None:
    router = Router()
    router.topic("admin/log", Note, subscribe_scopes=["admin"])
    router.topic("admin/inbox", Note, client_publish=True, publish_scopes=["admin", "write"])

    @router.operation("nuke", scopes=["admin"])
    async def nuke() -> None:
        pass

    def scopes(conn: Connection) -> dict[str, str]:
        return {"scopes": conn.websocket.query_params.get("s", "")}

    ws = AsyncWS(authenticate=scopes)
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c:
        async with c.connect("/ws?s=read") as s:
            answer = await s.call("nuke")
            assert answer["code"] == "forbidden" and "admin" in answer["message"]
            assert (await s.subscribe("admin/log"))["code"] == "forbidden"
            answer = await s.call("publish", topic="admin/inbox", data={"text": "x"})
            assert answer["code"] == "forbidden"
        async with c.connect("/ws?s=admin+write") as s:
            assert (await s.call("nuke"))["type"] == "ack"
            assert (await s.subscribe("admin/log"))["type"] == "ack"
            assert (await s.subscribe("admin/inbox"))["type"] == "ack"
            answer = await s.call("publish", topic="admin/inbox", data={"text": "x"})
            assert answer["type"] == "ack"
            assert (await s.receive_event())["data"] == {"text": "x"}
        # the topic's publish route is cached now; scopes are still checked per connection
        async with c.connect("/ws?s=read") as s:
            answer = await s.call("publish", topic="admin/inbox", data={"text": "x"})
            assert answer["code"] == "forbidden"


# -- topics: subscriptions ----------------------------------------------------------------------


async def test_subscribe_and_unsubscribe(ws: WebSocketSession, client: TestClient) -> None:
    assert await ws.subscribe("rooms/lobby") == {"type": "ack", "id": 1}
    assert await ws.subscribe("rooms/+") == {"type": "ack", "id": 2}
    assert await ws.subscribe("rooms/#") == {"type": "ack", "id": 3}
    async with client.connect("/ws?user=bob") as bob:
        await bob.call("say", {"room": "lobby", "text": "1"})
    # overlapping subscriptions deliver once
    assert (await ws.receive_event())["data"]["text"] == "1"
    assert await ws.unsubscribe("rooms/lobby") == {"type": "ack", "id": 4}
    assert await ws.unsubscribe("rooms/+") == {"type": "ack", "id": 5}
    assert await ws.unsubscribe("rooms/#") == {"type": "ack", "id": 6}
    assert await ws.unsubscribe("never/subscribed") == {"type": "ack", "id": 7}
    assert await ws.subscribe("rooms/other") == {"type": "ack", "id": 8}
    await ws.call("say", {"room": "lobby", "text": "2"})
    await ws.call("say", {"room": "other", "text": "3"})
    # the lobby message was not delivered: the next event is the other room's
    assert (await ws.receive_event())["topic"] == "rooms/other"


async def test_topic_parameters_are_validated_on_subscribe(ws: WebSocketSession) -> None:
    assert (await ws.subscribe("notes/12"))["type"] == "ack"
    assert (await ws.subscribe("notes/+"))["type"] == "ack"
    assert (await ws.subscribe("notes/twelve"))["code"] == "unknown_topic"


async def test_authorization_sees_typed_parameters_and_dependencies() -> None:
    seen: list[Any] = []

    def may_read(
        floor: int | None,
        topic: str,
        conn: Connection,
        lvl: Annotated[int, Depends(query_level)],
    ) -> bool:
        seen.append((floor, topic, lvl))
        return floor is not None and floor <= lvl

    router = Router()
    router.topic("floors/{floor}", Note, params={"floor": int}, authorize=may_read)
    ws = AsyncWS()
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c, c.connect("/ws?level=3") as s:
        assert (await s.subscribe("floors/2"))["type"] == "ack"
        assert (await s.subscribe("floors/4"))["code"] == "forbidden"
        assert (await s.subscribe("floors/+"))["code"] == "forbidden"
    assert seen == [(2, "floors/2", 3), (4, "floors/4", 3), (None, "floors/+", 3)]


async def test_an_authorization_hook_that_fails_is_an_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncws")

    def broken(name: str | None) -> bool:
        raise RuntimeError("authorization backend down")

    router = Router()
    router.topic("private/{name}", Note, authorize=broken)
    ws = AsyncWS()
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c, c.connect("/ws") as s:
        answer = await s.subscribe("private/x")
        assert answer == {
            "type": "error",
            "id": 1,
            "code": "internal_error",
            "message": "internal error",
        }
        assert await s.unsubscribe("private/x") == {"type": "ack", "id": 2}  # still open
        assert not ws.manager.index.has_pattern("private/x")
    assert "authorization backend down" in caplog.text


async def test_a_hook_raising_forbidden_error_is_forbidden(ws: WebSocketSession) -> None:
    assert (await ws.subscribe("secret/ann"))["type"] == "ack"  # ann's own
    answer = await ws.subscribe("secret/bob")
    assert answer["code"] == "forbidden"


async def test_too_many_subscriptions() -> None:
    _, app = build(limits=Limits(max_subscriptions=2))
    async with TestClient(app) as c, c.connect("/ws") as s:
        assert (await s.subscribe("rooms/a"))["type"] == "ack"
        assert (await s.subscribe("rooms/b"))["type"] == "ack"
        assert (await s.subscribe("rooms/c"))["code"] == "too_many_subscriptions"


# -- topics: client publish ---------------------------------------------------------------------


async def test_client_publish_where_allowed(ws: WebSocketSession, client: TestClient) -> None:
    async with client.connect("/ws?user=bob") as bob:
        assert (await bob.subscribe("notes/+"))["type"] == "ack"
        await ws.send_json({"type": "publish", "topic": "notes/5", "data": {"text": "hi"}})
        assert await bob.receive_event() == {
            "type": "Note",
            "topic": "notes/5",
            "data": {"text": "hi"},
        }


async def test_client_publish_routes_are_cached_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncws.compiled

    monkeypatch.setattr(asyncws.compiled, "PUBLISH_ROUTES_MAX", 3)
    wsapp, app = build()
    async with (
        TestClient(app, timeout=3) as client,
        client.connect("/ws?user=ann") as ws,
        client.connect("/ws?user=bob") as bob,
    ):
        assert (await bob.subscribe("notes/+"))["type"] == "ack"
        for n in [1, 2, 3, 4, 5, 1]:
            answer = await ws.call("publish", topic=f"notes/{n}", data={"text": str(n)})
            assert answer["type"] == "ack"
            event = await bob.receive_event()
            assert event["topic"] == f"notes/{n}" and event["data"] == {"text": str(n)}
        routes = wsapp.compile().publish_routes
        assert list(routes) == ["notes/4", "notes/5", "notes/1"]  # the oldest went first
        for _ in range(2):  # refusals are not cached: the same answer every time
            answer = await ws.call("publish", topic="notes/01", data={"text": "x"})
            assert answer["code"] == "unknown_topic"
            answer = await ws.call("publish", topic="notes/+", data={"text": "x"})
            assert answer["code"] == "invalid_topic"
            answer = await ws.call("publish", topic="notes/6", data={"txt": "x"})
            assert answer["code"] == "validation_error"
        assert "notes/01" not in routes and "notes/+" not in routes


# -- topics: server publish validates everything before sending ----------------------------------


async def test_publish_validates_the_message_and_the_parameters() -> None:
    router = Router()
    rooms = router.topic("rooms/{room}", Annotated[Said | Left, Field(discriminator="type")])
    numbered = router.topic("n/{n}", Note, params={"n": int})
    ws = AsyncWS()
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    published: Callable[[], int] = lambda: ws.manager.stats["published"]  # noqa: E731
    async with TestClient(app) as c, c.connect("/ws") as s:
        await s.subscribe("rooms/+")
        await s.subscribe("n/+")
        with pytest.raises(TypeError, match="does not carry Note"):
            await rooms.publish(Note(text="x"), room="a")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="missing parameter"):
            await rooms.publish(Said(user="u", text="t"))
        with pytest.raises(TypeError, match="unknown parameter"):
            await rooms.publish(Said(user="u", text="t"), room="a", floor=1)
        with pytest.raises(InvalidTopicError):
            await numbered.publish(Note(text="x"), n="not a number")
        with pytest.raises(InvalidTopicError):
            await rooms.publish(Said(user="u", text="t"), room="a/b")  # two levels
        with pytest.raises(InvalidTopicError):
            await rooms.publish(Said(user="u", text="t"), room="+")
        with pytest.raises(ValidationError):
            await rooms.publish(Said.model_construct(user=1, text="t"), room="a")
        mutated = Note(text="short")
        mutated.text = "much too long for a note"
        with pytest.raises(ValidationError):
            await numbered.publish(mutated, n=1)
        with pytest.raises(ValidationError):
            await rooms.publish({"type": "said", "user": "u"}, room="a")  # a dict is validated
        assert published() == 0  # nothing was sent
        await rooms.publish({"type": "left", "user": "u"}, room="a")
        await numbered.publish(Note(text="ok"), n="7")  # converted and rendered
        assert (await s.receive_event())["type"] == "left"
        assert (await s.receive_event())["topic"] == "n/7"
        assert published() == 2


async def test_publishing_before_the_topic_is_in_an_app_is_an_error() -> None:
    router = Router()
    topic = router.topic("x", Note)
    with pytest.raises(RuntimeError, match="not part of an AsyncWS app"):
        await topic.publish(Note(text="a"))


async def test_models_with_aliases_are_published_by_alias() -> None:
    class Aliased(BaseModel):
        sender: str = Field(alias="from")

    router = Router()
    topic = router.topic("dm", Aliased)
    ws = AsyncWS()
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c, c.connect("/ws") as s:
        await s.subscribe("dm")
        await topic.publish(Aliased.model_validate({"from": "ann"}))
        assert (await s.receive_event())["data"] == {"from": "ann"}
