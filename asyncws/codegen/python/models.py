"""The ``models`` module of the Python client: pydantic v2 models of the document's schemas.

`Models` renders the type tree (`asyncws.codegen.typetree`) as annotations (constraints as
``Annotated[..., Field(...)]``, discriminated unions with ``Field(discriminator=...)``),
each object schema as a class (`ModelClass`, fields named so they shadow neither pydantic
nor an annotation, wire names kept as aliases), other schemas as type aliases, and each
topic event as an envelope class (``type``, ``topic``, ``data``). An annotation too long for
a field's line is hoisted into an alias of its own. The client module uses the same
annotations (`Models.type_expr` with its own `Imports`).
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..layout import (
    LIMIT,
    Atom,
    Call,
    Expr,
    Lambda,
    Or,
    Sub,
    layout,
    py_docstring,
    py_str,
    py_value_expr,
)
from ..model import ClientDescription
from ..names import sentence, words
from ..typetree import (
    AnyNode,
    DictNode,
    ListNode,
    LiteralNode,
    NamedSchema,
    PrimitiveNode,
    RefNode,
    TupleNode,
    TypeNode,
    UnionNode,
)
from .imports import Imports
from .naming import ANNOTATION_NAMES, BASEMODEL_ATTRS, identifier

__all__ = ["Alias", "Field", "ModelClass", "Models", "fits", "or_none"]

_FORMATS = {"date-time": "datetime", "date": "date", "time": "time", "uuid": "UUID"}
_CONSTRAINTS = {
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "multipleOf": "multiple_of",
    "minItems": "min_length",
    "maxItems": "max_length",
}


@dataclass
class Field:
    """A field of a model: ``{attr}: {annotation} = {value}`` (the value laid out to start
    after ``{attr}: {annotation} = ``)."""

    attr: str
    wire: str
    annotation: str = ""
    value: str | None = None
    doc: str | None = None
    required: bool = True
    node: TypeNode | None = None
    optional: bool = False
    hoisted: bool = False
    defaulted: bool = False  # may be left out

    @property
    def line(self) -> str:
        """The field as it is written in its class (without the indentation)."""
        return f"{self.attr}: {self.annotation}" + (
            f" = {self.value}" if self.value is not None else ""
        )


@dataclass
class ModelClass:
    name: str
    doc: str | None
    fields: list[Field]
    extra: bool = False


@dataclass
class Alias:
    """``{name}: TypeAlias = {value}``."""

    name: str
    value: str
    doc: str | None


class Models:
    """The classes and aliases of the ``models`` module (``imports`` are its imports)."""

    def __init__(self, client: ClientDescription) -> None:
        self.client = client
        self.imports = Imports()
        self.classes: dict[str, ModelClass] = {}
        self.hoisted: list[Alias] = []
        self.taken = (
            set(client.schemas)
            | {e.name for t in client.topics for e in t.events}
            | {t.union_name for t in client.topics if t.union_name}
        )
        self.taken |= {e.class_name for e in client.error_codes}

    def type_expr(self, node: TypeNode, imports: Imports, top_constraints: bool = True) -> Expr:
        """The annotation of ``node``; constraints become ``Annotated[..., Field(...)]``
        unless ``top_constraints`` is False (the caller puts them in the field's Field())."""
        if isinstance(node, AnyNode):
            imports.add("typing", "Any")
            return Atom("Any")
        if isinstance(node, RefNode):
            imports.add(".models", node.name)
            return Atom(node.name)
        if isinstance(node, PrimitiveNode):
            base = self._primitive(node, imports)
            if top_constraints and node.constraints:
                return self._annotated(base, node.constraints, imports)
            return base
        if isinstance(node, LiteralNode):
            literal = [v for v in node.values if not isinstance(v, float)]
            floats = [v for v in node.values if isinstance(v, float)]
            members: list[Expr] = []
            if literal:
                imports.add("typing", "Literal")
                members.append(Sub("Literal", tuple(py_value_expr(v) for v in literal)))
            if floats:
                members.append(Atom("float"))
            return members[0] if len(members) == 1 else Or(tuple(members))
        if isinstance(node, ListNode):
            expr: Expr = Sub("list", (self.type_expr(node.item, imports),))
            constraints = tuple((k, v) for k, v in node.constraints if k != "uniqueItems")
            if top_constraints and constraints:
                return self._annotated(expr, constraints, imports)
            return expr
        if isinstance(node, TupleNode):
            if not node.items:
                return Atom("tuple[()]")
            return Sub("tuple", tuple(self.type_expr(i, imports) for i in node.items))
        if isinstance(node, DictNode):
            return Sub("dict", (Atom("str"), self.type_expr(node.value, imports)))
        if isinstance(node, UnionNode):
            items: list[Expr] = []
            for member in node.members:
                expr = self.type_expr(member, imports)
                items.extend(expr.items if isinstance(expr, Or) else [expr])
            union = Or(tuple(items))
            if node.discriminator is None:
                return union
            imports.add("typing", "Annotated")
            imports.add("pydantic", "Field")
            disc = self._discriminator_attr(node)
            return Sub(
                "Annotated",
                (union, Call("Field", (("discriminator", Atom(py_str(disc))),))),
            )
        raise TypeError(f"unknown type node {node!r}")

    def _discriminator_attr(self, node: UnionNode) -> str:
        assert node.discriminator is not None
        first = node.members[0]
        if isinstance(first, RefNode) and first.name in self.client.schemas:
            for f in self.fields_of(self.client.schemas[first.name]):
                if f.wire == node.discriminator:
                    return f.attr
        return node.discriminator

    def _primitive(self, node: PrimitiveNode, imports: Imports) -> Expr:
        if node.name == "string":
            name = _FORMATS.get(node.format or "", "str")
            if name in ("datetime", "date", "time"):
                imports.add("datetime", name)
            elif name == "UUID":
                imports.add("uuid", "UUID")
            return Atom(name)
        return Atom(
            {"integer": "int", "number": "float", "boolean": "bool", "null": "None"}[node.name]
        )

    def _constraint_args(
        self, constraints: Iterable[tuple[str, Any]]
    ) -> list[tuple[str | None, Expr]]:
        return [(_CONSTRAINTS[k], py_value_expr(v)) for k, v in constraints if k in _CONSTRAINTS]

    def _annotated(
        self, base: Expr, constraints: Iterable[tuple[str, Any]], imports: Imports
    ) -> Expr:
        args = self._constraint_args(constraints)
        if not args:
            return base
        imports.add("typing", "Annotated")
        imports.add("pydantic", "Field")
        return Sub("Annotated", (base, Call("Field", tuple(args))))

    # -- models ---------------------------------------------------------------------------

    def class_of(self, schema: NamedSchema) -> ModelClass:
        """The class of an object schema (made once)."""
        cls = self.classes.get(schema.name)
        return cls if cls is not None else self._class(schema)

    def fields_of(self, schema: NamedSchema) -> list[Field]:
        return self.class_of(schema).fields

    def _class(self, schema: NamedSchema) -> ModelClass:
        assert schema.fields is not None
        cls = ModelClass(schema.name, None, [], extra=schema.extra is not None)
        self.classes[schema.name] = cls  # before the fields: discriminators look here
        used: set[str] = set()
        for f in schema.fields:
            attr = identifier(f.name)
            if (
                keyword.iskeyword(attr)
                or keyword.issoftkeyword(attr)
                or attr in BASEMODEL_ATTRS
                or attr in ANNOTATION_NAMES
                or attr in self.taken
            ):
                attr += "_"
            while attr in used:
                attr += "_"
            used.add(attr)
            cls.fields.append(Field(attr, f.name, required=f.required))
        for view, f in zip(cls.fields, schema.fields, strict=True):
            self._field(schema, view, f)
        cls.doc = py_docstring(schema.description, 4) if schema.description else None
        return cls

    def _field(self, schema: NamedSchema, view: Field, f: Any) -> None:
        imports = self.imports
        node: TypeNode = f.type
        top: tuple[tuple[str, Any], ...] = ()
        if isinstance(node, PrimitiveNode | ListNode) and node.constraints:
            top = tuple((k, v) for k, v in node.constraints if k in _CONSTRAINTS)
        ann = self.type_expr(node, imports, top_constraints=not top)
        optional = not f.required and not f.has_default and not f.nullable
        if optional:
            ann = or_none(ann)
        args: list[tuple[str | None, Expr]] = []
        plain_default: Expr | None = None
        if f.has_default:
            if fits(f.default, node, self.client):
                plain_default = py_value_expr(f.default)
            else:  # e.g. a date-time default: validated into the field's type
                imports.add("pydantic", "TypeAdapter")
                adapter = Call("TypeAdapter", ((None, ann),)).flat()
                validate = Call(adapter + ".validate_python", ((None, py_value_expr(f.default)),))
                args.append(("default_factory", Lambda(validate)))
        elif not f.required:
            plain_default = Atom("None")
            if optional:
                args.append(("exclude_if", Atom("_is_none")))
        if view.attr != view.wire:
            args.append(("alias", Atom(py_str(view.wire))))
        args.extend(self._constraint_args(top))
        if f.deprecated:
            args.append(("deprecated", Atom("True")))
        if plain_default is not None and args:
            args.insert(0, ("default", plain_default))
            plain_default = None
        value: Expr | None = plain_default
        if args:
            imports.add("pydantic", "Field")
            value = Call("Field", tuple(args))
        annotation = ann.flat()
        head = 4 + len(view.attr) + 2 + len(annotation)
        if head + (len(" = Field(") if value is not None else 0) > LIMIT:
            annotation = self._hoist(schema.name, view.attr, ann)
            view.hoisted = True
            head = 4 + len(view.attr) + 2 + len(annotation)
        if value is not None:
            text = layout(value, head + 3, 4)
            if "\n" not in text and head + 3 + len(text) > LIMIT and not isinstance(value, Call):
                # a long plain default: as Field(default=...), which can break
                imports.add("pydantic", "Field")
                value = Call("Field", (("default", value),))
                text = layout(value, head + 3, 4)
            view.value = text
        view.annotation = annotation
        view.defaulted = f.has_default or not f.required
        view.node = node
        view.optional = optional
        view.doc = py_docstring(f.description, 4) if f.description else None

    def _hoist(self, owner: str, attr: str, ann: Expr) -> str:
        """A type alias for a long annotation (named after the field, or shorter when the
        field's name is long: ``head = Field(`` must fit on a line)."""
        room = LIMIT - (4 + len(attr) + 2) - len(" = Field(")
        base = owner + "".join(w[:1].upper() + w[1:] for w in words(attr))
        if len(base) + 2 > room:
            base = owner + "Type"
        if len(base) + 2 > room:
            base = "T" + owner[: max(room - 3, 1)]
        name = base
        n = 2
        while name in self.taken:
            name = base + str(n)
            n += 1
        self.taken.add(name)
        self.imports.add("typing", "TypeAlias")
        self.hoisted.append(Alias(name, self._alias_value(name, ann), None))
        return name

    @staticmethod
    def _alias_value(name: str, expr: Expr) -> str:
        return layout(expr, len(name) + len(": TypeAlias = "), 0)

    def alias(self, schema: NamedSchema) -> Alias:
        """The type alias of a schema that is not an object."""
        assert schema.type is not None
        self.imports.add("typing", "TypeAlias")
        expr = self.type_expr(schema.type, self.imports)
        return Alias(
            schema.name,
            self._alias_value(schema.name, expr),
            py_docstring(schema.description, 0) if schema.description else None,
        )

    def events(self) -> tuple[list[ModelClass], list[Alias]]:
        envelopes: list[ModelClass] = []
        unions: list[Alias] = []
        for topic in self.client.topics:
            for event in topic.events:
                data = self.type_expr(event.data or AnyNode(), self.imports)
                self.imports.add("typing", "Literal")
                kind = Atom(py_str(event.frame_type))
                data_annotation = data.flat()
                if 4 + len("data: ") + len(data_annotation) > LIMIT:
                    data_annotation = self._hoist(event.name, "data", data)
                about = f"The concrete topic: an address of `{topic.address}`."
                fields = [
                    Field("type", "type", Sub("Literal", (kind,)).flat(), kind.flat()),
                    Field("topic", "topic", "str", doc=py_docstring(about, 4)),
                    Field("data", "data", data_annotation),
                ]
                text = f"`{event.frame_type}` on `{topic.address}`"
                if event.description:
                    text += ": " + event.description
                envelopes.append(ModelClass(event.name, py_docstring(sentence(text), 4), fields))
            if topic.union_name:
                self.imports.add("typing", "Annotated", "TypeAlias")
                self.imports.add("pydantic", "Field")
                expr = Sub(
                    "Annotated",
                    (
                        Or(tuple(Atom(e.name) for e in topic.events)),
                        Call("Field", (("discriminator", Atom('"type"')),)),
                    ),
                )
                unions.append(
                    Alias(
                        topic.union_name,
                        self._alias_value(topic.union_name, expr),
                        py_docstring(f"An event of `{topic.address}`.", 0),
                    )
                )
        return envelopes, unions


def or_none(expr: Expr) -> Or:
    """``expr | None``."""
    return Or((*(expr.items if isinstance(expr, Or) else (expr,)), Atom("None")))


def fits(value: Any, node: TypeNode, client: ClientDescription) -> bool:
    """Whether a JSON default is already a value of the Python type (else it is validated
    into one: a date, a model, ...)."""
    if isinstance(node, AnyNode):
        return True
    if isinstance(node, RefNode):
        schema = client.schemas.get(node.name)
        if schema is None or schema.is_object or schema.type is None:
            return False
        return fits(value, schema.type, client)
    if isinstance(node, LiteralNode):
        return value in node.values and not isinstance(value, float)
    if isinstance(node, PrimitiveNode):
        if node.name == "string":
            return isinstance(value, str) and node.format not in _FORMATS
        if node.name == "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        if node.name == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        if node.name == "boolean":
            return isinstance(value, bool)
        return value is None
    if isinstance(node, ListNode):
        return isinstance(value, list) and all(fits(v, node.item, client) for v in value)
    if isinstance(node, DictNode):
        return isinstance(value, dict) and all(fits(v, node.value, client) for v in value.values())
    if isinstance(node, UnionNode):
        return node.discriminator is None and any(fits(value, m, client) for m in node.members)
    return False
