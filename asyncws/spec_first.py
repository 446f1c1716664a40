"""Spec-first apps: an AsyncAPI 3.0 document drives an ordinary `AsyncWS`, handlers are
bound by operation id.

    app = app_from_spec("specs/chat.asyncapi.yaml", broker="memory://")
    # the same: AsyncWS.from_asyncapi("specs/chat.asyncapi.yaml", broker="memory://")

    @app.handler("post")
    async def post(data: dict, conn: Connection) -> dict:
        await app.publish("roomsRoom", {"type": "posted", ...}, room=data["room"])
        return {"room": data["room"], "at": "..."}

The document is read by `asyncws.spec` into an `asyncws.spec.AppSpec` that the app consults
(`asyncws.spec.envelope` says how a document in asyncws's envelope is read,
`asyncws.spec.document` how one in its own framing is served). This module keeps the names
spec-first apps had before they were ordinary apps: `app_from_spec`, and `SpecApp`, which
is deprecated (it builds an `AsyncWS`, and ``isinstance(app, SpecApp)`` still says whether
an app was built from a document in asyncws's envelope).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .app import AsyncWS
from .spec import (
    AppSpec,
    EnvelopeSpec,
    Frame,
    SpecError,
    SpecOperation,
    handler_problems,
    load_document,
    protocol_problems,
    read_frame,
)

__all__ = [
    "Frame",
    "SpecApp",
    "SpecError",
    "SpecOperation",
    "app_from_spec",
    "handler_problems",
    "load_document",
    "protocol_problems",
    "read_frame",
]


def app_from_spec(
    source: str | Path | Mapping[str, Any],
    *,
    framing: Literal["asyncws", "document"] | None = None,
    skip_unsupported: bool = False,
    **kwargs: Any,
) -> AsyncWS:
    """An app for the document at ``source`` (a path or a mapping): `AsyncWS.from_asyncapi`
    (``kwargs`` go to `AsyncWS`: ``broker=``, ``authenticate=``, ...).

    ``framing`` says how the document's messages are framed (default: what
    `asyncws.asyncapi.reader.framing_of_document` finds): ``"asyncws"``, asyncws's envelope
    (the documents asyncws writes), or ``"document"``, the payload is the frame (any AsyncAPI
    WebSocket API). ``skip_unsupported`` (document framing) leaves out, with a warning, the
    operations asyncws cannot serve instead of refusing the document."""
    return AsyncWS.from_asyncapi(
        source, framing=framing, skip_unsupported=skip_unsupported, **kwargs
    )


class SpecAppType(type):
    """``SpecApp(...)`` builds an `AsyncWS`; ``isinstance(app, SpecApp)`` asks its spec."""

    _spec_type: type[AppSpec] = EnvelopeSpec
    _framing: Literal["asyncws", "document"] = "asyncws"

    def __call__(cls, source: str | Path | Mapping[str, Any], **kwargs: Any) -> AsyncWS:
        warnings.warn(
            f"{cls.__name__}(...) is deprecated: AsyncWS.from_asyncapi(...) (or app_from_spec) "
            "returns an ordinary AsyncWS",
            DeprecationWarning,
            stacklevel=2,
        )
        return AsyncWS.from_asyncapi(source, framing=cls._framing, **kwargs)

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, AsyncWS) and isinstance(instance.spec, cls._spec_type)


class SpecApp(metaclass=SpecAppType):
    """Deprecated: `AsyncWS.from_asyncapi` (or `app_from_spec`) builds the app.

    ``SpecApp(document, **kwargs)`` still works, with a `DeprecationWarning`: it returns an
    ordinary `AsyncWS` driven by the document in asyncws's envelope (its spec, an
    `asyncws.spec.EnvelopeSpec`, is ``app.spec``). ``isinstance(app, SpecApp)`` is true for
    such apps."""
