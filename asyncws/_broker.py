"""The seed's ``distributed_websocket._broker`` import path. New code imports from `asyncws`.

Importing it imports redis (``RedisBroker``), as the seed's module did.
"""

from .brokers import BrokerInterface, InMemoryBroker, create_broker
from .brokers.redis import RedisBroker

__all__ = ["BrokerInterface", "InMemoryBroker", "RedisBroker", "create_broker"]
