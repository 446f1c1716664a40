"""The version-neutral description of an app: what the AsyncAPI builders work from.

`describe` reads an `AsyncWS` app (its operations, topics, authentication and limits) into
plain frozen dataclasses. Nothing here knows about a document format: `v3.py` turns an
`AppDescription` into an AsyncAPI 3.0.0 document, and another version would get a builder of
its own. Payloads stay Python annotations here (`TypeSchema`); the builder asks pydantic for
their JSON Schemas, so every payload of a document is generated in one pass with shared
components. Spec-first apps carry the JSON Schemas of their document instead (`RawSchema`).
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fastapi.security.base import SecurityBase
from pydantic import BaseModel, TypeAdapter

from ..codes import CloseCode, ErrorCode
from ..dependencies import Dependant, analyze
from ..routing import Operation, Topic, message_name

if TYPE_CHECKING:
    from ..app import AsyncWS

__all__ = [
    "CLOSE_CODES",
    "ERROR_CODES",
    "AppDescription",
    "EventDescription",
    "OperationDescription",
    "ParamDescription",
    "PayloadSchema",
    "RawSchema",
    "RequestParamDescription",
    "SecuritySchemeDescription",
    "TopicDescription",
    "TypeSchema",
    "describe",
    "endpoint_address",
]

Mode = Literal["validation", "serialization"]

#: What each error code means (the ``code`` of an error frame). A test checks every
#: `ErrorCode` is here, so a new code cannot ship undocumented.
ERROR_CODES: Mapping[ErrorCode, str] = {
    ErrorCode.INVALID_JSON: "the frame is not valid JSON",
    ErrorCode.INVALID_FRAME: (
        "JSON, but not a valid frame: not an object, `type` missing or not a string, a bad `id`"
    ),
    ErrorCode.UNSUPPORTED_DATA: "a binary frame (asyncws speaks JSON text frames)",
    ErrorCode.UNKNOWN_TYPE: "no operation has this `type`",
    ErrorCode.VALIDATION_ERROR: (
        "the payload does not match its schema; `errors` lists `loc` (the path inside `data`), "
        "`msg` and `type` per problem (at most 50)"
    ),
    ErrorCode.INVALID_TOPIC: (
        "bad topic or pattern syntax, control characters, over the length or depth limits"
    ),
    ErrorCode.UNKNOWN_TOPIC: "not a declared topic, or a wildcard where the topic has no parameter",
    ErrorCode.FORBIDDEN: (
        "authorization refused (missing scopes, the topic's authorization rule, client "
        "publishing not allowed)"
    ),
    ErrorCode.NOT_FOUND: "what the frame names does not exist (a handler raised `HTTPException(404)`)",
    ErrorCode.BAD_REQUEST: (
        "the handler refused the request (an `HTTPException` 4xx with no more precise code)"
    ),
    ErrorCode.TOO_MANY_SUBSCRIPTIONS: "over the per-connection subscription limit",
    ErrorCode.RATE_LIMITED: "over the per-connection message rate",
    ErrorCode.BROKER_UNAVAILABLE: (
        "the message could not be published (the broker is unreachable): nothing was sent"
    ),
    ErrorCode.INTERNAL_ERROR: "a bug on the server: its log has the details, the client gets none",
}

#: What each close code means (RFC 6455 section 7.4.1 codes asyncws sends).
CLOSE_CODES: Mapping[CloseCode, str] = {
    CloseCode.NORMAL_CLOSURE: "a normal close",
    CloseCode.GOING_AWAY: "the server is shutting down",
    CloseCode.PROTOCOL_ERROR: "the peer broke the WebSocket protocol",
    CloseCode.UNSUPPORTED_DATA: "the peer sent data the server cannot take",
    CloseCode.POLICY_VIOLATION: (
        "sustained abuse (about 20 bad frames in a row), authentication failure after accept, "
        "refused origin"
    ),
    CloseCode.MESSAGE_TOO_BIG: "a frame over the maximum frame size",
    CloseCode.INTERNAL_ERROR: "the server failed in a way the connection cannot survive",
    CloseCode.SERVICE_RESTART: "the server is restarting: reconnect",
    CloseCode.TRY_AGAIN_LATER: "slow consumer: the connection's outgoing queue overflowed",
    CloseCode.BAD_GATEWAY: "a proxy's upstream failed",
    CloseCode.TOKEN_EXPIRED: "the credentials expired: authenticate again and reconnect",
}


@dataclass(frozen=True, slots=True)
class TypeSchema:
    """A payload described by a Python annotation; pydantic generates its JSON Schema.

    ``mode`` is pydantic's: ``validation`` for what the server accepts, ``serialization`` for
    what it sends (every field it emits is required there).
    """

    annotation: Any
    mode: Mode = "validation"


@dataclass(frozen=True, slots=True)
class RawSchema:
    """A payload described by a JSON Schema taken from a document (spec-first apps).

    Its ``$ref`` s point at ``#/components/schemas/<name>``; ``components`` holds those schemas
    (and the ones they refer to).
    """

    schema: Mapping[str, Any]
    components: Mapping[str, Any] = field(default_factory=dict)


PayloadSchema = TypeSchema | RawSchema


@dataclass(frozen=True, slots=True)
class SecuritySchemeDescription:
    """How a client authenticates: a FastAPI security object found in the dependencies.

    ``openapi`` is the scheme as FastAPI describes it for OpenAPI; ``query_param`` and
    ``subprotocol_prefix`` are the extra places `WebSocketOAuth2PasswordBearer` reads a
    token from.
    """

    key: str
    openapi: Mapping[str, Any]
    description: str | None = None
    query_param: str | None = None
    subprotocol_prefix: str | None = None


@dataclass(frozen=True, slots=True)
class RequestParamDescription:
    """A query parameter or header of the handshake request that the app reads (a
    ``Query(...)`` / ``Header(...)`` parameter of ``authenticate``, an ``on_connect`` hook or an
    operation's dependencies). ``required``: the handshake is refused without it."""

    kind: Literal["query", "header"]
    name: str
    schema: Mapping[str, Any]
    required: bool
    used_by: tuple[str, ...] = ()  # "the handshake", or operation types


@dataclass(frozen=True, slots=True)
class OperationDescription:
    """A client -> server operation: a frame ``type`` with a payload and maybe a reply."""

    id: str
    type: str
    payload: PayloadSchema | None
    reply: PayloadSchema | None
    summary: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    security: tuple[str, ...] = ()  # keys of SecuritySchemeDescription used by its handler
    deprecated: bool = False


@dataclass(frozen=True, slots=True)
class ParamDescription:
    """A ``{name}`` level of a topic address; ``schema`` is the JSON Schema of its type."""

    name: str
    schema: Mapping[str, Any]
    description: str | None = None
    enum: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class EventDescription:
    """One message a topic carries: its wire ``type`` and its payload."""

    name: str
    payload: PayloadSchema
    title: str | None = None
    summary: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class TopicDescription:
    """A server -> client topic (a channel with an address template)."""

    id: str
    address: str
    params: tuple[ParamDescription, ...]
    events: tuple[EventDescription, ...]
    publish_payload: PayloadSchema  # what a client may publish (client_publish topics)
    title: str | None = None
    summary: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    client_publish: bool = False
    publish_scopes: tuple[str, ...] = ()
    subscribe_scopes: tuple[str, ...] = ()
    authorized: bool = False  # has an authorization rule for subscriptions
    presence: bool = False  # declared with presence (asyncws.presence)
    presence_events: bool = False  # ... and join/leave events
    #: Kept history (asyncws.history): events per concrete topic, seconds, cache mode.
    history_size: int | None = None
    history_ttl: float | None = None
    cache: bool = False

    def levels(self) -> Iterator[str | ParamDescription]:
        """The address levels: literal strings and parameters."""
        params = {p.name: p for p in self.params}
        for level in self.address.split("/"):
            m = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", level)
            yield params[m.group(1)] if m else level


@dataclass(frozen=True, slots=True)
class AppDescription:
    """Everything a document says about one app."""

    title: str
    version: str
    path: str
    path_params: tuple[str, ...]
    operations: tuple[OperationDescription, ...]
    topics: tuple[TopicDescription, ...]
    description: str | None = None
    contact: Mapping[str, Any] | None = None
    license: Mapping[str, Any] | None = None
    tags: tuple[Mapping[str, Any], ...] = ()
    servers: Mapping[str, Mapping[str, Any]] | None = None
    security: tuple[SecuritySchemeDescription, ...] = ()
    handshake_security: tuple[str, ...] = ()  # keys used by `authenticate`
    request_params: tuple[RequestParamDescription, ...] = ()  # declared Query/Header
    authenticated: bool = False
    allowed_origins: tuple[str, ...] | None = None
    topic_max_length: int = 256
    topic_max_levels: int = 16
    max_frame_size: int = 1 << 20
    asyncapi_version: str = "3.0.0"  # or "3.1.0"
    framing: str = "asyncws"  # or "document": the payload is the frame
    discriminator: str | None = None  # document framing: the property naming the operation
    correlation: str | None = None  # document framing: the correlationId location


def endpoint_address(path: str) -> str:
    """The endpoint path as a channel address: Starlette converters dropped (``{id:int}``)."""
    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*):[^}]*\}", r"{\1}", path)


