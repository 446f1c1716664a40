"""The import rules of docs/architecture.md: the specification layer reads neutral
descriptions and documents, never the app layer; the framing layer stays pure; the error
policy sits below the connection, the connection below the manager, the manager below the
app layer, whose parts reach the manager only through `WebSocketManager`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "asyncws"
APP_LAYER = {"asyncws.app", "asyncws.spec_first", "asyncws.document_app"}
SHIM = PACKAGE / "asyncapi" / "spec_first.py"


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
    p for p in [*PACKAGE.glob("asyncapi/*.py"), *PACKAGE.glob("codegen/*.py")] if p != SHIM
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


# -- the connection, manager and app layers (docs/architecture.md, "Modules and imports") ----

MANAGER_PARTS = {"registry", "channels", "bridge", "claims", "seed"}
APP_PARTS = {"endpoint", "dispatch", "calls", "compiled"}
UPPER = {"app", *APP_PARTS, "spec_first", "document_app", "asyncapi", "codegen", "cli"}


def _own(name: str) -> set[str]:
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
    assert _own(module) <= allowed
    assert _third_party(module) <= {"re", "logging", "typing", "urllib"}


def test_the_error_policy_sits_below_the_connection() -> None:
    # the connection, the seed dialect and the app layer all use it: it uses none of them
    assert _own("error_policy") <= {"codes", "exceptions", "handshake"}


def test_the_connection_does_not_import_its_manager() -> None:
    # it reports through `ConnectionEvents`; `manager` is imported for type checking only
    assert _own("connection") & ({"manager", *MANAGER_PARTS} | UPPER) == set()


@pytest.mark.parametrize("module", sorted({"manager", *MANAGER_PARTS}))
def test_the_manager_layer_does_not_import_the_app_layer(module: str) -> None:
    assert _own(module) & UPPER == set()


@pytest.mark.parametrize("module", sorted(APP_PARTS))
def test_the_parts_of_the_app_do_not_import_app_py(module: str) -> None:
    # app.py delegates to them: an import back would be a cycle (AsyncWS is a type hint there)
    assert "app" not in _own(module)


@pytest.mark.parametrize("module", sorted({"app", *APP_PARTS}))
def test_the_app_layer_reaches_the_manager_through_its_facade(module: str) -> None:
    assert _own(module) & MANAGER_PARTS == set()
