"""The docs page and the chat page as a person sees them, in a real headless Chromium.

* ``/asyncapi`` at 390 px (a phone) and 1280 px: the header keeps its title and nothing
  overlaps, the contents do not push the page down, nothing scrolls sideways, long names in
  the contents are shown whole; the console explains and prefills what the connection needs
  (``?user=``) and connects with it; the page links to FastAPI's ``/docs`` and back.
* the chat page: its ``pattern`` attributes compile under the ``v`` flag (so form validation
  works), no favicon 404 (nothing answers 4xx), a validation error names its field.
* the demo serves ``/health`` and ``/metrics``.

Screenshots go to ``test-artifacts/screenshots/`` (gitignored; the paths are printed). With
``ASYNCWS_UPDATE_SCREENSHOT=1`` the two of the docs are written to ``docs/`` instead.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from asyncws import AsyncWS, Router
from asyncws.asyncapi import build_document
from asyncws.docs import render_html
from tests.browser import launch_chromium
from tests.servers import REPO_ROOT, UvicornServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = REPO_ROOT / "test-artifacts" / "screenshots"
UPDATE_SCREENSHOT = os.environ.get("ASYNCWS_UPDATE_SCREENSHOT") == "1"
TIMEOUT_MS = 10_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


class LogLine(BaseModel):
    text: str


def _get(server: UvicornServer, path: str) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, response.read().decode("utf-8", "replace"), headers
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server() -> Iterator[UvicornServer]:
    with UvicornServer("examples.chat.app:app", ready_path="/health") as web:
        yield web


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as chromium:
        yield chromium


class _Watch:
    """Console errors, page errors and HTTP answers >= 400 of one page."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        self.urls: list[str] = []
        page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        page.on("request", lambda r: self.urls.append(r.url))
        page.on(
            "response",
            lambda r: (
                self.problems.append(f"HTTP {r.status} for {r.url}") if r.status >= 400 else None
            ),
        )


def _shot(page: Any, name: str, capsys: pytest.CaptureFixture[str]) -> Path:
    if UPDATE_SCREENSHOT and name.startswith("screenshot-asyncapi-"):
        path = REPO_ROOT / "docs" / f"{name}.png"
    else:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000  # a real rendering, not a blank page
    with capsys.disabled():
        print(f"\nscreenshot: {path}")
    return path


