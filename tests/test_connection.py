"""`Connection` on its own: a real Starlette ``WebSocket`` over a fake ASGI side.

The ASGI ``send`` is a test double that records each message and, while its gate is shut,
suspends (an `asyncio.Event`): that is how a transport that pushes back looks to the
connection. Nothing here sleeps to wait: tests wait on the gate, `Connection.drain` or
`Connection.wait_closed`, with timeouts.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from asyncws.connection import Connection, ConnectionState, SlowConsumerPolicy
from asyncws.exceptions import BrokerError, ProtocolError

WAIT = 2.0


class FakeASGI:
    """The server side of one websocket: ``receive`` hands out what the test queued;
    ``send`` records each message, suspending first while ``gate`` is shut, and raises
    ``OSError`` once ``gone`` is set (as uvicorn's ``ClientDisconnected`` does)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.sent: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = 0  # sends suspended at the gate right now
        self.gone = False

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone:
            raise OSError("connection reset")
        if not self.gate.is_set():
            self.waiting += 1
            try:
                await self.gate.wait()
            finally:
                self.waiting -= 1
        self.sent.append(message)

    def texts(self) -> list[str]:
        return [m["text"] for m in self.sent if m["type"] == "websocket.send"]

    def closes(self) -> list[tuple[int, str]]:
        return [(m["code"], m["reason"]) for m in self.sent if m["type"] == "websocket.close"]


class Recorder:
    """`ConnectionEvents` that remembers what it was told."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.dropped = 0
        self.overflows: list[Connection] = []

    def frame_queued(self, kind: str) -> None:
        self.kinds.append(kind)

    def message_dropped(self, conn: Connection) -> None:
        self.dropped += 1

    def overflowed(self, conn: Connection) -> None:
        self.overflows.append(conn)


def websocket(asgi: FakeASGI) -> WebSocket:
    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    return WebSocket(scope, asgi.receive, asgi.send)


async def opened(
    asgi: FakeASGI,
    *,
    max_queue: int = 2048,
    max_queue_bytes: int = 1 << 20,
    slow_consumer: SlowConsumerPolicy = "close",
    max_frame_size: int = 1 << 20,
) -> tuple[Connection, Recorder]:
    conn = Connection(
        websocket(asgi),
        "c1",
        max_queue=max_queue,
        max_queue_bytes=max_queue_bytes,
        slow_consumer=slow_consumer,
        max_frame_size=max_frame_size,
    )
    events = Recorder()
    conn.events = events
    await conn.accept()
    asgi.sent.clear()  # the accept message
    return conn, events


def msg(text: str) -> dict[str, Any]:
    return {"type": "websocket.send", "text": text}


# -- sending ----------------------------------------------------------------------------------


async def test_while_the_socket_takes_data_push_writes_at_once() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    for i in range(3):
        assert conn.push(msg(str(i)))
        assert asgi.texts() == [str(n) for n in range(i + 1)]  # already sent: no task ran
    assert (conn.queued, conn.queued_bytes) == (0, 0)


async def test_a_send_that_suspends_goes_to_one_writer_that_keeps_the_order() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    asgi.gate.clear()
    assert conn.push(msg("first"))
    assert asgi.sent == [] and asgi.waiting == 1  # the writer holds it at the gate
    assert (conn.queued, conn.queued_bytes) == (0, 5)  # counted until it is sent
    assert conn.push(msg("second")) and conn.push(msg("third"))
    assert (conn.queued, conn.queued_bytes) == (2, 5 + 6 + 5)
    asgi.gate.set()
    await conn.drain(WAIT)
    assert asgi.texts() == ["first", "second", "third"]
    assert (conn.queued, conn.queued_bytes) == (0, 0)
    assert conn.push(msg("later"))  # the writer ended: written at once again
    assert asgi.texts()[-1] == "later"


async def test_the_queue_is_bounded_in_frames_and_an_overflow_closes_with_1013() -> None:
    asgi = FakeASGI()
    conn, events = await opened(asgi, max_queue=2)
    asgi.gate.clear()
    assert all(conn.push(msg(str(i))) for i in range(3))  # one in the writer, two queued
    assert conn.queued == 2
    assert not conn.push(msg("3"))
    assert conn.state is ConnectionState.CLOSING and conn.close_code == 1013
    assert events.overflows == [conn]  # the manager forgets it now
    assert not conn.push(msg("4"))  # nothing more is taken
    asgi.gate.set()
    async with asyncio.timeout(WAIT):
        await conn.wait_closed()
    assert asgi.closes() == [(1013, "slow consumer")]
    assert "3" not in asgi.texts() and "4" not in asgi.texts()


async def test_the_queue_is_bounded_in_bytes_counting_utf8() -> None:
    asgi = FakeASGI()
    conn, events = await opened(asgi, max_queue_bytes=100)
    asgi.gate.clear()
    wide = "é" * 20  # 20 characters, 40 bytes
    assert conn.push(msg(wide)) and conn.push(msg(wide))
    assert conn.queued_bytes == 80
    assert conn.push(msg("x" * 20))  # 100: exactly the bound
    assert not conn.push(msg("y"))  # 101
    assert events.overflows == [conn] and conn.close_code == 1013
    asgi.gate.set()
    async with asyncio.timeout(WAIT):
        await conn.wait_closed()


async def test_one_frame_bigger_than_the_byte_bound_is_still_taken_by_an_empty_queue() -> None:
    asgi = FakeASGI()
    conn, events = await opened(asgi, max_queue_bytes=10)
    asgi.gate.clear()
    assert conn.push(msg("b" * 50))  # into the writer
    assert conn.push(msg("c" * 50))  # the queue is empty: taken although over the bound
    assert conn.queued == 1 and events.overflows == []
    assert not conn.push(msg("d"))  # now the queue holds one: over the bound
    assert events.overflows == [conn]
    asgi.gate.set()
    async with asyncio.timeout(WAIT):
        await conn.wait_closed()


async def test_drop_oldest_keeps_the_newest_and_reports_each_drop() -> None:
    asgi = FakeASGI()
    conn, events = await opened(asgi, max_queue=2, slow_consumer="drop_oldest")
    asgi.gate.clear()
    assert all(conn.push(msg(str(i))) for i in range(6))  # 0 in the writer; 1..5 queue of 2
    assert (conn.queued, conn.dropped, events.dropped) == (2, 3, 3)
    assert conn.state is ConnectionState.OPEN and events.overflows == []
    asgi.gate.set()
    await conn.drain(WAIT)
    assert asgi.texts() == ["0", "4", "5"]


async def test_drop_oldest_by_bytes() -> None:
    asgi = FakeASGI()
    conn, events = await opened(asgi, max_queue_bytes=30, slow_consumer="drop_oldest")
    asgi.gate.clear()
    for text in ["a" * 10, "b" * 10, "c" * 10, "d" * 10]:
        assert conn.push(msg(text))
    # the writer holds "a" (10), so the queue holds 20 bytes: "b" made room for "d"
    assert (conn.queued, conn.queued_bytes, events.dropped) == (2, 30, 1)
    asgi.gate.set()
    await conn.drain(WAIT)
    assert asgi.texts() == ["a" * 10, "c" * 10, "d" * 10]


async def test_frames_queued_are_reported_by_type() -> None:
    asgi = FakeASGI()
    conn, events = await opened(asgi)
    assert conn.send_text_nowait('{"type":"ack","id":1}')
    assert conn.send_text_nowait('{"type":"error","code":"x"}')
    assert conn.send_text_nowait('{"type":"chat/1","data":{}}')
    assert conn.send_text_nowait("[1,2]")
    assert events.kinds == ["ack", "error", "other", "other"]


async def test_a_send_failing_marks_the_connection_closing() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    asgi.gone = True  # the transport is gone
    assert not conn.push(msg("lost"))
    assert conn.state is ConnectionState.CLOSING
    # Starlette's state is kept as its WebSocket.send keeps it (the send bypassed it)
    assert conn.websocket.application_state is WebSocketState.DISCONNECTED
    with pytest.raises(RuntimeError, match="closing"):
        await conn.send_text("also lost")


async def test_a_send_failing_in_the_writer_marks_the_connection_closing() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    asgi.gate.clear()
    assert conn.push(msg("held")) and conn.push(msg("queued"))  # a writer, a queue
    asgi.gone = True
    asgi.gate.set()
    await conn.drain(WAIT)
    assert conn.state is ConnectionState.CLOSING and conn.queued == 0
    assert conn.websocket.application_state is WebSocketState.DISCONNECTED
    assert asgi.texts() == ["held"]


async def test_a_delivery_goes_to_the_server_send_and_the_message_is_not_changed() -> None:
    """`push` skips Starlette's ``WebSocket.send`` (`asyncws.asgi_send`): the server gets the
    very message object shared by every recipient, unchanged, and Starlette's state stays."""
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    assert conn._asgi_send == asgi.send
    shared = msg("hello")
    assert conn.push(shared) and conn.push(shared)
    assert asgi.sent[-2] is shared and asgi.sent[-1] is shared
    assert shared == {"type": "websocket.send", "text": "hello"}
    assert conn.websocket.application_state is WebSocketState.CONNECTED


async def test_a_websocket_closed_directly_is_not_sent_to() -> None:
    """Closed through Starlette behind the connection's back: the send goes through
    ``WebSocket.send``, which refuses it, and the connection stops sending."""
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    await conn.websocket.close(1000)
    assert not conn.push(msg("after close"))
    assert conn.state is ConnectionState.CLOSING
    assert asgi.texts() == []


# -- states -----------------------------------------------------------------------------------


async def test_the_states_of_a_connection_from_accept_to_close() -> None:
    asgi = FakeASGI()
    conn = Connection(websocket(asgi), "c1")
    assert conn.state is ConnectionState.CONNECTING
    assert not conn.push(msg("too early"))  # nothing is sent before accept
    await conn.accept()
    assert conn.state is ConnectionState.OPEN
    await conn.accept()  # accepting twice is harmless
    await conn.close()
    assert conn.state is ConnectionState.CLOSED and conn.close_code == 1000
    await conn.close()  # closing twice is harmless
    conn.mark_closed()  # and so is forgetting it twice
    assert asgi.closes() == [(1000, "")]


async def test_a_closed_connection_cannot_open_again() -> None:
    conn = Connection(websocket(FakeASGI()), "c1")
    conn.mark_closed()  # e.g. refused at the handshake
    with pytest.raises(RuntimeError, match="closed -> open"):
        conn.mark_open()
    with pytest.raises(RuntimeError, match="closed -> open"):
        await conn.accept()
    assert conn.state is ConnectionState.CLOSED


async def test_a_closing_connection_cannot_open_again() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi, max_queue=1)
    asgi.gate.clear()
    conn.push(msg("a"))
    conn.push(msg("b"))
    assert not conn.push(msg("c"))  # overflow: closing
    assert conn.state is ConnectionState.CLOSING
    with pytest.raises(RuntimeError, match="closing -> open"):
        conn.mark_open()
    asgi.gate.set()
    async with asyncio.timeout(WAIT):
        await conn.wait_closed()


