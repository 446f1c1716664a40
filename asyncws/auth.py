"""Authentication and authorization for websockets: bearer tokens, scopes, origin checks.

What it promises:

- `WebSocketOAuth2PasswordBearer` reads a bearer token from, in order, the ``Authorization:
  Bearer <token>`` header, a ``bearer.<token>`` entry of ``Sec-WebSocket-Protocol`` (what a
  browser can send), and a query parameter (only if ``query_param`` is set: URLs end up in
  logs). It works as a FastAPI dependency of a websocket route and called directly.
- A missing or malformed token (with ``auto_error``, the default) raises `WebSocketAuthError`,
  a Starlette ``WebSocketException`` with code 1008: the exception handler Starlette and
  FastAPI install closes the websocket with it, which refuses the handshake with HTTP 403
  before accept and sends a 1008 close frame after. The endpoint does not go on and nothing
  is logged as a server error. With ``auto_error=False`` the result is ``None`` instead.
- Tokens are never echoed: `WebSocketOAuth2PasswordBearer.select_subprotocol` only picks among
  the client's non-credential subprotocols, and tokens are never logged.
- `origin_allowed` is the one origin check (the app's handshake, the proxy and the seed's
  `WebSocketManager.new_connection` use it): same-origin by default, widened by a list,
  ``"*"`` to opt out. `check_origin` / `OriginGuard` refuse browsers from other origins
  (cross-site websocket hijacking) with 403; `require_scopes` raises `ForbiddenError` naming
  the missing scopes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterable, Sequence

from fastapi.security import OAuth2PasswordBearer
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from .codes import CloseCode
from .exceptions import ForbiddenError
from .forwarded import PublicAddress, normalize_origin

__all__ = [
    "OriginGuard",
    "WebSocketAuthError",
    "WebSocketOAuth2PasswordBearer",
    "check_origin",
    "origin_allowed",
    "request_origin",
    "require_scopes",
]

logger = logging.getLogger("asyncws.auth")

# RFC 6750 b64token; also what a subprotocol entry or a query value may carry.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class WebSocketAuthError(WebSocketException):
    """Authentication or origin check failed: close with ``code`` (1008) and ``reason``.

    Starlette's exception handler (in every Starlette and FastAPI app) closes the websocket
    with it: before accept the server answers the handshake with HTTP 403. If you catch it
    yourself, close the websocket: ``await websocket.close(exc.code, exc.reason)``.
    """

    def __init__(self, reason: str = "not authenticated") -> None:
        super().__init__(code=int(CloseCode.POLICY_VIOLATION), reason=reason)


class WebSocketOAuth2PasswordBearer(OAuth2PasswordBearer):
    """`OAuth2PasswordBearer` for websockets (same constructor, same OpenAPI scheme).

    The token URL is FastAPI's ``tokenUrl`` or the seed's ``token_url`` (or the first
    positional argument); ``refreshUrl`` is also ``refresh_url``.

    ``token = await bearer(websocket)`` or ``token: str = Depends(bearer)`` in a websocket
    route. The token is taken from the first of these that is present:

    1. ``Authorization: Bearer <token>`` (a present but malformed header is an error: no
       fallback to the other places);
    2. one ``Sec-WebSocket-Protocol`` entry ``<subprotocol_prefix><token>``, by default
       ``bearer.<token>`` (``new WebSocket(url, ["chat", "bearer." + token])`` in a browser,
       which cannot set headers); accept with `select_subprotocol`, never the token entry;
    3. the ``query_param`` query parameter, only when set (off by default: URLs are logged by
       servers and proxies).

    A token must match RFC 6750's ``b64token`` (``[A-Za-z0-9-._~+/]+=*``, at most
    ``max_token_length`` characters). Missing or malformed: `WebSocketAuthError` (handshake
    refused with 403, or close 1008 after accept), or ``None`` with ``auto_error=False``.
    """

    max_token_length = 8192

    def __init__(
        self,
        tokenUrl: str | None = None,
        scheme_name: str | None = None,
        scopes: dict[str, str] | None = None,
        description: str | None = None,
        auto_error: bool = True,
        refreshUrl: str | None = None,
        *,
        token_url: str | None = None,
        refresh_url: str | None = None,
        query_param: str | None = None,
        subprotocol_prefix: str = "bearer.",
    ) -> None:
        # FastAPI spells it tokenUrl, the seed token_url: take either (or positionally).
        tokenUrl = _one_of("tokenUrl", tokenUrl, "token_url", token_url, required=True)
        refreshUrl = _one_of("refreshUrl", refreshUrl, "refresh_url", refresh_url)
        assert tokenUrl is not None
        super().__init__(
            tokenUrl=tokenUrl,
            scheme_name=scheme_name,
            scopes=scopes,
            description=description,
            auto_error=auto_error,
            refreshUrl=refreshUrl,
        )
        if not subprotocol_prefix:
            raise ValueError("subprotocol_prefix must not be empty")
        self.query_param = query_param
        self.subprotocol_prefix = subprotocol_prefix

    def _valid(self, token: str) -> bool:
        return len(token) <= self.max_token_length and _TOKEN.fullmatch(token) is not None

    def _is_credential(self, subprotocol: str) -> bool:
        return subprotocol.startswith(self.subprotocol_prefix)

    def find_token(self, websocket: WebSocket) -> tuple[str | None, str]:
        """``(token, "")``, or ``(None, why)`` when there is none or it is malformed."""
        authorization = websocket.headers.getlist("authorization")
        if authorization:
            if len(authorization) != 1:
                return None, "malformed authorization header"
            scheme, _, param = authorization[0].strip().partition(" ")
            token = param.strip()
            if scheme.lower() != "bearer" or not self._valid(token):
                return None, "malformed authorization header"
            return token, ""
        offered = [str(p) for p in websocket.scope.get("subprotocols", [])]
        entries = [p[len(self.subprotocol_prefix) :] for p in offered if self._is_credential(p)]
        if entries:
            if len(entries) != 1 or not self._valid(entries[0]):
                return None, "malformed bearer subprotocol"
            return entries[0], ""
        if self.query_param is not None:
            values = websocket.query_params.getlist(self.query_param)
            if values:
                if len(values) != 1 or not self._valid(values[0]):
                    return None, "malformed token parameter"
                return values[0], ""
        return None, "not authenticated"

    async def __call__(self, websocket: WebSocket) -> str | None:  # type: ignore[override]
        """The bearer token, or `WebSocketAuthError` / ``None`` (``auto_error=False``)."""
        token, why = self.find_token(websocket)
        if token is not None:
            return token
        logger.debug("websocket %s: %s", websocket.url.path, why)
        if self.auto_error:
            raise WebSocketAuthError(why)
        return None

    def offered_subprotocols(self, websocket: WebSocket) -> list[str]:
        """The client's requested subprotocols without the credential entry."""
        offered = [str(p) for p in websocket.scope.get("subprotocols", [])]
        return [p for p in offered if not self._is_credential(p)]

    def select_subprotocol(self, websocket: WebSocket, supported: Iterable[str]) -> str | None:
        """The first subprotocol the client offered that is in ``supported`` (never a token).

        ``await websocket.accept(subprotocol=bearer.select_subprotocol(websocket, ["chat"]))``.
        Browsers fail the connection if they offered subprotocols and the server accepts
        none, so a browser sending its token this way should also offer a real subprotocol.
        """
        allowed = {p for p in supported if not self._is_credential(p)}
        for protocol in self.offered_subprotocols(websocket):
            if protocol in allowed:
                return protocol
        return None


