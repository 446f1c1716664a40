"""Names and short texts for generated code, from what a document says.

`words` splits identifier-ish text (``"rooms.room"``, ``"getUser"``); `pascal` and `snake`
join the words for class and function names; `Names` hands out type names that collide
neither with each other nor with what the generated modules define or import
(`RESERVED_NAMES`). `sentence` and `combine` make doc text of summaries and descriptions.
"""

from __future__ import annotations

import keyword
import re

__all__ = [
    "ERROR_CLASS_NAMES",
    "RESERVED_NAMES",
    "Names",
    "combine",
    "component_name",
    "pascal",
    "sentence",
    "snake",
    "words",
]

# Readable exception names for the protocol's error codes; other codes get PascalCase.
ERROR_CLASS_NAMES = {
    "invalid_json": "InvalidJson",
    "invalid_frame": "InvalidFrame",
    "unsupported_data": "UnsupportedData",
    "unknown_type": "UnknownType",
    "validation_error": "ValidationFailed",
    "invalid_topic": "InvalidTopic",
    "unknown_topic": "UnknownTopic",
    "forbidden": "Forbidden",
    "too_many_subscriptions": "TooManySubscriptions",
    "rate_limited": "RateLimited",
    "broker_unavailable": "BrokerUnavailable",
    "internal_error": "InternalServerError",
}
# Names the generated code defines or imports itself (both languages): a schema, an event
# or an error class never takes one of them.
RESERVED_NAMES = frozenset(
    {
        # Python: builtins and what the generated modules import
        "Any",
        "Annotated",
        "BaseModel",
        "ClassVar",
        "ConfigDict",
        "Field",
        "Literal",
        "TypeAdapter",
        "TypeAlias",
        "UUID",
        "Subscription",
        "ClientOptions",
        "ErrorDetail",
        "ErrorCode",
        "ConnectionLost",
        "ConnectionFailed",
        "RequestTimeout",
        "UnexpectedFrame",
        "BaseClient",
        "ERRORS",
        "SERVERS",
        "Exception",
        "BaseException",
        "None",
        "True",
        "False",
        # TypeScript: globals the module uses or that would confuse readers
        "Array",
        "Boolean",
        "Date",
        "Error",
        "JSON",
        "Map",
        "Math",
        "Number",
        "Object",
        "Promise",
        "Record",
        "Set",
        "String",
        "Symbol",
        "WebSocket",
        "MessageEvent",
        "CloseEvent",
        "RequestOptions",
        "SubscribeOptions",
        "EventHandler",
        "URL",
        "Frame",
        "Pending",
        "Connection",
        "TypeError",
        "ReadonlySet",
        "AsyncIterable",
        "AsyncIterator",
        "Iterator",
        "IteratorResult",
        "ReturnType",
        "Partial",
        "Readonly",
        "Function",
        "Event",
        "EventTarget",
        # Python: what the client modules import besides the models
        "Callable",
        "Generator",
        "Generic",
        "Mapping",
        "Self",
        "Sequence",
        "TracebackType",
        "TypedDict",
        "TypeVar",
        "Unpack",
        "ValidationError",
        "M",
        "T",
    }
)


def words(text: str) -> list[str]:
    """The words of an identifier-ish text: ``"rooms.room"``, ``"getUser"``, ``"HTTP-code"``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def pascal(text: str) -> str:
    """``"rooms.room"`` -> ``"RoomsRoom"``; never empty, never starts with a digit."""
    name = "".join(w[:1].upper() + w[1:] for w in words(text))
    if not name:
        return "Schema"
    return name if not name[0].isdigit() else "T" + name


def snake(text: str) -> str:
    """``"getUser"`` -> ``"get_user"``; a valid Python identifier, never a keyword."""
    name = "_".join(w.lower() for w in words(text)) or "value"
    if name[0].isdigit():
        name = "n_" + name
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        name += "_"
    return name


def component_name(key: str) -> str:
    """A class name for a ``components/schemas`` key: ``Post`` stays ``Post``, dotted and
    dashed keys are joined (``Model-Input`` -> ``ModelInput``)."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", key) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Schema"
    return name if not name[0].isdigit() else "T" + name


class Names:
    """Allocates unique type names: the first free of the candidates, else numbered."""

    def __init__(self) -> None:
        self.taken: set[str] = set(RESERVED_NAMES)

    def take(self, *candidates: str) -> str:
        for candidate in candidates:
            if candidate and candidate not in self.taken:
                self.taken.add(candidate)
                return candidate
        base = candidates[0] if candidates else "Schema"
        n = 2
        while f"{base}{n}" in self.taken:
            n += 1
        self.taken.add(f"{base}{n}")
        return f"{base}{n}"


def sentence(text: str) -> str:
    """``text`` ending with a full stop (unless it ends with punctuation already)."""
    text = text.rstrip()
    return text if not text or text[-1] in ".!?:)`" else text + "."


def combine(summary: str | None, description: str | None) -> str | None:
    """A summary and a description as one text (without saying the summary twice)."""
    if summary and description:
        if description.startswith(summary.rstrip(".")):
            return description
        return sentence(summary) + "\n\n" + description
    return summary or description
