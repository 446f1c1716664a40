"""`WebSocketProxy`: relay a client websocket to an upstream websocket service (API gateway).

What it promises:

- **No open relay.** The upstream URL comes from server code, never from the client: a fixed
  ``ws://``/``wss://`` endpoint, or a template (`WebSocketProxy.from_template`) whose fields are
  each one validated path segment (``[A-Za-z0-9._~-]{1,128}``, not ``.``/``..``) that cannot
  change the scheme, host or port.
- **Accept last.** If the client is not accepted yet, the upstream is connected first (forwarding
  the allow-listed headers and the client's subprotocols, within ``connect_timeout``); the
  client is then accepted with the subprotocol the upstream chose. An unreachable, refusing or
  slow upstream makes the gateway refuse the client's handshake (HTTP 403). For a client that
  was already accepted (seed style), the client is closed with 1014 "upstream unavailable".
- **Browsers from the gateway's own origin only.** The client's ``Origin`` is checked with
  `asyncws.auth.origin_allowed` before anything else: same-origin by default,
  ``allowed_origins=[...]`` widens it, ``["*"]`` opts out; a client without ``Origin`` (not a
  browser) passes. Refused: HTTP 403 (1008 if already accepted).
- **One value per forwarded header.** A header named in ``forward_headers`` that the client
  sent more than once (two ``Authorization`` headers) is refused the same way: the gateway
  never forwards two credentials for the upstream to pick from.
- **Frames as they are.** Text and binary frames are forwarded unchanged and in order, in each
  direction.
- **Bounded memory.** Frames are at most ``max_size`` bytes. Client to upstream, the next frame
  is read only once the upstream connection took the previous one; upstream to client, at most
  ``max_buffer`` bytes (1 MiB by default; at least one frame) wait: the queue holds
  ``max_buffer // max_size`` frames (at least 1, at most ``max_queue``). Past that, reading
  stops and TCP flow control pushes back on the sender (with a server whose ``send`` waits for
  the transport, as uvicorn's do).
- **Closes propagate.** When one side closes, the other is closed with the same code and reason
  (1005 "no status" becomes 1000; codes that may not be sent on the wire, such as 1006
  "abnormal closure", become 1011).
- **Nothing leaks.** When the call returns, or is cancelled, both relay tasks are finished and
  the upstream connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.exceptions import WebSocketException as WebSocketsError
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from .auth import origin_allowed
from .codes import CloseCode
from .protocol import close_reason as _reason

__all__ = [
    "UPSTREAM_UNAVAILABLE",
    "WebSocketProxy",
    "upstream_url",
    "wire_close_code",
]

logger = logging.getLogger("asyncws.proxy")

#: The close reason sent to an already accepted client when the upstream cannot be reached.
UPSTREAM_UNAVAILABLE = "upstream unavailable"

_SEGMENT = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_TEMPLATE_PREFIX = re.compile(r"wss?://[^/?#{}\s]+/", re.IGNORECASE)

# Close codes an endpoint may put in a close frame (RFC 6455 section 7.4, IANA registry);
# 3000-4999 are for libraries and applications.
_SENDABLE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

# Headers that describe the client's own connection or handshake: never forwarded.
_NOT_FORWARDABLE = frozenset(
    {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "sec-websocket-key",
        "sec-websocket-protocol",
        "sec-websocket-version",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


def wire_close_code(code: int | None) -> int:
    """The close code to send on the other side for a close observed with ``code``.

    Codes that may be sent pass through; 1005 (no status received) or no code becomes 1000;
    anything else that may not be sent (1006 abnormal closure, 1015 TLS failure, unassigned
    codes) becomes 1011.
    """
    if code is None or code == 1005:
        return int(CloseCode.NORMAL_CLOSURE)
    if code in _SENDABLE_CODES or 3000 <= code <= 4999:
        return code
    return int(CloseCode.INTERNAL_ERROR)


def _check_endpoint(url: str) -> str:
    """Validate an upstream URL: ``ws://`` or ``wss://``, a host, no fragment."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError("the upstream URL contains whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("ws", "wss"):
        raise ValueError(f"the upstream URL must be ws:// or wss://, not {parts.scheme or '?'}://")
    if not parts.hostname:
        raise ValueError("the upstream URL has no host")
    if parts.fragment or url.endswith("#"):
        raise ValueError("the upstream URL must not have a fragment")
    try:
        parse_uri(url)
    except WebSocketsError as exc:
        raise ValueError(f"invalid upstream URL: {exc}") from None
    return url


