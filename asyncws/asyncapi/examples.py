"""Example values made from JSON Schemas, for the messages of a document.

`example_for` prefers what the author wrote (``examples``, ``const``, ``default``, the first
``enum`` value) and otherwise makes a plain value that satisfies the common constraints:
types, lengths, bounds, ``multipleOf``, formats (date-time, date, time, uuid, email, uri, ...)
and simple ``pattern`` s (tried against a few words, then built from the regular expression
itself). It gives up (returns `MISSING`) rather than guess wildly; the document builder
validates every example against its schema and drops any that does not validate, so a
document never shows an invalid example.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any, Final

from .schemas import REF_PREFIX

__all__ = ["MISSING", "example_for", "string_for"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: No example could be made.
MISSING: Final = _Missing()

_MAX_DEPTH = 8

_FORMATS: Mapping[str, str] = {
    "date-time": "2024-01-01T12:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "duration": "PT1M",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "uuid": "0b8e5f7e-2c1a-4e8f-9a53-6f1d2c3b4a59",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "binary": "",
    "password": "secret",
}

_WORDS = (
    "example",
    "lobby",
    "abc",
    "a",
    "A",
    "Example",
    "example-1",
    "example_1",
    "x1",
    "0",
    "1",
    "42",
    "ab12",
)


def _regex_parser() -> Any:
    return importlib.import_module("re._parser")


def _from_regex(pattern: str) -> str | None:
    """A short string built from a regular expression's structure (None if too complex)."""
    try:
        parser = _regex_parser()
        parsed = parser.parse(pattern)
    except Exception:
        return None
    consts = importlib.import_module("re._constants")
    repeats = {consts.MAX_REPEAT, consts.MIN_REPEAT, getattr(consts, "POSSESSIVE_REPEAT", None)}
    atomic = getattr(consts, "ATOMIC_GROUP", None)

    def one_of(items: Any) -> str:
        negate = bool(items) and items[0][0] is consts.NEGATE
        if negate:
            return "a"  # checked against the whole pattern afterwards
        for op, av in items:
            if op is consts.LITERAL:
                return chr(av)
            if op is consts.RANGE:
                return chr(av[0])
            if op is consts.CATEGORY:
                return category(av)
        return "a"

    def category(av: Any) -> str:
        name = str(av)
        if "DIGIT" in name and "NOT" not in name:
            return "0"
        if "SPACE" in name and "NOT" not in name:
            return " "
        return "a"

    def gen(items: Any) -> str:
        out = []
        for op, av in items:
            if op is consts.LITERAL:
                out.append(chr(av))
            elif op is consts.NOT_LITERAL:
                out.append("a" if av != ord("a") else "b")
            elif op is consts.ANY:
                out.append("a")
            elif op is consts.IN:
                out.append(one_of(av))
            elif op in repeats:
                low, _high, sub = av
                out.append(gen(sub) * low)
            elif op is consts.SUBPATTERN:
                out.append(gen(av[-1]))
            elif atomic is not None and op is atomic:
                out.append(gen(av))
            elif op is consts.BRANCH:
                out.append(gen(av[1][0]))
            elif op is consts.CATEGORY:
                out.append(category(av))
            elif op in (consts.AT, consts.ASSERT, consts.ASSERT_NOT):
                continue
            else:
                raise ValueError(op)
        return "".join(out)

    try:
        return gen(parsed)
    except (ValueError, TypeError, IndexError):
        return None


def _string_ok(value: str, schema: Mapping[str, Any]) -> bool:
    if len(value) < schema.get("minLength", 0):
        return False
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return False
    pattern = schema.get("pattern")
    if pattern is not None:
        try:
            return re.search(pattern, value) is not None
        except re.error:
            return False
    return True


