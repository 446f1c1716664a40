"""`check_server`: is the uvicorn server running an app letting through more than it accepts?

`AsyncWS.lifespan` calls it at startup; `asyncws run` (`asyncws.serve`) sets uvicorn's limits
from the app instead. It sits below the app layer: it reads the app it is given by its
attributes and imports none of it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import AsyncWS

__all__ = ["check_server"]

logger = logging.getLogger("asyncws.serve")


def _uvicorn_config() -> Any:
    """uvicorn's Config, when the current task is uvicorn's lifespan task (else None).

    uvicorn passes the ASGI app no reference to its configuration; its lifespan task runs
    `LifespanOn.main`, whose ``self.config`` is it. Anything unexpected: None.
    """
    if "uvicorn" not in sys.modules:
        return None
    try:
        task = asyncio.current_task()
        coro = task.get_coro() if task is not None else None
        frame = getattr(coro, "cr_frame", None)
        owner = frame.f_locals.get("self") if frame is not None else None
    except (RuntimeError, AttributeError):
        return None
    if type(owner).__module__.startswith("uvicorn.lifespan"):
        return getattr(owner, "config", None)
    return None


def check_server(app: AsyncWS) -> list[str]:
    """Warn when the uvicorn server running ``app`` lets through more than the app accepts.

    Called at startup by `AsyncWS.lifespan`; returns the warnings (empty when not under
    uvicorn, or when its limits are fine).
    """
    config = _uvicorn_config()
    if config is None:
        return []
    problems: list[str] = []
    limit = app.manager.max_frame_size
    ws_max_size = getattr(config, "ws_max_size", None)
    if isinstance(ws_max_size, int) and ws_max_size > limit:
        problems.append(
            f"uvicorn's ws_max_size ({ws_max_size} bytes) is above the app's max_frame_size "
            f"({limit}): a compressed frame is inflated up to {ws_max_size} bytes before asyncws "
            f"can refuse it. Serve with `asyncws run` or `uvicorn --ws-max-size {limit}`"
        )
    for problem in problems:
        logger.warning("%s", problem)
    return problems
