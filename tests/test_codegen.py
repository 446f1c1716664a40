"""Client generation (``asyncws.codegen``): determinism, lint/type checks of the generated
code, the committed examples, hostile descriptions and what the generator refuses.

The generated Python is checked with ``ruff format --check``, ``ruff check`` and
``mypy --strict`` twice: with ruff's and mypy's own defaults (the settings of a project that
vendors the client) and with this repository's configuration. The TypeScript is checked with
``tsc --strict``. Node (``node_modules/.bin/tsc``, from ``npm ci``) is needed for the latter;
without it the TypeScript checks skip, except under CI where that is an install bug.
"""

from __future__ import annotations

import ast
import copy
import difflib
import http.server
import importlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from asyncws.cli import main
from asyncws.codegen import CodegenError, describe, generate, render
from asyncws.codegen.layout import jsdoc, py_docstring, py_str
from asyncws.codes import FrameType
from tests.browser import unavailable
from tests.servers import REPO_ROOT

CHAT_SPEC = REPO_ROOT / "specs" / "chat.asyncapi.yaml"
ECHO_SPEC = REPO_ROOT / "specs" / "echo.asyncapi.yaml"
GOLDEN = REPO_ROOT / "tests" / "golden"
EXAMPLES = REPO_ROOT / "examples" / "clients"
TSC = REPO_ROOT / "node_modules" / ".bin" / "tsc"
REGENERATE = {
    "python": "asyncws codegen specs/chat.asyncapi.yaml --lang python --name chat "
    "-o examples/clients/python",
    "typescript": "asyncws codegen specs/chat.asyncapi.yaml --lang typescript --name chat "
    "-o examples/clients/typescript",
}

HOSTILE = (
    'Ends """ here */ and \\ backslash \\x00 ${x} {{ jinja }} {% raw %} \u2013 '
    '\u201cquoted\u201d \x07 tab\there <script>"\n\n\'\'\'\n*/ /* """"""\n\\'
)


