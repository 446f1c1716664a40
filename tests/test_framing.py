"""The framing layer (asyncws.framing): pure classification rules, and a code-first app that
speaks the document framing (the payload is the frame) instead of asyncws's envelope."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, Router, Topic
from asyncws.codes import ErrorCode
from asyncws.exceptions import (
    ForbiddenError,
    PayloadValidationError,
    ProtocolError,
    UnknownTypeError,
)
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


def test_json_pointers() -> None:
    obj = {"a": [{"b": 1}, None], "c": {"d": ""}}
    assert get_pointer(obj, ("a", "0", "b")) == 1
    assert get_pointer(obj, ("c", "d")) == ""
    assert get_pointer(obj, ()) is obj
    for parts in (("a", "2"), ("a", "-1"), ("a", "x"), ("a", "1", "b"), ("nope",), ("c", "d", "e")):
        assert get_pointer(obj, parts) is None, parts
    assert get_pointer("text", ("a",)) is None
    target: dict[str, object] = {"a": 5}
    set_pointer(target, ("a", "b"), 1)  # a non-object on the way is replaced
    assert target == {"a": {"b": 1}}
    set_pointer(target, ("é",), "😀")
    assert target["é"] == "😀"


@pytest.mark.parametrize(
    ("location", "match"),
    [
        ("$message.payload#", "names no property"),
        ("$message.payload#/", "names no property"),
        ("$message.payload#reqid", "names no property"),
        ("$message.header#/id", "websocket frames have no headers"),
        ("$message.payload/reqid", r"not \$message\.payload"),
        ("", r"not \$message\.payload"),
    ],
)
def test_correlation_locations_that_name_nothing(location: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        correlation_pointer(location)


def test_correlation_location_escapes() -> None:
    assert correlation_pointer("$message.payload#/a~0b/c~1d/0") == ("a~b", "c/d", "0")
    assert correlation_pointer("$message.payload#/réq/😀") == ("réq", "😀")


class _Frame:
    """What the framings read of a decoded frame when they answer it: its ``id``."""

    def __init__(self, id: object) -> None:
        self.id = id


def test_the_asyncws_framing_answers_only_frames_with_an_id() -> None:
    framing = AsyncWSFraming()
    assert framing.replies(_Frame(None), '{"x":1}') == []
    assert framing.replies(_Frame("r"), '{"x":1}') == ['{"type":"reply","id":"r","data":{"x":1}}']
    assert framing.ack(_Frame(None)) is None
    assert framing.ack(_Frame(7)) == '{"type":"ack","id":7}'
    assert framing.subscribed(_Frame(None), True, 1, "e") is None
    assert json.loads(framing.subscribed(_Frame(1), True, 3, "é") or "") == {
        "type": "ack",
        "id": 1,
        "recovered": True,
        "position": {"offset": 3, "epoch": "é"},
    }
    assert "recovered" not in json.loads(framing.subscribed(_Frame(1), None, 0, "e") or "")
    assert json.loads(framing.error(ForbiddenError("no"), 2) or "") == {
        "type": "error",
        "id": 2,
        "code": "forbidden",
        "message": "no",
    }


def test_the_asyncws_framing_finds_ids_on_the_error_path() -> None:
    framing = AsyncWSFraming()
    assert framing.correlation_in('{"type":"x","id":"é"}') == "é"
    for text in (None, "", "not json", "[1]", '{"id":1.5}', '{"id":"\\ud800"}'):
        assert framing.correlation_in(text) is None, text


def test_positions_are_spliced_into_event_frames() -> None:
    framing = AsyncWSFraming()
    frame = framing.event("posted", "rooms/é", '{"text":"😀"}')
    positioned = framing.positioned(frame, 41, 'ep"och')
    assert json.loads(positioned) == {
        "type": "posted",
        "topic": "rooms/é",
        "data": {"text": "😀"},
        "offset": 41,
        "epoch": 'ep"och',
    }
    # a framing without room for positions sends the frame as it is
    assert DocumentFraming().positioned('{"x":1}', 1, "e") == '{"x":1}'
    assert DocumentFraming().subscribed(_Frame(1), True, 1, "e") is None


class _Hello(BaseModel):
    op: Literal["hello"]
    rid: int | None = None
    name: str


def _decoder(framing: DocumentFraming) -> Any:
    router = Router()

    def hello(msg: _Hello) -> None: ...

    def raw() -> None: ...

    router.add_operation("hello", hello, reserved=frozenset())
    router.add_operation("raw", raw, reserved=frozenset())
    return framing.decoder(router.operations.values())


def test_the_document_framing_decodes_by_discriminator() -> None:
    decoder = _decoder(DocumentFraming(discriminator="op", correlation="rid"))
    frame = decoder.validate('{"op":"hello","rid":4,"name":"Zoë"}')
    assert (frame.type, frame.id, frame.message) == ("hello", 4, None)
    assert frame.data == _Hello(op="hello", rid=4, name="Zoë")
    # an operation without a payload model gets the whole frame
    assert decoder.validate('{"op":"raw","x":[1]}').data == {"op": "raw", "x": [1]}


@pytest.mark.parametrize(
    ("text", "error", "code", "message"),
    [
        ("[]", ProtocolError, ErrorCode.INVALID_FRAME, "a frame must be a JSON object"),
        ('"hello"', ProtocolError, ErrorCode.INVALID_FRAME, "a frame must be a JSON object"),
        ("{}", ProtocolError, ErrorCode.INVALID_FRAME, "'op' must be a non-empty string"),
        ('{"op":""}', ProtocolError, ErrorCode.INVALID_FRAME, "'op' must be a non-empty string"),
        ('{"op":1}', ProtocolError, ErrorCode.INVALID_FRAME, "'op' must be a non-empty string"),
        ('{"op":"bye"}', UnknownTypeError, ErrorCode.UNKNOWN_TYPE, "unknown message type 'bye'"),
        ('{"op":"hello"}', PayloadValidationError, ErrorCode.VALIDATION_ERROR, "invalid payload"),
        ("NaN", ProtocolError, ErrorCode.INVALID_JSON, "the frame is not valid JSON"),
        ('{"op":"\\udc00"}', ProtocolError, ErrorCode.INVALID_JSON, "the frame is not valid JSON"),
    ],
)
def test_the_document_framing_refuses(
    text: str, error: type[Exception], code: ErrorCode, message: str
) -> None:
    decoder = _decoder(DocumentFraming(discriminator="op", correlation="rid"))
    with pytest.raises(error) as info:
        decoder.validate(text)
    assert isinstance(info.value, ProtocolError | PayloadValidationError | UnknownTypeError)
    assert info.value.code is code and info.value.message.startswith(message)


def test_document_framing_payload_errors_are_located_in_the_frame() -> None:
    decoder = _decoder(DocumentFraming(discriminator="op"))
    with pytest.raises(PayloadValidationError) as info:
        decoder.validate('{"op":"hello","name":5}')
    assert info.value.errors == [
        {"loc": ["name"], "msg": "Input should be a valid string", "type": "string_type"}
    ]


def test_the_document_framing_decodes_by_shape() -> None:
    ping = shape_of(
        "ping",
        "ping",
        {"type": "object", "properties": {"op": {"const": "hello"}}},
        correlation=("rid",),
        operation="hello",
    )
    orphan = shape_of("status", "status", {"properties": {"op": {"const": "status"}}})
    decoder = _decoder(DocumentFraming(shapes=[ping, orphan]))
    frame = decoder.validate('{"op":"hello","rid":2,"name":"x"}')
    assert (frame.type, frame.id, frame.message) == ("hello", 2, ping)
    # a message that no receive operation takes is as unknown as no message at all
    for text in ('{"op":"status"}', '{"op":"bye"}'):
        with pytest.raises(UnknownTypeError, match="none of the messages"):
            decoder.validate(text)


def test_correlation_values_by_name_pointer_and_location() -> None:
    assert DocumentFraming(correlation="reqid").correlation == ("reqid",)
    assert DocumentFraming(correlation="/meta/id").correlation == ("meta", "id")
    assert DocumentFraming(correlation="$message.payload#/a~1b").correlation == ("a/b",)
    assert DocumentFraming().correlation is None
    framing = DocumentFraming(correlation="/meta/id")
    assert framing.correlation_of({"meta": {"id": "é"}}) == "é"
    for value in (True, 1.5, None, [1], {"x": 1}):  # only strings and integers correlate
        assert framing.correlation_of({"meta": {"id": value}}) is None
    assert DocumentFraming().correlation_of({"id": 1}) is None  # no correlation at all


def test_replies_carry_the_request_correlation_unless_they_have_their_own() -> None:
    framing = DocumentFraming(correlation="reqid")
    assert framing.replies(_Frame(5), '[{"a":1},{"b":2,"reqid":9}]') == [
        '{"a":1,"reqid":5}',
        '{"b":2,"reqid":9}',
    ]
    assert framing.replies(_Frame(None), '{"a":"é"}') == ['{"a":"é"}']
    assert framing.ack(_Frame(1)) is None  # operations that return nothing: no answer
    assert framing.with_correlation([1], 5) == [1]  # only objects get one
    nested = DocumentFraming(correlation="/meta/id")
    assert nested.replies(_Frame("x"), '{"a":1}') == ['{"a":1,"meta":{"id":"x"}}']


def test_document_framing_errors_are_frames_of_their_own() -> None:
    framing = DocumentFraming(correlation="reqid")
    found = framing.correlation_in('{"event":"ping","reqid":4}')
    assert json.loads(framing.error(ForbiddenError("no"), found) or "") == {
        "error": {"code": "forbidden", "message": "no"},
        "reqid": 4,
    }
    invalid = PayloadValidationError("bad", errors=[{"loc": ["a"], "msg": "m", "type": "t"}])
    assert json.loads(framing.error(invalid, None) or "") == {
        "error": {
            "code": "validation_error",
            "message": "bad",
            "errors": [{"loc": ["a"], "msg": "m", "type": "t"}],
        }
    }
    for text in (None, "not json", "[1]", '{"reqid":true}', "x" * ((1 << 20) + 1)):
        assert framing.correlation_in(text) is None
    # an app's own error frames
    custom = DocumentFraming(error=lambda exc, corr: {"err": str(exc.code), "id": corr})
    assert custom.error(ForbiddenError(), 3) == '{"err":"forbidden","id":3}'
    assert DocumentFraming(error=lambda exc, corr: None).error(ForbiddenError(), 3) is None


def test_the_error_of_a_frame_that_is_no_message_is_correlated_where_any_message_has_it() -> None:
    shapes = [
        shape_of("a", "a", {"properties": {"op": {"const": "a"}}}, correlation=("rid",)),
        shape_of("b", "b", {"properties": {"op": {"const": "b"}}}, correlation=("id",)),
    ]
    framing = DocumentFraming(shapes=shapes)
    found = framing.correlation_in('{"op":"b","rid":1,"id":2}')  # message b: its location
    assert json.loads(framing.error(ForbiddenError(), found) or "")["id"] == 2
    nothing = framing.correlation_in('{"op":"zzz","id":7}')  # no message: any location
    assert json.loads(framing.error(ForbiddenError(), nothing) or "")["id"] == 7
    with_shapes = DocumentFraming(discriminator="op", correlation="rid").with_shapes(shapes)
    assert (with_shapes.discriminator, with_shapes.correlation) == ("op", ("rid",))
    assert with_shapes.shapes == shapes


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
