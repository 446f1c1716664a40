"""Handler signatures and dependency injection for operations and hooks.

asyncws resolves FastAPI's ``Depends`` / ``Security`` itself, per frame, because a websocket
message is not an HTTP request. What a parameter receives is decided once, when the handler is
declared, from its annotation and default:

* a pydantic model (or any other annotation, for the parameter named ``data`` or ``payload``):
  the frame's ``data``, validated (only for operations);
* `Connection`: the connection the frame came from; `WebSocket`: its websocket;
* `SecurityScopes`: the scopes required by the ``Security(...)`` chain above it;
* ``Depends(fn)`` / ``Security(fn, scopes=[...])``: the value of ``fn``, itself resolved the
  same way (sync or async functions, generators with ``yield`` for setup/teardown, cached per
  frame unless ``use_cache=False``);
* a name that is a path parameter of the websocket endpoint (``/ws/{tenant}``): its value,
  converted to the annotation;
* ``Query(...)`` / ``Header(...)`` (as the default, or in ``Annotated``): a query parameter or
  a header of the handshake request, validated against the annotation and the marker's
  constraints (a missing required one, or an invalid one, is a `PayloadValidationError`
  with ``loc`` ``["query", name]``; at the handshake it refuses the connection). The
  AsyncAPI document lists them in the endpoint's ws bindings;
* a name listed in ``extra`` (e.g. topic parameters for an authorization hook).

Anything else is a declaration error, raised at import time with the handler's name.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from fastapi.params import Depends as DependsParam
from fastapi.params import Header as HeaderParam
from fastapi.params import Query as QueryParam
from fastapi.params import Security as SecurityParam
from fastapi.security import SecurityScopes
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticUndefined
from starlette.websockets import WebSocket

from .connection import Connection
from .exceptions import PayloadValidationError

__all__ = ["Dependant", "Resolver", "analyze", "analyze_dependencies"]

_SPECIAL = (
    "connection",
    "websocket",
    "scopes",
    "payload",
    "path",
    "extra",
    "depends",
    "query",
    "header",
)


@dataclass(slots=True)
class Param:
    name: str
    kind: str  # one of _SPECIAL
    annotation: Any = None
    adapter: TypeAdapter[Any] | None = None
    dependant: Dependant | None = None
    use_cache: bool = True
    positional: bool = False
    #: query/header: the name in the request, the default (when not required), the marker
    wire: str = ""
    required: bool = True
    default: Any = None
    marker: Any = None


@dataclass(slots=True)
class Dependant:
    """A callable and how to fill each of its parameters."""

    call: Callable[..., Any]
    params: list[Param] = field(default_factory=list)
    scopes: tuple[str, ...] = ()
    is_async: bool = False
    is_gen: bool = False
    is_async_gen: bool = False

    @property
    def payload(self) -> Param | None:
        for p in self.params:
            if p.kind == "payload":
                return p
        return None

    def request_params(self) -> list[Param]:
        """Every ``Query`` / ``Header`` parameter in the tree (declaration order)."""
        out = [p for p in self.params if p.kind in ("query", "header")]
        for p in self.params:
            if p.dependant is not None:
                out += p.dependant.request_params()
        return out

    def all_scopes(self) -> list[str]:
        """Every scope required by Security(...) anywhere in the tree (declaration order)."""
        out: list[str] = list(self.scopes)
        for p in self.params:
            if p.dependant is not None:
                out += [s for s in p.dependant.all_scopes() if s not in out]
        return out


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def analyze_dependencies(
    markers: Sequence[DependsParam],
    *,
    path_params: frozenset[str] = frozenset(),
    owner: str = "",
) -> Dependant | None:
    """One `Dependant` that resolves every ``Depends(...)`` marker of ``markers`` (a router's
    or an operation's ``dependencies=``), in order, sharing the per-call cache."""
    if not markers:
        return None
    dep = Dependant(call=_discard)
    for i, marker in enumerate(markers):
        inner = marker.dependency
        if inner is None:
            raise TypeError(f"{owner}: Depends() in dependencies= needs a callable")
        sub_scopes = tuple(marker.scopes or ()) if isinstance(marker, SecurityParam) else ()
        dep.params.append(
            Param(
                f"_dependency_{i}",
                "depends",
                dependant=analyze(inner, path_params=path_params, scopes=sub_scopes, owner=owner),
                use_cache=marker.use_cache,
            )
        )
    return dep


def _discard(**values: Any) -> None:
    return None


def analyze(
    call: Callable[..., Any],
    *,
    allow_payload: bool = False,
    path_params: frozenset[str] = frozenset(),
    extra: frozenset[str] = frozenset(),
    scopes: tuple[str, ...] = (),
    owner: str = "",
    defer_unknown: bool = False,
) -> Dependant:
    """Decide, once, how every parameter of ``call`` is filled.

    With ``defer_unknown`` (a router's handler, before an app includes it), a parameter
    nothing explains is taken for an endpoint path parameter instead of raising TypeError.
    """
    owner = owner or getattr(call, "__qualname__", repr(call))
    signature = inspect.signature(call)
    # where the annotations and the async-ness live: a class's __init__, a callable
    # instance's __call__, a partial's function
    target: Any
    if inspect.isclass(call):
        target, hint_source = None, call.__init__
    elif isinstance(call, functools.partial):
        target, hint_source = call, call.func
    elif inspect.isroutine(call):
        target, hint_source = call, call
    else:
        target = hint_source = call.__call__  # type: ignore[operator]
    hints = _type_hints(hint_source)
    dep = Dependant(
        call=call,
        scopes=scopes,
        is_async=inspect.iscoroutinefunction(target),
        is_gen=inspect.isgeneratorfunction(target),
        is_async_gen=inspect.isasyncgenfunction(target),
    )
    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(name, parameter.annotation)
        default = parameter.default
        bare = annotation
        if get_origin(annotation) is Annotated:
            bare, *metadata = get_args(annotation)
            marker = next((m for m in metadata if isinstance(m, DependsParam)), None)
            if marker is not None:  # Annotated[T, Depends(fn)]
                default, annotation = marker, bare
        positional = parameter.kind is parameter.POSITIONAL_ONLY
        request = _request_marker(annotation, default)
        if request is not None:
            dep.params.append(_request_param(name, bare, request, default, positional))
            continue
        if isinstance(default, DependsParam):
            inner = default.dependency
            if inner is None:  # Depends() with the dependency in the annotation
                inner = annotation
            sub_scopes = tuple(default.scopes or ()) if isinstance(default, SecurityParam) else ()
            dep.params.append(
                Param(
                    name,
                    "depends",
                    annotation,
                    dependant=analyze(
                        inner,
                        path_params=path_params,
                        extra=extra,
                        scopes=sub_scopes,
                        owner=owner,
                        defer_unknown=defer_unknown,
                    ),
                    use_cache=default.use_cache,
                    positional=positional,
                )
            )
        elif bare is Connection or (isinstance(bare, type) and issubclass(bare, Connection)):
            dep.params.append(Param(name, "connection", annotation, positional=positional))
        elif bare is WebSocket:
            dep.params.append(Param(name, "websocket", annotation, positional=positional))
        elif bare is SecurityScopes:
            dep.params.append(Param(name, "scopes", annotation, positional=positional))
        elif name in extra:
            dep.params.append(Param(name, "extra", annotation, positional=positional))
        elif name in path_params:
            adapter = TypeAdapter(annotation) if annotation is not inspect.Parameter.empty else None
            dep.params.append(Param(name, "path", annotation, adapter, positional=positional))
        elif allow_payload and (_is_model(bare) or name in ("data", "payload")):
            if dep.payload is not None:
                raise TypeError(f"{owner}: two payload parameters ({dep.payload.name}, {name})")
            if annotation is inspect.Parameter.empty:
                annotation = Any
            dep.params.append(
                Param(name, "payload", annotation, TypeAdapter(annotation), positional=positional)
            )
        elif default is not inspect.Parameter.empty:
            continue  # a plain default: left to Python
        elif defer_unknown:  # maybe an endpoint path parameter: the app decides
            dep.params.append(Param(name, "path", annotation, positional=positional))
        else:
            hint = ""
            if isinstance(annotation, str):
                hint = (
                    f" (its annotation {annotation!r} could not be resolved: with "
                    "'from __future__ import annotations', the names it uses must be "
                    "importable from the module, not local to a function)"
                )
            raise TypeError(
                f"{owner}: cannot tell what to pass as parameter {name!r}{hint}; annotate it "
                "with a pydantic model (the payload), Connection, WebSocket, or use Depends()"
            )
    return dep


def _request_marker(annotation: Any, default: Any) -> QueryParam | HeaderParam | None:
    if isinstance(default, QueryParam | HeaderParam):
        return default
    if get_origin(annotation) is Annotated:
        for meta in get_args(annotation)[1:]:
            if isinstance(meta, QueryParam | HeaderParam):
                return meta
    return None


def _request_param(
    name: str, bare: Any, marker: QueryParam | HeaderParam, default: Any, positional: bool
) -> Param:
    """A ``Query`` / ``Header`` parameter: where it is read, how it is validated."""
    kind = "header" if isinstance(marker, HeaderParam) else "query"
    wire = marker.alias or name
    if isinstance(marker, HeaderParam) and not marker.alias and marker.convert_underscores:
        wire = name.replace("_", "-")
    if bare is inspect.Parameter.empty:
        bare = str
    value_default = marker.default
    if value_default is PydanticUndefined or value_default is Ellipsis:
        value_default = default if default is not marker else inspect.Parameter.empty
    required = value_default is inspect.Parameter.empty
    checked = _copy_marker(marker)
    return Param(
        name,
        kind,
        Annotated[bare, checked],
        TypeAdapter(Annotated[bare, checked]),
        positional=positional,
        wire=wire.lower() if kind == "header" else wire,
        required=required,
        default=None if required else value_default,
        marker=marker,
    )


def _copy_marker(marker: QueryParam | HeaderParam) -> Any:
    """The marker's constraints and docs without its default and alias (the parameter's
    value is validated alone, not as a field of a model)."""
    from pydantic.fields import FieldInfo

    info = FieldInfo.merge_field_infos(marker)
    info.default = PydanticUndefined
    info.alias = None
    info.validation_alias = None
    info.serialization_alias = None
    return info


def _type_hints(func: Any) -> dict[str, Any]:
    """The resolved annotations of ``func``; when some cannot be resolved (forward
    references to local names), the others still are, one by one."""
    with contextlib.suppress(Exception):
        return get_type_hints(func, include_extras=True)
    raw = getattr(func, "__annotations__", None) or {}
    namespace = getattr(inspect.unwrap(func), "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in raw.items():
        if isinstance(annotation, str):
            # what get_type_hints does; on failure the string stays (and is reported if
            # nothing else explains the parameter)
            with contextlib.suppress(Exception):
                annotation = eval(annotation, dict(namespace))
        hints[name] = annotation
    return hints


class Resolver:
    """Resolves one dependency tree for one frame (or one handshake); holds the per-call cache
    and the exit stack of ``yield`` dependencies (closed by `aclose`)."""

    __slots__ = ("_cache", "_stack", "connection", "extra", "path_params", "payload", "websocket")

    def __init__(
        self,
        connection: Connection | None,
        websocket: WebSocket | None,
        *,
        payload: Any = None,
        extra: dict[str, Any] | None = None,
        path_params: dict[str, Any] | None = None,
    ) -> None:
        self.connection = connection
        self.websocket = websocket
        self.payload = payload
        self.extra = extra or {}
        self.path_params = path_params or {}
        self._cache: dict[Any, Any] = {}
        self._stack: contextlib.AsyncExitStack | None = None

    async def _arguments(
        self, dep: Dependant, scopes: list[str] | None
    ) -> tuple[list[Any], dict[str, Any]]:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        here = (scopes or []) + [s for s in dep.scopes if s not in (scopes or [])]
        for p in dep.params:
            kind = p.kind
            if kind == "payload":
                value = self.payload
            elif kind == "connection":
                value = self.connection
            elif kind == "websocket":
                value = (
                    self.websocket
                    if self.websocket is not None
                    else (self.connection.websocket if self.connection is not None else None)
                )
            elif kind == "scopes":
                value = SecurityScopes(scopes=here)
            elif kind == "extra":
                value = self.extra.get(p.name)
            elif kind == "path":
                raw = self.path_params.get(p.name)
                value = p.adapter.validate_python(raw) if p.adapter is not None else raw
            elif kind in ("query", "header"):
                value = self._request_value(p)
            else:
                assert p.dependant is not None
                key = (p.dependant.call, tuple(p.dependant.scopes))
                if p.use_cache and key in self._cache:
                    value = self._cache[key]
                else:
                    value = await self.run(p.dependant, here)
                    if p.use_cache:
                        self._cache[key] = value
            if p.positional:
                args.append(value)
            else:
                kwargs[p.name] = value
        return args, kwargs

    def _request_value(self, p: Param) -> Any:
        ws = (
            self.websocket
            if self.websocket is not None
            else getattr(self.connection, "websocket", None)
        )
        source = None
        if ws is not None:
            source = ws.headers if p.kind == "header" else ws.query_params
        raw = source.get(p.wire) if source is not None else None
        if raw is None:
            if not p.required:
                return p.default
            raise PayloadValidationError(
                f"the {p.kind} parameter {p.wire!r} is required",
                errors=[{"loc": [p.kind, p.wire], "msg": "Field required", "type": "missing"}],
            )
        assert p.adapter is not None
        try:
            return p.adapter.validate_python(raw)
        except ValidationError as exc:
            raise PayloadValidationError(
                f"invalid {p.kind} parameter {p.wire!r}",
                errors=[
                    {"loc": [p.kind, p.wire, *e["loc"]], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors()[:50]
                ],
            ) from None

    async def run(self, dep: Dependant, scopes: list[str] | None = None) -> Any:
        """Call ``dep.call`` with its parameters filled, awaiting coroutines.

        Sync callables run on the event loop (like asyncws's own code): they must not block.
        """
        args, kwargs = await self._arguments(dep, scopes)
        call = dep.call
        if dep.is_async_gen:
            stack = self._exit_stack()
            return await stack.enter_async_context(
                contextlib.asynccontextmanager(call)(*args, **kwargs)
            )
        if dep.is_gen:
            stack = self._exit_stack()
            return stack.enter_context(contextlib.contextmanager(call)(*args, **kwargs))
        result = call(*args, **kwargs)
        if dep.is_async or inspect.isawaitable(result):
            result = await result
        return result

    def _exit_stack(self) -> contextlib.AsyncExitStack:
        if self._stack is None:
            self._stack = contextlib.AsyncExitStack()
        return self._stack

    async def aclose(self, exc: BaseException | None = None) -> None:
        """Run the teardown of ``yield`` dependencies (last set up, first torn down).

        With ``exc`` (what the handler raised), each dependency sees it at its ``yield``, as
        in FastAPI: ``except``/``else`` around the ``yield`` can roll back or commit. The
        handler's exception is not raised again here; an exception a teardown raises is.
        """
        stack, self._stack = self._stack, None
        if stack is None:
            return
        if exc is None:
            await stack.aclose()
            return
        try:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
        except BaseException as raised:
            if raised is not exc:
                raise
