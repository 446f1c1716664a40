"""The ``asyncws`` command line: spec, docs, check and the codegen hook."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asyncws.asyncapi import build_document, document_json, document_yaml
from asyncws.cli import CLIError, find_app, load_target, main
from examples.chat import app as chat
from tests import asyncapi_apps
from tests.servers import REPO_ROOT

CHAT_SPEC = str(REPO_ROOT / "specs" / "chat.asyncapi.yaml")


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)


def test_spec_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "examples.chat.app:ws"]) == 0
    assert capsys.readouterr().out == document_json(build_document(chat.ws))


def test_spec_to_a_yaml_file_with_a_server(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "chat.yaml"
    assert (
        main(["spec", "examples.chat.app:app", "-o", str(out), "--server-url", "wss://x.io"]) == 0
    )
    document = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert document["servers"]["default"] == {"host": "x.io", "protocol": "wss"}
    assert out.read_text(encoding="utf-8") == document_yaml(
        build_document(chat.ws, server_url="wss://x.io")
    )


def test_targets() -> None:
    assert load_target("examples.chat.app:ws") is chat.ws
    assert load_target("examples.chat.app:app") is chat.ws  # found through the FastAPI app
    assert load_target("examples.chat.app") is chat.ws  # the module's only AsyncWS
    assert load_target("tests.asyncapi_apps:shop_app") is asyncapi_apps.shop  # under a prefix
    with pytest.raises(CLIError, match="holds 3 AsyncWS apps"):
        load_target("tests.asyncapi_apps")
    with pytest.raises(CLIError, match="no attribute"):
        load_target("examples.chat.app:nope")
    with pytest.raises(CLIError, match="cannot import"):
        load_target("no.such.module:app")
    with pytest.raises(CLIError, match="serves none"):
        find_app(object())


def test_bad_target_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "examples.chat.app:nope"]) == 2
    assert "asyncws: module 'examples.chat.app' has no attribute" in capsys.readouterr().err


def test_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", CHAT_SPEC, "examples.chat.app:app"]) == 0
    assert "implements" in capsys.readouterr().out


def test_check_reports_differences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = yaml.safe_load(Path(CHAT_SPEC).read_text(encoding="utf-8"))
    changed = copy.deepcopy(document)
    changed["components"]["schemas"]["Post"]["required"] = ["room"]
    changed["operations"]["shout"] = copy.deepcopy(changed["operations"]["post"])
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(changed), encoding="utf-8")
    assert main(["check", str(path), "examples.chat.app:ws"]) == 1
    out = capsys.readouterr().out
    assert "does not implement" in out
    assert "/operations/post/messages/0/properties/data/required: " in out
    assert "/operations/shout: missing" in out


def test_check_with_an_unreadable_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "no-such-file.yaml", "examples.chat.app:ws"]) == 2
    assert "cannot read no-such-file.yaml" in capsys.readouterr().err


def test_docs_writes_the_files(tmp_path: Path) -> None:
    assert main(["docs", "examples.chat.app:ws", "-o", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "asyncapi.json").read_text(encoding="utf-8")) == (
        build_document(chat.ws)
    )
    assert (tmp_path / "asyncapi.yaml").is_file()
    assert "<html" in (tmp_path / "index.html").read_text(encoding="utf-8")


def test_codegen_writes_a_client(tmp_path: Path) -> None:
    assert main(["codegen", CHAT_SPEC, "--lang", "python", "-o", str(tmp_path)]) == 0
    assert any(path.name == "client.py" for path in tmp_path.rglob("*.py"))


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["spec"])
    assert info.value.code == 2


def test_python_dash_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "asyncws.cli", "--help"],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for command in ("spec", "docs", "check", "codegen"):
        assert command in result.stdout
