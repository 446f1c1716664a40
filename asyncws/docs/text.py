"""Text for the docs page: the jinja2 filters and the JSON renderings of values.

`_inline` (one line: code spans and bold), `_prose` (a description: paragraphs, lists, pipe
tables) and `_safe_url` (web and mail links only) escape every piece of document text and
produce only their own tags: no raw HTML, no links out of descriptions. `_pretty` is indented
JSON for examples and `_json_text` one-line JSON for values in a tree or a table; both are
plain strings, escaped by the template like any other text.

Package-internal: ``__all__`` names what the other modules of `asyncws.docs` use.
"""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import Markup, escape

__all__ = ["_inline", "_json_text", "_pretty", "_prose", "_safe_url"]


_INLINE = re.compile(r"``(.+?)``|`([^`\n]+)`|\*\*([^*\n]+)\*\*")
_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+")


def _inline(text: Any) -> Markup:
    """One line of Markdown-ish text: `code` (or ``code``) and **bold**; the rest escaped."""
    text = str(text or "")
    out = []
    pos = 0
    for match in _INLINE.finditer(text):
        out.append(escape(text[pos : match.start()]))
        code = match.group(1) or match.group(2)
        if code is not None:
            out.append(Markup("<code>{}</code>").format(code))
        else:
            out.append(Markup("<strong>{}</strong>").format(match.group(3)))
        pos = match.end()
    out.append(escape(text[pos:]))
    return Markup("").join(out)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _prose(text: Any) -> Markup:
    """A description as HTML: the small part of CommonMark descriptions use (paragraphs,
    lists, pipe tables, code spans, bold). Every piece of text is escaped; no raw HTML,
    no links (a document must not point the reader elsewhere)."""
    if text is None:
        return Markup("")
    out = []
    for block in re.split(r"\n\s*\n", str(text).replace("\r\n", "\n")):
        lines = [line.rstrip() for line in block.strip("\n").split("\n") if line.strip()]
        if not lines:
            continue
        if (
            len(lines) >= 2
            and lines[0].lstrip().startswith("|")
            and _TABLE_RULE.match(lines[1].strip())
        ):
            head = Markup("").join(
                Markup("<th>{}</th>").format(_inline(c)) for c in _cells(lines[0])
            )
            rows = Markup("").join(
                Markup("<tr>{}</tr>").format(
                    Markup("").join(Markup("<td>{}</td>").format(_inline(c)) for c in _cells(line))
                )
                for line in lines[2:]
            )
            out.append(
                Markup(
                    '<table class="grid md"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>'
                ).format(head, rows)
            )
        elif _LIST_ITEM.match(lines[0].lstrip()):
            items: list[str] = []
            for line in lines:
                if _LIST_ITEM.match(line.lstrip()):
                    items.append(_LIST_ITEM.sub("", line.lstrip(), count=1))
                elif items:
                    items[-1] += " " + line.strip()
            tag = "ol" if lines[0].lstrip()[0].isdigit() else "ul"
            body = Markup("").join(Markup("<li>{}</li>").format(_inline(i)) for i in items)
            out.append(Markup("<{0}>{1}</{0}>").format(Markup(tag), body))
        else:
            paragraph = " ".join(line.strip() for line in lines)
            out.append(Markup("<p>{}</p>").format(_inline(paragraph)))
    return Markup("").join(out)


def _safe_url(url: Any) -> str:
    """``url`` if it is a web or mail link (never ``javascript:`` and the like), else ``""``."""
    text = str(url or "").strip()
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", text)
    if scheme is None:
        return ""
    return text if scheme.group(1).lower() in ("http", "https", "mailto") else ""


def _pretty(value: Any) -> str:
    """Pretty JSON for an example (escaped by the template like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _breakable(text: Any) -> Markup:
    """``text`` escaped, with a line-break opportunity (``<wbr>``) after each ``.``, ``/``,
    ``-`` and ``_``: long names wrap where they read well."""
    escaped = str(escape(str(text or "")))
    return Markup(re.sub(r"([./_-])", r"\1<wbr>", escaped))
