"""The import rules of docs/architecture.md: the specification layer reads neutral
descriptions and documents, never the app layer; the framing layer stays pure."""

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
