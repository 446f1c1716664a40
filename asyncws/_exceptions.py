"""The seed's ``distributed_websocket._exceptions`` import path. New code imports from
`asyncws`."""

from .exceptions import InvalidSubscription, InvalidSubscriptionMessage, WebSocketException

__all__ = ["InvalidSubscription", "InvalidSubscriptionMessage", "WebSocketException"]
