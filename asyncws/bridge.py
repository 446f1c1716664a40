"""`BrokerBridge`: broker messages out (header, publish) and in (listen, dispatch, deliver).

A broker message is ``aws1:{instance}:{seq}:{time}\\n`` (then, on an instance channel,
``{conn_id}\\n``) followed by the frame text, which the publisher encoded once (``time`` is
the publish time in microseconds since the epoch, for the latency histogram; receivers also
accept headers without it, as sent by older versions). The receiving instance wraps the text
in one ASGI message and hands that same object to every local recipient's `Connection.push`
(no decoding, no per-recipient encoding, no task). Copies of one publish that the broker
delivers twice (an exact and a pattern subscription both matching) carry the same header
and are dropped.

Delivery is at-most-once and ordered per publisher and channel. A publish while the broker
is unreachable raises `BrokerError` (counted in ``stats["publish_errors"]`` and logged as a
warning, at most one line every few seconds).

This is the delivery hot path: `dispatch` and `deliver` read the registry's tables directly
(the same dict and index objects), with no call per recipient beyond ``push``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .brokers import BrokerInterface
from .channels import Channels
from .exceptions import AsyncWSError
from .history import POSITION_PREFIX, split_position
from .registry import Registry

if TYPE_CHECKING:
    from .connection import Connection
    from .history import Recovery

__all__ = ["LATENCY_BUCKETS", "BrokerBridge"]

logger = logging.getLogger("asyncws.manager")

MAGIC = b"aws1:"
#: Upper bounds, in seconds, of the publish-to-delivery latency histogram (`latency_counts`).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
_PUBLISH_WARN_EVERY = 5.0  # seconds between two "publishes lost" warnings


class BrokerBridge:
    """The manager's link to its broker: it publishes, listens and delivers locally."""

    def __init__(
        self,
        broker: BrokerInterface,
        channels: Channels,
        registry: Registry,
        stats: dict[str, int],
        instance_id: str,
    ) -> None:
        self.broker = broker
        self.channels = channels
        self.registry = registry
        self.stats = stats
        #: Topic history (`asyncws.history`): set by the manager, which owns it.
        self.history: Recovery | None = None
        # The delivery path reads these once per broker message: the registry's own tables
        # (never rebound) and the channel names, one attribute away as before the split.
        self._connections = registry.connections
        self._users = registry.users
        self._index = registry.index
        self._tp = channels.topic_prefix
        self._tp_len = len(self._tp)
        self._cp = channels.conn_prefix
        self._up = channels.user_prefix
        self._ic = channels.instance
        self._bc = channels.broadcast
        self._seq = 0
        self._head = b"%s%s:" % (MAGIC, instance_id.encode())  # aws1:{instance}:
        self._last_header = b""
        #: Publish-to-delivery latency of the broker messages this instance received: counts
        #: per bucket of `LATENCY_BUCKETS` (the last one: above them all) and their sum (s).
        self.latency_counts: list[int] = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self._lost_unlogged = 0  # failed publishes not reported in a warning yet
        self._lost_logged_at = -_PUBLISH_WARN_EVERY

    # -- out ----------------------------------------------------------------------------------

    def header(self) -> bytes:
        """The first line of a broker message from this instance (dedup and latency)."""
        self._seq += 1
        return b"%s%d:%d\n" % (self._head, self._seq, time.time_ns() // 1000)

    async def publish(self, channel: str, text: str, route: str | None = None) -> None:
        """Publish ``text`` on ``channel`` with this instance's header (``route``: the
        connection id line of an instance channel). Raises `BrokerError`."""
        head = self.header()
        if route is not None:  # an instance channel: the connection id on its own line
            head += route.encode() + b"\n"
        try:
            await self.broker.publish(channel, head + text.encode())
        except AsyncWSError as exc:
            self.stats["publish_errors"] += 1
            self.publish_lost(channel, exc)
            raise
        self.stats["published"] += 1
        if self._lost_unlogged:
            self.publish_lost(channel, None)

    def publish_lost(self, channel: str, exc: Exception | None) -> None:
        """Report failed publishes loudly but briefly: a warning at the first failure, then at
        most one every few seconds with the count, and a last one when publishing works again."""
        if exc is not None:
            self._lost_unlogged += 1
        now = time.monotonic()
        if exc is not None and now - self._lost_logged_at < _PUBLISH_WARN_EVERY:
            return
        logger.warning(
            "broker publish failed: %d message(s) not published since the last report "
            "(%s; total %d)%s",
            self._lost_unlogged,
            exc if exc is not None else f"last on {channel[:200]!r}",
            self.stats["publish_errors"],
            "" if exc is not None else "; publishing works again",
        )
        self._lost_unlogged = 0
        self._lost_logged_at = now

    async def subscribe(self, channel: str) -> None:
        try:
            await self.broker.subscribe(channel)
        except Exception:
            logger.exception("broker subscribe %r failed", channel)

    async def unsubscribe_many(self, channels: Iterable[str]) -> None:
        for channel in channels:
            # A subscriber may have come back while we were getting here: a subscription to
            # the pattern, a new connection with the same id, another connection of the user.
            if self.registry.still_needed(channel):
                continue
            try:
                await self.broker.unsubscribe(channel)
            except Exception:
                logger.exception("broker unsubscribe %r failed", channel)

    # -- in -----------------------------------------------------------------------------------

    async def listen(self, max_queue: int) -> None:
        """Dispatch broker messages until the broker is closed; restart after failures."""
        backoff = 0.1
        # A broker hands out what it has buffered without suspending; yield to the loop every
        # `burst` messages so the connections' writers drain their queues in between (else a
        # burst longer than ``max_queue`` would overflow even a fast consumer).
        burst = max(1, min(64, max_queue // 4))
        count = 0
        while not self.broker.is_closed():
            try:
                async for channel, data in self.broker.listen():
                    try:
                        self.dispatch(channel, data)
                    except Exception:
                        self.stats["broker_malformed"] += 1
                        logger.exception("skipped a broker message on %r", channel[:200])
                    backoff = 0.1
                    count += 1
                    if count >= burst:
                        count = 0
                        await asyncio.sleep(0)
                if self.broker.is_closed():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("broker listener failed; restarting in %.1fs", backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def dispatch(self, channel: str, data: bytes) -> None:
        """Deliver one broker message to its local recipients (see the module docstring)."""
        stats = self.stats
        stats["broker_messages"] += 1
        position = None
        if not data.startswith(MAGIC):  # (checked first: the common case costs one test)
            if data.startswith(POSITION_PREFIX):  # an event of a history topic
                position, data = split_position(data)
            if not data.startswith(MAGIC):
                self._malformed(channel)
                return
        nl = data.find(b"\n", 0, 64)
        if nl < 0:
            self._malformed(channel)
            return
        header = data[:nl]
        if header == self._last_header:
            stats["broker_duplicates"] += 1
            return
        self._last_header = header
        parts = header.split(b":")
        if len(parts) == 4:  # aws1:{instance}:{seq}:{time}: observe the publish-to-delivery time
            try:
                sent = int(parts[3])
            except ValueError:
                stats["broker_malformed"] += 1
                logger.warning("skipped a broker message with a bad header on %r", channel[:200])
                return
            delay = time.time() - sent / 1e6
            delay = delay if delay > 0.0 else 0.0  # clocks of two hosts may disagree a little
            self.latency_counts[bisect_left(LATENCY_BUCKETS, delay)] += 1
            self.latency_sum += delay
        if channel == self._ic:  # {conn_id}\n{frame}
            end = data.find(b"\n", nl + 1, nl + 160)
            if end < 0:
                stats["broker_malformed"] += 1
                logger.warning("skipped an instance-channel message without a connection id")
                return
            conn = self._connections.get(data[nl + 1 : end].decode())
            self.deliver((conn,) if conn is not None else (), data[end + 1 :].decode())
            return
        text = data[nl + 1 :].decode()  # UnicodeDecodeError: logged and skipped by listen
        targets: Iterable[Connection]
        if channel.startswith(self._tp):
            topic = channel[self._tp_len :]
            targets = self._index.match(topic)
            if position is not None and self.history is not None:
                self.history.deliver(topic, targets, text, position)
                return
        elif channel.startswith(self._cp):
            conn = self._connections.get(unquote(channel[len(self._cp) :]))
            targets = (conn,) if conn is not None else ()
        elif channel.startswith(self._up):
            targets = tuple(self._users.get(unquote(channel[len(self._up) :]), ()))
        elif channel == self._bc:
            targets = tuple(self._connections.values())
        else:
            return
        self.deliver(targets, text)

    def _malformed(self, channel: str) -> None:
        self.stats["broker_malformed"] += 1
        logger.warning("skipped a broker message without an asyncws header on %r", channel[:200])

    def deliver(self, targets: Iterable[Connection], text: str) -> int:
        """Push ``text`` to each target as one shared ASGI message; how many took it."""
        message = {"type": "websocket.send", "text": text}
        count = 0
        for conn in targets:
            if conn.push(message):
                count += 1
        self.stats["deliveries"] += count
        return count
