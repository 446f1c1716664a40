"""The error policy (`asyncws.error_policy`): one answer per exception, decided in one place.

The decisions are pure and tested without an event loop; `close_reason` too. Then what a
real client sees from a real uvicorn: a shutting-down server refuses with HTTP 503 (and
``Retry-After``), and a close reason longer than a close frame holds arrives cut to 123 bytes
of UTF-8 on a character boundary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from pydantic import BaseModel
from starlette.exceptions import HTTPException, WebSocketException
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asyncws.codes import CloseCode, ErrorCode
from asyncws.error_policy import (
    ABUSE,
    GOING_AWAY,
    INTERNAL,
    OVER_CAPACITY,
    SHUTTING_DOWN,
    SLOW_CONSUMER,
    STRIKE_COST,
    STRIKE_LIMIT,
    Close,
    Deny,
    ErrorFrame,
    Where,
    decide,
)
from asyncws.exceptions import (
    BrokerError,
    ForbiddenError,
    InvalidTopicError,
    ProtocolError,
)
from asyncws.protocol import MAX_CLOSE_REASON, close_reason
from tests.servers import UvicornServer

# -- decisions (pure) -------------------------------------------------------------------------


def test_a_client_error_in_the_frame_loop_is_an_error_frame_with_strikes() -> None:
    exc = InvalidTopicError("bad topic")
    assert decide(exc, Where.FRAME) == ErrorFrame(exc, strike=True)


@pytest.mark.parametrize(
    "exc", [BrokerError("redis is down"), INTERNAL], ids=["broker", "internal"]
)
def test_the_servers_own_errors_cost_the_client_nothing(exc: Exception) -> None:
    answer = decide(exc, Where.FRAME)
    assert isinstance(answer, ErrorFrame) and answer.strike is False


def test_errors_raised_by_handlers_cost_no_strikes() -> None:
    exc = ProtocolError("refused by the handler")
    assert decide(exc, Where.OPERATION) == ErrorFrame(exc, strike=False)


def test_an_http_exception_is_mapped_to_an_error_frame(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asyncws")
    answer = decide(HTTPException(404, "no such room"), Where.OPERATION, "operation 'get'")
    assert isinstance(answer, ErrorFrame) and not answer.strike
    assert (answer.error.code, answer.error.message) == (ErrorCode.NOT_FOUND, "no such room")
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "operation 'get'" in caplog.text


def test_a_websocket_exception_is_an_error_frame_then_a_close() -> None:
    answer = decide(WebSocketException(4003, "banned"), Where.OPERATION)
    assert isinstance(answer, Close)
    assert (answer.code, answer.reason) == (4003, "banned")
    assert answer.error is not None and answer.error.code == ErrorCode.FORBIDDEN


def test_a_bug_is_an_internal_error_with_the_traceback_in_the_log_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncws")
    answer = decide(RuntimeError("password=hunter2"), Where.FRAME)
    assert answer == ErrorFrame(INTERNAL, strike=False)
    assert "hunter2" not in json.dumps([answer.error.code, answer.error.message])
    (record,) = caplog.records
    assert isinstance(record.exc_info and record.exc_info[1], RuntimeError)


class _Model(BaseModel):
    n: int


@pytest.mark.parametrize(
    "exc",
    [
        ForbiddenError("no"),
        HTTPException(401),
        WebSocketException(1008),
        pytest.param(None, id="pydantic ValidationError"),
    ],
    ids=["AsyncWSError", "HTTPException", "WebSocketException", "ValidationError"],
)
def test_refusals_at_the_handshake_are_http_403(
    exc: Exception | None, caplog: pytest.LogCaptureFixture
) -> None:
    if exc is None:
        try:
            _Model.model_validate({"n": "x"})
        except Exception as raised:
            exc = raised
    assert exc is not None
    caplog.set_level(logging.INFO, logger="asyncws")
    answer = decide(exc, Where.HANDSHAKE)
    assert isinstance(answer, Deny) and answer.status == 403
    assert answer.code == CloseCode.POLICY_VIOLATION
    assert all(r.levelno == logging.INFO for r in caplog.records)  # a refusal, not a bug


def test_a_bug_at_the_handshake_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="asyncws")
    answer = decide(KeyError("session"), Where.HANDSHAKE)
    assert isinstance(answer, Deny) and answer.status == 403
    assert answer.code == CloseCode.INTERNAL_ERROR
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_the_answers_to_events_choose_their_codes_here() -> None:
    assert (OVER_CAPACITY.status, SHUTTING_DOWN.status) == (503, 503)  # try again later
    assert (ABUSE.code, SLOW_CONSUMER.code, GOING_AWAY.code) == (1008, 1013, 1001)
    assert STRIKE_LIMIT // STRIKE_COST == 20  # about 20 bad frames in a row close it


# -- close reasons: 123 bytes of UTF-8 --------------------------------------------------------


def test_an_ascii_reason_is_cut_at_123_characters() -> None:
    assert close_reason("x" * 200) == "x" * MAX_CLOSE_REASON == "x" * 123
    assert close_reason("short") == "short"


@pytest.mark.parametrize(
    ("char", "fits"), [("é", 61), ("€", 41), ("😀", 30)], ids=["2 bytes", "3 bytes", "4 bytes"]
)
def test_a_non_ascii_reason_is_cut_by_bytes_never_inside_a_character(char: str, fits: int) -> None:
    reason = close_reason(char * 100)
    assert reason == char * fits
    assert len(reason.encode("utf-8")) <= 123 < len((char * (fits + 1)).encode("utf-8"))


def test_a_reason_that_fits_in_bytes_is_kept_whole() -> None:
    reason = "é" * 61  # 122 bytes
    assert close_reason(reason) == reason


def test_a_lone_surrogate_cannot_break_the_close() -> None:
    reason = close_reason("bad \ud800 reason")
    reason.encode("utf-8")  # encodable: the close frame can be sent
    assert reason.startswith("bad ") and reason.endswith(" reason")


# -- against a real server --------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[UvicornServer]:
    with UvicornServer("tests.apps.refusals_app:app", ready_path="/_test/none") as web:
        yield web


@pytest.mark.slow
async def test_a_long_non_ascii_close_reason_reaches_a_real_client_cut_to_123_bytes(
    server: UvicornServer,
) -> None:
    async with connect(server.ws_url("/ws"), open_timeout=10) as client:
        reason = "ü" * 100  # 200 bytes: more than a close frame can carry
        await client.send(
            json.dumps({"type": "close_me", "id": 1, "data": {"code": 4003, "reason": reason}})
        )
        error = json.loads(await client.recv())
        assert (error["type"], error["id"], error["code"]) == ("error", 1, "forbidden")
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
    received = closed.value.rcvd
    assert received is not None
    assert received.code == 4003
    assert received.reason == "ü" * 61  # 122 bytes: the 62nd would not fit


@pytest.mark.slow
async def test_a_server_shutting_down_refuses_a_real_client_with_503(
    server: UvicornServer,
) -> None:
    async with connect(server.ws_url("/ws"), open_timeout=10) as client:  # still accepting
        await client.send(json.dumps({"type": "ping", "id": 1}))
        assert json.loads(await client.recv()) == {"type": "ack", "id": 1}
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.post("/_test/stop-accepting")).status_code == 200
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.ws_url("/ws"), open_timeout=10)
        response = refused.value.response
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert b"shutting down" in response.body
