"""The Python client: a package of pydantic v2 models and an async client on ``websockets``.

`render` turns a `ClientDescription` into files (``{package}/__init__.py``, ``models.py``,
``errors.py``, ``_runtime.py``, ``client.py``, ``py.typed``). The templates
(``templates/clients/python/*.j2``) lay the files out; this module decides names (Python
attributes, methods, keyword arguments), renders type expressions and hands the templates
literals that `layout` made safe and formatted.
"""

from __future__ import annotations

import keyword
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .layout import (
    LIMIT,
    Atom,
    Call,
    DictLit,
    Expr,
    Lambda,
    Or,
    Sub,
    clean_text,
    layout,
    py_docstring,
    py_str,
    py_value_expr,
)
from .model import (
    AnyNode,
    ClientDescription,
    DictNode,
    ListNode,
    LiteralNode,
    NamedSchema,
    OperationDescription,
    PrimitiveNode,
    RefNode,
    TopicDescription,
    TupleNode,
    TypeNode,
    UnionNode,
    combine,
    sentence,
    snake,
    words,
)

__all__ = ["package_name", "render"]

# BaseModel's own attributes: a field cannot take these names.
_BASEMODEL_ATTRS = frozenset(
    {
        "construct",
        "copy",
        "dict",
        "from_orm",
        "json",
        "parse_file",
        "parse_obj",
        "parse_raw",
        "schema",
        "schema_json",
        "update_forward_refs",
        "validate",
        "model_computed_fields",
        "model_config",
        "model_construct",
        "model_copy",
        "model_dump",
        "model_dump_json",
        "model_extra",
        "model_fields",
        "model_fields_set",
        "model_json_schema",
        "model_parametrized_name",
        "model_post_init",
        "model_rebuild",
        "model_validate",
        "model_validate_json",
        "model_validate_strings",
    }
)
# Names a field annotation may use: a field with such a name would shadow it in the class.
_ANNOTATION_NAMES = frozenset(
    {
        "Annotated",
        "Any",
        "Field",
        "Literal",
        "UUID",
        "bool",
        "date",
        "datetime",
        "dict",
        "float",
        "int",
        "list",
        "str",
        "time",
        "tuple",
    }
)
# Attributes and methods of the runtime's BaseClient: an operation never takes these names.
_CLIENT_ATTRS = frozenset(
    {
        "close",
        "connect",
        "connected",
        "endpoint",
        "initial_backoff",
        "max_backoff",
        "max_queue",
        "on_error",
        "open_timeout",
        "reconnect",
        "request",
        "subscription",
        "timeout",
        "url",
        "wait_connected",
        "websocket_url",
    }
)
# The options of the client's constructor: an endpoint parameter never takes these names.
_OPTIONS = frozenset(
    {
        "headers",
        "initial_backoff",
        "max_backoff",
        "max_queue",
        "on_error",
        "open_timeout",
        "params",
        "reconnect",
        "subprotocols",
        "timeout",
        "token",
    }
)
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


def package_name(client: ClientDescription) -> str:
    """``ChatClient`` -> ``chat_client``."""
    return snake(client.name) + "_client"


def _identifier(text: str) -> str:
    name = re.sub(r"\W", "_", text, flags=re.ASCII).lstrip("_")
    if not name:
        name = "field"
    if name[0].isdigit():
        name = "f_" + name
    return name


def _constant(name: str) -> str:
    return "_" + "_".join(w.upper() for w in words(name))


class _Imports:
    """What a generated module imports, by module."""

    def __init__(self) -> None:
        self.names: dict[str, set[str]] = {}

    def add(self, module: str, *names: str) -> None:
        self.names.setdefault(module, set()).update(names)

    def get(self, module: str) -> list[str]:
        return sort_members(self.names.get(module, ()))


