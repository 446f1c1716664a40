"""Spec-first apps in the document's own framing: serve any AsyncAPI 3 WebSocket API.

    app = app_from_spec("exchange.asyncapi.yaml")      # a document not written by asyncws

The app is an ordinary `AsyncWS`; the document is read into an `asyncws.spec.DocumentSpec`
(``app.spec``; its module docstring says how frames are classified, validated and answered).
`DocumentApp` is the name such apps had when they were a subclass: deprecated, it builds an
`AsyncWS`, and ``isinstance(app, DocumentApp)`` still says whether an app serves a document
in its own framing.
"""

from __future__ import annotations

from typing import Literal

from .spec import AppSpec, DocumentSpec
from .spec_first import SpecAppType

__all__ = ["DocumentApp", "DocumentSpec"]


class _DocumentAppType(SpecAppType):
    _spec_type: type[AppSpec] = DocumentSpec
    _framing: Literal["asyncws", "document"] = "document"


class DocumentApp(metaclass=_DocumentAppType):
    """Deprecated: `AsyncWS.from_asyncapi` (or `app_from_spec`) builds the app.

    ``DocumentApp(source, skip_unsupported=False, **kwargs)`` still works, with a
    `DeprecationWarning`: it returns an ordinary `AsyncWS` serving the document in its own
    framing (its spec, an `asyncws.spec.DocumentSpec`, is ``app.spec``)."""