def _redact(url: str) -> str:
    """The URL without user info, for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def upstream_url(template: str, /, **values: str | int) -> str:
    """Fill ``template`` (e.g. ``"ws://svc:8000/ws/{conn_id}"``) with ``values``.

    The template must start with ``ws://`` or ``wss://``, a host and the ``/`` that starts the
    path; its fields are plain names (``{conn_id}``, no format spec or conversion). Each value
    must be one safe path segment, ``[A-Za-z0-9._~-]{1,128}`` and not ``.`` or ``..``, so a
    value can never add a path segment, a query, or change the host. Raises `ValueError`
    otherwise, or when a field has no value or a value has no field.
    """
    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"invalid upstream URL template: {exc}") from None
    fields = [p[1] for p in pieces if p[1] is not None]
    if fields and not _TEMPLATE_PREFIX.match(pieces[0][0]):
        raise ValueError(
            "template fields may only appear in the path: the template must start with "
            "ws:// or wss://, the host and '/' before its first field"
        )
    out: list[str] = []
    used: set[str] = set()
    for literal, field, spec, conversion in pieces:
        out.append(literal)
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"template field {{{field}}} must be a plain name")
        if field not in values:
            raise ValueError(f"no value for template field {{{field}}}")
        value = values[field]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"value for {{{field}}} must be a str or an int")
        text = str(value)
        if not _SEGMENT.fullmatch(text) or text in (".", ".."):
            raise ValueError(
                f"value for {{{field}}} is not a single safe path segment "
                "([A-Za-z0-9._~-]{1,128}, not '.' or '..')"
            )
        out.append(text)
        used.add(field)
    extra = set(values) - used
    if extra:
        raise ValueError(f"values without a template field: {', '.join(sorted(extra))}")
    url = _check_endpoint("".join(out))
    if fields and urlsplit(url).netloc != urlsplit(pieces[0][0]).netloc:  # defence in depth
        raise ValueError("template values must not change the upstream host")
    return url


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How the relay ended: who closed, and what to send to each side still open."""

    closed_by: Literal["client", "upstream", "proxy"]
    code: int  # the close code as observed (may be 1005/1006)
    reason: str
    to_client: tuple[int, str] | None = None
    to_upstream: tuple[int, str] | None = None