def _natural(text: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _member_type(name: str) -> int:
    if len(name) > 1 and name.isupper():
        return 0
    return 1 if name[:1].isupper() else 2


def sort_members(names: Iterable[str]) -> list[str]:
    """The order ruff's isort gives the names of a ``from`` import."""
    return sorted(set(names), key=lambda n: (_member_type(n), _natural(n.lower()), _natural(n)))


def sort_all(names: Iterable[str]) -> list[str]:
    """The order ruff's RUF022 wants in ``__all__``."""
    return sorted(set(names), key=lambda n: (_member_type(n), _natural(n)))


@dataclass
class _Field:
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


@dataclass
class _Class:
    name: str
    doc: str | None
    fields: list[_Field]
    extra: bool = False


@dataclass
class _Alias:
    """``{name}: TypeAlias = {value}``."""

    name: str
    value: str
    doc: str | None


@dataclass
class _Kwarg:
    """A keyword argument of a request method (a field of its payload model)."""

    attr: str
    type: str
    defaulted: bool


@dataclass
class _Operation:
    method: str
    frame_type: str  # a literal
    op_id: str  # a literal
    doc: str
    model: str | None  # the payload's class, when keyword arguments can build it
    kwargs: list[_Kwarg]
    fields: Expr  # the dict of keyword arguments given to build()
    payload: str | None  # the payload's annotation (a value, or a model without kwargs)
    reply: str | None
    adapter: str | None


@dataclass
class _Param:
    """A parameter of a topic address: keyword ``kwarg`` fills ``{name}``."""

    kwarg: str
    name: str  # a literal
    type: str


@dataclass
class _Topic:
    method: str
    doc: str
    address: str  # a literal
    params: list[_Param]
    values: Expr  # the dict given to fill_topic()
    event_type: str
    adapter: str
    types: list[str]  # the frame types of its events (literals)
    publish_method: str | None = None
    publish_doc: str = ""
    publish_data: str = ""
    presence_method: str | None = None
    presence_stats_method: str | None = None
    presence_doc: str = ""
    presence_stats_doc: str = ""


class _Python:
    def __init__(self, client: ClientDescription) -> None:
        self.client = client
        self.models = _Imports()
        self.client_imports = _Imports()
        self.classes: dict[str, _Class] = {}
        self.hoisted: list[_Alias] = []
        self.taken = (
            set(client.schemas)
            | {e.name for t in client.topics for e in t.events}
            | {t.union_name for t in client.topics if t.union_name}
        )
        self.taken |= {e.class_name for e in client.error_codes}

    # -- types ----------------------------------------------------------------------------

    def type_expr(self, node: TypeNode, imports: _Imports, top_constraints: bool = True) -> Expr:
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

    def _primitive(self, node: PrimitiveNode, imports: _Imports) -> Expr:
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
        self, base: Expr, constraints: Iterable[tuple[str, Any]], imports: _Imports
    ) -> Expr:
        args = self._constraint_args(constraints)
        if not args:
            return base
        imports.add("typing", "Annotated")
        imports.add("pydantic", "Field")
        return Sub("Annotated", (base, Call("Field", tuple(args))))

    # -- models ---------------------------------------------------------------------------

    def fields_of(self, schema: NamedSchema) -> list[_Field]:
        cls = self.classes.get(schema.name)
        if cls is None:
            cls = self._class(schema)
        return cls.fields

    def _class(self, schema: NamedSchema) -> _Class:
        assert schema.fields is not None
        cls = _Class(schema.name, None, [], extra=schema.extra is not None)
        self.classes[schema.name] = cls  # before the fields: discriminators look here
        used: set[str] = set()
        for f in schema.fields:
            attr = _identifier(f.name)
            if (
                keyword.iskeyword(attr)
                or keyword.issoftkeyword(attr)
                or attr in _BASEMODEL_ATTRS
                or attr in _ANNOTATION_NAMES
                or attr in self.taken
            ):
                attr += "_"
            while attr in used:
                attr += "_"
            used.add(attr)
            cls.fields.append(_Field(attr, f.name, required=f.required))
        for view, f in zip(cls.fields, schema.fields, strict=True):
            self._field(schema, view, f)
        cls.doc = py_docstring(schema.description, 4) if schema.description else None
        return cls

    def _field(self, schema: NamedSchema, view: _Field, f: Any) -> None:
        imports = self.models
        node: TypeNode = f.type
        top: tuple[tuple[str, Any], ...] = ()
        if isinstance(node, PrimitiveNode | ListNode) and node.constraints:
            top = tuple((k, v) for k, v in node.constraints if k in _CONSTRAINTS)
        ann = self.type_expr(node, imports, top_constraints=not top)
        optional = not f.required and not f.has_default and not f.nullable
        if optional:
            ann = Or((*(ann.items if isinstance(ann, Or) else (ann,)), Atom("None")))
        args: list[tuple[str | None, Expr]] = []
        plain_default: Expr | None = None
        if f.has_default:
            if _fits(f.default, node, self.client):
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
        self.models.add("typing", "TypeAlias")
        self.hoisted.append(_Alias(name, self._alias_value(name, ann), None))
        return name

    @staticmethod
    def _alias_value(name: str, expr: Expr) -> str:
        return layout(expr, len(name) + len(": TypeAlias = "), 0)

    def _alias(self, schema: NamedSchema) -> _Alias:
        assert schema.type is not None
        self.models.add("typing", "TypeAlias")
        expr = self.type_expr(schema.type, self.models)
        return _Alias(
            schema.name,
            self._alias_value(schema.name, expr),
            py_docstring(schema.description, 0) if schema.description else None,
        )

    def events(self) -> tuple[list[_Class], list[_Alias]]:
        envelopes: list[_Class] = []
        unions: list[_Alias] = []
        for topic in self.client.topics:
            for event in topic.events:
                data = self.type_expr(event.data or AnyNode(), self.models)
                self.models.add("typing", "Literal")
                kind = Atom(py_str(event.frame_type))
                data_annotation = data.flat()
                if 4 + len("data: ") + len(data_annotation) > LIMIT:
                    data_annotation = self._hoist(event.name, "data", data)
                about = f"The concrete topic: an address of `{topic.address}`."
                fields = [
                    _Field("type", "type", Sub("Literal", (kind,)).flat(), kind.flat()),
                    _Field("topic", "topic", "str", doc=py_docstring(about, 4)),
                    _Field("data", "data", data_annotation),
                ]
                text = f"`{event.frame_type}` on `{topic.address}`"
                if event.description:
                    text += ": " + event.description
                envelopes.append(_Class(event.name, py_docstring(sentence(text), 4), fields))
            if topic.union_name:
                self.models.add("typing", "Annotated", "TypeAlias")
                self.models.add("pydantic", "Field")
                expr = Sub(
                    "Annotated",
                    (
                        Or(tuple(Atom(e.name) for e in topic.events)),
                        Call("Field", (("discriminator", Atom('"type"')),)),
                    ),
                )
                unions.append(
                    _Alias(
                        topic.union_name,
                        self._alias_value(topic.union_name, expr),
                        py_docstring(f"An event of `{topic.address}`.", 0),
                    )
                )
        return envelopes, unions

    # -- the client -----------------------------------------------------------------------

    def method_name(self, text: str, taken: set[str], prefix: str = "") -> str:
        name = prefix + "_" + snake(text) if prefix else snake(text)
        if name in _CLIENT_ATTRS or name.startswith("_"):
            name += "_"
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    def kwarg_type(self, f: _Field) -> str:
        """The annotation of a field as a keyword argument of a request method."""
        if f.hoisted or f.node is None:
            self.client_imports.add(".models", f.annotation)
            return f.annotation
        expr = self.type_expr(f.node, self.client_imports, top_constraints=False)
        if f.optional:
            expr = Or((*(expr.items if isinstance(expr, Or) else (expr,)), Atom("None")))
        return expr.flat()

    def _raises(self) -> str:
        return (
            f"Raises `{self.client.error_class}` (a subclass per error code) when the server "
            "answers with an error, `RequestTimeout` without an answer within `timeout` "
            "seconds (default: the client's), `ConnectionLost` when the connection drops "
            "first."
        )

    def operation(self, op: OperationDescription, taken: set[str]) -> _Operation:
        imports = self.client_imports
        method = self.method_name(op.id, taken)
        payload = self.type_expr(op.payload, imports).flat() if op.payload is not None else None
        reply = self.type_expr(op.reply, imports).flat() if op.reply is not None else None
        cls: _Class | None = None
        if isinstance(op.payload, RefNode):
            schema = self.client.schemas.get(op.payload.name)
            if schema is not None and schema.is_object:
                cls = self.classes[schema.name]
                if any(f.attr in ("self", "data", "timeout") for f in cls.fields):
                    cls = None  # the model form only
        kwargs: list[_Kwarg] = []
        fields: Expr = Atom("{}")
        if cls is not None:
            imports.add("typing", "overload", "Any")
            imports.add("._runtime", "UNSET", "build")
            kwargs = [_Kwarg(f.attr, self.kwarg_type(f), f.defaulted) for f in cls.fields]
            fields = DictLit(tuple((Atom(py_str(f.attr)), Atom(f.attr)) for f in cls.fields))
        if payload is not None:
            imports.add("._runtime", "dump")
        if reply is not None:
            imports.add("._runtime", "parse_reply")
            imports.add("pydantic", "TypeAdapter")
        details = []
        if cls is not None:
            details.append(
                f"Pass a `{cls.name}`, or its fields as keyword arguments (checked before "
                "sending: a `ValidationFailed` names what is wrong)."
            )
        if reply is not None:
            details.append(f"Returns the reply: `{reply}`.")
        else:
            details.append("Returns when the server acknowledges it (`ack`).")
        if op.scopes:
            details.append("Needs the scopes: " + ", ".join(f"`{s}`" for s in op.scopes) + ".")
        if op.deprecated:
            details.append("Deprecated.")
        details.append(self._raises())
        text = combine(op.summary, op.description) or f"The `{op.frame_type}` operation."
        return _Operation(
            method=method,
            frame_type=py_str(op.frame_type),
            op_id=py_str(op.id),
            doc=py_docstring(text + "\n\n" + "\n\n".join(details), 8),
            model=cls.name if cls is not None else None,
            kwargs=kwargs,
            fields=fields,
            payload=payload,
            reply=reply,
            adapter=_constant(method) + "_REPLY" if reply is not None else None,
        )

    def topic(self, topic: TopicDescription, taken: set[str]) -> _Topic:
        imports = self.client_imports
        imports.add(".models", topic.event_type)
        imports.add("._runtime", "Subscription", "fill_topic")
        imports.add("collections.abc", "Callable")
        imports.add("pydantic", "TypeAdapter")
        method = self.method_name(topic.name, taken, "subscribe")
        reserved = {"self", "on_event", "max_queue", "timeout", "data"}
        params: list[_Param] = []
        docs: list[str] = []
        for param in topic.params:
            kwarg = snake(param.name)
            while kwarg in reserved or kwarg in {p.kwarg for p in params}:
                kwarg += "_"
            if param.enum:
                imports.add("typing", "Literal")
                kind = Sub("Literal", tuple(Atom(py_str(v)) for v in param.enum)).flat()
            else:
                kind = "int" if param.integer else "str"
            params.append(_Param(kwarg, py_str(param.name), kind))
            about = " ".join(clean_text(param.description or "").split())
            docs.append(f"{kwarg}: {sentence(about or f'The `{param.name}` level')}")
        values = DictLit(tuple((Atom(p.name), Atom(p.kwarg)) for p in params))
        about = topic.description or topic.summary or ""
        lines = [f"Subscribe to `{topic.address}`." + (f" {about}" if about else "")]
        lines.append(
            f"Use it as `async with client.{method}(...) as events:` and iterate (`async for "
            "event in events`), or pass `on_event` (a function or coroutine function, called "
            "with each event in order) and `await` it; `close()` ends it. After a "
            "reconnection the client subscribes again. Entering it raises a "
            f"`{self.client.error_class}` (e.g. `Forbidden`) when the server refuses."
        )
        if topic.subscribe_scopes:
            scopes = ", ".join(f"`{s}`" for s in topic.subscribe_scopes)
            lines.append(f"Needs the scopes: {scopes}.")
        args = [f"{d} None (the default) means any (`+`)." for d in docs]
        args.append("on_event: called with each event instead of iterating.")
        args.append(
            "max_queue: events kept for the iterator (default: the client's); the oldest "
            "are dropped beyond it."
        )
        wrapped = [
            textwrap.fill(
                a,
                width=LIMIT - 12,
                initial_indent="    ",
                subsequent_indent="        ",
                break_long_words=False,
                break_on_hyphens=False,
            )
            for a in args
        ]
        lines.append("Args:\n" + "\n".join(wrapped))
        view = _Topic(
            method=method,
            doc=py_docstring("\n\n".join(lines), 8),
            address=py_str(topic.address),
            params=params,
            values=values,
            event_type=topic.event_type,
            adapter=_constant(topic.name) + "_EVENT",
            types=[py_str(e.frame_type) for e in topic.events],
        )
        if topic.publish is not None:
            imports.add("._runtime", "dump")
            view.publish_method = self.method_name(topic.name, taken, "publish")
            view.publish_data = self.type_expr(topic.publish, imports).flat()
            text = (
                f"Publish an event to `{topic.address}`: every subscriber receives it. "
                "Returns when the server acknowledges it."
            )
            if topic.publish_scopes:
                scopes = ", ".join(f"`{s}`" for s in topic.publish_scopes)
                text += f" Needs the scopes: {scopes}."
            view.publish_doc = py_docstring(text + "\n\n" + self._raises(), 8)
        if topic.presence:
            imports.add("._runtime", "Presence", "PresenceStats")
            view.presence_method = self.method_name(topic.name, taken, "presence")
            view.presence_stats_method = self.method_name(topic.name, taken, "presence_stats")
            view.presence_doc = py_docstring(
                f"The members of a `{topic.address}` topic, on every server instance (at "
                "most the server's cap: see `truncated` and `count`)."
                "\n\n" + self._raises(),
                8,
            )
            view.presence_stats_doc = py_docstring(
                f"The number of members of a `{topic.address}` topic.\n\n" + self._raises(), 8
            )
        return view


