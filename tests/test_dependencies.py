"""Dependency injection for handlers (asyncws.dependencies): what each parameter receives.

Dependencies are resolved per frame by asyncws itself (not by FastAPI): ``Depends`` and
``Annotated[T, Depends(...)]``, nested, sync and async, generators with teardown, the per-frame
cache, ``Security`` scopes, classes and callable instances, endpoint path parameters.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Security
from fastapi.security import SecurityScopes
from pydantic import BaseModel
from starlette.websockets import WebSocket

from asyncws import AsyncWS, Connection, ForbiddenError, Router
from asyncws.dependencies import Resolver, analyze
from asyncws.testing import TestClient, WebSocketSession

events: list[str] = []


class Item(BaseModel):
    name: str


class Out(BaseModel):
    value: Any


# -- dependency functions (module level: annotations name them) -------------------------------


def user(conn: Connection) -> str:
    events.append("user")
    return conn.websocket.query_params.get("user", "anon")


async def async_user(name: Annotated[str, Depends(user)]) -> str:
    events.append("async_user")
    return name.upper()


def session() -> Iterator[str]:
    events.append("session open")
    try:
        yield "session"
    finally:
        events.append("session closed")


async def async_session() -> AsyncIterator[str]:
    events.append("async session open")
    yield "async session"
    events.append("async session closed")


def uses_session(s: Annotated[str, Depends(session)]) -> str:
    return f"uses {s}"


counter = {"n": 0}


def count() -> int:
    counter["n"] += 1
    return counter["n"]


def scopes_seen(security_scopes: SecurityScopes) -> list[str]:
    return list(security_scopes.scopes)


def inner_scoped(security_scopes: SecurityScopes, name: Annotated[str, Depends(user)]) -> list[str]:
    if "admin" in security_scopes.scopes and name != "root":
        raise ForbiddenError(f"{name} lacks: {security_scopes.scope_str}")
    return list(security_scopes.scopes)


def outer_scoped(
    inner: Annotated[list[str], Security(inner_scoped, scopes=["items:write"])],
) -> list[str]:
    return inner


class Pager:
    """A class dependency: its __init__ is analyzed (with postponed annotations)."""

    def __init__(self, conn: Connection, size: int = 10) -> None:
        self.conn_id = conn.id
        self.size = size


class Multiplier:
    """A callable instance dependency (async __call__)."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    async def __call__(self, conn: Connection) -> int:
        return self.factor * 7


triple = Multiplier(3)


def transaction() -> Iterator[str]:
    events.append("begin")
    try:
        yield "tx"
    except Exception as exc:
        events.append(f"rollback:{type(exc).__name__}")
        raise
    else:
        events.append("commit")


async def async_transaction() -> AsyncIterator[str]:
    events.append("async begin")
    try:
        yield "atx"
    except Exception:
        events.append("async rollback")
        raise
    events.append("async commit")


def swallowing() -> Iterator[None]:
    try:
        yield
    except Exception:
        events.append("swallowed")


def broken_teardown() -> Iterator[None]:
    yield
    raise RuntimeError("teardown failed")


