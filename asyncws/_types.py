"""The seed's ``distributed_websocket._types`` import path. New code imports from `asyncws`."""

from .brokers.base import BrokerT

__all__ = ["BrokerT"]
