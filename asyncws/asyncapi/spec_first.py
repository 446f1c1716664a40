"""Deprecated location of `asyncws.spec_first` (kept for one release): import from there,
or from `asyncws.spec`.

What reads documents comes from `asyncws.spec` (which does not import the app layer);
`SpecApp` and `app_from_spec`, which build apps, are imported from `asyncws.spec_first` only
when asked for, so that importing this module imports no app. Nothing in asyncws imports it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..spec import Frame, SpecError, SpecOperation, load_document, protocol_problems, read_frame

if TYPE_CHECKING:
    from ..spec_first import SpecApp, app_from_spec

__all__ = [
    "Frame",
    "SpecApp",
    "SpecError",
    "SpecOperation",
    "app_from_spec",
    "load_document",
    "protocol_problems",
    "read_frame",
]


def __getattr__(name: str) -> Any:
    if name in ("SpecApp", "app_from_spec"):
        return getattr(importlib.import_module("asyncws.spec_first"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