def test_the_state_is_not_assigned_from_outside() -> None:
    conn = Connection(websocket(FakeASGI()), "c1")
    with pytest.raises(AttributeError):
        conn.state = ConnectionState.OPEN  # type: ignore[misc]


async def test_a_never_accepted_connection_closes_before_accept() -> None:
    asgi = FakeASGI()
    conn = Connection(websocket(asgi), "c1")
    await conn.close(1008, "refused")
    assert conn.state is ConnectionState.CLOSED
    assert asgi.closes() == [(1008, "refused")]  # before accept: the server answers 403


# -- closing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "sent"),
    [
        ("ü" * 100, "ü" * 61),  # 200 bytes -> 122 (a 62nd would need 124)
        ("€" * 50, "€" * 41),  # 150 bytes -> 123 exactly
        ("a" + "😀" * 40, "a" + "😀" * 30),  # 161 bytes -> 121
        ("x" * 200, "x" * 123),
        ("fits", "fits"),
    ],
    ids=["2-byte", "3-byte", "4-byte", "ascii", "short"],
)
async def test_a_close_reason_is_cut_to_123_bytes_on_a_character_boundary(
    reason: str, sent: str
) -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    await conn.close(4000, reason)
    ((code, actual),) = asgi.closes()
    assert (code, actual) == (4000, sent)
    assert len(actual.encode("utf-8")) <= 123


