"""JSON Schema -> the type tree: how the client reader maps a document's schemas to types.

`SchemaReader` reads each ``components/schemas`` entry once into a `NamedSchema` (a class
when it is an object with properties, else an alias of a type), and every other schema into
a `TypeNode`: inline objects become named schemas called after where they are (a payload,
a property), ``allOf`` of objects is merged, ``oneOf``/``anyOf``/lists of types are unions
(discriminated when every member is a named object with a string ``const`` for the
discriminator), and constraints the languages can check are kept on primitives and lists.
What the generated types can neither express nor check is a warning (the value is then
"any", or the keyword is not enforced).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .document import Document, text_of
from .names import Names, component_name, pascal, words
from .typetree import (
    AnyNode,
    DictNode,
    FieldDescription,
    ListNode,
    LiteralNode,
    NamedSchema,
    PrimitiveNode,
    RefNode,
    TupleNode,
    TypeNode,
    union,
)

__all__ = ["SCHEMA_PREFIX", "SchemaReader"]

SCHEMA_PREFIX = "#/components/schemas/"
# What a hand-written schema may use that the generated types neither express nor check.
_UNSUPPORTED_KEYWORDS = (
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "dependencies",
    "dependentSchemas",
    "dependentRequired",
    "contains",
    "propertyNames",
    "minProperties",
    "maxProperties",
)


class SchemaReader:
    """The named schemas of one document (``schemas``, by class name) and the types of the
    schemas read so far; names come from ``names``, warnings go to ``document``."""

    def __init__(self, document: Document, names: Names) -> None:
        self.document = document
        self.doc = document.doc
        self.names = names
        self.schemas: dict[str, NamedSchema] = {}
        self.components: Mapping[str, Any] = self._components()
        # every component gets its name first, so inline objects never steal one
        self.component_names: dict[str, str] = {
            key: self.names.take(component_name(key)) for key in sorted(self.components)
        }
        self._reading: set[str] = set()

    def warn(self, text: str) -> None:
        self.document.warn(text)

    def deref(self, obj: Any, where: str) -> Any:
        return self.document.deref(obj, where)

    def _components(self) -> Mapping[str, Any]:
        components = self.doc.get("components")
        schemas = components.get("schemas") if isinstance(components, Mapping) else None
        return schemas if isinstance(schemas, Mapping) else {}

    def named(self, key: str) -> RefNode:
        """The named schema of a component (read once)."""
        name = self.component_names[key]
        if name not in self.schemas and name not in self._reading:
            self._reading.add(name)
            schema = self.components[key]
            self.schemas[name] = self._named_schema(name, schema, f"components/schemas/{key}")
            self._reading.discard(name)
        return RefNode(name)

    def _check_keywords(self, schema: Mapping[str, Any], where: str) -> None:
        for keyword_ in _UNSUPPORTED_KEYWORDS:
            if keyword_ in schema:
                self.warn(f"{where}: {keyword_!r} is not checked by the generated client")

    def _named_schema(self, name: str, schema: Any, where: str) -> NamedSchema:
        if isinstance(schema, Mapping):
            self._check_keywords(schema, where)
            schema = self._merge_all_of(schema, where)
        description = text_of(schema.get("description")) if isinstance(schema, Mapping) else None
        if isinstance(schema, Mapping) and self._is_object(schema):
            fields, extra = self._object(name, schema, where)
            return NamedSchema(name, description, fields=fields, extra=extra, source=where)
        node = self.read(schema, name, where)
        return NamedSchema(name, description, type=node, source=where)

    @staticmethod
    def _is_object(schema: Mapping[str, Any]) -> bool:
        kind = schema.get("type")
        has_props = isinstance(schema.get("properties"), Mapping) and bool(schema["properties"])
        if kind == "object" or (kind is None and has_props):
            if any(k in schema for k in ("oneOf", "anyOf")):
                return False
            return has_props
        return False

    def _merge_all_of(self, schema: Mapping[str, Any], where: str) -> Mapping[str, Any]:
        parts = schema.get("allOf")
        if not isinstance(parts, list) or not parts:
            return schema
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        if len(parts) == 1 and not any(
            k in rest for k in ("properties", "type", "oneOf", "anyOf", "items")
        ):
            only = parts[0]
            if isinstance(only, Mapping) and "$ref" in only:
                return {**rest, "$ref": only["$ref"]} if rest else only
            target = self.deref(only, where)
            return {**target, **rest} if isinstance(target, Mapping) else schema
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in [*parts, rest]:
            target = self.deref(part, where)
            if isinstance(target, Mapping):
                target = self._merge_all_of(target, where)
            if not isinstance(target, Mapping) or not (
                self._is_object(target) or target.get("type") == "object" or not target
            ):
                if isinstance(target, Mapping) and set(target) <= {"description", "title"}:
                    continue
                self.warn(f"{where}: allOf of non-object schemas is not supported: any value")
                return {}
            merged["properties"].update(target.get("properties", {}) or {})
            merged["required"] += [
                r for r in target.get("required", []) or [] if r not in merged["required"]
            ]
            for k in ("description", "title", "additionalProperties"):
                if k in target:
                    merged[k] = target[k]
        return merged

    def read(self, schema: Any, hint: str, where: str) -> TypeNode:
        """The type of a schema; inline objects become named schemas called after ``hint``."""
        if schema is True or schema is None or (isinstance(schema, Mapping) and not schema):
            return AnyNode()
        if schema is False or not isinstance(schema, Mapping):
            self.warn(f"{where}: schema {schema!r} is not supported: any value")
            return AnyNode()
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref.startswith(SCHEMA_PREFIX) and ref[len(SCHEMA_PREFIX) :] in self.components:
                node: TypeNode = self.named(ref[len(SCHEMA_PREFIX) :])
            elif not ref.startswith("#/"):
                self.warn(f"{where}: external reference {ref!r} is not supported: any value")
                return AnyNode()
            else:
                target = self.deref({"$ref": ref}, where)
                if target is None:
                    return AnyNode()
                if ref in self._reading:
                    self.warn(f"{where}: recursive reference {ref!r} outside components")
                    return AnyNode()
                self._reading.add(ref)
                node = self.read(target, hint, where)
                self._reading.discard(ref)
            if schema.get("nullable") is True:
                node = union([node, PrimitiveNode("null")])
            return node
        self._check_keywords(schema, where)
        schema = self._merge_all_of(schema, where)
        if not schema:
            return AnyNode()
        node = self._read_plain(schema, hint, where)
        if schema.get("nullable") is True:
            node = union([node, PrimitiveNode("null")])
        return node

    def _read_plain(self, schema: Mapping[str, Any], hint: str, where: str) -> TypeNode:
        if "const" in schema:
            return LiteralNode((schema["const"],))
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            values = tuple(dict.fromkeys(v for v in enum if _is_scalar(v)))
            if len(values) != len(enum):
                self.warn(f"{where}: enum values that are arrays/objects are not supported")
            return LiteralNode(values) if values else AnyNode()
        for union_key in ("oneOf", "anyOf"):
            members = schema.get(union_key)
            if isinstance(members, list) and members:
                nodes = [
                    self.read(
                        m,
                        hint if len(members) == 1 else f"{hint}{i + 1}",
                        f"{where}/{union_key}/{i}",
                    )
                    for i, m in enumerate(members)
                ]
                return union(nodes, self._discriminator(schema, nodes, where))
        kind = schema.get("type")
        if isinstance(kind, list):
            rest = {k: v for k, v in schema.items() if k != "type"}
            return union([self._read_plain({**rest, "type": k}, hint, where) for k in kind if k])
        if kind == "object" or (kind is None and "properties" in schema):
            if self._is_object(schema):
                return self._inline_object(schema, where, pascal(hint))
            extra_schema = schema.get("additionalProperties", True)
            return DictNode(
                AnyNode()
                if extra_schema in (True, None) or extra_schema == {}
                else self.read(extra_schema, f"{hint}Value", f"{where}/additionalProperties")
            )
        if kind == "array" or (kind is None and "items" in schema):
            items = schema.get("items")
            constraints = _constraints(schema, ("minItems", "maxItems", "uniqueItems"))
            if isinstance(items, list):
                return TupleNode(
                    tuple(
                        self.read(item, f"{hint}Item{i + 1}", f"{where}/items/{i}")
                        for i, item in enumerate(items)
                    )
                )
            return ListNode(self.read(items, f"{hint}Item", f"{where}/items"), constraints)
        if kind in ("string", "integer", "number", "boolean", "null"):
            return self._primitive(kind, schema, where)
        if kind is not None:
            self.warn(f"{where}: type {kind!r} is not supported: any value")
        return AnyNode()

    def _primitive(self, kind: str, schema: Mapping[str, Any], where: str) -> PrimitiveNode:
        keys: tuple[str, ...] = ()
        if kind == "string":
            keys = ("minLength", "maxLength", "pattern")
        elif kind in ("integer", "number"):
            keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
        constraints = list(_constraints(schema, keys))
        # draft-04 boolean exclusiveMinimum/Maximum
        for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if schema.get(flag) is True and bound in schema:
                constraints = [(k, v) for k, v in constraints if k not in (flag, bound)]
                constraints.append((flag, schema[bound]))
            elif isinstance(schema.get(flag), bool):
                constraints = [(k, v) for k, v in constraints if k != flag]
        pattern = dict(constraints).get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except (re.error, TypeError):
                self.warn(f"{where}: pattern {pattern!r} is not checked by the client")
                constraints = [(k, v) for k, v in constraints if k != "pattern"]
        fmt = schema.get("format") if kind == "string" else None
        return PrimitiveNode(kind, fmt if isinstance(fmt, str) else None, tuple(constraints))

    def _discriminator(
        self, schema: Mapping[str, Any], nodes: list[TypeNode], where: str
    ) -> str | None:
        disc = schema.get("discriminator")
        if isinstance(disc, Mapping):
            disc = disc.get("propertyName")
        if not isinstance(disc, str):
            return None
        for node in nodes:
            target = self.schemas.get(node.name) if isinstance(node, RefNode) else None
            fields = {f.name: f for f in target.fields or []} if target is not None else {}
            prop = fields.get(disc)
            if (
                prop is None
                or not isinstance(prop.type, LiteralNode)
                or not all(isinstance(v, str) for v in prop.type.values)
            ):
                self.warn(
                    f"{where}: discriminator {disc!r} is not a const of every member: a plain "
                    "union (members are tried in turn)"
                )
                return None
        return disc

    def _object(
        self, name: str, schema: Mapping[str, Any], where: str
    ) -> tuple[list[FieldDescription], TypeNode | None]:
        required = schema.get("required")
        required_set = set(required) if isinstance(required, list) else set()
        fields: list[FieldDescription] = []
        for prop_name, prop in (schema.get("properties") or {}).items():
            prop_where = f"{where}/properties/{prop_name}"
            node = self.read(prop, f"{name}{pascal(str(prop_name))}", prop_where)
            resolved = self.deref(prop, prop_where) if isinstance(prop, Mapping) else None
            description = None
            default_present = False
            default: Any = None
            deprecated = False
            if isinstance(prop, Mapping):
                description = text_of(prop.get("description"))
                default_present = "default" in prop
                default = prop.get("default")
                deprecated = prop.get("deprecated") is True
            if description is None and isinstance(resolved, Mapping) and "$ref" not in prop:
                description = text_of(resolved.get("description"))
            fields.append(
                FieldDescription(
                    name=str(prop_name),
                    type=node,
                    required=prop_name in required_set,
                    description=description,
                    has_default=default_present,
                    default=default,
                    deprecated=deprecated,
                )
            )
        extra = schema.get("additionalProperties")
        extra_node: TypeNode | None = None
        if isinstance(extra, Mapping) and extra:
            extra_node = self.read(extra, f"{name}Value", f"{where}/additionalProperties")
        elif extra is True:
            extra_node = AnyNode()
        return fields, extra_node

    def payload(self, schema: Any, hint: str, where: str) -> TypeNode:
        """The type of a payload; an inline object becomes a named schema (``hint``)."""
        resolved = schema
        if isinstance(schema, Mapping) and "$ref" not in schema:
            self._check_keywords(schema, where)
            resolved = self._merge_all_of(schema, where)
            if self._is_object(resolved):
                return self._inline_object(resolved, where, pascal(hint), pascal(hint) + "Data")
        return self.read(schema, pascal(hint), where)

    def _inline_object(self, schema: Mapping[str, Any], where: str, *names: str) -> RefNode:
        """A named schema for an object written in place: called after its ``title``, else
        the first free of ``names``."""
        title = schema.get("title")
        name = self.names.take(
            *([pascal(title)] if isinstance(title, str) and words(title) else []), *names
        )
        self.schemas[name] = NamedSchema(name, text_of(schema.get("description")), source=where)
        fields, extra = self._object(name, schema, where)
        self.schemas[name].fields = fields
        self.schemas[name].extra = extra
        return RefNode(name)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _constraints(schema: Mapping[str, Any], keys: Iterable[str]) -> tuple[tuple[str, Any], ...]:
    return tuple(
        (k, schema[k])
        for k in keys
        if k in schema and (isinstance(schema[k], int | float | str) or k == "uniqueItems")
    )
