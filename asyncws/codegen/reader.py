"""`describe`: an AsyncAPI 3 document in asyncws's envelope read into a `ClientDescription`.

What a client of the asyncws wire protocol needs is read from the document (see
docs/asyncapi.md and docs/protocol.md), whether asyncws wrote it or a person did: the
**endpoint** is the channel of the ``receive`` operations (its address is the websocket path,
with path parameters, if any); the operations and topics are read by
`asyncws.codegen.operations`, the schemas by `asyncws.codegen.schemas`; the **error codes**
are the ``code`` enum of the document's ``error`` frame (or the protocol's codes when the
document describes no error frame); the servers are those that speak ws/wss.

What the document uses that a generated client cannot support is reported: ``warnings``
for what is skipped or not enforced, `CodegenError` for what makes a client impossible
(no websocket server, non-JSON content, several endpoints).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..asyncapi.model import ERROR_CODES
from .document import Document, is_json_content_type, text_of
from .model import (
    AuthDescription,
    ClientDescription,
    CodegenError,
    ErrorCodeDescription,
    ServerDescription,
    template_parts,
)
from .names import ERROR_CLASS_NAMES, Names, pascal, words
from .operations import read_requests, read_topics
from .schemas import SchemaReader

__all__ = ["WS_PROTOCOLS", "describe"]

WS_PROTOCOLS = frozenset({"ws", "wss"})


class _Reader:
    """One pass over a document; see `describe`."""

    def __init__(self, document: Mapping[str, Any], name: str | None) -> None:
        self.document = Document(document)
        self.doc = document
        self.names = Names()
        self.schemas = SchemaReader(self.document, self.names)
        self.client_name = pascal(name) if name else self._default_name()
        self.names.taken |= {
            self.client_name + "Client",
            self.client_name + "Error",
            self.client_name + "ClientError",
            self.client_name + "Options",
        }
        self.problems = self.document.problems
        self.warnings = self.document.warnings

    def warn(self, text: str) -> None:
        self.document.warn(text)

    def deref(self, obj: Any, where: str) -> Any:
        return self.document.deref(obj, where)

    def _default_name(self) -> str:
        info = self.doc.get("info")
        title = info.get("title") if isinstance(info, Mapping) else None
        return pascal(title) if isinstance(title, str) and words(title) else "Api"

    def describe(self) -> ClientDescription:
        doc = self.doc
        version = str(doc.get("asyncapi", ""))
        if not version.startswith("3."):
            raise CodegenError(
                [f"AsyncAPI version {version or '(missing)'}: only 3.x is supported"]
            )
        default_type = doc.get("defaultContentType")
        if isinstance(default_type, str) and not is_json_content_type(default_type):
            self.problems.append(
                f"defaultContentType {default_type!r}: asyncws clients speak JSON text frames"
            )
        servers = self._servers()
        endpoint = self._endpoint()
        if self.problems:
            raise CodegenError(self.problems)
        assert endpoint is not None
        channel = self.document.channel(endpoint)
        address = channel.get("address")
        address = address if isinstance(address, str) else "/"
        endpoint_params = [
            self.document.param(name, channel, f"channel {endpoint!r}")
            for name, is_param in template_parts(address)
            if is_param
        ]
        if endpoint_params:
            self.warn(
                f"the endpoint address {address!r} has parameters: the client's constructor "
                "takes them as arguments"
            )
        requests = read_requests(self.document, self.schemas, endpoint)
        topics = read_topics(self.document, self.schemas, endpoint, requests)
        error_codes = self._error_codes(endpoint)
        auth = self._auth()
        if self.problems:
            raise CodegenError(self.problems)
        if not requests.operations and not topics:
            raise CodegenError(["the document has no operation a client can use"])
        info = doc.get("info") if isinstance(doc.get("info"), Mapping) else {}
        assert isinstance(info, Mapping)
        return ClientDescription(
            name=self.client_name,
            title=str(info.get("title") or "AsyncAPI"),
            version=str(info.get("version") or ""),
            description=text_of(info.get("description")),
            endpoint=None if endpoint_params else "/" + address.lstrip("/"),
            endpoint_address="/" + address.lstrip("/"),
            endpoint_params=endpoint_params,
            servers=servers,
            operations=requests.operations,
            topics=topics,
            schemas=self.schemas.schemas,
            error_codes=error_codes,
            auth=auth,
            warnings=self.warnings,
        )

    def _servers(self) -> list[ServerDescription]:
        servers = self.doc.get("servers")
        if not isinstance(servers, Mapping) or not servers:
            return []
        found: list[ServerDescription] = []
        skipped: list[str] = []
        for key, server in servers.items():
            server = self.deref(server, f"server {key!r}")
            if not isinstance(server, Mapping):
                continue
            protocol = str(server.get("protocol", "")).lower()
            if protocol not in WS_PROTOCOLS:
                skipped.append(f"{key} ({protocol or 'no protocol'})")
                continue
            host = str(server.get("host", "")).rstrip("/")
            pathname = str(server.get("pathname", "") or "").rstrip("/")
            if pathname and not pathname.startswith("/"):
                pathname = "/" + pathname
            found.append(
                ServerDescription(
                    str(key), f"{protocol}://{host}{pathname}", text_of(server.get("description"))
                )
            )
        if skipped and not found:
            self.problems.append(
                "no server speaks ws or wss (" + ", ".join(skipped) + "): asyncws clients "
                "speak the websocket protocol only"
            )
        elif skipped:
            self.warn("servers that do not speak ws/wss are left out: " + ", ".join(skipped))
        return found

    def _endpoint(self) -> str | None:
        keys: list[str] = []
        for op_id, op in self.document.operations():
            if op.get("action") != "receive":
                continue
            key = self.document.channel_key(op.get("channel"), f"operation {op_id!r}")
            if key is not None and key not in keys:
                keys.append(key)
        if len(keys) > 1:
            self.problems.append(
                f"receive operations use several channels ({', '.join(keys)}): a client talks "
                "to one websocket endpoint (the channel of the receive operations)"
            )
            return None
        if keys:
            return keys[0]
        # no requests: the endpoint is the one channel that is not a topic
        topics = set()
        for op_id, op in self.document.operations():
            if op.get("action") == "send":
                key = self.document.channel_key(op.get("channel"), f"operation {op_id!r}")
                topics.add(key)
        channels = self.doc.get("channels")
        rest = [k for k in (channels or {}) if k not in topics]
        if len(rest) == 1:
            return str(rest[0])
        self.problems.append(
            "cannot tell which channel is the websocket endpoint: no receive operation, and "
            f"{len(rest)} channels are not topics"
        )
        return None

    def _error_codes(self, endpoint: str) -> list[ErrorCodeDescription]:
        codes: list[tuple[str, str | None]] = []
        for op_id, op in self.document.operations():
            if op.get("action") != "receive":
                continue
            reply = self.deref(op.get("reply"), op_id) if op.get("reply") is not None else None
            refs = reply.get("messages") if isinstance(reply, Mapping) else None
            for ref in refs if isinstance(refs, list) else []:
                found = self.document.message(ref, f"operation {op_id!r} reply")
                if found is None:
                    continue
                ok, payload = self.document.payload(found[1], found[0])
                schema = self.deref(payload, found[0]) if ok and payload is not None else None
                props = schema.get("properties") if isinstance(schema, Mapping) else None
                if not isinstance(props, Mapping):
                    continue
                kind = self.deref(props.get("type"), found[0]) if "type" in props else None
                if not isinstance(kind, Mapping) or kind.get("const") != "error":
                    continue
                code = self.deref(props.get("code"), found[0]) if "code" in props else None
                if isinstance(code, Mapping) and isinstance(code.get("enum"), list):
                    documented = _bullets(code.get("description"))
                    for value in code["enum"]:
                        if isinstance(value, str) and value not in dict(codes):
                            codes.append((value, documented.get(value)))
        if not codes:
            self.warn(
                "the document describes no error frame with a `code` enum: the client knows "
                "the asyncws protocol's error codes"
            )
            codes = [(str(code), text) for code, text in ERROR_CODES.items()]
        known = {str(k): v for k, v in ERROR_CODES.items()}
        return [
            ErrorCodeDescription(
                code=code,
                class_name=self.names.take(
                    ERROR_CLASS_NAMES.get(code, pascal(code)),
                    ERROR_CLASS_NAMES.get(code, pascal(code)) + "Error",
                ),
                description=text or known.get(code),
            )
            for code, text in codes
        ]

    def _auth(self) -> list[AuthDescription]:
        components = self.doc.get("components")
        schemes = components.get("securitySchemes") if isinstance(components, Mapping) else None
        if not isinstance(schemes, Mapping):
            return []
        found: list[AuthDescription] = []
        for key, scheme in schemes.items():
            scheme = self.deref(scheme, f"security scheme {key!r}")
            if not isinstance(scheme, Mapping):
                continue
            kind = scheme.get("type")
            description = text_of(scheme.get("description"))
            if kind in ("oauth2", "openIdConnect") or (
                kind == "http" and str(scheme.get("scheme", "")).lower() == "bearer"
            ):
                found.append(AuthDescription(str(key), "token", None, description))
            elif kind in ("httpApiKey", "apiKey") and scheme.get("in") in ("query", "header"):
                found.append(
                    AuthDescription(
                        str(key), str(scheme["in"]), str(scheme.get("name")), description
                    )
                )
            else:
                self.warn(
                    f"security scheme {key!r} ({kind}) is not supported by the generated "
                    "client: pass what it needs with params=/headers="
                )
                found.append(AuthDescription(str(key), "other", None, description))
        return found


def _bullets(text: Any) -> dict[str, str]:
    """``- `code`: meaning`` lines of a description."""
    if not isinstance(text, str):
        return {}
    found: dict[str, str] = {}
    for match in re.finditer(r"^\s*[-*]\s+`([^`]+)`\s*:\s*(.+)$", text, re.MULTILINE):
        found[match.group(1)] = match.group(2).strip()
    return found


def describe(document: Mapping[str, Any], name: str | None = None) -> ClientDescription:
    """The client described by an AsyncAPI 3.x document; ``name`` is the base of the class
    names (default: the document's title: ``"Chat"`` gives ``ChatClient``)."""
    reader = _Reader(document, name)
    return reader.describe()