def _key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._\-]+", "_", text).strip("_") or "scheme"


def _walk(dep: Dependant) -> Iterator[Dependant]:
    yield dep
    for p in dep.params:
        if p.dependant is not None:
            yield from _walk(p.dependant)


def _security_of(dep: Dependant, found: dict[str, SecuritySchemeDescription]) -> list[str]:
    """The security schemes in a dependency tree (recorded in ``found``); their keys."""
    keys: list[str] = []
    for node in _walk(dep):
        call: Any = node.call
        if not isinstance(call, SecurityBase):
            continue
        key = _key(call.scheme_name)
        if key not in found:
            openapi = call.model.model_dump(by_alias=True, exclude_none=True, mode="json")
            found[key] = SecuritySchemeDescription(
                key=key,
                openapi=openapi,
                description=openapi.get("description"),
                query_param=getattr(call, "query_param", None),
                subprotocol_prefix=getattr(call, "subprotocol_prefix", None),
            )
        if key not in keys:
            keys.append(key)
    return keys


_RST_LITERAL = re.compile(r"``(?!`)(.+?)(?<!`)``")


def commonmark(text: str | None) -> str | None:
    """Docstring text as CommonMark: reStructuredText literals (two backticks) become code
    spans (one), so renderers show `rooms/{room}`, not two backticks around it."""
    if text is None:
        return None
    return _RST_LITERAL.sub(lambda m: "`" + m.group(1) + "`", text)


