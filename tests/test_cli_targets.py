"""``asyncws spec examples/chat/app.py``: a file path is a target too; every command's
``--help`` shows an example."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from asyncws.asyncapi import build_document, document_json
from asyncws.cli import CLIError, _parser, load_target, main
from examples.chat import app as chat
from tests import asyncapi_apps
from tests.servers import REPO_ROOT


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)


def test_a_file_path_names_the_same_module() -> None:
    assert load_target("examples/chat/app.py") is chat.ws  # imported as examples.chat.app
    assert load_target("examples/chat/app.py:app") is chat.ws
    assert load_target("./examples/chat/app.py:ws") is chat.ws
    assert load_target(str(REPO_ROOT / "examples" / "chat" / "app.py")) is chat.ws
    assert load_target("tests/asyncapi_apps.py:shop_app") is asyncapi_apps.shop


def test_a_file_outside_any_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lonely_app_for_cli.py").write_text(
        "from asyncws import AsyncWS\nws = AsyncWS(title='lonely')\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert load_target("lonely_app_for_cli.py").title == "lonely"


def test_a_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CLIError, match="no such file"):
        load_target("examples/chat/nope.py")
    assert main(["spec", "examples/chat/nope.py"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_spec_of_a_file_path_from_a_shell() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asyncws.cli", "spec", "examples/chat/app.py"],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == document_json(build_document(chat.ws))


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def test_there_are_commands() -> None:
    assert {"spec", "docs", "check", "codegen"} <= set(_commands())


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_help_has_an_example(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text.lower(), text
    examples = [line.strip() for line in text.splitlines() if line.strip().startswith("asyncws ")]
    assert any(line.startswith(f"asyncws {command} ") for line in examples), text


def test_the_top_level_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "asyncws spec examples/chat/app.py" in capsys.readouterr().out