async def test_close_sends_what_is_queued_first() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    asgi.gate.clear()
    conn.push(msg("1"))
    conn.push(msg("2"))
    closing = asyncio.get_running_loop().create_task(conn.close(1001, "bye", drain=WAIT))
    await asyncio.sleep(0)  # one loop tick: the task starts and waits for the drain
    assert conn.state is ConnectionState.CLOSING
    assert not conn.push(msg("3"))  # closing: nothing more is taken
    asgi.gate.set()
    await closing
    assert asgi.texts() == ["1", "2"] and asgi.closes() == [(1001, "bye")]


# -- receiving --------------------------------------------------------------------------------


async def test_a_frame_over_max_frame_size_closes_with_1009() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi, max_frame_size=10)
    asgi.inbox.put_nowait({"type": "websocket.receive", "text": "small"})
    asgi.inbox.put_nowait({"type": "websocket.receive", "text": "x" * 11})
    assert await conn.receive_text() == "small"
    with pytest.raises(WebSocketDisconnect) as ended:
        await conn.receive_text()
    assert ended.value.code == 1009
    assert asgi.closes() == [(1009, "frame too big")]
    assert conn.state is ConnectionState.CLOSED


async def test_the_client_leaving_closes_the_connection() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    asgi.inbox.put_nowait({"type": "websocket.disconnect", "code": 1001})
    with pytest.raises(WebSocketDisconnect):
        await conn.receive_text()
    assert conn.state is ConnectionState.CLOSED
    async with asyncio.timeout(WAIT):
        await conn.wait_closed()


