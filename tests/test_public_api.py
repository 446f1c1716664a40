"""The public API: every module declares ``__all__``, every exported name resolves, and the
package re-exports the declarative API and the seed's names."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from types import ModuleType

import pytest

import asyncws

MODULES = [
    "asyncws",
    *sorted(info.name for info in pkgutil.walk_packages(asyncws.__path__, prefix="asyncws.")),
]

SEED_NAMES = [
    "WebSocketManager",
    "Connection",
    "Message",
    "BrokerInterface",
    "InMemoryBroker",
    "RedisBroker",
    "create_broker",
    "subscribe",
    "unsubscribe",
    "handle_subscription_message",
    "matches",
    "WebSocketException",
    "InvalidSubscription",
    "InvalidSubscriptionMessage",
    "handle",
    "ahandle",
    "WebSocketProxy",
    "WebSocketOAuth2PasswordBearer",
]

DECLARATIVE_NAMES = [
    "AsyncWS",
    "Router",
    "Topic",
    "Operation",
    "Param",
    "Depends",
    "Security",
    "ErrorCode",
    "CloseCode",
    "AsyncWSError",
    "ForbiddenError",
    "NotFoundError",
    "PayloadValidationError",
    "ProtocolError",
    "InvalidTopicError",
    "UnknownTopicError",
    "UnknownTypeError",
    "Limits",
]


def test_there_are_modules_to_check() -> None:
    assert {"asyncws.app", "asyncws.routing", "asyncws.testing", "asyncws.brokers.memory"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_all_and_its_names_resolve(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{name} has no __all__"
    assert all(isinstance(n, str) for n in exported)
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    for attr in exported:
        assert getattr(module, attr, None) is not None, f"{name}.{attr} does not resolve"


@pytest.mark.parametrize("name", sorted(asyncws.__all__))
def test_every_package_export_resolves(name: str) -> None:
    assert getattr(asyncws, name) is not None


@pytest.mark.parametrize("name", SEED_NAMES + DECLARATIVE_NAMES)
def test_the_package_exports(name: str) -> None:
    assert name in asyncws.__all__
    assert getattr(asyncws, name) is not None


def test_star_import_gives_everything() -> None:
    namespace: dict[str, object] = {}
    exec("from asyncws import *", namespace)
    assert set(asyncws.__all__) <= set(namespace)


def test_exports_are_the_modules_objects() -> None:
    from asyncws.app import AsyncWS
    from asyncws.auth import WebSocketOAuth2PasswordBearer
    from asyncws.brokers.redis import RedisBroker
    from asyncws.connection import Connection
    from asyncws.proxy import WebSocketProxy
    from asyncws.routing import Router

    assert asyncws.AsyncWS is AsyncWS
    assert asyncws.Router is Router
    assert asyncws.Connection is Connection
    assert asyncws.RedisBroker is RedisBroker
    assert asyncws.WebSocketProxy is WebSocketProxy
    assert asyncws.WebSocketOAuth2PasswordBearer is WebSocketOAuth2PasswordBearer


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = asyncws.Nope  # type: ignore[attr-defined]
    assert "WebSocketProxy" in dir(asyncws)


def test_importing_asyncws_does_not_import_the_backends() -> None:
    code = (
        "import sys, asyncws; "
        "print(sorted(m for m in ('redis', 'asyncws.brokers.redis', 'asyncws.proxy') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def test_seed_exceptions_keep_their_shape() -> None:
    assert issubclass(asyncws.InvalidSubscription, asyncws.WebSocketException)
    assert issubclass(asyncws.InvalidSubscriptionMessage, asyncws.WebSocketException)
    exc = asyncws.InvalidSubscription("bad", connection=None)
    assert exc.connection is None and str(exc) == "bad"


def test_the_errors_reference_lists_every_code() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs/reference/errors.md").read_text()
    for code in asyncws.ErrorCode:
        assert f"| `{code.value}` |" in page, code
    for close in asyncws.CloseCode:
        assert f"| {close.value} | `{close.name}` |" in page, close


def test_limits_is_exported() -> None:
    from asyncws.limits import Limits

    assert asyncws.Limits is Limits


def test_the_tools_errors_are_asyncws_errors_and_keep_their_bases() -> None:
    from asyncws.asyncapi.reader import SpecError as ReaderError
    from asyncws.cli import CLIError
    from asyncws.codegen import CodegenError
    from asyncws.exceptions import UsageError
    from asyncws.spec_first import SpecError

    for cls in (ReaderError, SpecError, CodegenError, CLIError):
        assert issubclass(cls, UsageError) and issubclass(cls, asyncws.AsyncWSError), cls
    # callers catch these as ValueError (`except ValueError` around a document load)
    for cls in (ReaderError, SpecError, CodegenError):
        assert issubclass(cls, ValueError), cls
    spec = SpecError(["no handler for operation 'post'"])
    assert spec.problems == ["no handler for operation 'post'"]
    assert str(spec).endswith("no handler for operation 'post'")
    # never shown to a client: an escaped one answers like a bug would
    assert spec.message == "internal error" and spec.code == asyncws.ErrorCode.INTERNAL_ERROR
    assert str(CLIError("bad target")) == "bad target"
    assert CodegenError(["x"]).problems == ["x"]


def test_the_auth_error_stays_a_starlette_websocket_exception() -> None:
    """Its ``code`` is a close code that Starlette closes with; an `AsyncWSError`'s is an
    error code. So it is drawn beside the hierarchy, not in it (see asyncws.exceptions)."""
    from starlette.exceptions import WebSocketException

    from asyncws.auth import WebSocketAuthError

    assert issubclass(WebSocketAuthError, WebSocketException)
    assert not issubclass(WebSocketAuthError, asyncws.AsyncWSError)
    assert "WebSocketAuthError" in (asyncws.exceptions.__doc__ or "")


def test_the_exceptions_docstring_draws_every_asyncws_error() -> None:
    import asyncws.exceptions

    doc = asyncws.exceptions.__doc__ or ""
    found: set[str] = set()
    for name in MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, asyncws.AsyncWSError)
                and not value.__name__.startswith("_")
                and value.__module__.startswith("asyncws")
            ):
                found.add(value.__name__)
    drawn = set(re.findall(r"[├└]── (\w+)", doc)) | {"AsyncWSError"}
    assert found - drawn == set()
    assert {"SpecError", "CodegenError", "CLIError", "UsageError", "PresenceError"} <= found
