"""The seed's ``distributed_websocket._message`` import path. New code imports from `asyncws`."""

from .message import Message, tag_client_message, untag_broker_message, validate_incoming_message

__all__ = ["Message", "tag_client_message", "untag_broker_message", "validate_incoming_message"]