def build() -> FastAPI:
    router = Router()

    @router.operation("who")
    async def who(name: Annotated[str, Depends(async_user)], raw: str = Depends(user)) -> Out:
        return Out(value=[name, raw])

    @router.operation("sync-handler")
    def sync_handler(item: Item, name: Annotated[str, Depends(user)]) -> Out:
        return Out(value=f"{name}:{item.name}")

    @router.operation("yields")
    async def yields(
        a: Annotated[str, Depends(session)],
        b: Annotated[str, Depends(async_session)],
        c: Annotated[str, Depends(uses_session)],
    ) -> Out:
        events.append("handler")
        return Out(value=[a, b, c])

    @router.operation("yields-then-fails")
    async def yields_then_fails(a: Annotated[str, Depends(session)]) -> None:
        events.append("handler")
        raise ForbiddenError("no")

    @router.operation("cache")
    async def cache(
        a: Annotated[int, Depends(count)],
        b: Annotated[int, Depends(count)],
        c: Annotated[int, Depends(count, use_cache=False)],
    ) -> Out:
        return Out(value=[a, b, c])

    @router.operation("scopes")
    async def scopes(
        plain: Annotated[list[str], Depends(scopes_seen)],
        secured: Annotated[list[str], Security(scopes_seen, scopes=["a", "b"])],
        nested: Annotated[list[str], Security(outer_scoped, scopes=["admin"])],
    ) -> Out:
        return Out(value={"plain": plain, "secured": secured, "nested": nested})

    @router.operation("classes")
    async def classes(
        pager: Annotated[Pager, Depends()], n: Annotated[int, Depends(triple)], conn: Connection
    ) -> Out:
        return Out(value=[pager.size, pager.conn_id == conn.id, n])

    @router.operation("specials")
    async def specials(conn: Connection, websocket: WebSocket, data: dict[str, int]) -> Out:
        return Out(value=[conn.websocket is websocket, data])

    @router.operation("tx")
    async def tx(
        t: Annotated[str, Depends(transaction)],
        a: Annotated[str, Depends(async_transaction)],
        _: Annotated[None, Depends(swallowing)],
    ) -> None:
        events.append("handler")

    @router.operation("tx-fail")
    async def tx_fail(
        t: Annotated[str, Depends(transaction)],
        a: Annotated[str, Depends(async_transaction)],
    ) -> None:
        events.append("handler")
        raise ForbiddenError("nope")

    @router.operation("tx-swallow")
    async def tx_swallow(
        t: Annotated[str, Depends(transaction)], _: Annotated[None, Depends(swallowing)]
    ) -> None:
        raise KeyError("x")

    @router.operation("teardown-fails")
    async def teardown_fails(_: Annotated[None, Depends(broken_teardown)]) -> Out:
        return Out(value="replied first")

    ws = AsyncWS()
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return app


@pytest.fixture
async def ws() -> AsyncIterator[WebSocketSession]:
    events.clear()
    async with TestClient(build(), timeout=3) as client, client.connect("/ws?user=ann") as s:
        yield s


async def test_depends_and_annotated_depends_nested(ws: WebSocketSession) -> None:
    assert (await ws.call("who"))["data"] == {"value": ["ANN", "ann"]}
    assert events == ["user", "async_user"]  # user() cached: ran once for both parameters


async def test_sync_handlers(ws: WebSocketSession) -> None:
    assert (await ws.call("sync-handler", {"name": "x"}))["data"] == {"value": "ann:x"}


async def test_yield_dependencies_tear_down_after_the_reply(ws: WebSocketSession) -> None:
    answer = await ws.call("yields")
    assert answer["data"] == {"value": ["session", "async session", "uses session"]}
    assert events == [
        "session open",
        "async session open",
        "handler",
        "async session closed",  # reverse order of setup
        "session closed",
    ]


async def test_yield_dependencies_tear_down_when_the_handler_fails(ws: WebSocketSession) -> None:
    assert (await ws.call("yields-then-fails"))["code"] == "forbidden"
    assert events == ["session open", "handler", "session closed"]


async def test_yield_dependencies_see_the_handlers_exception(ws: WebSocketSession) -> None:
    assert await ws.call("tx") == {"type": "ack", "id": 1}
    assert events == ["begin", "async begin", "handler", "async commit", "commit"]
    events.clear()
    answer = await ws.call("tx-fail")
    assert answer["code"] == "forbidden" and answer["message"] == "nope"
    assert events == [
        "begin",
        "async begin",
        "handler",
        "async rollback",
        "rollback:ForbiddenError",
    ]