def hostile_document() -> dict[str, Any]:
    """A document whose descriptions, names and literals try to break the generated code."""
    return {
        "asyncapi": "3.0.0",
        "x-asyncws-framing": "asyncws",  # the simple form of asyncws's envelope
        "info": {"title": 'Hostile */ title """', "version": "1.0.0", "description": HOSTILE},
        "servers": {"main": {"host": "example.com", "protocol": "wss", "description": HOSTILE}},
        "channels": {
            "ws": {
                "address": "/socket",
                "messages": {
                    "do": {"$ref": "#/components/messages/do"},
                    "done": {"$ref": "#/components/messages/done"},
                    "q": {"$ref": "#/components/messages/q"},
                },
            },
            "things": {
                "address": "things/{self}/{class}",
                "description": HOSTILE,
                "parameters": {
                    "self": {"description": HOSTILE},
                    "class": {"enum": ['a"b', "c'd"]},
                },
                "messages": {"thing": {"$ref": "#/components/messages/thing"}},
            },
        },
        "operations": {
            "do.it-now": {
                "action": "receive",
                "channel": {"$ref": "#/channels/ws"},
                "summary": HOSTILE,
                "messages": [{"$ref": "#/channels/ws/messages/do"}],
                "reply": {
                    "channel": {"$ref": "#/channels/ws"},
                    "messages": [{"$ref": "#/channels/ws/messages/done"}],
                },
            },
            "connect": {
                "action": "receive",
                "channel": {"$ref": "#/channels/ws"},
                "description": HOSTILE,
                "messages": [{"$ref": "#/channels/ws/messages/q"}],
            },
            "things": {
                "action": "send",
                "channel": {"$ref": "#/channels/things"},
                "description": HOSTILE,
                "messages": [{"$ref": "#/channels/things/messages/thing"}],
            },
        },
        "components": {
            "messages": {
                "do": {"name": "do", "payload": {"$ref": "#/components/schemas/Weird"}},
                "done": {
                    "name": "done",
                    "payload": {"type": "array", "items": {"$ref": "#/components/schemas/Weird"}},
                },
                "q": {
                    "name": 'q"uote */',
                    "payload": {"type": "string", "description": HOSTILE, "pattern": "^\"\\d+'$"},
                },
                "thing": {
                    "name": "thing */ \"'",
                    "description": HOSTILE,
                    "payload": {"$ref": "#/components/schemas/Field"},
                },
            },
            "schemas": {
                "Weird": {
                    "description": HOSTILE,
                    "type": "object",
                    "properties": {
                        "from": {"type": "string", "description": HOSTILE},
                        "class": {"type": "integer", "minimum": 0},
                        "json": {"type": "boolean"},
                        "model_config": {"type": "string"},
                        "a-b": {"type": "string", "default": 'x"""y */'},
                        "1st": {"type": "number", "default": 1e-05},
                        "_private": {"type": "string", "enum": ['"""', "*/", "\\"]},
                        "data": {"type": "string"},
                        "timeout": {"type": "number"},
                        "datetime": {
                            "type": "string",
                            "format": "date-time",
                            "default": "2024-01-01T00:00:00Z",
                        },
                        "nested": {
                            "type": "object",
                            "properties": {"deep": {"type": "string", "description": HOSTILE}},
                            "required": ["deep"],
                        },
                        "self": {"$ref": "#/components/schemas/Weird"},
                        "pets": {
                            "type": "array",
                            "items": {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/Cat"},
                                    {"$ref": "#/components/schemas/Dog"},
                                ],
                                "discriminator": "kind",
                            },
                        },
                        "maybe": {
                            "anyOf": [
                                {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Cat"},
                                        {"$ref": "#/components/schemas/Dog"},
                                    ],
                                    "discriminator": {"propertyName": "kind"},
                                },
                                {"type": "null"},
                            ]
                        },
                        "long_literal_field_name_to_force_breaking": {
                            "type": "string",
                            "enum": [
                                "alpha-value-number-one",
                                "beta-value-number-two",
                                "gamma-value-number-three",
                                "delta-value-four",
                            ],
                        },
                        "property_with_a_long_annotation_to_hoist": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "array",
                                "items": {"type": "string", "maxLength": 3},
                            },
                        },
                    },
                    "required": ["from", "class"],
                },
                "Cat": {
                    "type": "object",
                    "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}},
                    "required": ["kind"],
                },
                "Dog": {
                    "type": "object",
                    "properties": {
                        "kind": {"const": "dog"},
                        "good": {"type": "boolean", "default": True},
                    },
                    "required": ["kind"],
                },
                "Field": {
                    "type": "object",
                    "properties": {"Field": {"type": "string"}, "Literal": {"type": "string"}},
                },
            },
        },
    }


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


# name -> (document, --name): every client the checks below look at
DOCUMENTS: dict[str, tuple[Any, str | None]] = {
    "chat": (lambda: _load(CHAT_SPEC), "chat"),
    "echo": (lambda: _load(ECHO_SPEC), None),
    "hostile": (hostile_document, "hostile"),
    "shop": (lambda: _load(GOLDEN / "shop.asyncapi.json"), None),
    "keyed": (lambda: _load(GOLDEN / "keyed.asyncapi.json"), "keyed"),
    "minimal": (lambda: _load(GOLDEN / "minimal.asyncapi.json"), None),
    "headlines": (lambda: _topics_only(_load(ECHO_SPEC)), "headlines"),
}


def _topics_only(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without its requests: a client of topics only."""
    document["operations"] = {
        k: v for k, v in document["operations"].items() if v["action"] == "send"
    }
    return document


def _document(name: str) -> tuple[dict[str, Any], str | None]:
    factory, client_name = DOCUMENTS[name]
    return factory(), client_name


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every document's Python and TypeScript client in one directory."""
    out = tmp_path_factory.mktemp("clients")
    for name in DOCUMENTS:
        document, client_name = _document(name)
        generate(document, "python", out / "python", name=client_name)
        generate(document, "typescript", out / "typescript", name=client_name)
    return out


# -- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["python", "typescript"])
@pytest.mark.parametrize("name", ["chat", "echo", "hostile"])
def test_generation_is_deterministic(name: str, lang: str, tmp_path: Path) -> None:
    document, client_name = _document(name)
    first = generate(copy.deepcopy(document), lang, tmp_path / "a", name=client_name)
    second = generate(copy.deepcopy(document), lang, tmp_path / "b", name=client_name)
    assert [p.relative_to(tmp_path / "a") for p in first] == [
        p.relative_to(tmp_path / "b") for p in second
    ]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a


def test_generation_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    script = (
        "import sys, yaml\n"
        "from pathlib import Path\n"
        "from asyncws.codegen import generate\n"
        "doc = yaml.safe_load(Path(sys.argv[1]).read_text())\n"
        "generate(doc, 'python', Path(sys.argv[2]), name='chat')\n"
        "generate(doc, 'typescript', Path(sys.argv[2]), name='chat')\n"
    )
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-c", script, str(CHAT_SPEC), str(out)],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            timeout=120,
        )
        outputs.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert outputs[0] == outputs[1]


