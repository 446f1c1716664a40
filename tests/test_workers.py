"""``uvicorn --workers 4`` on one Redis (the seed's issue #47): every kind of delivery reaches
the right clients exactly once, wherever they landed.

The workers share one listening socket, so the kernel decides where a connection goes; the
test opens connections until every worker holds a few (bounded), learning each one's worker
from ``whoami`` (its pid). Then it sends, from clients on various workers: topic publishes
(through the server and by clients, to exact and wildcard subscribers), a broadcast, direct
messages to connection ids on *other* workers, and a message to a user whose connections span
workers. A final broadcast fences the lot: once every client has it, everything sent before
it has arrived (one publisher at a time, each publish acknowledged before the next, and
Redis keeps the order on each subscriber connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from typing import Any

import pytest

from tests.opstools import cluster, note_counts
from tests.servers import RedisServer
from tests.wsclient import WsClient

pytestmark = [pytest.mark.redis, pytest.mark.slow]

WORKERS = 4
PER_WORKER = 3  # connections wanted on each worker
MAX_CONNECTIONS = 160  # bound on the search for a spread
USERS = 5


def _direct(events: list[dict[str, Any]], kind: str) -> Counter[str]:
    """How many times each direct message of ``kind`` arrived (keyed by its data's "id")."""
    return Counter(
        e["data"]["id"] for e in events if e.get("type") == "direct" and e.get("kind") == kind
    )


async def test_every_delivery_kind_across_four_workers(fresh_redis: RedisServer) -> None:
    with cluster(fresh_redis, 1, extra_args=["--workers", str(WORKERS)]) as (server,):
        async with contextlib.AsyncExitStack() as stack:
            clients: list[WsClient] = []
            who: list[dict[str, Any]] = []
            by_pid: dict[int, list[int]] = defaultdict(list)

            async def connect(batch: int) -> None:
                opened = await asyncio.gather(
                    *(
                        WsClient(server.ws_url(f"/ws?user=u{(len(clients) + i) % USERS}")).open()
                        for i in range(batch)
                    )
                )
                for client in opened:
                    stack.push_async_callback(client.close)
                for client, me in zip(
                    opened, await asyncio.gather(*(c.whoami() for c in opened)), strict=True
                ):
                    by_pid[me["pid"]].append(len(clients))
                    clients.append(client)
                    who.append(me)

            async with asyncio.timeout(60):
                while len(clients) < MAX_CONNECTIONS and (
                    len(by_pid) < WORKERS or min(len(v) for v in by_pid.values()) < PER_WORKER
                ):
                    # Bursts spread over the workers better than one connection at a time;
                    # the pause lets workers that are still starting join in.
                    await connect(8)
                    await asyncio.sleep(0.1)
            spread = {pid: len(idx) for pid, idx in by_pid.items()}
            assert len(spread) == WORKERS, f"connections landed on {spread} only"
            assert min(spread.values()) >= PER_WORKER, spread
            assert len({w["instance"] for w in who}) == WORKERS  # one manager per worker
            pids = sorted(by_pid)

            # -- topic: exact subscribers, a wildcard one, one with both -------------------
            exact = {i for i in range(len(clients)) if i % 2 == 0}
            # one per worker, plus one exact subscriber: it has both, still gets each once
            wildcard = {by_pid[pid][1] for pid in pids} | {min(exact)}
            subscribers = exact | wildcard
            for i in exact:
                await clients[i].subscribe("chat/workers")
            for i in wildcard:
                await clients[i].subscribe("chat/+")

            publishers = [by_pid[pid][0] for pid in pids]
            for k in range(3):
                for i in publishers:
                    answer = await clients[i].call(
                        "say", {"room": "workers", "source": f"s{i}", "n": k}
                    )
                    assert answer["type"] == "reply", answer
                    answer = await clients[i].publish("chat/workers", {"source": f"c{i}", "n": k})
                    assert answer["type"] == "ack", answer
            notes = {(f"{p}{i}", k) for i in publishers for p in "sc" for k in range(3)}

            # -- broadcast ---------------------------------------------------------------
            answer = await clients[publishers[1]].call("broadcast", {"data": {"id": "b1"}})
            assert answer["type"] == "reply", answer

            # -- direct to a connection id, always on another worker ---------------------
            expected_conn: dict[int, set[str]] = defaultdict(set)
            for a, sender_pid in enumerate(pids):
                for b, target_pid in enumerate(pids):
                    if a == b:
                        continue
                    target = by_pid[target_pid][2 % len(by_pid[target_pid])]
                    msg_id = f"c{a}-{b}"
                    answer = await clients[by_pid[sender_pid][0]].call(
                        "to_conn", {"conn_id": who[target]["conn_id"], "data": {"id": msg_id}}
                    )
                    assert answer["type"] == "reply", answer
                    expected_conn[target].add(msg_id)

            # -- direct to a user whose connections span workers -------------------------
            workers_of_user: dict[str, set[int]] = defaultdict(set)
            for me in who:
                workers_of_user[me["user"]].add(me["pid"])
            user = max(workers_of_user, key=lambda u: len(workers_of_user[u]))
            assert len(workers_of_user[user]) >= 2, workers_of_user
            answer = await clients[publishers[-1]].call(
                "to_user", {"user": user, "data": {"id": "u1"}}
            )
            assert answer["type"] == "reply", answer

            # -- the fence, then the counts ----------------------------------------------
            answer = await clients[publishers[0]].call("broadcast", {"data": {"id": "fence"}})
            assert answer["type"] == "reply", answer
            for client in clients:
                await client.wait_for(lambda evs: _direct(evs, "broadcast")["fence"] >= 1, 15)
            await asyncio.sleep(0.3)  # a duplicate would come right behind

            for i, client in enumerate(clients):
                got = note_counts(client.events)
                if i in subscribers:
                    assert got == Counter(dict.fromkeys(notes, 1)), (i, got)
                else:
                    assert not got, (i, got)
                assert _direct(client.events, "broadcast") == Counter({"b1": 1, "fence": 1})
                assert _direct(client.events, "conn") == Counter(
                    dict.fromkeys(expected_conn.get(i, ()), 1)
                ), i
                mine = Counter({"u1": 1}) if who[i]["user"] == user else Counter()
                assert _direct(client.events, "user") == mine, i
            print(
                f"\n[workers] {len(clients)} connections over {WORKERS} workers {spread}; "
                f"{len(subscribers)} topic subscribers, user {user!r} on "
                f"{len(workers_of_user[user])} workers: all delivered exactly once"
            )