def _fits(value: Any, node: TypeNode, client: ClientDescription) -> bool:
    """Whether a JSON default is already a value of the Python type (else it is validated
    into one: a date, a model, ...)."""
    if isinstance(node, AnyNode):
        return True
    if isinstance(node, RefNode):
        schema = client.schemas.get(node.name)
        if schema is None or schema.is_object or schema.type is None:
            return False
        return _fits(value, schema.type, client)
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
        return isinstance(value, list) and all(_fits(v, node.item, client) for v in value)
    if isinstance(node, DictNode):
        return isinstance(value, dict) and all(_fits(v, node.value, client) for v in value.values())
    if isinstance(node, UnionNode):
        return node.discriminator is None and any(_fits(value, m, client) for m in node.members)
    return False


def render(client: ClientDescription, env: Any) -> dict[str, str]:
    """The files of the package (paths relative to the output directory)."""
    py = _Python(client)
    aliases_first: list[_Alias] = []
    classes: list[_Class] = []
    aliases_last: list[_Alias] = []
    for schema in client.ordered_schemas():
        if schema.is_object:
            classes.append(py.classes.get(schema.name) or py._class(schema))
        elif classes:
            aliases_last.append(py._alias(schema))
        else:
            aliases_first.append(py._alias(schema))
    envelopes, unions = py.events()
    taken: set[str] = set()
    operations = [py.operation(op, taken) for op in client.operations]
    topics = [py.topic(t, taken) for t in client.topics]
    py.models.add("pydantic", "BaseModel", "ConfigDict")
    model_names = sort_all(
        [c.name for c in classes]
        + [a.name for a in aliases_first + aliases_last + py.hoisted]
        + [e.name for e in envelopes]
        + [u.name for u in unions]
    )
    ci = py.client_imports
    ci.add("._runtime", "BaseClient")
    endpoint_params: list[_Param] = []
    if client.endpoint is None:
        ci.add("._runtime", "ClientOptions", "fill_path")
        ci.add("typing", "Unpack")
        used: set[str] = {"self", "url", "options", *_OPTIONS}
        for param in client.endpoint_params:
            kwarg = snake(param.name)
            while kwarg in used:
                kwarg += "_"
            used.add(kwarg)
            endpoint_params.append(
                _Param(kwarg, py_str(param.name), "int" if param.integer else "str")
            )
    error_exports = [
        "ErrorCode",
        "ErrorDetail",
        client.base_error_class,
        client.error_class,
        "ConnectionFailed",
        "ConnectionLost",
        "RequestTimeout",
        "UnexpectedFrame",
        *[e.class_name for e in client.error_codes],
    ]
    runtime_exports = ["ClientOptions", "Subscription"]
    if any(t.presence for t in client.topics):
        runtime_exports += ["Presence", "PresenceMember", "PresenceStats"]
    context = {
        "client": client,
        "title": f"{client.title} {client.version}".strip(),
        "package": package_name(client),
        "limit": LIMIT,
        "aliases_first": aliases_first,
        "classes": classes,
        "aliases_last": aliases_last + py.hoisted,
        "envelopes": envelopes,
        "unions": unions,
        "model_names": model_names,
        "models_imports": py.models,
        "client_imports": ci,
        "needs_is_none": any(
            f.value is not None and "_is_none" in f.value for c in classes for f in c.fields
        ),
        "operations": operations,
        "topics": topics,
        "endpoint_params": endpoint_params,
        "errors": client.error_codes,
        "error_codes": Sub("Literal", tuple(Atom(py_str(e.code)) for e in client.error_codes)),
        "error_exports": error_exports,
        "runtime_exports": runtime_exports,
        "all_exports": [
            *runtime_exports,
            "SERVERS",
            client.client_class,
            *error_exports,
            *model_names,
        ],
    }
    globals_ = {
        "sort_all": sort_all,
        "sort_members": sort_members,
        "import_sections": import_sections,
        "py_docstring": py_docstring,
        "py_str": py_str,
        "call": _call,
        "dict_of": _dict_of,
        "laid": _laid,
        "auth_text": _auth_text,
    }
    files = {}
    package = context["package"]
    for name in ("__init__.py", "models.py", "errors.py", "_runtime.py", "client.py"):
        template = env.get_template(f"clients/python/{name}.j2", globals=globals_)
        files[f"{package}/{name}"] = _tidy(template.render(context))
    files[f"{package}/py.typed"] = ""
    return files


