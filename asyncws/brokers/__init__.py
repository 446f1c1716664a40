"""Brokers, chosen by URL scheme: ``memory://[name]``, ``redis://``, ``rediss://``.

Each backend is imported only when its scheme is used.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from .base import BrokerInterface, BrokerMessage, BrokerState
from .memory import InMemoryBroker

__all__ = [
    "BrokerInterface",
    "BrokerMessage",
    "BrokerState",
    "InMemoryBroker",
    "RedisBroker",
    "create_broker",
]


def create_broker(broker_url: str, **kwargs: Any) -> BrokerInterface:
    """Build the broker for ``broker_url``; unknown schemes raise ValueError."""
    scheme = urlparse(broker_url).scheme
    if scheme == "memory":
        return InMemoryBroker(broker_url[len("memory://") :].strip("/"), **kwargs)
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisBroker

        return RedisBroker(broker_url, **kwargs)
    raise ValueError(
        f"unsupported broker URL scheme {scheme!r} (use memory://, redis://, rediss://)"
    )


def __getattr__(name: str) -> Any:
    if name == "RedisBroker":  # lazy: redis is only imported when used
        from .redis import RedisBroker

        return RedisBroker
    raise AttributeError(name)
