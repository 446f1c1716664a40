"""Client frames of asyncws's envelope (asyncws.frames), validated directly: a `FrameValidator`
built from declared operations, no app, no socket, no event loop. Every error path of
`FrameValidator.error` (one protocol error per bad frame, docs/protocol.md), the control
frames, id bounds, odd unicode, and the error-path helpers `safe_id` and `field_errors`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, Field

from asyncws import Router
from asyncws.codes import ErrorCode
from asyncws.exceptions import (
    AsyncWSError,
    PayloadValidationError,
    ProtocolError,
    UnknownTypeError,
)
from asyncws.frames import (
    FrameValidator,
    PresenceFrame,
    PresenceStatsFrame,
    PublishFrame,
    SubscribeFrame,
    UnsubscribeFrame,
    field_errors,
    safe_id,
)

SAFE = 2**53


class Say(BaseModel):
    room: str = Field(max_length=8)
    text: str


class Level(BaseModel):
    value: float


def _validator() -> FrameValidator:
    router = Router()

    @router.operation("say")
    def say(msg: Say) -> None: ...

    @router.operation("level")
    def level(msg: Level) -> None: ...

    @router.operation("ping")
    def ping() -> None: ...

    @router.operation("order.place")
    def place(msg: Say) -> None: ...

    return FrameValidator(router.operations.values())


VALIDATOR = _validator()


def _error(text: str) -> AsyncWSError:
    with pytest.raises(AsyncWSError) as info:
        VALIDATOR.validate(text)
    return info.value


# -- valid frames ------------------------------------------------------------------------------


def test_an_operation_frame_carries_its_validated_payload() -> None:
    frame = VALIDATOR.validate('{"type":"say","id":1,"data":{"room":"a","text":"hi"}}')
    assert frame.type == "say" and frame.id == 1
    assert isinstance(frame.data, Say) and frame.data == Say(room="a", text="hi")
    dotted = VALIDATOR.validate('{"type":"order.place","data":{"room":"b","text":"x"}}')
    assert dotted.type == "order.place" and dotted.id is None


def test_an_operation_without_payload_takes_any_data_or_none() -> None:
    assert VALIDATOR.validate('{"type":"ping"}').data is None
    assert VALIDATOR.validate('{"type":"ping","data":[1,{"x":null}]}').data == [1, {"x": None}]


def test_control_frames() -> None:
    sub = VALIDATOR.validate('{"type":"subscribe","id":"s","topic":"rooms/+","since":{"o":1}}')
    assert isinstance(sub, SubscribeFrame)
    assert (sub.id, sub.topic, sub.since) == ("s", "rooms/+", {"o": 1})
    assert VALIDATOR.validate('{"type":"subscribe","topic":"a"}').since is None
    unsub = VALIDATOR.validate('{"type":"unsubscribe","topic":"#"}')
    assert isinstance(unsub, UnsubscribeFrame) and unsub.topic == "#"
    pub = VALIDATOR.validate('{"type":"publish","topic":"notes/1","data":{"text":"x"}}')
    assert isinstance(pub, PublishFrame) and pub.data == {"text": "x"}
    assert VALIDATOR.validate('{"type":"publish","topic":"t"}').data is None
    assert isinstance(VALIDATOR.validate('{"type":"presence","topic":"t"}'), PresenceFrame)
    stats = VALIDATOR.validate('{"type":"presence_stats","topic":"t","id":2}')
    assert isinstance(stats, PresenceStatsFrame) and stats.id == 2


def test_other_fields_are_ignored() -> None:
    frame = VALIDATOR.validate(
        '{"type":"say","data":{"room":"a","text":"x","mood":"ok"},"zzz":1,"topic":5}'
    )
    assert frame.data == Say(room="a", text="x")
    assert not hasattr(frame, "zzz") and not hasattr(frame, "topic")


def test_odd_unicode_passes_through_unchanged() -> None:
    text = "é😀\u2028\u200b\x00"
    frame = VALIDATOR.validate(json.dumps({"type": "say", "data": {"room": "ß", "text": text}}))
    assert frame.data.text == text and frame.data.room == "ß"
    sub = VALIDATOR.validate(json.dumps({"type": "subscribe", "topic": "räume/😀", "id": "ü"}))
    assert (sub.topic, sub.id) == ("räume/😀", "ü")
    # a surrogate pair is one character, and counts as one against max_length
    assert VALIDATOR.validate('{"type":"say","data":{"room":"\\ud83d\\ude00","text":""}}')


@pytest.mark.parametrize("value", [0, -1, SAFE, -SAFE, "", "x" * 64, "é" * 64])
def test_ids_in_range(value: int | str) -> None:
    assert VALIDATOR.validate(json.dumps({"type": "ping", "id": value})).id == value


def test_the_last_duplicate_key_wins() -> None:
    frame = VALIDATOR.validate('{"type":"say","data":{"room":"a","text":"x"},"type":"ping"}')
    assert frame.type == "ping" and frame.data == {"room": "a", "text": "x"}


# -- one protocol error per bad frame ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        '{"type":"ping"} {}',
        "{'type': 'ping'}",
        "\ufeff" + '{"type":"ping"}',
        '{"type":"say","data":{"room":"a","text":"\\ud800"}}',  # a lone surrogate
        '{"type":"subscribe","topic":"\\udfff"}',
        '{"type":"ping","id":"\\ud800"}',
        "[" * 100_000,
    ],
)
def test_invalid_json(text: str) -> None:
    error = _error(text)
    assert type(error) is ProtocolError and error.code is ErrorCode.INVALID_JSON
    assert error.message == "the frame is not valid JSON"


@pytest.mark.parametrize("text", ["[]", "1", "null", '"ping"', "true", "NaN"])
def test_not_an_object(text: str) -> None:
    error = _error(text)
    assert error.code is ErrorCode.INVALID_FRAME
    assert error.message == "a frame must be a JSON object"


@pytest.mark.parametrize("value", ["", 1, True, None, ["ping"], {"t": 1}])
def test_a_type_that_is_not_a_non_empty_string(value: Any) -> None:
    error = _error(json.dumps({"type": value}))
    assert error.code is ErrorCode.INVALID_FRAME
    assert error.message == "'type' must be a non-empty string"


def test_a_missing_type() -> None:
    error = _error('{"id":1,"data":{}}')
    assert error.code is ErrorCode.INVALID_FRAME and error.message == "'type' is missing"


def test_an_unknown_type_names_at_most_40_characters() -> None:
    error = _error(json.dumps({"type": "nope"}))
    assert type(error) is UnknownTypeError and error.code is ErrorCode.UNKNOWN_TYPE
    assert error.message == "unknown message type 'nope'"
    long = _error(json.dumps({"type": "é" * 100}))
    assert long.message == f"unknown message type {'é' * 40!r}"
    # the type is compared exactly: no case folding, no normalisation
    assert _error('{"type":"Ping"}').code is ErrorCode.UNKNOWN_TYPE
    assert _error('{"type":"ping "}').code is ErrorCode.UNKNOWN_TYPE


@pytest.mark.parametrize(
    "value", [1.5, True, SAFE + 1, -SAFE - 1, "x" * 65, [1], {"id": 1}, "NaN", "1e999999"]
)
def test_ids_out_of_range(value: Any) -> None:
    text = '{"type":"ping","id":' + (value if value in ("NaN", "1e999999") else json.dumps(value))
    error = _error(text + "}")
    assert error.code is ErrorCode.INVALID_FRAME
    assert error.message == "'id' must be a string of at most 64 characters or an integer"


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe", "publish", "presence"])
@pytest.mark.parametrize("topic", [None, 1, ["a"], {"a": 1}])
def test_control_frames_need_a_string_topic(kind: str, topic: Any) -> None:
    body: dict[str, Any] = {"type": kind}
    if topic is not None:
        body["topic"] = topic
    error = _error(json.dumps(body))
    assert error.code is ErrorCode.INVALID_FRAME
    assert error.message == "'topic' is required and must be a string"


def test_a_missing_payload() -> None:
    error = _error('{"type":"say","id":3}')
    assert type(error) is PayloadValidationError and error.code is ErrorCode.VALIDATION_ERROR
    assert error.message == "'data' is required"
    assert error.errors == [{"loc": [], "msg": "Field required", "type": "missing"}]


def test_payload_errors_are_located_inside_data() -> None:
    error = _error('{"type":"say","data":{"room":"much too long","text":1}}')
    assert error.code is ErrorCode.VALIDATION_ERROR and error.message == "invalid payload"
    assert error.errors is not None
    assert [(e["loc"], e["type"]) for e in error.errors] == [
        (["room"], "string_too_long"),
        (["text"], "string_type"),
    ]
    assert _error('{"type":"say","data":null}').errors == [
        {"loc": [], "msg": "Input should be an object", "type": "model_type"}
    ]


def test_the_boundary_of_a_payload_constraint() -> None:
    assert VALIDATOR.validate('{"type":"say","data":{"room":"8chars!!","text":""}}')
    error = _error('{"type":"say","data":{"room":"9chars!!!","text":""}}')
    assert error.errors is not None and error.errors[0]["loc"] == ["room"]
    # 8 characters of 4 bytes each are still 8 characters
    assert VALIDATOR.validate(json.dumps({"type": "say", "data": {"room": "😀" * 8, "text": ""}}))


def test_infinity_and_nan_as_payload_values() -> None:
    """pydantic-core reads them as floats (docs/hostile-input.md): a string field refuses
    them, a float field takes them (pydantic's default; ``Field(allow_inf_nan=False)``
    refuses them) and encodes them as ``null``, so no frame sent is invalid JSON."""
    for value in ("Infinity", "NaN", "-Infinity", "1e999999"):
        error = _error('{"type":"say","data":{"room":"a","text":' + value + "}}")
        assert error.code is ErrorCode.VALIDATION_ERROR, value
        frame = VALIDATOR.validate('{"type":"level","data":{"value":' + value + "}}")
        assert frame.data.model_dump_json() == '{"value":null}'
    assert VALIDATOR.validate('{"type":"ping","x":NaN}').data is None  # an ignored field


def test_a_validator_without_operations_knows_the_control_frames_only() -> None:
    empty = FrameValidator(())
    assert isinstance(empty.validate('{"type":"subscribe","topic":"a"}'), SubscribeFrame)
    with pytest.raises(UnknownTypeError):
        empty.validate('{"type":"ping"}')


# -- error-path helpers --------------------------------------------------------------------------


def test_safe_id_returns_the_frame_when_it_has_a_usable_id() -> None:
    assert safe_id('{"type":"x","id":5,"data":1}') == {"type": "x", "id": 5, "data": 1}
    assert safe_id('{"id":"é"}') == {"id": "é"}


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "not json",
        "[1]",
        '{"type":"x"}',
        '{"id":null}',
        '{"id":1.5}',
        '{"id":true}',
        '{"id":"' + "x" * 65 + '"}',
        '{"id":"\\ud800"}',
        "[" * 100_000,
        '{"id":1,"pad":"' + "x" * (1 << 20) + '"}',  # over 1 MiB: not decoded
    ],
)
def test_safe_id_is_none_otherwise(text: str | None) -> None:
    assert safe_id(text) is None


def test_field_errors_drop_the_envelope_part_and_keep_50() -> None:
    errors = [{"loc": ("data", "items", i), "msg": "m", "type": "t", "input": i} for i in range(60)]
    out = field_errors(errors, 1)
    assert len(out) == 50
    assert out[0] == {"loc": ["items", 0], "msg": "m", "type": "t"}  # no "input": no echo
    assert field_errors(errors[:1], 3) == [{"loc": [], "msg": "m", "type": "t"}]
    assert field_errors([], 2) == []
