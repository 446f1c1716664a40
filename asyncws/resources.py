"""Where the packaged templates and specs are.

In a wheel they are inside the package (``asyncws/templates``, ``asyncws/specs``); in a source
checkout (editable install, tests) they are at the repository root next to ``asyncws/``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["specs_dir", "templates_dir"]

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"asyncws: the {name!r} directory is missing from this installation")


@cache
def templates_dir() -> Path:
    """The jinja2 templates (docs/, clients/python/, clients/typescript/)."""
    return _find("templates")


@cache
def specs_dir() -> Path:
    """The bundled AsyncAPI documents."""
    return _find("specs")
