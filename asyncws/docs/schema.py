"""Schemas of a document: references, anchors, the payload trees and example values.

`_Resolver` follows local ``$ref`` pointers (``#/components/schemas/Post``) into one document
and cuts ``$ref`` cycles; `_Anchors` hands out unique, safe HTML ids. `_TreeBuilder` turns a
schema into a `SchemaNode` tree for the template (``$ref`` resolved, recursion shown as a
cycle, unions with their discriminator), bounded by `_MAX_DEPTH` levels and a budget of
`_MAX_NODES` nodes so that a hostile or huge document cannot blow up the page.
`_synthesize` makes a plausible example value of a schema (bounded by `_MAX_EXAMPLE_DEPTH`).
`_as_dict` and `_list` read untrusted values leniently: anything else is empty.

Package-internal: ``__all__`` names what the other modules of `asyncws.docs` use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .text import _json_text

__all__ = [
    "_CONSTRAINT_KEYS",
    "SchemaNode",
    "_Anchors",
    "_Resolver",
    "_TreeBuilder",
    "_as_dict",
    "_list",
    "_ref_name",
    "_synthesize",
]


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


# -- references -------------------------------------------------------------------------------


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


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


def _squash(text: str | None) -> str:
    return re.sub(r"[\s_-]+", "", text or "").lower()


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
