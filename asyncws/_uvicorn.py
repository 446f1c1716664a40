"""uvicorn protocol classes that `asyncws run` installs (``--http``/``--ws`` import strings).

Each is uvicorn's own implementation with one hole closed:

- `WebSocketProtocol` (uvicorn's ``websockets-sansio``): a ping is answered by a pong written
  to the transport at once, whatever the transport holds already, so a client that sends pings
  and never reads grows the server's write buffer without bound. Here, a pong written while the
  transport is over its high-water mark pauses reading until the buffer drains: the flood is
  pushed back onto the client's TCP window, as data frames already are.
- `HttpToolsProtocol` / `H11Protocol`: uvicorn gives a connection unlimited time to send its
  request headers (the keep-alive timeout starts after a response), so slowloris sockets that
  send a partial upgrade request hold a file descriptor forever. Here a connection must complete
  its request headers within ``ASYNCWS_HEADER_TIMEOUT`` seconds of opening (or of the previous
  response), and send at most ``ASYNCWS_MAX_HEADER_BYTES`` while doing so, else it is closed.

The settings come from the environment (``asyncws run`` sets them) so that uvicorn's worker and
reload processes see them too. This module imports uvicorn: it is imported only by uvicorn
itself, through the import strings `asyncws.serve` passes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol as _H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["H11Protocol", "HttpToolsProtocol", "WebSocketProtocol"]

logger = logging.getLogger("asyncws.serve")

HEADER_TIMEOUT_ENV = "ASYNCWS_HEADER_TIMEOUT"
MAX_HEADER_BYTES_ENV = "ASYNCWS_MAX_HEADER_BYTES"


def _setting(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol; pongs obey the transport's backpressure."""

    _pongs_paused = False

    def handle_ping(self) -> None:
        super().handle_ping()
        if not self.writable.is_set():  # over the high-water mark: stop reading more pings
            self._pongs_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self._pongs_paused:
            return
        self._pongs_paused = False
        # Reading stays paused while a received message waits for the app (uvicorn's flag).
        if not self.read_paused and not self.transport.is_closing():
            self.transport.resume_reading()


class _HeaderDeadline:
    """A deadline for the request headers, armed when a connection opens and after each
    response, checked when it fires: closed unless a request is in progress or the
    connection became a websocket (then it belongs to another protocol)."""

    # provided by the uvicorn protocol class this is mixed into
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_bytes = 0
        timeout = _setting(HEADER_TIMEOUT_ENV, 10.0)
        if timeout > 0:
            self._header_timer = self.loop.call_later(timeout, self._header_deadline)

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _awaiting_headers(self) -> bool:
        protocol: object = self.transport.get_protocol()
        if self.transport.is_closing() or protocol is not self:
            return False  # closed, or upgraded to a websocket
        cycle = self.cycle
        return cycle is None or bool(cycle.response_complete)

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self._awaiting_headers():
            logger.info("closing a connection that sent no complete request headers in time")
            self.transport.close()

    def _count_header_bytes(self, size: int) -> None:
        """After a chunk was parsed: bytes of a request whose headers are still incomplete."""
        if not self._awaiting_headers():  # complete (or upgraded): no deadline until next time
            self._header_bytes = 0
            self._disarm_header_deadline()
            return
        self._header_bytes += size
        if self._header_bytes > _setting(MAX_HEADER_BYTES_ENV, 65536):
            logger.info("closing a connection whose request headers are over the limit")
            self.transport.close()

    # The protocol's own hooks, around the uvicorn class that comes next in the MRO.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        self._count_header_bytes(len(data))

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm_header_deadline()


class HttpToolsProtocol(_HeaderDeadline, _HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-header deadline and size limit."""


class H11Protocol(_HeaderDeadline, _H11Protocol):
    """uvicorn's h11 protocol with a request-header deadline and size limit."""
