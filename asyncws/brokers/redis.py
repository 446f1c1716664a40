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
Subscriptions and claims made in one loop tick are batched (`redis_claims`): one
``SUBSCRIBE`` with many channels and one wait for their confirmations; one pipelined write of
claims.

Modules: the pub/sub connection's subscriptions, their confirmations, its readers and its
reconnects share one lock and one reader, kept here (why this file passes 600 lines); publish
batching (`redis_batch`), claim and subscription batching (`redis_claims`), the read and its watchdog (`redis_watchdog`) and the Lua scripts
(`redis_scripts`) are modules of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
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
from ..history import POSITION_PREFIX, HistoryRead, Position, new_epoch
from ..message import Message
from ..topics import is_pattern
from . import redis_scripts as scripts
from .base import BrokerInterface, BrokerMessage, BrokerState, encode_payload, seed_view
from .redis_batch import PublishBatcher
from .redis_claims import (
    ClaimBatcher,
    PubSubCommand,
    SubscriptionBatcher,
    claim_within,
    release_quietly,
    runs,
)
from .redis_watchdog import REPLY_LISTS, ReadWatch, is_published, settle

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


class _Confirmation(NamedTuple):
    """A (p)subscribe confirmation read from the pub/sub connection."""

    kind: str  # "subscribe" or "psubscribe"
    name: str  # the channel, or the glob


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
        self._batcher = PublishBatcher(lambda: self._redis, flush_delay)
        self._claims = ClaimBatcher(lambda: self._redis)
        self._pubsub_commands = SubscriptionBatcher(self._send_commands)
        self._confirming: set[asyncio.Task[None]] = set()  # waits for batches' confirmations
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
        self._guard = ReadWatch(
            current=lambda: self._pubsub,
            ping=self._ping,
            closed=self.is_closed,
            on_stale=self._gave_up,
        )
        self._watchdog: asyncio.Task[None] | None = None  # runs `ReadWatch.watch`
        self._keepalive = f"asyncws:keepalive:{uuid.uuid4().hex}"
        #: Times the listener lost Redis and got it back; exposed for metrics.
        self.reconnects = 0
        self._history_errors = 0
        self._scripts: dict[str, Any] = {}  # the history scripts, run on any client
        self._history_slots = asyncio.Semaphore(history_concurrency)

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
        await self._guard.interrupt(self._read_lock)
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
            self._guard.seen()
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
        """Send (P)(UN)SUBSCRIBE, batched with those of this loop tick (`_send_commands`);
        if Redis is down, the set is replayed on reconnect.

        A (p)subscribe waits (bounded) for Redis' confirmation.
        """
        confirmed = await self._pubsub_commands.submit((name, arg))
        if confirmed is not None:
            await asyncio.shield(confirmed)  # shared by the batch: never cancel it

    async def _send_commands(self, items: list[PubSubCommand]) -> asyncio.Task[None] | None:
        """Send a batch of (P)(UN)SUBSCRIBEs, in order, consecutive ones of a kind as one
        command; return the task that waits (bounded) until Redis confirmed every
        (p)subscribe of it (None when there is none)."""
        loop = asyncio.get_running_loop()
        waiting: list[tuple[_Confirmation, asyncio.Future[None]]] = []
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return None
            for name, args in runs(items):
                pending: list[tuple[_Confirmation, asyncio.Future[None]]] = []
                if name in ("subscribe", "psubscribe"):
                    for arg in args:
                        key, future = _Confirmation(name, arg), loop.create_future()
                        self._waiters.setdefault(key, []).append(future)
                        pending.append((key, future))
                try:
                    async with asyncio.timeout(self._command_timeout):
                        await getattr(pubsub, name)(*args)
                except (RedisError, OSError, TimeoutError) as exc:
                    logger.warning(
                        "Redis %s of %d (%r...) failed (%s); replayed on reconnect",
                        name,
                        len(args),
                        args[0],
                        exc,
                    )
                    for key, future in (*waiting, *pending):
                        self._forget_waiter(key, future)
                    return None
                waiting += pending
        if not waiting:
            return None
        task = loop.create_task(self._confirmed(pubsub, waiting))
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)
        return task

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
        self, pubsub: PubSub, waiting: list[tuple[_Confirmation, asyncio.Future[None]]]
    ) -> None:
        """Wait until every future of ``waiting`` is resolved by whoever reads the connection
        (or read it here)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._command_timeout
        futures = [future for _, future in waiting]
        every: asyncio.Future[Any] = futures[0] if len(futures) == 1 else asyncio.gather(*futures)
        try:
            while not every.done() and self._pubsub is pubsub:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError
                if self._read_lock.locked():
                    # A reader resolves it; look again now and then in case it stops reading.
                    await asyncio.wait([every], timeout=min(left, 0.05))
                    continue
                async with self._read_lock:
                    if every.done() or self._pubsub is not pubsub:
                        break
                    raw = await self._guard.read(pubsub, left)
                    item = self._convert(raw)
                    if isinstance(item, BrokerMessage):
                        self._buffer.append(item)
        except (RedisError, OSError, TimeoutError, RuntimeError) as exc:
            # Redis went away: the subscription is replayed when the listener reconnects.
            left_over = [key for key, future in waiting if not future.done()]
            logger.warning(
                "Redis did not confirm %d subscriptions (%s %r...) (%r)",
                len(left_over),
                *(left_over[0] if left_over else ("subscribe", "?")),
                exc,
            )
        finally:
            for key, future in waiting:
                self._forget_waiter(key, future)

    # -- publish ------------------------------------------------------------------------------

    async def publish(self, channel: str, message: Any) -> None:
        """Publish; returns once Redis took it. Raises `BrokerError` if it did not.

        Publishes are batched (`asyncws.brokers.redis_batch`): those made in one loop tick,
        or while a batch is in flight, go out in one pipelined round trip, in the order they
        were made; a failed batch fails each of its publishes with its own `BrokerError`.
        """
        message = encode_payload(message)  # a dict too, as the seed published it
        if self._redis is None:
            raise BrokerError("the broker is not connected")
        await self._batcher.publish(channel, message)

    @property
    def flush_delay(self) -> float | None:
        """How long the first publish of a batch waits for more (see `publish`)."""
        return self._batcher.flush_delay

    @property
    def publish_batches(self) -> int:
        """Pipelined writes that carried publishes (a batch may hold one or many)."""
        return self._batcher.batches

    @property
    def publish_errors(self) -> int:
        """Publishes (plain or history) that raised `BrokerError`."""
        return self._batcher.errors + self._history_errors

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
        """One Lua script (`redis_scripts.APPEND`): XADD (trimmed to ``size``) + PUBLISH of
        the message with its offset.

        Safe to retry: the command client retries once when Redis did not answer (a
        timeout, a connection lost), and the script may have run already. Without an
        ``idempotency_key`` each call gets a key of its own for that retry window, so a
        second run returns the first position instead of storing and publishing the event
        again under a new offset."""
        ttl_ms = max(1, int(ttl * 1000))
        if idempotency_key is None:
            keys = [*self.history_keys(key, None), f"{key}:a:{uuid.uuid4().hex}"]
            key_ms = self._retry_window_ms
        else:
            keys, key_ms = self.history_keys(key, idempotency_key), ttl_ms
        args = (channel, message, size, ttl_ms, new_epoch(), POSITION_PREFIX, key_ms)
        return scripts.appended(await self._history_eval(self._redis, scripts.APPEND, keys, args))

    async def read_history(
        self, channel: str, key: str, *, since: int | None, limit: int
    ) -> HistoryRead:
        keys = self.history_keys(key, None)
        args = (
            "" if since is None else since,
            max(0, limit),
            new_epoch(),
            scripts.READ_META_TTL_MS,
        )
        reply = await self._history_eval(self._redis, scripts.READ, keys, args)
        return scripts.history_read(reply, since)

    @staticmethod
    def history_keys(key: str, idempotency_key: str | None) -> list[str]:
        """The stream, its meta hash and (when given) the idempotency key of a history
        ``key``."""
        keys = [f"{key}:s", f"{key}:m"]
        if idempotency_key is not None:
            keys.append(f"{key}:i:{idempotency_key}")
        return keys

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
            self._history_errors += 1
            raise BrokerError("the broker is unavailable (history)") from exc

    # -- claims -------------------------------------------------------------------------------

    async def claim(self, key: str, owner: str, ttl: float) -> bool:
        """Claim ``key`` (`redis_scripts.CLAIM`), batched with the claims of this loop tick:
        one pipelined write (`redis_claims`). Raises `BrokerError` when Redis cannot answer."""
        if self._redis is None:
            raise BrokerError("the broker is not connected")
        within = self._connect_timeout + 2 * self._command_timeout
        return await claim_within(self._claims, key, owner, ttl, within)

    async def release(self, key: str, owner: str) -> None:
        if self._redis is None:
            return
        await release_quietly(self._claims, key, owner)

    @property
    def claim_batches(self) -> int:
        """Pipelined writes that carried claims or releases."""
        return self._claims.batches

    @property
    def subscribe_batches(self) -> int:
        """Batches of (P)(UN)SUBSCRIBEs sent (one command per run of a kind in each)."""
        return self._pubsub_commands.batches

    # -- receive ------------------------------------------------------------------------------

    def _convert(self, raw: Any) -> BrokerMessage | _Confirmation | None:
        """A message, a subscription confirmation (its waiters are woken), or None."""
        if raw is None:
            return None
        if type(raw) in REPLY_LISTS:  # a published message as Redis sent it (`next_reply`)
            channel, data = raw[-2], raw[-1]  # [kind, (glob,) channel, data]
            if type(channel) is bytes:
                try:
                    channel = channel.decode()
                except UnicodeDecodeError:
                    channel = channel.decode("utf-8", "replace")
            return _new_tuple(BrokerMessage, (channel, _as_bytes(data)))
        kind = raw.get("type")
        if isinstance(kind, bytes):
            kind = kind.decode()
        if kind in ("message", "pmessage"):
            channel = raw["channel"]
            data = raw["data"]
            if isinstance(channel, bytes):
                channel = channel.decode("utf-8", "replace")
            return BrokerMessage(channel, _as_bytes(data))
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
                    raw = await self._guard.read(pubsub, left)
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

        Reads block without a timeout: the health check is the watchdog's (`ReadWatch`).
        """
        backoff = self.reconnect_min
        watchdog = self._start_watchdog()
        try:
            while self.state is not _CLOSED:
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
                    # What the last read left in the parser comes first, without the lock
                    # and the five coroutines of a read (`buffered_reply`).
                    raw = None if self._read_lock.locked() else self._guard.take(pubsub)
                    if raw is None:
                        async with self._read_lock:
                            if self._buffer or self.state is _CLOSED:
                                continue
                            raw = await self._guard.read(pubsub, None)
                    elif not is_published(raw):
                        raw = await settle(pubsub, raw)
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
                if type(item) is BrokerMessage:
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
        watch = self._guard.watch(self.health_interval)
        self._watchdog = asyncio.get_running_loop().create_task(watch)
        return self._watchdog

    def _gave_up(self) -> None:
        """The watchdog gave up on the blocked read (it raises `NoPong`)."""
        self.state = BrokerState.RECONNECTING

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


_CLOSED = BrokerState.CLOSED  # read once per message by the listener
# Builds a `BrokerMessage` without the Python-level ``__new__`` namedtuple generates (the
# listener builds one per message): ``_new_tuple(BrokerMessage, (channel, data))``.
_new_tuple = tuple.__new__


def _as_bytes(data: Any) -> bytes:
    """A message's payload as bytes (a client built with ``decode_responses`` gives str)."""
    return data.encode() if isinstance(data, str) else data


async def _quiet_close(client: Any, within: float = 1.0) -> None:
    """Close a Redis client or pub/sub without raising: it may already be broken."""
    if client is None:
        return
    with contextlib.suppress(RedisError, OSError, TimeoutError, RuntimeError):
        await asyncio.wait_for(client.aclose(), within)
