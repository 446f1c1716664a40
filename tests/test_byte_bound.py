"""A stalled reader costs the server at most its queue's byte bound (real uvicorn, real clients).

One instance of the seed app (memory broker). For each frame size (100 B, 20 KB, 500 KB) a
client subscribes and then stops reading (a small receive window, no compression, random
payloads), a healthy client subscribes to the same topic and reads everything, and a
publisher floods the topic round after round. The server's RSS may grow by at most the
connection's byte bound (``max_queue_bytes``, 1 MiB by default) + 2 MiB at any round; the
healthy client gets every message, in order, each round within a few seconds; the stalled
client is closed with 1013 once its queue crosses a bound (by frames for 100 B frames, by
bytes for the others). Bounded: at most 48 MiB or 60,000 messages per size.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.servers import UvicornServer
from tests.test_distributed import APP, WAIT, Peer, health, peers, rss_kib, small_window_socket, uid

pytestmark = [pytest.mark.slow]

BOUND = 1 << 20  # the default max_queue_bytes
SLACK_KIB = 2 * 1024  # + 2 MiB: transport buffers, the message in flight, allocator noise


#: Stalled readers per frame size, each on its own topic (no message is shared between them),
#: so the per-process constant (the publisher's and the healthy reader's buffers, the
#: allocator keeping freed 500 KB blocks) is spread over several. One for 100 B frames: the
#: kernel's socket buffers take ~2.5 MB of them before the server sees any backpressure.
STALLED = {100: 1, 20_000: 3, 500_000: 6}


async def flood_until_dropped(
    server: UvicornServer, http: httpx.AsyncClient, size: int
) -> dict[str, Any]:
    topics = [f"flood/{size}/{k}" for k in range(STALLED[size])]
    stalled = [
        await connect(
            server.ws_url(f"/ws/{uid('stalled')}"),
            sock=small_window_socket(server.port),
            open_timeout=WAIT,
            compression=None,
            max_size=1 << 22,
        )
        for _ in topics
    ]
    try:
        for ws, topic in zip(stalled, topics, strict=True):
            await Peer(ws, "stalled").subscribe(topic)  # from here on it never reads
        async with peers((server, uid("healthy")), (server, uid("pub"))) as (healthy, pub):
            for topic in topics:
                await healthy.subscribe(topic)
            rss_before = rss_kib(server.pid)
            per_round = max(1, (256 * 1024) // size)
            sent = received = 0
            peak_kib = 0
            dropped = False
            while not dropped and sent * size < 48 * BOUND * len(topics) and sent < 120_000:
                for _ in range(per_round):
                    for topic in topics:
                        pad = secrets.token_urlsafe(size * 3 // 4)[:size]
                        await pub.send({"type": "send", "topic": topic, "i": sent, "p": pad})
                        sent += 1
                async with asyncio.timeout(WAIT):  # promptly, in order, all of them
                    while received < sent:
                        frame = await healthy.recv()
                        assert frame["i"] == received
                        received += 1
                peak_kib = max(peak_kib, rss_kib(server.pid) - rss_before)
                # the stalled ones are gone from the server once their queues overflowed
                dropped = (await health(http, server))["connections"] == 2  # healthy + pub
            assert dropped, f"{size} B: not dropped after {sent} messages"
        got = []
        for ws in stalled:
            frames = 0
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(20):
                    while True:
                        await ws.recv()
                        frames += 1
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            got.append(frames)
        return {"size": size, "sent": sent, "peak_kib": peak_kib, "stalled_got": got}
    finally:
        for ws in stalled:
            await ws.close()


async def test_stalled_readers_cost_at_most_their_byte_bound() -> None:
    # The publisher floods on purpose: lift its per-connection publish budget (4 MiB/s).
    env = {"ASYNCWS_BROKER_URL": "memory://", "ASYNCWS_FANOUT_BYTES_RATE": str(1 << 40)}
    with UvicornServer(APP, env=env, ready_path="/health") as s:
        async with httpx.AsyncClient() as http:
            for size in (100, 20_000, 500_000):
                result = await flood_until_dropped(s, http, size)
                print(
                    f"\n{size:>7} B frames: stalled reader dropped after {result['sent']} "
                    f"published ({result['stalled_got']} reached it); peak RSS growth "
                    f"{result['peak_kib'] / 1024:.1f} MiB for {STALLED[size]} stalled reader(s)"
                )
                assert result["peak_kib"] / STALLED[size] <= BOUND // 1024 + SLACK_KIB, result
