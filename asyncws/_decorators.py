"""The seed's ``distributed_websocket._decorators`` import path. New code imports from
`asyncws`."""

from .message import ahandle, handle

__all__ = ["ahandle", "handle"]
