"""`TopicSet`: a connection's subscription patterns, a `set` that routes (the seed's way).

The seed's code subscribes with ``connection.topics.add("chat/1")``; on a connection
registered with a manager that must reach the routing index, so the set's changes go through
`WebSocketManager.subscribe_nowait` / `unsubscribe_nowait`. Reads are the built-in set's:
delivery never goes through this class.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from .connection import Connection
    from .manager import WebSocketManager

__all__ = ["TopicSet"]


class TopicSet(set[str]):
    """A connection's subscription patterns: a `set` whose changes reach the manager's index.

    On a connection registered with a manager, ``add`` subscribes the pattern and ``discard``
    (``remove``, ``clear``, ``|=``, ...) unsubscribes it, exactly as
    `WebSocketManager.subscribe_nowait` / `unsubscribe_nowait` do: the pattern is validated
    (`InvalidTopicError`), the per-connection limit applies (`TooManySubscriptionsError`), the
    routing index changes at once and the broker subscription follows in the background. So the
    seed's ``connection.topics.add("chat/1")`` routes. On a connection that is not registered
    it is a plain set. Reads (``in``, ``len``, iteration, comparisons) are the built-in set's:
    delivery never goes through this class.
    """

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection, patterns: Iterable[str] = ()) -> None:
        super().__init__(patterns)
        self._connection = connection

    def _manager(self) -> WebSocketManager | None:
        conn = self._connection
        manager = conn.manager
        if manager is not None and manager.connections.get(conn.id) is conn:
            return manager
        return None

    def add(self, pattern: str, /) -> None:
        manager = self._manager()
        if manager is None:
            set.add(self, pattern)
        else:
            manager.subscribe_nowait(self._connection, pattern)

    def discard(self, pattern: object, /) -> None:
        if pattern not in self:
            return
        manager = self._manager()
        if manager is None or not isinstance(pattern, str):
            set.discard(self, pattern)
        else:
            manager.unsubscribe_nowait(self._connection, pattern)

    def remove(self, pattern: object, /) -> None:
        if pattern not in self:
            raise KeyError(pattern)
        self.discard(pattern)

    def pop(self) -> str:
        if not self:
            raise KeyError("pop from an empty set")
        pattern = next(iter(self))
        self.discard(pattern)
        return pattern

    def clear(self) -> None:
        for pattern in list(self):
            self.discard(pattern)

    def update(self, *others: Iterable[str]) -> None:
        for other in others:
            for pattern in list(other):
                self.add(pattern)

    def difference_update(self, *others: Iterable[Any]) -> None:
        for other in others:
            for pattern in list(other):
                if pattern in self:
                    self.discard(pattern)

    def intersection_update(self, *others: Iterable[Any]) -> None:
        keep = set(self).intersection(*others)
        for pattern in [p for p in self if p not in keep]:
            self.discard(pattern)

    def symmetric_difference_update(self, other: Iterable[str], /) -> None:
        for pattern in set(other):
            if pattern in self:
                self.discard(pattern)
            else:
                self.add(pattern)

    def __ior__(self, other: AbstractSet[str]) -> Self:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __isub__(self, other: AbstractSet[Any]) -> Self:  # type: ignore[misc]
        self.difference_update(other)
        return self

    def __iand__(self, other: AbstractSet[Any]) -> Self:  # type: ignore[misc]
        self.intersection_update(other)
        return self

    def __ixor__(self, other: AbstractSet[str]) -> Self:  # type: ignore[override,misc]
        self.symmetric_difference_update(other)
        return self
