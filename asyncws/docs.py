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
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import jinja2
import yaml
from markupsafe import Markup, escape

from .resources import templates_dir

__all__ = ["render_html", "write_static"]

_MAX_DEPTH: Final = 12  # nesting levels of one schema tree
_MAX_NODES: Final = 400  # nodes of one schema tree; the rest is cut with a note
_MAX_EXAMPLE_DEPTH: Final = 8
_CONSTRAINT_KEYS: Final = (
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "contentMediaType",
    "contentEncoding",
)
_UNIONS: Final = ("oneOf", "anyOf", "allOf")


# -- public API -------------------------------------------------------------------------------


def render_html(
    document: Mapping[str, Any],
    ws_url_path: str | None = None,
    *,
    json_url: str = "asyncapi.json",
    yaml_url: str = "asyncapi.yaml",
) -> str:
    """The documentation page of ``document``, as one self-contained HTML string.

    ``ws_url_path`` is the path of the app's websocket endpoint (e.g. ``"/ws"``) that the
    console connects to, on the page's own host; without it the path is taken from the
    document (an endpoint channel's address, else the first server's ``pathname``).
    ``json_url`` and ``yaml_url`` are the links to the document, relative to the page by
    default (a page served at ``/asyncapi`` links to ``/asyncapi.json``).
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
    return env


@cache
def _static_text(name: str) -> str:
    """A file of templates/docs/ that is included verbatim (the CSS and the console script)."""
    return (templates_dir() / "docs" / name).read_text(encoding="utf-8")


def _csp_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


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


# -- references -------------------------------------------------------------------------------


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


class _Resolver:
    """Local JSON pointers (``#/components/schemas/Post``) into one document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def pointer(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return None
        node: Any = self.document
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return None
        return node

    def deref(self, value: Any) -> tuple[dict[str, Any], str | None]:
        """Follow ``$ref`` chains: (the object, the last pointer followed or None)."""
        seen: set[str] = set()
        last: str | None = None
        while isinstance(value, Mapping) and isinstance(value.get("$ref"), str):
            ref = value["$ref"]
            if ref in seen:
                return {}, ref
            seen.add(ref)
            last = ref
            value = self.pointer(ref)
        return _as_dict(value), last


def _ref_name(ref: str | None) -> str | None:
    if not ref:
        return None
    return ref.rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~") or None


class _Anchors:
    """Unique, safe HTML ids."""

    def __init__(self) -> None:
        self._used: dict[str, int] = {}
        self._by_key: dict[tuple[str, str], str] = {}

    def get(self, kind: str, key: str) -> str:
        found = self._by_key.get((kind, key))
        if found is not None:
            return found
        base = kind + "-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", key).strip("-") or "x")
        count = self._used.get(base, 0)
        self._used[base] = count + 1
        anchor = base if count == 0 else f"{base}-{count + 1}"
        self._by_key[(kind, key)] = anchor
        return anchor


# -- schema trees -----------------------------------------------------------------------------


def _rest(description: Any, summary: Any) -> str | None:
    """A description without a first paragraph that repeats the summary (docstrings)."""
    if not isinstance(description, str):
        return None
    first, _, rest = description.strip().partition("\n\n")
    if _same_text(first, summary):
        return rest.strip() or None
    return description


def _same_text(a: Any, b: Any) -> bool:
    """Whether two texts say the same (case, spacing and a final period aside)."""

    def norm(text: Any) -> str:
        return re.sub(r"\s+", " ", str(text or "")).strip().rstrip(".").lower()

    return isinstance(a, str) and isinstance(b, str) and norm(a) == norm(b)


def _squash(text: str | None) -> str:
    return re.sub(r"[\s_-]+", "", text or "").lower()


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


@dataclass
class SchemaNode:
    """One node of a payload tree, ready for the template."""

    name: str | None = None
    label: str = "any"
    ref: str | None = None
    ref_anchor: str | None = None
    title: str | None = None
    description: str | None = None
    required: bool = False
    constraints: list[tuple[str, str]] = field(default_factory=list)
    enum: list[str] = field(default_factory=list)
    const: str | None = None
    default: str | None = None
    examples: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    children: list[SchemaNode] = field(default_factory=list)
    variant_kind: str | None = None
    variants: list[SchemaNode] = field(default_factory=list)
    discriminator: str | None = None
    cycle: bool = False
    truncated: bool = False

    @property
    def expandable(self) -> bool:
        return bool(self.children or self.variants)


