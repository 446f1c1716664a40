"""Documents in their own framing: `DocumentSpec` serves any AsyncAPI 3 WebSocket API through
an ordinary `AsyncWS` (`AsyncWS.from_asyncapi`; see `asyncws.spec.base`).

    app = AsyncWS.from_asyncapi("exchange.asyncapi.yaml")   # a document not written by asyncws

    @app.handler("ping")                              # a receive operation, by id
    async def ping(message: dict, conn: Connection) -> dict:
        return {"event": "pong"}                      # reqid is copied from the request

    await app.send("heartbeat", {"event": "heartbeat"})            # everyone on its address
    await app.send("statusUpdate", {...}, connection=conn)           # one connection
    await app.send("ticker", {...}, symbol="BTCUSD")                 # a path parameter

The document is read by `asyncws.asyncapi.reader.read_api`: every channel address is a
websocket route (``{param}`` in it is a typed, checked path parameter: a value outside its
``enum`` is refused at the handshake with HTTP 403); the frames of an address are classified
by `asyncws.framing.classify` into the receive operation they are for; the payload is
validated against the message schema (jsonschema, draft-07). A handler gets the frame (a
dict) and the `Connection` (and the address parameters, if it has a ``params`` argument)
and returns a reply frame, a list of reply frames, or None. Each reply is checked against
the operation's reply messages; a const discriminator of a sole reply message is filled in
when missing, and the request's correlation value is copied to the reply's
``correlationId.location``. A reply that does not match the document is a server bug: the
client gets an ``internal_error`` frame, the log the reason.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from ..asyncapi.reader import SpecError as ReaderError
from ..asyncapi.reader import WireAPI, WireEndpoint, WireMessage, WireOperation, WireParam, read_api
from ..codes import CloseCode, ErrorCode
from ..connection import Connection
from ..exceptions import PayloadValidationError, ProtocolError
from ..framing import DocumentFraming, InboundFrame, classify, get_pointer, set_pointer
from ..protocol import dumps
from .base import AppSpec, SpecError

__all__ = ["DocumentSpec"]

_SCOPE_KEY = "asyncws.endpoint"


class DocumentSpec(AppSpec):
    """An AsyncAPI document served in its own framing (see the module docstring): one
    websocket route per address, frames classified and answered here instead of asyncws's
    dispatch. ``skip_unsupported=True`` leaves out what asyncws cannot serve (listed in
    ``api.skipped``) instead of refusing the document."""

    def __init__(
        self, source: str | Path | Mapping[str, Any], *, skip_unsupported: bool = False
    ) -> None:
        super().__init__()
        try:
            api = read_api(source, skip_unsupported=skip_unsupported)
        except ReaderError as exc:
            raise SpecError(exc.problems) from None
        self.api: WireAPI = api
        self.document = api.document
        self.framing = DocumentFraming()
        self.app_arguments = {
            "title": api.title,
            "version": api.version,
            "description": api.description,
        }
        if api.endpoints:
            self.app_arguments["path"] = api.endpoints[0].address
        self.endpoints: dict[str, WireEndpoint] = {ep.address: ep for ep in api.endpoints}
        self._framings = {ep.address: DocumentFraming(shapes=ep.inbound()) for ep in api.endpoints}
        self._decoders = {address: f.decoder(()) for address, f in self._framings.items()}
        self._index = {ep.address: i for i, ep in enumerate(api.endpoints)}
        self._receive: dict[str, tuple[WireEndpoint, WireOperation]] = {
            op.id: (ep, op) for ep in api.endpoints for op in ep.receive
        }
        self._validators: dict[str, Callable[[Any], list[dict[str, Any]]]] = {}
        self._wants_params: set[str] = set()
        self._open_hooks: list[Callable[..., Any]] = []
        self.frame_handler = self.handle_frame

    # -- handlers ---------------------------------------------------------------------------

    def handle(self, operation_id: str, func: Callable[..., Any]) -> None:
        """Bind ``func`` to the receive operation ``operation_id``: it is called as
        ``func(message, conn)`` (plus ``params=`` when it has such an argument), sync or
        async, and returns the reply frame(s) or None."""
        super().handle(operation_id, func)
        if "params" in inspect.signature(func).parameters:
            self._wants_params.add(operation_id)

    def receives(self) -> dict[str, str]:
        return {
            op_id: f"receives {', '.join(m.name for m in op.messages)} on {ep.address}"
            for op_id, (ep, op) in self._receive.items()
        }

    def _validate(self, message: WireMessage, instance: Any) -> list[dict[str, Any]]:
        check = self._validators.get(message.key)
        if check is None:
            check = self._validators[message.key] = self.api.validator(message.schema)
        return check(instance)

    # -- connections ------------------------------------------------------------------------

    def framing_of(self, conn: Connection) -> DocumentFraming:
        return self._framings[conn.websocket.scope[_SCOPE_KEY]]

    def _endpoint_of(self, conn: Connection) -> WireEndpoint:
        return self.endpoints[conn.websocket.scope[_SCOPE_KEY]]

    def _topic(self, endpoint: WireEndpoint, params: Mapping[str, Any]) -> str:
        """The internal topic of every connection to ``endpoint`` with these parameters."""
        parts = [f"_endpoint/{self._index[endpoint.address]}"]
        for name in sorted(endpoint.params):
            parts.append(quote(str(params[name]), safe=""))
        return "/".join(parts)

    def on_open(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``func(conn)`` (plus ``params=`` when it has such an argument; sync or async)
        once a connection is open and receives pushes, before its first frame: the place to
        greet it (``await app.send("hello", {...}, connection=conn)``)."""
        self._open_hooks.append(func)
        return func

    async def attached(self, conn: Connection) -> None:
        endpoint = self._endpoint_of(conn)
        params = dict(conn.websocket.path_params)
        await self.app.manager.subscribe(conn, self._topic(endpoint, params))
        for hook in self._open_hooks:
            wants = "params" in inspect.signature(hook).parameters
            result = hook(conn, params=params) if wants else hook(conn)
            if inspect.isawaitable(result):
                await result

    def routes(self) -> list[BaseRoute]:
        """One websocket route per address of the document."""
        return [
            WebSocketRoute(address, self._route(endpoint), name=f"{endpoint.name}-ws")
            for address, endpoint in self.endpoints.items()
        ]

    def _route(self, endpoint: WireEndpoint) -> Callable[[WebSocket], Any]:
        app = self.app

        async def route(websocket: WebSocket) -> None:
            websocket.scope[_SCOPE_KEY] = endpoint.address
            for name, param in endpoint.params.items():
                if not _param_ok(param, websocket.path_params.get(name)):
                    await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: 403
                    return
            await app.endpoint(websocket)

        route.__self__ = app  # type: ignore[attr-defined]  # how `asyncws check` finds the app
        return route

    # -- frames -----------------------------------------------------------------------------

    async def handle_frame(self, conn: Connection, text: str | None) -> None:
        """Classify, validate and answer one frame (in place of asyncws's dispatch)."""
        app = self.app
        app.compile()
        counts = app.manager.frames_in
        if text is None:
            counts["invalid"] = counts.get("invalid", 0) + 1
            raise ProtocolError(
                "binary frames are not supported; send JSON text", code=ErrorCode.UNSUPPORTED_DATA
            )
        try:
            frame: InboundFrame = self._decoders[conn.websocket.scope[_SCOPE_KEY]].validate(text)
        except Exception:
            counts["invalid"] = counts.get("invalid", 0) + 1
            raise
        counts[frame.type] = counts.get(frame.type, 0) + 1
        _, op = self._receive[frame.type]
        message = next(m for m in op.messages if m.shape is frame.message)
        errors = self._validate(message, frame.data)
        if errors:
            raise PayloadValidationError("invalid payload", errors=errors)
        kwargs: dict[str, Any] = {}
        if op.id in self._wants_params:
            kwargs["params"] = dict(conn.websocket.path_params)
        result = self.handlers[op.id](frame.data, conn, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            return
        items = result if isinstance(result, list) else [result]
        texts = [self._reply(op, message, frame, item) for item in items]
        for out in texts:
            conn.send_text_nowait(out)

    def _reply(
        self, op: WireOperation, request: WireMessage, frame: InboundFrame, item: Any
    ) -> str:
        if not op.replies:
            raise RuntimeError(f"the handler of {op.id!r} returned a reply; the operation has none")
        if not isinstance(item, Mapping):
            raise RuntimeError(
                f"the handler of {op.id!r} returned {type(item).__name__}, not a dict"
            )
        out = dict(item)
        if len(op.replies) == 1:
            for prop, value in op.replies[0].shape.constants().items():
                out.setdefault(prop, value)
        shape = classify(out, [m.shape for m in op.replies])
        message = next((m for m in op.replies if m.shape is shape), op.replies[0])
        pointer = message.shape.correlation or request.shape.correlation
        if frame.id is not None and pointer is not None and get_pointer(out, pointer) is None:
            out = copy.deepcopy(out)
            set_pointer(out, pointer, frame.id)
        errors = self._validate(message, out)
        if errors:
            raise RuntimeError(
                f"the handler of {op.id!r} returned a reply that does not match message "
                f"{message.name!r}: {errors[0]['msg']} at {errors[0]['loc']}"
            )
        return dumps(out)

    # -- pushing ----------------------------------------------------------------------------

    def _send_target(self, name: str) -> tuple[WireEndpoint, WireOperation]:
        for endpoint in self.endpoints.values():
            for op in endpoint.send:
                if name == op.id or any(name in (m.key, m.name) for m in op.messages):
                    return endpoint, op
        known = ", ".join(op.id for ep in self.endpoints.values() for op in ep.send) or "none"
        raise KeyError(f"no send operation or message {name!r} (send operations: {known})")

    def frame(self, name: str, message: Mapping[str, Any]) -> str:
        """The frame of ``message`` for the send operation (or message) ``name``, checked
        against the document; raises `PayloadValidationError` when it does not match."""
        _, op = self._send_target(name)
        out = dict(message)
        named = [m for m in op.messages if name in (m.key, m.name)]
        candidates = named or op.messages
        if len(candidates) == 1:
            for prop, value in candidates[0].shape.constants().items():
                out.setdefault(prop, value)
        shape = classify(out, [m.shape for m in candidates])
        chosen = next((m for m in candidates if m.shape is shape), candidates[0])
        errors = self._validate(chosen, out)
        if errors:
            raise PayloadValidationError(
                f"not a valid {chosen.name!r} message of {op.id!r}", errors=errors
            )
        return dumps(out)

    async def send(
        self,
        name: str,
        message: Mapping[str, Any],
        /,
        *,
        connection: Connection | str | None = None,
        user: str | None = None,
        **params: Any,
    ) -> None:
        """Push ``message`` (a frame of the send operation or message ``name``) to one
        connection (a `Connection` or its id), every connection of ``user``, or else every
        connection to the operation's address (with these path ``params``), on every
        instance. Raises `PayloadValidationError` before sending anything that does not
        match the document, TypeError for missing parameters."""
        endpoint, _ = self._send_target(name)
        text = self.frame(name, message)
        manager = self.app.manager
        if connection is not None:
            conn_id = connection.id if isinstance(connection, Connection) else connection
            await manager.publish_to_connection(conn_id, text=text)
            return
        if user is not None:
            await manager.publish_to_user(user, text=text)
            return
        missing = sorted(set(endpoint.params) - set(params))
        if missing:
            raise TypeError(f"{name!r} is sent on {endpoint.address}: give {', '.join(missing)}")
        await manager.publish(self._topic(endpoint, params), text=text)

    # -- serving the document ---------------------------------------------------------------

    def has_own_servers(self, servers: Mapping[str, Any] | None) -> bool:
        return bool(servers) or bool(self.api.servers)


def _param_ok(param: WireParam, value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    if param.enum is not None and value not in param.enum:
        return False
    schema = param.schema or {}
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and re.fullmatch(pattern, value) is None:
        return False
    max_length = schema.get("maxLength")
    return not (isinstance(max_length, int) and len(value) > max_length)
