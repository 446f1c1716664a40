"""Finding apps: ``MODULE:APP`` (or ``path/to/app.py:APP``) imported, and the `AsyncWS` an
object is or serves (through an included ``asgi_router``). Used by the ``asyncws`` command
(`asyncws.cli`) and by ``asyncws run`` (`asyncws.serve`), which sit above it; it imports the
app layer and neither of them.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .app import AsyncWS
from .exceptions import UsageError

__all__ = ["FILE_TARGET", "CLIError", "find_app", "load_target", "module_of_file", "routes"]


class CLIError(UsageError):
    """A usage problem, reported in one line with exit status 2."""


def routes(app: Any, depth: int = 0) -> Iterator[Any]:
    """Every route of an ASGI app, through included routers and mounts."""
    if depth > 16:
        return
    router = getattr(app, "router", app)
    for route in getattr(router, "routes", ()):
        yield route
        # a Mount's app; FastAPI's lazily included routers keep the original router
        for attr in ("app", "original_router"):
            inner = getattr(route, attr, None)
            if inner is not None and inner is not app and hasattr(inner, "routes"):
                yield from routes(inner, depth + 1)


def find_app(obj: Any) -> Any:
    """The `AsyncWS` that ``obj`` is or serves (through an included ``asgi_router``)."""
    if isinstance(obj, AsyncWS):
        return obj
    found: list[Any] = []
    for route in routes(obj):
        owner = getattr(getattr(route, "endpoint", None), "__self__", None)
        if isinstance(owner, AsyncWS) and owner not in found:
            found.append(owner)
    if len(found) == 1:
        return found[0]
    if found:
        raise CLIError(f"{len(found)} AsyncWS apps are mounted there: name one of them")
    raise CLIError(f"{type(obj).__name__} is not an AsyncWS app and serves none")


FILE_TARGET = re.compile(r"^(?P<path>.+\.py)(?::(?P<attr>[A-Za-z_][\w.]*))?$")


def module_of_file(path_text: str) -> str:
    """The dotted module name of a ``.py`` file; its top package's parent goes on sys.path."""
    path = Path(path_text)
    if not path.is_file():
        raise CLIError(f"{path_text}: no such file (expected MODULE:APP or a .py file)")
    path = path.resolve()
    parts = [path.stem]
    root = path.parent
    while (root / "__init__.py").is_file() and root.parent != root:
        parts.insert(0, root.name)
        root = root.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return ".".join(parts)


def load_target(target: str) -> Any:
    """Import ``MODULE[:ATTR]`` (or ``path/to/file.py[:ATTR]``) and return the `AsyncWS` it
    names or holds."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    file_target = FILE_TARGET.match(target)
    if file_target is not None:
        module_name, attr = module_of_file(file_target["path"]), file_target["attr"] or ""
    else:
        module_name, _, attr = target.partition(":")
    if not module_name:
        raise CLIError(f"{target!r}: expected MODULE:APP")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CLIError(f"cannot import {module_name!r}: {exc}") from exc
    if attr:
        obj: Any = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise CLIError(f"module {module_name!r} has no attribute {attr!r}") from None
        return find_app(obj)
    apps = [v for v in vars(module).values() if isinstance(v, AsyncWS)]
    unique = list({id(a): a for a in apps}.values())
    if len(unique) != 1:
        raise CLIError(f"module {module_name!r} holds {len(unique)} AsyncWS apps: use MODULE:APP")
    return unique[0]
