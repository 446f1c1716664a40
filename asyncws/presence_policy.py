"""What a presence topic declares and what its clients get: `PresencePolicy`, `Member`,
`PresenceStats`, `PresenceError`, and the check that a framing can carry join/leave events.
Pure: no I/O (`asyncws.presence` tells the whole story)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .codes import ErrorCode
from .exceptions import AsyncWSError

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "Member",
    "PresenceError",
    "PresencePolicy",
    "PresenceStats",
    "check_presence_framing",
    "policy_of",
]


class PresenceError(AsyncWSError):
    """A presence request the topic cannot answer (it has no presence)."""

    code = ErrorCode.BAD_REQUEST


@dataclass(frozen=True)
class PresencePolicy:
    """How a topic tracks its members.

    ``track``: ``"user"`` (the connection's user id, else its id) or ``"connection"``.
    ``info``: a callable ``(connection) -> JSON-able`` giving the info kept per member
    (default: none, ``null``). ``events``: send ``join``/``leave`` to the topic's subscribers.
    ``max_members``: the most members one ``presence`` answer holds (the count is exact).
    ``ttl``: seconds a member outlives the instance holding it when that instance dies.
    """

    track: Literal["user", "connection"] = "user"
    info: Callable[[Connection], Any] | None = None
    events: bool = True
    max_members: int = 1000
    ttl: float = 30.0

    def __post_init__(self) -> None:
        if self.track not in ("user", "connection"):
            raise ValueError("PresencePolicy.track is 'user' or 'connection'")
        if self.max_members < 1:
            raise ValueError("PresencePolicy.max_members must be at least 1")
        if self.ttl <= 0:
            raise ValueError("PresencePolicy.ttl must be positive")

    def member_of(self, conn: Connection) -> str:
        if self.track == "user" and conn.user_id is not None:
            return conn.user_id
        return conn.id

    def info_of(self, conn: Connection) -> Any:
        return None if self.info is None else self.info(conn)


def policy_of(value: bool | PresencePolicy | None) -> PresencePolicy | None:
    """The policy a topic's ``presence=`` option declares (None: no presence)."""
    if value is None or value is False:
        return None
    if value is True:
        return PresencePolicy()
    if isinstance(value, PresencePolicy):
        return value
    raise TypeError("presence= takes True, False or a PresencePolicy")


@dataclass(frozen=True)
class Member:
    """One member of a topic: its id (user or connection id) and its info."""

    member: str
    info: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"member": self.member, "info": self.info}


@dataclass(frozen=True)
class PresenceStats:
    count: int


def check_presence_framing(framing: Any, topics: Iterable[tuple[str, PresencePolicy]]) -> None:
    """TypeError for ``join``/``leave`` events in a framing without control frames
    (`asyncws.framing.DocumentFraming`): its events are their payloads as they are, so a join
    would look like any other event and match no message of the document. Such an app keeps
    presence with ``events=False``: members come from server code's subscriptions
    (``ws.manager.subscribe(conn, topic)``) and it reads them with ``topic.presence()``."""
    if getattr(framing, "controls", True):
        return
    for address, policy in topics:
        if policy.events:
            raise TypeError(
                f"topic {address!r}: {type(framing).__name__} has no join/leave frames (its "
                f"events are their payloads); declare presence=PresencePolicy(events=False) "
                f"and read the members with topic.presence()"
            )
