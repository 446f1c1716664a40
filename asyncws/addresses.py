"""Topic addresses: templates like ``rooms/{room}`` and their typed parameters. Pure.

A `TopicTemplate` is compiled once per declared topic: `render` fills its parameters (a
publish), `covers` and `reaches` decide which client subscription patterns it allows and
which it delivers to, `match` reads the parameters back from a concrete topic. Each
parameter is a `Param`: a whole level, validated with pydantic (``n/01`` is not an int
level: messages are published on ``n/1``). The matching rules of topics and patterns
themselves (MQTT ``+``/``#``) are `asyncws.topics`.
"""

from __future__ import annotations

import contextlib
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, get_args, get_origin

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from .exceptions import InvalidTopicError

__all__ = ["Param", "TopicTemplate", "declared_params", "parameter_names"]

_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parameter_names(address: str) -> list[str]:
    """The ``{name}`` parameters of an address, in order (a name may appear twice)."""
    return _PARAM_RE.findall(address)


def declared_params(address: str, given: Mapping[str, Any] | None) -> dict[str, Param]:
    """The `Param` of each ``{name}`` in ``address``, from a topic's ``params=``: a `Param`,
    a type (``int``, an Enum, a Literal, ...) or a pydantic ``Field(...)`` (constraints on
    a string); a parameter not given is a ``str``.

    Raises ValueError for a parameter that appears twice or a ``params`` entry with no
    ``{name}`` in the address."""
    names = parameter_names(address)
    if len(set(names)) != len(names):
        raise ValueError(f"topic {address!r}: a parameter appears twice")
    rest = dict(given or {})
    params: dict[str, Param] = {}
    for name in names:
        spec = rest.pop(name, str)
        if isinstance(spec, Param):
            params[name] = spec
        elif isinstance(spec, FieldInfo):
            params[name] = Param(name, Annotated[str, spec], spec.description)
        else:
            params[name] = Param(name, spec)
    if rest:
        raise ValueError(f"topic {address!r}: no {{{next(iter(rest))}}} in the address")
    return params


@dataclass(frozen=True, slots=True)
class Param:
    """A ``{name}`` in a topic address: its type (validated with pydantic) and description."""

    name: str
    annotation: Any = str
    description: str | None = None

    @property
    def adapter(self) -> TypeAdapter[Any]:
        return _adapter(self.annotation)

    def enum(self) -> list[Any] | None:
        """The allowed values when the type says so (an Enum or a Literal)."""
        tp = self.annotation
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        if isinstance(tp, type) and issubclass(tp, Enum):
            return [m.value for m in tp]
        if get_origin(tp) is typing.Literal:
            return list(get_args(tp))
        return None

    def render(self, value: Any) -> str:
        """Validate ``value`` and turn it into one topic level."""
        try:
            checked = self.adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidTopicError(
                f"invalid value for topic parameter {self.name!r}",
                errors=[{"loc": [self.name], "msg": e["msg"]} for e in exc.errors()],
            ) from None
        text = _level_text(checked)
        if not text or "/" in text or text in ("+", "#"):
            raise InvalidTopicError(f"topic parameter {self.name!r} must be one non-empty level")
        return text

    def accepts(self, level: str) -> bool:
        """Whether a client-given level is a valid value, written the way `render` writes it
        (``n/01`` is refused for an int: messages are published on ``n/1``, a subscription
        to ``n/01`` would never receive anything)."""
        try:
            checked = self.adapter.validate_strings(level)
        except ValidationError:
            return False
        return bool(level) and _level_text(checked) == level


def _level_text(value: Any) -> str:
    return str(value.value if isinstance(value, Enum) else value)


_adapters: dict[Any, TypeAdapter[Any]] = {}


def _adapter(tp: Any) -> TypeAdapter[Any]:
    try:
        return _adapters[tp]
    except (KeyError, TypeError):
        adapter: TypeAdapter[Any] = TypeAdapter(tp)
        with contextlib.suppress(TypeError):  # unhashable annotations are not cached
            _adapters[tp] = adapter
        return adapter


class TopicTemplate:
    """An address like ``rooms/{room}``: its levels and the parameters in them.

    Parameters are whole levels. `render` fills them; `covers` says whether a client's
    subscription pattern stays inside the template (``+`` only where a parameter is, ``#``
    only where every remaining level is a parameter).
    """

    __slots__ = ("address", "levels", "params")

    def __init__(self, address: str, params: dict[str, Param]) -> None:
        self.address = address
        self.levels: list[str | Param] = []
        for level in address.split("/"):
            m = _PARAM_RE.fullmatch(level)
            if m is not None:
                self.levels.append(params[m.group(1)])
            elif "{" in level or "}" in level:
                raise ValueError(f"topic {address!r}: a parameter must be a whole level")
            elif level in ("+", "#"):
                raise ValueError(f"topic {address!r}: declare parameters, not wildcards")
            else:
                self.levels.append(level)
        self.params = params

    def render(self, values: dict[str, Any]) -> str:
        missing = [n for n in self.params if n not in values]
        if missing:
            raise TypeError(f"topic {self.address!r}: missing parameter(s) {', '.join(missing)}")
        unknown = [n for n in values if n not in self.params]
        if unknown:
            raise TypeError(f"topic {self.address!r}: unknown parameter(s) {', '.join(unknown)}")
        return "/".join(
            lv if isinstance(lv, str) else lv.render(values[lv.name]) for lv in self.levels
        )

    def covers(self, pattern: str) -> dict[str, str | None] | None:
        """The parameter values of ``pattern`` (None for wildcard levels) if the template
        allows it, else None."""
        parts = pattern.split("/")
        values: dict[str, str | None] = {}
        for i, part in enumerate(parts):
            if part == "#":
                rest = self.levels[i:]
                if not all(isinstance(lv, Param) for lv in rest):
                    return None
                values.update({lv.name: None for lv in rest if isinstance(lv, Param)})
                return values
            if i >= len(self.levels):
                return None
            level = self.levels[i]
            if isinstance(level, str):
                if part != level:
                    return None
            elif part == "+":
                values[level.name] = None
            elif level.accepts(part):
                values[level.name] = part
            else:
                return None
        return values if len(parts) == len(self.levels) else None

    def reaches(self, pattern: str) -> dict[str, str | None] | None:
        """The parameter values (None for wildcard levels) if a subscription to ``pattern``
        would receive messages of this template, else None.

        Wider than `covers`: ``+`` also matches a fixed level and ``#`` any levels after it,
        so ``rooms/#`` reaches ``rooms/{room}/typing`` too. Every topic a subscription
        reaches must allow it (its scopes and authorization), not only the one covering it.
        """
        parts = pattern.split("/")
        values: dict[str, str | None] = {}
        for i, part in enumerate(parts):
            if part == "#":
                values.update({lv.name: None for lv in self.levels[i:] if isinstance(lv, Param)})
                return values
            if i >= len(self.levels):
                return None
            level = self.levels[i]
            if isinstance(level, str):
                if part != "+" and part != level:
                    return None
            elif part == "+":
                values[level.name] = None
            elif level.accepts(part):
                values[level.name] = part
            else:
                return None
        return values if len(parts) == len(self.levels) else None

    def match(self, topic: str) -> dict[str, str] | None:
        """The parameter values of a concrete ``topic``, or None if it is not this template."""
        covered = self.covers(topic)
        if covered is None or any(v is None for v in covered.values()):
            return None
        return {k: v for k, v in covered.items() if v is not None}
