"""Declarations (asyncws.routing): routers, operations, topics and their address templates.

Declaring is pure, so most of this runs without an event loop; the few tests that publish go
through an app and the in-memory test client.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, Field, RootModel

from asyncws import AsyncWS, Connection, InvalidTopicError, Operation, Param, Router, Topic
from asyncws.routing import RESERVED_TYPES, TopicTemplate, check_authorize, message_name
from asyncws.testing import TestClient


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Msg(BaseModel):
    text: str


class Titled(BaseModel):
    model_config = ConfigDict(title="NiceName")
    x: int = 0


class A(BaseModel):
    type: Literal["a"] = "a"
    n: int


class B(BaseModel):
    type: Literal["b"] = "b"
    s: str


AorB = Annotated[A | B, Field(discriminator="type")]


# -- message names ---------------------------------------------------------------------------


def test_message_name() -> None:
    assert message_name(Msg) == "Msg"
    assert message_name(Titled) == "NiceName"
    assert message_name(A) == "a"  # the discriminator value wins


# -- templates and parameters ----------------------------------------------------------------


def template(address: str, **types: Any) -> TopicTemplate:
    return Topic(address, Msg, params=types).template


def test_render_fills_and_validates_parameters() -> None:
    t = template("games/{game}/players/{n}", n=int)
    assert t.render({"game": "chess", "n": 3}) == "games/chess/players/3"
    assert t.render({"game": "chess", "n": "3"}) == "games/chess/players/3"  # lax conversion
    with pytest.raises(InvalidTopicError) as err:
        t.render({"game": "chess", "n": "three"})
    assert err.value.errors and err.value.errors[0]["loc"] == ["n"]
    with pytest.raises(TypeError, match="missing parameter"):
        t.render({"game": "chess"})
    with pytest.raises(TypeError, match="unknown parameter"):
        t.render({"game": "chess", "n": 1, "x": 2})
    for bad in ["", "a/b", "+", "#"]:
        with pytest.raises(InvalidTopicError):
            t.render({"game": bad, "n": 1})


def test_enum_literal_and_constrained_parameters() -> None:
    t = template(
        "paint/{color}/{size}/{code}",
        color=Color,
        size=Literal["s", "m", "l"],
        code=Annotated[str, Field(pattern=r"^[A-Z]{3}$")],
    )
    assert t.render({"color": Color.RED, "size": "m", "code": "ABC"}) == "paint/red/m/ABC"
    assert t.render({"color": "blue", "size": "s", "code": "XYZ"}) == "paint/blue/s/XYZ"
    for values in [
        {"color": "green", "size": "s", "code": "ABC"},
        {"color": "red", "size": "xl", "code": "ABC"},
        {"color": "red", "size": "s", "code": "abc"},
    ]:
        with pytest.raises(InvalidTopicError):
            t.render(values)
    assert t.match("paint/red/l/QQQ") == {"color": "red", "size": "l", "code": "QQQ"}
    assert t.match("paint/green/l/QQQ") is None
    assert t.match("paint/red/xl/QQQ") is None
    assert t.match("paint/red/l/qqq") is None
    params = Topic(
        "p/{c}/{s}", Msg, params={"c": Color, "s": Annotated[Literal["s", "m"], "meta"]}
    ).params
    assert params["c"].enum() == ["red", "blue"]
    assert params["s"].enum() == ["s", "m"]


def test_field_info_and_param_objects_as_parameter_specs() -> None:
    topic = Topic(
        "u/{user}/{n}",
        Msg,
        params={
            "user": Field(pattern=r"^[a-z]+$", description="a user"),
            "n": Param("n", int, "a number"),
        },
    )
    assert topic.params["user"].description == "a user"
    assert topic.params["n"].description == "a number"
    assert topic.topic_for(user="ann", n=2) == "u/ann/2"
    with pytest.raises(InvalidTopicError):
        topic.topic_for(user="Ann", n=2)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("rooms/lobby", {"room": "lobby"}),
        ("rooms/+", {"room": None}),
        ("rooms/#", {"room": None}),
        ("rooms", None),  # too short
        ("rooms/a/b", None),  # too long
        ("+/lobby", None),  # wildcard on a fixed level
        ("#", None),
        ("other/lobby", None),
    ],
)
def test_covers_allows_wildcards_only_on_parameter_levels(
    pattern: str, expected: dict[str, Any] | None
) -> None:
    assert template("rooms/{room}").covers(pattern) == expected


def test_covers_with_several_levels() -> None:
    t = template("a/{x}/b/{y}", y=int)
    assert t.covers("a/1/b/2") == {"x": "1", "y": "2"}
    assert t.covers("a/+/b/+") == {"x": None, "y": None}
    assert t.covers("a/+/b/#") == {"x": None, "y": None}
    assert t.covers("a/#") is None  # '#' would cover the fixed level b
    assert t.covers("a/1/b/z") is None  # y must be an int
    assert template("x/{p}/{q}").covers("x/#") == {"p": None, "q": None}
    assert template("fixed").covers("fixed") == {}
    assert template("fixed").covers("#") is None


def test_parameter_levels_must_be_written_as_published() -> None:
    t = template("n/{n}/{flag}/{c}", n=int, flag=bool, c=Color)
    assert t.render({"n": 1, "flag": True, "c": Color.RED}) == "n/1/True/red"
    assert t.covers("n/1/True/red") == {"n": "1", "flag": "True", "c": "red"}
    for other_spelling in ["n/01/True/red", "n/+1/True/red", "n/1/true/red", "n/1/1/red"]:
        assert t.covers(other_spelling) is None, other_spelling


def test_match_only_for_concrete_topics() -> None:
    t = template("rooms/{room}")
    assert t.match("rooms/lobby") == {"room": "lobby"}
    assert t.match("rooms/+") is None


@pytest.mark.parametrize(
    ("address", "params", "error"),
    [
        ("a/{x}/{x}", None, ValueError),  # a parameter twice
        ("a/{x}", {"y": int}, ValueError),  # a parameter not in the address
        ("a/pre{x}", None, ValueError),  # a parameter must be a whole level
        ("a/+", None, ValueError),  # wildcards are for subscribers
        ("a/#", None, ValueError),
        ("", None, ValueError),
        ("/", None, ValueError),
    ],
)
def test_invalid_topic_declarations(address: str, params: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        Topic(address, Msg, params=params)


def test_topic_messages_must_be_models() -> None:
    with pytest.raises(TypeError, match="pydantic models"):
        Topic("a", dict)
    with pytest.raises(TypeError):
        Topic("a", Msg | int)


def test_topic_defaults() -> None:
    topic = Topic("/rooms/{room}/", AorB, description="d", tags=["t"])
    assert topic.address == "rooms/{room}"
    assert topic.name == "rooms.room"
    assert topic.models == (A, B)
    assert topic.params["room"].annotation is str
    assert not topic.client_publish
    assert repr(topic) == "<Topic 'rooms/{room}'>"


# -- encoding events -------------------------------------------------------------------------


def test_encode_builds_the_event_frame() -> None:
    topic = Topic("x/{k}", AorB)
    assert topic.encode(A(n=1), "x/1") == '{"type":"a","topic":"x/1","data":{"type":"a","n":1}}'
    assert topic.encode({"type": "b", "s": "q"}, "x/1") == (
        '{"type":"b","topic":"x/1","data":{"type":"b","s":"q"}}'
    )


def test_encode_refuses_what_the_topic_does_not_carry() -> None:
    topic = Topic("x", A)
    with pytest.raises(TypeError, match="does not carry B"):
        topic.encode(B(s="a"), "x")  # type: ignore[arg-type]


def test_encode_revalidates_models_without_running_serializers() -> None:
    class Strict(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        sender: str = Field(alias="from")
        n: int

    topic = Topic("x", Strict)
    ok = Strict.model_validate({"from": "a", "n": 1})
    assert '"from":"a"' in topic.encode(ok, "x")
    ok.n = "1"  # type: ignore[assignment]
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        topic.encode(ok, "x")


def test_root_models_are_revalidated() -> None:
    class Numbers(RootModel[list[int]]):
        pass

    topic = Topic("x", Numbers)
    assert topic.encode(Numbers([1, 2]), "x").endswith('"data":[1,2]}')
    with pytest.raises(ValueError):
        topic.encode(Numbers.model_construct(["a"]), "x")


# -- routers and operations ------------------------------------------------------------------


class Payload(BaseModel):
    x: int


class Out(BaseModel):
    y: int


def test_operation_signature_analysis() -> None:
    router = Router()

    @router.operation("double", tags=["math"], scopes=["calc"], operation_id="doubleIt")
    async def double(p: Payload, conn: Connection) -> Out:
        """Double a number.

        More words."""
        return Out(y=p.x * 2)

    @router.receive("nothing")
    def nothing() -> None:
        pass

    op = router.operations["double"]
    assert isinstance(op, Operation)
    assert op.payload is Payload
    assert op.reply is Out
    assert op.summary == "Double a number."
    assert op.description is not None and "More words." in op.description
    assert op.tags == ["math"] and op.scopes == ["calc"]
    assert op.name == "doubleIt"
    assert op.router is router and op.routers == (router,)
    nothing_op = router.operations["nothing"]
    assert nothing_op.payload is None and nothing_op.reply is None
    assert nothing_op.summary is None and nothing_op.name == "nothing"


def test_payload_by_name_and_any_annotation() -> None:
    router = Router()

    @router.operation("raw")
    async def raw(data: list[int]) -> None:
        pass

    assert router.operations["raw"].payload == list[int]


@pytest.mark.parametrize("name", sorted(RESERVED_TYPES))
def test_reserved_operation_types(name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        Router().add_operation(name, lambda: None)


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "a/b", "é"])
def test_operation_type_syntax(name: str) -> None:
    with pytest.raises(ValueError):
        Router().add_operation(name, lambda: None)


def test_declaration_errors() -> None:
    router = Router()
    router.add_operation("a", lambda: None)
    with pytest.raises(ValueError, match="twice"):
        router.add_operation("a", lambda: None)
    router.topic("t", Msg)
    with pytest.raises(ValueError, match="twice"):
        router.topic("t", Msg)
    other = Router()
    other.add_operation("a", lambda: None)
    with pytest.raises(ValueError, match="twice"):
        router.include_router(other)

    def two(p: Payload, q: Payload) -> None:
        pass

    with pytest.raises(TypeError, match="two payload"):
        router.add_operation("two", two)
    with pytest.raises(TypeError, match="Depends"):
        router.add_operation("deps", lambda: None, dependencies=["not a marker"])
    with pytest.raises(TypeError, match="Depends"):
        Router(dependencies=[lambda: None]).add_operation("x", lambda: None)


def test_unknown_parameters_are_an_error_when_an_app_includes_the_router() -> None:
    router = Router()

    async def typo(usr: str) -> None:  # not a path parameter of any endpoint
        pass

    router.add_operation("typo", typo)  # a router cannot tell yet
    with pytest.raises(TypeError, match="'usr'"):
        AsyncWS().include_router(router)
    with pytest.raises(TypeError, match="'usr'"):
        AsyncWS().add_operation("typo", typo)  # an app can tell at once
    AsyncWS(path="/ws/{usr}").include_router(router)  # fine: it is a path parameter


def test_include_router_topic_prefixes_combine() -> None:
    inner = Router(prefix="/in/")
    topic = inner.topic("t/{k}", Msg, name="custom")
    plain = inner.topic("plain", Msg)
    outer = Router()
    outer.include_router(inner, prefix="out")
    assert [t.address for t in outer.topics] == ["out/in/t/{k}", "out/in/plain"]
    assert outer.topics[0].name == "custom"  # an explicit name is kept
    assert outer.topics[1].name == "out.in.plain"  # a default name follows the address
    assert topic.address == "t/{k}" and plain.address == "plain"  # originals untouched


def test_include_router_without_prefix_or_tags_shares_the_topic() -> None:
    inner = Router()
    topic = inner.topic("t", Msg)
    outer = Router()
    outer.include_router(inner)
    assert outer.topics == [topic]


def test_check_authorize() -> None:
    topic = Topic("x", Msg)
    check_authorize(True, topic)
    check_authorize(None, topic)  # only an explicit False refuses
    with pytest.raises(Exception, match="not allowed"):
        check_authorize(False, topic)


# -- router dependencies (run through an app) -------------------------------------------------

calls: list[str] = []


def outer_dep() -> None:
    calls.append("outer")


def router_dep(conn: Connection) -> str:
    calls.append("router")
    return "value"


def op_dep() -> None:
    calls.append("op")


def app_level_dep() -> None:
    calls.append("include")


def denies() -> None:
    from asyncws import ForbiddenError

    raise ForbiddenError("router dependency says no")


async def test_router_and_operation_dependencies_run_before_the_handler() -> None:
    calls.clear()
    inner = Router(dependencies=[Depends(router_dep)])

    @inner.operation("go", dependencies=[Depends(op_dep)])
    async def go(value: Annotated[str, Depends(router_dep)]) -> None:
        calls.append(f"handler:{value}")

    locked = Router(dependencies=[Depends(denies)])

    @locked.operation("locked")
    async def locked_op() -> None:
        calls.append("never")

    outer = Router(dependencies=[Depends(outer_dep)])
    outer.include_router(inner)
    ws = AsyncWS()
    ws.include_router(outer, dependencies=[Depends(app_level_dep)])
    ws.include_router(locked)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c, c.connect("/ws") as s:
        assert await s.call("go") == {"type": "ack", "id": 1}
        answer = await s.call("locked")
        assert answer["code"] == "forbidden" and answer["message"] == "router dependency says no"
    # outermost first; router_dep ran once (cached for the handler's own Depends)
    assert calls == ["include", "outer", "router", "op", "handler:value"]


def test_tags_of_routers_apply_to_their_declarations() -> None:
    router = Router(tags=["r"])
    topic = router.topic("t", Msg, tags=["own", "r"])

    @router.operation("op", tags=["own"])
    async def op() -> None:
        pass

    assert topic.tags == ["r", "own"]
    assert router.operations["op"].tags == ["r", "own"]
    app = AsyncWS(tags=["app"])
    app.include_router(router, tags=["inc", "r"])
    assert app.operations["op"].tags == ["inc", "r", "own"]
    assert app.topics[0].tags == ["inc", "r", "own"]
    assert app.topic("mine", Msg).tags == ["app"]
