"""Headless Chromium for the browser tests: Debian's chromium driven by Playwright, and the
TypeScript clients it runs, compiled by the real tsc and served from 127.0.0.1.

`launch_chromium` starts it with the flags this workplace needs (no sandbox as root, no
background networking: the machine has no internet). `typescript_page` compiles generated
clients (``tsc --strict``, ES2022 modules) and serves them with a page that loads them. When
Chromium, Playwright or ``node_modules`` (``npm ci``) is missing the test is skipped locally
and FAILS in CI (``CI`` set), where scripts/install provides them.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

__all__ = [
    "CHROMIUM_ARGS",
    "TSC",
    "compile_typescript",
    "launch_chromium",
    "typescript_page",
    "unavailable",
]

TSC = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "tsc"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str) -> NoReturn:
    """Skip for a missing tool locally; fail in CI, where it must be installed."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, but CI is set: scripts/install should have installed it")
    pytest.skip(reason)


def _chromium() -> str:
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    unavailable("chromium is not installed (apt-get install chromium, or scripts/install)")


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """A headless Chromium, closed at the end."""
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def compile_typescript(sources: Sequence[Path], out_dir: Path) -> None:
    """Compile ``sources`` with ``tsc --strict`` to ES2022 modules in ``out_dir`` (what a
    browser loads); tsc's complaints fail the test."""
    if not TSC.exists():
        unavailable("node_modules/.bin/tsc is missing (npm ci)")
    result = subprocess.run(
        [
            str(TSC),
            "--strict",
            "--target",
            "es2022",
            "--module",
            "es2022",
            "--lib",
            "es2022,dom",
            "--outDir",
            str(out_dir),
            *map(str, sources),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@contextmanager
def typescript_page(
    sources: Sequence[Path], site: Path, page: str, *, port: int = 0
) -> Iterator[str]:
    """``sources`` compiled into ``site`` (`compile_typescript`) with ``page`` as its
    ``index.html``, served by a static HTTP server on 127.0.0.1 (``port``, 0: a free one)
    until the block ends; yields the page's URL. (A page served from the loopback may open
    websockets to the loopback: Chromium's local network access checks block a page of no
    address.)"""
    compile_typescript(sources, site)
    (site / "index.html").write_text(page, encoding="utf-8")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(site), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    static = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=static.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{static.server_address[1]}/index.html"
    finally:
        static.shutdown()
        static.server_close()
        thread.join(timeout=5)