class _TreeBuilder:
    def __init__(self, resolver: _Resolver, anchors: _Anchors) -> None:
        self.resolver = resolver
        self.anchors = anchors
        self.nodes = 0

    def build(self, schema: Any) -> SchemaNode:
        self.nodes = 0
        return self._node(schema, None, False, (), 0)

    def _node(
        self, raw: Any, name: str | None, required: bool, stack: tuple[str, ...], depth: int
    ) -> SchemaNode:
        self.nodes += 1
        node = SchemaNode(name=name, required=required)
        if raw is True or raw is None:
            return node
        if raw is False:
            node.label = "never"
            return node
        if not isinstance(raw, Mapping):
            node.label = "invalid schema"
            return node
        ref = raw.get("$ref") if isinstance(raw.get("$ref"), str) else None
        if ref is not None:
            node.ref = _ref_name(ref)
            node.ref_anchor = self._schema_anchor(ref)
            if ref in stack:
                node.cycle = True
                node.label = node.ref or "recursive"
                return node
            stack = (*stack, ref)
            target, _ = self.resolver.deref(raw)
            siblings = {k: v for k, v in raw.items() if k != "$ref"}
            schema = {**target, **siblings}
            if not target:
                node.label = "unresolved $ref"
                node.description = ref
                return node
        else:
            schema = dict(raw)
        self._describe(node, schema)
        if depth >= _MAX_DEPTH or self.nodes >= _MAX_NODES:
            node.truncated = self._has_structure(schema)
            return node
        self._structure(node, schema, stack, depth)
        return node

    @staticmethod
    def _has_structure(schema: Mapping[str, Any]) -> bool:
        keys = ("properties", "items", "additionalProperties", "prefixItems", *_UNIONS)
        return any(k in schema for k in keys)

    def _schema_anchor(self, ref: str) -> str | None:
        prefix = "#/components/schemas/"
        if ref.startswith(prefix):
            return self.anchors.get("schema", ref[len(prefix) :])
        return None

    def _describe(self, node: SchemaNode, schema: Mapping[str, Any]) -> None:
        node.label = self._label(schema)
        title = schema.get("title")
        names = (node.name, node.ref, (node.ref or "").rsplit(".", 1)[-1])
        if isinstance(title, str) and _squash(title) not in {_squash(n) for n in names}:
            node.title = title
        if isinstance(schema.get("description"), str):
            node.description = schema["description"]
        for key in _CONSTRAINT_KEYS:
            if key in schema and not isinstance(schema[key], Mapping | list):
                value = schema[key]
                node.constraints.append(
                    (key, value if isinstance(value, str) else _json_text(value))
                )
        if isinstance(schema.get("enum"), list):
            node.enum = [_json_text(v) for v in schema["enum"]]
        if "const" in schema:
            node.const = _json_text(schema["const"])
        if "default" in schema:
            node.default = _json_text(schema["default"])
        examples = schema.get("examples")
        if isinstance(examples, list):
            node.examples = [_json_text(v) for v in examples[:5]]
        elif "example" in schema:
            node.examples = [_json_text(schema["example"])]
        for flag in ("deprecated", "readOnly", "writeOnly", "nullable"):
            if schema.get(flag) is True:
                node.flags.append(flag)

    def _label(self, schema: Mapping[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            label = " | ".join(str(k) for k in kind)
        elif isinstance(kind, str):
            label = kind
        elif "properties" in schema:
            label = "object"
        elif "items" in schema:
            label = "array"
        elif "const" in schema:
            label = "const"
        elif "enum" in schema:
            label = "enum"
        else:
            union = next((u for u in _UNIONS if isinstance(schema.get(u), list)), None)
            label = union if union is not None else "any"
        if label == "array":
            items = schema.get("items")
            if isinstance(items, Mapping):
                inner = _ref_name(items.get("$ref")) if isinstance(items.get("$ref"), str) else None
                if inner is None and isinstance(items.get("type"), str):
                    inner = items["type"]
                if inner:
                    label = f"array<{inner}>"
        return label

    def _structure(
        self, node: SchemaNode, schema: Mapping[str, Any], stack: tuple[str, ...], depth: int
    ) -> None:
        properties = schema.get("properties")
        required = _list(schema.get("required"))
        if isinstance(properties, Mapping):
            for pname, pschema in properties.items():
                node.children.append(
                    self._node(pschema, str(pname), pname in required, stack, depth + 1)
                )
        for key, label in (("patternProperties", None), ("additionalProperties", "[key: string]")):
            extra = schema.get(key)
            if key == "patternProperties" and isinstance(extra, Mapping):
                for pattern, pschema in extra.items():
                    child = self._node(pschema, f"[key ~ {pattern}]", False, stack, depth + 1)
                    node.children.append(child)
            elif label is not None and isinstance(extra, Mapping) and extra:
                node.children.append(self._node(extra, label, False, stack, depth + 1))
        if isinstance(schema.get("prefixItems"), list):
            for i, item in enumerate(schema["prefixItems"]):
                node.children.append(self._node(item, f"[{i}]", False, stack, depth + 1))
        items = schema.get("items")
        if isinstance(items, Mapping):
            node.children.append(self._node(items, "[item]", False, stack, depth + 1))
        elif isinstance(items, list):
            for i, item in enumerate(items):
                node.children.append(self._node(item, f"[{i}]", False, stack, depth + 1))
        for union in _UNIONS:
            variants = schema.get(union)
            if isinstance(variants, list) and variants:
                node.variant_kind = union
                node.variants = [
                    self._node(v, self._variant_name(v, i), False, stack, depth + 1)
                    for i, v in enumerate(variants)
                ]
                break
        discriminator = schema.get("discriminator")
        if isinstance(discriminator, str):
            node.discriminator = discriminator
        elif isinstance(discriminator, Mapping) and isinstance(
            discriminator.get("propertyName"), str
        ):
            node.discriminator = discriminator["propertyName"]

    def _variant_name(self, variant: Any, index: int) -> str:
        if isinstance(variant, Mapping):
            if isinstance(variant.get("$ref"), str):
                return _ref_name(variant["$ref"]) or f"variant {index + 1}"
            if isinstance(variant.get("title"), str):
                return str(variant["title"])
        return f"variant {index + 1}"


# -- examples ---------------------------------------------------------------------------------


def _synthesize(
    schema: Any, resolver: _Resolver, hints: Mapping[str, Any], stack: tuple[str, ...] = ()
) -> Any:
    """A plausible value for ``schema``: its examples, default, const or enum first, else a
    placeholder of its type; required properties only. ``hints`` give values by property name
    (e.g. a channel parameter's example for a ``room`` property)."""
    if not isinstance(schema, Mapping) or len(stack) > _MAX_EXAMPLE_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in stack:
            return None
        target, _ = resolver.deref(schema)
        return _synthesize({**target, **{k: v for k, v in schema.items() if k != "$ref"}},
                           resolver, hints, (*stack, ref))  # fmt: skip
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    if "example" in schema:
        return schema["example"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for union in _UNIONS:
        variants = schema.get(union)
        if isinstance(variants, list) and variants:
            if union == "allOf":
                merged: dict[str, Any] = {}
                for variant in variants:
                    value = _synthesize(variant, resolver, hints, stack)
                    if isinstance(value, dict):
                        merged.update(value)
                return merged
            return _synthesize(variants[0], resolver, hints, stack)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        out: dict[str, Any] = {}
        properties = _as_dict(schema.get("properties"))
        required = _list(schema.get("required"))
        for name, sub in properties.items():
            if name not in required:
                continue
            if name in hints and not _has_own_value(sub, resolver):
                out[name] = hints[name]
            else:
                out[name] = _synthesize(sub, resolver, hints, stack)
        return out
    if kind == "array":
        item = _synthesize(schema.get("items"), resolver, hints, stack)
        return [item] if item is not None and schema.get("minItems", 0) else []
    if kind == "string":
        return _string_placeholder(schema)
    if kind == "integer":
        return int(schema.get("minimum", 0)) if isinstance(schema.get("minimum"), int) else 0
    if kind == "number":
        minimum = schema.get("minimum")
        return minimum if isinstance(minimum, int | float) else 0
    if kind == "boolean":
        return False
    return None


def _has_own_value(schema: Any, resolver: _Resolver) -> bool:
    target, _ = resolver.deref(schema)
    return any(k in target for k in ("const", "default", "examples", "example", "enum"))


def _string_placeholder(schema: Mapping[str, Any]) -> str:
    formats = {
        "date-time": "2025-01-01T00:00:00Z",
        "date": "2025-01-01",
        "time": "00:00:00Z",
        "email": "user@example.com",
        "uuid": "00000000-0000-0000-0000-000000000000",
    }
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in formats:
        return formats[fmt]
    length = schema.get("minLength")
    text = "string"
    if isinstance(length, int) and length > len(text):
        text = text * (length // len(text) + 1)
    maximum = schema.get("maxLength")
    if isinstance(maximum, int) and maximum >= 1:
        text = text[:maximum]
    return text


# -- the page model ---------------------------------------------------------------------------


@dataclass
class MessageView:
    key: str
    anchor: str
    name: str
    title: str | None
    summary: str | None
    description: str | None
    content_type: str | None
    payload: SchemaNode | None
    headers: SchemaNode | None
    examples: list[tuple[str, str]]
    wire_type: str | None
    raw: dict[str, Any] = field(repr=False)
    body: SchemaNode | None = None  # what an operation card shows: the frame's data
    envelope: bool = False

    @property
    def generic(self) -> bool:
        """An ``ack`` or an ``error``: answers to any frame, shown briefly on cards."""
        return self.wire_type in ("ack", "error")


@dataclass
class ParamView:
    name: str
    description: str | None
    constraints: list[tuple[str, str]]
    enum: list[str]
    default: str | None
    examples: list[str]
    location: str | None


@dataclass
class ChannelView:
    key: str
    anchor: str
    address: str | None
    title: str | None
    summary: str | None
    description: str | None
    params: list[ParamView]
    messages: list[MessageView]
    is_topic: bool


@dataclass
class OperationView:
    key: str
    anchor: str
    action: str
    badge: str
    title: str | None
    summary: str | None
    description: str | None
    channel: ChannelView | None
    messages: list[MessageView]
    reply_messages: list[MessageView]
    reply_address: str | None
    reply_channel: ChannelView | None
    tags: list[str]
    security: list[str]
    wire_type: str | None
    frame: str | None
    frame_shape: str | None
    event_frames: list[tuple[str, str]]


@dataclass
class ServerView:
    key: str
    url: str
    protocol: str
    description: str | None
    security: list[str]


@dataclass
class SecurityView:
    key: str
    anchor: str
    type: str
    description: str | None
    details: list[tuple[str, str]]
    flows: list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]]


class _Page:
    """Everything the template shows, computed once from the document."""

    def __init__(self, document: Mapping[str, Any], ws_url_path: str | None) -> None:
        self.document = document
        self.resolver = _Resolver(document)
        self.anchors = _Anchors()
        self.trees = _TreeBuilder(self.resolver, self.anchors)
        info = _as_dict(document.get("info"))
        self.asyncapi = str(document.get("asyncapi", "?"))
        self.title = str(info.get("title") or "AsyncAPI document")
        self.version = str(info.get("version") or "")
        self.description = info.get("description")
        self.contact = {
            k: str(v) for k, v in _as_dict(info.get("contact")).items() if isinstance(v, str)
        }
        self.license = {
            k: str(v) for k, v in _as_dict(info.get("license")).items() if isinstance(v, str)
        }
        self.tags = [self._tag(t) for t in _list(info.get("tags"))]
        self.default_content_type = document.get("defaultContentType")
        self.security = self._security_schemes()
        self.servers = self._servers()
        self._messages: dict[str, MessageView] = {}
        self.channels = self._channels()
        self.ws_path = ws_url_path or self._endpoint_path()
        self.operations = self._operations()
        self.messages = self._all_messages()
        self.schemas = self._schemas()

    # -- small pieces -------------------------------------------------------------------------

    def _tag(self, raw: Any) -> tuple[str, str | None]:
        tag, _ = self.resolver.deref(raw)
        return str(tag.get("name", "?")), tag.get("description")

    def _security_names(self, raw: Any) -> list[str]:
        names = []
        for item in _list(raw):
            if isinstance(item, Mapping) and isinstance(item.get("$ref"), str):
                names.append(_ref_name(item["$ref"]) or "?")
            elif isinstance(item, Mapping) and isinstance(item.get("type"), str):
                names.append(str(item["type"]))
        return names

    def _security_schemes(self) -> list[SecurityView]:
        schemes = _as_dict(_as_dict(self.document.get("components")).get("securitySchemes"))
        out = []
        for key, raw in schemes.items():
            scheme, _ = self.resolver.deref(raw)
            details = [
                (k, v if isinstance(v, str) else _json_text(v))
                for k, v in scheme.items()
                if k not in ("type", "description", "flows")
            ]
            flows = []  # OAuth 2: (flow, its URLs, its scopes)
            for flow_name, raw_flow in _as_dict(scheme.get("flows")).items():
                flow = _as_dict(raw_flow)
                scopes = _as_dict(flow.get("availableScopes") or flow.get("scopes"))
                flows.append(
                    (
                        str(flow_name),
                        [
                            (k, str(v))
                            for k, v in flow.items()
                            if k not in ("availableScopes", "scopes")
                            and isinstance(v, str | int | float)
                        ],
                        [(str(k), str(v)) for k, v in scopes.items()],
                    )
                )
            out.append(
                SecurityView(
                    key=str(key),
                    anchor=self.anchors.get("security", str(key)),
                    type=str(scheme.get("type", "?")),
                    description=scheme.get("description"),
                    details=details,
                    flows=flows,
                )
            )
        return out

    def _servers(self) -> list[ServerView]:
        out = []
        for key, raw in _as_dict(self.document.get("servers")).items():
            server, _ = self.resolver.deref(raw)
            protocol = str(server.get("protocol", ""))
            host = str(server.get("host", ""))
            pathname = str(server.get("pathname", ""))
            url = f"{protocol}://{host}{pathname}" if protocol else host + pathname
            out.append(
                ServerView(
                    key=str(key),
                    url=url,
                    protocol=protocol
                    + (f" {server['protocolVersion']}" if server.get("protocolVersion") else ""),
                    description=server.get("description"),
                    security=self._security_names(server.get("security")),
                )
            )
        return out

    # -- messages -----------------------------------------------------------------------------

    def _message(self, raw: Any, fallback_key: str) -> MessageView:
        message, pointer = self.resolver.deref(raw)
        key = pointer or fallback_key
        found = self._messages.get(key)
        if found is not None:
            return found
        name = str(
            message.get("name") or _ref_name(pointer) or fallback_key.rsplit("/", 1)[-1] or "?"
        )
        payload = self.trees.build(message["payload"]) if "payload" in message else None
        headers = self.trees.build(message["headers"]) if "headers" in message else None
        examples = []
        for i, example in enumerate(_list(message.get("examples"))):
            if not isinstance(example, Mapping):
                continue
            label = str(example.get("name") or example.get("summary") or f"example {i + 1}")
            if "payload" in example:
                examples.append((label, _pretty(example["payload"])))
            if "headers" in example:
                examples.append((label + " (headers)", _pretty(example["headers"])))
        view = MessageView(
            key=key,
            anchor=self.anchors.get("message", key.lstrip("#/")),
            name=name,
            title=message.get("title"),
            summary=message.get("summary"),
            description=_rest(message.get("description"), message.get("summary")),
            content_type=message.get("contentType") or self.default_content_type,
            payload=payload,
            headers=headers,
            examples=examples,
            wire_type=_wire_type(message, self.resolver),
            raw=message,
        )
        view.envelope = _is_envelope(message.get("payload"), self.resolver)
        view.body = _frame_body(payload) if view.envelope else payload
        self._messages[key] = view
        return view

    def _all_messages(self) -> list[MessageView]:
        components = _as_dict(_as_dict(self.document.get("components")).get("messages"))
        for key, raw in components.items():
            self._message(raw, f"#/components/messages/{_escape_pointer(str(key))}")
        return list(self._messages.values())

    # -- channels -----------------------------------------------------------------------------

    def _channels(self) -> dict[str, ChannelView]:
        out: dict[str, ChannelView] = {}
        for key, raw in _as_dict(self.document.get("channels")).items():
            channel, _ = self.resolver.deref(raw)
            pointer = f"#/channels/{_escape_pointer(str(key))}"
            params = []
            for pname, praw in _as_dict(channel.get("parameters")).items():
                param, _ = self.resolver.deref(praw)
                schema, _ = self.resolver.deref(param.get("x-asyncws-schema"))
                enum = _list(param.get("enum")) or _list(schema.get("enum"))
                params.append(
                    ParamView(
                        name=str(pname),
                        description=param.get("description"),
                        constraints=[
                            (k, str(schema[k]))
                            for k in _CONSTRAINT_KEYS
                            if isinstance(schema.get(k), str | int | float)
                        ],
                        enum=[str(v) for v in enum],
                        default=str(param["default"]) if "default" in param else None,
                        examples=[str(v) for v in _list(param.get("examples"))],
                        location=param.get("location"),
                    )
                )
            messages = [
                self._message(mraw, f"{pointer}/messages/{_escape_pointer(str(mkey))}")
                for mkey, mraw in _as_dict(channel.get("messages")).items()
            ]
            address = channel.get("address")
            kind = channel.get("x-asyncws-kind")
            is_topic = (
                kind == "topic"
                if isinstance(kind, str)
                else isinstance(address, str) and bool(address) and not address.startswith("/")
            )
            out[pointer] = ChannelView(
                key=str(key),
                anchor=self.anchors.get("channel", str(key)),
                address=address if isinstance(address, str) else None,
                title=channel.get("title"),
                summary=channel.get("summary"),
                description=channel.get("description"),
                params=params,
                messages=messages,
                is_topic=is_topic,
            )
        return out

    def _channel_for(self, raw: Any) -> ChannelView | None:
        if isinstance(raw, Mapping) and isinstance(raw.get("$ref"), str):
            return self.channels.get(raw["$ref"])
        return None

    def _endpoint_path(self) -> str | None:
        for channel in self.channels.values():
            raw, _ = self.resolver.deref(self.document["channels"][channel.key])
            if raw.get("x-asyncws-kind") == "endpoint" and channel.address:
                return channel.address
        for channel in self.channels.values():
            if channel.address and channel.address.startswith("/"):
                return channel.address
        for server in _as_dict(self.document.get("servers")).values():
            pathname = _as_dict(server).get("pathname")
            if isinstance(pathname, str) and pathname:
                return pathname
        return None

    # -- operations ---------------------------------------------------------------------------

    def _operations(self) -> list[OperationView]:
        out = []
        hints = self._param_hints()
        for key, raw in _as_dict(self.document.get("operations")).items():
            op, _ = self.resolver.deref(raw)
            pointer = f"#/operations/{_escape_pointer(str(key))}"
            channel = self._channel_for(op.get("channel"))
            if "messages" in op:
                messages = [
                    self._message(m, f"{pointer}/messages/{i}")
                    for i, m in enumerate(_list(op.get("messages")))
                ]
            else:  # no list: every message of the channel
                messages = list(channel.messages) if channel else []
            reply, _ = self.resolver.deref(op.get("reply"))
            reply_channel = self._channel_for(reply.get("channel")) if reply else None
            reply_messages = [
                self._message(m, f"{pointer}/reply/messages/{i}")
                for i, m in enumerate(_list(reply.get("messages")))
            ]
            if reply and not reply_messages and reply_channel is not None:
                reply_messages = list(reply_channel.messages)
            reply_address, _ = self.resolver.deref(reply.get("address"))
            action = str(op.get("action", "?"))
            badge = {"send": "SEND", "receive": "RECEIVE"}.get(action, action.upper())
            if action == "receive" and reply and _answers_with_data(reply_messages):
                badge = "REQUEST"
            wire_type = None
            frame = None
            frame_shape = None
            event_frames: list[tuple[str, str]] = []
            if action == "receive" and (channel is None or not channel.is_topic):
                wire_type = _op_wire_type(str(key), op, messages, self.resolver)
                example_frame = self._frame(wire_type, messages, hints)
                frame = _pretty(example_frame)
                frame_shape = _frame_shape(example_frame)
            elif action == "send" and channel is not None and channel.is_topic:
                event_frames = [
                    (m.wire_type or m.name, _pretty(self._event_frame(channel, m, hints)))
                    for m in messages
                ]
            out.append(
                OperationView(
                    key=str(key),
                    anchor=self.anchors.get("op", str(key)),
                    action=action,
                    badge=badge,
                    title=None
                    if _same_text(op.get("title"), op.get("summary"))
                    else op.get("title"),
                    summary=op.get("summary"),
                    description=_rest(op.get("description"), op.get("summary")),
                    channel=channel,
                    messages=messages,
                    reply_messages=reply_messages,
                    reply_address=(
                        str(reply_address.get("location"))
                        if reply_address.get("location")
                        else None
                    ),
                    reply_channel=reply_channel,
                    tags=[self._tag(t)[0] for t in _list(op.get("tags"))],
                    security=self._security_names(op.get("security")),
                    wire_type=wire_type,
                    frame=frame,
                    frame_shape=frame_shape,
                    event_frames=event_frames,
                )
            )
        return out

    def _param_hints(self) -> dict[str, Any]:
        """A value per channel parameter name (its default, example or first enum value)."""
        hints: dict[str, Any] = {}
        for channel in self.channels.values():
            for param in channel.params:
                value = _param_value(param)
                if value is not None:
                    hints.setdefault(param.name, value)
        return hints

    def _event_frame(
        self, channel: ChannelView, message: MessageView, hints: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An example event frame of a topic: ``{"type", "topic", "data"}``."""
        topic = channel.address or ""
        for param in channel.params:
            value = _param_value(param)
            topic = topic.replace("{" + param.name + "}", value if value is not None else "x")
        example = _first_example(message.raw)
        if example is None:
            example = _synthesize(message.raw.get("payload"), self.resolver, hints)
        if message.envelope and isinstance(example, Mapping):
            return dict(example)
        return {"type": message.wire_type or message.name, "topic": topic, "data": example}

    def _frame(
        self, wire_type: str, messages: list[MessageView], hints: Mapping[str, Any]
    ) -> dict[str, Any]:
        """An example client frame for an operation: ``{"type", "id", "data"}``."""
        frame: dict[str, Any] = {"type": wire_type, "id": 1}
        if not messages:
            return frame
        message = messages[0].raw
        example = _first_example(message)
        payload_schema = message.get("payload")
        if _is_envelope(payload_schema, self.resolver):
            envelope = example if isinstance(example, Mapping) else None
            if envelope is None:
                envelope = _synthesize(payload_schema, self.resolver, hints) or {}
            return {
                "type": wire_type,
                "id": 1,
                **{k: v for k, v in envelope.items() if k not in ("type", "id")},
            }
        if example is None and payload_schema is not None:
            example = _synthesize(payload_schema, self.resolver, hints)
        if example is not None or (
            payload_schema is not None and not _is_null_schema(payload_schema, self.resolver)
        ):
            frame["data"] = example
        return frame

    # -- schemas ------------------------------------------------------------------------------

    def _schemas(self) -> list[tuple[str, str, SchemaNode]]:
        schemas = _as_dict(_as_dict(self.document.get("components")).get("schemas"))
        out = []
        for key in schemas:
            ref = f"#/components/schemas/{_escape_pointer(str(key))}"
            node = self.trees.build({"$ref": ref})
            node.name, node.ref, node.ref_anchor = str(key), None, None
            out.append((str(key), self.anchors.get("schema", str(key)), node))
        return out

    # -- for the template and the console -----------------------------------------------------

    @property
    def requests(self) -> list[OperationView]:
        return [op for op in self.operations if op.action != "send"]

    @property
    def events(self) -> list[OperationView]:
        return [op for op in self.operations if op.action == "send"]

    @property
    def topics(self) -> list[ChannelView]:
        return [c for c in self.channels.values() if c.is_topic]

    def toc(self) -> Iterator[tuple[str, str, int, str | None]]:
        """(anchor, label, level, badge) entries of the table of contents."""
        yield "info", "Overview", 0, None
        if self.servers or self.security:
            yield "servers", "Servers & security", 0, None
        yield "console", "Live console", 0, None
        if self.operations:
            yield "operations", "Operations", 0, None
            for op in self.operations:
                yield op.anchor, op.key, 1, op.badge
        if self.channels:
            yield "channels", "Channels", 0, None
            for channel in self.channels.values():
                yield channel.anchor, channel.address or channel.key, 1, None
        if self.messages:
            yield "messages", "Messages", 0, None
            for message in self.messages:
                yield message.anchor, message.name, 1, None
        if self.schemas:
            yield "schemas", "Schemas", 0, None

    def console_data(self) -> dict[str, Any]:
        """What the console script needs (embedded as JSON, read with JSON.parse)."""
        security_query = ""
        for scheme in self.security:
            details = dict(scheme.details)
            if scheme.type == "httpApiKey" and details.get("in") == "query" and details.get("name"):
                security_query = f"?{details['name']}="
                break
        servers = [s.url for s in self.servers]
        return {
            "title": self.title,
            "path": self.ws_path or "",
            "query": security_query,
            "servers": servers,
            "operations": [
                {
                    "id": op.key,
                    "type": op.wire_type,
                    "badge": op.badge,
                    "frame": op.frame,
                    "anchor": op.anchor,
                }
                for op in self.operations
                if op.frame is not None
            ],
            "topics": [
                {
                    "channel": c.key,
                    "address": c.address,
                    "anchor": c.anchor,
                    "params": [
                        {
                            "name": p.name,
                            "description": p.description or "",
                            "enum": p.enum,
                            "value": _param_value(p) or "",
                        }
                        for p in c.params
                    ],
                }
                for c in self.topics
            ],
            "events": {m.wire_type or m.name: m.anchor for c in self.topics for m in c.messages},
        }


def _frame_body(envelope: SchemaNode | None) -> SchemaNode | None:
    """The part of an envelope's tree worth showing on an operation card: its ``data``, else
    the envelope without ``type`` and ``id`` (e.g. a subscription's ``topic``), else None."""
    if envelope is None:
        return None
    data = next((c for c in envelope.children if c.name == "data"), None)
    if data is not None:
        return data
    rest = [c for c in envelope.children if c.name not in ("type", "id")]
    if not rest:
        return None
    return SchemaNode(label="object", children=rest)


def _answers_with_data(replies: list[MessageView]) -> bool:
    """Whether a reply carries data: some reply message is more than an ``ack`` or an
    ``error`` (which answer every frame with an ``id``). No listed message: say yes."""
    return not replies or any(m.wire_type not in ("ack", "error") for m in replies)


def _first_example(message: Mapping[str, Any]) -> Any:
    for example in _list(message.get("examples")):
        if isinstance(example, Mapping) and "payload" in example:
            return example["payload"]
    return None


def _frame_shape(frame: Mapping[str, Any]) -> str:
    """``{"type": "post", "id": …, "data": …}``: the envelope of a frame, values elided."""
    parts = [
        f"{json.dumps(k)}: " + (_json_text(v) if k == "type" else "…") for k, v in frame.items()
    ]
    return "{" + ", ".join(parts) + "}"


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _param_value(param: ParamView) -> str | None:
    if param.default is not None:
        return param.default
    if param.examples:
        return param.examples[0]
    if param.enum:
        return param.enum[0]
    return None


def _is_envelope(schema: Any, resolver: _Resolver) -> bool:
    """Whether a payload schema describes the whole frame (``type`` + ``data``), not ``data``."""
    target, _ = resolver.deref(schema)
    properties = _as_dict(target.get("properties"))
    if "type" not in properties or _const_of(properties["type"], resolver) is None:
        return False
    return any(key in properties for key in ("data", "id", "topic"))


def _is_null_schema(schema: Any, resolver: _Resolver) -> bool:
    target, _ = resolver.deref(schema)
    return target.get("type") == "null" or schema is None


def _const_of(schema: Any, resolver: _Resolver) -> str | None:
    target, _ = resolver.deref(schema)
    if isinstance(target.get("const"), str):
        return str(target["const"])
    enum = target.get("enum")
    if isinstance(enum, list) and len(enum) == 1 and isinstance(enum[0], str):
        return enum[0]
    return None


def _wire_type(message: Mapping[str, Any], resolver: _Resolver) -> str | None:
    """The ``type`` of the frames carrying this message, when the document says so."""
    if isinstance(message.get("x-asyncws-type"), str):
        return str(message["x-asyncws-type"])
    payload, _ = resolver.deref(message.get("payload"))
    type_schema = _as_dict(payload.get("properties")).get("type")
    if type_schema is not None:
        return _const_of(type_schema, resolver)
    return None


def _op_wire_type(
    key: str, op: Mapping[str, Any], messages: list[MessageView], resolver: _Resolver
) -> str:
    """The ``type`` a client puts in the frame invoking an operation: an ``x-asyncws-type``,
    else the ``type`` constant of an envelope payload, else the operation's id."""
    if isinstance(op.get("x-asyncws-type"), str):
        return str(op["x-asyncws-type"])
    for message in messages:
        if isinstance(message.raw.get("x-asyncws-type"), str):
            return str(message.raw["x-asyncws-type"])
        payload = message.raw.get("payload")
        if message.wire_type is not None and _is_envelope(payload, resolver):
            return message.wire_type
    return key
