"""Every Python example in README.md and docs/**/*.md runs, so the docs cannot drift.

The convention, for every page: a block fenced ```` ```python ```` is a complete program, and
this file runs it; a fragment that cannot run alone is fenced ```` ```py ```` and is not run.

A block may carry a file name, as MkDocs Material shows it: ```` ```python title="chat.py" ````.
The titled blocks of one page are the files of one folder (the tutorial's `chat.py`,
`index.html`, `pytest.ini`, `test_chat.py`): a block runs in a fresh temporary folder holding,
for every title of its page, the latest version given at or before it (else the first one
after it, like the tutorial's page, given after the app that serves it).

How a block runs, in a fresh interpreter with that folder as working directory:

* a file named ``test_*.py`` is a test module: ``python -m pytest -W error`` runs it there,
  and must pass with at least one test;
* any other block is imported as a module (``runpy`` with a ``__name__`` that is not
  ``"__main__"``, so an ``if __name__ == "__main__": uvicorn.run(...)`` starts no server).
  Its module-level ``asyncio.run(...)`` runs. If it defines ``app``, an ASGI app, the app's
  lifespan is started and stopped by `asyncws.testing.TestClient` (in memory, no socket), and
  every `AsyncWS` it defines must build its AsyncAPI document.

A ruff check over all the blocks at once catches undefined names (a fragment fenced as
``python``) without running anything.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_TITLE = re.compile(r"""\btitle=(?:"([^"]*)"|'([^']*)'|(\S+))""")
_TIMEOUT = 90  # seconds for one block: a few are whole test modules


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    title: str | None
    code: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def filename(self) -> str:
        return self.title or "docs_example.py"