def _call(func: str, args: Iterable[Any]) -> Call:
    """A call expression for the templates: ``args`` are code (str), expressions, or
    ``(keyword, value)`` pairs."""
    items: list[tuple[str | None, Expr]] = []
    for arg in args:
        if isinstance(arg, tuple | list) and len(arg) == 2 and isinstance(arg[0], str):
            value = arg[1]
            items.append((arg[0], value if isinstance(value, Expr) else Atom(str(value))))
        else:
            items.append((None, arg if isinstance(arg, Expr) else Atom(str(arg))))
    return Call(func, tuple(items))


def _dict_of(pairs: Iterable[tuple[str, str]]) -> DictLit:
    """A dict expression (keys and values are code)."""
    return DictLit(tuple((Atom(k), Atom(v)) for k, v in pairs))


def _laid(indent: int, prefix: str, expr: Expr) -> str:
    """``prefix`` and ``expr`` laid out on a line indented by ``indent`` (the caller writes
    the indentation)."""
    return prefix + layout(expr, indent + len(prefix), indent)


def _auth_text(client: ClientDescription) -> str:
    lines = []
    for auth in client.auth:
        if auth.kind == "token":
            lines.append(f"`{auth.key}`: pass `token=` (sent as `Authorization: Bearer`).")
        elif auth.kind in ("query", "header"):
            where = "params" if auth.kind == "query" else "headers"
            lines.append(f"`{auth.key}`: pass `{where}={{{auth.name!r}: ...}}`.")
        else:
            lines.append(f"`{auth.key}`: not supported by the generated client.")
    return " ".join(lines)


def _tidy(text: str) -> str:
    """Trailing spaces off, at most two blank lines in a row, one final newline."""
    lines = [line.rstrip() for line in text.split("\n")]
    out: list[str] = []
    blanks = 0
    for line in lines:
        blanks = blanks + 1 if not line else 0
        if blanks <= 2:
            out.append(line)
    return "\n".join(out).strip("\n") + "\n"


_STDLIB = frozenset({"collections.abc", "datetime", "typing", "uuid"})


def import_sections(imports: _Imports, skip: str = "") -> list[list[tuple[str, list[str]]]]:
    """The ``from`` imports of a module in ruff's isort order: stdlib, third party, local
    sections of ``(module, names)`` (the template writes them)."""
    sections: list[list[tuple[str, list[str]]]] = [[], [], []]
    for module in sorted(imports.names, key=lambda m: (m.startswith("."), m.lower())):
        if module == skip or not imports.names[module]:
            continue
        section = 2 if module.startswith(".") else 0 if module in _STDLIB else 1
        sections[section].append((module, sort_members(imports.names[module])))
    return [s for s in sections if s]