def _one_of(
    name: str, value: str | None, alias: str, alias_value: str | None, *, required: bool = False
) -> str | None:
    if value is not None and alias_value is not None and value != alias_value:
        raise TypeError(f"{name} and {alias} differ: pass one of them")
    chosen = value if value is not None else alias_value
    if chosen is None and required:
        raise TypeError(f"WebSocketOAuth2PasswordBearer() needs {name} (or {alias})")
    return chosen


def require_scopes(granted: Iterable[str], required: Iterable[str]) -> None:
    """Raise `ForbiddenError` naming every scope of ``required`` not in ``granted``.

    The error's ``errors`` lists one ``{"type": "missing_scope", "scope": ...}`` per scope,
    in the order of ``required``.
    """
    have = set(granted)
    missing = [scope for scope in dict.fromkeys(required) if scope not in have]
    if missing:
        raise ForbiddenError(
            f"missing scopes: {', '.join(missing)}",
            errors=[{"type": "missing_scope", "scope": scope} for scope in missing],
        )


def request_origin(websocket: HTTPConnection) -> str | None:
    """The origin a page served by this request's server has: the request's scheme
    (``ws``/``http`` or ``wss``/``https``) and its ``Host`` header; None without a usable Host.

    `asyncws.forwarded.PublicAddress` says the same with a pinned ``public_url`` or trusted
    ``X-Forwarded-*`` headers."""
    return PublicAddress().origin(websocket)


