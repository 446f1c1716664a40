"""The documentation site (mkdocs.yml): it builds with --strict, it works offline, the API
reference covers the public API, and the search index is there.

The site is built once per run into a temporary folder by the real `mkdocs build --strict`
(the `docs_site` fixture of conftest.py; scripts/check builds it too, so a broken link fails
CI before the tests even start).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import asyncws

ROOT = Path(__file__).resolve().parent.parent
_EXTERNAL = re.compile(r"^\s*([a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, //host
# Elements whose URL the browser fetches by itself when the page loads.
_FETCHED = {
    "link": ("href",),
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "track": ("src",),
}


@pytest.fixture
def site(docs_site: Path) -> Path:
    return docs_site  # built once per run: tests/conftest.py


class _Fetches(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (tag, url)
        self.classes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "class" and value:
                self.classes.update(value.split())
            if value and name in _FETCHED.get(tag, ()):
                for url in value.split(",") if name == "srcset" else [value]:
                    self.urls.append((tag, url.strip().split(" ")[0]))
            if name == "style" and value and "url(" in value:
                self.urls.extend((tag, u) for u in re.findall(r"url\(['\"]?([^)'\"]+)", value))


def test_every_page_of_the_nav_is_built(site: Path) -> None:
    for page in (ROOT / "docs").rglob("*.md"):
        rel = page.relative_to(ROOT / "docs").with_suffix("")
        html = site / ("index.html" if rel.name == "index" else rel / "index.html")
        assert html.is_file(), f"{page} was not built into {html}"


def test_the_site_fetches_nothing_from_another_host(site: Path) -> None:
    """No CDN, no web fonts: the site works offline, like /asyncapi."""
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        parser = _Fetches()
        parser.feed(page.read_text(encoding="utf-8"))
        external = [(tag, url) for tag, url in parser.urls if _EXTERNAL.match(url)]
        assert not external, f"{page.relative_to(site)} loads {external}"
        # Material fetches mermaid.js from a CDN for a page with a mermaid diagram.
        assert "mermaid" not in parser.classes, page
    for css in site.rglob("*.css"):
        text = css.read_text(encoding="utf-8")
        assert not re.search(r"@import\s+(url\()?['\"]?\s*([a-z]+:)?//", text, re.I), css
        assert not re.search(r"url\(\s*['\"]?\s*([a-z]+:)?//", text, re.I), css
    # theme.font: false: the system fonts, not Roboto from a font host
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis" not in index and "fonts.gstatic" not in index


def test_the_search_index_covers_the_pages(site: Path) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    locations = {doc["location"].split("#")[0] for doc in index["docs"]}
    assert {"tutorial/", "protocol/", "reference/api/"} <= locations, sorted(locations)
    assert 'data-md-component="search"' in (site / "index.html").read_text(encoding="utf-8")


def test_the_api_reference_covers_the_public_api(site: Path) -> None:
    page = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'id="asyncws\.(\w+)"', page))
    fastapis = {"Depends", "Security"}  # FastAPI's own, re-exported: described in prose
    missing = set(asyncws.__all__) - fastapis - documented
    assert not missing, f"add `::: asyncws.NAME` entries to docs/reference/api.md: {missing}"
    # the docstrings are there, not just the headings
    assert "A declarative websocket application" in page


def test_the_tutorial_shows_its_files_by_name(site: Path) -> None:
    page = (site / "tutorial" / "index.html").read_text(encoding="utf-8")
    names = re.findall(r'class="filename">([^<]+)<', page)
    assert names.count("chat.py") == 3
    assert {"index.html", "pytest.ini", "test_chat.py"} <= set(names)
