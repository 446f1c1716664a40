"""Commands of one slot, run on the Redis Cluster primary that serves it.

`ClusterCommands` keeps one command client per node (publishes, claims, history and presence
scripts; the subscribing connections are `asyncws.brokers.cluster_node`'s) and runs each
command on the primary its partition maps to, following ``MOVED`` (the slot map is stale:
the owner is updated and a refresh asked for) and ``ASK`` (a slot being migrated), and
retrying ``TRYAGAIN`` (a multi-key command while the slot's keys are split between two
nodes). Scripts are sent by SHA (``EVALSHA``) and loaded on a node that does not know them.
Anything else, or too many redirections, is a `BrokerError`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AskError, MovedError, NoScriptError, RedisError, TryAgainError

from ..exceptions import BrokerError
from .cluster_layout import Address
from .cluster_node import quiet_close

__all__ = ["RETRY_CONCURRENCY", "ClusterCommands", "SlotMap"]

#: Calls of a batch retried at once after a redirection (each holds a pooled connection).
RETRY_CONCURRENCY = 32


class SlotMap(Protocol):
    """Where partitions live (the broker's view of ``CLUSTER SLOTS``)."""

    def owner(self, part: int) -> Address | None:
        """The primary serving ``part`` (None: none reachable right now)."""
        ...

    def redirected(self, part: int, addr: Address) -> None:
        """A ``MOVED`` said ``addr`` serves ``part`` now (other slots may have moved too)."""
        ...

    def kick(self) -> None:
        """Something failed: re-read the slot map soon."""
        ...


class ClusterCommands:
    """One-slot commands on the owning primary (see the module docstring)."""

    def __init__(
        self,
        slots: SlotMap,
        options: dict[str, Any],
        *,
        connect_timeout: float,
        command_timeout: float,
    ) -> None:
        self._slots = slots
        self._options = options
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._clients: dict[Address, Redis] = {}
        self._shas: dict[str, str] = {}

    def client(self, addr: Address) -> Redis:
        client = self._clients.get(addr)
        if client is None:
            client = Redis(
                host=addr[0],
                port=addr[1],
                socket_connect_timeout=self._connect_timeout,
                socket_timeout=self._command_timeout,
                retry=Retry(NoBackoff(), retries=0),
                **self._options,
            )
            self._clients[addr] = client
        return client

    async def close(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await quiet_close(client)

    def sha(self, script: str) -> str:
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = hashlib.sha1(script.encode()).hexdigest()
        return sha

    async def eval(self, part: int, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` (all ``keys`` in ``part``'s slot) on the partition's primary."""
        return await self.execute(
            part, "EVALSHA", self.sha(script), len(keys), *keys, *args, script=script
        )

    async def eval_many(
        self,
        calls: Sequence[tuple[int, str, Sequence[str], Sequence[Any]]],
        *,
        return_exceptions: bool = False,
    ) -> list[Any]:
        """Run many ``(part, script, keys, args)`` calls: one pipeline per primary (one round
        trip each; a node that did not know a script loads it and gets one more pipeline of
        those calls), then, one by one through `eval`, those that failed there (a
        redirection, a connection error). Raises `BrokerError`, or with
        ``return_exceptions`` puts each call's own `BrokerError` in its place; then a
        pipeline that failed (a node down or frozen) fails its calls at once, as one call
        would, and the redirected ones are retried concurrently (`RETRY_CONCURRENCY` at a
        time), so one slow node does not hold a batch for a timeout per call."""
        by_owner: dict[Address, list[int]] = {}
        results: list[Any] = [None] * len(calls)
        retry: list[int] = []
        for i, (part, _, _, _) in enumerate(calls):
            owner = self._slots.owner(part)
            if owner is None:
                retry.append(i)
            else:
                by_owner.setdefault(owner, []).append(i)
        for owner, indexes in by_owner.items():
            for attempt in range(2):
                try:
                    replies = await self._pipeline(owner, [calls[i] for i in indexes])
                except (RedisError, OSError, TimeoutError) as exc:
                    if not return_exceptions:
                        retry += indexes
                        break
                    self._slots.kick()
                    for i in indexes:
                        error = BrokerError("the broker is unavailable")
                        error.__cause__ = exc
                        results[i] = error
                    break
                unknown = [i for i, r in zip(indexes, replies, strict=True) if _no_script(r)]
                for i, reply in zip(indexes, replies, strict=True):
                    if isinstance(reply, Exception):
                        if not (unknown and attempt == 0 and _no_script(reply)):
                            retry.append(i)
                    else:
                        results[i] = reply
                if not unknown or attempt:
                    break
                try:  # the node lost its script cache (restarted, failed over): load, again
                    for script in {calls[i][1] for i in unknown}:
                        await self.client(owner).script_load(script)
                except (RedisError, OSError, TimeoutError):
                    retry += unknown
                    break
                indexes = unknown
        if not return_exceptions:
            for i in retry:
                results[i] = await self.eval(*calls[i])
            return results
        for start in range(0, len(retry), RETRY_CONCURRENCY):
            chunk = retry[start : start + RETRY_CONCURRENCY]
            again = await asyncio.gather(
                *(self.eval(*calls[i]) for i in chunk), return_exceptions=True
            )
            for i, result in zip(chunk, again, strict=True):
                if isinstance(result, BaseException) and not isinstance(result, BrokerError):
                    raise result
                results[i] = result
        return results

    async def _pipeline(
        self, owner: Address, calls: Sequence[tuple[int, str, Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        async with self.client(owner).pipeline(transaction=False) as pipe:
            for _, script, keys, args in calls:
                pipe.execute_command("EVALSHA", self.sha(script), len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))

    async def execute(self, part: int, *args: Any, script: str | None = None) -> Any:
        """Run a one-slot command on the primary of ``part``, following MOVED/ASK; on
        NOSCRIPT, load ``script`` and run it again."""
        addr = self._slots.owner(part)
        asking = False
        for attempt in range(5):
            if addr is None:
                self._slots.kick()
                raise BrokerError("no Redis Cluster node serves this channel right now")
            client = self.client(addr)
            try:
                if asking:
                    async with client.pipeline(transaction=False) as pipe:
                        pipe.execute_command("ASKING")
                        pipe.execute_command(*args)
                        return (await pipe.execute(raise_on_error=True))[1]
                return await client.execute_command(*args)  # type: ignore[no-untyped-call]
            except MovedError as exc:
                if exc.node_addr == addr:  # a node redirecting to itself: its config is settling
                    await asyncio.sleep(0.01)
                elif attempt:  # nodes disagree for a moment during a slot move
                    await asyncio.sleep(0.005 * attempt)
                addr = exc.node_addr
                self._slots.redirected(part, addr)
                asking = False
            except AskError as exc:
                addr, asking = exc.node_addr, True
            except TryAgainError:  # a multi-key command while the slot is being migrated
                await asyncio.sleep(0.01 * (attempt + 1))
            except NoScriptError:
                if script is None:
                    raise BrokerError("the Redis Cluster node does not know the script") from None
                try:
                    await client.script_load(script)
                except (RedisError, OSError, TimeoutError) as exc:
                    self._slots.kick()
                    raise BrokerError("the broker is unavailable") from exc
            except (RedisError, OSError, TimeoutError) as exc:
                self._slots.kick()
                raise BrokerError("the broker is unavailable") from exc
        raise BrokerError("the Redis Cluster kept redirecting the command")


def _no_script(reply: Any) -> bool:
    return isinstance(reply, NoScriptError)
