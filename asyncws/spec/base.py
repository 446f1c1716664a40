"""`AppSpec`: what an ordinary `AsyncWS` consults when it was built from a document.

An app built from an AsyncAPI document is an `AsyncWS` like any other, given an ``AppSpec``
(``AsyncWS(spec=...)``, which is what `AsyncWS.from_asyncapi` does). The app asks its spec, at
a few fixed points, what a code-first app decides from its declarations:

* ``bind(app)``: once, from `AsyncWS.__init__`: the spec declares the operations and topics the
  document has (``app.add_operation``, ``app.add_topic``) and keeps the app to publish through;
* ``check()``: from `AsyncWS.compile`: raises `SpecError` listing every receive operation
  without a handler and every handler naming an operation the document does not have;
* ``routes()``: the websocket routes, when the document has several endpoints (None: the
  app's one ``path``);
* ``framing_of(conn)`` / ``frame_handler`` / ``attached(conn)``: a connection's framing, a
  frame handler replacing asyncws's dispatch, and what happens once a connection is attached
  (None / None / nothing: the app's own);
* ``served_document(server_url, servers)`` / ``has_own_servers(servers)``: the document the
  app serves (the given one, with servers filled in) instead of one generated from it.

Nothing here imports the app layer: the spec reads documents and declares through the app it
is bound to. `asyncws.spec.envelope` reads documents in asyncws's envelope, `asyncws.spec.document`
documents in their own framing.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..asyncapi.reader import SpecError as ReaderError
from ..asyncapi.reader import load_document as _load_document
from ..asyncapi.v3 import server_from_url

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from ..app import AsyncWS
    from ..connection import Connection
    from ..framing import Framing

__all__ = ["AppSpec", "SpecError", "handler_problems", "load_document"]

#: The frame handler a spec may put in place of asyncws's dispatch (``conn``, frame text).
FrameHandler = Callable[["Connection", "str | None"], Awaitable[None]]


class SpecError(ReaderError):
    """The document cannot drive an app, or the handlers do not match it (lists every
    problem, one per line)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(list(problems), headline="the AsyncAPI document and the app disagree:")


def load_document(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """An AsyncAPI 3.x document from a ``.json`` / ``.yaml`` file or a mapping (copied), its
    external references inlined (`asyncws.asyncapi.reader.load_document`)."""
    try:
        return _load_document(source)
    except ReaderError as exc:
        raise SpecError(exc.problems) from None


def handler_problems(handlers: Mapping[str, Any], receives: Mapping[str, str]) -> list[str]:
    """Every mismatch between bound handlers and the document's receive operations
    (``receives``: operation id -> what its frames are, for the message)."""
    problems = [
        f"no handler for operation {op_id!r} ({what})"
        for op_id, what in receives.items()
        if op_id not in handlers
    ]
    known = ", ".join(sorted(receives)) or "none"
    problems += [
        f"a handler is bound to {op_id!r}, which is not a receive operation of the "
        f"document (those are: {known})"
        for op_id in handlers
        if op_id not in receives
    ]
    return problems


class AppSpec:
    """What an app built from a document consults (see the module docstring).

    Subclasses read the document in ``__init__`` (raising `SpecError` with every problem),
    set ``document`` and ``app_arguments`` (the `AsyncWS` arguments the document implies:
    title, version, description, path) and ``framing`` when the document fixes it, and
    implement ``bind``, ``receives`` and ``handle``.
    """

    #: The document as read (external references inlined); served with its servers filled in.
    document: dict[str, Any]
    #: `AsyncWS` arguments taken from the document (``title``, ``version``, ``path``, ...).
    app_arguments: dict[str, Any]
    #: The framing the document fixes (None: the app's, asyncws's envelope by default).
    framing: Framing | None = None
    #: A frame handler in place of asyncws's dispatch (None: asyncws's own).
    frame_handler: FrameHandler | None = None

    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Any]] = {}
        self._app: AsyncWS | None = None

    @property
    def app(self) -> AsyncWS:
        """The app this spec is bound to (`bind`)."""
        if self._app is None:
            raise RuntimeError("this spec is not bound to an app yet: AsyncWS(spec=...)")
        return self._app

    def bind(self, app: AsyncWS) -> None:
        """Declare the document's operations and topics on ``app`` (once, from `AsyncWS`)."""
        if self._app is not None and self._app is not app:
            raise RuntimeError("a spec drives one app: load the document again for another")
        self._app = app

    # -- handlers ---------------------------------------------------------------------------

    def receives(self) -> dict[str, str]:
        """The receive operations that need a handler: id -> what its frames are."""
        raise NotImplementedError

    def handle(self, operation_id: str, func: Callable[..., Any]) -> None:
        """Bind ``func`` to the receive operation ``operation_id`` (see `AsyncWS.handler`)."""
        if operation_id in self.handlers:
            raise SpecError([f"operation {operation_id!r} has two handlers"])
        self.handlers[operation_id] = func

    def check_handlers(self) -> list[str]:
        """Every mismatch between the handlers and the document's receive operations."""
        return handler_problems(self.handlers, self.receives())

    def check(self) -> None:
        """Raise `SpecError` listing every mismatch (`AsyncWS.compile` calls it)."""
        problems = self.check_handlers()
        if problems:
            raise SpecError(problems)

    async def publish(self, name: str, data: Any, /, **params: Any) -> None:
        """Publish an event to a topic of the document (asyncws's envelope only)."""
        raise TypeError("publish() is for documents in asyncws's envelope: use send()")

    async def send(
        self,
        name: str,
        message: Any,
        /,
        *,
        connection: Connection | str | None = None,
        user: str | None = None,
        **params: Any,
    ) -> None:
        """Push a frame of a send operation (documents in their own framing only)."""
        raise TypeError("send() is for documents in their own framing: use publish()")

    def on_open(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``func`` once a connection is open (documents in their own framing only)."""
        raise TypeError("on_open() is for documents in their own framing")

    # -- connections ------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute] | None:
        """The websocket routes of the app (None: one route at the app's ``path``)."""
        return None

    def framing_of(self, conn: Connection) -> Framing | None:
        """The framing of ``conn``'s frames (None: the app's ``framing``)."""
        return None

    async def attached(self, conn: Connection) -> None:
        """Called once ``conn`` is accepted and attached, before its first frame."""

    # -- the served document ----------------------------------------------------------------

    def has_own_servers(self, servers: Mapping[str, Any] | None) -> bool:
        """Whether the served document keeps its servers (``servers``: the app's ``servers=``)."""
        return bool(servers)

    def served_document(
        self, server_url: str | None, servers: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The document (a copy) with the app's ``servers``, or one ``default`` server for
        ``server_url`` when neither the app nor the document lists any."""
        document = copy.deepcopy(self.document)
        if servers:
            document["servers"] = copy.deepcopy(dict(servers))
        elif not self.has_own_servers(servers):
            document["servers"] = {"default": server_from_url(server_url or "ws://localhost:8000")}
        return document
