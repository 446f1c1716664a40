"""Deprecated location of `asyncws.spec_first` (kept for one release): import from there.

This is the one module of `asyncws.asyncapi` that imports the app layer, and only when it is
imported itself; nothing in asyncws imports it.
"""

from __future__ import annotations

from ..spec_first import (
    Frame,
    SpecApp,
    SpecError,
    SpecOperation,
    app_from_spec,
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
    "load_document",
    "protocol_problems",
    "read_frame",
]
