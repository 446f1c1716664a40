"""Python names of the generated client: what an attribute, a method or a keyword argument
may be called (never one that shadows `pydantic.BaseModel`, an annotation or the runtime's
`BaseClient`), and identifiers made of JSON property names.
"""

from __future__ import annotations

import re

from ..names import snake, words

__all__ = [
    "ANNOTATION_NAMES",
    "BASEMODEL_ATTRS",
    "CLIENT_ATTRS",
    "OPTIONS",
    "constant",
    "identifier",
    "method_name",
]

# BaseModel's own attributes: a field cannot take these names.
BASEMODEL_ATTRS = frozenset(
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
ANNOTATION_NAMES = frozenset(
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
CLIENT_ATTRS = frozenset(
    {
        "close",
        "connect",
        "connected",
        "endpoint",
        "initial_backoff",
        "max_backoff",
        "max_queue",
        "on_error",
        "on_recovery",
        "open_timeout",
        "positions",
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
OPTIONS = frozenset(
    {
        "headers",
        "initial_backoff",
        "max_backoff",
        "max_queue",
        "on_error",
        "on_recovery",
        "open_timeout",
        "params",
        "reconnect",
        "subprotocols",
        "timeout",
        "token",
    }
)


def identifier(text: str) -> str:
    """A Python identifier for a JSON property name (``"2nd-try"`` -> ``f_2nd_try``)."""
    name = re.sub(r"\W", "_", text, flags=re.ASCII).lstrip("_")
    if not name:
        name = "field"
    if name[0].isdigit():
        name = "f_" + name
    return name


def constant(name: str) -> str:
    """A private module constant for ``name``: ``"rooms.room"`` -> ``_ROOMS_ROOM``."""
    return "_" + "_".join(w.upper() for w in words(name))


def method_name(text: str, taken: set[str], prefix: str = "") -> str:
    """A method name of the client class for ``text`` (``prefix_text``), unique in ``taken``
    and never one of `BaseClient`'s own attributes."""
    name = prefix + "_" + snake(text) if prefix else snake(text)
    if name in CLIENT_ATTRS or name.startswith("_"):
        name += "_"
    while name in taken:
        name += "_"
    taken.add(name)
    return name
