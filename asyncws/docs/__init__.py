"""The HTML documentation page of an AsyncAPI 3.0 document, with a live websocket console.

`render_html` turns a document (a ``dict``, as `asyncws.asyncapi.build_document` returns it
or as loaded from a file) into one self-contained HTML page: inline CSS and JavaScript, no
external URL, nothing fetched at load time. It shows the info, servers and security schemes,
one card per operation (SEND / RECEIVE / REQUEST, the last being a receive with a reply),
channels with their parameters, messages with their payload schemas as expandable trees
(``$ref`` resolved, cycles cut, unions with their discriminator) and examples, and links to
the document itself (``asyncapi.json`` / ``asyncapi.yaml``, relative to the page).

The page also carries a console that speaks the asyncws wire protocol (see
``docs/protocol.md``): it connects to the app's websocket, subscribes to topics and sends
operations, and matches every ``ack`` / ``reply`` / ``error`` to the request with the same
``id``. The data it needs is embedded as JSON in a ``<script type="application/json">``
island (jinja2's ``tojson``, so no document text can close the element), and the script
reads it with ``JSON.parse`` and writes only through ``textContent``. A Content-Security-Policy
``<meta>`` allows exactly the page's own inline script (by hash) and websocket connections.

Rendering never trusts the document: every string goes through jinja2's autoescaping, and
schema trees are bounded (depth and node budget) so a hostile or huge document cannot blow
up the page.

`write_static` writes ``index.html``, ``asyncapi.json`` and ``asyncapi.yaml`` to a folder,
for publishing the docs as a static site.

The package, one concept per module: `text` (escaping and the small Markdown subset of
descriptions), `schema` (``$ref`` resolution, anchors, schema trees, example values),
`views` (the dataclasses the template receives), `wire` (what the asyncws wire protocol makes
of a document: frame types, envelopes, example frames) and `page` (the page model, `_Page`).
This module holds the public API and the jinja2 environment.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from ..resources import templates_dir
from .page import _Page
from .text import _breakable, _inline, _pretty, _prose, _safe_url

__all__ = ["render_html", "write_static"]


# -- public API -------------------------------------------------------------------------------


def render_html(
    document: Mapping[str, Any],
    ws_url_path: str | None = None,
    *,
    json_url: str = "asyncapi.json",
    yaml_url: str = "asyncapi.yaml",
    openapi_docs_url: str | None = None,
) -> str:
    """The documentation page of ``document``, as one self-contained HTML string.

    ``ws_url_path`` is the path of the app's websocket endpoint (e.g. ``"/ws"``) that the
    console connects to, on the page's own host; without it the path is taken from the
    document (an endpoint channel's address, else the first server's ``pathname``).
    ``json_url`` and ``yaml_url`` are the links to the document, relative to the page by
    default (a page served at ``/asyncapi`` links to ``/asyncapi.json``). ``openapi_docs_url``
    (e.g. FastAPI's ``/docs``) adds a link to the app's HTTP API docs in the header.
    """
    page = _Page(document, ws_url_path)
    script = _static_text("console.js")
    return (
        _environment()
        .get_template("page.html.j2")
        .render(
            page=page,
            json_url=json_url,
            yaml_url=yaml_url,
            openapi_docs_url=openapi_docs_url,
            console_data=page.console_data(),
            script=Markup(script),  # our own file: trusted, and hashed for the CSP below
            script_hash=_csp_hash(script),
            style=Markup(_static_text("style.css")),
        )
    )


def write_static(document: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write ``index.html``, ``asyncapi.json`` and ``asyncapi.yaml`` into ``out_dir``.

    The folder is created if needed; existing files of those names are replaced. Returns the
    path of ``index.html``. The page's console connects to the endpoint path the document
    names, on the host that serves the folder (editable in the page).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plain = json.loads(json.dumps(document, default=str))  # plain types for the YAML dumper
    (out / "asyncapi.json").write_text(
        json.dumps(plain, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "asyncapi.yaml").write_text(
        yaml.safe_dump(plain, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    index = out / "index.html"
    index.write_text(render_html(document), encoding="utf-8")
    return index


# -- jinja2 -----------------------------------------------------------------------------------


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir() / "docs"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["prose"] = _prose
    env.filters["inline"] = _inline
    env.filters["pretty"] = _pretty
    env.filters["safe_url"] = _safe_url
    env.filters["breakable"] = _breakable
    return env


@cache
def _static_text(name: str) -> str:
    """A file of templates/docs/ that is included verbatim (the CSS and the console script)."""
    return (templates_dir() / "docs" / name).read_text(encoding="utf-8")


def _csp_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")
