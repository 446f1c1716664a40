"""The app of tests/test_error_policy.py's real-server checks: refusals and closes.

- ``/ws``: operations ``ping`` (ack) and ``close_me`` {code, reason}: the handler raises
  ``WebSocketException(code, reason)`` (the error policy sends an error frame, then closes
  with that code and the reason cut to 123 bytes);
- ``POST /_test/stop-accepting``: the manager stops accepting, as the first step of a
  shutdown does (new handshakes are refused with HTTP 503).
"""

from __future__ import annotations

from fastapi import FastAPI, WebSocketException
from pydantic import BaseModel

from asyncws import AsyncWS, Router


class CloseMe(BaseModel):
    code: int
    reason: str


router = Router()


@router.operation("ping")
async def ping() -> None:
    """Answered with an ack."""


@router.operation("close_me")
async def close_me(cmd: CloseMe) -> None:
    """Close this connection with the given code and reason."""
    raise WebSocketException(cmd.code, cmd.reason)


ws = AsyncWS(title="refusals", asyncapi_url=None, asyncapi_yaml_url=None, docs_url=None)
ws.include_router(router)
app = FastAPI(lifespan=ws.lifespan)
app.include_router(ws.asgi_router)


@app.post("/_test/stop-accepting")
async def stop_accepting() -> dict[str, bool]:
    ws.manager.accepting = False
    return {"accepting": False}
