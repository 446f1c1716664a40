"""Servers, security schemes and the websocket handshake, in AsyncAPI 3.0 terms.

FastAPI's OpenAPI security schemes (what the app's dependencies declare) become AsyncAPI
ones with absolute URLs (`security_scheme`); operations that need scopes carry the scheme
inline with them (`operation_security`); the ws channel binding (`handshake_bindings`)
lists the handshake's headers and query parameters: credentials, the request parameters
the app reads, and the ``Origin`` check.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

from .keys import ref
from .model import AppDescription, SecuritySchemeDescription

__all__ = [
    "handshake_bindings",
    "has_relative_security_urls",
    "http_base",
    "operation_security",
    "security_scheme",
    "server_from_url",
]

_SCOPED_TYPES = frozenset({"oauth2", "openIdConnect"})


def server_from_url(url: str) -> dict[str, Any]:
    """An AsyncAPI server object for ``ws://host:port/path``."""
    parts = urlsplit(url)
    protocol = parts.scheme or "ws"
    server: dict[str, Any] = {"host": parts.netloc or "localhost", "protocol": protocol}
    if parts.path and parts.path != "/":
        server["pathname"] = parts.path.rstrip("/")
    return server


_FLOW_URLS = ("authorizationUrl", "tokenUrl", "refreshUrl")


def http_base(server_url: str) -> str:
    """The HTTP origin of a ws/wss server URL, against which relative URLs are resolved."""
    parts = urlsplit(server_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme or "http")
    return f"{scheme}://{parts.netloc or 'localhost'}/"


def has_relative_security_urls(desc: AppDescription) -> bool:
    """Whether a security scheme names a relative URL (FastAPI's ``tokenUrl="/token"``): the
    document then depends on the server it is served from."""
    for scheme in desc.security:
        openapi = scheme.openapi
        urls = [openapi.get("openIdConnectUrl")]
        for flow in dict(openapi.get("flows", {})).values():
            urls += [flow.get(k) for k in _FLOW_URLS]
        if any(isinstance(u, str) and not urlsplit(u).scheme for u in urls):
            return True
    return False


def security_scheme(scheme: SecuritySchemeDescription, base: str) -> dict[str, Any]:
    """FastAPI's OpenAPI security scheme as an AsyncAPI 3.0 one. AsyncAPI wants absolute
    URLs: relative ones (``tokenUrl="/token"``) are resolved against ``base``."""
    openapi = dict(scheme.openapi)
    kind = openapi.get("type")
    out: dict[str, Any]
    if kind == "apiKey":
        out = {"type": "httpApiKey", "name": openapi["name"], "in": openapi["in"]}
    elif kind == "oauth2":
        flows: dict[str, Any] = {}
        for name, flow in sorted(dict(openapi.get("flows", {})).items()):
            converted = {k: v for k, v in flow.items() if k != "scopes"}
            for key in _FLOW_URLS:
                if isinstance(converted.get(key), str):
                    converted[key] = urljoin(base, converted[key])
            converted["availableScopes"] = dict(sorted(flow.get("scopes", {}).items()))
            flows[name] = converted
        out = {"type": "oauth2", "flows": flows}
    elif kind == "http":
        out = {k: openapi[k] for k in ("type", "scheme", "bearerFormat") if k in openapi}
    elif kind == "openIdConnect":
        out = {
            "type": "openIdConnect",
            "openIdConnectUrl": urljoin(base, openapi["openIdConnectUrl"]),
        }
    else:
        raise ValueError(f"security scheme {scheme.key!r}: unsupported type {kind!r}")
    where = _credential_places(scheme)
    text = scheme.description or ""
    if where:
        text = (text + "\n\n" if text else "") + "Send the credential at the handshake: " + where
    if text:
        out["description"] = text
    return out


def _credential_places(scheme: SecuritySchemeDescription) -> str:
    openapi = scheme.openapi
    places: list[str] = []
    if openapi.get("type") == "apiKey":
        location = {"header": "header", "query": "query parameter", "cookie": "cookie"}
        places.append(f"the `{openapi['name']}` {location.get(openapi['in'], openapi['in'])}")
    elif openapi.get("type") in ("oauth2", "openIdConnect") or openapi.get("scheme") == "bearer":
        places.append("`Authorization: Bearer <token>`")
        if scheme.subprotocol_prefix:
            places.append(
                f"or a `Sec-WebSocket-Protocol` entry `{scheme.subprotocol_prefix}<token>` "
                "(browsers cannot set headers; also offer a real subprotocol)"
            )
        if scheme.query_param:
            places.append(f"or the `{scheme.query_param}` query parameter")
    elif openapi.get("type") == "http":
        places.append(f"`Authorization: {str(openapi.get('scheme', '')).capitalize()} ...`")
    return ", ".join(places) + "." if places else ""