async def test_a_dependency_swallowing_the_exception_does_not_hide_it(
    ws: WebSocketSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncws")
    answer = await ws.call("tx-swallow")
    assert answer["code"] == "internal_error"
    assert events == ["begin", "swallowed", "commit"]  # outer ones see no exception then
    assert "KeyError" in caplog.text


async def test_use_cache(ws: WebSocketSession) -> None:
    counter["n"] = 0
    assert (await ws.call("cache"))["data"] == {"value": [1, 1, 2]}
    # the cache lives for one frame
    assert (await ws.call("cache"))["data"] == {"value": [3, 3, 4]}


async def test_security_scopes_accumulate_down_the_chain(ws: WebSocketSession) -> None:
    answer = await ws.call("scopes")
    assert answer["code"] == "forbidden"
    assert answer["message"] == "ann lacks: admin items:write"


async def test_security_scopes_values() -> None:
    async with TestClient(build()) as c, c.connect("/ws?user=root") as s:
        assert (await s.call("scopes"))["data"] == {
            "value": {"plain": [], "secured": ["a", "b"], "nested": ["admin", "items:write"]}
        }


async def test_classes_and_callable_instances(ws: WebSocketSession) -> None:
    assert (await ws.call("classes"))["data"] == {"value": [10, True, 21]}


async def test_connection_websocket_and_a_data_parameter(ws: WebSocketSession) -> None:
    assert (await ws.call("specials", {"a": 1}))["data"] == {"value": [True, {"a": 1}]}
    answer = await ws.call("specials", {"a": "x"})
    assert answer["code"] == "validation_error" and answer["errors"][0]["loc"] == ["a"]


async def test_a_failing_teardown_is_logged_and_the_reply_stands(
    ws: WebSocketSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncws")
    assert (await ws.call("teardown-fails"))["data"] == {"value": "replied first"}
    assert "teardown failed" in caplog.text
    assert (await ws.call("who"))["type"] == "reply"


# -- analysis, without an app ----------------------------------------------------------------


def test_unexplained_parameters_are_a_declaration_error() -> None:
    def handler(mystery: int) -> None:
        pass

    with pytest.raises(TypeError, match=r"handler.*'mystery'"):
        analyze(handler, allow_payload=True)


def test_unresolvable_annotations_are_explained() -> None:
    def local_dep() -> int:
        return 1

    def handler(x: Annotated[int, Depends(local_dep)]) -> None:  # local: unresolvable
        pass

    with pytest.raises(TypeError, match="could not be resolved"):
        analyze(handler, allow_payload=True)


def test_partially_resolvable_annotations() -> None:
    def handler(conn: Connection, n: int = 3, x: LocalThing = None) -> None:  # type: ignore[name-defined,assignment]  # noqa: F821
        pass

    dep = analyze(handler)
    assert [(p.name, p.kind) for p in dep.params] == [("conn", "connection")]


def test_plain_defaults_are_left_alone() -> None:
    def handler(conn: Connection, n: int = 3, *args: Any, **kwargs: Any) -> None:
        pass

    assert [p.name for p in analyze(handler).params] == ["conn"]


def test_payload_only_for_operations() -> None:
    def hook(item: Item) -> None:
        pass

    with pytest.raises(TypeError):
        analyze(hook)  # hooks have no payload
    assert analyze(hook, allow_payload=True).payload is not None


def test_all_scopes() -> None:
    def handler(x: Annotated[list[str], Security(outer_scoped, scopes=["admin"])]) -> None:
        pass

    assert analyze(handler).all_scopes() == ["admin", "items:write"]


async def test_resolver_extra_values_and_positional_only() -> None:
    def hook(topic: str, /, room: str | None) -> str:
        return f"{topic}:{room}"

    dep = analyze(hook, extra=frozenset({"topic", "room"}))
    resolver = Resolver(None, None, extra={"topic": "rooms/+", "room": None})
    assert await resolver.run(dep) == "rooms/+:None"
    await resolver.aclose()


async def test_resolver_path_parameters_are_converted() -> None:
    def handler(n: int) -> int:
        return n * 2

    dep = analyze(handler, path_params=frozenset({"n"}))
    resolver = Resolver(None, None, path_params={"n": "21"})
    assert await resolver.run(dep) == 42


async def test_callable_instances_from_other_modules_as_authenticate() -> None:
    """WebSocketOAuth2PasswordBearer is a callable instance whose annotations are strings."""
    from asyncws.auth import WebSocketOAuth2PasswordBearer
    from asyncws.testing import WebSocketDenied

    ws = AsyncWS(authenticate=WebSocketOAuth2PasswordBearer(tokenUrl="token"))

    @ws.operation("token")
    async def token(conn: Connection) -> Out:
        return Out(value=conn.principal)

    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c:
        with pytest.raises(WebSocketDenied) as denied:
            await c.websocket_connect("/ws")
        assert denied.value.status == 403
        async with c.connect("/ws", headers={"authorization": "Bearer abc"}) as s:
            assert (await s.call("token"))["data"] == {"value": "abc"}
