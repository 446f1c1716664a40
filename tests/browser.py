"""Headless Chromium for the browser tests: Debian's chromium driven by Playwright.

`launch_chromium` starts it with the flags this workplace needs (no sandbox as root, no
background networking: the machine has no internet). When Chromium or Playwright is missing
the test is skipped locally and FAILS in CI (``CI`` set), where scripts/install provides both.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

__all__ = ["CHROMIUM_ARGS", "launch_chromium", "unavailable"]

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
