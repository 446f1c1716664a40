"""Small apps whose AsyncAPI documents the tests check (tests/test_asyncapi.py, test_cli.py).

- ``shop``: OAuth2 bearer auth with scopes, an endpoint path parameter, nested models, enums,
  constraints, a discriminated and a plain union, a recursive model, aliases, defaults, a
  tuple, a reply and no reply, a deprecated operation with its own operation id, a topic with
  an enum parameter and a client-publish topic with scopes.
- ``minimal``: one operation, no topics, no authentication.
- ``keyed``: an API key in the query string, a Literal topic parameter, payload-less
  operations.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from fastapi import FastAPI, WebSocket
from fastapi.security import APIKeyQuery
from pydantic import BaseModel, ConfigDict, Field

from asyncws import AsyncWS, Connection, Router, Security
from asyncws.auth import WebSocketOAuth2PasswordBearer

# -- shop -------------------------------------------------------------------------------------

bearer = WebSocketOAuth2PasswordBearer(
    "https://auth.example.com/token",
    scopes={"orders:read": "See orders", "orders:write": "Place orders", "chat": "Talk"},
    query_param="access_token",
)


async def authenticate(token: str = Security(bearer)) -> dict[str, object]:
    return {"sub": token, "scopes": ["orders:read"]}


class Color(StrEnum):
    red = "red"
    green = "green"


class Region(StrEnum):
    eu = "eu"
    us = "us"


class Address(BaseModel):
    street: str = Field(min_length=1, max_length=100)
    postcode: str = Field(pattern=r"^[0-9]{5}$")
    country: str = Field(default="FR", pattern=r"^[A-Z]{2}$")


class Item(BaseModel):
    sku: str = Field(pattern=r"^[A-Z]{3}-[0-9]{4}$", examples=["ABC-1234"])
    quantity: int = Field(ge=1, le=99)
    price: Decimal = Field(gt=0, decimal_places=2)
    color: Color = Color.red
    weight: float = Field(default=1.0, multiple_of=0.5, ge=0)


class Card(BaseModel):
    kind: Literal["card"] = "card"
    number: str = Field(min_length=12, max_length=19, pattern=r"^[0-9]+$")


class Transfer(BaseModel):
    kind: Literal["transfer"] = "transfer"
    iban: str = Field(min_length=15, max_length=34)


class Category(BaseModel):
    name: str
    children: list[Category] = []


class PlaceOrder(BaseModel):
    """Place an order."""

    model_config = ConfigDict(populate_by_name=True)

    items: list[Item] = Field(min_length=1, max_length=50)
    ship_to: Address = Field(alias="shipTo")
    payment: Annotated[Card | Transfer, Field(discriminator="kind")]
    note: str | None = None
    gift: bool = False
    tags: set[str] = set()
    dimensions: tuple[int, int, int] | None = None
    category: Category | None = None


class OrderPlaced(BaseModel):
    """An order was placed."""

    type: Literal["order_placed"] = "order_placed"
    id: UUID
    total: Decimal
    at: datetime


class OrderShipped(BaseModel):
    type: Literal["order_shipped"] = "order_shipped"
    id: UUID
    carrier: str | int


class Receipt(BaseModel):
    id: UUID
    status: Literal["accepted", "pending"]
    extra: dict[str, int] = {}


class Cancel(BaseModel):
    id: UUID


class ChatLine(BaseModel):
    """A line of the support chat (clients may publish)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "Where is my parcel?"}]})

    text: str = Field(min_length=1, max_length=500)


shop_router = Router(tags=["orders"])
orders = shop_router.topic(
    "orders/{region}",
    Annotated[OrderPlaced | OrderShipped, Field(discriminator="type")],
    params={"region": Region},
    title="Orders",
    summary="Order events of a region",
    subscribe_scopes=["orders:read"],
)
support = shop_router.topic(
    "support/{ticket}/chat",
    ChatLine,
    params={"ticket": Annotated[str, Field(pattern=r"^T[0-9]{3,8}$", description="A ticket")]},
    client_publish=True,
    publish_scopes=["chat"],
    subscribe_scopes=["chat"],
    tags=["support"],
)


@shop_router.operation("order.place", scopes=["orders:write"])
async def place(order: PlaceOrder, tenant: str) -> Receipt:
    """Place an order.

    Every subscriber of ``orders/{region}`` hears about it.
    """
    raise NotImplementedError


@shop_router.operation("order.cancel", deprecated=True, operation_id="cancelOrder")
async def cancel(msg: Cancel, conn: Connection) -> None:
    """Cancel an order (use support instead)."""


shop = AsyncWS(
    title="Shop",
    version="2.1.0",
    description="Orders and support.",
    path="/ws/{tenant}",
    authenticate=authenticate,
    allowed_origins=["https://shop.example.com"],
    contact={"name": "Shop team", "email": "shop@example.com"},
    license={"name": "MIT"},
    info_tags=["shop", {"name": "orders", "description": "Ordering"}],
)
shop.include_router(shop_router)
shop_app = FastAPI(lifespan=shop.lifespan)
shop_app.include_router(shop.asgi_router, prefix="/api")


# -- minimal ----------------------------------------------------------------------------------


class Ping(BaseModel):
    n: int = 0


class Pong(BaseModel):
    n: int


minimal = AsyncWS(title="Minimal", version="0.0.1")


@minimal.operation("ping")
async def ping(msg: Ping) -> Pong:
    """Ping."""
    return Pong(n=msg.n + 1)


# -- keyed ------------------------------------------------------------------------------------


class WebSocketAPIKey(APIKeyQuery):
    """An API key in the query string of the handshake."""

    async def __call__(self, websocket: WebSocket) -> str | None:  # type: ignore[override]
        return websocket.query_params.get("key")


api_key = WebSocketAPIKey(name="key")


class Tick(BaseModel):
    price: float = Field(ge=0)
    symbol: str


def key_of(key: Annotated[str | None, Security(api_key)]) -> str | None:
    return key


keyed = AsyncWS(title="Ticker", version="1.0.0", authenticate=key_of)
ticks = keyed.topic(
    "ticks/{symbol}",
    Tick,
    params={"symbol": Literal["BTC", "ETH"]},
    description="Prices.",
)


@keyed.operation("hello")
async def hello(conn: Connection) -> None:
    """Say hello (no payload, no reply)."""


@keyed.operation("time")
async def now() -> datetime:
    """The server's time (no payload, a reply that is not a model)."""
    raise NotImplementedError
