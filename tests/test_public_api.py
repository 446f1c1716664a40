"""The public API: every module declares ``__all__``, every exported name resolves, and the
package re-exports the declarative API and the seed's names."""

from __future__ import annotations

import importlib
import pkgutil
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
