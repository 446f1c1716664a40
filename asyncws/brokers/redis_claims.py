"""Batched claims and pub/sub subscriptions for `RedisBroker` (`redis_batch.TickBatcher`).

A connection storm (an instance restart behind a load balancer: everyone reconnects at once)
with ids the clients chose costs each connection a claim (`BrokerInterface.claim`) and a
``SUBSCRIBE`` of its own channel. Made one by one, the claims took a pooled connection each:
past the pool's 100 connections redis-py refused them (``MaxConnectionsError``), the claim
failed and the server replaced the client's id with one of its own. Batched, the claims and
releases made in one loop tick are one pipelined write (``EVALSHA`` of `redis_scripts.CLAIM`
or `RELEASE` each, one read of all the answers), and the (P)(UN)SUBSCRIBEs of one tick are one
command per run of the same kind (``SUBSCRIBE c1 c2 ...``) with one wait for Redis to confirm
them all. Each caller still gets its own answer; a batch that fails fails each of its calls
with its own `BrokerError`. At most `redis_batch.MAX_BATCH` calls go in one batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from ..exceptions import BrokerError
from . import redis_scripts as scripts
from .redis_batch import TickBatcher

if TYPE_CHECKING:
    from .cluster_commands import ClusterCommands

__all__ = [
    "ClaimBatcher",
    "ClusterClaimBatcher",
    "SubscriptionBatcher",
    "claim_within",
    "release_quietly",
    "runs",
]

#: A claim or a release: ("claim" or "release", key, owner, ttl in ms (0 for a release)).
Claim = tuple[str, str, str, int]
#: A pub/sub command: ("subscribe", "psubscribe", "unsubscribe" or "punsubscribe", name).
PubSubCommand = tuple[str, str]

_CONFIRMED = ("subscribe", "psubscribe")  # Redis confirms these; we wait for it
_SCRIPTS = {"claim": scripts.CLAIM, "release": scripts.RELEASE}
_SHAS = {op: hashlib.sha1(text.encode()).hexdigest() for op, text in _SCRIPTS.items()}


async def claim_within(
    claims: TickBatcher[Claim, int], key: str, owner: str, ttl: float, within: float
) -> bool:
    """Claim ``key`` for ``owner`` (``ttl`` seconds) through ``claims``, waiting at most
    ``within`` seconds, even behind batches that wait for a frozen Redis (each one its
    timeout): `BrokerError` when Redis did not answer in time."""
    try:
        async with asyncio.timeout(within):
            return bool(await claims.submit(("claim", key, owner, max(1, int(ttl * 1000)))))
    except TimeoutError as exc:
        raise BrokerError("the broker did not answer the claim in time") from exc


async def release_quietly(claims: TickBatcher[Claim, int], key: str, owner: str) -> None:
    """Release ``key`` if ``owner`` holds it; a failure is ignored (the claim expires)."""
    with contextlib.suppress(BrokerError):
        await claims.submit(("release", key, owner, 0))


class ClaimBatcher(TickBatcher[Claim, int]):
    """Claims and releases on ``client()`` (the broker's command client), one pipelined
    write per batch; each answer is the script's (1: granted or released, 0: not)."""

    shielded = True  # one connection's handshake cancelled must not fail the others' claims

    def __init__(self, client: Callable[[], Redis | None]) -> None:
        super().__init__(flush_delay=0.0)
        self._client = client
        self._loaded = False  # the scripts are in Redis's cache (as far as we know)

    async def write(self, items: list[Claim]) -> list[int | BaseException]:
        redis = self._client()
        if redis is None:
            raise BrokerError("the broker is not connected")
        results = await self._run(redis, items)
        # Redis lost its script cache (restarted, SCRIPT FLUSH): load and run those again.
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            self._loaded = False
            again = await self._run(redis, [items[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return [r if isinstance(r, BaseException) else int(r) for r in results]

    async def _run(self, redis: Redis, items: list[Claim]) -> list[Any]:
        """One pipelined write: the items' EVALSHAs (after SCRIPT LOADs, the first time)."""
        pipe = redis.pipeline(transaction=False)
        loads = 0 if self._loaded else len(_SCRIPTS)
        if loads:
            for text in _SCRIPTS.values():
                pipe.script_load(text)
        for op, key, owner, ttl_ms in items:
            if op == "claim":
                pipe.evalsha(_SHAS[op], 1, key, owner, ttl_ms)
            else:
                pipe.evalsha(_SHAS[op], 1, key, owner)
        results = list(await pipe.execute(raise_on_error=False))
        if loads and not any(isinstance(r, BaseException) for r in results[:loads]):
            self._loaded = True
        return results[loads:]

    def failure(self, cause: BaseException | None) -> BrokerError:
        error = BrokerError("the broker is unavailable (claim)")
        error.__cause__ = cause
        return error


class ClusterClaimBatcher(TickBatcher[Claim, int]):
    """`ClaimBatcher` for Redis Cluster: one pipeline per primary per batch
    (`ClusterCommands.eval_many`: redirections and unknown scripts handled there).
    ``locate`` maps a claim key to its partition and its hash-tagged name."""

    shielded = True

    def __init__(self, commands: ClusterCommands, locate: Callable[[str], tuple[int, str]]) -> None:
        super().__init__(flush_delay=0.0)
        self._commands = commands
        self._locate = locate

    async def write(self, items: list[Claim]) -> list[int | BaseException]:
        calls: list[tuple[int, str, tuple[str], tuple[Any, ...]]] = []
        for op, key, owner, ttl_ms in items:
            part, name = self._locate(key)
            args: tuple[Any, ...] = (owner, ttl_ms) if op == "claim" else (owner,)
            calls.append((part, _SCRIPTS[op], (name,), args))
        results = await self._commands.eval_many(calls, return_exceptions=True)
        return [r if isinstance(r, BaseException) else int(r) for r in results]

    def failure(self, cause: BaseException | None) -> BrokerError:
        error = BrokerError("the broker is unavailable (claim)")
        error.__cause__ = cause
        return error


class SubscriptionBatcher(TickBatcher[PubSubCommand, "asyncio.Task[None] | None"]):
    """(P)(UN)SUBSCRIBEs of one tick, sent by ``send`` (the broker's: it knows the pub/sub
    connection and its confirmations) in the order they were made. ``send`` returns the task
    that waits for the batch's confirmations (None: nothing to wait for): each (p)subscribe
    gets it and awaits it, outside the batcher, so the next batch is sent meanwhile."""

    shielded = True  # one connection's handshake cancelled must not fail the others'

    def __init__(
        self, send: Callable[[list[PubSubCommand]], Awaitable[asyncio.Task[None] | None]]
    ) -> None:
        super().__init__(flush_delay=0.0)
        self._send = send

    async def write(
        self, items: list[PubSubCommand]
    ) -> list[asyncio.Task[None] | BaseException | None]:
        confirmed = await self._send(items)
        return [confirmed if command in _CONFIRMED else None for command, _ in items]

    def failure(self, cause: BaseException | None) -> BrokerError:
        error = BrokerError("the broker is unavailable (subscribe)")
        error.__cause__ = cause
        return error


def runs(items: list[PubSubCommand]) -> list[tuple[str, list[str]]]:
    """Consecutive commands of one kind as one: [(command, [names...]), ...], in order."""
    out: list[tuple[str, list[str]]] = []
    for command, name in items:
        if out and out[-1][0] == command:
            out[-1][1].append(name)
        else:
            out.append((command, [name]))
    return out
