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
``max_connections``            10,000      handshake refused (HTTP 403)
``max_connections_per_user``   32          handshake refused (HTTP 403)
``rate`` / ``burst``           50/s, 100   ``rate_limited`` error frame per excess frame;
                                           close 1008 after ``rate_strikes`` (20) in a row
``handshake_timeout``          10 s        the handshake (auth, hooks) is abandoned: 403
``idle_timeout``               None (off)  close 1000 when the client sent nothing for so long
=============================  ==========  ==================================================

Keepalive pings are the ASGI server's job (uvicorn ``--ws-ping-interval``/``--ws-ping-timeout``,
20 s by default): a peer that stops answering pings is disconnected by the server. A frame is
inflated (permessage-deflate) by the server before the app sees it: serve with ``asyncws run``
(`asyncws.serve`), which sets uvicorn's ``--ws-max-size`` to ``max_frame_size``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Limits", "TokenBucket"]


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

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
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

    def take(self, now: float | None = None) -> bool:
        """Take one token; False when the bucket is empty (the frame is over the rate)."""
        now = time.monotonic() if now is None else now
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False
