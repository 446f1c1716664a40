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

__all__ = ["ClusterCommands", "SlotMap"]


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
        self, calls: Sequence[tuple[int, str, Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        """Run many ``(part, script, keys, args)`` calls: one pipeline per primary (one round
        trip each), then, one by one through `eval`, those that failed there (a redirection,
        a script the node does not know, a connection error). Raises `BrokerError`."""
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
            try:
                async with self.client(owner).pipeline(transaction=False) as pipe:
                    for i in indexes:
                        _, script, keys, args = calls[i]
                        pipe.execute_command("EVALSHA", self.sha(script), len(keys), *keys, *args)
                    replies = await pipe.execute(raise_on_error=False)
            except (RedisError, OSError, TimeoutError):
                retry += indexes
                continue
            for i, reply in zip(indexes, replies, strict=True):
                if isinstance(reply, Exception):
                    retry.append(i)
                else:
                    results[i] = reply
        for i in retry:
            results[i] = await self.eval(*calls[i])
        return results

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
