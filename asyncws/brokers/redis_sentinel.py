"""`redis+sentinel://`: one Redis primary found, and followed, through Redis Sentinel.

URL: ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``
(``rediss+sentinel://`` for TLS to the data nodes). The hosts are the sentinels; ``service`` is
the name they monitor (``sentinel monitor mymaster ...``); the credentials are the data nodes'.
Query options: ``sentinel_password`` (and ``sentinel_username``) when the sentinels need their
own, and ``db``.

Everything else is `RedisBroker`: the same pub/sub, claims, reconnects and watchdog. Every
connection it opens asks a sentinel for the current primary, so when the primary dies and the
sentinels promote a replica, the listener's reconnect lands on the new primary and replays the
subscriptions; publishes fail with `BrokerError` until then (counted in ``publish_errors``).
The time to follow is Sentinel's (``down-after-milliseconds`` plus the election) plus at most
``reconnect_max`` of backoff.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from .redis import RedisBroker, _quiet_close

__all__ = ["RedisSentinelBroker", "parse_sentinel_url"]


def parse_sentinel_url(
    url: str,
) -> tuple[list[tuple[str, int]], str, dict[str, Any], dict[str, Any]]:
    """The sentinels, the service name, the data-node options and the sentinel options."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis+sentinel", "rediss+sentinel"):
        raise ValueError(f"not a Redis Sentinel URL: {url!r}")
    options: dict[str, Any] = {}
    sentinel_options: dict[str, Any] = {}
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if password:
            options["password"] = unquote(password)
    if parts.scheme == "rediss+sentinel":
        options["ssl"] = True
    sentinels: list[tuple[str, int]] = []
    for item in netloc.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = item.strip(), "26379"
        sentinels.append((host.strip("[]") or "127.0.0.1", int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"no service name in {url!r} (redis+sentinel://host:port/mymaster)")
    service = unquote(path[0])
    query = parse_qs(parts.query)
    db = path[1] if len(path) > 1 else query.get("db", ["0"])[0]
    options["db"] = int(db)
    for name in ("sentinel_password", "sentinel_username"):
        if name in query:
            sentinel_options[name.removeprefix("sentinel_")] = query[name][0]
    return sentinels, service, options, sentinel_options


class RedisSentinelBroker(RedisBroker):
    """`RedisBroker` on the primary that Redis Sentinel names for ``service``."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.sentinels, self.service, self._node_options, sentinel_options = parse_sentinel_url(url)
        self._sentinel = Sentinel(  # type: ignore[no-untyped-call]
            self.sentinels,
            sentinel_kwargs={
                "socket_connect_timeout": self._connect_timeout,
                "socket_timeout": self._command_timeout,
                **sentinel_options,
            },
        )

    async def disconnect(self) -> None:
        await super().disconnect()
        for client in self._sentinel.sentinels:  # the connections that asked for the primary
            await _quiet_close(client, 2.0)

    def _new_client(self, **options: Any) -> Redis:
        client: Redis = self._sentinel.master_for(
            self.service, redis_class=Redis, **{**self._node_options, **options}
        )
        return client