def handshake_bindings(desc: AppDescription) -> dict[str, Any] | None:
    """The ws channel binding: the handshake's headers and query parameters we know of."""
    headers: dict[str, Any] = {}
    query: dict[str, Any] = {}
    _credentials(desc, headers, query)
    required = _request_params(desc, headers, query)
    if desc.allowed_origins is not None and "*" not in desc.allowed_origins:
        headers["Origin"] = {
            "type": "string",
            "description": (
                "Browsers' origin; allowed: the server's own origin, "
                + ", ".join(f"`{o}`" for o in desc.allowed_origins)
                + ". Others are refused with HTTP 403."
            ),
        }
    if not headers and not query:
        return None
    binding: dict[str, Any] = {"method": "GET"}
    if query:
        binding["query"] = {"type": "object", "properties": dict(sorted(query.items()))}
        if required["query"]:
            binding["query"]["required"] = sorted(required["query"])
    if headers:
        binding["headers"] = {"type": "object", "properties": dict(sorted(headers.items()))}
        if required["header"]:
            binding["headers"]["required"] = sorted(required["header"])
    binding["bindingVersion"] = "0.1.0"
    return {"ws": binding}


def _credentials(desc: AppDescription, headers: dict[str, Any], query: dict[str, Any]) -> None:
    """The handshake's credentials, by where the security schemes read them."""
    schemes = {s.key: s for s in desc.security}
    for key in desc.handshake_security:
        scheme = schemes[key]
        openapi = scheme.openapi
        if openapi.get("type") == "apiKey":
            target = {"header": headers, "query": query}.get(str(openapi["in"]))
            if target is not None:
                target[openapi["name"]] = {
                    "type": "string",
                    "description": f"The credential of `{key}`.",
                }
            continue
        if openapi.get("type") == "http" and openapi.get("scheme") != "bearer":
            headers["Authorization"] = {
                "type": "string",
                "description": f"`{openapi.get('scheme')}` credentials ({key}).",
            }
            continue
        headers["Authorization"] = {
            "type": "string",
            "pattern": "^[Bb]earer [A-Za-z0-9\\-._~+/]+=*$",
            "description": f"`Bearer <token>` ({key}).",
        }
        if scheme.subprotocol_prefix:
            headers["Sec-WebSocket-Protocol"] = {
                "type": "string",
                "description": (
                    f"May carry the token as an entry `{scheme.subprotocol_prefix}<token>` "
                    "(for browsers, which cannot set Authorization); the server never "
                    "accepts that entry as the subprotocol."
                ),
            }
        if scheme.query_param:
            query[scheme.query_param] = {
                "type": "string",
                "description": f"The bearer token ({key}); prefer the header: URLs get logged.",
            }


def _request_params(
    desc: AppDescription, headers: dict[str, Any], query: dict[str, Any]
) -> dict[str, list[str]]:
    """The headers and query parameters the app's dependencies read (and which of them
    the handshake requires, by kind)."""
    required: dict[str, list[str]] = {"query": [], "header": []}
    for param in desc.request_params:
        target = query if param.kind == "query" else headers
        schema = dict(param.schema)
        used = ", ".join(f"`{u}`" if u != "the handshake" else u for u in param.used_by)
        text = schema.get("description")
        note = f"Read by {used}." if used else ""
        if param.required:
            note += " Required: the handshake is refused (HTTP 403) without a valid value."
        schema["description"] = f"{text}\n\n{note}".strip() if text else note.strip()
        name = param.name if param.kind == "query" else _header_name(param.name)
        target[name] = schema
        if param.required:
            required[param.kind].append(name)
    return required


def _header_name(name: str) -> str:
    """``x-token`` -> ``X-Token`` (headers are case-insensitive; this is how they are written)."""
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def operation_security(
    schemes: Mapping[str, dict[str, Any]], keys: Sequence[str], scopes: Sequence[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in keys:
        scheme = schemes[key]
        if scopes and scheme["type"] in _SCOPED_TYPES:
            inline = copy.deepcopy(scheme)
            inline["scopes"] = list(scopes)
            out.append(inline)
        else:
            out.append(ref("components", "securitySchemes", key))
    return out
