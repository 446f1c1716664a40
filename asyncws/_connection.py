"""The seed's ``distributed_websocket._connection`` import path. New code imports from
`asyncws`."""

from .connection import Connection

__all__ = ["Connection"]
