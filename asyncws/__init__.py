"""asyncws: declarative, AsyncAPI-first WebSocket APIs on FastAPI that scale across processes.

The seed's imperative API (fastapi-distributed-websocket) is available under the same names:
`WebSocketManager`, `Connection`, `Message`, the brokers, `matches`, `handle`/`ahandle`, ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, Security

from .app import AsyncWS
from .brokers import BrokerInterface, BrokerMessage, BrokerState, InMemoryBroker, create_broker
from .brokers.base import BrokerT, is_valid_broker
from .codes import CloseCode, ErrorCode
from .connection import Connection, ConnectionState
from .exceptions import (
    AsyncWSError,
    BrokerError,
    ForbiddenError,
    InvalidSubscription,
    InvalidSubscriptionMessage,
    InvalidTopicError,
    NotFoundError,
    PayloadValidationError,
    ProtocolError,
    RateLimitedError,
    TooManySubscriptionsError,
    UnknownTopicError,
    UnknownTypeError,
    WebSocketException,
)
from .framing import AsyncWSFraming, DocumentFraming, Framing
from .history import HistoryItem, HistoryPolicy, Position
from .limits import Limits
from .manager import WebSocketManager
from .message import (
    Message,
    ahandle,
    handle,
    handle_subscription_message,
    subscribe,
    unsubscribe,
)
from .presence import PresencePolicy
from .routing import Operation, Param, Router, Topic
from .topics import TopicIndex, TopicLimits, matches

if TYPE_CHECKING:  # real types for type checkers; imported lazily at runtime (see _LAZY)
    from .asyncapi import build_document
    from .auth import WebSocketOAuth2PasswordBearer
    from .brokers.redis import RedisBroker
    from .brokers.redis_cluster import RedisClusterBroker
    from .brokers.redis_sentinel import RedisSentinelBroker
    from .proxy import WebSocketProxy
    from .spec_first import SpecApp, app_from_spec

__version__ = "0.1.0"

__all__ = [
    "AsyncWS",
    "AsyncWSError",
    "AsyncWSFraming",
    "BrokerError",
    "BrokerInterface",
    "BrokerMessage",
    "BrokerState",
    "BrokerT",
    "CloseCode",
    "Connection",
    "ConnectionState",
    "Depends",
    "DocumentFraming",
    "ErrorCode",
    "ForbiddenError",
    "Framing",
    "HistoryItem",
    "HistoryPolicy",
    "InMemoryBroker",
    "InvalidSubscription",
    "InvalidSubscriptionMessage",
    "InvalidTopicError",
    "Limits",
    "Message",
    "NotFoundError",
    "Operation",
    "Param",
    "PayloadValidationError",
    "Position",
    "PresencePolicy",
    "ProtocolError",
    "RateLimitedError",
    "RedisBroker",
    "RedisClusterBroker",
    "RedisSentinelBroker",
    "Router",
    "Security",
    "SpecApp",
    "TooManySubscriptionsError",
    "Topic",
    "TopicIndex",
    "TopicLimits",
    "UnknownTopicError",
    "UnknownTypeError",
    "WebSocketException",
    "WebSocketManager",
    "WebSocketOAuth2PasswordBearer",
    "WebSocketProxy",
    "ahandle",
    "app_from_spec",
    "build_document",
    "create_broker",
    "handle",
    "handle_subscription_message",
    "is_valid_broker",
    "matches",
    "subscribe",
    "unsubscribe",
]


# Imported on first use: backends and edges pull in more (redis, the websockets client).
_LAZY = {
    "RedisBroker": "asyncws.brokers.redis",
    "RedisClusterBroker": "asyncws.brokers.redis_cluster",
    "RedisSentinelBroker": "asyncws.brokers.redis_sentinel",
    "build_document": "asyncws.asyncapi",
    "app_from_spec": "asyncws.spec_first",
    "SpecApp": "asyncws.spec_first",
    "WebSocketProxy": "asyncws.proxy",
    "WebSocketOAuth2PasswordBearer": "asyncws.auth",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'asyncws' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once is enough
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