def string_for(schema: Mapping[str, Any]) -> str | _Missing:
    """A string satisfying ``schema``'s format, pattern and length constraints."""
    fmt = schema.get("format")
    candidates: list[str] = []
    if isinstance(fmt, str) and fmt in _FORMATS:
        candidates.append(_FORMATS[fmt])
    candidates.extend(_WORDS)
    pattern = schema.get("pattern")
    built = _from_regex(pattern) if isinstance(pattern, str) else None
    if built is not None:
        candidates.append(built)
    low = schema.get("minLength", 0)
    if isinstance(low, int) and low > 0:
        for seed in (built, "example", "a", "0") if isinstance(pattern, str) else ("example", "a"):
            if seed:
                candidates.append((seed * (low // len(seed) + 1))[:low])
    for value in candidates:
        if _string_ok(value, schema):
            return value
    return MISSING


def _number_for(schema: Mapping[str, Any], integer: bool) -> int | float | _Missing:
    low: float | None = schema.get("minimum")
    high: float | None = schema.get("maximum")
    xlow = schema.get("exclusiveMinimum")
    xhigh = schema.get("exclusiveMaximum")
    step = schema.get("multipleOf")
    candidates: list[float] = [1, 0, 10, 100]
    for bound in (low, high):
        if bound is not None:
            candidates.append(bound)
    if xlow is not None and not isinstance(xlow, bool):
        candidates += [xlow + 1, xlow + 0.5]
    if xhigh is not None and not isinstance(xhigh, bool):
        candidates += [xhigh - 1, xhigh - 0.5]
    if step:
        base = low if low is not None else (xlow if isinstance(xlow, int | float) else 0)
        candidates.append((int(base // step) + 1) * step)
    for value in candidates:
        if integer and value != int(value):
            continue
        if low is not None and value < low:
            continue
        if high is not None and value > high:
            continue
        if isinstance(xlow, int | float) and not isinstance(xlow, bool) and value <= xlow:
            continue
        if isinstance(xhigh, int | float) and not isinstance(xhigh, bool) and value >= xhigh:
            continue
        if step and (value / step) != int(value / step):
            continue
        return int(value) if integer else value
    return MISSING


def example_for(schema: Any, components: Mapping[str, Any] | None = None, *, depth: int = 0) -> Any:
    """An example value for ``schema`` (its ``#/components/schemas`` refs looked up in
    ``components``), or `MISSING`."""
    components = components or {}
    if depth > _MAX_DEPTH:
        return MISSING
    if schema is True or schema == {}:
        return None
    if not isinstance(schema, Mapping):
        return MISSING
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith(REF_PREFIX) or ref[len(REF_PREFIX) :] not in components:
            return MISSING
        return example_for(components[ref[len(REF_PREFIX) :]], components, depth=depth + 1)
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("oneOf", "anyOf"):
        branches = schema.get(key)
        if isinstance(branches, list):
            ordered = sorted(
                branches, key=lambda b: isinstance(b, Mapping) and b.get("type") == "null"
            )
            for branch in ordered:
                value = example_for(branch, components, depth=depth + 1)
                if value is not MISSING:
                    return value
            return MISSING
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged: dict[str, Any] = {}
        for part in all_of:
            if isinstance(part, Mapping) and isinstance(part.get("$ref"), str):
                name = part["$ref"][len(REF_PREFIX) :]
                part = components.get(name, {})
            if isinstance(part, Mapping):
                for k, v in part.items():
                    if k in ("properties",) and k in merged:
                        merged[k] = {**merged[k], **v}
                    elif k == "required" and k in merged:
                        merged[k] = [*merged[k], *v]
                    else:
                        merged[k] = v
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        return example_for({**merged, **rest}, components, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        if "properties" in schema:
            kind = "object"
        elif "items" in schema:
            kind = "array"
        else:
            return None
    if kind == "string":
        return string_for(schema)
    if kind in ("integer", "number"):
        return _number_for(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        return _array_for(schema, components, depth)
    if kind == "object":
        return _object_for(schema, components, depth)
    return MISSING


def _array_for(schema: Mapping[str, Any], components: Mapping[str, Any], depth: int) -> Any:
    items = schema.get("items", {})
    if isinstance(items, list):
        values = [example_for(s, components, depth=depth + 1) for s in items]
        return MISSING if any(v is MISSING for v in values) else values
    low = schema.get("minItems", 0)
    high = schema.get("maxItems")
    count = max(low, 1) if (high is None or high >= 1) else 0
    if count > 1 and schema.get("uniqueItems"):
        return MISSING
    if count == 0:
        return []
    value = example_for(items, components, depth=depth + 1)
    if value is MISSING:
        return [] if low == 0 else MISSING
    return [value] * count


def _object_for(schema: Mapping[str, Any], components: Mapping[str, Any], depth: int) -> Any:
    required = set(schema.get("required", ()))
    out: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        value = example_for(prop, components, depth=depth + 1)
        if value is MISSING:
            if name in required:
                return MISSING
            continue
        out[name] = value
    missing = required - out.keys()
    if missing:
        return MISSING  # required without a declared property: cannot know its shape
    return out
