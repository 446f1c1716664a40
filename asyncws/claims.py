"""Claims on connection ids that clients asked for (the seed's ``/ws/{conn_id}``).

A client-requested id is claimed on the broker before it is used (`BrokerInterface.claim`:
``SET NX PX`` on Redis), renewed every ``ttl / 3`` while this instance holds it, and released
on disconnect. If another instance holds it, or the broker cannot answer, the claim fails and
the server assigns an id instead (and tells the client with ``set_conn_id``): a client must
never get an id that may belong to someone else. A claim the broker could not answer is
logged (a warning, with the count in ``unanswered``), so a replaced id is never silent on the
server either. Server-assigned ids need no claim (they carry their instance, see
`asyncws.channels`).

Claims are made concurrently: a broker that batches them (the Redis brokers: all the claims
of one loop tick in one pipelined write) answers a storm of connects, or the renewal of every
held id, in a few round trips.
"""

from __future__ import annotations

import asyncio
import logging

from .brokers import BrokerInterface
from .channels import Channels
from .exceptions import AsyncWSError

__all__ = ["IdClaims"]

logger = logging.getLogger("asyncws.claims")

#: Renewals made at once (the Redis brokers pipeline each tick's claims, up to 1,000).
RENEW_CHUNK = 1000


class IdClaims:
    """The client-requested ids this instance holds on the broker."""

    def __init__(self, broker: BrokerInterface, channels: Channels, instance_id: str) -> None:
        self.broker = broker
        self.channels = channels
        self.instance_id = instance_id
        #: How long a claim lives without renewal (seconds).
        self.ttl = 300.0
        self.held: set[str] = set()
        #: Claims the broker could not answer (the client got a server-assigned id).
        self.unanswered = 0

    def __contains__(self, conn_id: object) -> bool:
        return conn_id in self.held

    async def claim(self, conn_id: str) -> bool:
        """Claim ``conn_id`` on every instance; False when it is taken or the broker is down."""
        try:
            granted = await self.broker.claim(
                self.channels.claim(conn_id), self.instance_id, self.ttl
            )
        except AsyncWSError as exc:
            self.unanswered += 1
            logger.warning(
                "claim on connection id %r not answered (%s): the server assigns one", conn_id, exc
            )
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
            await self.renew()

    async def renew(self) -> int:
        """Renew every held claim now, `RENEW_CHUNK` at once; the number renewed. Stops at
        the first chunk the broker could not answer (the next round tries again)."""
        held = list(self.held)
        renewed = 0
        for start in range(0, len(held), RENEW_CHUNK):
            chunk = held[start : start + RENEW_CHUNK]
            results = await asyncio.gather(
                *(
                    self.broker.claim(self.channels.claim(c), self.instance_id, self.ttl)
                    for c in chunk
                ),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, AsyncWSError):
                    raise result
            renewed += sum(result is True for result in results)
            if any(isinstance(result, AsyncWSError) for result in results):
                break  # the broker is down: try again next round
        return renewed
