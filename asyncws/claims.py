"""Claims on connection ids that clients asked for (the seed's ``/ws/{conn_id}``).

A client-requested id is claimed on the broker before it is used (`BrokerInterface.claim`:
``SET NX PX`` on Redis), renewed every ``ttl / 3`` while this instance holds it, and released
on disconnect. If another instance holds it, or the broker cannot answer, the claim fails and
the server assigns an id instead: a client must never get an id that may belong to someone
else. Server-assigned ids need no claim (they carry their instance, see `asyncws.channels`).
"""

from __future__ import annotations

import asyncio

from .brokers import BrokerInterface
from .channels import Channels
from .exceptions import AsyncWSError

__all__ = ["IdClaims"]


class IdClaims:
    """The client-requested ids this instance holds on the broker."""

    def __init__(self, broker: BrokerInterface, channels: Channels, instance_id: str) -> None:
        self.broker = broker
        self.channels = channels
        self.instance_id = instance_id
        #: How long a claim lives without renewal (seconds).
        self.ttl = 300.0
        self.held: set[str] = set()

    def __contains__(self, conn_id: object) -> bool:
        return conn_id in self.held

    async def claim(self, conn_id: str) -> bool:
        """Claim ``conn_id`` on every instance; False when it is taken or the broker is down."""
        try:
            granted = await self.broker.claim(
                self.channels.claim(conn_id), self.instance_id, self.ttl
            )
        except AsyncWSError:
            granted = False
        if granted:
            self.held.add(conn_id)
        return granted

    def discard(self, conn_id: str) -> None:
        """Stop renewing ``conn_id`` (the caller releases it with `release`)."""
        self.held.discard(conn_id)

    async def release(self, conn_id: str) -> None:
        await self.broker.release(self.channels.claim(conn_id), self.instance_id)

    async def renew_forever(self) -> None:
        """Renew the claims well before they expire (they expire if this instance dies)."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            for conn_id in list(self.held):
                try:
                    await self.broker.claim(
                        self.channels.claim(conn_id), self.instance_id, self.ttl
                    )
                except AsyncWSError:
                    break  # the broker is down: try again next round
