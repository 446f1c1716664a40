"""`Registry`: who is connected to this instance, and which broker channels they need.

Pure: no I/O. It holds the local connections by id, the connections of each user, the routing
`TopicIndex` (the only thing delivery reads), the caps on subscriptions, and each connection's
`FanoutBudget`. Its changes return the broker channels that became needed or unneeded; the
manager subscribes or unsubscribes them (`asyncws.bridge`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .channels import Channels
from .exceptions import TooManySubscriptionsError
from .limits import FanoutBudget, Limits
from .topics import TopicIndex, TopicLimits, is_pattern, validate_pattern

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Registry"]

logger = logging.getLogger("asyncws.manager")

# A connection's `TopicSet` itself, without the subscribing its own methods do.
_set_add = set.add
_set_discard = set.discard


class Registry:
    """Local connections, users, subscriptions and their limits.

    ``max_wildcards*``: wildcard subscriptions (``rooms/+``, ``a/#``) are each a Redis
    PSUBSCRIBE pattern that Redis matches against every PUBLISH, so they are capped per
    connection, per user (on this instance) and, distinct, per instance (docs/deployment.md).
    """

    def __init__(
        self,
        channels: Channels,
        *,
        topic_limits: TopicLimits,
        max_subscriptions: int,
        limits: Limits,
        max_wildcards: int,
        max_wildcards_per_user: int,
        max_wildcards_per_instance: int,
    ) -> None:
        self.channels = channels
        self.topic_limits = topic_limits
        self.max_subscriptions = max_subscriptions
        self.limits = limits
        self.max_wildcards = max_wildcards
        self.max_wildcards_per_user = max_wildcards_per_user
        self.max_wildcards_per_instance = max_wildcards_per_instance
        self.connections: dict[str, Connection] = {}
        self.users: dict[str, set[Connection]] = {}
        self.index: TopicIndex[Connection] = TopicIndex()
        self.wildcards = 0  # distinct wildcard patterns in the index
        self.budgets: dict[Connection, FanoutBudget] = {}

    # -- connections --------------------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        self.connections[conn.id] = conn
        if conn.user_id is not None:
            self.users.setdefault(conn.user_id, set()).add(conn)

    def remove(self, conn: Connection) -> list[str] | None:
        """Drop ``conn`` from every table; the broker channels nobody needs now (None: it was
        not registered)."""
        if self.connections.get(conn.id) is not conn:
            return None
        del self.connections[conn.id]
        self.budgets.pop(conn, None)
        own = self.channels.connection(conn.id)
        channels = [own] if own is not None else []
        if conn.user_id is not None:
            peers = self.users.get(conn.user_id)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self.users[conn.user_id]
                    channels.append(self.channels.user(conn.user_id))
        topic_prefix = self.channels.topic_prefix
        for pattern in conn.topics:
            self.index.remove(pattern, conn)
            if not self.index.has_pattern(pattern):
                channels.append(topic_prefix + pattern)
                self.wildcards -= is_pattern(pattern)
        set.clear(conn.topics)  # the set itself: its clear() would unsubscribe through us
        return channels

    def rename(self, conn: Connection, conn_id: str) -> tuple[str | None, str | None] | None:
        """Register ``conn`` under ``conn_id``; its old and new broker channels (None: it was
        not registered, only the id changes)."""
        old = conn.id
        conn.id = conn_id
        if self.connections.get(old) is not conn:
            return None
        del self.connections[old]
        self.connections[conn_id] = conn
        return self.channels.connection(old), self.channels.connection(conn_id)

    def still_needed(self, channel: str) -> bool:
        """Whether a local connection still needs ``channel`` (one may have come back)."""
        names = self.channels
        if channel.startswith(names.topic_prefix):
            return self.index.has_pattern(channel[len(names.topic_prefix) :])
        if channel.startswith(names.conn_prefix):
            return unquote(channel[len(names.conn_prefix) :]) in self.connections
        if channel == names.instance:
            return True
        if channel.startswith(names.user_prefix):
            return unquote(channel[len(names.user_prefix) :]) in self.users
        return False

    # -- subscriptions ------------------------------------------------------------------------

    def subscribe(self, connection: Connection, pattern: str) -> str | None:
        """Validate ``pattern`` and update the index; the broker channel to subscribe, if new."""
        pattern = validate_pattern(pattern, self.topic_limits)
        topics = connection._topics  # the set itself (the property costs a call)
        if pattern in topics:
            return None
        if len(topics) >= self.max_subscriptions:
            raise TooManySubscriptionsError(
                f"at most {self.max_subscriptions} subscriptions per connection"
            )
        wildcard = is_pattern(pattern)
        if wildcard:
            self._check_wildcards(connection, pattern)
        _set_add(topics, pattern)  # not TopicSet.add, which calls us
        if self.connections.get(connection.id) is not connection:
            return None  # not managed (yet): nothing to route
        first = not self.index.has_pattern(pattern)
        self.index.add(pattern, connection)
        if first:
            self.wildcards += wildcard
        return self.channels.topic_prefix + pattern if first else None

    def unsubscribe(self, connection: Connection, pattern: str) -> str | None:
        """Update the index; the broker channel nobody needs now, if any."""
        topics = connection._topics  # the set itself (the property costs a call)
        if pattern not in topics:
            return None
        _set_discard(topics, pattern)
        if self.index.remove(pattern, connection) and not self.index.has_pattern(pattern):
            self.wildcards -= is_pattern(pattern)
            return self.channels.topic_prefix + pattern
        return None

    def _check_wildcards(self, connection: Connection, pattern: str) -> None:
        """Refuse a new wildcard subscription over the caps (`TooManySubscriptionsError`)."""
        held = sum(1 for p in connection.topics if is_pattern(p))
        if held >= self.max_wildcards:
            raise TooManySubscriptionsError(
                f"at most {self.max_wildcards} wildcard subscriptions per connection"
            )
        peers = self.users.get(connection.user_id) if connection.user_id is not None else None
        if peers:
            mine = {p for c in peers for p in c.topics if is_pattern(p)}
            if pattern not in mine and len(mine) >= self.max_wildcards_per_user:
                raise TooManySubscriptionsError(
                    f"at most {self.max_wildcards_per_user} distinct wildcard subscriptions "
                    "per user"
                )
        if not self.index.has_pattern(pattern) and (
            self.wildcards >= self.max_wildcards_per_instance
        ):
            logger.warning(
                "wildcard subscription refused: this instance holds %d distinct wildcard "
                "patterns (max_wildcards_per_instance)",
                self.wildcards,
            )
            raise TooManySubscriptionsError(
                "the server holds too many distinct wildcard subscriptions; subscribe to an "
                "exact topic or one already in use, or try again later"
            )

    # -- publish budgets ----------------------------------------------------------------------

    def charge(
        self, connection: Connection, recipients: int, text: str, *, count_recipients: bool = False
    ) -> None:
        """Count a client frame that publishes ``text`` to ``recipients`` broker channels
        against the connection's `FanoutBudget` (raises `RateLimitedError`/`ProtocolError`)."""
        budget = self.budgets.get(connection)
        if budget is None:
            budget = FanoutBudget(self.limits)
            if self.connections.get(connection.id) is connection:  # dropped by `remove`
                self.budgets[connection] = budget
        nbytes = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        budget.charge(recipients, nbytes, count_recipients=count_recipients)
