"""Payload JSON Schemas for a document: generated together, shared, made AsyncAPI-valid.

Every payload of a document is generated in one pydantic pass
(``TypeAdapter.json_schemas``), so a model used by several messages becomes one entry of
``components/schemas`` that they all ``$ref``. Then the schemas are adapted to the AsyncAPI
Schema Object (a JSON Schema draft-07 superset):

* pydantic's OpenAPI-style ``discriminator`` object becomes a property name (a string),
  which is what AsyncAPI's ``discriminator`` is;
* draft 2020-12 ``prefixItems`` (tuples) becomes draft-07 ``items`` as an array.

In serialization mode (what the server sends) every field the server emits is required:
asyncws encodes every field, defaults included, so a client may rely on them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jsonschema import Draft7Validator
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema
from referencing import Registry
from referencing.jsonschema import DRAFT7

from .model import PayloadSchema, RawSchema, TypeSchema

__all__ = [
    "COMPONENT_KEY",
    "REF_PREFIX",
    "SCHEMA_ID",
    "deref",
    "generate_schemas",
    "iter_refs",
    "make_validator",
    "name_document_schemas",
    "name_schema",
    "pascal_id",
    "pointer_parts",
    "to_asyncapi_schema",
]

REF_PREFIX = "#/components/schemas/"
#: The AsyncAPI 3.0 pattern every key of ``components`` must match.
COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")

# Keywords whose values are data, not schemas: never rewritten.
_DATA_KEYWORDS = frozenset({"default", "examples", "example", "const", "enum"})


class _Generator(GenerateJsonSchema):
    """pydantic's generator, with every emitted field required in serialization mode."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if self.mode == "serialization" and field["type"] != "typed-dict-field":
            return field.get("serialization_exclude_if") is None
        return super().field_is_required(field, total)


