"""The chat example, allowing the extra browser origins listed in ``ASYNCWS_ALLOWED_ORIGINS``
(space-separated): for tests whose page is served from another origin than the app."""

from __future__ import annotations

import os

from examples.chat.app import app, ws

__all__ = ["app"]

ws.allowed_origins = tuple(os.environ.get("ASYNCWS_ALLOWED_ORIGINS", "").split())
