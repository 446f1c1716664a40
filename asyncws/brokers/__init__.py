"""Brokers, chosen by URL scheme: ``memory://[name]``, ``redis://``, ``rediss://``,
``redis+cluster://host:port,host:port/`` (Redis Cluster, sharded pub/sub) and
``redis+sentinel://host:port,host:port/mymaster`` (a primary found through Sentinel).

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
    "RedisClusterBroker",
    "RedisSentinelBroker",
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
    if scheme in ("redis+cluster", "rediss+cluster"):
        from .redis_cluster import RedisClusterBroker

        return RedisClusterBroker(broker_url, **kwargs)
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        from .redis_sentinel import RedisSentinelBroker

        return RedisSentinelBroker(broker_url, **kwargs)
    raise ValueError(
        f"unsupported broker URL scheme {scheme!r} (use memory://, redis://, rediss://, "
        "redis+cluster://, redis+sentinel://)"
    )


def __getattr__(name: str) -> Any:
    if name == "RedisBroker":  # lazy: redis is only imported when used
        from .redis import RedisBroker

        return RedisBroker
    if name == "RedisClusterBroker":
        from .redis_cluster import RedisClusterBroker

        return RedisClusterBroker
    if name == "RedisSentinelBroker":
        from .redis_sentinel import RedisSentinelBroker

        return RedisSentinelBroker
    raise AttributeError(name)
