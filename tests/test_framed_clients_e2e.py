"""Generated clients for documents in their own framing (tests/specs/), against the
spec-first apps of tests/apps/framed.py in a real uvicorn process: the Python client over
`websockets`, the TypeScript client compiled with tsc and run in headless Chromium."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from asyncws.asyncapi.reader import read_api
from asyncws.codegen import CodegenError, describe_any, generate
from asyncws.codegen.framed import describe_framed
from asyncws.spec_first import load_document
from tests.browser import launch_chromium, typescript_page
from tests.servers import REPO_ROOT, UvicornServer

pytestmark = pytest.mark.slow

SPECS = REPO_ROOT / "tests" / "specs"
WAIT = 10.0
NAMES = {"exchange": "coin_exchange", "quotes": "quote_feed", "notices": "team_notices"}


@pytest.fixture(scope="module")
def server() -> Iterator[UvicornServer]:
    with UvicornServer("tests.apps.framed:app", ready_path="/exchange/asyncapi.json") as web:
        yield web


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("framed-python")
    modules = {}
    for spec in ("exchange", "quotes", "notices", "echo"):
        generate(load_document(SPECS / f"{spec}.asyncapi.yaml"), "python", directory)
    sys.path.insert(0, str(directory))
    try:
        for spec, module in {**NAMES, "echo": "parrot"}.items():
            modules[spec] = importlib.import_module(f"{module}_client")
        yield modules
    finally:
        sys.path.remove(str(directory))
        for module in {**NAMES, "echo": "parrot"}.values():
            sys.modules.pop(f"{module}_client", None)


async def test_python_exchange_client(clients: dict[str, Any], server: UvicornServer) -> None:
    m = clients["exchange"]
    beats: list[dict[str, Any]] = []
    got_beat = asyncio.Event()
    async with m.CoinExchangeClient(server.url.replace("http", "ws"), timeout=WAIT) as ex:
        ex.on_heartbeat(lambda frame: (beats.append(frame), got_beat.set()))
        name, status = await ex.receive("systemStatus")
        assert name == "systemStatus" and status["status"] == "online"
        pong = await ex.ping()
        assert pong["event"] == "pong" and pong["reqid"] == 1  # the client's own reqid
        await asyncio.wait_for(got_beat.wait(), WAIT)
        assert beats == [{"event": "heartbeat"}]
        # one request, two replies: the first is returned; request() can wait for more
        frames = await ex.request(
            "subscribe",
            {"pairs": ["XBT/EUR", "ETH/EUR"], "feed": "trades"},
            ["subscriptionStatus", "subscriptionFailed"],
            count=2,
        )
        assert [f["pair"] for f in frames] == ["XBT/EUR", "ETH/EUR"]
        assert frames[0]["reqid"] == frames[1]["reqid"] == 2
        reply = await ex.unsubscribe(pairs=["XBT/EUR"], feed="trades")
        assert reply == {
            "event": "subscriptionStatus",
            "status": "unsubscribed",
            "pair": "XBT/EUR",
            "reqid": 3,
        }
        failed = await ex.subscribe({"pairs": ["BAD/PAIR"], "feed": "ticker"})
        assert failed["status"] == "error" and failed["reason"] == "no such pair"
        with pytest.raises(m.ServerError) as info:
            await ex.subscribe(pairs=["lower/case"], feed="ticker")
        assert info.value.code == "validation_error"
        assert info.value.frame["reqid"] == 5


async def test_python_quotes_client(clients: dict[str, Any], server: UvicornServer) -> None:
    m = clients["quotes"]
    base = server.url.replace("http", "ws")
    async with m.QuoteFeedClient(base, pair="GBPUSD", timeout=WAIT) as feed:
        assert feed.url == base + "/v2/quotes/GBPUSD"
        name, snapshot = await feed.receive()
        assert name == "snapshot" and snapshot["pair"] == "GBPUSD"
        name, update = await feed.receive("update")
        assert update == {"type": "update", "pair": "GBPUSD", "side": "bid", "price": 1.27}
    with pytest.raises(TypeError, match="pair"):
        m.QuoteFeedClient(base)  # type: ignore[call-arg]


async def test_python_notices_and_parrot(clients: dict[str, Any], server: UvicornServer) -> None:
    base = server.url.replace("http", "ws")
    n = clients["notices"]
    async with (
        n.TeamNoticesClient(base, timeout=WAIT) as ann,
        n.TeamNoticesClient(base, timeout=WAIT) as bob,
    ):
        assert (await ann.receive("hello"))[1] == {"type": "hello", "team": "core"}
        await bob.receive("hello")
        posted = await ann.post_notice(text="lunch at noon")
        assert posted["ok"] is True and posted["replyTo"] == 1
        assert (await bob.receive("notice"))[1]["text"] == "lunch at noon"
        with pytest.raises(n.ServerError, match="validation_error"):
            await ann.post_notice(text="")
    p = clients["echo"]
    async with p.ParrotClient(base, timeout=WAIT) as parrot:
        assert await parrot.say(words="polly") == {"words": "polly"}
        with pytest.raises(p.ServerError):
            await parrot.say(words="x" * 300)


async def test_python_client_of_a_code_first_app(
    server: UvicornServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from asyncws.asyncapi import build_document
    from tests.apps import framed

    directory = tmp_path_factory.mktemp("coded-python")
    generate(build_document(framed.coded), "python", directory)
    sys.path.insert(0, str(directory))
    try:
        m = importlib.import_module("coded_greeter_client")
        base = server.url.replace("http", "ws")
        async with m.CodedGreeterClient(base, timeout=WAIT) as client:
            welcome = await client.hello(name="cy")
            assert welcome == {"op": "welcome", "greeting": "hello, cy", "rid": 1}
            assert (await client.receive("Joined"))[1] == {"op": "joined", "name": "cy"}
            numbers = await client.request("count", {"upto": 3}, ["countReply", "error"], count=3)
            assert [n["n"] for n in numbers] == [1, 2, 3]
            with pytest.raises(m.ServerError, match="validation_error"):
                await client.count(upto="x")
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop("coded_greeter_client", None)


def test_codegen_refuses_and_names() -> None:
    with pytest.raises(CodegenError, match="server 'broker' uses protocol 'mqtt'"):
        describe_any(load_document(SPECS / "mqtt.asyncapi.yaml"))
    chat = load_document(REPO_ROOT / "specs" / "chat.asyncapi.yaml")
    chat["servers"] = {"amqp": {"host": "x.invalid", "protocol": "amqp"}}
    with pytest.raises(CodegenError, match="protocol 'amqp'"):
        describe_any(chat)
    document = load_document(SPECS / "exchange.asyncapi.yaml")
    document["components"]["messages"]["ping"]["contentType"] = "application/octet-stream"
    with pytest.raises(CodegenError, match="message 'ping' is application/octet-stream"):
        describe_framed(document)
    client = describe_framed(read_api(document, skip_unsupported=True))
    assert client.warnings and "ping" not in [r.op_id for e in client.endpoints for r in e.requests]


# -- the TypeScript client in Chromium ---------------------------------------------------------

PAGE = """<!doctype html>
<html><body>
<script type="module">
import * as exchange from "./coin-exchange-client.js";
import * as quotes from "./quote-feed-client.js";
import * as notices from "./team-notices-client.js";
import * as parrot from "./parrot-client.js";
window.framed = { exchange, quotes, notices, parrot };
window.clientReady = true;
</script>
</body></html>
"""

SCENARIO = """
async (base) => {
  const { exchange, quotes, notices, parrot } = window.framed;
  const result = {};
  const ex = new exchange.CoinExchangeClient(base);
  const beats = [];
  ex.onHeartbeat((frame) => beats.push(frame));
  await ex.connect();
  result.status = (await ex.receive("systemStatus"))[1];
  result.pong = await ex.ping();
  result.twice = await ex.request("subscribe", { pairs: ["XBT/EUR", "ETH/EUR"], feed: "ticker" },
                                  ["subscriptionStatus", "subscriptionFailed"], 2);
  result.failed = await ex.subscribe({ pairs: ["BAD/PAIR"], feed: "ticker" });
  try {
    await ex.subscribe({ pairs: ["nope"], feed: "ticker" });
    result.invalid = "no error";
  } catch (error) {
    result.invalid = { name: error.name, code: error.code, reqid: error.frame.reqid };
  }
  for (let i = 0; i < 200 && beats.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  result.beats = beats;
  ex.close();

  const feed = new quotes.QuoteFeedClient(base, { pair: "USDJPY" });
  await feed.connect();
  result.quoteUrl = feed.url;
  result.snapshot = (await feed.receive("snapshot"))[1];
  result.update = (await feed.receive("update"))[1];
  feed.close();

  const ann = new notices.TeamNoticesClient(base);
  const bob = new notices.TeamNoticesClient(base);
  await ann.connect();
  await bob.connect();
  result.hello = (await ann.receive("hello"))[1];
  result.posted = await ann.postNotice({ text: "from the browser" });
  result.notice = (await bob.receive("notice"))[1];
  ann.close();
  bob.close();

  const p = new parrot.ParrotClient(base);
  await p.connect();
  result.said = await p.say({ words: "hi" });
  p.close();
  return result;
}
"""


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    out = tmp_path_factory.mktemp("framed-ts")
    files = []
    for spec in ("exchange", "quotes", "notices", "echo"):
        files += generate(load_document(SPECS / f"{spec}.asyncapi.yaml"), "typescript", out)
    with typescript_page(files, out / "site", PAGE) as url:
        yield url


@pytest.mark.browser
def test_typescript_clients_in_chromium(server: UvicornServer, page_url: str) -> None:
    with launch_chromium() as chromium:
        errors: list[str] = []
        page = chromium.new_page()
        page.set_default_timeout(WAIT * 1000)
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.goto(page_url)
        page.wait_for_function("window.clientReady === true")
        base = server.ws_url("/").rstrip("/")
        result = page.evaluate(SCENARIO, base)
    assert errors == []
    assert result["status"]["status"] == "online"
    assert result["pong"] == {"event": "pong", "reqid": 1}
    assert [f["pair"] for f in result["twice"]] == ["XBT/EUR", "ETH/EUR"]
    assert {f["reqid"] for f in result["twice"]} == {2}
    assert result["failed"]["status"] == "error" and result["failed"]["reqid"] == 3
    assert result["invalid"] == {"name": "ServerError", "code": "validation_error", "reqid": 4}
    assert result["beats"] == [{"event": "heartbeat"}]
    assert result["quoteUrl"] == base + "/v2/quotes/USDJPY"
    assert result["snapshot"]["pair"] == "USDJPY" and result["update"]["side"] == "bid"
    assert result["hello"] == {"type": "hello", "team": "core"}
    assert result["posted"]["ok"] is True and result["posted"]["replyTo"] == 1
    assert result["notice"]["text"] == "from the browser"
    assert result["said"] == {"words": "hi"}
