"""Numbers about the shape of a checkout: module map, largest files and functions, import
cycles among asyncws modules, tests per test module.

    python scripts/house_report.py [CHECKOUT]      # default: this checkout

Import cycles count every import of one asyncws module by another, at the top of a module or
inside a function (``if TYPE_CHECKING:`` blocks do not count: they never run). ``from .x import
name`` is an import of ``asyncws.x`` (and of ``asyncws.x.name`` when that is a module); a
package's ``__init__`` is the package's own node, and importing ``asyncws.a.b`` does not count
as importing ``asyncws.a``. Cycles are the strongly connected components of that graph, each
listed with one shortest cycle through it.

The test counts come from ``pytest --collect-only -q`` run in CHECKOUT with this interpreter
(parametrized cases count one each).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter, deque
from pathlib import Path


def _package_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "asyncws").rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _functions(path: Path) -> list[tuple[int, str]]:
    """(lines, qualified name) of every function and method in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert child.end_lineno is not None
                start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                found.append((child.end_lineno - start + 1, f"{prefix}{child.name}"))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _imports(root: Path, path: Path, modules: set[str]) -> set[str]:
    """The asyncws modules ``path`` imports anywhere except under ``if TYPE_CHECKING:``."""
    name = _module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        if target in modules:
            found.add(target)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            submodules = [
                f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules
            ]
            for sub in submodules:
                add(sub)
            if len(submodules) < len(node.names):  # a name defined in the module itself
                add(module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def _shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    members = set(component)
    best: list[str] | None = None
    for start in component:
        previous: dict[str, str] = {}
        queue = deque([start])
        seen = {start}
        while queue:
            node = queue.popleft()
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    cycle = [start, *reversed(path[:-1]), start]
                    if best is None or len(cycle) < len(best):
                        best = cycle
                    queue.clear()
                    break
                if child not in seen:
                    seen.add(child)
                    previous[child] = node
                    queue.append(child)
    assert best is not None
    return best


def _short(name: str) -> str:
    return name.removeprefix("asyncws.") if name != "asyncws" else "asyncws (__init__)"


def _test_counts(root: Path) -> tuple[Counter[str], str]:
    """Tests per module, and pytest's summary line (which says so when collecting failed)."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    counts: Counter[str] = Counter()
    for line in out.splitlines():
        if "::" in line:
            counts[line.split("::", 1)[0]] += 1
    summary = next((line for line in reversed(out.splitlines()) if line.strip()), "")
    return counts, summary


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parent.parent).resolve()
    files = _package_files(root)
    modules = {_module_name(root, p) for p in files}
    head = subprocess.run(
        ["git", "-C", str(root), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    print(f"# house report: {root} ({head or 'not a git checkout'})")

    sizes = {p: _lines(p) for p in files}
    print(f"\n## module map: {len(files)} files, {sum(sizes.values())} lines")
    for path in files:
        print(f"{sizes[path]:6d}  {path.relative_to(root)}")

    print("\n## the 10 largest files (lines)")
    for path in sorted(files, key=lambda p: -sizes[p])[:10]:
        print(f"{sizes[path]:6d}  {path.relative_to(root)}")

    functions = [
        (n, f"{path.relative_to(root)}:{qual}") for path in files for n, qual in _functions(path)
    ]
    print("\n## the 10 largest functions (lines, decorators included)")
    for n, where in sorted(functions, key=lambda f: (-f[0], f[1]))[:10]:
        print(f"{n:6d}  {where}")

    graph = {_module_name(root, p): _imports(root, p, modules) for p in files}
    cycles = _cycles(graph)
    print(f"\n## import cycles among asyncws modules (function-level imports count): {len(cycles)}")
    for component in cycles:
        print(f"- {len(component)} modules: {', '.join(_short(m) for m in component)}")
        print(f"    e.g. {' -> '.join(_short(m) for m in _shortest_cycle(graph, component))}")

    counts, summary = _test_counts(root)
    print(f"\n## tests per test module (pytest --collect-only -q): {summary}")
    for module, n in sorted(counts.items()):
        print(f"{n:6d}  {module}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
