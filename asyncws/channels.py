"""Broker channel names of one application, and the connection ids that go into them.

Pure: no I/O. Every distributed send goes through the broker, on a channel that says who it
is for (see `asyncws.manager` and docs/architecture.md)::

    {ns}/t/{topic}     a topic (instances with a matching subscriber listen to it)
    {ns}/i/{instance}  the connections with server-assigned ids on one instance
    {ns}/c/{conn_id}   one connection with an id the client (or server code) chose
    {ns}/u/{user_id}   every connection of one user
    {ns}/b             everyone (every instance listens)

Ids are percent-encoded into one level (`channel_key`), so they cannot smuggle wildcards.
A server-assigned id is ``{instance}.{128 random bits}`` (`instance_of` reads the instance).
"""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = ["CONN_ID_RE", "Channels", "channel_key", "instance_of"]

#: A connection id a client may ask for (or server code may set).
CONN_ID_RE = re.compile(r"[A-Za-z0-9._~:@-]{1,128}")
#: A server-assigned connection id: ``{instance id}.{128 random bits}`` (see `instance_of`).
_SERVER_ID_RE = re.compile(r"([A-Za-z0-9_-]{8})\.[A-Za-z0-9_-]{22}")


def channel_key(value: str) -> str:
    """A conn/user id as one channel level: no '/', '+', '#' survive."""
    return quote(value, safe="")


def instance_of(conn_id: str) -> str | None:
    """The instance that assigned ``conn_id``, if it is a server-assigned id."""
    if len(conn_id) != 31 or conn_id[8] != ".":
        return None
    m = _SERVER_ID_RE.fullmatch(conn_id)
    return m.group(1) if m is not None else None


class Channels:
    """The channel names of one namespace (an app's ``broker_channel``) on one instance.

    The prefixes are plain attributes: the delivery path compares and slices with them.
    """

    __slots__ = (
        "broadcast",
        "conn_prefix",
        "instance",
        "instance_prefix",
        "namespace",
        "topic_prefix",
        "user_prefix",
    )

    def __init__(self, namespace: str, instance_id: str) -> None:
        if "+" in namespace.split("/") or "#" in namespace.split("/"):
            raise ValueError("broker_channel must not contain wildcard levels")
        self.namespace = namespace
        self.topic_prefix = f"{namespace}/t/"
        self.conn_prefix = f"{namespace}/c/"
        self.instance_prefix = f"{namespace}/i/"
        self.instance = self.instance_prefix + instance_id  # this instance's server ids
        self.user_prefix = f"{namespace}/u/"
        self.broadcast = f"{namespace}/b"

    def topic(self, pattern: str) -> str:
        return self.topic_prefix + pattern

    def connection(self, conn_id: str) -> str | None:
        """The channel of one connection id (None: it is routed by its instance channel)."""
        return None if instance_of(conn_id) is not None else self.conn_prefix + channel_key(conn_id)

    def user(self, user_id: str) -> str:
        return self.user_prefix + channel_key(user_id)

    def claim(self, conn_id: str) -> str:
        """The broker key that holds the claim on a client-requested id (`asyncws.claims`)."""
        return f"{self.namespace}/claim/{channel_key(conn_id)}"
