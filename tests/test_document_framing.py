"""Spec-first apps in the documents' own framing, checked against the documents with a plain
`websockets` client that sends the raw frames the documents describe (tests/specs/), to a
real uvicorn process (tests/apps/framed.py). Also: what is refused, and how it is said."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from asyncws.asyncapi.reader import SpecError as ReadError
from asyncws.asyncapi.reader import framing_of_document, read_api
from asyncws.document_app import DocumentApp
from asyncws.exceptions import PayloadValidationError
from asyncws.spec_first import SpecApp, SpecError, app_from_spec
from tests.servers import REPO_ROOT, UvicornServer

SPECS = REPO_ROOT / "tests" / "specs"
WAIT = 10.0


@pytest.fixture(scope="module")
def server() -> Iterator[UvicornServer]:
    with UvicornServer("tests.apps.framed:app", ready_path="/exchange/asyncapi.json") as web:
        yield web


async def _recv(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def _recv_until(ws: ClientConnection, key: str, value: Any) -> Any:
    for _ in range(20):  # bounded: a few pushes may come first
        frame = await _recv(ws)
        if frame.get(key) == value:
            return frame
    raise AssertionError(f"no frame with {key}={value!r}")


# -- the exchange: request/reply, several channels at /, pushes ----------------------------------


async def test_exchange_raw_frames(server: UvicornServer) -> None:
    async with connect(server.ws_url("/")) as ws, connect(server.ws_url("/")) as other:
        # pushed on open, without any subscription
        assert await _recv(ws) == {"event": "systemStatus", "status": "online", "version": "2.1.0"}
        assert (await _recv(other))["event"] == "systemStatus"

        await ws.send(json.dumps({"event": "ping", "reqid": 42}))
        assert await _recv_until(ws, "event", "pong") == {"event": "pong", "reqid": 42}
        # the ping made the exchange beat, to every connection of the address
        assert await _recv_until(other, "event", "heartbeat") == {"event": "heartbeat"}

        # `subscribe` is an operation of the document, not asyncws's control frame; one
        # request, several replies, each with its reqid
        await ws.send(
            json.dumps(
                {
                    "event": "subscribe",
                    "reqid": 7,
                    "pairs": ["XBT/EUR", "ETH/EUR"],
                    "feed": "ticker",
                }
            )
        )
        first = await _recv_until(ws, "event", "subscriptionStatus")
        second = await _recv(ws)
        assert first == {
            "event": "subscriptionStatus",
            "status": "subscribed",
            "pair": "XBT/EUR",
            "feed": "ticker",
            "reqid": 7,
        }
        assert second["pair"] == "ETH/EUR" and second["reqid"] == 7
        # the error variant of the reply (the document's own)
        await ws.send(
            json.dumps({"event": "unsubscribe", "reqid": 8, "pairs": ["LTC/EUR"], "feed": "ticker"})
        )
        failed = await _recv_until(ws, "event", "subscriptionStatus")
        assert failed == {
            "event": "subscriptionStatus",
            "status": "error",
            "reason": "not subscribed",
            "reqid": 8,
        }
        # a frame that breaks the schema: an error frame with the request's reqid
        await ws.send(json.dumps({"event": "subscribe", "reqid": 9, "pairs": ["nope"]}))
        error = await _recv_until(ws, "reqid", 9)
        assert error["error"]["code"] == "validation_error"
        assert {tuple(e["loc"]) for e in error["error"]["errors"]} >= {("pairs", 0), ()}
        # a frame that is none of the document's messages
        await ws.send(json.dumps({"event": "withdraw", "reqid": 10}))
        unknown = await _recv_until(ws, "reqid", 10)
        assert unknown["error"]["code"] == "unknown_type"
        # asyncws's envelope means nothing here
        await ws.send(json.dumps({"type": "subscribe", "topic": "x", "id": 1}))
        envelope = await _recv(ws)
        assert envelope == {
            "error": {
                "code": "unknown_type",
                "message": "the frame is none of the messages this endpoint receives",
            }
        }


async def test_exchange_serves_its_document(server: UvicornServer) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=server.url) as client:
        served = (await client.get("/exchange/asyncapi.json")).json()
    original = yaml.safe_load((SPECS / "exchange.asyncapi.yaml").read_text(encoding="utf-8"))
    assert served == original  # its own servers kept, nothing rewritten


# -- the quote feed: the URL path is the channel --------------------------------------------------


async def test_quotes_path_channel(server: UvicornServer) -> None:
    async with connect(server.ws_url("/v2/quotes/EURUSD")) as first:
        assert await _recv(first) == {
            "type": "snapshot",
            "pair": "EURUSD",
            "bid": 1.08,
            "ask": 1.09,
        }
        assert (await _recv(first))["type"] == "update"
        async with connect(server.ws_url("/v2/quotes/USDJPY")) as yen:
            assert (await _recv(yen))["pair"] == "USDJPY"
            assert (await _recv(yen)) == {
                "type": "update",
                "pair": "USDJPY",
                "side": "bid",
                "price": 150.1,
            }
            async with connect(server.ws_url("/v2/quotes/EURUSD")) as second:
                assert (await _recv(second))["type"] == "snapshot"
                # the newcomer's update reaches both EURUSD connections, not the USDJPY one
                assert (await _recv(first))["pair"] == "EURUSD"
                assert (await _recv(second))["type"] == "update"
            await yen.send(json.dumps({"type": "ping"}))  # the feed receives nothing
            assert (await _recv(yen))["error"]["code"] == "unknown_type"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.ws_url("/v2/quotes/BTCUSD")):
            pass
    assert refused.value.response.status_code == 403  # not in the parameter's enum


# -- notices: greeting and broadcast pushes; correlation at different locations ------------------


async def test_notices_push_and_correlation(server: UvicornServer) -> None:
    async with connect(server.ws_url("/live")) as ann, connect(server.ws_url("/live")) as bob:
        assert await _recv(ann) == {"type": "hello", "team": "core"}
        assert await _recv(bob) == {"type": "hello", "team": "core"}
        await ann.send(json.dumps({"type": "post", "id": 5, "text": "standup moved"}))
        notice = await _recv(bob)
        assert notice["type"] == "notice" and notice["text"] == "standup moved"
        frames = [await _recv(ann), await _recv(ann)]
        ack = next(f for f in frames if "ok" in f)
        assert ack["ok"] is True and ack["replyTo"] == 5 and isinstance(ack["seq"], int)
        await ann.send(json.dumps({"type": "post", "id": 6, "text": ""}))
        error = await _recv(ann)
        assert error["id"] == 6 and error["error"]["code"] == "validation_error"


# -- the parrot: no discriminator, schemas from another file ---------------------------------------


async def test_parrot_echo(server: UvicornServer) -> None:
    async with connect(server.ws_url("/parrot")) as ws:
        await ws.send(json.dumps({"words": "hello"}))
        assert await _recv(ws) == {"words": "hello"}
        await ws.send(json.dumps({"words": "x" * 201}))
        assert (await _recv(ws))["error"]["code"] == "validation_error"
        await ws.send("[1, 2]")
        assert (await _recv(ws))["error"]["code"] == "invalid_frame"


# -- what is refused -----------------------------------------------------------------------------


def test_which_framing() -> None:
    assert framing_of_document(yaml.safe_load((SPECS / "exchange.asyncapi.yaml").read_text())) == (
        "document"
    )
    assert isinstance(app_from_spec(REPO_ROOT / "specs" / "echo.asyncapi.yaml"), SpecApp)
    assert isinstance(app_from_spec(REPO_ROOT / "specs" / "chat.asyncapi.yaml"), SpecApp)
    assert isinstance(app_from_spec(SPECS / "quotes.asyncapi.yaml"), DocumentApp)
    assert isinstance(
        app_from_spec(REPO_ROOT / "specs" / "echo.asyncapi.yaml", framing="document"), DocumentApp
    )


def test_other_protocols_are_refused_by_name() -> None:
    with pytest.raises(SpecError, match="server 'broker' uses protocol 'mqtt'"):
        app_from_spec(SPECS / "mqtt.asyncapi.yaml")
    document = yaml.safe_load((SPECS / "mqtt.asyncapi.yaml").read_text(encoding="utf-8"))
    with pytest.raises(SpecError, match="protocol 'mqtt'"):
        app_from_spec(document, framing="asyncws")
    document["servers"]["broker"]["protocol"] = "amqp"
    with pytest.raises(ReadError, match=r"protocol 'amqp'.*ws, wss"):
        read_api(document)


def test_external_refs(tmp_path: Path) -> None:
    api = read_api(SPECS / "echo.asyncapi.yaml")
    (say,) = api.endpoints[0].receive
    assert say.messages[0].schema["properties"]["words"] == {"type": "string", "maxLength": 200}
    document = yaml.safe_load((SPECS / "echo.asyncapi.yaml").read_text(encoding="utf-8"))
    with pytest.raises(SpecError, match="given as a mapping"):
        app_from_spec(document)
    read_api(document, base=SPECS)  # with the folder it resolves
    lonely = tmp_path / "lonely.asyncapi.yaml"
    lonely.write_text((SPECS / "echo.asyncapi.yaml").read_text(encoding="utf-8"))
    with pytest.raises(SpecError, match=r"shared/text\.yaml.*does not exist"):
        app_from_spec(lonely)
    document["channels"]["parrot"]["messages"]["say"]["payload"]["$ref"] = "https://x.invalid/a"
    with pytest.raises(ReadError, match="remote references are not fetched"):
        read_api(document, base=SPECS)


def _exchange() -> dict[str, Any]:
    loaded = yaml.safe_load((SPECS / "exchange.asyncapi.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_unsupported_operations_stop_or_are_listed() -> None:
    document = _exchange()
    document["channels"]["elsewhere"] = {"address": "/private", "messages": {}}
    document["operations"]["subscribe"]["reply"]["channel"] = {"$ref": "#/channels/elsewhere"}
    document["components"]["messages"]["ping"]["correlationId"] = {
        "location": "$message.header#/reqid"
    }
    with pytest.raises(SpecError) as info:
        app_from_spec(document)
    text = str(info.value)
    assert "operation 'subscribe': its reply goes to channel 'elsewhere' at another address" in text
    assert "operation 'ping' message 0: message 'ping': correlationId location" in text
    assert "in the message header" in text
    app = app_from_spec(document, skip_unsupported=True)
    assert isinstance(app, DocumentApp)
    assert len(app.spec.api.skipped) == 3  # both reasons, and ping left with no message
    assert [op.id for op in app.spec.api.endpoints[0].receive] == ["unsubscribe"]


def test_messages_nothing_tells_apart_are_refused() -> None:
    document = _exchange()
    messages = document["components"]["messages"]
    messages["unsubscribe"]["payload"] = messages["subscribe"]["payload"]
    with pytest.raises(
        SpecError, match="'subscribe' and 'unsubscribe' received on / have the same"
    ):
        app_from_spec(document)


def test_handlers_must_match_the_document() -> None:
    app = app_from_spec(SPECS / "notices.asyncapi.yaml")
    assert isinstance(app, DocumentApp)

    @app.handler("nope")
    def nope(message: Any, conn: Any) -> None:
        return None

    with pytest.raises(SpecError) as info:
        app.compile()
    assert "no handler for operation 'postNotice'" in str(info.value)
    assert "a handler is bound to 'nope'" in str(info.value)


async def test_send_checks_against_the_document() -> None:
    app = app_from_spec(SPECS / "quotes.asyncapi.yaml")
    assert app.spec.frame("snapshot", {"pair": "EURUSD", "bid": 1, "ask": 2}) == (
        '{"pair":"EURUSD","bid":1,"ask":2,"type":"snapshot"}'
    )
    from asyncws.exceptions import PayloadValidationError

    with pytest.raises(PayloadValidationError):
        app.spec.frame("update", {"pair": "EURUSD", "side": "middle", "price": 1})
    with pytest.raises(KeyError, match="receiveQuotes"):
        app.spec.frame("nothing", {})
    with pytest.raises(TypeError, match="give pair"):
        await app.send("update", {"pair": "EURUSD", "side": "bid", "price": 1})


# -- asyncws check -------------------------------------------------------------------------------


def test_check_lints_a_document_alone(capsys: pytest.CaptureFixture[str]) -> None:
    from asyncws.cli import main

    assert main(["check", str(SPECS / "exchange.asyncapi.yaml")]) == 0
    out = capsys.readouterr().out
    assert "framing: the document's own" in out
    assert (
        "reply subscriptionFailed: subscriptionFailed [event=subscriptionStatus status=error, "
        "correlated by /reqid]"
    ) in out
    assert main(["check", str(SPECS / "mqtt.asyncapi.yaml")]) == 1
    assert "server 'broker' uses protocol 'mqtt'" in capsys.readouterr().out
    assert main(["check", str(SPECS / "echo.asyncapi.yaml")]) == 0
    assert "said [(schema match only)]" in capsys.readouterr().out


def test_check_compares_the_frames_of_both_sides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asyncws.cli import main

    assert main(["check", str(SPECS / "exchange.asyncapi.yaml"), "tests.apps.framed:exchange"]) == 0
    # the FastAPI app serving four of them: name the one
    assert main(["check", str(SPECS / "notices.asyncapi.yaml"), "tests.apps.framed:app"]) == 2
    assert "5 AsyncWS apps" in capsys.readouterr().err
    changed = _exchange()
    changed["components"]["messages"]["pong"]["payload"]["properties"]["event"] = {"const": "PONG"}
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed), encoding="utf-8")
    assert main(["check", str(tmp_path / "changed.yaml"), "tests.apps.framed:exchange"]) == 1
    out = capsys.readouterr().out
    assert "/ 'ping': reply frames differ: document ['pong [event=PONG" in out
    # an asyncws-framed document against a document-framed app: said plainly
    chat = str(REPO_ROOT / "specs" / "chat.asyncapi.yaml")
    assert main(["check", chat, "tests.apps.framed:exchange"]) == 1
    assert "neither side would understand the other" in capsys.readouterr().out


# -- a code-first app in the document framing ----------------------------------------------------


async def test_code_first_document_framing_raw(server: UvicornServer) -> None:
    async with connect(server.ws_url("/coded")) as ws, connect(server.ws_url("/coded")) as other:
        await other.send(json.dumps({"op": "hello", "name": "bob", "rid": "b1"}))
        assert await _recv(other) == {"op": "welcome", "greeting": "hello, bob", "rid": "b1"}
        await ws.send(json.dumps({"op": "hello", "name": "ann", "rid": 1}))
        frames = [await _recv(ws), await _recv(ws)]
        assert {"op": "welcome", "greeting": "hello, ann", "rid": 1} in frames
        assert {"op": "joined", "name": "ann"} in frames  # a topic event: the payload itself
        assert await _recv_until(other, "name", "ann") == {"op": "joined", "name": "ann"}
        await ws.send(json.dumps({"op": "count", "upto": 2, "rid": 2}))
        assert [await _recv(ws), await _recv(ws)] == [
            {"op": "number", "n": 1, "rid": 2},
            {"op": "number", "n": 2, "rid": 2},
        ]
        await ws.send(json.dumps({"op": "count", "upto": "many", "rid": 3}))
        error = await _recv(ws)
        assert error["rid"] == 3 and error["error"]["code"] == "validation_error"


def test_code_first_document_reads_back_and_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asyncws.asyncapi import build_document, document_json
    from asyncws.cli import main
    from tests.apps import framed

    document = build_document(framed.coded)
    assert document["x-asyncws-framing"] == "document"
    api = read_api(document)
    (endpoint,) = api.endpoints
    assert endpoint.address == "/coded"
    hello = next(op for op in endpoint.receive if op.id == "hello")
    assert hello.messages[0].shape.discriminator == {"op": ("hello",)}
    assert hello.messages[0].shape.correlation == ("rid",)
    assert [m.name for m in hello.replies] == ["helloReply", "error"]
    spec = tmp_path / "coded.asyncapi.json"
    spec.write_text(document_json(document), encoding="utf-8")
    assert main(["check", str(spec), "tests.apps.framed:coded"]) == 0
    assert "implements" in capsys.readouterr().out


def test_documents_pass_the_official_parser(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from asyncws.asyncapi import build_document, document_json
    from tests.apps import framed
    from tests.browser import unavailable

    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "node_modules" / "@asyncapi" / "parser").is_dir():
        unavailable("node and node_modules/@asyncapi/parser are needed (npm ci)")
    from examples.chat.app import ws as chat_app

    coded = tmp_path / "coded.asyncapi.json"
    coded.write_text(document_json(build_document(framed.coded)), encoding="utf-8")
    # AsyncAPI 3.1.0 output, as an option (checked against the 3.1 JSON Schema by the parser)
    v31 = [tmp_path / "coded-3.1.json", tmp_path / "chat-3.1.json"]
    for path, target in zip(v31, (framed.coded, chat_app), strict=True):
        document = build_document(target, asyncapi_version="3.1.0")
        assert document["asyncapi"] == "3.1.0"
        path.write_text(document_json(document), encoding="utf-8")
    files = [coded, *v31, *sorted(SPECS.glob("*.asyncapi.yaml"))]
    result = subprocess.run(
        [node, "scripts/validate_asyncapi.mjs", "--json", *map(str, files)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for entry in json.loads(result.stdout)["files"]:
        assert entry["parsed"], entry
        assert {d["code"] for d in entry["diagnostics"]} <= {"asyncapi-latest-version"}, entry
        if "3.1" in entry["file"]:
            assert entry["diagnostics"] == [], entry


async def test_pushes_to_a_connection_a_user_and_an_address() -> None:
    """`DocumentApp.send` to one connection, to every connection of a user, to an address."""
    from fastapi import FastAPI

    from asyncws.testing import TestClient

    app = app_from_spec(
        SPECS / "notices.asyncapi.yaml",
        broker="memory://framed-push-test",
        authenticate=lambda: {"sub": "ann"},
        user_id=lambda principal: principal["sub"],
    )
    opened: list[Any] = []

    @app.on_open
    def remember(conn: Any) -> None:
        opened.append(conn)

    @app.handler("postNotice")
    def post(message: dict[str, Any], conn: Any) -> dict[str, Any]:
        return {"seq": 1}

    web = FastAPI(lifespan=app.lifespan)
    web.include_router(app.asgi_router)
    async with (
        TestClient(web) as client,
        await client.websocket_connect("/live") as first,
        await client.websocket_connect("/live") as second,
    ):
        await app.send("notice", {"author": "ops", "text": "to one"}, connection=opened[0])
        assert await first.receive_json() == {"type": "notice", "author": "ops", "text": "to one"}
        await app.send("notice", {"author": "ops", "text": "to ann"}, user="ann")
        assert (await first.receive_json())["text"] == "to ann"
        assert (await second.receive_json())["text"] == "to ann"  # the same user, both
        await app.send("hello", {"team": "all"})
        assert await first.receive_json() == {"type": "hello", "team": "all"}
        assert await second.receive_json() == {"type": "hello", "team": "all"}
        with pytest.raises(PayloadValidationError):
            await app.send("notice", {"author": "ops"}, connection=opened[0])
