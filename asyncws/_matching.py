"""The seed's ``distributed_websocket._matching`` import path. New code imports from `asyncws`.

`matches` follows MQTT: a pattern that is not valid MQTT (``#`` before the last level, say)
matches nothing, where the seed's matcher let ``#/a`` match every topic.
"""

from .topics import matches

__all__ = ["matches"]
