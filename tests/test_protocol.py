"""The wire protocol's pure functions (asyncws.protocol), called directly: no app, no socket,
no event loop. Decoding client text, the envelope checks of `parse_frame`, frame ids, and the
server frames built by string assembly (each must be valid JSON that decodes to what it says).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest
from pydantic import BaseModel

from asyncws.codes import ErrorCode
from asyncws.exceptions import AsyncWSError, ForbiddenError, PayloadValidationError, ProtocolError
from asyncws.protocol import (
    MAX_ID_LENGTH,
    ack_frame,
    decode_json,
    dumps,
    error_frame,
    error_frame_for,
    event_frame,
    frame_id,
    parse_frame,
    reply_frame,
)

SAFE = 2**53  # the largest integer id a browser can echo exactly


def _code(text: Any) -> ErrorCode:
    """The error code `parse_frame` answers ``text`` with."""
    with pytest.raises(ProtocolError) as info:
        parse_frame(text)
    return info.value.code


# -- dumps -------------------------------------------------------------------------------------


def test_dumps_is_compact_and_keeps_non_ascii_text() -> None:
    assert dumps({"a": [1, 2.5, None, True], "b": {}}) == '{"a":[1,2.5,null,true],"b":{}}'
    # one character each: non-ASCII stays as it is (frames are UTF-8), quotes are escaped
    assert dumps('é😀"\\') == '"é😀\\"\\\\"'
    assert json.loads(dumps('é😀"\\')) == 'é😀"\\'


def test_dumps_escapes_control_characters() -> None:
    text = "a\x00b\nc\x1f"
    out = dumps(text)
    assert "\x00" not in out and "\n" not in out and "\x1f" not in out
    assert out == '"a\\u0000b\\nc\\u001f"'
    assert json.loads(out) == text


def test_dumps_encodes_models_dataclasses_and_datetimes() -> None:
    class Note(BaseModel):
        text: str
        at: datetime.date

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    assert dumps(Note(text="hi", at=datetime.date(2024, 2, 29))) == (
        '{"text":"hi","at":"2024-02-29"}'
    )
    assert dumps(Point(1, -2)) == '{"x":1,"y":-2}'
    assert dumps(datetime.datetime(2024, 1, 2, 3, 4, 5)) == '"2024-01-02T03:04:05"'


def test_dumps_refuses_a_lone_surrogate_in_a_structure() -> None:
    # UTF-8 cannot carry it: sending the frame would fail on the socket instead
    with pytest.raises(ValueError, match="surrogates not allowed"):
        dumps({"text": "\ud800"})


# -- frame ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a",
        "x" * MAX_ID_LENGTH,
        "é" * MAX_ID_LENGTH,  # characters, not bytes (128 bytes of UTF-8)
        "😀" * MAX_ID_LENGTH,
        0,
        -1,
        SAFE,
        -SAFE,
    ],
)
def test_usable_ids_are_kept(value: int | str) -> None:
    assert frame_id({"id": value}) == value


@pytest.mark.parametrize(
    "value",
    [
        "x" * (MAX_ID_LENGTH + 1),
        "ok\ud800",  # a lone surrogate could not be echoed
        SAFE + 1,
        -SAFE - 1,
        True,  # a bool is an int to Python, not to a client
        False,
        1.0,
        None,
        [1],
        {"id": 1},
    ],
)
def test_unusable_ids_are_none(value: Any) -> None:
    assert frame_id({"id": value}) is None


def test_frame_id_of_what_is_not_a_frame() -> None:
    assert frame_id({}) is None
    assert frame_id(None) is None
    assert frame_id([("id", 1)]) is None
    assert frame_id("id") is None


# -- decode_json -------------------------------------------------------------------------------


def test_decode_json_decodes_json() -> None:
    assert decode_json(' {"a": [1, "é", null]} ') == {"a": [1, "é", None]}
    assert decode_json("1e308") == 1e308
    assert decode_json('"\\u0000"') == "\x00"  # valid JSON; the topic checks refuse it there
    assert decode_json('{"a":1,"a":2}') == {"a": 2}  # the last duplicate key wins


def test_a_surrogate_pair_is_one_character() -> None:
    assert decode_json('"\\ud83d\\ude00"') == "😀"


def test_an_escaped_backslash_before_u_is_not_a_surrogate() -> None:
    # the text holds a backslash and "ud800", not an escape: nothing to refuse
    assert decode_json('"\\\\ud800"') == "\\ud800"


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "{",
        "{'a': 1}",
        '{"a":1,}',
        "\ufeff{}",  # a byte order mark
        "NaN",
        "[Infinity]",
        '{"x": -Infinity}',
        "1e999",  # valid syntax, but it would be sent back as Infinity
        "-1e999",
        "1" * 5000,  # more digits than Python converts
    ],
)
def test_invalid_json(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_json(text)
    assert info.value.code is ErrorCode.INVALID_JSON
    assert info.value.message == "the frame is not valid JSON"


@pytest.mark.parametrize(
    "text",
    [
        '"\\ud800"',
        '"\\uDFFF"',
        '{"\\udc00": 1}',  # in a key
        '[["ok", ["\\ud800"]]]',  # nested
        '"\ud800"',  # raw in the text, not escaped
        '"a\\ud83d"',  # a high surrogate without its low half
    ],
)
def test_lone_surrogates_are_invalid_json(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_json(text)
    assert info.value.code is ErrorCode.INVALID_JSON
    assert "lone surrogate" in info.value.message


def test_nesting_too_deep_for_the_parser() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_json("[" * 100_000 + "]" * 100_000)
    assert info.value.code is ErrorCode.INVALID_JSON
    assert info.value.message == "the frame nests too deeply"


# -- parse_frame ---------------------------------------------------------------------------------


def test_parse_frame_returns_the_object_with_every_field() -> None:
    text = '{"type":"post","id":"é1","topic":"rooms/a","data":{"t":"hi"},"extra":1}'
    assert parse_frame(text) == {
        "type": "post",
        "id": "é1",
        "topic": "rooms/a",
        "data": {"t": "hi"},
        "extra": 1,
    }
    assert parse_frame('{"type":"x","id":null,"topic":null}') == {
        "type": "x",
        "id": None,
        "topic": None,
    }


@pytest.mark.parametrize("data", [None, b'{"type":"x"}', bytearray(b"{}"), 1])
def test_not_text_is_unsupported_data(data: Any) -> None:
    assert _code(data) is ErrorCode.UNSUPPORTED_DATA


@pytest.mark.parametrize("text", ["", "not json", "NaN", '"\\ud800"'])
def test_parse_frame_of_invalid_json(text: str) -> None:
    assert _code(text) is ErrorCode.INVALID_JSON


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "a frame must be a JSON object"),
        ('"subscribe"', "a frame must be a JSON object"),
        ("null", "a frame must be a JSON object"),
        ("{}", "'type' must be a non-empty string"),
        ('{"type":""}', "'type' must be a non-empty string"),
        ('{"type":1}', "'type' must be a non-empty string"),
        ('{"type":["x"]}', "'type' must be a non-empty string"),
        ('{"type":"x","id":1.5}', "'id' must be a string of at most 64 characters"),
        ('{"type":"x","id":true}', "'id' must be a string of at most 64 characters"),
        ('{"type":"x","id":{}}', "'id' must be a string of at most 64 characters"),
        ('{"type":"x","id":9007199254740993}', "'id' must be a string of at most 64"),
        ('{"type":"x","id":"' + "y" * 65 + '"}', "'id' must be a string of at most 64"),
        ('{"type":"x","topic":1}', "'topic' must be a string"),
        ('{"type":"x","topic":["a"]}', "'topic' must be a string"),
    ],
)
def test_bad_envelopes_are_invalid_frames(text: str, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame(text)
    assert info.value.code is ErrorCode.INVALID_FRAME
    assert info.value.message.startswith(message)


def test_the_longest_id_passes_and_one_more_character_does_not() -> None:
    longest = "i" * MAX_ID_LENGTH
    assert parse_frame(json.dumps({"type": "x", "id": longest}))["id"] == longest
    assert _code(json.dumps({"type": "x", "id": longest + "i"})) is ErrorCode.INVALID_FRAME


# -- server frames -------------------------------------------------------------------------------


def test_ack_frames() -> None:
    assert ack_frame(None) == '{"type":"ack"}'
    assert ack_frame(7) == '{"type":"ack","id":7}'
    assert ack_frame(-SAFE) == '{"type":"ack","id":-9007199254740992}'
    assert ack_frame('a"b\\') == '{"type":"ack","id":"a\\"b\\\\"}'
    assert json.loads(ack_frame("ü\n")) == {"type": "ack", "id": "ü\n"}


def test_reply_frames_splice_the_encoded_data() -> None:
    assert reply_frame(1, '{"x":1}') == '{"type":"reply","id":1,"data":{"x":1}}'
    assert reply_frame(None, "null") == '{"type":"reply","data":null}'
    assert json.loads(reply_frame("r", dumps(["é", 2]))) == {
        "type": "reply",
        "id": "r",
        "data": ["é", 2],
    }


def test_event_frames() -> None:
    frame = event_frame("posted", "rooms/é/😀", '{"text":"hi"}')
    assert frame == '{"type":"posted","topic":"rooms/é/😀","data":{"text":"hi"}}'
    assert json.loads(event_frame('we"ird', "a\\b", "[]")) == {
        "type": 'we"ird',
        "topic": "a\\b",
        "data": [],
    }


def test_error_frames() -> None:
    assert error_frame(ErrorCode.FORBIDDEN, "nö", 3) == (
        '{"type":"error","id":3,"code":"forbidden","message":"nö"}'
    )
    errors = [{"loc": ["data", "text"], "msg": "too long", "type": "string_too_long"}]
    frame = json.loads(error_frame("validation_error", "invalid payload", "i", errors))
    assert frame == {
        "type": "error",
        "id": "i",
        "code": "validation_error",
        "message": "invalid payload",
        "errors": errors,
    }
    assert "errors" not in json.loads(error_frame("x", "m", None, []))  # empty: left out


def test_error_frame_for_an_exception() -> None:
    assert json.loads(error_frame_for(ForbiddenError("no"), 5)) == {
        "type": "error",
        "id": 5,
        "code": "forbidden",
        "message": "no",
    }
    # without a message, the code is the message; internal errors say nothing more
    assert json.loads(error_frame_for(ForbiddenError()))["message"] == "forbidden"
    assert json.loads(error_frame_for(AsyncWSError())) == {
        "type": "error",
        "code": "internal_error",
        "message": "internal_error",
    }
    exc = PayloadValidationError("bad", errors=[{"loc": ["a"], "msg": "m", "type": "t"}])
    assert json.loads(error_frame_for(exc, None))["errors"] == [
        {"loc": ["a"], "msg": "m", "type": "t"}
    ]


def test_every_server_frame_is_one_json_object_with_odd_text() -> None:
    odd = ["", "é", "😀", "\u2028", '"', "\\", "</script>", "\x7f", "a" * 10_000]
    for text in odd:
        for frame in (
            ack_frame(text[:64]),
            reply_frame(text[:64], dumps(text)),
            event_frame(text or "t", text, dumps({"t": text})),
            error_frame("bad_request", text, text[:64]),
        ):
            decoded = json.loads(frame)
            assert isinstance(decoded, dict)
            assert decoded.get("id", text[:64]) == text[:64]