# -- the generated Python ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def python_checks(generated: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """ruff and mypy over every generated package, with their defaults and with this repo's
    configuration (run once: each test below looks at its package)."""
    out = generated / "python"
    (out / "empty.toml").write_text("", encoding="utf-8")
    repo_config = str(REPO_ROOT / "pyproject.toml")
    ruff, mypy = _tool("ruff"), _tool("mypy")
    return {
        "format": _run([ruff, "format", "--isolated", "--check", "--diff", "."], out),
        "format-repo": _run(
            [ruff, "format", "--config", repo_config, "--check", "--diff", "."], out
        ),
        "lint": _run([ruff, "check", "--isolated", "--output-format", "concise", "."], out),
        "lint-repo": _run(
            [ruff, "check", "--config", repo_config, "--output-format", "concise", "."], out
        ),
        "mypy": _run(
            [mypy, "--strict", "--config-file", str(out / "empty.toml"), "--no-incremental", "."],
            out,
        ),
        "mypy-repo": _run(
            [mypy, "--strict", "--config-file", repo_config, "--no-incremental", "."], out
        ),
    }


def _package(name: str) -> str:
    document, client_name = _document(name)
    from asyncws.codegen.python import package_name

    return package_name(describe(document, client_name))


def _assert_clean(result: subprocess.CompletedProcess[str], package: str, what: str) -> None:
    """``result`` (of a run over every package) found nothing in ``package``."""
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return
    mine = [line for line in output.splitlines() if package in line]
    assert not mine, f"{what} on {package}:\n{output}"
    others = [_package(name) for name in DOCUMENTS]
    assert any(p in output for p in others), f"{what} failed:\n{output}"


@pytest.mark.parametrize("name", list(DOCUMENTS))
@pytest.mark.parametrize("check", ["format", "format-repo", "lint", "lint-repo"])
def test_python_client_passes_ruff(
    name: str, check: str, python_checks: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    _assert_clean(python_checks[check], _package(name), f"ruff {check}")


@pytest.mark.parametrize("name", list(DOCUMENTS))
@pytest.mark.parametrize("check", ["mypy", "mypy-repo"])
def test_python_client_passes_mypy_strict(
    name: str, check: str, python_checks: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = python_checks[check]
    assert "error:" in result.stdout or "Success" in result.stdout, result.stdout + result.stderr
    _assert_clean(result, _package(name), check)


def test_python_hostile_descriptions_survive(generated: Path) -> None:
    """The generated modules import, and the descriptions are their docstrings, intact."""
    sys.path.insert(0, str(generated / "python"))
    try:
        module = importlib.import_module("hostile_client")
        expected = py_docstring_text(HOSTILE)
        assert module.Weird.__doc__ is not None
        assert _normalize(module.Weird.__doc__) == _normalize(expected)
        fields = module.Weird.model_fields
        assert fields["from_"].alias == "from"
        assert fields["a_b"].default == 'x"""y */'
        weird = module.Weird.model_validate(
            {"from": "x", "class": 1, "pets": [{"kind": "cat"}, {"kind": "dog"}], "maybe": None}
        )
        assert [type(p).__name__ for p in weird.pets] == ["Cat", "Dog"]
        dumped = weird.model_dump(mode="json")
        assert dumped["from"] == "x" and dumped["a-b"] == 'x"""y */' and "json" not in dumped
        assert module.HostileClient.endpoint == "/socket"
    finally:
        sys.path.remove(str(generated / "python"))
        for key in [k for k in sys.modules if k.split(".")[0] == "hostile_client"]:
            del sys.modules[key]


