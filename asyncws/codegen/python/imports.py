"""The imports of a generated module, written the way ruff's isort writes them.

`Imports` collects ``from module import name`` per module while the code is built;
`import_sections` orders them (standard library, third party, the package's own modules)
and `from_imports` writes them: one line when it fits, else one name per line with a
trailing comma. `sort_members` and `sort_all` give the orders ruff wants for the names of a
``from`` import and of ``__all__``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..layout import LIMIT

__all__ = ["Imports", "from_import", "from_imports", "import_sections", "sort_all", "sort_members"]


class Imports:
    """What a generated module imports, by module."""

    def __init__(self) -> None:
        self.names: dict[str, set[str]] = {}

    def add(self, module: str, *names: str) -> None:
        self.names.setdefault(module, set()).update(names)

    def get(self, module: str) -> list[str]:
        return sort_members(self.names.get(module, ()))


def _natural(text: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _member_type(name: str) -> int:
    if len(name) > 1 and name.isupper():
        return 0
    return 1 if name[:1].isupper() else 2


def sort_members(names: Iterable[str]) -> list[str]:
    """The order ruff's isort gives the names of a ``from`` import."""
    return sorted(set(names), key=lambda n: (_member_type(n), _natural(n.lower()), _natural(n)))


def sort_all(names: Iterable[str]) -> list[str]:
    """The order ruff's RUF022 wants in ``__all__``."""
    return sorted(set(names), key=lambda n: (_member_type(n), _natural(n)))


_STDLIB = frozenset({"collections.abc", "datetime", "typing", "uuid"})


def import_sections(imports: Imports, skip: str = "") -> list[list[tuple[str, list[str]]]]:
    """The ``from`` imports of a module in ruff's isort order: stdlib, third party, local
    sections of ``(module, names)``."""
    sections: list[list[tuple[str, list[str]]]] = [[], [], []]
    for module in sorted(imports.names, key=lambda m: (m.startswith("."), m.lower())):
        if module == skip or not imports.names[module]:
            continue
        section = 2 if module.startswith(".") else 0 if module in _STDLIB else 1
        sections[section].append((module, sort_members(imports.names[module])))
    return [s for s in sections if s]


def from_imports(imports: Imports, skip: str = "") -> str:
    """The ``from`` import lines of a module (those of ``skip``, the module itself, left
    out), a blank line between sections."""
    texts = []
    for section in import_sections(imports, skip):
        texts.append("\n".join(from_import(module, names) for module, names in section))
    return "\n\n".join(texts)


def from_import(module: str, names: list[str]) -> str:
    """``from module import names``: one line when it fits, else one name per line with a
    trailing comma (what ruff's isort keeps)."""
    line = f"from {module} import " + ", ".join(names)
    if len(line) <= LIMIT:
        return line
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in names) + ")"
