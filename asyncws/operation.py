"""`Operation`: a client -> server message type bound to a handler, and how one is built.

`operation_for` analyses a handler once, at declaration: its payload parameter (validated
from the frame's ``data``), its dependencies (`asyncws.dependencies`), and its return
annotation, the reply model. A `Router` stores operations; an `AsyncWS` app dispatches
frames to them.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi.params import Depends as DependsParam
from pydantic import TypeAdapter

from .codes import FrameType
from .dependencies import Dependant, analyze

if TYPE_CHECKING:
    from .routing import Router

__all__ = ["RESERVED_TYPES", "Operation", "check_marker", "operation_for"]

_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
#: Frame types of asyncws's envelope that an operation may not take (`FrameType`: the
#: control frames and answers); an app without control frames (`DocumentFraming`) reserves none.
RESERVED_TYPES = frozenset(t.value for t in FrameType)


@dataclass(slots=True)
class Operation:
    """A client -> server message type bound to a handler."""

    type: str
    handler: Callable[..., Any]
    dependant: Dependant
    payload: Any  # the payload annotation, or None
    payload_adapter: TypeAdapter[Any] | None
    reply: Any  # the reply annotation, or None
    reply_adapter: TypeAdapter[Any] | None
    summary: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    deprecated: bool = False
    operation_id: str | None = None
    router: Router | None = None
    #: ``Depends(...)`` markers run before the handler (enclosing routers' first); their
    #: values are discarded, their exceptions answer the frame like the handler's would.
    dependencies: list[Any] = field(default_factory=list)
    #: The routers the operation was declared in and included through, innermost first:
    #: where its exception handlers are looked up (then the app's).
    routers: tuple[Router, ...] = ()

    @property
    def name(self) -> str:
        return self.operation_id or self.type


def operation_for(
    type: str,
    func: Callable[..., Any],
    *,
    router: Router,
    summary: str | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
    scopes: Sequence[str] = (),
    deprecated: bool = False,
    operation_id: str | None = None,
    path_params: frozenset[str] | None = None,
    dependencies: Sequence[Any] = (),
    reserved: frozenset[str] = RESERVED_TYPES,
) -> Operation:
    """The `Operation` of ``func`` for frames of ``type``, declared in ``router`` (see
    `Router.add_operation` for the arguments).

    Raises ValueError for a type that is not 1-64 of ``[A-Za-z0-9_.-]`` or is reserved,
    TypeError for a dependency that is not a ``Depends(...)`` marker or a handler parameter
    nothing explains (unless ``path_params`` is None: a router that does not know its
    endpoint yet defers those to the app)."""
    if not _NAME_RE.fullmatch(type):
        raise ValueError(f"operation type {type!r}: use 1-64 of [A-Za-z0-9_.-]")
    if type in reserved:
        raise ValueError(f"operation type {type!r} is reserved by the protocol")
    extra_deps = [*router.dependencies, *dependencies]
    for marker in extra_deps:
        check_marker(marker, type)
    owner = getattr(func, "__qualname__", type)
    # path_params None: a router that does not know the endpoint yet; parameters nothing
    # else explains may be endpoint path parameters, checked when an app includes it
    dependant = analyze(
        func,
        allow_payload=True,
        path_params=path_params or frozenset(),
        defer_unknown=path_params is None,
        owner=owner,
    )
    payload = dependant.payload
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:
        hints = getattr(func, "__annotations__", {})
    reply = hints.get("return")
    if reply is None or reply is types.NoneType:
        reply = None
    doc = (func.__doc__ or "").strip()
    return Operation(
        type=type,
        handler=func,
        dependant=dependant,
        payload=payload.annotation if payload else None,
        payload_adapter=payload.adapter if payload else None,
        reply=reply,
        reply_adapter=TypeAdapter(reply) if reply is not None else None,
        summary=summary or (doc.splitlines()[0] if doc else None),
        description=description or (doc if doc and "\n" in doc else None),
        tags=list(dict.fromkeys([*router.tags, *tags])),  # the router's, then its own
        scopes=[*scopes],
        deprecated=deprecated,
        operation_id=operation_id,
        router=router,
        dependencies=extra_deps,
        routers=(router,),
    )


def check_marker(marker: Any, where: str) -> None:
    """TypeError unless ``marker`` is a ``Depends(...)`` or ``Security(...)`` marker."""
    if not isinstance(marker, DependsParam):
        raise TypeError(f"{where}: dependencies must be Depends(...) or Security(...) markers")
