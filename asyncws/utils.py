"""The seed's ``distributed_websocket.utils``: its small helpers, kept for code that imports
them. New code has no need for them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from .brokers.base import is_valid_broker

__all__ = ["clear_task", "deserialize", "is_valid_broker", "is_valid_json", "serialize", "update"]


def clear_task(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` if it is running; re-raise its exception if it failed."""
    if task.done():
        task.result()
    else:
        task.cancel()


def is_valid_json(data: Any) -> bool:
    """Whether ``data`` (str or bytes) is JSON text."""
    try:
        json.loads(data)
    except (TypeError, ValueError):
        return False
    return True


def serialize(obj: Any) -> Any:
    """``obj.__serialize__()`` (TypeError if it has none)."""
    method = getattr(obj, "__serialize__", None)
    if method is None:
        raise TypeError(f"{type(obj).__name__} has no __serialize__ method")
    return method()


def deserialize(obj: Any) -> Any:
    """``obj.__deserialize__()`` (TypeError if it has none)."""
    method = getattr(obj, "__deserialize__", None)
    if method is None:
        raise TypeError(f"{type(obj).__name__} has no __deserialize__ method")
    return method()


def update(obj: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """A copy of ``obj`` updated with ``kwargs``."""
    new = dict(obj)
    new.update(kwargs)
    return new
