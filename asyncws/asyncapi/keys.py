"""Keys and references of an AsyncAPI document: what every builder of asyncapi/ shares.

`key` makes a key of a name (dot-free camelCase), `join` a key of keys, `ref` a
reference; `Keys` hands out the keys of one namespace (channels, operations, messages) and
refuses one used twice, naming both owners.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .schemas import COMPONENT_KEY

__all__ = ["Keys", "join", "key", "prune", "ref", "tags"]


def key(text: str) -> str:
    """``text`` made a key every tool takes: the spec's ``^[a-zA-Z0-9.\\-_]+$`` without dots
    (the generator's JavaScript templates and ``asyncapi optimize`` break on them), dotted
    parts joined in camelCase: ``rooms.room`` -> ``roomsRoom``."""
    cleaned = re.sub(r"[^A-Za-z0-9._\-]+", "_", text)
    parts = [p.strip("_") for p in cleaned.split(".") if p.strip("_")]
    if not parts:
        return "_"
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def join(*parts: str) -> str:
    """Keys made of keys: ``join("post", "reply")`` -> ``postReply``."""
    return key(".".join(parts))


def ref(*parts: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)}


def tags(names: Sequence[str]) -> list[dict[str, str]]:
    return [{"name": n} for n in dict.fromkeys(names)]


def prune(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None or an empty container."""
    return {k: v for k, v in obj.items() if v is not None and v != [] and v != {}}


class Keys:
    """Keys of one namespace (operations, messages, channels): unique or a clear error."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.owners: dict[str, str] = {}

    def add(self, key: str, owner: str) -> str:
        if not COMPONENT_KEY.match(key):
            raise ValueError(f"{self.what} key {key!r} (from {owner}) is not a valid key")
        if key in self.owners:
            raise ValueError(
                f"{self.what} key {key!r} is used twice: by {self.owners[key]} and by {owner}; "
                "rename one of them"
            )
        self.owners[key] = owner
        return key