def _box(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not rendered"
    return dict(box)


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def _header_is_whole(page: Any, width: int) -> None:
    name = _box(page, ".topbar-title .name")
    assert name["width"] > 40 and name["x"] + name["width"] <= width, name
    clipped = page.eval_on_selector(".topbar-title .name", "e => e.scrollWidth > e.clientWidth")
    assert not clipped, "the title is cut off"
    assert page.inner_text(".topbar-title .name") == "asyncws chat"
    links = [_box(page, f"#{i}") for i in ("link-openapi", "link-json", "link-yaml")]
    topbar = _box(page, ".topbar")
    pills = page.locator(".topbar-title .pill")
    for i in range(pills.count()):
        pill = pills.nth(i).bounding_box()
        if pill is None:  # hidden at this width
            continue
        for link in links:
            assert not _overlap(pill, link), (pill, link)
        assert pill["x"] + pill["width"] <= links[0]["x"], "a badge reaches into the links"
    for link in links:
        assert link["x"] + link["width"] <= width and link["y"] >= topbar["y"], link
        assert link["y"] + link["height"] <= topbar["y"] + topbar["height"], link
    assert topbar["height"] < 70, "the header takes two lines"
    assert not _overlap(name, links[0])


def _no_sideways_scroll(page: Any, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page scrolls sideways: {scroll} px wide at {width} px"


def _toc_names_whole(page: Any) -> None:
    clipped = page.eval_on_selector_all(
        ".toc a > span:last-child",
        "spans => spans.filter(s => s.offsetParent !== null && "
        "(s.scrollWidth > s.clientWidth + 1 || s.getBoundingClientRect().right > "
        "s.closest('.toc').getBoundingClientRect().right + 1)).map(s => s.textContent)",
    )
    assert clipped == [], f"cut off in the contents: {clipped}"


def test_the_docs_page_on_a_phone(
    server: UvicornServer, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = _Watch(page)
    page.goto(f"{server.url}/asyncapi")
    _header_is_whole(page, PHONE["width"])
    assert not page.locator(".topbar .pill-muted").is_visible()  # no room for it
    # the content starts near the top, not 1,200 px down under the contents
    h1 = _box(page, "#info h1")
    assert h1["y"] < 300, f"the title of the page starts {h1['y']:.0f} px down"
    assert _box(page, ".toc")["height"] < 200
    _no_sideways_scroll(page, PHONE["width"])
    _toc_names_whole(page)
    _shot(page, "screenshot-asyncapi-390", capsys)
    page.locator("#console").scroll_into_view_if_needed()
    _console_needs(page)
    _shot(page, "asyncapi-390-console", capsys)
    context.close()
    assert watch.problems == [], watch.problems


def test_the_docs_page_on_a_desktop(
    server: UvicornServer, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = _Watch(page)
    page.goto(f"{server.url}/asyncapi")
    _header_is_whole(page, DESKTOP["width"])
    assert page.locator(".topbar .pill-muted").is_visible()
    toc, main = _box(page, ".toc"), _box(page, "main")
    assert toc["x"] == 0 and toc["width"] <= 260 and main["x"] >= toc["width"]  # two columns
    assert _box(page, "#info h1")["y"] < 120
    _no_sideways_scroll(page, DESKTOP["width"])
    _toc_names_whole(page)
    _console_needs(page)
    page.evaluate("window.scrollTo(0, 0)")
    _shot(page, "screenshot-asyncapi-1280", capsys)

    # FastAPI's docs are one click away (not followed here: Swagger UI loads from a CDN,
    # and tests send nothing beyond 127.0.0.1), and they link back
    assert page.get_attribute("#link-openapi", "href") == "/docs"
    assert _get(server, "/docs")[0] == 200
    status, text, _ = _get(server, "/openapi.json")
    assert status == 200
    openapi = json.loads(text)
    (link,) = openapi["x-asyncapi"]
    assert link == {
        "title": "asyncws chat",
        "version": "1.0.0",
        "websocket": "/ws",
        "docs": "/asyncapi",
        "document": "/asyncapi.json",
    }
    assert "[the docs](/asyncapi)" in openapi["info"]["description"]
    context.close()
    assert watch.problems == [], watch.problems


def _console_needs(page: Any) -> None:
    """The console says the chat needs ``?user=``, prefills it and connects with it."""
    needs = page.locator("#c-needs")
    assert needs.is_visible()
    item = needs.locator("li[data-kind='query'][data-name='user']")
    text = item.inner_text().lower()
    assert "?user=ann required your user name" in text, text
    assert page.input_value("#c-query") == "?user=ann"  # an example value of what is needed
    row = page.locator("#handshake .handshake-row", has_text="user")
    assert "required" in row.inner_text().lower() and "pattern" in row.inner_text()
    page.click("#c-connect-btn")
    page.wait_for_selector("#c-status:text-is('connected')")
    page.click("#c-connect-btn")  # disconnect again
    page.wait_for_selector("#c-status:text-is('disconnected')")


def test_long_names_in_the_contents_are_shown_whole(
    browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = AsyncWS(title="long names")
    router = Router()
    long_type = "notifications.preferences.update-the-weekly-digest-schedule"

    @router.operation(long_type)
    async def handler() -> None:
        pass

    router.topic("organizations/{org}/projects/{project}/deployments/{deployment}/logs", LogLine)
    ws.include_router(router)
    document = build_document(ws)
    # the contents show the operation's key (dot-free: the dotted parts joined in camelCase)
    long_key = "notificationsPreferencesUpdate-the-weekly-digest-schedule"
    assert long_key in document["operations"]
    html = render_html(document, "/ws")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_content(html)
    label = page.locator(".toc a > span:last-child", has_text=long_key).first
    assert label.inner_text() == long_key
    box = label.bounding_box()
    assert box is not None and box["height"] > 30, "a long name wraps onto several lines"
    _toc_names_whole(page)
    _shot(page, "asyncapi-long-names", capsys)
    context.close()


def test_the_chat_page(
    server: UvicornServer, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    context = browser.new_context(viewport={"width": 900, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watch = _Watch(page)
    page.goto(f"{server.url}/")
    # the patterns compile as browsers compile them now (the v flag), so validation is on
    for field in ("user", "room"):
        compiled = page.eval_on_selector(
            f"#{field}",
            "e => { try { new RegExp('^(?:' + e.pattern + ')$', 'v'); return 'ok'; }"
            " catch (err) { return String(err); } }",
        )
        assert compiled == "ok", (field, compiled)
    page.fill("#user", "not valid!")
    assert page.eval_on_selector("#user", "e => e.validity.patternMismatch") is True
    page.fill("#user", "ann-2_b")
    assert page.eval_on_selector("#user", "e => e.validity.valid") is True
    page.fill("#room", "Lobby")
    assert page.eval_on_selector("#room", "e => e.validity.patternMismatch") is True
    page.fill("#room", "lobby")

    page.click("#connect")
    page.wait_for_selector("#status:has-text('connected as ann-2_b')")
    page.locator(".msg.sys", has_text="you joined #lobby").wait_for()
    page.fill("#text", "hello")
    page.click("#post")
    page.locator(".msg", has_text="hello").wait_for()
    # a validation error names the field, not only "invalid payload"
    page.fill("#to", "not a user!")
    page.fill("#dmtext", "psst")
    page.click("#senddm")
    error = page.locator(".msg.err").first
    error.wait_for()
    text = error.inner_text()
    assert text.startswith("validation_error: ") and "(to: String should match pattern" in text
    _shot(page, "chat-page", capsys)
    context.close()
    assert watch.problems == [], watch.problems
    assert not any(url.endswith("/favicon.ico") for url in watch.urls), watch.urls


def test_the_demo_serves_health_and_metrics(server: UvicornServer) -> None:
    status, text, headers = _get(server, "/health")
    assert status == 200 and json.loads(text)["status"] == "ok"
    assert headers["cache-control"] == "no-store"
    status, text, _ = _get(server, "/health/live")
    assert status == 200
    status, text, headers = _get(server, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert "asyncws_connections" in text
    # and FastAPI's docs list neither (they are operations endpoints, not the API)
    status, text, _ = _get(server, "/openapi.json")
    assert "/health" not in json.loads(text)["paths"]