def _doc_parts(obj: Any) -> tuple[str | None, str | None]:
    """(summary, description) from a docstring: the first line, and the rest if any."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    if not doc:
        return None, None
    lines = doc.splitlines()
    rest = "\n".join(lines[1:]).strip()
    return lines[0].strip(), rest or None


def _model_doc(model: type[BaseModel]) -> str | None:
    if model.__doc__ is None or model.__doc__ is BaseModel.__doc__:
        return None
    return model.__doc__.strip() or None


def _param(param: Any) -> ParamDescription:
    schema = TypeAdapter(param.annotation).json_schema()
    description = param.description or schema.get("description")
    enum = param.enum()
    return ParamDescription(
        name=param.name,
        schema=schema,
        description=description,
        enum=tuple(str(getattr(v, "value", v)) for v in enum) if enum is not None else None,
    )


def _raw_model_schema(model: type[BaseModel]) -> RawSchema | None:
    """Spec-first message models carry the JSON Schema they were built from."""
    raw = getattr(model, "__asyncws_raw_schema__", None)
    return raw if isinstance(raw, RawSchema) else None


def _topic(topic: Topic[Any]) -> TopicDescription:
    events = []
    for model in topic.models:
        raw = _raw_model_schema(model)
        events.append(
            EventDescription(
                name=message_name(model),
                payload=raw or TypeSchema(model, "serialization"),
                title=model.model_config.get("title") if raw is None else None,
                summary=None,
                description=commonmark(_model_doc(model)),
            )
        )
    raw_union = getattr(topic, "publish_schema", None)
    publish_payload: PayloadSchema = (
        raw_union if isinstance(raw_union, RawSchema) else TypeSchema(topic.message_type)
    )
    return TopicDescription(
        id=topic.name,
        address=topic.address,
        params=tuple(_param(p) for p in topic.params.values()),
        events=tuple(events),
        publish_payload=publish_payload,
        title=topic.title,
        summary=commonmark(topic.summary),
        description=commonmark(topic.description),
        tags=tuple(topic.tags),
        client_publish=topic.client_publish,
        publish_scopes=tuple(topic.publish_scopes),
        subscribe_scopes=tuple(topic.subscribe_scopes),
        authorized=topic.authorize is not None,
        presence=topic.presence_policy is not None,
        presence_events=topic.presence_policy is not None and topic.presence_policy.events,
        history_size=topic.history.size if topic.history is not None else None,
        history_ttl=topic.history.ttl if topic.history is not None else None,
        cache=topic.history is not None and topic.history.cache,
    )


def _operation(op: Operation, found: dict[str, SecuritySchemeDescription]) -> OperationDescription:
    spec = getattr(op.handler, "__asyncws_spec__", None)  # spec-first: the document's schemas
    payload: PayloadSchema | None
    reply: PayloadSchema | None
    if spec is not None:
        payload, reply = spec.payload, spec.reply
    else:
        payload = TypeSchema(op.payload) if op.payload is not None else None
        reply = TypeSchema(op.reply, "serialization") if op.reply is not None else None
    scopes = list(dict.fromkeys([*op.scopes, *op.dependant.all_scopes()]))
    return OperationDescription(
        id=op.name,
        type=op.type,
        payload=payload,
        reply=reply,
        summary=commonmark(op.summary),
        description=commonmark(inspect.cleandoc(op.description)) if op.description else None,
        tags=tuple(op.tags),
        scopes=tuple(scopes),
        security=tuple(_security_of(op.dependant, found)),
        deprecated=op.deprecated,
    )


def _request_params(app: AsyncWS) -> tuple[RequestParamDescription, ...]:
    """The declared ``Query`` / ``Header`` parameters, the handshake's first."""
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def add(dep: Dependant | None, user: str, at_handshake: bool) -> None:
        if dep is None:
            return
        for p in dep.request_params():
            entry = found.setdefault(
                (p.kind, p.wire),
                {"schema": p.adapter.json_schema() if p.adapter else {}, "required": False},
            )
            entry["required"] = entry["required"] or (at_handshake and p.required)
            entry.setdefault("used_by", [])
            if user not in entry["used_by"]:
                entry["used_by"].append(user)

    hooks = [app.authenticate] if app.authenticate is not None else []
    hooks += app._connect_hooks
    for hook in hooks:
        try:
            add(analyze(hook, path_params=app.path_params), "the handshake", True)
        except TypeError:  # the app cannot start either; describe what we can
            continue
    for op in app.operations.values():
        add(op.dependant, op.type, False)
        for marker in op.dependencies:
            inner = getattr(marker, "dependency", None)
            if inner is not None:
                with contextlib.suppress(TypeError):
                    add(analyze(inner, path_params=app.path_params), op.type, False)
    return tuple(
        RequestParamDescription(
            kind=kind,  # type: ignore[arg-type]
            name=name,
            schema=entry["schema"],
            required=entry["required"],
            used_by=tuple(entry["used_by"]),
        )
        for (kind, name), entry in found.items()
    )


