"""The type tree of a client description: JSON Schema read into `TypeNode`s.

Each language renders the tree its own way (`asyncws.codegen.python`,
`asyncws.codegen.typescript`). Named types are `NamedSchema`s (a class with
`FieldDescription`s, or an alias of a type); a `RefNode` names one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AnyNode",
    "DictNode",
    "FieldDescription",
    "ListNode",
    "LiteralNode",
    "NamedSchema",
    "PrimitiveNode",
    "RefNode",
    "TupleNode",
    "TypeNode",
    "UnionNode",
    "is_nullable",
    "iter_refs",
    "union",
]


@dataclass(frozen=True)
class TypeNode:
    """A type, independent of the target language. ``kind`` tells templates what it is."""

    kind: ClassVar[str] = "any"


@dataclass(frozen=True)
class AnyNode(TypeNode):
    """Anything JSON (an empty schema, or what cannot be expressed)."""

    kind: ClassVar[str] = "any"


@dataclass(frozen=True)
class PrimitiveNode(TypeNode):
    """``string``, ``integer``, ``number``, ``boolean`` or ``null``, with a ``format`` and
    the JSON Schema constraints that apply (``minLength``, ``pattern``, ``minimum``, ...)."""

    kind: ClassVar[str] = "primitive"
    name: str
    format: str | None = None
    constraints: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class LiteralNode(TypeNode):
    """``const`` or ``enum``: one of these JSON values."""

    kind: ClassVar[str] = "literal"
    values: tuple[Any, ...]


@dataclass(frozen=True)
class ListNode(TypeNode):
    kind: ClassVar[str] = "list"
    item: TypeNode
    constraints: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class TupleNode(TypeNode):
    kind: ClassVar[str] = "tuple"
    items: tuple[TypeNode, ...]


@dataclass(frozen=True)
class DictNode(TypeNode):
    """An object with arbitrary keys (``additionalProperties``)."""

    kind: ClassVar[str] = "dict"
    value: TypeNode


@dataclass(frozen=True)
class UnionNode(TypeNode):
    """``oneOf``/``anyOf``/a list of types; ``discriminator`` names the property whose
    ``const`` tells the members apart (only when every member is a named object with it)."""

    kind: ClassVar[str] = "union"
    members: tuple[TypeNode, ...]
    discriminator: str | None = None


@dataclass(frozen=True)
class RefNode(TypeNode):
    """A named schema (`NamedSchema`): a class or a type alias."""

    kind: ClassVar[str] = "ref"
    name: str


def is_nullable(node: TypeNode) -> bool:
    if isinstance(node, PrimitiveNode):
        return node.name == "null"
    if isinstance(node, LiteralNode):
        return None in node.values
    if isinstance(node, UnionNode):
        return any(is_nullable(m) for m in node.members)
    return isinstance(node, AnyNode)


def iter_refs(node: TypeNode) -> Iterator[str]:
    """The names of the named schemas a type uses directly."""
    if isinstance(node, RefNode):
        yield node.name
    elif isinstance(node, ListNode):
        yield from iter_refs(node.item)
    elif isinstance(node, DictNode):
        yield from iter_refs(node.value)
    elif isinstance(node, TupleNode | UnionNode):
        for item in node.items if isinstance(node, TupleNode) else node.members:
            yield from iter_refs(item)


@dataclass
class FieldDescription:
    """A property of an object schema."""

    name: str  # on the wire
    type: TypeNode
    required: bool
    description: str | None = None
    has_default: bool = False
    default: Any = None
    deprecated: bool = False

    @property
    def nullable(self) -> bool:
        return is_nullable(self.type)


@dataclass
class NamedSchema:
    """A named type: an object (``fields``) or an alias of ``type``."""

    name: str
    description: str | None = None
    fields: list[FieldDescription] | None = None  # None: an alias
    type: TypeNode | None = None  # aliases
    extra: TypeNode | None = None  # objects: the type of additionalProperties, if any
    source: str = ""  # where it comes from, for messages

    @property
    def is_object(self) -> bool:
        return self.fields is not None

    def refs(self) -> Iterator[str]:
        if self.fields is not None:
            for f in self.fields:
                yield from iter_refs(f.type)
            if self.extra is not None:
                yield from iter_refs(self.extra)
        elif self.type is not None:
            yield from iter_refs(self.type)


def union(nodes: list[TypeNode], discriminator: str | None = None) -> TypeNode:
    """One type of several: members flattened (a discriminated union stays one member),
    duplicates dropped, literals merged, `AnyNode` when one member is any, ``null`` last."""
    flat: list[TypeNode] = []
    for node in nodes:
        # a discriminated union stays one member (its discriminator applies to it alone)
        split = isinstance(node, UnionNode) and node.discriminator is None
        members = node.members if isinstance(node, UnionNode) and split else (node,)
        for member in members:
            if member not in flat:
                flat.append(member)
    if any(isinstance(n, AnyNode) for n in flat):
        return AnyNode()
    literals = [n for n in flat if isinstance(n, LiteralNode)]
    if len(literals) > 1:  # one literal with every value, where the first one was
        merged = LiteralNode(tuple(dict.fromkeys(v for n in literals for v in n.values)))
        flat = [merged if n is literals[0] else n for n in flat if n not in literals[1:]]
    if len(flat) == 1:
        return flat[0]
    # null last: `str | None` reads better than `None | str`
    flat.sort(key=lambda n: isinstance(n, PrimitiveNode) and n.name == "null")
    return UnionNode(tuple(flat), discriminator)
