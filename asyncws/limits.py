"""Per-connection and per-instance limits, with documented defaults: the fields of `Limits`.

=============================  ==========  ==================================================
field                          default     over it
=============================  ==========  ==================================================
``max_frame_size``             1 MiB       close 1009
``max_subscriptions``          256         ``too_many_subscriptions`` error frame
``max_queue``                  2,048       outgoing messages queued for one connection while
                                           it pushes back; more: ``slow_consumer`` applies
``max_queue_bytes``            1 MiB       the same bound in bytes of frames
``slow_consumer``              ``close``   ``"close"``: close 1013; ``"drop_oldest"``: drop
                                           the oldest queued messages until it fits
``max_wildcards``              32          ``too_many_subscriptions``: wildcard (``+``/``#``)
                                           subscriptions per connection
``max_wildcards_per_user``     64          ``too_many_subscriptions``: distinct wildcard
                                           subscriptions of one user on this instance
``max_wildcards_per_instance`` 1,000       ``too_many_subscriptions``: distinct wildcard
                                           patterns this instance holds (each is a Redis
                                           PSUBSCRIBE that every PUBLISH is matched against)
``max_connections``            10,000      handshake refused (HTTP 503); the slot is held
                                           while ``authenticate`` runs
``max_connections_per_user``   32          handshake refused (HTTP 403); per instance
``rate`` / ``burst``           50/s, 100   ``rate_limited`` error frame per excess frame;
                                           close 1008 at the next one after ``rate_strikes``
                                           (20) in a row
``max_recipients``             16          seed ``send_by_conn_id``: distinct ids per frame
                                           (duplicates count once); more: ``invalid_frame``
``max_fanout_bytes``           1 MiB       recipients x payload bytes one client frame may
                                           publish to the broker; more: ``rate_limited``
``fanout_bytes_rate``          4 MiB/s     the same, per connection and second (burst: one
                                           second's worth); more: ``rate_limited``
``handshake_timeout``          10 s        the handshake (auth, hooks) is abandoned: 403
``idle_timeout``               None (off)  close 1000 when the client sent nothing for so long
=============================  ==========  ==================================================

``AsyncWS(limits=Limits(...))`` sets them; fields left out keep their defaults. The separate
``max_queue``, ``max_queue_bytes``, ``slow_consumer``, ``max_frame_size`` and
``max_subscriptions`` arguments of `AsyncWS` still work, with a ``DeprecationWarning``
(`Limits.with_arguments`). A `WebSocketManager` built by hand takes the queue, frame and
subscription bounds as its own arguments (the seed's API) and reads the rest from its
``limits``.

Each recipient of a seed ``send_by_conn_id`` also takes one token of the frame rate
(``rate``/``burst``): one frame naming 16 connections costs as much as 16 frames.

Keepalive pings are the ASGI server's job (uvicorn ``--ws-ping-interval``/``--ws-ping-timeout``,
20 s by default): a peer that stops answering pings is disconnected by the server. A frame is
inflated (permessage-deflate) by the server before the app sees it: serve with ``asyncws run``
(`asyncws.serve`), which sets uvicorn's ``--ws-max-size`` to ``max_frame_size``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .exceptions import ProtocolError, RateLimitedError

if TYPE_CHECKING:
    from .connection import SlowConsumerPolicy

#: The arguments of `AsyncWS` that are fields of `Limits` now (deprecated as arguments).
DEPRECATED_ARGUMENTS = (
    "max_queue",
    "max_queue_bytes",
    "slow_consumer",
    "max_frame_size",
    "max_subscriptions",
)

__all__ = ["DEPRECATED_ARGUMENTS", "FanoutBudget", "Limits", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of an `AsyncWS` app: ``AsyncWS(limits=Limits(max_connections=500))``.

    Frozen: derive a variant with `dataclasses.replace`. The module docstring
    (`asyncws.limits`) says what happens over each limit.

    Attributes:
        max_connections: Connections per instance (handshakes in progress count).
        max_connections_per_user: Connections per user id, per instance.
        rate: Frames per second a connection may send (token bucket refill).
        burst: Frames a connection may send at once (token bucket size).
        rate_strikes: Frames over the rate in a row answered with ``rate_limited`` before
            the connection is closed with 1008.
        handshake_timeout: Seconds the handshake (``authenticate``, ``on_connect``) may take.
        idle_timeout: Seconds without a client frame before the connection is closed with
            1000; None: never.
        max_wildcards: Wildcard subscriptions per connection.
        max_wildcards_per_user: Distinct wildcard subscriptions of one user, per instance.
        max_wildcards_per_instance: Distinct wildcard patterns one instance holds.
        max_recipients: Distinct connection ids one seed ``send_by_conn_id`` frame may name.
        max_fanout_bytes: Recipients x payload bytes one client frame may publish.
        fanout_bytes_rate: The same, per connection and second.
        max_queue: Outgoing messages queued for a connection that pushes back.
        max_queue_bytes: The same bound in bytes of frames.
        slow_consumer: What happens when a message would cross either queue bound:
            ``"close"`` (close 1013) or ``"drop_oldest"``.
        max_frame_size: The largest client frame; bigger ones close the connection with
            1009. asyncws counts the characters of a text frame (bytes of a binary one);
            ``asyncws run`` also makes it uvicorn's ``--ws-max-size``, in bytes.
        max_subscriptions: Subscriptions per connection.
    """

    max_connections: int = 10_000
    max_connections_per_user: int = 32
    rate: float = 50.0
    burst: int = 100
    rate_strikes: int = 20
    handshake_timeout: float = 10.0
    idle_timeout: float | None = None
    max_wildcards: int = 32
    max_wildcards_per_user: int = 64
    max_wildcards_per_instance: int = 1000
    max_recipients: int = 16
    max_fanout_bytes: int = 1 << 20
    fanout_bytes_rate: float = float(4 << 20)
    max_queue: int = 2048
    max_queue_bytes: int = 1 << 20
    slow_consumer: SlowConsumerPolicy = "close"
    max_frame_size: int = 1 << 20
    max_subscriptions: int = 256

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        if self.max_recipients < 1 or self.max_fanout_bytes < 1 or self.fanout_bytes_rate <= 0:
            raise ValueError("max_recipients, max_fanout_bytes and fanout_bytes_rate must be > 0")
        if (
            min(self.max_wildcards, self.max_wildcards_per_user, self.max_wildcards_per_instance)
            < 0
        ):
            raise ValueError("wildcard limits must be >= 0")
        if min(self.max_queue, self.max_queue_bytes, self.max_frame_size) < 1:
            raise ValueError("max_queue, max_queue_bytes and max_frame_size must be > 0")
        if self.max_subscriptions < 0:
            raise ValueError("max_subscriptions must be >= 0")
        if self.slow_consumer not in ("close", "drop_oldest"):
            raise ValueError("slow_consumer must be 'close' or 'drop_oldest'")

    @classmethod
    def with_arguments(cls, limits: Limits | None, **given: Any) -> Limits:
        """``limits`` (or the defaults) with the deprecated separate arguments of `AsyncWS`
        folded in (`DEPRECATED_ARGUMENTS`; a value of None means not given).

        Each one given overrides the field of the same name, so ``AsyncWS(max_frame_size=
        100)`` keeps working as it did, and warns (one ``DeprecationWarning`` naming them,
        pointing at the code that called `AsyncWS`).
        """
        base = limits if limits is not None else cls()
        used = {name: value for name, value in given.items() if value is not None}
        unknown = set(used) - set(DEPRECATED_ARGUMENTS)
        if unknown:
            raise TypeError(f"not a deprecated limit argument: {', '.join(sorted(unknown))}")
        if not used:
            return base
        names = ", ".join(f"{name}=" for name in used)
        fields = ", ".join(f"{name}=..." for name in used)
        warnings.warn(
            f"AsyncWS({names}) is deprecated: pass limits=Limits({fields})",
            DeprecationWarning,
            stacklevel=3,
        )
        return replace(base, **used)


class TokenBucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second. Not thread-safe."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self, now: float | None = None, n: float = 1.0) -> bool:
        """Take ``n`` tokens (one by default); False, taking none, when fewer are left (the
        frame is over the rate)."""
        now = time.monotonic() if now is None else now
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= n:
            self._tokens = tokens - n
            return True
        self._tokens = tokens
        return False


class FanoutBudget:
    """What one connection's frames may make the server publish to the broker.

    `charge` is called once per client frame that publishes, with the number of broker
    messages it becomes (its recipients) and the payload bytes of each. It raises, and
    nothing is published, when the frame names more than ``max_recipients`` recipients
    (`ProtocolError`, ``invalid_frame``), when recipients x bytes is over ``max_fanout_bytes``
    or over what is left of ``fanout_bytes_rate`` this second (`RateLimitedError`), or, when
    ``count_recipients`` is set, when the recipients are over the frame rate (each one costs
    a frame). Pure: no I/O, the clock is passed in by tests.
    """

    __slots__ = ("bytes", "frames", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.frames = TokenBucket(limits.rate, limits.burst)
        burst = max(limits.max_fanout_bytes, int(limits.fanout_bytes_rate))
        self.bytes = TokenBucket(limits.fanout_bytes_rate, burst)

    def charge(
        self,
        recipients: int,
        nbytes: int,
        *,
        count_recipients: bool = False,
        now: float | None = None,
    ) -> None:
        limits = self.limits
        if recipients > limits.max_recipients:
            raise ProtocolError(f"at most {limits.max_recipients} recipients per frame")
        total = recipients * nbytes
        if total > limits.max_fanout_bytes:
            raise RateLimitedError(
                f"this frame would publish {total} bytes (recipients x payload); "
                f"at most {limits.max_fanout_bytes} per frame"
            )
        now = time.monotonic() if now is None else now
        if count_recipients and not self.frames.take(now, recipients):
            raise RateLimitedError(f"over {limits.rate:g} recipients per second; slow down")
        if not self.bytes.take(now, total):
            raise RateLimitedError(
                f"over {limits.fanout_bytes_rate:.0f} published bytes per second; slow down"
            )
