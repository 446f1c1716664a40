"""The public address of a request: the scheme and host its clients used, and who may say so.

What it promises:

- With ``public_url`` pinned (``https://chat.example``, or ``wss://chat.example/prefix``) the
  public address never depends on the request: the AsyncAPI document lists that server, and
  that origin is the app's own origin for same-origin checks.
- Otherwise the address is the request's: its ``Host`` header and the ASGI scope's scheme
  (``ws``/``http`` or ``wss``/``https``). The scheme is what the ASGI server says: uvicorn sets
  it from ``X-Forwarded-Proto`` only for peers in its own ``--forwarded-allow-ips`` (default
  127.0.0.1).
- ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are read by asyncws only when the peer that
  sent the request (``scope["client"]``) is in ``forwarded_allow_ips`` (IP addresses, CIDR
  networks, or ``"*"``). The default trusts nobody: a reverse proxy that passes a client's
  own ``X-Forwarded-Host`` through unchanged (nginx does unless told otherwise) must not let
  that client choose the host the document advertises.
- `PublicAddress.vary` names the request headers an answer built from the address depends
  on, for a ``Vary`` header (empty when pinned).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

__all__ = ["PublicAddress", "normalize_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WEB_SCHEME = {"http": "http", "ws": "http", "https": "https", "wss": "https"}
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` lowercased, ``ws``/``wss`` as ``http``/``https``, without a
    default port (``https://App.example:443`` is ``https://app.example``); ``"null"`` stays
    ``"null"``; None if it is not an origin (a path, user info, no host, a bad port)."""
    origin = origin.strip()
    if origin == "null":
        return "null"
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    scheme = _WEB_SCHEME.get(parts.scheme.lower(), parts.scheme.lower())
    host = parts.hostname
    if not scheme or not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _networks(allow: str | Sequence[str] | None) -> tuple[bool, tuple[_Network, ...]]:
    if allow is None:
        return False, ()
    items = [a.strip() for a in (allow.split(",") if isinstance(allow, str) else allow)]
    items = [a for a in items if a]
    if "*" in items:
        return True, ()
    return False, tuple(ipaddress.ip_network(a, strict=False) for a in items)


class PublicAddress:
    """Where clients reach the app: ``public_url`` if pinned, else the request's own address.

    ``forwarded_allow_ips``: the peers whose ``X-Forwarded-Proto``/``X-Forwarded-Host`` are
    believed (a list, or a comma-separated string like uvicorn's option; ``"*"`` for any).
    Raises `ValueError` for a ``public_url`` that is not ``http(s)://`` or ``ws(s)://`` with a
    host, or an entry that is not an IP address or network.
    """

    def __init__(
        self,
        public_url: str | None = None,
        forwarded_allow_ips: str | Sequence[str] | None = None,
    ) -> None:
        self.public_url = public_url
        self._pinned: tuple[str, str, str] | None = None
        if public_url is not None:
            parts = urlsplit(public_url)
            scheme = _WEB_SCHEME.get(parts.scheme.lower())
            if scheme is None or not parts.hostname or not _HOST.match(parts.netloc):
                raise ValueError(
                    "public_url must be http://, https://, ws:// or wss:// and a host, "
                    f"not {public_url!r}"
                )
            self._pinned = (scheme, parts.netloc.lower(), parts.path.rstrip("/"))
        self._trust_all, self._trusted = _networks(forwarded_allow_ips)

    @property
    def pinned(self) -> bool:
        return self._pinned is not None

    @property
    def vary(self) -> tuple[str, ...]:
        """Request headers an answer built from this address depends on."""
        if self._pinned is not None:
            return ()
        if self._trust_all or self._trusted:
            return ("Host", "X-Forwarded-Host", "X-Forwarded-Proto")
        return ("Host",)

    def _trusts(self, conn: HTTPConnection) -> bool:
        if self._trust_all:
            return True
        if not self._trusted:
            return False
        client = conn.scope.get("client")
        if not client:
            return False
        try:
            peer = ipaddress.ip_address(str(client[0]))
        except ValueError:
            return False
        return any(peer in network for network in self._trusted)

    def web(self, conn: HTTPConnection) -> tuple[str, str, str] | None:
        """``(scheme, host[:port], path prefix)`` with ``http``/``https``; None when the
        request carries no usable ``Host``."""
        if self._pinned is not None:
            return self._pinned
        scheme = _WEB_SCHEME.get(str(conn.scope.get("scheme", "http")), "http")
        host = conn.headers.get("host", "")
        if self._trusts(conn):
            proto = conn.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
            scheme = _WEB_SCHEME.get(proto, scheme)
            forwarded = conn.headers.get("x-forwarded-host", "").split(",")[0].strip()
            if forwarded:
                host = forwarded
        if not _HOST.match(host):
            return None
        return scheme, host.lower(), ""

    def origin(self, conn: HTTPConnection) -> str | None:
        """The app's own origin as a browser would write it (``https://app.example``)."""
        found = self.web(conn)
        if found is None:
            return None
        scheme, host, _ = found
        return normalize_origin(f"{scheme}://{host}")

    def ws_url(self, conn: HTTPConnection) -> str | None:
        """``ws(s)://host[:port][prefix]`` of the app (no trailing slash), or None."""
        found = self.web(conn)
        if found is None:
            return None
        scheme, host, prefix = found
        return f"{'wss' if scheme == 'https' else 'ws'}://{host}{prefix}"
