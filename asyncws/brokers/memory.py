"""`memory://`: an in-process broker, for one process and for tests.

``memory://`` gives each broker its own hub; brokers created from the same named URL
(``memory://shared``) in one process share a hub, so several managers can be tested together.
A subscriber's queue is bounded: a publisher waits when a subscriber falls behind.

One process only: ``uvicorn --workers N`` (or gunicorn) runs N processes, each with its own
hub, and a subscriber never receives what another worker publishes. `InMemoryBroker.connect`
logs a WARNING on the ``asyncws.brokers.memory`` logger when it can tell: the command line
asks for several workers (``--workers N``, ``-w N``, ``WEB_CONCURRENCY``), or another worker of
the same parent process already runs a memory broker (each worker notes its pid in a private
temporary directory). Use ``redis://`` for several processes (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import multiprocessing
import os
import re
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..history import HistoryEntry, HistoryRead, Position, new_epoch, position_line
from ..message import Message
from ..topics import TopicIndex, is_pattern
from .base import BrokerInterface, BrokerMessage, BrokerState, encode_payload, seed_view

__all__ = ["InMemoryBroker", "MemoryHub", "several_workers"]

logger = logging.getLogger("asyncws.brokers.memory")

_WORKERS_ARG = re.compile(r"^(?:--workers|-w)(?:=(\d+))?$")
_warned = False
_registered: Path | None = None


def _workers_asked(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """How many worker processes the command line (or ``WEB_CONCURRENCY``) asks for."""
    asked = 1
    for i, arg in enumerate(argv):
        m = _WORKERS_ARG.match(arg)
        if m is None:
            continue
        value = m.group(1) or (argv[i + 1] if i + 1 < len(argv) else "")
        if value.isdigit():
            asked = max(asked, int(value))
    concurrency = environ.get("WEB_CONCURRENCY", "")
    if concurrency.isdigit():
        asked = max(asked, int(concurrency))
    return asked


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


def _siblings() -> list[int]:
    """The pids of other live workers of this process's parent that run a memory broker.

    Only in a worker process started by multiprocessing (like uvicorn's ``--workers``): this
    process notes its pid under a private temporary directory named for its parent. Forked
    workers (gunicorn) are caught by the command line instead (``-w N``).
    """
    global _registered
    if multiprocessing.parent_process() is None:
        return []
    try:
        base = Path(tempfile.gettempdir()) / f"asyncws-memory-{os.getuid()}"
        base.mkdir(mode=0o700, exist_ok=True)
        if base.stat().st_uid != os.getuid() or base.is_symlink():
            return []
        family = base / str(os.getppid())
        family.mkdir(mode=0o700, exist_ok=True)
        if _registered is None:
            _registered = family / str(os.getpid())
            _registered.touch()
            atexit.register(_unregister)
        others = []
        for entry in family.iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                if _pid_alive(int(entry.name)):
                    others.append(int(entry.name))
                else:
                    entry.unlink(missing_ok=True)  # a worker that died (or --reload's last one)
        return sorted(others)
    except OSError:
        return []


def _unregister() -> None:
    if _registered is not None:
        with contextlib.suppress(OSError):
            _registered.unlink(missing_ok=True)
            _registered.parent.rmdir()  # fails while other workers are registered


def several_workers() -> str | None:
    """Why this process seems to be one of several workers sharing nothing, or None."""
    others = _siblings()
    if others:
        return f"other worker process(es) {', '.join(map(str, others))} run one too"
    asked = _workers_asked(sys.argv, os.environ)
    if asked > 1:
        return f"the server was started with {asked} workers"
    return None


def _warn_if_several_workers() -> None:
    global _warned
    if _warned:
        return
    reason = several_workers()
    if reason is None:
        return
    _warned = True
    logger.warning(
        "memory:// broker in process %d, but %s: memory:// works inside ONE process, so "
        "subscribers miss what the other workers publish. Use a Redis broker "
        "(broker='redis://...', or ASYNCWS_BROKER_URL) to run several workers.",
        os.getpid(),
        reason,
    )


class _Stream:
    """The history of one concrete topic in a hub (see `asyncws.history`)."""

    __slots__ = ("entries", "epoch", "expires", "keys", "offset")

    def __init__(self, size: int) -> None:
        self.epoch = new_epoch()
        self.offset = 0
        self.entries: deque[HistoryEntry] = deque(maxlen=size)
        self.expires = 0.0
        self.keys: dict[str, tuple[int, float]] = {}  # idempotency key -> (offset, expiry)


class MemoryHub:
    """Routes published messages to the in-memory brokers subscribed to them."""

    def __init__(self) -> None:
        self.index: TopicIndex[InMemoryBroker] = TopicIndex()
        self.claims: dict[str, tuple[str, float]] = {}  # key -> (owner, expiry)
        self.streams: dict[str, _Stream] = {}

    def stream(self, key: str, size: int | None) -> _Stream:
        """The live stream at ``key``: a new one (a new epoch) when it expired or never was."""
        now = time.monotonic()
        stream = self.streams.get(key)
        if stream is not None and stream.expires <= now:
            stream = None
        if stream is None:
            stream = self.streams[key] = _Stream(size or 1)
            stream.expires = now + 3600.0  # an epoch read before any publish: kept a while
        elif size is not None and stream.entries.maxlen != size:
            stream.entries = deque(stream.entries, maxlen=size)
        return stream

    def route(self, channel: str) -> set[InMemoryBroker]:
        return self.index.match(channel)


class InMemoryBroker(BrokerInterface):
    """A broker living in this process. ``maxsize`` bounds each subscriber's pending messages."""

    _named_hubs: ClassVar[dict[str, MemoryHub]] = {}

    def __init__(self, name: str = "", *, maxsize: int = 65536) -> None:
        if name:
            self.hub = self._named_hubs.setdefault(name, MemoryHub())
        else:
            self.hub = MemoryHub()
        self._queue: asyncio.Queue[BrokerMessage | None] = asyncio.Queue(maxsize)
        self._channels: set[str] = set()

    async def connect(self) -> None:
        _warn_if_several_workers()
        if self.state is BrokerState.CLOSED:
            # Connected again after disconnect: drop what was pending (and the wake-up None).
            self._queue = asyncio.Queue(self._queue.maxsize)
        self.state = BrokerState.CONNECTED

    async def disconnect(self) -> None:
        if self.state is BrokerState.CLOSED:
            return
        self.hub.index.remove_all(self, tuple(self._channels))
        self._channels.clear()
        self.state = BrokerState.CLOSED
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)  # wake a blocked listener

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        self.hub.index.add(channel, self)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self.hub.index.remove(channel, self)

    async def publish(self, channel: str, message: Any) -> None:
        if is_pattern(channel):
            raise ValueError("cannot publish on a pattern")
        item = BrokerMessage(channel, encode_payload(message))
        for broker in self.hub.route(channel):
            await broker._queue.put(item)

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
        stream = self.hub.stream(key, size)
        now = time.monotonic()
        if idempotency_key is not None:
            seen = stream.keys.get(idempotency_key)
            if seen is not None and seen[1] > now:
                return Position(seen[0], stream.epoch)
        stream.offset += 1
        stream.entries.append(HistoryEntry(stream.offset, bytes(message)))
        stream.expires = now + ttl
        if idempotency_key is not None:
            if len(stream.keys) > 4 * size:  # bounded: forget the expired ones
                stream.keys = {k: v for k, v in stream.keys.items() if v[1] > now}
            stream.keys[idempotency_key] = (stream.offset, now + ttl)
        await self.publish(channel, position_line(stream.offset, stream.epoch) + message)
        return Position(stream.offset, stream.epoch)

    async def read_history(
        self, channel: str, key: str, *, since: int | None, limit: int
    ) -> HistoryRead:
        stream = self.hub.stream(key, None)
        entries = stream.entries
        first = entries[0].offset if entries else 0
        if limit <= 0:
            chosen: list[HistoryEntry] = []
        elif since is None:
            chosen = list(entries)[-limit:]
        else:
            skip = max(0, since + 1 - first) if entries else 0
            chosen = list(itertools.islice(entries, skip, skip + limit))
        return HistoryRead(Position(stream.offset, stream.epoch), first, chosen)

    async def claim(self, key: str, owner: str, ttl: float) -> bool:
        now = time.monotonic()
        held = self.hub.claims.get(key)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self.hub.claims[key] = (owner, now + ttl)
        return True

    async def release(self, key: str, owner: str) -> None:
        held = self.hub.claims.get(key)
        if held is not None and held[0] == owner:
            del self.hub.claims[key]

    async def get_message(self, **kwargs: Any) -> BrokerMessage | Message | None:
        """The next message (see `BrokerInterface.get_message`); ``timeout`` defaults to 0."""
        timeout: float | None = kwargs.get("timeout", 0.0)
        if self.state is BrokerState.CLOSED:
            return None
        try:
            if timeout is None:
                item = await self._queue.get()
            elif timeout <= 0:
                item = self._queue.get_nowait()
            else:
                item = await asyncio.wait_for(self._queue.get(), timeout)
        except (TimeoutError, asyncio.QueueEmpty):
            return None
        return None if item is None else seed_view(item)

    async def listen(self) -> AsyncIterator[BrokerMessage]:
        queue = self._queue
        while self.state is not BrokerState.CLOSED:
            item = await queue.get()
            if item is None:
                return
            yield item
