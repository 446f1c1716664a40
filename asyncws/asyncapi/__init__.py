"""AsyncAPI 3: the document of an app, the routes that serve it, reading any document.

Layers: `model.describe` reads an app into a version-neutral `AppDescription`; `v3.build`
(asyncws's envelope) or `framed_v3.build_framed` (the document framing) turns that into an
AsyncAPI 3.0.0 (or 3.1.0) document; `build_document` does both (or, for an app built from
a document, returns that document through ``app.spec``); `reader.read_api` reads any document
into a neutral `WireAPI` for spec-first apps (`asyncws.spec`), codegen and ``asyncws check``.
Nothing here imports the app layer: it reads an app by its attributes. `add_routes` serves
the document as JSON
and YAML and, when `asyncws.docs` is installed, as an HTML page.

The document is generated once per app (again only if the app's declarations change). When
the app declares no ``servers``, the ``servers`` entry (and OAuth2 URLs relative to it) is the
app's public address (`asyncws.forwarded.PublicAddress`): ``AsyncWS(public_url=...)`` when
pinned, else the request's ``Host`` and scheme (``https`` -> ``wss``), with
``X-Forwarded-Host``/``-Proto`` only from peers in ``forwarded_allow_ips`` (default: none).
Answers built from the request say so: ``Vary: Host`` (and the forwarded headers when they
are trusted) and ``Cache-Control: private, no-cache``, so that a shared cache never serves one
client's Host to another. Otherwise they are ``Cache-Control: no-cache``.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import inspect
import json
import re
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..forwarded import PublicAddress
from .model import AppDescription, describe, endpoint_address
from .v3 import build as build_v3
from .v3 import has_relative_security_urls, server_from_url

if TYPE_CHECKING:
    from ..app import AsyncWS

__all__ = [
    "AppDescription",
    "add_routes",
    "build_document",
    "check_document",
    "compare",
    "describe",
    "document_json",
    "document_yaml",
    "link_openapi",
    "served_document",
]

_YAML_CACHE_SIZE = 16


def build_document(
    app: AsyncWS, *, server_url: str | None = None, asyncapi_version: str | None = None
) -> dict[str, Any]:
    """The AsyncAPI 3 document of ``app`` (a new dict each call).

    ``server_url`` (e.g. ``wss://api.example.com``) is the server to list when the app
    declares no ``servers``; default ``ws://localhost:8000``. ``asyncapi_version``
    (``"3.0.0"`` or ``"3.1.0"``) overrides the app's ``asyncapi_version``; a spec-first app
    serves its document as it is.
    """
    spec = getattr(app, "spec", None)
    if spec is not None:  # built from a document: that document, its servers filled in
        return spec.served_document(server_url, app.servers)  # type: ignore[no-any-return]
    desc = describe(app)
    if asyncapi_version is not None:
        if asyncapi_version not in ("3.0.0", "3.1.0"):
            raise ValueError(f"asyncapi_version {asyncapi_version!r}: 3.0.0 or 3.1.0")
        desc = dataclasses.replace(desc, asyncapi_version=asyncapi_version)
    if desc.framing == "document":
        from .framed_v3 import build_framed

        return build_framed(desc, server_url=server_url)
    return build_v3(desc, server_url=server_url)


def document_json(document: dict[str, Any]) -> str:
    """The document as JSON text (2-space indent, UTF-8 characters kept, final newline)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    """No anchors/aliases (each value written out); multi-line strings as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data and not any(c in data for c in "\r\t") and data == data.strip():
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str)


def document_yaml(document: dict[str, Any]) -> str:
    """The document as YAML (keys in document order, no aliases)."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


# -- serving --------------------------------------------------------------------------------


@dataclass
class _Cached:
    compiled: object
    document: dict[str, Any]
    fill_servers: bool
    per_server: bool = False
    yaml: dict[str, str] = field(default_factory=dict)
    by_server: dict[str, dict[str, Any]] = field(default_factory=dict)


_cache: weakref.WeakKeyDictionary[Any, _Cached] = weakref.WeakKeyDictionary()


def _own_servers(app: AsyncWS) -> bool:
    spec = getattr(app, "spec", None)
    if spec is not None:
        return bool(spec.has_own_servers(app.servers))
    return bool(app.servers)


def _cached(app: AsyncWS) -> _Cached:
    compiled = app.compile()
    entry = _cache.get(app)
    if entry is None or entry.compiled is not compiled:
        own = _own_servers(app)
        per_server = (
            not own
            and getattr(app, "spec", None) is None  # a given document is served as it is
            and has_relative_security_urls(describe(app))
        )
        entry = _Cached(compiled, build_document(app), fill_servers=not own, per_server=per_server)
        _cache[app] = entry
    return entry


def _address(app: AsyncWS) -> PublicAddress:
    found = getattr(app, "public_address", None)
    return found if isinstance(found, PublicAddress) else PublicAddress()


def _request_server_url(app: AsyncWS, request: Request, suffix: str) -> tuple[str, str]:
    """``(server_url, prefix)`` for a request: the app's public ws/wss address, and the path
    prefix under which the routes are mounted."""
    address = _address(app)
    path = request.url.path
    prefix = (path[: -len(suffix)] if suffix and path.endswith(suffix) else "").rstrip("/")
    base = address.ws_url(request)
    if base is None:  # no usable Host
        scheme = "wss" if request.url.scheme in ("https", "wss") else "ws"
        base = f"{scheme}://localhost"
    return (base if address.pinned else base + prefix), prefix


def _cache_headers(app: AsyncWS) -> dict[str, str]:
    """``Vary``/``Cache-Control`` for an answer that shows the served document."""
    vary = _address(app).vary if _cached(app).fill_servers else ()
    if not vary:
        return {"Cache-Control": "no-cache"}
    return {"Cache-Control": "private, no-cache", "Vary": ", ".join(vary)}


def served_document(app: AsyncWS, server_url: str) -> dict[str, Any]:
    """The cached document of ``app`` with its default server set to ``server_url``."""
    entry = _cached(app)
    document = entry.document
    if not entry.fill_servers:
        return document
    if entry.per_server:  # relative security URLs: resolved against the server it is served from
        found = entry.by_server.get(server_url)
        if found is None:
            found = build_document(app, server_url=server_url)
            if len(entry.by_server) >= _YAML_CACHE_SIZE:  # Host is client-chosen: stay bounded
                entry.by_server.pop(next(iter(entry.by_server)))
            entry.by_server[server_url] = found
        return found
    base = dict(document.get("servers", {}).get("default", {}))
    rest = {k: v for k, v in base.items() if k not in ("host", "protocol", "pathname")}
    fresh = server_from_url(server_url)
    return {**document, "servers": {"default": {**fresh, **rest}}}


def _openapi_docs_url(request: Request) -> str | None:
    """The path of the FastAPI app's own docs (``/docs``) when it has them."""
    served_by = request.scope.get("app")
    docs_url = getattr(served_by, "docs_url", None)
    if not isinstance(docs_url, str) or getattr(served_by, "openapi_url", None) is None:
        return None
    return str(request.scope.get("root_path", "")).rstrip("/") + docs_url


def add_routes(app: AsyncWS, router: APIRouter) -> None:
    """Add the document routes to ``router``: ``app.asyncapi_url`` (JSON),
    ``app.asyncapi_yaml_url`` (YAML) and ``app.docs_url`` (HTML, when `asyncws.docs` is
    installed). A URL set to None disables its route."""
    name = re.sub(r"[^a-z0-9]+", "-", app.title.lower()).strip("-") or "asyncws"

    if app.asyncapi_url is not None:
        json_suffix = app.asyncapi_url

        async def asyncapi_json(request: Request) -> Response:
            url, _ = _request_server_url(app, request, json_suffix)
            return Response(
                document_json(served_document(app, url)),
                media_type="application/json",
                headers=_cache_headers(app),
            )

        router.add_api_route(
            app.asyncapi_url,
            asyncapi_json,
            methods=["GET"],
            include_in_schema=False,
            name=f"{name}-asyncapi-json",
        )

    if app.asyncapi_yaml_url is not None:
        yaml_suffix = app.asyncapi_yaml_url

        async def asyncapi_yaml(request: Request) -> Response:
            url, _ = _request_server_url(app, request, yaml_suffix)
            entry = _cached(app)
            text = entry.yaml.get(url)
            if text is None:
                text = document_yaml(served_document(app, url))
                if len(entry.yaml) >= _YAML_CACHE_SIZE:  # Host is client-chosen: stay bounded
                    entry.yaml.pop(next(iter(entry.yaml)))
                entry.yaml[url] = text
            return Response(text, media_type="application/yaml", headers=_cache_headers(app))

        router.add_api_route(
            app.asyncapi_yaml_url,
            asyncapi_yaml,
            methods=["GET"],
            include_in_schema=False,
            name=f"{name}-asyncapi-yaml",
        )

    if app.docs_url is not None and importlib.util.find_spec("asyncws.docs") is not None:
        docs_suffix = app.docs_url

        async def asyncapi_docs(request: Request) -> HTMLResponse:
            from .. import docs

            url, prefix = _request_server_url(app, request, docs_suffix)
            document = copy.deepcopy(served_document(app, url))
            ws_path = prefix + endpoint_address(app.path)
            links = {
                name: prefix + link
                for name, link in (
                    ("json_url", app.asyncapi_url),
                    ("yaml_url", app.asyncapi_yaml_url),
                )
                if link is not None and name in inspect.signature(docs.render_html).parameters
            }
            openapi_docs = _openapi_docs_url(request)
            if openapi_docs is not None:
                links["openapi_docs_url"] = openapi_docs
            return HTMLResponse(
                docs.render_html(document, ws_path, **links), headers=_cache_headers(app)
            )

        router.add_api_route(
            app.docs_url,
            asyncapi_docs,
            methods=["GET"],
            include_in_schema=False,
            name=f"{name}-asyncapi-docs",
        )


def _route_path(fastapi_app: Any, name: str) -> str | None:
    """The path of the route named ``name`` (through included routers), or None."""
    try:
        return str(fastapi_app.url_path_for(name))
    except Exception:  # NoMatchFound, or not a Starlette app
        return None


def link_openapi(fastapi_app: Any, app: AsyncWS) -> bool:
    """Make the FastAPI app's OpenAPI document (``/openapi.json``, hence ``/docs``) point at
    ``app``'s websocket API: a line in ``info.description`` linking the AsyncAPI page and
    document, and an ``x-asyncapi`` list of ``{"title", "version", "websocket", "docs",
    "document"}``. `AsyncWS.lifespan` calls it with the app it starts; returns whether the
    link was added (False when the app has no OpenAPI document or does not serve ``app``'s
    AsyncAPI routes)."""
    if getattr(fastapi_app, "openapi_url", None) is None or not callable(
        getattr(fastapi_app, "openapi", None)
    ):
        return False
    name = re.sub(r"[^a-z0-9]+", "-", app.title.lower()).strip("-") or "asyncws"
    docs = _route_path(fastapi_app, f"{name}-asyncapi-docs")
    document = _route_path(fastapi_app, f"{name}-asyncapi-json") or _route_path(
        fastapi_app, f"{name}-asyncapi-yaml"
    )
    if docs is None and document is None:
        return False
    ws_path = _route_path(fastapi_app, f"{name}-ws") or app.path
    entry = {
        "title": app.title,
        "version": app.version,
        "websocket": ws_path,
        **({"docs": docs} if docs else {}),
        **({"document": document} if document else {}),
    }
    linked: list[dict[str, Any]] = getattr(fastapi_app, "_asyncws_openapi_links", [])
    if entry in linked:
        return True
    first = not linked
    linked.append(entry)
    fastapi_app._asyncws_openapi_links = linked
    if not first:
        return True
    original = fastapi_app.openapi

    def openapi() -> dict[str, Any]:
        schema: dict[str, Any] = original()
        if "x-asyncapi" not in schema:
            schema["x-asyncapi"] = [dict(e) for e in linked]
            lines = []
            for e in linked:
                links = [f"[the docs]({e['docs']})"] if "docs" in e else []
                if "document" in e:
                    links.append(f"[the AsyncAPI document]({e['document']})")
                lines.append(
                    f"**WebSocket API**: {e['title']} {e['version']} at `{e['websocket']}`: "
                    + ", ".join(links)
                    + "."
                )
            info = schema.setdefault("info", {})
            text = "\n\n".join(lines)
            info["description"] = (
                f"{info['description']}\n\n{text}" if info.get("description") else text
            )
        return schema

    fastapi_app.openapi = openapi
    return True


from .checks import check_document, compare  # noqa: E402 - after the functions they may use
