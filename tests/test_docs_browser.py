"""The docs page in a real headless Chromium, against the real chat example over uvicorn.

It checks that every operation and message of the document is on the page, that the live
console connects, subscribes, sends the pre-filled ``post`` and shows the matched reply and
the ``posted`` event, that nothing is logged as an error, and that no request leaves the
app's origin. It takes a screenshot of the top of the page (written to docs/screenshot-asyncapi.png with
ASYNCWS_UPDATE_SCREENSHOT=1).

Needs Debian's ``chromium`` (scripts/install installs it) and the ``playwright`` package
(the dev extra; its own browser downloads are never used). Without them the test is
skipped, except under CI where that is an install bug and fails.
"""

from __future__ import annotations

import http.client
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import launch_chromium
from tests.servers import REPO_ROOT, UvicornServer
from tests.test_docs import anchor, expected_badge

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The committed screenshot is refreshed only on request, so test runs leave the tree clean.
SCREENSHOT = REPO_ROOT / "docs" / "screenshot-asyncapi.png"
UPDATE_SCREENSHOT = os.environ.get("ASYNCWS_UPDATE_SCREENSHOT") == "1"
TIMEOUT_MS = 10_000


def _get(server: UvicornServer, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server() -> Iterator[UvicornServer]:
    with UvicornServer("examples.chat.app:app", ready_path="/") as web:
        yield web


def test_docs_page_and_live_console(server: UvicornServer, tmp_path: Path) -> None:

    status, _ = _get(server, "/asyncapi")
    assert status == 200
    status, text = _get(server, "/asyncapi.json")  # what the page shows
    assert status == 200
    document = json.loads(text)

    origin = server.url  # http://127.0.0.1:PORT
    ws_origin = server.ws_url("/")  # ws://127.0.0.1:PORT/
    requests: list[str] = []
    errors: list[str] = []

    with launch_chromium() as browser:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("websocket", lambda ws: requests.append(ws.url))
        page.on(
            "console",
            lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.goto(f"{origin}/asyncapi?user=ann")
        _check_content(page, document)
        _round_trip(page)
        shot = SCREENSHOT if UPDATE_SCREENSHOT else tmp_path / "screenshot-asyncapi.png"
        page.evaluate("window.scrollTo(0, 0)")
        # the top of the page (header, contents, the console after a round trip) reads as a
        # picture; the whole 18,000-pixel page does not
        page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 10_000  # a real rendering, not a blank page
        _error_round_trip(page)

    assert not errors, errors
    assert requests, "no request was recorded"
    strays = [u for u in requests if not (u.startswith(origin + "/") or u.startswith(ws_origin))]
    assert not strays, f"requests left the app's origin: {strays}"
    assert f"{origin}/asyncapi?user=ann" in requests
    assert f"{ws_origin}ws?user=ann" in requests


def _check_content(page: Any, document: dict[str, Any]) -> None:
    assert page.title().startswith(document["info"]["title"])
    body = page.locator("body").text_content() or ""
    for key, op in document["operations"].items():
        card = page.locator(f"article[id='{anchor('op', key)}']")
        assert card.is_visible(), key
        assert card.locator(".badge").first.inner_text() == expected_badge(document, op)
    for key, message in document.get("components", {}).get("messages", {}).items():
        assert message.get("name", key) in body
    for channel in document["channels"].values():
        assert channel["address"] in body
    # the schema trees expand
    first = page.locator("#messages details.s-node").first
    assert first.count() == 1


def _round_trip(page: Any) -> None:
    assert page.input_value("#c-query") == "?user=ann"
    assert page.input_value("#c-path") == "/ws"
    page.click("#c-connect-btn")
    page.wait_for_selector("#c-status:text-is('connected')")

    page.select_option("#c-topic", label="rooms/{room}")  # by its address
    page.fill("#c-param-room", "lobby")
    assert page.inner_text("#c-topic-preview") == "rooms/lobby"
    page.click("#c-sub-btn")
    page.wait_for_selector(".c-sub.active:has-text('rooms/lobby')")
    ack = page.locator(".frame-in .f-corr", has_text=re.compile(r"^ack to #\d+ \(subscribe"))
    ack.first.wait_for()

    page.select_option("#c-op", value="post")
    frame = json.loads(page.input_value("#c-editor"))
    assert frame["type"] == "post"
    assert frame["data"]["room"] == "lobby", frame
    sent_id = frame["id"]
    page.click("#c-send-btn")

    reply = page.locator(
        ".frame-in .f-corr", has_text=re.compile(rf"^reply to #{sent_id} \(post\) in (<1|\d+) ms$")
    )
    reply.wait_for()
    reply_frame = json.loads(reply.locator("xpath=../..").locator("pre").inner_text())
    assert reply_frame["type"] == "reply" and reply_frame["id"] == sent_id
    assert reply_frame["data"]["room"] == "lobby"
    posted = page.locator(".frame-in", has=page.locator(".f-type", has_text=re.compile("^posted$")))
    posted.first.wait_for()
    event = json.loads(posted.first.locator("pre").inner_text())
    assert event["topic"] == "rooms/lobby"
    assert event["data"]["user"] == "ann" and event["data"]["text"] == frame["data"]["text"]
    # the request shows its outcome too, and the editor moved on to a fresh id
    out = page.locator(".frame-out", has=page.locator(".f-id", has_text=f"#{sent_id}"))
    assert re.match(r"^✓ reply in (<1|\d+) ms$", out.locator(".f-corr").inner_text())
    assert json.loads(page.input_value("#c-editor"))["id"] == sent_id + 1


def _error_round_trip(page: Any) -> None:
    """An invalid frame gets an error frame matched to its id."""
    page.fill("#c-editor", json.dumps({"type": "post", "id": 99, "data": {"room": "lobby"}}))
    page.click("#c-send-btn")
    page.locator(".frame-error .f-corr", has_text=re.compile(r"^error to #99 \(post\)")).wait_for()
    page.click("#c-reset-btn")  # back to the example
    assert json.loads(page.input_value("#c-editor"))["type"] == "post"