def test_python_usage_example_is_indented_without_operations(generated: Path) -> None:
    text = (generated / "python" / "headlines_client" / "client.py").read_text(encoding="utf-8")
    example = text[text.index("    async with HeadlinesClient(") :].split("\n\n")[0]
    assert example.splitlines()[1:] == [
        "        async with client.subscribe_news(...) as events:",
        "            async for event in events:",
        "                ...",
    ]


# -- the Python runtime: one static file ------------------------------------------------------

RUNTIME = REPO_ROOT / "templates" / "clients" / "python" / "_runtime.py"


def test_python_runtime_is_the_static_file(generated: Path) -> None:
    """Every client's ``_runtime.py`` is templates/clients/python/_runtime.py, byte for byte."""
    runtimes = sorted((generated / "python").glob("*/_runtime.py"))
    assert len(runtimes) == len(DOCUMENTS)
    assert {p.read_bytes() for p in runtimes} == {RUNTIME.read_bytes()}


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def test_python_method_names_never_shadow_the_runtime() -> None:
    """The names an operation, a topic method or an endpoint parameter may not take are
    exactly what the runtime's `BaseClient` and `ClientOptions` define."""
    from asyncws.codegen.python.naming import CLIENT_ATTRS, OPTIONS

    tree = ast.parse(RUNTIME.read_text(encoding="utf-8"))
    base = _class(tree, "BaseClient")
    members = set()
    for node in ast.walk(base):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node in base.body:
            members.add(node.name)
        elif isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            for target in targets:
                if isinstance(target, ast.Name) and node in base.body:
                    members.add(target.id)
                elif (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    members.add(target.attr)
    public = {m for m in members if not m.startswith("_")}
    assert public == CLIENT_ATTRS
    options = _class(tree, "ClientOptions")
    fields = {n.target.id for n in options.body if isinstance(n, ast.AnnAssign)}
    assert isinstance(fields, set) and fields == OPTIONS
    init = next(n for n in base.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert {a.arg for a in init.args.kwonlyargs} == OPTIONS


def test_python_header_takes_the_frame_types_of_the_protocol(generated: Path) -> None:
    sys.path.insert(0, str(generated / "python"))
    try:
        header = importlib.import_module("chat_client._header")
        package = importlib.import_module("chat_client")
        assert {FrameType.ACK, FrameType.REPLY, FrameType.ERROR} == header.ANSWERS
        assert (header.ERROR, header.SUBSCRIBE, header.UNSUBSCRIBE) == (
            FrameType.ERROR,
            FrameType.SUBSCRIBE,
            FrameType.UNSUBSCRIBE,
        )
        assert header.ClientError is package.ChatClientError
        assert header.ServerError is package.ChatError
        assert header.LOGGER == "chat_client"
    finally:
        sys.path.remove(str(generated / "python"))
        for key in [k for k in sys.modules if k.split(".")[0] == "chat_client"]:
            del sys.modules[key]


def py_docstring_text(text: str) -> str:
    """What a description becomes in a docstring: control characters dropped, tabs expanded."""
    from asyncws.codegen.layout import clean_text

    return clean_text(text)


def _normalize(text: str) -> str:
    return " ".join(text.split())


# -- the generated TypeScript -----------------------------------------------------------------


def _require_tsc() -> str:
    if TSC.exists():
        return str(TSC)
    if os.environ.get("CI"):
        pytest.fail("node_modules/.bin/tsc is missing but CI is set: run npm ci (scripts/install)")
    pytest.skip("TypeScript is not installed (npm ci)")


@pytest.fixture(scope="module")
def tsc_result(generated: Path) -> subprocess.CompletedProcess[str]:
    tsc = _require_tsc()
    files = sorted(str(p) for p in (generated / "typescript").glob("*.ts"))
    return _run(
        [tsc, "--strict", "--noEmit", "--target", "es2022", "--lib", "es2022,dom", *files],
        generated,
    )


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_typescript_client_compiles_strict(
    name: str, tsc_result: subprocess.CompletedProcess[str]
) -> None:
    from asyncws.codegen.typescript import module_name

    document, client_name = _document(name)
    module = module_name(describe(document, client_name))
    output = tsc_result.stdout + tsc_result.stderr
    assert tsc_result.returncode == 0 or "error TS" in output, output
    problems = [line for line in output.splitlines() if module in line]
    assert not problems, output


def test_typescript_client_compiles_with_extra_strict_flags(generated: Path) -> None:
    """Stricter than --strict, as a project that vendors the client may be."""
    tsc = _require_tsc()
    files = sorted(str(p) for p in (generated / "typescript").glob("*.ts"))
    result = _run(
        [
            tsc,
            "--strict",
            "--noEmit",
            "--target",
            "es2022",
            "--lib",
            "es2022,dom",
            "--noUnusedLocals",
            "--noUnusedParameters",
            "--noImplicitReturns",
            "--exactOptionalPropertyTypes",
            "--noUncheckedIndexedAccess",
            "--noPropertyAccessFromIndexSignature",
            *files,
        ],
        generated,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_typescript_hostile_descriptions_stay_comments(generated: Path) -> None:
    text = (generated / "typescript" / "hostile-client.ts").read_text(encoding="utf-8")
    # a comment never closes early: every "*/" of a description is escaped
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("/**", "*")) and "*/" in stripped:
            assert stripped.endswith("*/") and stripped.count("*/") == 1, line
    assert 'type: "thing */ \\"\'";' in text


# -- the committed examples (drift check) -----------------------------------------------------


@pytest.mark.parametrize("lang", ["python", "typescript"])
def test_committed_examples_are_up_to_date(lang: str) -> None:
    files = render(_load(CHAT_SPEC), lang, name="chat")
    root = EXAMPLES / lang
    committed = {
        str(p.relative_to(root)): p.read_text(encoding="utf-8")
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.name != "README.md"
    }
    problems: list[str] = []
    for relative in sorted(set(files) | set(committed)):
        if relative not in committed:
            problems.append(f"missing: examples/clients/{lang}/{relative}")
        elif relative not in files:
            problems.append(f"not generated any more: examples/clients/{lang}/{relative}")
        elif committed[relative] != files[relative]:
            diff = difflib.unified_diff(
                committed[relative].splitlines(keepends=True),
                files[relative].splitlines(keepends=True),
                f"examples/clients/{lang}/{relative} (committed)",
                f"examples/clients/{lang}/{relative} (generated)",
            )
            problems.append("".join(diff))
    assert not problems, (
        f"examples/clients/{lang} is out of date; regenerate it with\n\n    "
        f"{REGENERATE[lang]}\n\n" + "\n".join(problems)
    )


# -- literals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        HOSTILE,
        'ends with a quote"',
        '"starts with a quote',
        '""""""',
        "\\",
        "a\\",
        "\u2028line separator\u2029",
        "\U0001f600 emoji",
        "",
    ],
)
def test_python_literals_round_trip(text: str) -> None:
    assert eval(py_str(text)) == text
    if text.strip():
        code = f"def f():\n    {py_docstring(text, 4)}\n"
        namespace: dict[str, Any] = {}
        exec(compile(code, "<doc>", "exec"), namespace)
        assert _normalize(namespace["f"].__doc__) == _normalize(py_docstring_text(text))


