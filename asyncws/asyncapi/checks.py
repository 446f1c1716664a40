"""Checks on AsyncAPI documents: are two equivalent, and is one consistent in itself.

**Equivalent** (`compare`): the same channels (by id) with the same addresses, parameters
(``enum`` and ``x-asyncws-schema``) and messages (by key); the same operations (by id) with
the same action, channel, scopes and message payloads, and the same reply payloads.
Payloads are compared after every ``$ref`` is resolved and without the keywords that only
document (``title``, ``description``, ``examples``, ``$comment``). Titles, summaries,
descriptions, tags, examples, servers and ``info`` may differ.

**Consistent** (`check_document`): component keys match ``^[a-zA-Z0-9.\\-_]+$``, every local
``$ref`` resolves, every ``{param}`` of an address is declared (and nothing else), every
operation's messages belong to its channel, and every message example validates against
its payload schema (jsonschema, draft-07).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .schemas import COMPONENT_KEY, deref, make_validator

__all__ = ["check_document", "compare", "summarize"]

_DOC_KEYWORDS = frozenset({"title", "description", "examples", "$comment"})
_DATA_KEYWORDS = frozenset({"default", "examples", "example", "const", "enum"})
_PARAM = re.compile(r"\{([^{}]+)\}")
_MAX_DIFFERENCES = 200


def _normalize(document: Mapping[str, Any], schema: Any, depth: int = 0) -> Any:
    """``schema`` with references resolved and documentation keywords dropped."""
    if depth > 32:
        return {"$ref": "(recursive)"}
    if isinstance(schema, list):
        return [_normalize(document, s, depth) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    if isinstance(schema.get("$ref"), str):
        try:
            target = deref(document, {"$ref": schema["$ref"]})
        except ValueError:
            return {"$ref": schema["$ref"]}
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _normalize(document, {**target, **rest}, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DOC_KEYWORDS or key.startswith("x-"):
            continue
        if key in _DATA_KEYWORDS:
            out[key] = value
        elif key in ("properties", "patternProperties", "definitions", "$defs"):
            out[key] = {k: _normalize(document, v, depth) for k, v in value.items()}
        else:
            out[key] = _normalize(document, value, depth)
    return out


def _payload(document: Mapping[str, Any], ref: Any) -> Any:
    try:
        message = deref(document, ref)
    except ValueError:
        return {"unresolved": ref}
    if not isinstance(message, Mapping):
        return None
    return _normalize(document, message.get("payload"))


def _channel_id(ref: Any) -> str | None:
    if isinstance(ref, Mapping) and isinstance(ref.get("$ref"), str):
        return str(ref["$ref"]).rsplit("/", 1)[-1]
    return None


def summarize(document: Mapping[str, Any]) -> dict[str, Any]:
    """What `compare` compares, as plain data."""
    channels: dict[str, Any] = {}
    for key, raw in (document.get("channels") or {}).items():
        channel = deref(document, raw)
        params = {}
        for name, spec in (channel.get("parameters") or {}).items():
            param = deref(document, spec)
            params[name] = {
                k: param[k] for k in ("enum", "x-asyncws-schema", "default") if k in param
            }
        channels[key] = {
            "address": channel.get("address"),
            "parameters": params,
            "messages": {
                name: _payload(document, ref)
                for name, ref in (channel.get("messages") or {}).items()
            },
        }
    operations: dict[str, Any] = {}
    for key, raw in (document.get("operations") or {}).items():
        op = deref(document, raw)
        reply = op.get("reply")
        reply = deref(document, reply) if reply is not None else None
        scopes = op.get("x-asyncws-scopes")
        if scopes is None:
            scopes = sorted(
                {
                    s
                    for item in op.get("security") or []
                    for s in (deref(document, item).get("scopes") or [])
                }
            )
        operations[key] = {
            "action": op.get("action"),
            "channel": _channel_id(op.get("channel")),
            "scopes": list(scopes),
            "messages": [_payload(document, ref) for ref in op.get("messages") or []],
            "reply": (
                [_payload(document, ref) for ref in reply.get("messages") or []]
                if isinstance(reply, Mapping)
                else None
            ),
        }
    return {"channels": channels, "operations": operations}


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 160 else text[:157] + "..."


def _diff(expected: Any, actual: Any, path: str) -> Iterator[str]:
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        for key in expected:
            sub = f"{path}/{key}"
            if key not in actual:
                yield f"{sub}: missing (expected {_short(expected[key])})"
            else:
                yield from _diff(expected[key], actual[key], sub)
        for key in actual:
            if key not in expected:
                yield f"{path}/{key}: unexpected {_short(actual[key])}"
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            yield from _diff(e, a, f"{path}/{i}")
    elif expected != actual:
        yield f"{path}: expected {_short(expected)}, got {_short(actual)}"


def compare(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """The differences between two documents (empty when equivalent), one per line, each a
    path and what differs: ``/operations/post/messages/0/properties/data/...: expected ...``."""
    out: list[str] = []
    for line in _diff(summarize(expected), summarize(actual), ""):
        out.append(line)
        if len(out) >= _MAX_DIFFERENCES:
            out.append("... (more differences)")
            break
    return out


def _walk_refs(obj: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if key == "$ref" and isinstance(value, str):
                yield path, value
            else:
                yield from _walk_refs(value, f"{path}/{key}")
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _walk_refs(item, f"{path}/{i}")


def check_document(document: Mapping[str, Any]) -> list[str]:
    """Problems that make ``document`` inconsistent (empty when it is fine)."""
    problems: list[str] = []
    for section, entries in (document.get("components") or {}).items():
        if isinstance(entries, Mapping):
            for key in entries:
                if not COMPONENT_KEY.match(key):
                    problems.append(f"/components/{section}/{key}: invalid component key")
    for where, ref in _walk_refs(document, ""):
        if ref.startswith("#"):
            try:
                deref(document, {"$ref": ref})
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
    channels = document.get("channels") or {}
    for key, raw in channels.items():
        channel = deref(document, raw)
        address = channel.get("address")
        names = set(_PARAM.findall(address)) if isinstance(address, str) else set()
        declared = set((channel.get("parameters") or {}).keys())
        for name in sorted(names - declared):
            problems.append(f"/channels/{key}: address parameter {{{name}}} is not declared")
        for name in sorted(declared - names):
            problems.append(f"/channels/{key}/parameters/{name}: not in the address")
    for key, raw in (document.get("operations") or {}).items():
        op = deref(document, raw)
        channel_ref = (op.get("channel") or {}).get("$ref", "")
        for i, ref in enumerate(op.get("messages") or []):
            if not str(ref.get("$ref", "")).startswith(channel_ref + "/messages/"):
                problems.append(f"/operations/{key}/messages/{i}: not a message of its channel")
        reply = op.get("reply")
        if isinstance(reply, Mapping) and isinstance(reply.get("channel"), Mapping):
            reply_channel = reply["channel"].get("$ref", "")
            for i, ref in enumerate(reply.get("messages") or []):
                if not str(ref.get("$ref", "")).startswith(reply_channel + "/messages/"):
                    problems.append(
                        f"/operations/{key}/reply/messages/{i}: not a message of the reply channel"
                    )
    for key, raw in ((document.get("components") or {}).get("messages") or {}).items():
        message = deref(document, raw)
        examples = message.get("examples") or []
        payload = message.get("payload")
        if payload is None:
            continue
        validator = make_validator(payload, document)
        for i, example in enumerate(examples):
            if "payload" not in example:
                continue
            for error in validator.iter_errors(example["payload"]):
                at = "/".join(str(p) for p in error.absolute_path)
                problems.append(
                    f"/components/messages/{key}/examples/{i}: invalid at /{at}: {error.message}"
                )
    return problems