class WebSocketProxy:
    """Relay frames between ``client`` (a Starlette/FastAPI websocket) and ``server_endpoint``.

    ``await proxy()`` returns when both directions are done. ``forward_headers`` names the client
    request headers passed to the upstream (default: ``Authorization`` only; handshake and
    hop-by-hop headers cannot be forwarded), ``extra_headers`` adds fixed ones. ``subprotocols``
    defaults to the client's requested subprotocols. ``connect_timeout`` bounds the whole
    upstream opening handshake. ``max_size`` (bytes per frame), ``max_buffer`` (bytes) and
    ``max_queue`` (frames) bound the buffering in each direction (see the module docstring).
    The upstream connection never uses an HTTP proxy from the environment and, by default, no
    compression. ``allowed_origins`` is the browser origin check (None: same-origin only;
    ``["*"]``: any).

    After the call, ``closed_by`` (``"client"``, ``"upstream"`` or ``"proxy"``), ``close_code``
    and ``close_reason`` tell how the relay ended (``None`` if the upstream was never reached).
    """

    def __init__(
        self,
        client: WebSocket,
        server_endpoint: str,
        *,
        forward_headers: Iterable[str] = ("authorization",),
        extra_headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        connect_timeout: float = 5.0,
        close_timeout: float = 5.0,
        max_queue: int = 64,
        max_size: int = 2**20,
        max_buffer: int = 2**20,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        compression: Literal["deflate"] | None = None,
        allowed_origins: Sequence[str] | None = None,
    ) -> None:
        self.client = client
        self.allowed_origins = tuple(allowed_origins) if allowed_origins is not None else None
        self.server_endpoint = _check_endpoint(server_endpoint)
        names = [name.strip().lower() for name in forward_headers]
        bad = sorted(set(names) & _NOT_FORWARDABLE)
        if bad:
            raise ValueError(f"these headers cannot be forwarded: {', '.join(bad)}")
        self.forward_headers: tuple[str, ...] = tuple(dict.fromkeys(names))
        self.extra_headers = dict(extra_headers or {})
        bad = sorted({k.lower() for k in self.extra_headers} & _NOT_FORWARDABLE)
        if bad:
            raise ValueError(f"these headers cannot be set: {', '.join(bad)}")
        self.subprotocols = list(subprotocols) if subprotocols is not None else None
        if connect_timeout <= 0 or close_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if max_queue < 1 or max_size < 1 or max_buffer < 1:
            raise ValueError("max_queue, max_size and max_buffer must be positive")
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.max_queue = max_queue
        self.max_size = max_size
        self.max_buffer = max_buffer
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.compression = compression
        self.closed_by: Literal["client", "upstream", "proxy"] | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    @classmethod
    def from_template(
        cls,
        client: WebSocket,
        template: str,
        /,
        *,
        forward_headers: Iterable[str] = ("authorization",),
        extra_headers: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] | None = None,
        connect_timeout: float = 5.0,
        close_timeout: float = 5.0,
        max_queue: int = 64,
        max_size: int = 2**20,
        max_buffer: int = 2**20,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        compression: Literal["deflate"] | None = None,
        allowed_origins: Sequence[str] | None = None,
        **values: str | int,
    ) -> WebSocketProxy:
        """A proxy to ``upstream_url(template, **values)``; the other keywords are the options.

        ``WebSocketProxy.from_template(ws, "ws://chat:8000/ws/{conn_id}", conn_id=conn_id)``.
        Raises `ValueError` for a value that is not one safe path segment (see `upstream_url`).
        """
        return cls(
            client,
            upstream_url(template, **values),
            forward_headers=forward_headers,
            extra_headers=extra_headers,
            subprotocols=subprotocols,
            connect_timeout=connect_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            max_size=max_size,
            max_buffer=max_buffer,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            compression=compression,
            allowed_origins=allowed_origins,
        )

    @property
    def queue_frames(self) -> int:
        """The upstream -> client queue's high-water mark, in frames: ``max_buffer`` bytes of
        frames of up to ``max_size`` bytes (at least one frame, at most ``max_queue``)."""
        return max(1, min(self.max_queue, self.max_buffer // self.max_size))

    # -- handshake ------------------------------------------------------------------------

    def _requested_subprotocols(self) -> list[str]:
        if self.subprotocols is not None:
            return self.subprotocols
        return [str(p) for p in self.client.scope.get("subprotocols", [])]

    def _upstream_headers(self) -> tuple[list[tuple[str, str]], str | None]:
        headers: list[tuple[str, str]] = []
        user_agent: str | None = None
        for name in self.forward_headers:
            for value in self.client.headers.getlist(name):
                if name == "user-agent":
                    user_agent = value
                else:
                    headers.append((name, value))
        for name, value in self.extra_headers.items():
            if name.lower() == "user-agent":
                user_agent = value
            else:
                headers.append((name, value))
        return headers, user_agent

    async def _connect(self) -> ClientConnection:
        headers, user_agent = self._upstream_headers()
        kwargs: dict[str, Any] = {}
        if user_agent is not None:
            kwargs["user_agent_header"] = user_agent
        protocols = [Subprotocol(p) for p in self._requested_subprotocols()]
        # open_timeout bounds the TCP connection, TLS and the opening handshake together.
        return await connect(
            self.server_endpoint,
            additional_headers=headers,
            subprotocols=protocols or None,
            open_timeout=self.connect_timeout,
            close_timeout=self.close_timeout,
            max_size=self.max_size,
            max_queue=self.queue_frames,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            compression=self.compression,
            proxy=None,
            **kwargs,
        )

    async def __call__(self) -> None:
        """Connect upstream, accept the client (unless already accepted), relay until closed."""
        client = self.client
        state = client.application_state
        if state not in (WebSocketState.CONNECTING, WebSocketState.CONNECTED):
            raise RuntimeError("the client websocket is already closed")
        accepted = state == WebSocketState.CONNECTED
        refusal = self._refusal()
        if refusal is not None:
            logger.info("websocket proxy %s: %s", client.url.path, refusal)
            self.closed_by, self.close_code = "proxy", int(CloseCode.POLICY_VIOLATION)
            self.close_reason = refusal
            if accepted:
                await self._close_client(int(CloseCode.POLICY_VIOLATION), refusal)
            else:  # before accept: HTTP 403
                with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
                    await client.close(int(CloseCode.POLICY_VIOLATION), refusal)
            return
        try:
            upstream = await self._connect()
        except (OSError, TimeoutError, WebSocketsError) as exc:
            logger.warning(
                "upstream %s unavailable: %s",
                _redact(self.server_endpoint),
                str(exc) or type(exc).__name__,
            )
            await self._refuse(accepted)
            return
        try:
            if not accepted:
                chosen = upstream.subprotocol
                if chosen is not None and chosen not in client.scope.get("subprotocols", []):
                    logger.debug("upstream chose subprotocol %r the client did not offer", chosen)
                    chosen = None
                try:
                    await client.accept(subprotocol=chosen)
                except (OSError, WebSocketDisconnect):
                    self.closed_by, self.close_code = "client", 1006
                    await self._close_upstream(upstream, int(CloseCode.GOING_AWAY), "client left")
                    return
            await self._relay(upstream)
        finally:
            # Idempotent; bounded by close_timeout. Also runs when the call is cancelled.
            await self._close_upstream(upstream, int(CloseCode.GOING_AWAY), "proxy closing")

    def _refusal(self) -> str | None:
        """Why the client may not be relayed at all (its origin, a repeated header), or None."""
        if not origin_allowed(self.client, self.allowed_origins):
            return "origin not allowed"
        for name in self.forward_headers:
            if len(self.client.headers.getlist(name)) > 1:
                return f"repeated {name} header"
        return None

    async def _refuse(self, accepted: bool) -> None:
        self.closed_by, self.close_code = "proxy", int(CloseCode.BAD_GATEWAY)
        self.close_reason = UPSTREAM_UNAVAILABLE
        if accepted:
            await self._close_client(int(CloseCode.BAD_GATEWAY), UPSTREAM_UNAVAILABLE)
        else:
            # A close before accept is answered with HTTP 403 by the server.
            with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
                await self.client.close(int(CloseCode.BAD_GATEWAY), UPSTREAM_UNAVAILABLE)

    async def _close_client(self, code: int, reason: str) -> None:
        if self.client.application_state != WebSocketState.CONNECTED:
            return
        # The client may be gone already; there is nobody left to tell.
        with contextlib.suppress(OSError, RuntimeError, WebSocketDisconnect):
            await self.client.close(code, _reason(reason))

    # -- relay ----------------------------------------------------------------------------

    async def _relay(self, upstream: ClientConnection) -> None:
        to_upstream = asyncio.create_task(
            self._client_to_upstream(upstream), name="asyncws.proxy.client_to_upstream"
        )
        to_client = asyncio.create_task(
            self._upstream_to_client(upstream), name="asyncws.proxy.upstream_to_client"
        )
        tasks = (to_upstream, to_client)
        outcome: _Outcome | None = None
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            outcome = self._outcome_of(tasks)
            if outcome is None:
                # The client stopped taking frames: its disconnect (with its code) is on the
                # way to the client->upstream direction.
                await asyncio.wait((to_upstream,), timeout=self.close_timeout)
                outcome = self._outcome_of((to_upstream,))
            if outcome is None:
                outcome = _Outcome(
                    "client", 1006, "", to_upstream=(int(CloseCode.GOING_AWAY), "client left")
                )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.closed_by, self.close_code, self.close_reason = (
            outcome.closed_by,
            outcome.code,
            outcome.reason,
        )
        if outcome.to_client is not None:
            await self._close_client(*outcome.to_client)
        if outcome.to_upstream is not None:
            await self._close_upstream(upstream, *outcome.to_upstream)

    async def _close_upstream(self, upstream: ClientConnection, code: int, reason: str) -> None:
        """Close the upstream, discarding what it still sends: the upstream's close frame may
        be queued behind frames the client never took (reading is paused while the queue is
        full), and the closing handshake would otherwise wait the whole ``close_timeout``."""

        async def discard() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await upstream.recv()

        drain = asyncio.create_task(discard(), name="asyncws.proxy.drain")
        try:
            await upstream.close(code, _reason(reason))
        except asyncio.CancelledError:
            upstream.transport.abort()  # cancelled again while closing: drop the connection
            raise
        finally:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)

    def _outcome_of(self, tasks: Iterable[asyncio.Task[_Outcome | None]]) -> _Outcome | None:
        for task in tasks:
            if not task.done() or task.cancelled():
                continue
            exc = task.exception()
            if exc is not None:
                logger.error("websocket proxy relay failed", exc_info=exc)
                error = (int(CloseCode.INTERNAL_ERROR), "proxy error")
                return _Outcome("proxy", error[0], error[1], to_client=error, to_upstream=error)
            result = task.result()
            if result is not None:
                return result
        return None

    def _too_big(self, data: str | bytes) -> bool:
        if isinstance(data, bytes):
            return len(data) > self.max_size
        if len(data) * 4 <= self.max_size:  # n characters are at most 4n bytes of UTF-8
            return False
        return len(data.encode("utf-8")) > self.max_size

    @staticmethod
    def _upstream_closed(exc: ConnectionClosed) -> _Outcome:
        # rcvd: the upstream's close frame; sent: ours, when the client library failed the
        # connection (frame too big, keepalive timeout, protocol error).
        frame = exc.rcvd if exc.rcvd is not None else exc.sent
        code = frame.code if frame is not None else 1006
        reason = frame.reason if frame is not None else ""
        return _Outcome("upstream", code, reason, to_client=(wire_close_code(code), reason))

    async def _client_to_upstream(self, upstream: ClientConnection) -> _Outcome:
        receive = self.client.receive
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                code = int(message.get("code", 1005))
                reason = str(message.get("reason") or "")
                return _Outcome("client", code, reason, to_upstream=(wire_close_code(code), reason))
            data: str | bytes | None = message.get("text")
            if data is None:
                data = message.get("bytes")
            if data is None:
                continue
            if self._too_big(data):
                too_big = (int(CloseCode.MESSAGE_TOO_BIG), "message too big")
                return _Outcome(
                    "proxy", too_big[0], too_big[1], to_client=too_big, to_upstream=too_big
                )
            try:
                await upstream.send(data)
            except ConnectionClosed as exc:
                return self._upstream_closed(exc)

    async def _upstream_to_client(self, upstream: ClientConnection) -> _Outcome | None:
        send = self.client.send
        while True:
            try:
                data = await upstream.recv()
            except ConnectionClosed as exc:
                return self._upstream_closed(exc)
            try:
                if isinstance(data, str):
                    await send({"type": "websocket.send", "text": data})
                else:
                    await send({"type": "websocket.send", "bytes": bytes(data)})
            except (OSError, WebSocketDisconnect):
                return None  # the client is gone; its close code arrives on the other direction
