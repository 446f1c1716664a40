"""Spec-first apps in the document's own framing: serve any AsyncAPI 3 WebSocket API.

    app = app_from_spec("exchange.asyncapi.yaml")      # a document not written by asyncws

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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from .app import AsyncWS
from .asyncapi.reader import SpecError as ReaderError
from .asyncapi.reader import WireAPI, WireEndpoint, WireMessage, WireOperation, WireParam, read_api
from .asyncapi.v3 import server_from_url
from .codes import CloseCode, ErrorCode
from .connection import Connection
from .exceptions import PayloadValidationError, ProtocolError
from .framing import DocumentFraming, InboundFrame, classify, get_pointer, set_pointer
from .protocol import dumps

__all__ = ["DocumentApp"]

_SCOPE_KEY = "asyncws.endpoint"


class DocumentApp(AsyncWS):
    """An app serving an AsyncAPI document in its own framing (see the module docstring).

    ``skip_unsupported=True`` leaves out what asyncws cannot serve (listed in
    ``app.api.skipped``) instead of refusing the document; ``kwargs`` go to `AsyncWS`."""

    def __init__(
        self,
        source: str | Path | Mapping[str, Any],
        *,
        skip_unsupported: bool = False,
        **kwargs: Any,
    ) -> None:
        from .spec_first import SpecError

        try:
            api = read_api(source, skip_unsupported=skip_unsupported)
        except ReaderError as exc:
            raise SpecError(exc.problems) from None
        self.api: WireAPI = api
        self.document = api.document
        kwargs.setdefault("title", api.title)
        kwargs.setdefault("version", api.version)
        kwargs.setdefault("description", api.description)
        if api.endpoints:
            kwargs.setdefault("path", api.endpoints[0].address)
        super().__init__(framing=DocumentFraming(), **kwargs)
        self.endpoints: dict[str, WireEndpoint] = {ep.address: ep for ep in api.endpoints}
        self._framings = {ep.address: DocumentFraming(shapes=ep.inbound()) for ep in api.endpoints}
        self._decoders = {address: f.decoder(()) for address, f in self._framings.items()}
        self._index = {ep.address: i for i, ep in enumerate(api.endpoints)}
        self._receive: dict[str, tuple[WireEndpoint, WireOperation]] = {
            op.id: (ep, op) for ep in api.endpoints for op in ep.receive
        }
        self._validators: dict[str, Callable[[Any], list[dict[str, Any]]]] = {}
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._wants_params: set[str] = set()
        self._open_hooks: list[Callable[..., Any]] = []

    # -- handlers ---------------------------------------------------------------------------

    def handler(self, operation_id: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Bind the decorated function to the receive operation ``operation_id``: it is
        called as ``handler(message, conn)`` (plus ``params=`` when it has such an
        argument), sync or async, and returns the reply frame(s) or None."""
        from .spec_first import SpecError

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            if operation_id in self._handlers:
                raise SpecError([f"operation {operation_id!r} has two handlers"])
            self._handlers[operation_id] = func
            if "params" in inspect.signature(func).parameters:
                self._wants_params.add(operation_id)
            self._compiled = None
            return func

        return decorator

    def check_handlers(self) -> list[str]:
        """Every mismatch between the handlers and the document's receive operations."""
        from .spec_first import handler_problems

        return handler_problems(
            self._handlers,
            {
                op_id: f"receives {', '.join(m.name for m in op.messages)} on {ep.address}"
                for op_id, (ep, op) in self._receive.items()
            },
        )

    def compile(self) -> Any:
        from .spec_first import SpecError

        problems = self.check_handlers()
        if problems:
            raise SpecError(problems)
        return super().compile()

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
        await self.manager.subscribe(conn, self._topic(endpoint, params))
        for hook in self._open_hooks:
            wants = "params" in inspect.signature(hook).parameters
            result = hook(conn, params=params) if wants else hook(conn)
            if inspect.isawaitable(result):
                await result

    @property
    def asgi_router(self) -> APIRouter:
        """One websocket route per address of the document, and the document routes."""
        if self._asgi_router is None:
            router = APIRouter()
            for address, endpoint in self.endpoints.items():
                router.routes.append(
                    WebSocketRoute(address, self._route(endpoint), name=f"{endpoint.name}-ws")
                )
            from .asyncapi import add_routes

            add_routes(self, router)
            self._asgi_router = router
        return self._asgi_router

    def _route(self, endpoint: WireEndpoint) -> Callable[[WebSocket], Any]:
        async def route(websocket: WebSocket) -> None:
            websocket.scope[_SCOPE_KEY] = endpoint.address
            for name, param in endpoint.params.items():
                if not _param_ok(param, websocket.path_params.get(name)):
                    await websocket.close(CloseCode.POLICY_VIOLATION)  # before accept: 403
                    return
            await self.endpoint(websocket)

        route.__self__ = self  # type: ignore[attr-defined]  # how `asyncws check` finds the app
        return route

    # -- frames -----------------------------------------------------------------------------

    async def handle_frame(self, conn: Connection, text: str | None) -> None:
        self.compile()
        counts = self.manager.frames_in
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
        result = self._handlers[op.id](frame.data, conn, **kwargs)
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
        if connection is not None:
            conn_id = connection.id if isinstance(connection, Connection) else connection
            await self.manager.publish_to_connection(conn_id, text=text)
            return
        if user is not None:
            await self.manager.publish_to_user(user, text=text)
            return
        missing = sorted(set(endpoint.params) - set(params))
        if missing:
            raise TypeError(f"{name!r} is sent on {endpoint.address}: give {', '.join(missing)}")
        await self.manager.publish(self._topic(endpoint, params), text=text)

    # -- serving the document ---------------------------------------------------------------

    def has_own_servers(self) -> bool:
        return bool(self.servers) or bool(self.api.servers)

    def served_document(self, server_url: str | None = None) -> dict[str, Any]:
        """The document (external references inlined) with its servers, or one
        ``default`` server for ``server_url`` when it lists none."""
        document = copy.deepcopy(self.document)
        if self.servers:
            document["servers"] = copy.deepcopy(dict(self.servers))
        elif not self.api.servers:
            document["servers"] = {"default": server_from_url(server_url or "ws://localhost:8000")}
        return document


def _param_ok(param: WireParam, value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    if param.enum is not None and value not in param.enum:
        return False
    schema = param.schema or {}
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        import re

        if re.fullmatch(pattern, value) is None:
            return False
    max_length = schema.get("maxLength")
    return not (isinstance(max_length, int) and len(value) > max_length)