def blocks_of(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page (also indented ones, inside lists)."""
    out: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        start, body = i, []
        i += 1
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                break
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        i += 1
        lang = info.split()[0].lower() if info else ""
        t = _TITLE.search(info)
        title = next(g for g in t.groups() if g is not None) if t else None
        out.append(Block(page, start + 1, lang, title, "\n".join(body) + "\n"))
    return out


ALL_BLOCKS = [b for page in PAGES for b in blocks_of(page)]
PYTHON_BLOCKS = [b for b in ALL_BLOCKS if b.lang == "python"]


def folder_for(block: Block) -> dict[str, str]:
    """The files next to `block`: the page's titled blocks, latest at or before it first."""
    page_blocks = [b for b in ALL_BLOCKS if b.page == block.page and b.title]
    files: dict[str, str] = {}
    for b in page_blocks:  # every title, first version
        files.setdefault(b.filename, b.code)
    for b in page_blocks:  # then the latest at or before this block
        if b.line <= block.line:
            files[b.filename] = b.code
    files[block.filename] = block.code
    return files


# The driver runs in the example's own interpreter: nothing of this test process leaks in.
_DRIVER = """
import asyncio, runpy, sys

from asyncws import AsyncWS
from asyncws.asyncapi import build_document
from asyncws.testing import TestClient

ns = runpy.run_path(sys.argv[1], run_name="docs_example")
for value in list(ns.values()):
    if isinstance(value, AsyncWS):
        document = build_document(value)
        assert document["asyncapi"].startswith("3."), document
app = ns.get("app")
if app is not None and not isinstance(app, AsyncWS) and callable(app):

    async def drive():
        async with TestClient(app):  # lifespan startup, then shutdown
            pass

    asyncio.run(drive())
print("docs example ran:", sys.argv[1])
"""


def _env() -> dict[str, str]:
    # The example sees what a user's shell would: no pytest options of this run, and the
    # package from the virtualenv (not this checkout's directory on sys.path).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_the_docs_have_python_examples() -> None:
    pages = {b.page.relative_to(ROOT).as_posix() for b in PYTHON_BLOCKS}
    assert {"README.md", "docs/tutorial.md"} <= pages, pages
    tutorial = [b.title for b in PYTHON_BLOCKS if b.page.name == "tutorial.md"]
    assert tutorial.count("chat.py") >= 3 and "test_chat.py" in tutorial, tutorial


def test_the_python_examples_use_no_undefined_names(tmp_path: Path) -> None:
    """A fragment fenced ```python (it would fail at run time, or only on some path)."""
    for n, block in enumerate(PYTHON_BLOCKS):
        (tmp_path / f"block_{n}.py").write_text(block.code, encoding="utf-8")
    ruff = [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache"]
    run = subprocess.run(
        [*ruff, "--select=F821,F822,F823", "--output-format=concise", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
    )

    def where(m: re.Match[str]) -> str:  # block_N.py:LINE -> page.md:LINE
        block = PYTHON_BLOCKS[int(m[1])]
        return f"{block.page.relative_to(ROOT)}:{block.line + int(m[2])}"

    report = re.sub(r"block_(\d+)\.py:(\d+)", where, run.stdout)
    assert run.returncode == 0, report + run.stderr


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_python_example_runs(block: Block, tmp_path: Path) -> None:
    for name, code in folder_for(block).items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    is_test = re.fullmatch(r"test_\w*\.py", block.filename) is not None
    if is_test:
        cmd = [sys.executable, "-m", "pytest", "-W", "error", "-p", "no:cacheprovider"]
        cmd += ["-q", block.filename]
    else:
        cmd = [sys.executable, "-c", _DRIVER, block.filename]
    run = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=_TIMEOUT
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"{block.id} failed ({' '.join(cmd[:4])}):\n{output}"
    if is_test:
        assert re.search(r"\b[1-9]\d* passed\b", run.stdout), output
        assert not re.search(r"\b(failed|error|skipped|xfail)", run.stdout), output
    else:
        assert "docs example ran:" in run.stdout, output


# -- the tutorial's websocket sessions, replayed -----------------------------------------------

_CLIENT = re.compile(r'^\$ \.venv/bin/python -m websockets "?(?P<url>ws://[^"\s]+)"?$')
_DENIED = re.compile(r"^Failed to connect to .*: HTTP (?P<status>\d{3})\.$")


def sessions_of(block: Block) -> list[dict[str, object]]:
    """The `python -m websockets` sessions of a console block: what is sent (after `> `), what
    comes back (after `< `), or the HTTP status that refused the handshake."""
    sessions: list[dict[str, object]] = []
    steps: list[list[object]] = []
    for line in block.code.splitlines():
        if m := _CLIENT.match(line):
            steps = []
            sessions.append({"url": m["url"], "denied": None, "steps": steps})
        elif m := _DENIED.match(line):
            sessions[-1]["denied"] = int(m["status"])
        elif line.startswith("> "):
            steps.append([line[2:], []])
        elif line.startswith("< "):
            steps[-1][1].append(line[2:])  # type: ignore[union-attr]
    return sessions


_REPLAY = """
import asyncio, json, re, sys
from urllib.parse import urlsplit

sys.path.insert(0, ".")
from chat import app
from asyncws.testing import TestClient, WebSocketDenied

ID = re.compile(r"^(?:[A-Za-z0-9_-]{8}[.])?[A-Za-z0-9_-]{22}$")  # a server-assigned id


def norm(value, key=None):  # what differs from run to run: times and connection ids
    if isinstance(value, dict):
        return {k: norm(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [norm(v) for v in value]
    if key == "at":
        return "<time>"
    if isinstance(value, str) and ID.match(value):
        return "<id>"
    return value


def key(frame):
    return json.dumps(norm(frame), sort_keys=True)


async def main(sessions):
    async with TestClient(app, timeout=5) as client:
        for session in sessions:
            url = urlsplit(session["url"])
            path = url.path + ("?" + url.query if url.query else "")
            if session["denied"]:
                try:
                    await client.websocket_connect(path)
                except WebSocketDenied as denied:
                    assert denied.status == session["denied"], (path, denied.status)
                else:
                    raise AssertionError(f"{path} was accepted")
                continue
            async with client.connect(path) as ws:
                for sent, expected in session["steps"]:
                    await ws.send_text(sent)
                    got = [await ws.receive_json() for _ in expected]
                    want = [json.loads(e) for e in expected]  # either order: see the page
                    assert sorted(map(key, got)) == sorted(map(key, want)), (sent, got, want)
    print("replayed", len(sessions), "sessions")


asyncio.run(main(json.loads(sys.argv[1])))
"""

CONSOLE_SESSIONS = [
    b for b in ALL_BLOCKS if b.lang == "console" and b.page.name == "tutorial.md" and sessions_of(b)
]


def test_the_tutorial_shows_websocket_sessions() -> None:
    assert len(CONSOLE_SESSIONS) >= 3
    sent = [s for b in CONSOLE_SESSIONS for s in sessions_of(b)]
    assert any(s["denied"] for s in sent) and sum(bool(s["steps"]) for s in sent) >= 3


@pytest.mark.parametrize("block", CONSOLE_SESSIONS, ids=lambda b: b.id)
def test_tutorial_session_replays(block: Block, tmp_path: Path) -> None:
    """What the page says the server answers, it answers: each `python -m websockets`
    session, replayed in memory against the `chat.py` of that step (times and connection ids
    aside)."""
    for name, code in folder_for(block).items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-c", _REPLAY, json.dumps(sessions_of(block))],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
    )
    assert run.returncode == 0 and "replayed" in run.stdout, run.stdout + run.stderr
