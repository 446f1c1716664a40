"""Literals and line breaking for generated code.

The templates lay out files; this module renders what they interpolate so that the result
needs no formatter: string literals quoted the way ruff/black quote them, docstrings and doc
comments that no description can break out of (``\"\"\"``, ``*/``, backslashes, control and
ambiguous characters), and Python expressions broken over lines the way ``ruff format``
breaks them (a bracket that does not fit is exploded one item per line with a magic
trailing comma, so the layout is stable under any line length of 88 or more).
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LIMIT",
    "Atom",
    "Call",
    "DictLit",
    "Expr",
    "Lambda",
    "ListLit",
    "Or",
    "Sub",
    "call",
    "code",
    "jsdoc",
    "laid",
    "layout",
    "py_docstring",
    "py_str",
    "py_value",
    "signature",
    "ts_str",
    "ts_value",
]

#: The line length the generated Python keeps to (ruff's default; the repo uses 100).
LIMIT = 88

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def py_str(text: str) -> str:
    """A Python string literal of ``text``: double quotes unless the text has more double
    than single quotes (ruff's choice), ASCII only (non-ASCII escaped: no ambiguous
    characters in generated code)."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or ord(ch) > 0x7E:
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    return quote + "".join(out) + quote


def clean_text(text: str) -> str:
    """A description made safe to show in a comment or docstring: newlines normalized, tabs
    expanded, trailing spaces and control characters removed, blank edges stripped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(4)
    text = _CONTROL.sub("", text)
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    # collapse runs of blank lines
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out)


def wrap(text: str, width: int) -> str:
    """Paragraphs that are one long line wrapped at ``width``; tables, lists, code and
    paragraphs already broken into lines are left as they are."""
    out = []
    for paragraph in text.split("\n\n"):
        if (
            "\n" not in paragraph
            and len(paragraph) > width
            and not paragraph.startswith((" ", "|", "```", "::"))
        ):
            paragraph = textwrap.fill(
                paragraph, width=width, break_long_words=False, break_on_hyphens=False
            )
        out.append(paragraph)
    return "\n\n".join(out)


def py_docstring(text: str, indent: int = 0) -> str:
    """A docstring literal (triple double quotes) for ``text`` at ``indent``: backslashes,
    quote runs and a final quote escaped, non-ASCII escaped, in the layout ``ruff format``
    keeps (continuation lines at ``indent``, closing quotes on their own line)."""
    lines = wrap(clean_text(text), LIMIT - indent).split("\n")
    lines[0] = lines[0].lstrip()
    rest = lines[1:]
    widths = [len(line) - len(line.lstrip(" ")) for line in rest if line.strip()]
    common = min(widths) if widths else 0
    pad = " " * indent
    rest = [pad + line[common:] if line.strip() else "" for line in rest]
    source = "\n".join([lines[0], *rest])
    out: list[str] = []
    run = 0  # consecutive quotes written as they are
    for ch in source:
        if ch == '"':
            run += 1
            if run == 3:
                out.append('\\"')
                run = 0
                continue
            out.append(ch)
            continue
        run = 0
        if ch == "\\":
            out.append("\\\\")
        elif ch != "\n" and (ord(ch) > 0x7E or ord(ch) < 0x20):
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    if run:  # a quote right before the closing quotes
        out[-1] = '\\"'
    if out and out[0] == '"':  # a quote right after the opening quotes
        out[0] = '\\"'
    body = "".join(out)
    if len(rest) == 0:
        return f'"""{body}"""'
    return f'"""{body}\n{pad}"""'


def jsdoc(text: str, indent: int = 0) -> str:
    """A ``/** ... */`` comment for ``text`` at ``indent`` (``*/`` cannot end it early)."""
    body = wrap(clean_text(text), 96 - indent).replace("*/", "*\\/")
    pad = " " * indent
    lines = body.split("\n")
    if len(lines) == 1 and len(pad) + len(lines[0]) + 7 <= 100:
        return f"/** {lines[0]} */"
    inner = "\n".join(f"{pad} * {line}".rstrip() for line in lines)
    return f"/**\n{inner}\n{pad} */"


def py_value(value: Any) -> str:
    """A Python literal of a JSON value (flat)."""
    return layout_flat(py_value_expr(value))


def py_value_expr(value: Any) -> Expr:
    if value is None:
        return Atom("None")
    if value is True:
        return Atom("True")
    if value is False:
        return Atom("False")
    if isinstance(value, int):
        return Atom(str(value))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return Atom(f'float("{value}")')
        return Atom(repr(value))
    if isinstance(value, str):
        return Atom(py_str(value))
    if isinstance(value, list | tuple):
        return ListLit(tuple(py_value_expr(v) for v in value))
    if isinstance(value, dict):
        return DictLit(tuple((Atom(py_str(str(k))), py_value_expr(v)) for k, v in value.items()))
    return Atom(py_str(str(value)))


def ts_str(text: str) -> str:
    """A TypeScript string literal (JSON, ASCII only)."""
    return json.dumps(text, ensure_ascii=True)


def ts_value(value: Any) -> str:
    """A TypeScript literal of a JSON value."""
    return json.dumps(value, ensure_ascii=True, separators=(", ", ": "))


# -- Python expressions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """A Python expression the printer can break over lines."""

    def flat(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Atom(Expr):
    text: str

    def flat(self) -> str:
        return self.text


@dataclass(frozen=True)
class Sub(Expr):
    """``base[a, b]``."""

    base: str
    args: tuple[Expr, ...]

    def flat(self) -> str:
        return f"{self.base}[{', '.join(a.flat() for a in self.args)}]"


@dataclass(frozen=True)
class Call(Expr):
    """``func(a, k=v)``: ``args`` are ``(keyword or None, value)``."""

    func: str
    args: tuple[tuple[str | None, Expr], ...]

    def flat(self) -> str:
        return f"{self.func}({', '.join(_arg(k, v.flat()) for k, v in self.args)})"


@dataclass(frozen=True)
class Or(Expr):
    """``a | b | c``."""

    items: tuple[Expr, ...]

    def flat(self) -> str:
        return " | ".join(i.flat() for i in self.items)


@dataclass(frozen=True)
class Lambda(Expr):
    """``lambda: body``."""

    body: Expr

    def flat(self) -> str:
        return "lambda: " + self.body.flat()


@dataclass(frozen=True)
class ListLit(Expr):
    items: tuple[Expr, ...]

    def flat(self) -> str:
        return f"[{', '.join(i.flat() for i in self.items)}]"


@dataclass(frozen=True)
class DictLit(Expr):
    items: tuple[tuple[Expr, Expr], ...]

    def flat(self) -> str:
        return "{" + ", ".join(f"{k.flat()}: {v.flat()}" for k, v in self.items) + "}"


def _arg(keyword: str | None, text: str) -> str:
    return text if keyword is None else f"{keyword}={text}"


def layout_flat(expr: Expr) -> str:
    return expr.flat()


def layout(expr: Expr, column: int, indent: int, tail: int = 0, nested: bool = False) -> str:
    """``expr`` starting at ``column`` on a line indented by ``indent``, followed by
    ``tail`` characters; broken over lines like ``ruff format`` when it does not fit."""
    flat = expr.flat()
    if column + len(flat) + tail <= LIMIT:
        return flat
    inner = indent + 4
    pad, pad_inner = " " * indent, " " * inner
    if isinstance(expr, Sub) and len(expr.args) == 1:
        body = layout(expr.args[0], inner, inner, 0, nested=True)
        return f"{expr.base}[\n{pad_inner}{body}\n{pad}]"
    items: Sequence[tuple[str, Expr]]
    if isinstance(expr, Sub) and expr.args:
        opening, closing, items = f"{expr.base}[", "]", [("", a) for a in expr.args]
    elif isinstance(expr, Call) and expr.args:
        opening, closing = f"{expr.func}(", ")"
        items = [("" if k is None else f"{k}=", v) for k, v in expr.args]
    elif isinstance(expr, ListLit) and expr.items:
        opening, closing, items = "[", "]", [("", i) for i in expr.items]
    elif isinstance(expr, DictLit) and expr.items:
        opening, closing = "{", "}"
        items = [(f"{k.flat()}: ", v) for k, v in expr.items]
    elif isinstance(expr, Lambda):
        return "lambda: " + layout(expr.body, column + 8, indent, tail, nested)
    elif isinstance(expr, Or):
        if nested:  # inside brackets already: one operand per line
            sep = f"\n{pad}| "
            return sep.join(
                layout(item, indent + (2 if i else 0), indent, 0, nested=True)
                for i, item in enumerate(expr.items)
            )
        if inner + len(flat) <= LIMIT:  # parenthesized, on one line
            return f"(\n{pad_inner}{flat}\n{pad})"
        parts = [
            layout(item, inner + (2 if i else 0), inner, 0, nested=True)
            for i, item in enumerate(expr.items)
        ]
        body = f"\n{pad_inner}| ".join(parts)
        return f"(\n{pad_inner}{body}\n{pad})"
    else:
        return flat
    lines = [
        f"{pad_inner}{prefix}{layout(value, inner + len(prefix), inner, 1, nested=True)},"
        for prefix, value in items
    ]
    return opening + "\n" + "\n".join(lines) + "\n" + pad + closing


def code(value: str | Expr) -> Expr:
    """``value`` as an expression: a string is code, taken as it is."""
    return value if isinstance(value, Expr) else Atom(value)


def call(func: str, *args: str | Expr, **kwargs: str | Expr) -> Call:
    """``func(args..., key=value...)``: strings are code (literals come quoted already)."""
    items: list[tuple[str | None, Expr]] = [(None, code(a)) for a in args]
    items += [(k, code(v)) for k, v in kwargs.items()]
    return Call(func, tuple(items))


def laid(indent: int, prefix: str, expr: Expr) -> str:
    """``prefix`` and ``expr`` laid out on a line indented by ``indent`` (the caller writes
    the indentation of the first line)."""
    return prefix + layout(expr, indent + len(prefix), indent)


def signature(
    indent: int, keyword: str, name: str, params: Sequence[str], returns: str, stub: bool = False
) -> str:
    """A ``def`` line (``keyword`` is ``def`` or ``async def``) laid out as ``ruff format``
    lays it out: on one line when it fits, else one parameter per line with a magic
    trailing comma (stable under any line length from `LIMIT` up). ``stub`` ends it with
    `` ...`` (an ``@overload``)."""
    pad = " " * indent
    end = f") -> {returns}:" + (" ..." if stub else "")
    flat = f"{pad}{keyword} {name}(" + ", ".join(params) + end
    if len(flat) <= LIMIT:
        return flat
    return f"{pad}{keyword} {name}(\n" + "".join(f"{pad}    {p},\n" for p in params) + pad + end
