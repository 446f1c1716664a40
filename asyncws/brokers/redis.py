"""`redis://` and `rediss://`: Redis pub/sub (redis.asyncio).

One connection publishes, one pub/sub connection receives. Channel names are used as they
are; patterns (``+``/``#``) become ``PSUBSCRIBE`` globs, which over-approximate (``+`` is
``*``, ``a/#`` is ``a*``); the manager filters exactly.

The listener blocks on the socket without a timeout. A watchdog task (one timer per
``health_interval``, none per message) PINGs when nothing arrived for ``health_interval``
seconds and, when the PING is not answered within another interval, interrupts the read, so a
dead connection (e.g. a frozen Redis) is noticed even when nothing is published. When Redis
goes away the listener reconnects with exponential backoff and resubscribes every channel and
pattern (waiting for Redis to confirm them before it reports ``connected`` again); messages
published meanwhile are lost (at-most-once). A publish while Redis is unreachable raises
`BrokerError` at once.

`RedisBroker.subscribe` returns once Redis confirmed the subscription, so an application can
acknowledge a client's subscribe knowing that publishes from any instance now reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from ..exceptions import BrokerError
from ..history import POSITION_PREFIX, HistoryEntry, HistoryRead, Position, new_epoch
from ..message import Message
from ..topics import is_pattern
from .base import BrokerInterface, BrokerMessage, BrokerState, encode_payload, seed_view

__all__ = ["RedisBroker", "pattern_to_glob"]

logger = logging.getLogger("asyncws.broker")

_now = time.monotonic  # the watchdog's clock; stamped once per message read

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


#: A publish in a batch: channel, message, the future its publisher awaits (None for the
#: batch's leader, which writes the batch itself).
_Publish = tuple[str, Any, "asyncio.Future[None] | None"]


class _NoPong(TimeoutError):
    """The watchdog's PING went unanswered: the blocked read was interrupted."""


class _Confirmation(NamedTuple):
    """A (p)subscribe confirmation read from the pub/sub connection."""

    kind: str  # "subscribe" or "psubscribe"
    name: str  # the channel, or the glob


# Claim KEYS[1] for ARGV[1] for ARGV[2] ms unless someone else holds it (renews our own).
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if (not held) or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# History (asyncws.history): KEYS[1] the stream, KEYS[2] its meta hash (e: epoch, o: last
# offset), KEYS[3] the idempotency key or ''. A missing meta hash means the history was lost:
# a new epoch (ARGV[5]), and the stream (if any survived) is dropped, offsets restart at 1.
_ENSURE_EPOCH = """
local function epoch_of(stream, meta, fresh)
  local e = redis.call('HGET', meta, 'e')
  if not e then
    e = fresh
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'e', e, 'o', 0)
  end
  return e
end
"""
# ARGV: 1 channel, 2 message, 3 maxlen, 4 ttl ms, 5 fresh epoch, 6 position prefix,
# 7 (optional) how long the idempotency key lives, ms (default: the ttl)
_APPEND = (
    _ENSURE_EPOCH
    + """
local e = epoch_of(KEYS[1], KEYS[2], ARGV[5])
if KEYS[3] ~= '' then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {tonumber(seen), e} end
end
local o = redis.call('HINCRBY', KEYS[2], 'o', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], '0-' .. o, 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], o, 'PX', ARGV[7] or ARGV[4]) end
redis.call('PUBLISH', ARGV[1], ARGV[6] .. o .. ':' .. e .. '\\n' .. ARGV[2])
return {o, e}
"""
)
# ARGV: 1 since ('' for the latest), 2 limit, 3 fresh epoch, 4 ttl ms for a new meta hash
_READ = (
    _ENSURE_EPOCH
    + """
local fresh = redis.call('EXISTS', KEYS[2]) == 0
local e = epoch_of(KEYS[1], KEYS[2], ARGV[3])
if fresh then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
local o = tonumber(redis.call('HGET', KEYS[2], 'o'))
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first = 0
if #head > 0 then first = tonumber(string.sub(head[1][1], 3)) end
local limit = tonumber(ARGV[2])
local entries = {}
if limit > 0 then
  if ARGV[1] == '' then
    entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', limit)
  else
    entries = redis.call('XRANGE', KEYS[1], '(0-' .. ARGV[1], '+', 'COUNT', limit)
  end
end
return {e, o, first, entries}
"""
)


