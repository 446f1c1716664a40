"""The framing layer (asyncws.framing): pure classification rules, and a code-first app that
speaks the document framing (the payload is the frame) instead of asyncws's envelope."""

from __future__ import annotations

from typing import Literal

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, Topic
from asyncws.framing import (
    AsyncWSFraming,
    DocumentFraming,
    MessageShape,
    classify,
    correlation_pointer,
    get_pointer,
    indistinct,
    set_pointer,
    shape_of,
)
from asyncws.testing import TestClient

# -- pure rules --------------------------------------------------------------------------------


def test_correlation_locations() -> None:
    assert correlation_pointer("$message.payload#/reqid") == ("reqid",)
    assert correlation_pointer("$message.payload#/meta/a~1b") == ("meta", "a/b")
    with pytest.raises(ValueError, match="header"):
        correlation_pointer("$message.header#/id")
    with pytest.raises(ValueError, match=r"not \$message\.payload"):
        correlation_pointer("reqid")
    obj: dict[str, object] = {}
    set_pointer(obj, ("meta", "id"), 7)
    assert obj == {"meta": {"id": 7}} and get_pointer(obj, ("meta", "id")) == 7
    assert get_pointer(obj, ("meta", "nope")) is None


def test_shapes_from_schemas_and_classification() -> None:
    status = {
        "type": "object",
        "properties": {"event": {"const": "status"}, "state": {"enum": ["on", "off"]}},
        "required": ["event"],
    }
    failed = {
        "type": "object",
        "properties": {"event": {"const": "status"}, "state": {"const": "failed"}},
    }
    named = {"type": "object", "discriminator": "op", "properties": {"op": {"type": "string"}}}
    plain = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    shapes = [
        shape_of("status", "status", status),
        shape_of("failed", "failed", failed),
        shape_of("hello", "hello", named),
        shape_of("echo", "echo", plain),
    ]
    assert shapes[0].discriminator == {"event": ("status",), "state": ("on", "off")}
    assert shapes[2].discriminator == {"op": ("hello",)}
    assert classify({"event": "status", "state": "on"}, shapes) is shapes[0]
    assert classify({"event": "status", "state": "failed"}, shapes) is shapes[1]
    assert classify({"op": "hello"}, shapes) is shapes[2]
    assert classify({"text": "hi"}, shapes) is shapes[3]
    # a message without discriminators takes whatever the others do not (its validation
    # then says what is wrong); without one, such a frame is no message at all
    assert classify({"nothing": 1}, shapes) is shapes[3]
    assert classify({"nothing": 1}, shapes[:3]) is None
    # an enum discriminator may be missing (validation reports it), a const one may not
    assert classify({"event": "status"}, shapes[:3]) is shapes[0]
    assert classify({"state": "on"}, shapes[:3]) is None
    assert classify([1], shapes) is None
    # two messages with the same discriminators: only a schema match tells them apart
    a = MessageShape("a", "a", {"t": ("x",)}, matches=lambda o: "a" in o)
    b = MessageShape("b", "b", {"t": ("x",)}, matches=lambda o: "b" in o)
    assert classify({"t": "x", "b": 1}, [a, b]) is b
    assert indistinct([a, b]) == [(a, b)]
    assert indistinct(shapes) == []


def test_the_asyncws_framing_is_the_envelope() -> None:
    framing = AsyncWSFraming()
    assert framing.correlation_in('{"type":"x","id":3}') == 3
    assert framing.event("posted", "rooms/a", '{"x":1}') == (
        '{"type":"posted","topic":"rooms/a","data":{"x":1}}'
    )


# -- a code-first app in the document framing ----------------------------------------------------


class Ping(BaseModel):
    event: Literal["ping"]
    reqid: int | None = None


class Pong(BaseModel):
    event: Literal["pong"] = "pong"
    reqid: int | None = None


class Add(BaseModel):
    event: Literal["add"]
    a: int
    b: int


class Sum(BaseModel):
    event: Literal["sum"] = "sum"
    value: int


class Tick(BaseModel):
    event: Literal["tick"] = "tick"
    n: int


ws = AsyncWS(
    title="Framed",
    path="/",
    broker="memory://framed-test",
    framing=DocumentFraming(discriminator="event", correlation="reqid"),
)
ticks: Topic[Tick] = Topic("ticks", Tick)
ws.add_topic(ticks)


@ws.operation("ping")
async def ping(data: Ping) -> Pong:
    return Pong()


@ws.operation("add")
async def add(data: Add) -> list[Sum]:
    return [Sum(value=data.a + data.b), Sum(value=data.a - data.b)]


class Subscribe(BaseModel):
    event: Literal["subscribe"]
    reqid: int | None = None


@ws.operation("subscribe")  # no control frames in this framing: an ordinary name
async def subscribe_op(data: Subscribe) -> Pong:
    return Pong(reqid=data.reqid)


@ws.operation("quiet")
async def quiet() -> None:
    await ticks.publish(Tick(n=1))


app = FastAPI(lifespan=ws.lifespan)
app.include_router(ws.asgi_router)


async def test_code_first_app_speaks_the_document_framing() -> None:
    async with TestClient(app) as client, await client.websocket_connect("/") as sock:
        await sock.send_json({"event": "ping", "reqid": 42})
        assert await sock.receive_json() == {"event": "pong", "reqid": 42}
        await sock.send_json({"event": "add", "a": 5, "b": 3, "reqid": 7})
        assert await sock.receive_json() == {"event": "sum", "value": 8, "reqid": 7}
        assert await sock.receive_json() == {"event": "sum", "value": 2, "reqid": 7}
        # errors are frames of their own, with the request's correlation value
        await sock.send_json({"event": "add", "a": "x", "b": 3, "reqid": 8})
        error = await sock.receive_json()
        assert error["reqid"] == 8 and error["error"]["code"] == "validation_error"
        assert error["error"]["errors"][0]["loc"] == ["a"]
        await sock.send_json({"event": "unsubscribe", "topic": "ticks", "reqid": 9})
        assert (await sock.receive_json())["error"]["code"] == "unknown_type"
        await sock.send_json({"event": "subscribe", "reqid": 11})
        assert await sock.receive_json() == {"event": "pong", "reqid": 11}
        await sock.send_json({"event": "quiet"})  # no reply, no ack
        await sock.send_json({"event": "ping", "reqid": 10})
        assert await sock.receive_json() == {"event": "pong", "reqid": 10}


async def test_topic_events_are_their_payloads() -> None:
    framing = ws.framing
    assert framing.event("tick", "ticks", '{"event":"tick","n":1}') == '{"event":"tick","n":1}'
    assert ticks.encode(Tick(n=2), "ticks") == '{"event":"tick","n":2}'
