"""AsyncAPI 3.0: the document generated from an app, and the routes that serve it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from ..app import AsyncWS

__all__ = ["add_routes"]


def add_routes(app: AsyncWS, router: APIRouter) -> None:
    """Add the document and docs routes to ``router`` (placeholder until the generator lands)."""
