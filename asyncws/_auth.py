"""The seed's ``distributed_websocket._auth`` import path. New code imports from `asyncws`."""

from .auth import WebSocketOAuth2PasswordBearer

__all__ = ["WebSocketOAuth2PasswordBearer"]