class RedisBroker(BrokerInterface):
    """Redis pub/sub broker with reconnect, resubscribe and a health check.

    `subscribe` returns once Redis has confirmed the subscription (or, while Redis is down,
    at once: the subscription is replayed on reconnect), so a message published after it
    returned, from any connection, is delivered. The pub/sub connection has one reader at a
    time (``_read_lock``): the listener, a `get_message` caller, or a `subscribe` that waits
    for its confirmation while nobody else reads; messages read by the latter are buffered
    and handed out first.

    Topic history (`publish_history`, `read_history`): Lua scripts on the command
    connection, at most ``history_concurrency`` at once (the others wait their turn).
    """

    def __init__(
        self,
        redis_url: str,
        *,
        health_interval: float = 15.0,
        reconnect_min: float = 0.05,
        reconnect_max: float = 5.0,
        connect_timeout: float = 3.0,
        command_timeout: float = 5.0,
        history_concurrency: int = 32,
        flush_delay: float | None = 0.0,
        **redis_kwargs: Any,
    ) -> None:
        self.url = redis_url
        #: How long the first publish of a batch waits for more (see `publish`): 0 (the
        #: default) until the loop ran the callbacks ready with it, None not at all.
        self.flush_delay = flush_delay
        self._collecting: list[_Publish] | None = None  # the batch whose leader waits
        self._write_lock = asyncio.Lock()  # one batch in flight at a time, in order
        self.health_interval = health_interval
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self._redis_kwargs = redis_kwargs
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        #: How long a history append's own idempotency key lives: past any retry of it.
        self._retry_window_ms = int(max(10.0, 4 * (connect_timeout + command_timeout)) * 1000)
        self._redis: Redis | None = None
        self._sub_redis: Redis | None = None
        self._pubsub: PubSub | None = None
        self._channels: set[str] = set()
        self._patterns: set[str] = set()
        # PSUBSCRIBE globs held, with the number of patterns behind each: two patterns can
        # share a glob ('a/+' and 'a/#' -> 'a/*', 'a*'), and unsubscribing must stay O(1).
        self._globs: dict[str, int] = {}
        # in flight: ("subscribe", channel) or ("psubscribe", glob) -> its confirmation
        self._subscribing: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()  # commands on the pub/sub connection, and its replacement
        self._read_lock = asyncio.Lock()  # one reader of the pub/sub connection at a time
        self._waiters: dict[_Confirmation, list[asyncio.Future[None]]] = {}
        self._buffer: deque[BrokerMessage] = deque()
        self._reader: asyncio.Task[Any] | None = None  # the task blocked in a read, if any
        self._interrupted: asyncio.Task[Any] | None = None  # by `disconnect`: _read returns None
        self._stale: asyncio.Task[Any] | None = None  # by the watchdog: _read raises _NoPong
        self._last_seen = 0.0  # when a read last returned something (or the connection opened)
        self._watchdog: asyncio.Task[None] | None = None
        self._keepalive = f"asyncws:keepalive:{uuid.uuid4().hex}"
        #: Times the listener lost Redis and got it back; exposed for metrics.
        self.reconnects = 0
        self.publish_errors = 0
        self._scripts: dict[str, Any] = {}  # the history scripts, run on any client
        self._history_slots = asyncio.Semaphore(history_concurrency)
        #: Pipelined writes that carried publishes (a batch may hold one or many).
        self.publish_batches = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._redis is not None:
            return
        retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1)
        self._redis = self._new_client(
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._command_timeout,
            retry=retry,
            **self._redis_kwargs,
        )
        # The subscriber blocks on reads for as long as nothing is published: no read timeout.
        self._sub_redis = self._new_client(
            socket_connect_timeout=self._connect_timeout,
            socket_keepalive=True,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=0),
            **self._redis_kwargs,
        )
        self.state = BrokerState.DISCONNECTED
        try:
            await self._open_pubsub()
            self._restored()
        except (RedisError, OSError, TimeoutError) as exc:
            # Start anyway: local traffic works, the listener keeps trying to reconnect.
            logger.warning("Redis unreachable at startup (%s); will keep retrying", exc)
            self.state = BrokerState.RECONNECTING

    def _new_client(self, **options: Any) -> Redis:
        """A client for the URL (a hook: the Sentinel broker asks Sentinel for the primary)."""
        return Redis.from_url(self.url, **options)

    async def disconnect(self) -> None:
        if self.state is BrokerState.CLOSED and self._redis is None:
            return
        self.state = BrokerState.CLOSED
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
            await asyncio.wait([watchdog], timeout=1.0)
        # Cut a blocked read short before closing its connection: closed under a reader,
        # redis-py would reconnect the pub/sub connection (and leak it).
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            self._interrupted = reader
            reader.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0), self._read_lock:
                    pass
            self._interrupted = None
        pubsub, self._pubsub = self._pubsub, None
        for client in (pubsub, self._sub_redis, self._redis):
            await _quiet_close(client, 2.0)
        self._redis = self._sub_redis = None
        self._buffer.clear()
        self._wake_waiters()

    async def _open_pubsub(self) -> None:
        """A new pub/sub connection, subscribed to everything we hold, confirmed by Redis."""
        sub_redis = self._sub_redis
        if sub_redis is None:
            raise BrokerError("the broker is not connected")
        async with self._lock:
            if self._pubsub is not None:
                return  # another task (the listener, a get_message caller) just opened one
            pubsub = sub_redis.pubsub()
            expected = {_Confirmation("subscribe", c) for c in (self._keepalive, *self._channels)}
            globs = set(self._globs)
            expected |= {_Confirmation("psubscribe", g) for g in globs}
            try:
                async with asyncio.timeout(self._connect_timeout + self._command_timeout):
                    await pubsub.subscribe(self._keepalive, *self._channels)
                    if globs:
                        await pubsub.psubscribe(*globs)
                    # Nobody else can read this connection yet: wait for the confirmations
                    # here, so that the replayed subscriptions are in effect once we return.
                    while expected:
                        raw = await pubsub.get_message(timeout=self._command_timeout)
                        if raw is None:
                            continue
                        item = self._convert(raw)
                        if isinstance(item, _Confirmation):
                            expected.discard(item)
                        elif item is not None:
                            self._buffer.append(item)
            except BaseException:
                await _quiet_close(pubsub)
                raise
            if self.is_closed():  # disconnect() ran meanwhile
                await _quiet_close(pubsub)
                return
            self._pubsub = pubsub
            self._last_seen = _now()
        # Whatever was waiting for a confirmation is subscribed on the new connection.
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)

    # -- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Subscribe, returning once Redis confirmed it (bounded). A second caller for a
        channel whose subscription is still in flight waits for that same confirmation."""
        if is_pattern(channel):
            if channel in self._patterns:
                key = ("psubscribe", pattern_to_glob(channel))
                return await self._in_flight(key)
            self._patterns.add(channel)
            glob = pattern_to_glob(channel)
            held = self._globs.get(glob, 0)
            self._globs[glob] = held + 1
            key = ("psubscribe", glob)
            if held:  # another pattern holds the glob: Redis has it (or is confirming it)
                return await self._in_flight(key)
        else:
            key = ("subscribe", channel)
            if channel in self._channels:
                return await self._in_flight(key)
            self._channels.add(channel)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._subscribing[key] = done
        try:
            await self._command(*key)
        finally:
            del self._subscribing[key]
            done.set_result(None)

    async def _in_flight(self, key: tuple[str, str]) -> None:
        """Wait for the confirmation of a (p)subscribe still in flight, if any."""
        pending = self._subscribing.get(key)
        if pending is not None:
            await asyncio.shield(pending)

    async def unsubscribe(self, channel: str) -> None:
        if is_pattern(channel):
            if channel not in self._patterns:
                return
            self._patterns.discard(channel)
            glob = pattern_to_glob(channel)
            held = self._globs.pop(glob, 1) - 1
            if held > 0:  # another pattern still needs the glob
                self._globs[glob] = held
                return
            await self._command("punsubscribe", glob)
        else:
            if channel not in self._channels:
                return
            self._channels.discard(channel)
            await self._command("unsubscribe", channel)

    async def _command(self, name: str, arg: str) -> None:
        """Send (P)(UN)SUBSCRIBE; if Redis is down, the set is replayed on reconnect.

        A (p)subscribe waits (bounded) for Redis' confirmation.
        """
        key = _Confirmation(name, arg) if name in ("subscribe", "psubscribe") else None
        future: asyncio.Future[None] | None = None
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            if key is not None:
                future = asyncio.get_running_loop().create_future()
                self._waiters.setdefault(key, []).append(future)
            try:
                await asyncio.wait_for(getattr(pubsub, name)(arg), self._command_timeout)
            except (RedisError, OSError, TimeoutError) as exc:
                logger.warning("Redis %s %r failed (%s); replayed on reconnect", name, arg, exc)
                self._forget_waiter(key, future)
                return
        if key is not None and future is not None:
            await self._confirmed(pubsub, key, future)

    def _forget_waiter(
        self, key: _Confirmation | None, future: asyncio.Future[None] | None
    ) -> None:
        if key is None or future is None:
            return
        futures = self._waiters.get(key)
        if futures is not None and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiters[key]

    async def _confirmed(
        self, pubsub: PubSub, key: _Confirmation, future: asyncio.Future[None]
    ) -> None:
        """Wait until ``future`` is resolved by whoever reads the connection (or read it here)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._command_timeout
        try:
            while not future.done() and self._pubsub is pubsub:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError
                if self._read_lock.locked():
                    # A reader resolves it; look again now and then in case it stops reading.
                    await asyncio.wait([future], timeout=min(left, 0.05))
                    continue
                async with self._read_lock:
                    if future.done() or self._pubsub is not pubsub:
                        break
                    raw = await self._read(pubsub, left)
                    item = self._convert(raw)
                    if isinstance(item, BrokerMessage):
                        self._buffer.append(item)
        except (RedisError, OSError, TimeoutError, RuntimeError) as exc:
            # Redis went away: the subscription is replayed when the listener reconnects.
            logger.warning("Redis did not confirm %s %r (%r)", key.kind, key.name, exc)
        finally:
            self._forget_waiter(key, future)

    # -- publish ------------------------------------------------------------------------------

    async def publish(self, channel: str, message: Any) -> None:
        """Publish; returns once Redis took it. Raises `BrokerError` if it did not.

        Publishes are batched. The first publish of a batch leads it: it waits until the loop
        has run the callbacks that were ready with it (``flush_delay=0``, the default; or
        ``flush_delay`` seconds; or not at all with None) and until the batch before has been
        written, collecting every publish issued meanwhile (e.g. the frames many connections
        sent in one tick, or all that arrive while a batch is in flight), then writes them
        all in one pipelined round trip. So a publish waits at most ``flush_delay`` (or one
        loop tick) plus the round trip of the batch in flight before it is written, and this
        broker's publishes reach Redis in the order they were made. A failed batch fails each
        of its publishes with its own `BrokerError`.
        """
        message = encode_payload(message)  # a dict too, as the seed published it
        if self._redis is None:
            raise BrokerError("the broker is not connected")
        batch = self._collecting
        if batch is not None:  # join the batch being collected; its leader writes it
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            batch.append((channel, message, future))
            await future
            return
        batch = self._collecting = [(channel, message, None)]
        try:
            if self.flush_delay is not None:
                await asyncio.sleep(self.flush_delay)  # 0: one loop tick
            await self._write_lock.acquire()  # the batch before is written first
        except BaseException:
            if self._collecting is batch:
                self._collecting = None
            if len(batch) > 1:  # cancelled: whoever joined is still written
                _spawn_write(self, batch[1:])
            raise
        if self._collecting is batch:
            self._collecting = None
        try:
            await self._write(batch)
        finally:
            self._write_lock.release()

    async def _write(self, batch: list[_Publish]) -> None:
        """One pipelined write of ``batch``: resolve its futures; raise the leader's error
        (the item without a future)."""
        self.publish_batches += 1
        redis = self._redis
        failure: BaseException | None = None
        results: list[Any] = []
        if redis is None:
            failure = BrokerError("the broker is not connected")
        else:
            try:
                if len(batch) == 1:
                    channel, message, _ = batch[0]
                    results = [await redis.publish(channel, message)]
                else:
                    pipe = redis.pipeline(transaction=False)
                    for channel, message, _ in batch:
                        pipe.publish(channel, message)
                    results = await pipe.execute(raise_on_error=False)
            except (RedisError, OSError, TimeoutError) as exc:
                failure = exc
            except BaseException as exc:  # cancelled: nobody else waits in vain
                _fail(batch, exc, self)
                raise
        if failure is not None:
            _fail(batch, failure, self)
            results = [failure] * len(batch)
        own: BaseException | None = None
        for (_, _, future), result in zip(batch, results, strict=True):
            if future is None:
                if isinstance(result, Exception):
                    self.publish_errors += 1
                    own = result
            elif isinstance(result, Exception):
                if failure is None:
                    _fail([(_, _, future)], result, self)
            elif not future.done():
                future.set_result(None)
        if own is not None:
            if isinstance(own, BrokerError):
                raise own
            raise BrokerError("the broker is unavailable; the message was not published") from own

    # -- history (asyncws.history) ------------------------------------------------------------

    async def publish_history(
        self,
        channel: str,
        key: str,
        message: bytes,
        *,
        size: int,
        ttl: float,
        idempotency_key: str | None = None,
    ) -> Position:
        """One Lua script: XADD (trimmed to ``size``) + PUBLISH with the offset; the keys
        share ``key``'s hash tag, so a cluster broker can run it on the topic's slot.

        Safe to retry: the command client retries once when Redis did not answer (a
        timeout, a connection lost), and the script may have run already. Without an
        ``idempotency_key`` each call gets a key of its own for that retry window, so a
        second run returns the first position instead of storing and publishing the event
        again under a new offset."""
        ttl_ms = max(1, int(ttl * 1000))
        if idempotency_key is None:
            keys = [f"{key}:s", f"{key}:m", f"{key}:a:{uuid.uuid4().hex}"]
            key_ms = self._retry_window_ms
        else:
            keys, key_ms = self.history_keys(key, idempotency_key), ttl_ms
        args = (channel, message, size, ttl_ms, new_epoch(), POSITION_PREFIX, key_ms)
        reply = await self._history_eval(self._redis, _APPEND, keys, args)
        return Position(int(reply[0]), _text(reply[1]))

    async def read_history(self, key: str, *, since: int | None, limit: int) -> HistoryRead:
        keys = self.history_keys(key, None)
        args = ("" if since is None else since, max(0, limit), new_epoch(), 3_600_000)
        reply = await self._history_eval(self._redis, _READ, keys, args)
        entries = [HistoryEntry(int(_text(eid)[2:]), _field(fields)) for eid, fields in reply[3]]
        if since is None:
            entries.reverse()  # XREVRANGE: newest first
        return HistoryRead(Position(int(reply[1]), _text(reply[0])), int(reply[2]), entries)

    @staticmethod
    def history_keys(key: str, idempotency_key: str | None) -> list[str]:
        """The stream, its meta hash and the idempotency key (or '') of a history ``key``."""
        idem = f"{key}:i:{idempotency_key}" if idempotency_key is not None else ""
        return [f"{key}:s", f"{key}:m", idem]

    async def _history_eval(
        self, redis: Redis | None, script: str, keys: list[str], args: tuple[Any, ...]
    ) -> Any:
        """Run a history script on ``redis`` (cached by SHA: EVALSHA, EVAL when unknown)."""
        if redis is None:
            raise BrokerError("the broker is not connected")
        runner = self._scripts.get(script)
        if runner is None:  # EVALSHA, and EVAL once when Redis does not know the script
            runner = self._scripts[script] = redis.register_script(script)
        try:
            # at most `history_concurrency` scripts in flight: the pool's connections are
            # bounded (redis-py refuses more at once), and a storm of recoveries queues here
            async with self._history_slots:
                return await runner(keys=keys, args=args, client=redis)
        except (RedisError, OSError, TimeoutError) as exc:
            self.publish_errors += 1
            raise BrokerError("the broker is unavailable (history)") from exc

    # -- claims -------------------------------------------------------------------------------

    async def claim(self, key: str, owner: str, ttl: float) -> bool:
        redis = self._redis
        if redis is None:
            raise BrokerError("the broker is not connected")
        try:
            granted = await redis.eval(_CLAIM, 1, key, owner, max(1, int(ttl * 1000)))
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerError("the broker is unavailable") from exc
        return bool(granted)

    async def release(self, key: str, owner: str) -> None:
        redis = self._redis
        if redis is None:
            return
        with contextlib.suppress(RedisError, OSError, TimeoutError):  # it expires anyway
            await redis.eval(_RELEASE, 1, key, owner)

    # -- receive ------------------------------------------------------------------------------

    def _convert(self, raw: Any) -> BrokerMessage | _Confirmation | None:
        """A message, a subscription confirmation (its waiters are woken), or None."""
        if raw is None:
            return None
        kind = raw.get("type")
        if isinstance(kind, bytes):
            kind = kind.decode()
        if kind in ("message", "pmessage"):
            channel = raw["channel"]
            data = raw["data"]
            if isinstance(channel, bytes):
                channel = channel.decode("utf-8", "replace")
            if isinstance(data, str):
                data = data.encode()
            return BrokerMessage(channel, data)
        if kind in ("subscribe", "psubscribe"):
            name = raw["channel"]
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            key = _Confirmation(kind, name)
            for future in self._waiters.pop(key, ()):
                if not future.done():
                    future.set_result(None)
            return key
        return None

    async def get_message(self, **kwargs: Any) -> BrokerMessage | Message | None:
        """The next message, waiting up to ``timeout`` seconds (None: until one arrives; the
        default is 0). A payload published the seed's way comes back as the seed's `Message`
        (see `seed_view`).

        Raises `BrokerError` when Redis is unreachable (the next call tries to reconnect).
        """
        item = await self._next_message(kwargs.get("timeout", 0.0))
        return None if item is None else seed_view(item)

    async def _next_message(self, timeout: float | None) -> BrokerMessage | None:
        if self._buffer:
            return self._buffer.popleft()
        if self.is_closed():
            return None
        if self._sub_redis is None:
            raise BrokerError("the broker is not connected")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + max(timeout, 0.0)
        try:
            if self._pubsub is None:
                await self._open_pubsub()
                self._restored()
            pubsub = self._pubsub
            if pubsub is None:  # disconnected meanwhile
                return None
            while True:
                left = None if deadline is None else max(deadline - loop.time(), 0.0)
                async with self._read_lock:
                    if self._buffer:
                        return self._buffer.popleft()
                    if self.is_closed():
                        return None
                    raw = await self._read(pubsub, left)
                item = self._convert(raw)
                if isinstance(item, BrokerMessage):
                    return item
                # A confirmation or a PONG: keep waiting for the rest of the time.
                if deadline is not None and loop.time() >= deadline:
                    return None
        except (RedisError, OSError, TimeoutError) as exc:
            if self.is_closed():
                return None
            self._lost(exc)
            await self._drop_pubsub(self._pubsub)
            raise BrokerError("the broker is unavailable") from exc
        except RuntimeError:  # redis-py: the pubsub was reset under us (disconnect)
            if self.is_closed():
                return None
            raise

    def _lost(self, exc: BaseException) -> None:
        if self.state is not BrokerState.RECONNECTING:
            logger.warning("Redis connection lost (%s); reconnecting", exc)
        self.state = BrokerState.RECONNECTING

    def _restored(self) -> None:
        if self.is_closed():
            return
        if self.state is BrokerState.RECONNECTING:
            self.reconnects += 1
            logger.warning("Redis connection restored; subscriptions replayed")
            self.state = BrokerState.CONNECTED
            self._notify_restored()
        self.state = BrokerState.CONNECTED

    async def listen(self) -> AsyncIterator[BrokerMessage]:
        """Yield messages until `disconnect`; reconnect and resubscribe when Redis goes away.

        Reads block without a timeout: the health check is the watchdog's (`_watch`).
        """
        backoff = self.reconnect_min
        watchdog = self._start_watchdog()
        try:
            while not self.is_closed():
                if self._buffer:
                    yield self._buffer.popleft()
                    continue
                pubsub = self._pubsub
                try:
                    if pubsub is None:
                        await self._open_pubsub()
                        self._restored()
                        backoff = self.reconnect_min
                        continue
                    async with self._read_lock:
                        if self._buffer or self.is_closed():
                            continue
                        raw = await self._read(pubsub, None)
                except (RedisError, OSError, TimeoutError, BrokerError) as exc:
                    if self.is_closed():
                        return
                    self._lost(exc)
                    await self._drop_pubsub(pubsub)
                    await asyncio.sleep(backoff * (0.5 + random.random()))
                    backoff = min(backoff * 2, self.reconnect_max)
                    continue
                except RuntimeError:  # redis-py: the pubsub was reset under us (disconnect)
                    if self.is_closed():
                        return
                    raise
                item = self._convert(raw)  # None (interrupted by disconnect), a PONG: skipped
                if isinstance(item, BrokerMessage):
                    yield item
        finally:
            if watchdog is not None:
                watchdog.cancel()
                if self._watchdog is watchdog:
                    self._watchdog = None

    def _start_watchdog(self) -> asyncio.Task[None] | None:
        """Start the health check for a listener (None if one already runs)."""
        if self.is_closed() or (self._watchdog is not None and not self._watchdog.done()):
            return None
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        return self._watchdog

    async def _watch(self) -> None:
        """The health check, off the read path (one wake-up per ``health_interval``).

        Nothing read for ``health_interval``: PING. Still nothing read ``health_interval``
        after the PING while a read is blocked: interrupt that read (it raises `_NoPong`, and
        the listener's reconnect path runs). While nobody reads (the consumer is busy), an
        answer may be waiting unread: no verdict until a read blocks.
        """
        interval = self.health_interval
        recheck = min(interval, 0.25)
        pinged: PubSub | None = None  # the connection an unanswered PING went out on
        ping_at = 0.0
        while not self.is_closed():
            pubsub = self._pubsub
            now = _now()
            if pubsub is None:  # reconnecting: the listener deals with it
                pinged = None
                wake = now + interval
            elif pinged is pubsub and self._last_seen <= ping_at:  # PING not answered yet
                reader = self._reader
                if now < ping_at + interval:
                    wake = ping_at + interval
                elif reader is None or reader.done() or reader is self._stale:
                    wake = now + recheck
                else:
                    logger.warning("Redis did not answer a PING; reconnecting")
                    self.state = BrokerState.RECONNECTING
                    self._stale = reader
                    reader.cancel()
                    wake = now + recheck  # the next reader too, should this one not drop it
            elif now < self._last_seen + interval:
                pinged = None
                wake = self._last_seen + interval
            else:
                pinged, ping_at = pubsub, now
                await self._ping(pubsub)
                wake = ping_at + interval
            await asyncio.sleep(max(wake - _now(), 0.0))

    async def _read(self, pubsub: PubSub, timeout: float | None) -> Any:
        """One read of the pub/sub connection (the caller holds ``_read_lock``).

        Returns None when `disconnect` interrupted it (callers then see `is_closed`).
        """
        task = asyncio.current_task()
        self._reader = task
        try:
            raw = await pubsub.get_message(timeout=timeout)
            if raw is not None:
                self._last_seen = _now()  # the watchdog's only per-message cost
            return raw
        except asyncio.CancelledError:
            if task is None:
                raise
            stale, interrupted = self._stale is task, self._interrupted is task
            if not (stale or interrupted):
                raise
            if stale:
                self._stale = None
                task.uncancel()
            if interrupted:
                self._interrupted = None
                task.uncancel()
            if task.cancelling():  # somebody else cancelled it as well
                raise
            if interrupted:
                return None
            raise _NoPong("Redis did not answer a PING") from None
        finally:
            self._reader = None

    async def _ping(self, pubsub: PubSub) -> None:
        try:
            async with self._lock:
                if self._pubsub is not pubsub or self.is_closed():
                    return  # replaced or closed: a PING would open a new connection
                await asyncio.wait_for(pubsub.ping(), self._command_timeout)
        except (RedisError, OSError, TimeoutError):
            pass  # the next read notices

    async def _drop_pubsub(self, pubsub: PubSub | None) -> None:
        async with self._lock:
            if pubsub is not None and self._pubsub is pubsub:
                self._pubsub = None
        await _quiet_close(pubsub)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(fields: Any) -> bytes:
    """The ``d`` field of a stream entry (its only one)."""
    value = fields[1] if isinstance(fields, list) else fields.get(b"d", fields.get("d"))
    return value if isinstance(value, bytes) else str(value).encode()


def _fail(batch: list[_Publish], cause: BaseException, broker: RedisBroker) -> None:
    """Fail every publish of ``batch`` that still waits, each with its own BrokerError
    (the leader, without a future, is answered by `RedisBroker._write` itself)."""
    for _, _, future in batch:
        if future is None or future.done():
            continue
        broker.publish_errors += 1
        error = BrokerError("the broker is unavailable; the message was not published")
        error.__cause__ = cause
        future.set_exception(error)


_writers: set[asyncio.Task[None]] = set()


def _spawn_write(broker: RedisBroker, batch: list[_Publish]) -> None:
    """Write a batch whose leader was cancelled before writing it (its followers wait)."""

    async def write() -> None:
        async with broker._write_lock:
            with contextlib.suppress(BrokerError):
                await broker._write(batch)

    task = asyncio.get_running_loop().create_task(write())
    _writers.add(task)
    task.add_done_callback(_writers.discard)


async def _quiet_close(client: Any, within: float = 1.0) -> None:
    """Close a Redis client or pub/sub without raising: it may already be broken."""
    if client is None:
        return
    with contextlib.suppress(RedisError, OSError, TimeoutError, RuntimeError):
        await asyncio.wait_for(client.aclose(), within)
