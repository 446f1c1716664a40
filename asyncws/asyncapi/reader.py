"""Reading any AsyncAPI 3 WebSocket document in its own framing: a neutral `WireAPI`.

Spec-first apps (`asyncws.document_app`), the client generators
(`asyncws.codegen.framed`) and ``asyncws check`` all read a document through `read_api`, so
they agree on every frame: which endpoint (websocket address) a channel is on, which
messages go each way, how a frame is told apart from the others (`asyncws.framing`), and
how a reply is correlated with its request. The description itself is in
`asyncws.asyncapi.wire` (re-exported here).

The document describes the server (AsyncAPI 3: ``receive`` is what the server receives
from clients, ``send`` what it sends). How it is read:

* **Endpoints**: channels are grouped by address; every channel at one address is on the
  same websocket connection (the server's ``pathname`` prefixes it). ``{name}`` in an
  address is a parameter, taken from the URL path.
* **Messages** of ``receive`` operations are what clients send; of ``send`` operations, and
  of replies, what the server sends. Each becomes a `MessageShape` (const/enum
  discriminators, the schema ``discriminator`` with the message ``name``, a schema match,
  and the pointer of its ``correlationId.location``).
* **Refused, by name** (a `SpecError` listing each): servers whose protocol is not
  ``ws``/``wss``; channels without an address; operations whose reply goes to another
  address or to a dynamic ``reply.address``; header correlation ids; non-JSON messages;
  a message received by two operations of one endpoint; messages that no discriminator or
  schema tells apart. With ``skip_unsupported=True`` an unsupported operation is left out
  and listed in `WireAPI.skipped` instead (the protocol and reference errors still stop).
* **External references** (``other.yaml#/components/schemas/X``) are resolved against the
  document's folder and inlined; a mapping given without ``base`` cannot resolve them and
  says so, and remote (``http:``) references are refused (asyncws fetches nothing).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..exceptions import UsageError
from ..framing import MessageShape, correlation_pointer, indistinct, shape_of
from .schemas import deref, make_validator, pointer_parts
from .wire import WireAPI, WireEndpoint, WireMessage, WireOperation, WireParam

__all__ = [
    "WS_PROTOCOLS",
    "WireAPI",
    "WireEndpoint",
    "WireMessage",
    "WireOperation",
    "WireParam",
    "framing_of_document",
    "load_document",
    "protocol_problems",
    "read_api",
    "resolve_external_refs",
]

WS_PROTOCOLS = frozenset({"ws", "wss"})
_MAX_REF_DEPTH = 32


class SpecError(UsageError, ValueError):
    """The document cannot be served or called as it is (one problem a line)."""

    def __init__(self, problems: list[str], *, headline: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__(
            "\n".join([headline or "the AsyncAPI document cannot be used:", *self.problems])
        )


# -- external references ---------------------------------------------------------------------


def _load_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def resolve_external_refs(document: dict[str, Any], base: Path | None) -> dict[str, Any]:
    """``document`` with every ``$ref`` to another file inlined (a copy when there are any).

    ``base`` is the folder of the document; references inside a referenced file are
    resolved against that file (its ``#/...`` ones too). Raises `SpecError` for a file that
    does not exist, a pointer that points at nothing in it, a remote reference, or any
    external reference when ``base`` is None."""
    problems: list[str] = []
    cache: dict[Path, Any] = {}

    def load(path: Path) -> Any:
        if path not in cache:
            cache[path] = _load_file(path)
        return cache[path]

    def walk(node: Any, here: Path | None, root: Any, depth: int) -> Any:
        if depth > _MAX_REF_DEPTH:
            problems.append("external references nest more than 32 deep (a loop?)")
            return node
        if isinstance(node, list):
            return [walk(item, here, root, depth) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return follow(ref, here, depth)
        if isinstance(ref, str) and root is not None and root is not document:
            # a local reference inside an external file: resolve it in that file
            return follow_local(ref, here, root, depth)
        return {k: walk(v, here, root, depth) for k, v in node.items()}

    def follow_local(ref: str, here: Path | None, root: Any, depth: int) -> Any:
        target = root
        for part in pointer_parts(ref):
            if not isinstance(target, Mapping) or part not in target:
                problems.append(f"$ref {ref!r} in {here}: points at nothing in that file")
                return {}
            target = target[part]
        return walk(copy.deepcopy(target), here, root, depth + 1)

    def follow(ref: str, here: Path | None, depth: int) -> Any:
        if urlsplit(ref).scheme in ("http", "https", "ftp"):
            problems.append(f"$ref {ref!r}: remote references are not fetched; save the file")
            return {}
        if here is None:
            problems.append(
                f"$ref {ref!r} points at another file, but the document was given as a "
                "mapping: load it from its file (or pass base=) so the reference can resolve"
            )
            return {}
        file_part, _, pointer = ref.partition("#")
        path = (here / file_part).resolve()
        if not path.is_file():
            problems.append(f"$ref {ref!r}: the file {path} does not exist")
            return {}
        try:
            root = load(path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            problems.append(f"$ref {ref!r}: cannot read {path}: {exc}")
            return {}
        target = root
        if pointer:
            for part in pointer_parts("#" + pointer):
                if not isinstance(target, Mapping) or part not in target:
                    problems.append(f"$ref {ref!r}: #{pointer} points at nothing in {path}")
                    return {}
                target = target[part]
        return walk(copy.deepcopy(target), path.parent, root, depth + 1)

    resolved = walk(document, base, document, 0)
    if problems:
        raise SpecError(sorted(set(problems)))
    assert isinstance(resolved, dict)
    return resolved


def framing_of_document(document: Mapping[str, Any]) -> str:
    """``"asyncws"`` or ``"document"``: the framing a document's frames are in.

    ``x-asyncws-framing`` says it; otherwise a document carrying any ``x-asyncws-*``
    extension (those asyncws writes) is in asyncws's envelope, and any other document in
    its own framing."""
    declared = document.get("x-asyncws-framing")
    if declared in ("asyncws", "document"):
        return str(declared)
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            for key, value in node.items():
                if isinstance(key, str) and key.startswith("x-asyncws-"):
                    return "asyncws"
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return "document"


class _Reader:
    def __init__(self, document: dict[str, Any], skip_unsupported: bool) -> None:
        self.doc = document
        self.skip = skip_unsupported
        self.problems: list[str] = []
        self.skipped: list[str] = []
        self._messages: dict[int, WireMessage] = {}

    def unsupported(self, text: str) -> None:
        (self.skipped if self.skip else self.problems).append(text)

    def deref(self, obj: Any, where: str) -> Any:
        try:
            return deref(self.doc, obj)
        except ValueError as exc:
            raise SpecError([f"{where}: {exc}"]) from None

    def servers(self) -> tuple[dict[str, Any], str]:
        servers = self.doc.get("servers") or {}
        out: dict[str, Any] = {}
        pathname = ""
        for name, raw in servers.items() if isinstance(servers, Mapping) else ():
            server = self.deref(raw, f"server {name!r}")
            protocol = (
                str(server.get("protocol", "")).lower() if isinstance(server, Mapping) else ""
            )
            if protocol not in WS_PROTOCOLS:
                self.problems.append(
                    f"server {name!r} uses protocol {protocol or '(none)'!r}: asyncws serves and "
                    "generates WebSocket APIs only (ws, wss)"
                )
                continue
            out[name] = server
            if not pathname and isinstance(server.get("pathname"), str):
                pathname = server["pathname"].rstrip("/")
        return out, pathname

    def message(self, ref: Any, where: str, operation: str | None) -> WireMessage | None:
        message = self.deref(ref, where)
        if not isinstance(message, Mapping):
            self.problems.append(f"{where}: a message must be an object")
            return None
        key = (
            ref["$ref"].rsplit("/", 1)[-1] if isinstance(ref, Mapping) and "$ref" in ref else where
        )
        name = str(message.get("name") or key)
        content = message.get("contentType") or self.doc.get("defaultContentType")
        if isinstance(content, str) and content and "json" not in content.lower():
            self.unsupported(
                f"{where}: message {name!r} is {content}; asyncws frames are JSON text"
            )
            return None
        correlation = self.deref(message.get("correlationId"), where)
        location = correlation.get("location") if isinstance(correlation, Mapping) else None
        pointer: tuple[str, ...] | None = None
        if isinstance(location, str):
            try:
                pointer = correlation_pointer(location)
            except ValueError as exc:
                self.unsupported(f"{where}: message {name!r}: {exc}")
                return None
        schema = message.get("payload")
        if isinstance(schema, Mapping) and "schemaFormat" in schema:
            fmt = str(schema.get("schemaFormat"))
            if "asyncapi" not in fmt and "json" not in fmt:
                self.unsupported(f"{where}: message {name!r}: schema format {fmt} is not supported")
                return None
            schema = schema.get("schema")
        resolved = self.deref(schema, where) if schema is not None else {}
        resolved = self._merged(resolved, where)
        checker = make_validator(schema if schema is not None else {}, self.doc)
        shape = shape_of(
            key,
            name,
            resolved,
            correlation=pointer,
            matches=checker.is_valid,
            operation=operation,
        )
        return WireMessage(
            key=key,
            name=name,
            schema=schema if schema is not None else {},
            shape=shape,
            title=message.get("title"),
            summary=message.get("summary"),
            description=message.get("description"),
            correlation=location if isinstance(location, str) else None,
        )

    def _merged(self, schema: Any, where: str) -> Any:
        """``allOf`` parts merged (properties and required), for the discriminators."""
        if not isinstance(schema, Mapping) or not isinstance(schema.get("allOf"), list):
            return schema
        props: dict[str, Any] = dict(schema.get("properties") or {})
        required = list(schema.get("required") or [])
        for part in schema["allOf"]:
            sub = self._merged(self.deref(part, where), where)
            if isinstance(sub, Mapping):
                props.update(sub.get("properties") or {})
                required += list(sub.get("required") or [])
        props = {k: self.deref(v, where) for k, v in props.items()}
        return {**schema, "properties": props, "required": required}

    def channel_key(self, ref: Any, where: str) -> str | None:
        if not isinstance(ref, Mapping) or not isinstance(ref.get("$ref"), str):
            self.problems.append(f"{where}: the channel must be a reference to #/channels/...")
            return None
        parts = pointer_parts(ref["$ref"])
        if len(parts) != 2 or parts[0] != "channels" or parts[1] not in self.channels:
            self.problems.append(f"{where}: channel {ref['$ref']!r} is not defined")
            return None
        return parts[1]

    def read(self) -> WireAPI:
        doc = self.doc
        info = doc.get("info") or {}
        servers, pathname = self.servers()
        raw_channels = doc.get("channels") or {}
        self.channels: dict[str, Mapping[str, Any]] = {
            k: self.deref(v, f"channel {k!r}") for k, v in raw_channels.items()
        }
        endpoints: dict[str, WireEndpoint] = {}
        operations = doc.get("operations") or {}
        for op_id, raw in operations.items():
            self.operation(op_id, raw, pathname, endpoints)
        for endpoint in endpoints.values():
            self.check_endpoint(endpoint)
        if self.problems:
            raise SpecError(self.problems)
        return WireAPI(
            title=str(info.get("title", "asyncws app")),
            version=str(info.get("version", "0.1.0")),
            description=info.get("description"),
            document=doc,
            endpoints=list(endpoints.values()),
            servers=servers,
            skipped=self.skipped,
        )

    def operation(
        self, op_id: str, raw: Any, pathname: str, endpoints: dict[str, WireEndpoint]
    ) -> None:
        """Add an operation to the endpoint of its channel's address (made on first use),
        or note why it cannot be."""
        op = self.deref(raw, f"operation {op_id!r}")
        where = f"operation {op_id!r}"
        key = self.channel_key(op.get("channel"), where)
        if key is None:
            return
        channel = self.channels[key]
        address = channel.get("address")
        if not isinstance(address, str):
            self.unsupported(f"{where}: channel {key!r} has no address (a dynamic channel)")
            return
        path = pathname + "/" + address.lstrip("/") if address.strip("/") else pathname + "/"
        action = op.get("action")
        if action not in ("send", "receive"):
            self.problems.append(f"{where}: action must be send or receive")
            return
        endpoint = endpoints.get(path)
        if endpoint is None:
            endpoint = WireEndpoint(path, [], self.params(key, channel))
            endpoints[path] = endpoint
        if key not in endpoint.channels:
            endpoint.channels.append(key)
            endpoint.params.update(self.params(key, channel))
        refs = op.get("messages") or list((channel.get("messages") or {}).values())
        messages = [
            m
            for i, ref in enumerate(refs)
            if (m := self.message(ref, f"{where} message {i}", op_id)) is not None
        ]
        if not messages:
            self.unsupported(f"{where}: no message this framing can carry")
            return
        wire = WireOperation(
            op_id,
            action,
            key,
            messages,
            summary=op.get("summary"),
            description=op.get("description"),
        )
        reply = self.deref(op.get("reply"), where)
        if isinstance(reply, Mapping):
            replies = self.replies(reply, where, action, key, address)
            if replies is None:
                return
            wire.replies = replies
        (endpoint.receive if action == "receive" else endpoint.send).append(wire)

    def replies(
        self, reply: Mapping[str, Any], where: str, action: str, key: str, address: str
    ) -> list[WireMessage] | None:
        """The messages of an operation's reply; None (and why) when the reply is not one
        asyncws can carry: it must come back on the request's connection."""
        if action == "send":
            self.unsupported(
                f"{where}: the server sends a request and expects a reply; asyncws "
                "serves replies to client requests only"
            )
            return None
        if reply.get("address") is not None:
            self.unsupported(f"{where}: its reply goes to a dynamic address (reply.address)")
            return None
        reply_key = key
        if reply.get("channel") is not None:
            reply_key = self.channel_key(reply.get("channel"), f"{where} reply") or key
        reply_channel = self.channels.get(reply_key, {})
        reply_address = reply_channel.get("address")
        if not isinstance(reply_address, str) or reply_address.strip("/") != address.strip("/"):
            self.unsupported(
                f"{where}: its reply goes to channel {reply_key!r} at another address; "
                "a reply must come back on the request's connection"
            )
            return None
        refs = reply.get("messages") or list((reply_channel.get("messages") or {}).values())
        return [
            m
            for i, ref in enumerate(refs)
            if (m := self.message(ref, f"{where} reply message {i}", None)) is not None
        ]

    def params(self, key: str, channel: Mapping[str, Any]) -> dict[str, WireParam]:
        out: dict[str, WireParam] = {}
        for name, raw in (channel.get("parameters") or {}).items():
            spec = self.deref(raw, f"channel {key!r} parameter {name!r}")
            if not isinstance(spec, Mapping):
                spec = {}
            if spec.get("location"):
                self.problems.append(
                    f"channel {key!r} parameter {name!r}: a location in the message is not "
                    "supported (parameters come from the URL path)"
                )
            enum = spec.get("enum")
            schema = spec.get("x-asyncws-schema")
            out[name] = WireParam(
                name=name,
                description=spec.get("description"),
                enum=tuple(str(v) for v in enum) if isinstance(enum, list) else None,
                default=str(spec["default"]) if spec.get("default") is not None else None,
                examples=tuple(str(v) for v in spec.get("examples") or ()),
                schema=schema if isinstance(schema, Mapping) else None,
            )
        return out

    def check_endpoint(self, endpoint: WireEndpoint) -> None:
        owners: dict[str, str] = {}
        for op in endpoint.receive:
            for m in op.messages:
                other = owners.get(m.key)
                if other is not None and other != op.id:
                    self.unsupported(
                        f"operation {op.id!r}: message {m.name!r} is also received by "
                        f"{other!r} on {endpoint.address}: a frame must name one operation"
                    )
                owners[m.key] = op.id
        for label, shapes in (
            ("received", _unique(endpoint.inbound())),
            ("sent", _unique([m.shape for m in endpoint.outbound()])),
        ):
            for a, b in indistinct(shapes):
                sa, sb = self._schema_of(endpoint, a.key), self._schema_of(endpoint, b.key)
                if sa == sb:
                    self.problems.append(
                        f"messages {a.name!r} and {b.name!r} {label} on {endpoint.address} have "
                        "the same discriminators and schema: no frame can tell them apart "
                        "(give each a const property, e.g. an 'event' or 'type')"
                    )

    def _schema_of(self, endpoint: WireEndpoint, key: str) -> Any:
        for op in (*endpoint.receive, *endpoint.send):
            for m in (*op.messages, *op.replies):
                if m.key == key:
                    return self.deref(m.schema, key)
        return None


def _unique(shapes: list[MessageShape]) -> list[MessageShape]:
    seen: dict[str, MessageShape] = {}
    for s in shapes:
        seen.setdefault(s.key, s)
    return list(seen.values())


def load_document(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """An AsyncAPI 3.x document from a ``.json`` / ``.yaml`` file or a mapping (copied), with
    its external references resolved against its folder (see `resolve_external_refs`).
    Raises `SpecError`."""
    base: Path | None = None
    if isinstance(source, Mapping):
        document = copy.deepcopy(dict(source))
    else:
        path = Path(source)
        text = path.read_text(encoding="utf-8")
        loaded = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if not isinstance(loaded, dict):
            raise SpecError([f"{source}: not an AsyncAPI document (not a mapping)"])
        document = loaded
        base = path.resolve().parent
    version = str(document.get("asyncapi", ""))
    if not version.startswith("3."):
        raise SpecError([f"AsyncAPI version {version or '(missing)'}: only 3.x is supported"])
    return resolve_external_refs(document, base)


def protocol_problems(document: Mapping[str, Any]) -> list[str]:
    """One line for each server whose protocol is not ws/wss."""
    servers = document.get("servers") or {}
    problems = []
    for name, server in servers.items() if isinstance(servers, Mapping) else ():
        protocol = str(server.get("protocol", "")).lower() if isinstance(server, Mapping) else ""
        if protocol not in WS_PROTOCOLS:
            problems.append(
                f"server {name!r} uses protocol {protocol or '(none)'!r}: asyncws serves and "
                "generates WebSocket APIs only (ws, wss)"
            )
    return problems


def read_api(
    source: str | Path | Mapping[str, Any],
    *,
    skip_unsupported: bool = False,
    base: Path | None = None,
) -> WireAPI:
    """Read an AsyncAPI 3.x document (a ``.json``/``.yaml`` path or a mapping) in its own
    framing. Raises `SpecError` listing every problem; see the module docstring."""
    if isinstance(source, Mapping):
        document = copy.deepcopy(dict(source))
    else:
        path = Path(source)
        try:
            loaded = _load_file(path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise SpecError([f"{path}: {exc}"]) from None
        if not isinstance(loaded, dict):
            raise SpecError([f"{path}: not an AsyncAPI document (not a mapping)"])
        document = loaded
        base = base or path.resolve().parent
    version = str(document.get("asyncapi", ""))
    if not version.startswith("3."):
        raise SpecError([f"AsyncAPI version {version or '(missing)'}: only 3.x is supported"])
    document = resolve_external_refs(document, base)
    return _Reader(document, skip_unsupported).read()