def origin_allowed(
    websocket: HTTPConnection,
    allowed_origins: Collection[str] | None = None,
    *,
    allow_missing: bool = True,
    server_origin: str | None = None,
) -> bool:
    """Whether the handshake's ``Origin`` may open a websocket: the one origin check of asyncws.

    Same-origin always passes: an ``Origin`` equal to the server's own origin, which is
    ``server_origin`` when given, else `request_origin` (the request's scheme and ``Host``).
    ``allowed_origins`` widens that: origins listed there pass too, and ``"*"`` lets every
    origin through (the explicit opt-out). Origins compare as ``scheme://host[:port]``,
    case-insensitively, with default ports normalised (``https://app.example:443`` is
    ``https://app.example``) and ``ws``/``wss`` read as ``http``/``https``.

    ``Origin: null`` (sandboxed frames, ``file:`` pages, some redirects) passes only when
    ``"null"`` is listed. A request without ``Origin`` does not come from a browser page (a
    CLI, a service) and passes unless ``allow_missing=False``. Several ``Origin`` headers or a
    malformed one never pass.
    """
    values = websocket.headers.getlist("origin")
    if not values:
        return allow_missing
    if len(values) != 1:
        return False
    origin = normalize_origin(values[0])
    if origin is None:
        return False
    if isinstance(allowed_origins, str):  # one origin, not its characters
        allowed_origins = [allowed_origins]
    allowed = set()
    for entry in allowed_origins or ():
        if entry.strip() == "*":
            return True
        normal = normalize_origin(entry)
        if normal is not None:
            allowed.add(normal)
    if origin in allowed:
        return True
    if origin == "null":
        return False
    own = normalize_origin(server_origin) if server_origin else request_origin(websocket)
    return own is not None and origin == own


async def check_origin(
    websocket: WebSocket,
    allowed_origins: Collection[str] | None = None,
    *,
    allow_missing: bool = True,
    server_origin: str | None = None,
) -> None:
    """Raise `WebSocketAuthError` ("origin not allowed") unless `origin_allowed`.

    Call it before ``accept()``: the handshake is then refused with HTTP 403.
    """
    if not origin_allowed(
        websocket, allowed_origins, allow_missing=allow_missing, server_origin=server_origin
    ):
        logger.info("websocket %s: origin not allowed", websocket.url.path)
        raise WebSocketAuthError("origin not allowed")


class OriginGuard:
    """`check_origin` as a dependency: ``Depends(OriginGuard(["https://app.example"]))``
    (same-origin and that origin), or ``Depends(OriginGuard())`` (same-origin only)."""

    def __init__(
        self, allowed_origins: Sequence[str] | None = None, *, allow_missing: bool = True
    ) -> None:
        self.allowed_origins = tuple(allowed_origins or ())
        self.allow_missing = allow_missing

    async def __call__(self, websocket: WebSocket) -> None:
        await check_origin(websocket, self.allowed_origins, allow_missing=self.allow_missing)
