"""Per-connection and per-instance limits, with documented defaults.

=============================  ==========  ==================================================
limit                          default     over it
=============================  ==========  ==================================================
``max_frame_size``             1 MiB       close 1009
``max_subscriptions``          256         ``too_many_subscriptions`` error frame
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
                                           close 1008 after ``rate_strikes`` (20) in a row
``max_recipients``             16          seed ``send_by_conn_id``: distinct ids per frame
                                           (duplicates count once); more: ``invalid_frame``
``max_fanout_bytes``           1 MiB       recipients x payload bytes one client frame may
                                           publish to the broker; more: ``rate_limited``
``fanout_bytes_rate``          4 MiB/s     the same, per connection and second (burst: one
                                           second's worth); more: ``rate_limited``
``handshake_timeout``          10 s        the handshake (auth, hooks) is abandoned: 403
``idle_timeout``               None (off)  close 1000 when the client sent nothing for so long
=============================  ==========  ==================================================

Each recipient of a seed ``send_by_conn_id`` also takes one token of the frame rate
(``rate``/``burst``): one frame naming 16 connections costs as much as 16 frames.

Keepalive pings are the ASGI server's job (uvicorn ``--ws-ping-interval``/``--ws-ping-timeout``,
20 s by default): a peer that stops answering pings is disconnected by the server. A frame is
inflated (permessage-deflate) by the server before the app sees it: serve with ``asyncws run``
(`asyncws.serve`), which sets uvicorn's ``--ws-max-size`` to ``max_frame_size``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .exceptions import ProtocolError, RateLimitedError

__all__ = ["FanoutBudget", "Limits", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of an `AsyncWS` app (see the module docstring for what happens over each)."""

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