def test_jsdoc_never_closes_early() -> None:
    comment = jsdoc("a */ b\n*/\n/* c */", 2)
    assert comment.startswith("/**") and comment.endswith("*/")
    assert comment.count("*/") == 1


# -- what the generator reads, warns about and refuses ----------------------------------------


def test_chat_description() -> None:
    client = describe(_load(CHAT_SPEC), "chat")
    assert client.client_class == "ChatClient"
    assert client.endpoint == "/ws"
    assert [o.id for o in client.operations] == ["post", "join", "typing", "direct", "whoami"]
    assert [(t.address, t.name, t.event_type) for t in client.topics] == [
        ("rooms/{room}", "rooms", "RoomsEvent"),
        ("rooms/{room}/typing", "rooms_typing", "TypingEvent"),
        ("rooms/{room}/members", "rooms_members", "RoomsMembersEvent"),
        ("users/{user}/inbox", "users_inbox", "DirectMessageEvent"),
    ]
    assert [t.address for t in client.topics if t.presence] == ["rooms/{room}/members"]
    codes = {e.code: e.class_name for e in client.error_codes}
    assert codes["validation_error"] == "ValidationFailed"
    assert codes["forbidden"] == "Forbidden"
    assert client.warnings == []


def test_echo_description_simple_shape() -> None:
    client = describe(_load(ECHO_SPEC))
    assert client.client_class == "EchoClient"
    echo, shout = client.operations
    assert (echo.frame_type, shout.frame_type) == ("echo", "shout")
    assert echo.reply is not None and shout.reply is None  # ack only
    assert [e.frame_type for e in client.topics[0].events] == ["headline"]
    assert client.topics[0].params[0].enum == ("world", "sport")
    assert any("no error frame" in w for w in client.warnings)