async def test_bad_frames_cost_strikes_and_too_many_close_with_1008() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    for _ in range(20):  # two strikes each: 40, the limit
        assert await conn.reject(ProtocolError("bad"), {"id": 7})
    assert conn.state is ConnectionState.OPEN and conn.strikes == 40
    assert all('"id":7' in text and '"invalid_frame"' in text for text in asgi.texts())
    assert not await conn.reject(ProtocolError("bad"), None)  # 42: closed
    assert conn.state is ConnectionState.CLOSED
    assert asgi.closes() == [(1008, "too many invalid frames")]


async def test_good_frames_take_strikes_back() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    for _ in range(100):  # one bad frame, then a good one: it never adds up to the limit
        assert await conn.reject(ProtocolError("bad"), None)
        conn.good_frame()
        conn.good_frame()
    assert conn.strikes == 0 and conn.state is ConnectionState.OPEN


async def test_errors_that_are_the_servers_cost_no_strikes() -> None:
    asgi = FakeASGI()
    conn, _ = await opened(asgi)
    for _ in range(50):  # a client retrying while Redis is down is never closed for it
        assert await conn.reject(BrokerError("redis is down"), None)
    assert conn.strikes == 0 and conn.state is ConnectionState.OPEN
    assert len(asgi.texts()) == 50