def describe(app: AsyncWS) -> AppDescription:
    """Read ``app`` into an `AppDescription` (pure: nothing is compiled or started)."""
    found: dict[str, SecuritySchemeDescription] = {}
    handshake: list[str] = []
    if app.authenticate is not None:
        try:
            dependant = analyze(app.authenticate, path_params=app.path_params)
        except TypeError:  # the app cannot start either; describe what we can
            dependant = None
        if dependant is not None:
            handshake = _security_of(dependant, found)
    operations = tuple(_operation(op, found) for op in app.operations.values())
    topics = tuple(_topic(t) for t in app.topics)
    info_tags = tuple(
        {"name": t} if isinstance(t, str) else dict(t) for t in getattr(app, "info_tags", ())
    )
    limits = app.manager.topic_limits
    origins = app.allowed_origins
    return AppDescription(
        title=app.title,
        version=app.version,
        description=commonmark(app.description),
        path=endpoint_address(app.path),
        path_params=tuple(sorted(app.path_params)),
        operations=operations,
        topics=topics,
        contact=app.contact,
        license=app.license,
        tags=info_tags,
        servers=app.servers,
        security=tuple(found[k] for k in sorted(found)),
        handshake_security=tuple(handshake),
        request_params=_request_params(app),
        authenticated=app.authenticate is not None,
        allowed_origins=tuple(sorted(origins)) if origins is not None else None,
        topic_max_length=limits.max_length,
        topic_max_levels=limits.max_levels,
        max_frame_size=app.manager.max_frame_size,
        asyncapi_version=getattr(app, "asyncapi_version", "3.0.0"),
        **_framing_of(app),
    )


def _framing_of(app: AsyncWS) -> dict[str, Any]:
    framing = app.framing
    if framing.name != "document":
        return {}
    pointer = getattr(framing, "correlation", None)
    location = None
    if pointer:
        location = "$message.payload#/" + "/".join(
            p.replace("~", "~0").replace("/", "~1") for p in pointer
        )
    return {
        "framing": "document",
        "discriminator": getattr(framing, "discriminator", "type"),
        "correlation": location,
    }
