"""The ``client`` module of the Python client: one method per operation and per topic.

`ClientMethods` turns the operations and topics of a `ClientDescription` into `Method`s of
the client class, laid out here (signatures as ``ruff format`` writes them, bodies as
statements) so the template only places them: a request method (with ``@overload`` stubs
when its payload model can also be given as keyword arguments), ``subscribe_*`` (a
`Subscription`), ``publish_*`` and the presence methods of a topic, and ``__init__`` when
the endpoint's path has parameters. It also writes the module-level ``TypeAdapter``s that
validate replies and events.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from ...codes import FrameType
from ..layout import (
    LIMIT,
    Atom,
    DictLit,
    Expr,
    Sub,
    call,
    clean_text,
    laid,
    py_docstring,
    py_str,
    signature,
)
from ..model import ClientDescription, OperationDescription, TopicDescription
from ..names import combine, sentence, snake
from ..typetree import RefNode
from .imports import Imports
from .models import Field, ModelClass, Models, or_none
from .naming import OPTIONS, constant, method_name

__all__ = ["ClientMethods", "Method"]

_TIMEOUT = "timeout: float | None = None"


@dataclass
class Method:
    """A method of the client class, laid out: its ``@overload`` stubs, its signature, its
    docstring (None: it has none) and the statements of its body (indented by 8)."""

    name: str
    signature: str
    doc: str | None
    body: list[str]
    overloads: list[str] = field(default_factory=list)
    adapter: str | None = None  # the module-level TypeAdapter it uses, laid out


@dataclass
class _Param:
    """A parameter of an address: keyword ``kwarg`` (of Python type ``type``) fills
    ``{name}`` (a literal)."""

    kwarg: str
    name: str
    type: str


class ClientMethods:
    """The methods of the client class and the adapters they use (``imports`` are the
    client module's imports)."""

    def __init__(self, client: ClientDescription, models: Models) -> None:
        self.client = client
        self.models = models
        self.imports = Imports()
        self._taken: set[str] = set()
        self.init = self._init()
        self.operations = [self._operation(op) for op in client.operations]
        #: The methods of each topic: ``subscribe_*``, then ``publish_*`` and presence.
        self.topics = [self._topic(topic) for topic in client.topics]
        #: Module-level TypeAdapters (laid out): of the replies, then of the events.
        self.adapters = [m.adapter for m in self.operations if m.adapter is not None]
        self.adapters += [ms[0].adapter for ms in self.topics if ms[0].adapter is not None]

    @property
    def methods(self) -> list[Method]:
        """Every method, in order: ``__init__`` (if any), the operations, the topics."""
        init = [self.init] if self.init is not None else []
        return [*init, *self.operations, *(m for ms in self.topics for m in ms)]

    # -- the constructor ----------------------------------------------------------------------

    def _init(self) -> Method | None:
        """``__init__`` of a client whose endpoint path has parameters (they are its
        keyword arguments, beside the options)."""
        client = self.client
        imports = self.imports
        imports.add("._runtime", "BaseClient")
        if client.endpoint is not None:
            return None
        imports.add("._runtime", "ClientOptions", "fill_path")
        imports.add("typing", "Unpack")
        used: set[str] = {"self", "url", "options", *OPTIONS}
        params: list[_Param] = []
        for param in client.endpoint_params:
            kwarg = snake(param.name)
            while kwarg in used:
                kwarg += "_"
            used.add(kwarg)
            params.append(_Param(kwarg, py_str(param.name), "int" if param.integer else "str"))
        names = ["self", "url: str", "*", *[f"{p.kwarg}: {p.type}" for p in params]]
        pairs = DictLit(tuple((Atom(p.name), Atom(p.kwarg)) for p in params))
        path = call("fill_path", py_str(client.endpoint_address), pairs)
        return Method(
            "__init__",
            signature(4, "def", "__init__", [*names, "**options: Unpack[ClientOptions]"], "None"),
            None,
            ["super().__init__(url, **options)", laid(8, "self._path = ", path)],
        )

    # -- requests -------------------------------------------------------------------------------

    def _raises(self) -> str:
        return (
            f"Raises `{self.client.error_class}` (a subclass per error code) when the server "
            "answers with an error, `RequestTimeout` without an answer within `timeout` "
            "seconds (default: the client's), `ConnectionLost` when the connection drops "
            "first."
        )

    def _kwarg_type(self, f: Field) -> str:
        """The annotation of a field as a keyword argument of a request method."""
        if f.hoisted or f.node is None:
            self.imports.add(".models", f.annotation)
            return f.annotation
        expr = self.models.type_expr(f.node, self.imports, top_constraints=False)
        if f.optional:
            expr = or_none(expr)
        return expr.flat()

    def _payload_class(self, op: OperationDescription) -> ModelClass | None:
        """The payload's model when keyword arguments can build it (else only the model
        itself is taken: a field named like a parameter of the method)."""
        if not isinstance(op.payload, RefNode):
            return None
        schema = self.client.schemas.get(op.payload.name)
        if schema is None or not schema.is_object:
            return None
        cls = self.models.classes[schema.name]
        if any(f.attr in ("self", "data", "timeout") for f in cls.fields):
            return None
        return cls

    def _operation(self, op: OperationDescription) -> Method:
        imports = self.imports
        name = method_name(op.id, self._taken)
        payload = None if op.payload is None else self.models.type_expr(op.payload, imports).flat()
        reply = None if op.reply is None else self.models.type_expr(op.reply, imports).flat()
        cls = self._payload_class(op)
        if cls is not None:
            imports.add("typing", "overload", "Any")
            imports.add("._runtime", "UNSET", "build")
        if payload is not None:
            imports.add("._runtime", "dump")
        if reply is not None:
            imports.add("._runtime", "parse_reply")
            imports.add("pydantic", "TypeAdapter")
        returns = reply or "None"
        overloads: list[str] = []
        body: list[str] = []
        data: list[str] = []
        if cls is not None:
            overloads, params = self._model_form(name, cls, returns)
            fields = DictLit(tuple((Atom(py_str(f.attr)), Atom(f.attr)) for f in cls.fields))
            body.append(laid(8, "payload = ", call("build", cls.name, "data", fields)))
            data = ["dump(payload)"]
        elif payload is not None:
            params = ["self", f"data: {payload}", "/", "*"]
            data = ["dump(data)"]
        else:
            params = ["self", "*"]
        request = call("await self.request", py_str(op.frame_type), *data, timeout="timeout")
        adapter: str | None = None
        if reply is not None:
            validator = constant(name) + "_REPLY"
            adapter = self._adapter(validator, reply)
            body.append(laid(8, "answer = ", request))
            body.append(laid(8, "return ", call("parse_reply", validator, "answer", py_str(op.id))))
        else:
            body.append(laid(8, "", request))
        return Method(
            name,
            signature(4, "async def", name, [*params, _TIMEOUT], returns),
            self._operation_doc(op, cls, reply),
            body,
            overloads,
            adapter,
        )

    def _model_form(self, name: str, cls: ModelClass, returns: str) -> tuple[list[str], list[str]]:
        """The two ``@overload`` stubs of a request whose payload is a model (the model, or
        its fields as keyword arguments) and the parameters of the method itself (less the
        timeout)."""
        kwargs = [(f.attr, self._kwarg_type(f), f.defaulted) for f in cls.fields]
        by_model = ["self", f"data: {cls.name}", "/", "*", _TIMEOUT]
        by_fields = ["self", "*", *[f"{a}: {t}" + (" = ..." if d else "") for a, t, d in kwargs]]
        overloads = [
            signature(4, "async def", name, by_model, returns, stub=True),
            signature(4, "async def", name, [*by_fields, _TIMEOUT], returns, stub=True),
        ]
        params = ["self", f"data: {cls.name} | None = None", "*"]
        return overloads, params + [f"{a}: Any = UNSET" for a, _, _ in kwargs]

    def _operation_doc(
        self, op: OperationDescription, cls: ModelClass | None, reply: str | None
    ) -> str:
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
        return py_docstring(text + "\n\n" + "\n\n".join(details), 8)

    @staticmethod
    def _adapter(name: str, annotation: str) -> str:
        """``NAME: TypeAdapter[T] = TypeAdapter(T)``, laid out."""
        return laid(0, f"{name}: TypeAdapter[{annotation}] = ", call("TypeAdapter", annotation))

    # -- topics ---------------------------------------------------------------------------------

    def _params(self, topic: TopicDescription) -> tuple[list[_Param], list[str]]:
        """The keyword arguments of a topic's methods, and their descriptions."""
        reserved = {"self", "on_event", "max_queue", "timeout", "data"}
        params: list[_Param] = []
        docs: list[str] = []
        for param in topic.params:
            kwarg = snake(param.name)
            while kwarg in reserved or kwarg in {p.kwarg for p in params}:
                kwarg += "_"
            if param.enum:
                self.imports.add("typing", "Literal")
                kind = Sub("Literal", tuple(Atom(py_str(v)) for v in param.enum)).flat()
            else:
                kind = "int" if param.integer else "str"
            params.append(_Param(kwarg, py_str(param.name), kind))
            about = " ".join(clean_text(param.description or "").split())
            docs.append(f"{kwarg}: {sentence(about or f'The `{param.name}` level')}")
        return params, docs

    def _topic(self, topic: TopicDescription) -> list[Method]:
        imports = self.imports
        imports.add(".models", topic.event_type)
        imports.add("._runtime", "Subscription", "fill_topic")
        imports.add("collections.abc", "Callable")
        imports.add("pydantic", "TypeAdapter")
        name = method_name(topic.name, self._taken, "subscribe")
        params, docs = self._params(topic)
        values: Expr = DictLit(tuple((Atom(p.name), Atom(p.kwarg)) for p in params))
        fill = call("fill_topic", py_str(topic.address), values)
        event = topic.event_type
        adapter = constant(topic.name) + "_EVENT"
        types = ", ".join(py_str(e.frame_type) for e in topic.events)
        subscription = call(
            "self.subscription",
            fill,
            f"{adapter}.validate_python",
            f"frozenset({{{types}}})",
            "on_event",
            "max_queue",
        )
        optional = [f"{p.kwarg}: {p.type} | None = None" for p in params]
        callback = f"on_event: Callable[[{event}], object] | None = None"
        methods = [
            Method(
                name,
                signature(
                    4,
                    "def",
                    name,
                    ["self", "*", *optional, callback, "max_queue: int | None = None"],
                    f"Subscription[{event}]",
                ),
                self._subscribe_doc(topic, name, docs),
                [laid(8, "return ", subscription)],
                adapter=self._adapter(adapter, event),
            )
        ]
        required = [f"{p.kwarg}: {p.type}" for p in params]
        topic_line = laid(8, "topic = ", fill)
        if topic.publish is not None:
            imports.add("._runtime", "dump")
            publish = method_name(topic.name, self._taken, "publish")
            data = self.models.type_expr(topic.publish, imports).flat()
            request = call(
                "await self.request",
                py_str(FrameType.PUBLISH),
                "dump(data)",
                topic="topic",
                timeout="timeout",
            )
            methods.append(
                Method(
                    publish,
                    signature(
                        4,
                        "async def",
                        publish,
                        ["self", f"data: {data}", "/", "*", *required, _TIMEOUT],
                        "None",
                    ),
                    self._publish_doc(topic),
                    [topic_line, laid(8, "", request)],
                )
            )
        if topic.presence:
            methods += self._presence(topic, required, topic_line)
        return methods

    def _subscribe_doc(self, topic: TopicDescription, method: str, params: list[str]) -> str:
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
        args = [f"{d} None (the default) means any (`+`)." for d in params]
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
        return py_docstring("\n\n".join(lines), 8)

    def _publish_doc(self, topic: TopicDescription) -> str:
        text = (
            f"Publish an event to `{topic.address}`: every subscriber receives it. "
            "Returns when the server acknowledges it."
        )
        if topic.publish_scopes:
            scopes = ", ".join(f"`{s}`" for s in topic.publish_scopes)
            text += f" Needs the scopes: {scopes}."
        return py_docstring(text + "\n\n" + self._raises(), 8)

    def _presence(
        self, topic: TopicDescription, params: list[str], topic_line: str
    ) -> list[Method]:
        """``presence_*`` (the members of a concrete topic) and ``presence_stats_*``."""
        self.imports.add("._runtime", "Presence", "PresenceStats")
        members = method_name(topic.name, self._taken, "presence")
        stats = method_name(topic.name, self._taken, "presence_stats")
        docs = {
            FrameType.PRESENCE: (
                f"The members of a `{topic.address}` topic, on every server instance (at "
                "most the server's cap: see `truncated` and `count`)."
            ),
            FrameType.PRESENCE_STATS: f"The number of members of a `{topic.address}` topic.",
        }
        methods = []
        for kind, name, model in (
            (FrameType.PRESENCE, members, "Presence"),
            (FrameType.PRESENCE_STATS, stats, "PresenceStats"),
        ):
            request = call("await self.request", py_str(kind), topic="topic", timeout="timeout")
            methods.append(
                Method(
                    name,
                    signature(4, "async def", name, ["self", "*", *params, _TIMEOUT], model),
                    py_docstring(docs[kind] + "\n\n" + self._raises(), 8),
                    [
                        topic_line,
                        laid(8, "answer = ", request),
                        f'return {model}.model_validate(answer.get("data"))',
                    ],
                )
            )
        return methods
