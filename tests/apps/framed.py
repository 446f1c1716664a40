"""Spec-first apps in the documents' own framing (tests/specs/*.asyncapi.yaml), one FastAPI
app serving them all: an exchange (request/reply, server pushes, three channels at ``/``),
a quote feed (the URL path is the channel), team notices (greeting and broadcast pushes,
correlation at different locations), a parrot (no discriminator, external refs), and a
code-first app in the document framing (``coded``)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, Connection, DocumentFraming, Topic
from asyncws.spec_first import app_from_spec
from tests.servers import REPO_ROOT

SPECS = REPO_ROOT / "tests" / "specs"


def _app(name: str, prefix: str) -> Any:
    return app_from_spec(
        SPECS / f"{name}.asyncapi.yaml",
        broker=f"memory://framed-{name}",
        asyncapi_url=f"/{prefix}/asyncapi.json",
        asyncapi_yaml_url=f"/{prefix}/asyncapi.yaml",
        docs_url=None,
        allowed_origins=["*"],  # the browser test's page is served from another port
    )


exchange = _app("exchange", "exchange")
quotes = _app("quotes", "quotes")
notices = _app("notices", "notices")
parrot = _app("echo", "parrot")

# -- the exchange ---------------------------------------------------------------------------

feeds: dict[str, set[str]] = {}


@exchange.on_open
async def status_on_open(conn: Connection) -> None:
    await exchange.send("systemStatus", {"status": "online", "version": "2.1.0"}, connection=conn)


@exchange.handler("ping")
async def ping(message: dict[str, Any], conn: Connection) -> dict[str, Any]:
    # every ping also makes the exchange beat once, to everyone (a push without subscription)
    await exchange.send("heartbeat", {})
    return {}  # `event: pong` and the request's `reqid` are filled in from the document


@exchange.handler("subscribe")
async def subscribe(message: dict[str, Any], conn: Connection) -> list[dict[str, Any]]:
    if message["pairs"][0] == "BAD/PAIR":
        return [{"event": "subscriptionStatus", "status": "error", "reason": "no such pair"}]
    out = []
    for pair in message["pairs"]:
        feeds.setdefault(conn.id, set()).add(pair)
        out.append(
            {
                "event": "subscriptionStatus",
                "status": "subscribed",
                "pair": pair,
                "feed": message["feed"],
            }
        )
    return out  # several replies to one request, each with its reqid


@exchange.handler("unsubscribe")
def unsubscribe(message: dict[str, Any], conn: Connection) -> dict[str, Any]:
    pair = message["pairs"][0]
    if pair not in feeds.get(conn.id, set()):
        return {"event": "subscriptionStatus", "status": "error", "reason": "not subscribed"}
    feeds[conn.id].discard(pair)
    return {"event": "subscriptionStatus", "status": "unsubscribed", "pair": pair}


# -- the quote feed -------------------------------------------------------------------------

_prices = {"EURUSD": (1.08, 1.09), "USDJPY": (150.1, 150.2), "GBPUSD": (1.27, 1.28)}


@quotes.on_open
async def snapshot(conn: Connection, params: dict[str, str]) -> None:
    pair = params["pair"]
    bid, ask = _prices[pair]
    await quotes.send("snapshot", {"pair": pair, "bid": bid, "ask": ask}, connection=conn)
    # a newcomer moves the market: everyone on this pair (the newcomer too) gets an update
    await quotes.send("update", {"pair": pair, "side": "bid", "price": bid}, pair=pair)


# -- team notices ---------------------------------------------------------------------------

_seq = itertools.count(1)


@notices.on_open
async def hello(conn: Connection) -> None:
    await notices.send("greet", {"team": "core"}, connection=conn)


@notices.handler("postNotice")
async def post(message: dict[str, Any], conn: Connection) -> dict[str, Any]:
    await notices.send("notices", {"author": conn.id[:8], "text": message["text"]})
    return {"seq": next(_seq)}  # `ok: true` filled in, `replyTo` from the request's `id`


# -- the parrot -----------------------------------------------------------------------------


@parrot.handler("say")
def say(message: dict[str, Any], conn: Connection) -> dict[str, Any]:
    return {"words": message["words"]}


# -- a code-first app in the document framing -------------------------------------------------


class Hello(BaseModel):
    op: Literal["hello"]
    name: str


class Welcome(BaseModel):
    op: Literal["welcome"] = "welcome"
    greeting: str


class Count(BaseModel):
    op: Literal["count"]
    upto: int


class Number(BaseModel):
    op: Literal["number"] = "number"
    n: int


class Joined(BaseModel):
    op: Literal["joined"] = "joined"
    name: str


coded = AsyncWS(
    title="Coded Greeter",
    version="1.0.0",
    path="/coded",
    broker="memory://framed-coded",
    framing=DocumentFraming(discriminator="op", correlation="rid"),
    asyncapi_url="/coded/asyncapi.json",
    asyncapi_yaml_url=None,
    docs_url=None,
    allowed_origins=["*"],
)
joined: Topic[Joined] = Topic("lobby", Joined)
coded.add_topic(joined)


@coded.operation("hello")
async def greet(data: Hello, conn: Connection) -> Welcome:
    await coded.manager.subscribe(conn, "lobby")  # the server subscribes: no control frames
    await joined.publish(Joined(name=data.name))
    return Welcome(greeting=f"hello, {data.name}")


@coded.operation("count")
async def count(data: Count) -> list[Number]:
    return [Number(n=i) for i in range(1, data.upto + 1)]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for each in (exchange, quotes, notices, parrot, coded):
            await stack.enter_async_context(each.lifespan(app))
        yield


app = FastAPI(lifespan=lifespan)
for _each in (exchange, quotes, notices, parrot, coded):
    app.include_router(_each.asgi_router)