def _minimal(**changes: Any) -> dict[str, Any]:
    document = {
        "asyncapi": "3.0.0",
        "info": {"title": "T", "version": "1"},
        "channels": {
            "ws": {"address": "/ws", "messages": {"ping": {"$ref": "#/components/messages/ping"}}},
            "news": {
                "address": "news",
                "messages": {"item": {"$ref": "#/components/messages/item"}},
            },
        },
        "operations": {
            "ping": {
                "action": "receive",
                "channel": {"$ref": "#/channels/ws"},
                "messages": [{"$ref": "#/channels/ws/messages/ping"}],
            },
            "news": {
                "action": "send",
                "channel": {"$ref": "#/channels/news"},
                "messages": [{"$ref": "#/channels/news/messages/item"}],
            },
        },
        "components": {
            "messages": {
                "ping": {"name": "ping", "payload": {"type": "object"}},
                "item": {"name": "item", "payload": {"type": "string"}},
            }
        },
    }
    for path, value in changes.items():
        target: Any = document
        *parents, last = path.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return document


def test_refuses_documents_without_a_websocket_server() -> None:
    document = _minimal(servers={"kafka": {"host": "k:9092", "protocol": "kafka"}})
    with pytest.raises(CodegenError, match="no server speaks ws or wss"):
        describe(document)


def test_warns_about_servers_of_other_protocols() -> None:
    document = _minimal(
        servers={
            "kafka": {"host": "k:9092", "protocol": "kafka"},
            "web": {"host": "example.com", "protocol": "wss", "pathname": "/api"},
        }
    )
    client = describe(document)
    assert [(s.name, s.url) for s in client.servers] == [("web", "wss://example.com/api")]
    assert any("kafka" in w for w in client.warnings)


def test_refuses_non_json_default_content_type() -> None:
    with pytest.raises(CodegenError, match="defaultContentType 'application/xml'"):
        describe(_minimal(defaultContentType="application/xml"))


def test_leaves_out_non_json_messages_and_foreign_schema_formats() -> None:
    document = _minimal()
    document["components"]["messages"]["item"]["contentType"] = "application/octet-stream"
    document["components"]["messages"]["ping"]["payload"] = {
        "schemaFormat": "application/vnd.apache.avro;version=1.9.0",
        "schema": {"type": "record", "name": "Ping", "fields": []},
    }
    document["components"]["messages"]["pong"] = {"name": "pong", "payload": {"type": "object"}}
    document["channels"]["ws"]["messages"]["pong"] = {"$ref": "#/components/messages/pong"}
    document["operations"]["pong"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/ws"},
        "messages": [{"$ref": "#/channels/ws/messages/pong"}],
    }
    client = describe(document)
    assert [o.id for o in client.operations] == ["pong"]
    assert client.topics == []
    text = "\n".join(client.warnings)
    assert "application/octet-stream" in text and "avro" in text
    assert "operation 'ping' is left out" in text and "topic 'news'" in text


def test_refuses_several_endpoints() -> None:
    document = _minimal()
    document["channels"]["other"] = {"address": "/other"}
    document["operations"]["other"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/other"},
        "messages": [{"$ref": "#/channels/ws/messages/ping"}],
    }
    with pytest.raises(CodegenError, match="several channels"):
        describe(document)


def test_refuses_asyncapi_2() -> None:
    with pytest.raises(CodegenError, match=r"only 3\.x"):
        describe({"asyncapi": "2.6.0", "info": {"title": "x", "version": "1"}, "channels": {}})


def test_warns_about_headers_and_unsupported_keywords() -> None:
    document = _minimal()
    document["components"]["messages"]["ping"]["headers"] = {"type": "object"}
    document["components"]["messages"]["ping"]["payload"] = {
        "type": "object",
        "properties": {"a": {"type": "string", "not": {"const": "x"}}},
        "patternProperties": {"^x": {"type": "string"}},
    }
    text = "\n".join(describe(document).warnings)
    assert "declares headers" in text
    assert "'not' is not checked" in text and "'patternProperties' is not checked" in text


