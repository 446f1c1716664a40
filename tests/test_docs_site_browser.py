"""The tutorial's finished chat and the documentation site, in a real headless Chromium.

* The tutorial: its final `chat.py` and `index.html`, written to a fresh folder exactly as the
  page gives them, served by a real uvicorn; two tabs connect as ann and bob, post in the
  lobby and send a private message, as step 4 tells a reader to do.
* The site (`mkdocs build --strict`, served from 127.0.0.1): the search box finds a page, and
  no request leaves the site's origin (no web fonts, no CDN), not even from the search worker.

Needs Debian's ``chromium`` and the ``playwright`` package (see tests/browser.py).
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import launch_chromium
from tests.servers import UvicornServer
from tests.test_docs_examples import PYTHON_BLOCKS, folder_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TIMEOUT_MS = 10_000


def _watch(page: Any, requests: list[str], errors: list[str]) -> None:
    """Record what `page` requests (its workers' requests too) and the errors it logs."""
    page.on("request", lambda request: requests.append(request.url))
    page.on("websocket", lambda ws: requests.append(ws.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(TIMEOUT_MS)


def _strays(requests: list[str], port: int) -> list[str]:
    local = (f"http://127.0.0.1:{port}/", f"ws://127.0.0.1:{port}/")
    return [u for u in requests if not u.startswith(local) and not u.startswith("data:")]


@pytest.fixture
def tutorial_server(tmp_path: Path) -> Iterator[UvicornServer]:
    final = [b for b in PYTHON_BLOCKS if b.page.name == "tutorial.md" and b.title == "chat.py"]
    for name, code in folder_for(final[-1]).items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    with UvicornServer("chat:app", cwd=tmp_path, ready_path="/") as server:
        yield server


def test_the_tutorial_chat_in_two_tabs(tutorial_server: UvicornServer) -> None:
    requests: list[str] = []
    errors: list[str] = []
    with launch_chromium() as browser:
        context = browser.new_context(viewport={"width": 1000, "height": 800})
        ann, bob = context.new_page(), context.new_page()
        for page, name in ((ann, "ann"), (bob, "bob")):
            _watch(page, requests, errors)
            page.goto(tutorial_server.url + "/")
            page.fill("#user", name)
            page.click("#login button")
            page.wait_for_selector(f"#status:text-is('connected as {name}')")
        # bob's join reaches ann, who is subscribed to the lobby
        ann.wait_for_selector("#log div:text-is('bob joined')")
        bob.fill("#text", "hello from bob")
        bob.click("#send button")
        ann.wait_for_selector("#log div:text-is('bob: hello from bob')")
        bob.wait_for_selector("#log div:text-is('bob: hello from bob')")
        ann.fill("#to", "bob")
        ann.fill("#dmtext", "psst")
        ann.click("#dm button")
        bob.wait_for_selector("#log div.dm:text-is('(private) ann: psst')")
        assert ann.locator("#log div.err").count() == 0
        assert bob.locator("#log div.err").count() == 0
    assert not errors, errors
    assert not _strays(requests, tutorial_server.port), requests
    assert f"ws://127.0.0.1:{tutorial_server.port}/ws?user=bob" in requests


@pytest.fixture(scope="module")
def site_server(docs_site: Path) -> Iterator[int]:
    handler = functools.partial(_QuietHandler, directory=str(docs_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_the_site_searches_offline(site_server: int) -> None:
    requests: list[str] = []
    errors: list[str] = []
    origin = f"http://127.0.0.1:{site_server}"
    with launch_chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        _watch(page, requests, errors)
        page.goto(origin + "/tutorial/")
        assert page.title().startswith("Tutorial")
        page.click("input.md-search__input")  # in the header at desktop widths
        page.keyboard.type("TestClient")
        result = page.locator(".md-search-result__item a").first
        result.wait_for()
        assert "TestClient" in (page.locator(".md-search-result").inner_text() or "")
        page.goto(origin + "/reference/api/")
        page.locator("#asyncws\\.AsyncWS").wait_for()
    assert not errors, errors
    assert any("/search/search_index.json" in u for u in requests), requests
    assert not _strays(requests, site_server), _strays(requests, site_server)
