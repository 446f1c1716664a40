"""asyncws_declarative: asyncws through its declarative API (AsyncWS app, Router, a topic).

A Router declares the topic template ``bench/{room}`` with a pydantic model of the payload
(seq, ts, pad) and ``client_publish=True``, so clients publish to it directly: ``bench/t``
(phases 1-2) and ``bench/i0`` ... ``bench/i{K-1}`` (phase 3, one topic per publisher) are
all concrete topics of it. The AsyncWS app validates each publish against the model, encodes
the event frame once and sends it through the broker.

Wire (client -> server):  {"type":"subscribe","topic":"bench/t"}
                          {"type":"publish","topic":"bench/t","data":{...}}   (same as ``raw``)
Wire (server -> client):  {"type":"BenchMsg","topic":"bench/t","data":{"seq":..,"ts":..,"pad":..}}
                          (the topic is the concrete one: bench/i3 in phase 3)
                          (the validated model, ``model_dump_json`` once per publish)

Served as ``ws.in_front_of(app)`` (`AsyncWS.in_front_of`): the websocket endpoint is served
before the FastAPI app's middleware and router, which an idle connection would otherwise stay
suspended in (about 3-5 KiB per connection with FastAPI 0.165; the FastAPI app has no middleware of
its own here, and everything else, the lifespan included, still goes to it).
``PEERBENCH_ASYNCWS_MOUNT=include`` serves the FastAPI app itself instead
(``app.include_router(ws.asgi_router)``, the default way), for comparison.

Loaded by peerbench as ``adapters.asyncws_declarative`` when ``PEERBENCH_ADAPTERS`` points at
this folder (see benchmarks/peerbench.sh). Needs asyncws installed in the peerbench venv.
"""

# No "from __future__ import annotations": pydantic and FastAPI resolve the annotations of
# classes and endpoints defined inside _build_app at definition time.
import os
from typing import Any

from ._base import ClientProtocol

SUMMARY = (
    "asyncws, declarative API: AsyncWS + Router, topic bench/{room} (pydantic model, "
    "client_publish)"
)
APP = "adapters.asyncws_declarative:app"
PACKAGES = ["asyncws", "fastapi", "pydantic", "redis"]
REQUIRES = "asyncws"  # left out of the default run where asyncws is not installed

TOPIC = "bench/{room}"  # bench/t in phases 1-2, bench/i{j} in phase 3


class Client(ClientProtocol):
    def subscribe_frames(self, topic: str) -> list[bytes]:
        return [b'{"type":"subscribe","topic":"%s"}' % topic.encode()]

    def publish_frame(self, topic: str, payload: bytes) -> bytes:
        return b'{"type":"publish","topic":"%s","data":%s}' % (topic.encode(), payload)


def _build_app() -> Any:
    from fastapi import FastAPI
    from pydantic import BaseModel

    from asyncws import AsyncWS, Router
    from asyncws.limits import Limits

    class BenchMsg(BaseModel):
        """One benchmark message; field order is the wire order (seq, ts first)."""

        seq: int
        ts: float
        pad: str

    router = Router()
    router.topic(TOPIC, BenchMsg, client_publish=True, description="peerbench topic")

    ws = AsyncWS(
        title="peerbench asyncws",
        broker=os.environ.get("PEERBENCH_REDIS_URL", "redis://127.0.0.1:6391"),
        broker_channel="peerbench:asyncws-decl",
        # The peerbench publisher is one connection sending up to ~1,000 frames/s: lift the
        # per-connection rate limit (default 50 frames/s, then error frames and close 1008),
        # and its publish budget (4 MiB/s of published bytes).
        limits=Limits(
            rate=1e6, burst=1_000_000, fanout_bytes_rate=float(1 << 40), max_fanout_bytes=1 << 30
        ),
        asyncapi_url=None,
        asyncapi_yaml_url=None,
        docs_url=None,
    )
    ws.include_router(router)

    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    if os.environ.get("PEERBENCH_ASYNCWS_MOUNT") == "include":
        return app
    return ws.in_front_of(app)


def __getattr__(name: str) -> Any:  # build the server only when uvicorn asks for it
    if name == "app":
        app = _build_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