def test_unsupported_security_scheme_is_a_warning() -> None:
    document = _minimal()
    document["components"]["securitySchemes"] = {"cert": {"type": "X509"}}
    assert any("security scheme 'cert'" in w for w in describe(document).warnings)


# -- the command line -------------------------------------------------------------------------


def test_cli_codegen_writes_the_client_and_prints_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["codegen", str(ECHO_SPEC), "--lang", "python", "-o", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: the document describes no error frame" in err
    assert "EchoClient" in err
    assert (tmp_path / "echo_client" / "client.py").is_file()
    assert (
        main(
            [
                "codegen",
                str(CHAT_SPEC),
                "--lang",
                "typescript",
                "--name",
                "chat",
                "-o",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert (tmp_path / "chat-client.ts").is_file()


def test_cli_codegen_refuses_a_blocking_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        yaml.safe_dump(_minimal(servers={"mq": {"host": "x", "protocol": "amqp"}})),
        encoding="utf-8",
    )
    assert main(["codegen", str(spec), "--lang", "python", "-o", str(tmp_path / "out")]) == 2
    assert "server 'mq' uses protocol 'amqp'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/spec.yaml", "data:,{}"])
def test_cli_codegen_refuses_other_url_schemes(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["codegen", url, "--lang", "python", "-o", str(tmp_path)]) == 2
    assert "only files and http(s) URLs" in capsys.readouterr().err


@pytest.fixture
def spec_server() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 serving the chat document (and a redirect to ftp:)."""
    body = (REPO_ROOT / "tests" / "golden" / "chat.asyncapi.json").read_bytes()
    paths: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "ftp://127.0.0.1/asyncapi.json")
                self.end_headers()
                return
            if self.path != "/asyncapi.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_cli_codegen_fetches_an_http_url(
    spec_server: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, paths = spec_server
    status = main(
        [
            "codegen",
            f"{base}/asyncapi.json",
            "--lang",
            "python",
            "--name",
            "chat",
            "-o",
            str(tmp_path),
        ]
    )
    assert status == 0, capsys.readouterr().err
    assert paths == ["/asyncapi.json"]
    assert "class ChatClient(BaseClient)" in (tmp_path / "chat_client" / "client.py").read_text()

    assert main(["codegen", f"{base}/missing", "--lang", "python", "-o", str(tmp_path)]) == 2
    assert "HTTP 404" in capsys.readouterr().err
    assert main(["codegen", f"{base}/redirect", "--lang", "python", "-o", str(tmp_path)]) == 2
    assert "only http(s) is fetched" in capsys.readouterr().err


def test_cli_codegen_unreachable_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}/asyncapi.json"
    assert main(["codegen", url, "--lang", "python", "-o", str(tmp_path)]) == 2
    assert "cannot fetch" in capsys.readouterr().err


def test_ts_compiler_is_pinned() -> None:
    import json

    package = json.loads((REPO_ROOT / "package.json").read_text(encoding="utf-8"))
    version = package["devDependencies"]["typescript"]
    assert version[0].isdigit(), "pin an exact typescript version (npm install --save-exact)"


# -- clients in the document's own framing ------------------------------------------------------


def test_framed_clients_survive_hostile_text(tmp_path: Path) -> None:
    """The hostile document read in its own framing: both clients still compile and lint."""
    from asyncws.codegen import describe_any

    document = hostile_document()
    del document["x-asyncws-framing"]
    client = describe_any(document, "hostile", framing="document")
    py = generate(client, "python", tmp_path / "python")
    ts = generate(client, "typescript", tmp_path / "typescript")
    assert [p.name for p in py] == ["hostile_client.py"]
    result = _run([_tool("ruff"), "check", "--select", "E9,F", str(py[0])], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    result = _run([sys.executable, "-c", "import hostile_client"], tmp_path / "python")
    assert result.returncode == 0, result.stderr
    tsc = REPO_ROOT / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        unavailable("node_modules/.bin/tsc is missing (npm ci)")
    result = _run(
        [str(tsc), "--strict", "--target", "es2022", "--lib", "es2022,dom", "--noEmit", str(ts[0])],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
