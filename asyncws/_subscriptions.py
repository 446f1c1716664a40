"""The seed's ``distributed_websocket._subscriptions`` import path. New code imports from
`asyncws`."""

from .message import (
    handle_subscription_message,
    is_subscription_message,
    subscribe,
    unsubscribe,
)

__all__ = [
    "handle_subscription_message",
    "is_subscription_message",
    "subscribe",
    "unsubscribe",
]
