"""Apps built from an AsyncAPI document: the document read into an `AppSpec` that an ordinary
`AsyncWS` consults (``AsyncWS(spec=...)``; `AsyncWS.from_asyncapi` reads and builds).

    spec = load_spec("specs/chat.asyncapi.yaml")     # EnvelopeSpec or DocumentSpec
    app = AsyncWS(**spec.app_arguments, broker="memory://", spec=spec)

`asyncws.spec.envelope` reads documents in asyncws's envelope (the ones asyncws writes),
`asyncws.spec.document` any AsyncAPI WebSocket API in its own framing; `asyncws.spec.base`
draws what the app asks of either. Nothing here imports the app layer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ..asyncapi.reader import framing_of_document, protocol_problems
from .base import AppSpec, SpecError, handler_problems, load_document
from .document import DocumentSpec
from .envelope import EnvelopeSpec, Frame, SpecOperation, read_frame

__all__ = [
    "AppSpec",
    "DocumentSpec",
    "EnvelopeSpec",
    "Frame",
    "SpecError",
    "SpecOperation",
    "handler_problems",
    "load_document",
    "load_spec",
    "protocol_problems",
    "read_frame",
]

logger = logging.getLogger("asyncws.spec")


def load_spec(
    source: str | Path | Mapping[str, Any],
    *,
    framing: Literal["asyncws", "document"] | None = None,
    skip_unsupported: bool = False,
) -> AppSpec:
    """The document at ``source`` (a path or a mapping), read for an app.

    ``framing`` says how the document's messages are framed (default: what
    `asyncws.asyncapi.reader.framing_of_document` finds): ``"asyncws"`` gives an
    `EnvelopeSpec` (asyncws's envelope, the documents asyncws writes), ``"document"`` a
    `DocumentSpec` (the payload is the frame, any AsyncAPI WebSocket API).
    ``skip_unsupported`` (document framing) leaves out, with a warning, the operations
    asyncws cannot serve instead of refusing the document. Raises `SpecError` listing every
    problem."""
    if framing is None:
        document = load_document(source)
        framing = "document" if framing_of_document(document) == "document" else "asyncws"
    if framing == "document":
        spec = DocumentSpec(source, skip_unsupported=skip_unsupported)
        for line in spec.api.skipped:
            logger.warning("left out (unsupported): %s", line)
        return spec
    if framing != "asyncws":
        raise ValueError(f"framing must be 'asyncws' or 'document', not {framing!r}")
    return EnvelopeSpec(source)
