"""asyncws: declarative, AsyncAPI-first WebSocket APIs on FastAPI that scale across processes.

The seed's imperative API (fastapi-distributed-websocket) is available under the same names:
`WebSocketManager`, `Connection`, `Message`, the brokers, `matches`, `handle`/`ahandle`, ...
"""

from __future__ import annotations

from fastapi import Depends, Security

from .app import AsyncWS
from .brokers import BrokerInterface, BrokerMessage, BrokerState, InMemoryBroker, create_broker
from .codes import CloseCode, ErrorCode
from .connection import Connection, ConnectionState
from .exceptions import (
    AsyncWSError,
    BrokerError,
    ForbiddenError,
    InvalidSubscription,
    InvalidSubscriptionMessage,
    InvalidTopicError,
    PayloadValidationError,
    ProtocolError,
    RateLimitedError,
    TooManySubscriptionsError,
    UnknownTopicError,
    UnknownTypeError,
    WebSocketException,
)
from .manager import WebSocketManager
from .message import (
    Message,
    ahandle,
    handle,
    handle_subscription_message,
    subscribe,
    unsubscribe,
)
from .routing import Operation, Param, Router, Topic
from .topics import TopicIndex, TopicLimits, matches

__version__ = "0.1.0"

__all__ = [
    "AsyncWS",
    "AsyncWSError",
    "BrokerError",
    "BrokerInterface",
    "BrokerMessage",
    "BrokerState",
    "CloseCode",
    "Connection",
    "ConnectionState",
    "Depends",
    "ErrorCode",
    "ForbiddenError",
    "InMemoryBroker",
    "InvalidSubscription",
    "InvalidSubscriptionMessage",
    "InvalidTopicError",
    "Message",
    "Operation",
    "Param",
    "PayloadValidationError",
    "ProtocolError",
    "RateLimitedError",
    "RedisBroker",
    "Router",
    "Security",
    "TooManySubscriptionsError",
    "Topic",
    "TopicIndex",
    "TopicLimits",
    "UnknownTopicError",
    "UnknownTypeError",
    "WebSocketException",
    "WebSocketManager",
    "ahandle",
    "create_broker",
    "handle",
    "handle_subscription_message",
    "matches",
    "subscribe",
    "unsubscribe",
]


def __getattr__(name: str) -> object:
    if name == "RedisBroker":  # imported lazily, like every backend
        from .brokers.redis import RedisBroker

        return RedisBroker
    raise AttributeError(f"module 'asyncws' has no attribute {name!r}")