def to_asyncapi_schema(schema: Any) -> Any:
    """A copy of a JSON Schema from pydantic, made an AsyncAPI 3.0 Schema Object."""
    if isinstance(schema, list):
        return [to_asyncapi_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DATA_KEYWORDS:
            out[key] = copy.deepcopy(value)
        elif key == "discriminator" and isinstance(value, dict):
            out[key] = value["propertyName"]
        elif key == "prefixItems":
            out["items"] = to_asyncapi_schema(value)
            if "items" in schema:
                out["additionalItems"] = to_asyncapi_schema(schema["items"])
        elif key == "items" and "prefixItems" in schema:
            continue
        elif key in ("properties", "patternProperties", "definitions", "$defs"):
            out[key] = {k: to_asyncapi_schema(v) for k, v in value.items()}
        else:
            out[key] = to_asyncapi_schema(value)
    return out


def iter_refs(schema: Any) -> Iterator[str]:
    """Every ``$ref`` string in a schema (data keywords skipped)."""
    if isinstance(schema, list):
        for item in schema:
            yield from iter_refs(item)
    elif isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            elif key not in _DATA_KEYWORDS:
                yield from iter_refs(value)


def _raw_components(raw: RawSchema) -> dict[str, Any]:
    """The components a raw schema needs, followed transitively."""
    needed: dict[str, Any] = {}
    todo = list(iter_refs(raw.schema))
    while todo:
        ref = todo.pop()
        if not ref.startswith(REF_PREFIX):
            continue
        name = ref[len(REF_PREFIX) :]
        if name in needed:
            continue
        if name not in raw.components:
            raise ValueError(f"schema reference {ref!r} points at nothing")
        needed[name] = raw.components[name]
        todo.extend(iter_refs(needed[name]))
    return needed


def generate_schemas(
    payloads: Sequence[PayloadSchema],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The JSON Schema of each payload (in order) and the shared ``components/schemas``.

    Raises `ValueError` naming the type when pydantic cannot describe a payload, or when two
    components would share a key with different content.
    """
    inputs: list[tuple[int, Any, TypeAdapter[Any]]] = []
    for i, payload in enumerate(payloads):
        if isinstance(payload, TypeSchema):
            inputs.append((i, payload.mode, TypeAdapter(payload.annotation)))
    try:
        generated, top = TypeAdapter.json_schemas(
            inputs, ref_template=REF_PREFIX + "{model}", schema_generator=_Generator
        )
    except Exception as exc:  # PydanticInvalidForJsonSchema, PydanticUserError, ...
        raise ValueError(f"cannot generate the JSON Schema of a payload: {exc}") from exc
    components: dict[str, Any] = {
        name: to_asyncapi_schema(schema) for name, schema in top.get("$defs", {}).items()
    }
    schemas: list[dict[str, Any]] = []
    for i, payload in enumerate(payloads):
        if isinstance(payload, TypeSchema):
            schemas.append(to_asyncapi_schema(generated[(i, payload.mode)]))
            continue
        schemas.append(copy.deepcopy(dict(payload.schema)))
        for name, schema in _raw_components(payload).items():
            if name in components and components[name] != schema:
                raise ValueError(f"two different schemas are named {name!r}")
            components[name] = copy.deepcopy(schema)
    for name in components:
        if not COMPONENT_KEY.match(name):
            raise ValueError(f"schema name {name!r} does not match {COMPONENT_KEY.pattern}")
    return schemas, dict(sorted(components.items()))


_DOCUMENT_URI = "urn:asyncws:document"


def make_validator(schema: Any, document: Mapping[str, Any]) -> Draft7Validator:
    """A draft-07 validator for ``schema``, whose ``#/...`` references point into
    ``document`` (e.g. ``#/components/schemas/Post``). Formats are checked where jsonschema
    can (date-time needs an optional package)."""
    root = {**document, "x-asyncws-target": schema}
    registry: Registry[Any] = Registry().with_resource(_DOCUMENT_URI, DRAFT7.create_resource(root))
    return Draft7Validator(
        {"$ref": _DOCUMENT_URI + "#/x-asyncws-target"},
        registry=registry,
        format_checker=Draft7Validator.FORMAT_CHECKER,
    )


def pointer_parts(ref: str) -> list[str]:
    """The parts of a local reference (``#/a/b~1c`` -> ``["a", "b/c"]``)."""
    if not ref.startswith("#/"):
        raise ValueError(f"reference {ref!r}: only references inside the document are supported")
    return [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]


def deref(document: Mapping[str, Any], obj: Any) -> Any:
    """Follow ``{"$ref": "#/..."}`` (chains too) to what it points at in ``document``."""
    seen: set[str] = set()
    while isinstance(obj, Mapping) and isinstance(obj.get("$ref"), str):
        ref = obj["$ref"]
        if ref in seen:
            raise ValueError(f"reference loop at {ref!r}")
        seen.add(ref)
        target: Any = document
        for part in pointer_parts(ref):
            if not isinstance(target, Mapping) or part not in target:
                raise ValueError(f"reference {ref!r} points at nothing")
            target = target[part]
        obj = target
    return obj


# -- schema ids -----------------------------------------------------------------------------

#: The extension the official parser (and the tools built on it: Modelina, the html and
#: react renderers, ``asyncapi diff``) reads as a schema's id; it invents
#: ``<anonymous-schema-N>``, numbered in document order, for a schema without one.
SCHEMA_ID = "x-parser-schema-id"

_SUBSCHEMA_LISTS = {"allOf": "Part", "anyOf": "Option", "oneOf": "Option"}
_SUBSCHEMA = {
    "additionalProperties": "Value",
    "additionalItems": "ExtraItem",
    "contains": "Contains",
    "propertyNames": "Key",
    "not": "Not",
    "if": "If",
    "then": "Then",
    "else": "Else",
}


def pascal_id(text: str) -> str:
    """``rooms.room`` / ``post_reply`` / ``roomsRoom`` -> ``RoomsRoom`` / ``PostReply``."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text) if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Schema"


def name_schema(schema: Any, name: str) -> None:
    """Give ``schema`` and every schema inside it a stable id derived from its place
    (``x-parser-schema-id``: ``name``, ``name`` + the property name in PascalCase, ``Item``
    for array items, ``Option<n>`` for union members...), and an object schema without a
    ``title`` the title ``name``. A ``$ref`` is left alone (its target is named where it is
    declared); so are ids and titles already there. Edits ``schema`` in place."""
    if not isinstance(schema, dict) or "$ref" in schema:
        return
    schema.setdefault(SCHEMA_ID, name)
    name = str(schema[SCHEMA_ID])
    types = schema.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types)
    if (is_object or "properties" in schema) and not schema.get("title"):
        schema["title"] = name
    for prop, sub in dict(schema.get("properties") or {}).items():
        name_schema(sub, name + pascal_id(str(prop)))
    for i, sub in enumerate(dict(schema.get("patternProperties") or {}).values()):
        name_schema(sub, f"{name}Pattern{i + 1}")
    for key in ("definitions", "$defs"):
        for sub_name, sub in dict(schema.get(key) or {}).items():
            name_schema(sub, pascal_id(str(sub_name)))
    for sub_name, sub in dict(schema.get("dependencies") or {}).items():
        name_schema(sub, name + "If" + pascal_id(str(sub_name)))
    items = schema.get("items")
    if isinstance(items, list):
        for i, sub in enumerate(items):
            name_schema(sub, f"{name}Item{i + 1}")
    else:
        name_schema(items, name + "Item")
    for key, suffix in _SUBSCHEMA_LISTS.items():
        members = schema.get(key)
        if isinstance(members, list):
            for i, sub in enumerate(members):
                name_schema(sub, f"{name}{suffix}{i + 1}")
    for key, suffix in _SUBSCHEMA.items():
        name_schema(schema.get(key), name + suffix)


def name_document_schemas(document: dict[str, Any]) -> None:
    """Name every schema of an AsyncAPI 3 document in place (see `name_schema`): each entry
    of ``components/schemas`` after its key, each message payload ``<Message>Frame`` and its
    headers ``<Message>Headers`` (the message key in PascalCase), whether the message is a
    component or inline in a channel."""
    components = document.get("components") or {}
    for key, schema in dict(components.get("schemas") or {}).items():
        name_schema(schema, key)
    places = [components.get("messages") or {}]
    places += [dict(c).get("messages") or {} for c in dict(document.get("channels") or {}).values()]
    for messages in places:
        for key, message in dict(messages).items():
            if isinstance(message, dict) and "$ref" not in message:
                name_schema(message.get("payload"), pascal_id(str(key)) + "Frame")
                name_schema(message.get("headers"), pascal_id(str(key)) + "Headers")
