"""The import rules of docs/architecture.md: the specification layer reads neutral
descriptions and documents, never the app layer; the framing layer stays pure. Inside the
specification layer: the document builders and the readers do not import each other, the
client description imports none of its readers or renderers, the renderers read only the
description, and the Python client's runtime (shipped as it is) imports nothing of asyncws.
Below it: the error policy sits below the connection, the connection below the manager, the
manager below the app layer, whose parts reach the manager only through `WebSocketManager`.
Spec-first apps are ordinary apps: `asyncws.spec` reads documents without importing the app
layer, `app.py` imports none of the modules above it (not even inside a function), nothing
subclasses `AsyncWS`, and no asyncws module imports another that imports it back."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "asyncws"
APP_LAYER = {"asyncws.app", "asyncws.spec_first", "asyncws.document_app"}


def _imports(path: Path) -> set[str]:
    """Absolute names of what ``path`` imports outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


SPEC_LAYER = sorted(
    [
        *PACKAGE.glob("asyncapi/**/*.py"),
        *PACKAGE.glob("codegen/**/*.py"),
        *PACKAGE.glob("spec/*.py"),
    ]
)


@pytest.mark.parametrize("path", SPEC_LAYER, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_specification_layer_does_not_import_the_app_layer(path: Path) -> None:
    assert _imports(path) & APP_LAYER == set()


def test_the_app_does_not_import_the_specification_layer_at_import_time() -> None:
    tree = ast.parse((PACKAGE / "app.py").read_text(encoding="utf-8"))
    top = {
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not {m for m in top if m.startswith(("asyncapi", "spec_first", "codegen"))}


def test_the_framing_layer_stays_below_the_app() -> None:
    allowed = {"asyncws.codes", "asyncws.exceptions", "asyncws.protocol", "asyncws.frames"}
    own = {m for m in _imports(PACKAGE / "framing.py") if m.startswith("asyncws.")}
    assert {m.rsplit(".", 1)[0] if m not in allowed else m for m in own} <= allowed | {"asyncws"}


def _own(path: Path, prefix: str) -> set[str]:
    """The modules under ``prefix`` that ``path`` imports (``from x import name`` counts as
    importing ``x``, and ``x.name`` when that is a module)."""
    found = set()
    for name in _imports(path):
        if not name.startswith(prefix):
            continue
        module = PACKAGE.parent / Path(*name.split("."))
        if module.with_suffix(".py").is_file() or (module / "__init__.py").is_file():
            found.add(name)
    return found


def _modules(*names: str) -> list[Path]:
    return [PACKAGE / name for name in names]


# the AsyncAPI document builders (a description -> a document) and the readers of documents
BUILDERS = {
    f"asyncws.asyncapi.{m}"
    for m in ("v3", "framed_v3", "keys", "bindings", "envelope", "channels", "components")
}
READERS = {"asyncws.asyncapi.reader", "asyncws.asyncapi.wire", "asyncws.asyncapi.lint"}


@pytest.mark.parametrize("name", sorted(BUILDERS), ids=lambda n: n.rsplit(".", 1)[-1])
def test_document_builders_do_not_read_documents(name: str) -> None:
    path = PACKAGE.parent / (name.replace(".", "/") + ".py")
    assert _own(path, "asyncws.asyncapi") & (READERS | {"asyncws.asyncapi"}) == set()


@pytest.mark.parametrize("name", sorted(READERS), ids=lambda n: n.rsplit(".", 1)[-1])
def test_document_readers_do_not_build_documents(name: str) -> None:
    path = PACKAGE.parent / (name.replace(".", "/") + ".py")
    assert _own(path, "asyncws.asyncapi") & (BUILDERS | {"asyncws.asyncapi"}) == set()


DESCRIPTION = {"asyncws.codegen.model", "asyncws.codegen.typetree", "asyncws.codegen.names"}
CLIENT_READERS = {f"asyncws.codegen.{m}" for m in ("document", "schemas", "operations", "reader")}


@pytest.mark.parametrize(
    "path",
    _modules("codegen/model.py", "codegen/typetree.py", "codegen/names.py"),
    ids=lambda p: p.name,
)
def test_the_client_description_imports_only_itself(path: Path) -> None:
    # and the exception base every layer shares (`CodegenError` is an `AsyncWSError`)
    assert _own(path, "asyncws.") <= DESCRIPTION | {"asyncws.exceptions"}


def test_the_exception_base_imports_only_the_codes() -> None:
    assert _own(PACKAGE / "exceptions.py", "asyncws.") <= {"asyncws.codes"}


RENDERERS = sorted([*PACKAGE.glob("codegen/python/*.py"), PACKAGE / "codegen" / "typescript.py"])


@pytest.mark.parametrize("path", RENDERERS, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_client_renderers_read_only_the_description(path: Path) -> None:
    own = _own(path, "asyncws.")
    assert own & (CLIENT_READERS | {"asyncws.asyncapi"}) == set()
    assert not {m for m in own if m.startswith("asyncws.asyncapi.")}


@pytest.mark.parametrize("name", sorted(CLIENT_READERS), ids=lambda n: n.rsplit(".", 1)[-1])
def test_the_client_readers_do_not_render(name: str) -> None:
    path = PACKAGE.parent / (name.replace(".", "/") + ".py")
    renderers = ("asyncws.codegen.python", "asyncws.codegen.typescript", "asyncws.codegen.layout")
    assert not {m for m in _own(path, "asyncws.codegen") if m.startswith(renderers)}


def test_the_python_client_runtime_imports_nothing_of_asyncws() -> None:
    runtime = PACKAGE.parent / "templates" / "clients" / "python" / "_runtime.py"
    tree = ast.parse(runtime.read_text(encoding="utf-8"))
    modules = {
        ("." * node.level) + (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    local = {m for m in modules if m.startswith(".")}
    assert local == {"._header", ".errors"}
    assert not {m for m in modules if m.split(".")[0] == "asyncws"}
    third_party = {m.split(".")[0] for m in modules - local} - set(sys.stdlib_module_names)
    assert third_party == {"pydantic", "pydantic_core", "websockets"}


# -- the connection, manager and app layers (docs/architecture.md, "Modules and imports") ----

MANAGER_PARTS = {"registry", "channels", "bridge", "claims", "seed"}
APP_PARTS = {"endpoint", "dispatch", "calls", "compiled", "front_door"}
UPPER = {"app", *APP_PARTS, "spec_first", "document_app", "asyncapi", "codegen", "cli"}


def _runtime_deps(name: str) -> set[str]:
    """The asyncws modules ``asyncws/{name}.py`` imports at runtime, by short name
    (``asyncws.brokers.redis`` is ``brokers``; TYPE_CHECKING imports do not count)."""
    found = set()
    for imported in _imports(PACKAGE / f"{name}.py"):
        parts = imported.split(".")
        if parts[0] != "asyncws" or len(parts) < 2:
            continue
        if (PACKAGE / f"{parts[1]}.py").exists() or (PACKAGE / parts[1]).is_dir():
            found.add(parts[1])
    return found


def _third_party(name: str) -> set[str]:
    return {m.split(".")[0] for m in _imports(PACKAGE / f"{name}.py")} - {"asyncws", "__future__"}


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("channels", set()),
        ("registry", {"channels", "exceptions", "limits", "topics"}),
    ],
)
def test_the_pure_parts_of_the_manager_do_no_io(module: str, allowed: set[str]) -> None:
    assert _runtime_deps(module) <= allowed
    assert _third_party(module) <= {"re", "logging", "typing", "urllib"}


def test_the_error_policy_sits_below_the_connection() -> None:
    # the connection, the seed dialect and the app layer all use it: it uses none of them
    assert _runtime_deps("error_policy") <= {"codes", "exceptions", "handshake"}


def test_the_connection_does_not_import_its_manager() -> None:
    # it reports through `ConnectionEvents`; `manager` is imported for type checking only
    assert _runtime_deps("connection") & ({"manager", *MANAGER_PARTS} | UPPER) == set()


@pytest.mark.parametrize("module", sorted({"manager", *MANAGER_PARTS}))
def test_the_manager_layer_does_not_import_the_app_layer(module: str) -> None:
    assert _runtime_deps(module) & UPPER == set()


@pytest.mark.parametrize("module", sorted(APP_PARTS))
def test_the_parts_of_the_app_do_not_import_app_py(module: str) -> None:
    # app.py delegates to them: an import back would be a cycle (AsyncWS is a type hint there)
    assert "app" not in _runtime_deps(module)


@pytest.mark.parametrize("module", sorted({"app", *APP_PARTS}))
def test_the_app_layer_reaches_the_manager_through_its_facade(module: str) -> None:
    assert _runtime_deps(module) & MANAGER_PARTS == set()


# -- spec-first apps are ordinary apps (docs/architecture.md, "The specification layer") -----

ABOVE_THE_APP = {"spec_first", "document_app", "cli", "serve", "targets"}
APP_LAYER_MODULES = {"app", *APP_PARTS, *ABOVE_THE_APP}


def test_app_py_imports_nothing_above_it_even_lazily() -> None:
    # `_imports` walks function bodies too: `from_asyncapi` reads the document through
    # `asyncws.spec`, which imports no app; the uvicorn check is `server_check.py`, below it
    assert _runtime_deps("app") & ABOVE_THE_APP == set()


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("spec/*.py")), ids=lambda p: p.name)
def test_the_document_readers_do_not_import_the_app_layer(path: Path) -> None:
    own = {m.split(".")[1] for m in _own(path, "asyncws.") if m.count(".") >= 1}
    assert own & APP_LAYER_MODULES == set()


def test_the_server_check_sits_below_the_app() -> None:
    assert _runtime_deps("server_check") == set()


def test_nothing_subclasses_asyncws() -> None:
    # an app built from a document is an `AsyncWS` given a spec, not a subclass overriding it
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", None)) for b in node.bases}
                if "AsyncWS" in bases:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert found == []


def _house_report() -> Any:
    """scripts/house_report.py, which counts the import cycles of a checkout for the record."""
    path = PACKAGE.parent / "scripts" / "house_report.py"
    spec = importlib.util.spec_from_file_location("house_report", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycles_among_asyncws_modules() -> None:
    # every import counts, at the top of a module or inside a function (not TYPE_CHECKING)
    report = _house_report()
    root = PACKAGE.parent
    files = report._package_files(root)
    modules = {report._module_name(root, p) for p in files}
    graph = {report._module_name(root, p): report._imports(root, p, modules) for p in files}
    assert report._cycles(graph) == []
    # and the finder finds one when there is one
    graph["asyncws.codes"] = graph["asyncws.codes"] | {"asyncws.app"}
    (found,) = report._cycles(graph)
    assert {"asyncws.app", "asyncws.codes"} <= set(found)


def test_history_uses_only_the_managers_public_surface() -> None:
    # `topic_channel`, `deliver_local`, `publish_failed`, `spawn` (and its public attributes)
    tree = ast.parse((PACKAGE / "history.py").read_text(encoding="utf-8"))
    private = sorted(
        f"{ast.unparse(node.value)}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and ast.unparse(node.value).split(".")[-1] == "manager"
    )
    assert private == []
