"""`asyncws run`: serve an app with uvicorn, with server limits that match the app's own.

uvicorn's defaults leave holes in front of an asyncws app that the app cannot close itself:

=============================  ===================================  ==============================
uvicorn default                what a client can do                 `asyncws run`
=============================  ===================================  ==============================
``--ws-max-size`` 16 MiB       send a compressed frame that is      the app's ``max_frame_size``:
                               inflated to 16 MiB before asyncws    inflating stops there (1009)
                               sees it (1 KB on the wire: 1 MB)
``--ws websockets-sansio``     flood pings and never read: pongs    the same implementation, with
                               pile up in the write buffer          pongs under backpressure
                               (memory without bound)               (`asyncws._uvicorn`)
no request-header deadline     hold sockets with partial upgrade    10 s to send the headers, at
                               requests forever (slowloris): file   most 64 KiB of them
                               descriptors run out
``--limit-concurrency`` none   (HTTP requests without bound)        the app's ``max_connections``
                                                                    + 10 % (at least 100)
=============================  ===================================  ==============================

`run` imports the app in this process to read its limits (through its websocket routes or its
lifespan), then calls `uvicorn.run` with the import string, so ``--workers`` and ``--reload``
work as with uvicorn. `check_server` (`asyncws.server_check`, below the app) is called by
`AsyncWS.lifespan`: under a uvicorn server started another way it logs a warning when
uvicorn's frame limit is above the app's.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .app import AsyncWS
from .server_check import check_server
from .targets import FILE_TARGET, CLIError, module_of_file, routes

__all__ = ["ServerSettings", "asyncws_apps", "check_server", "run", "server_settings"]

logger = logging.getLogger("asyncws.serve")

#: The frame limit when the ASGI app serves no `AsyncWS` (e.g. a `WebSocketProxy` gateway):
#: the default of both ``Limits(max_frame_size=)`` and ``WebSocketProxy(max_size=)``.
DEFAULT_MAX_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """What `run` gives uvicorn (the names are `uvicorn.run`'s, except the two header ones)."""

    ws_max_size: int
    limit_concurrency: int
    header_timeout: float = 10.0  # seconds to send complete request headers
    max_header_bytes: int = 65536  # request headers larger than this: the connection is closed
    timeout_keep_alive: int = 5
    timeout_graceful_shutdown: int = 10
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0

    def uvicorn_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `uvicorn.run` / `uvicorn.Config`."""
        kwargs = asdict(self)
        del kwargs["header_timeout"], kwargs["max_header_bytes"]
        http = "HttpToolsProtocol" if importlib.util.find_spec("httptools") else "H11Protocol"
        kwargs["http"] = f"asyncws._uvicorn:{http}"
        kwargs["ws"] = "asyncws._uvicorn:WebSocketProtocol"
        return kwargs

    def environment(self) -> dict[str, str]:
        """The settings `asyncws._uvicorn` reads (worker processes inherit them)."""
        return {
            "ASYNCWS_HEADER_TIMEOUT": repr(self.header_timeout),
            "ASYNCWS_MAX_HEADER_BYTES": str(self.max_header_bytes),
        }


def asyncws_apps(asgi_app: Any) -> list[AsyncWS]:
    """The `AsyncWS` apps an ASGI app serves: its websocket routes' owners, its lifespan's."""
    found: dict[int, AsyncWS] = {}
    if isinstance(asgi_app, AsyncWS):
        found[id(asgi_app)] = asgi_app
    for route in routes(asgi_app):
        owner = getattr(getattr(route, "endpoint", None), "__self__", None)
        if isinstance(owner, AsyncWS):
            found.setdefault(id(owner), owner)
    lifespan = getattr(getattr(asgi_app, "router", None), "lifespan_context", None)
    owner = getattr(lifespan, "__self__", None)
    if isinstance(owner, AsyncWS):
        found.setdefault(id(owner), owner)
    return list(found.values())


def server_settings(apps: Iterable[AsyncWS], **overrides: Any) -> ServerSettings:
    """Settings for serving ``apps`` in one process: the largest frame limit among them (each
    app still enforces its own), room for their connections; ``overrides`` win when not None."""
    apps = list(apps)
    max_size = max((a.manager.max_frame_size for a in apps), default=DEFAULT_MAX_SIZE)
    connections = sum(a.limits.max_connections for a in apps) if apps else 10_000
    values: dict[str, Any] = {
        "ws_max_size": max_size,
        "limit_concurrency": connections + max(100, connections // 10),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ServerSettings(**values)


def run(
    target: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | None = None,
    reload: bool = False,
    log_level: str | None = None,
    forwarded_allow_ips: str | None = None,
    show: bool = False,
    **overrides: Any,
) -> ServerSettings:
    """Serve ``target`` (``"module:app"`` or ``"path/to/app.py:app"``, an ASGI app) with
    uvicorn and `server_settings`.

    With ``show=True`` nothing is served: the settings are returned (``asyncws run --show``).
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    file_target = FILE_TARGET.match(target)
    if file_target is not None:  # path/to/app.py:APP is imported as its dotted module
        module_name, attr = module_of_file(file_target["path"]), file_target["attr"] or ""
    else:
        module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise CLIError(f"{target!r}: expected MODULE:APP, the ASGI app (e.g. the FastAPI app)")
    target = f"{module_name}:{attr}"  # what uvicorn's workers and reloader import
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CLIError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CLIError(f"module {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, AsyncWS):
        raise CLIError(
            f"{target} is an AsyncWS, not an ASGI app: name the FastAPI app that includes "
            "its asgi_router"
        )
    settings = server_settings(asyncws_apps(obj), **overrides)
    if show:
        return settings
    try:
        import uvicorn
    except ImportError:
        raise CLIError("asyncws run needs uvicorn: pip install 'uvicorn[standard]'") from None
    os.environ.update(settings.environment())
    uvicorn.run(
        target if (workers or reload) else obj,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level=log_level,
        forwarded_allow_ips=forwarded_allow_ips,
        **settings.uvicorn_kwargs(),
    )
    return settings
