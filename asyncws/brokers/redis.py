"""`redis://` and `rediss://`: Redis pub/sub (redis.asyncio).

One connection publishes, one pub/sub connection receives. Channel names are used as they
are; patterns (``+``/``#``) become ``PSUBSCRIBE`` globs, which over-approximate (``+`` is
``*``, ``a/#`` is ``a*``); the manager filters exactly.

The listener blocks while idle (it wakes every ``health_interval`` seconds to PING, so a dead
connection is noticed even when nothing is published). When Redis goes away it reconnects with
exponential backoff and resubscribes every channel and pattern; messages published meanwhile
are lost (at-most-once). A publish while Redis is unreachable raises `BrokerError` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from ..exceptions import BrokerError
from ..topics import is_pattern
from .base import BrokerInterface, BrokerMessage, BrokerState

__all__ = ["RedisBroker", "pattern_to_glob"]

logger = logging.getLogger("asyncws.broker")

_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "\\*?[]^"})


def pattern_to_glob(pattern: str) -> str:
    """Translate an MQTT-style channel pattern to a Redis glob that matches at least as much."""
    levels = pattern.split("/")
    out: list[str] = []
    for i, level in enumerate(levels):
        if level == "#":
            # 'a/#' matches 'a' and everything under it: 'a*' covers both (and more).
            return "/".join(out) + "*" if out else "*"
        out.append("*" if level == "+" else level.translate(_GLOB_SPECIAL))
        del i
    return "/".join(out)


class RedisBroker(BrokerInterface):
    """Redis pub/sub broker with reconnect, resubscribe and a health check."""

    def __init__(
        self,
        redis_url: str,
        *,
        health_interval: float = 15.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 5.0,
        connect_timeout: float = 3.0,
        command_timeout: float = 5.0,
        **redis_kwargs: Any,
    ) -> None:
        self.url = redis_url
        self.health_interval = health_interval
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self._redis_kwargs = redis_kwargs
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._redis: Redis | None = None
        self._sub_redis: Redis | None = None
        self._pubsub: PubSub | None = None
        self._channels: set[str] = set()
        self._patterns: set[str] = set()
        self._lock = asyncio.Lock()
        self._keepalive = f"asyncws:keepalive:{uuid.uuid4().hex}"
        #: Times the listener lost Redis and got it back; exposed for metrics.
        self.reconnects = 0
        self.publish_errors = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._redis is not None:
            return
        retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1)
        self._redis = Redis.from_url(
            self.url,
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._command_timeout,
            retry=retry,
            **self._redis_kwargs,
        )
        # The subscriber blocks on reads for as long as nothing is published: no read timeout.
        self._sub_redis = Redis.from_url(
            self.url,
            socket_connect_timeout=self._connect_timeout,
            socket_keepalive=True,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=0),
            **self._redis_kwargs,
        )
        try:
            await self._open_pubsub()
            self.state = BrokerState.CONNECTED
        except (RedisError, OSError) as exc:
            # Start anyway: local traffic works, the listener keeps trying to reconnect.
            logger.warning("Redis unreachable at startup (%s); will keep retrying", exc)
            self.state = BrokerState.RECONNECTING

    async def disconnect(self) -> None:
        self.state = BrokerState.CLOSED
        pubsub, self._pubsub = self._pubsub, None
        for client in (pubsub, self._sub_redis, self._redis):
            await _quiet_close(client, 2.0)
        self._redis = self._sub_redis = None

    async def _open_pubsub(self) -> None:
        """A new pub/sub connection, subscribed to everything we hold."""
        assert self._sub_redis is not None
        async with self._lock:
            old, self._pubsub = self._pubsub, None
            await _quiet_close(old)
            pubsub = self._sub_redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._keepalive, *self._channels)
                if self._patterns:
                    await pubsub.psubscribe(*(pattern_to_glob(p) for p in self._patterns))
            except BaseException:
                await _quiet_close(pubsub)
                raise
            self._pubsub = pubsub

    # -- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        if is_pattern(channel):
            if channel in self._patterns:
                return
            self._patterns.add(channel)
            await self._command("psubscribe", pattern_to_glob(channel))
        else:
            if channel in self._channels:
                return
            self._channels.add(channel)
            await self._command("subscribe", channel)

    async def unsubscribe(self, channel: str) -> None:
        if is_pattern(channel):
            if channel not in self._patterns:
                return
            self._patterns.discard(channel)
            glob = pattern_to_glob(channel)
            # Two patterns can share a glob ('a/+' and 'a/#' -> 'a/*', 'a*'): keep it while used.
            if any(pattern_to_glob(p) == glob for p in self._patterns):
                return
            await self._command("punsubscribe", glob)
        else:
            if channel not in self._channels:
                return
            self._channels.discard(channel)
            await self._command("unsubscribe", channel)

    async def _command(self, name: str, arg: str) -> None:
        """Send (P)(UN)SUBSCRIBE; if Redis is down, the set is replayed on reconnect."""
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            try:
                await asyncio.wait_for(getattr(pubsub, name)(arg), self._command_timeout)
            except (RedisError, OSError, TimeoutError) as exc:
                logger.warning("Redis %s %r failed (%s); replayed on reconnect", name, arg, exc)

    # -- publish ------------------------------------------------------------------------------

    async def publish(self, channel: str, message: Any) -> None:
        redis = self._redis
        if redis is None:
            raise BrokerError("the broker is not connected")
        try:
            await redis.publish(channel, message)
        except (RedisError, OSError, TimeoutError) as exc:
            self.publish_errors += 1
            raise BrokerError("the broker is unavailable; the message was not published") from exc

    # -- receive ------------------------------------------------------------------------------

    async def get_message(self, **kwargs: Any) -> BrokerMessage | None:
        pubsub = self._pubsub
        if pubsub is None:
            return None
        timeout: float | None = kwargs.get("timeout", 0.0)
        raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        return self._convert(raw)

    def _convert(self, raw: Any) -> BrokerMessage | None:
        if raw is None or raw.get("type") not in ("message", "pmessage"):
            return None
        channel = raw["channel"]
        data = raw["data"]
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "replace")
        if isinstance(data, str):
            data = data.encode()
        return BrokerMessage(channel, data)

    async def listen(self) -> AsyncIterator[BrokerMessage]:
        """Yield messages forever; reconnect and resubscribe when Redis goes away."""
        loop = asyncio.get_running_loop()
        backoff = self.reconnect_min
        last_seen = loop.time()
        ping_sent = False
        while not self.is_closed():
            pubsub = self._pubsub
            try:
                if pubsub is None:
                    await self._open_pubsub()
                    if self.state is BrokerState.RECONNECTING:
                        self.reconnects += 1
                        logger.warning("Redis connection restored; subscriptions replayed")
                    self.state = BrokerState.CONNECTED
                    backoff = self.reconnect_min
                    last_seen = loop.time()
                    ping_sent = False
                    continue
                raw = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self.health_interval
                )
            except (RedisError, OSError, TimeoutError) as exc:
                if self.is_closed():
                    return
                if self.state is not BrokerState.RECONNECTING:
                    logger.warning("Redis connection lost (%s); reconnecting", exc)
                self.state = BrokerState.RECONNECTING
                await self._drop_pubsub(pubsub)
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.reconnect_max)
                continue
            except RuntimeError:  # redis-py: the pubsub was reset under us (disconnect)
                if self.is_closed():
                    return
                raise
            now = loop.time()
            if raw is None:
                if self.is_closed():
                    return
                if ping_sent and now - last_seen > 2 * self.health_interval:
                    logger.warning("Redis did not answer a PING; reconnecting")
                    self.state = BrokerState.RECONNECTING
                    await self._drop_pubsub(pubsub)
                    continue
                if now - last_seen >= self.health_interval:
                    await self._ping(pubsub)
                    ping_sent = True
                continue
            last_seen = now
            ping_sent = False
            message = self._convert(raw)
            if message is not None:
                yield message

    async def _ping(self, pubsub: PubSub) -> None:
        try:
            async with self._lock:
                await asyncio.wait_for(pubsub.ping(), self._command_timeout)
        except (RedisError, OSError, TimeoutError):
            pass  # the next read notices

    async def _drop_pubsub(self, pubsub: PubSub | None) -> None:
        async with self._lock:
            if pubsub is not None and self._pubsub is pubsub:
                self._pubsub = None
        await _quiet_close(pubsub)


async def _quiet_close(client: Any, within: float = 1.0) -> None:
    """Close a Redis client or pub/sub without raising: it may already be broken."""
    if client is None:
        return
    with contextlib.suppress(RedisError, OSError, TimeoutError, RuntimeError):
        await asyncio.wait_for(client.aclose(), within)
