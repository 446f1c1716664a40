"""Redis outages under load: three instances of the ops app on their own Redis.

Each instance has a receiver (subscribed to ``chat/lobby``) and a publisher (publishing Notes
on it every 20 ms). Redis is stopped, restarted or frozen while they run. What must hold:

- the instances stay up and keep serving their local clients (``ping`` is answered, /health
  answers 503 and says why);
- every publish is answered: an ack, or an error frame ``broker_unavailable`` (never silence);
- when Redis is back the instances reconnect and resubscribe (/health 200 again) and nothing
  more is lost: N new messages from each instance arrive exactly once on every instance;
- nothing arrives twice, and what was lost is counted (``asyncws_publish_errors_total``,
  warnings in the server logs).

Redis pub/sub keeps no data: a Redis restarted "with its data gone" is just a restart for
asyncws (`test_redis_restart_with_data_gone`).

The figures (messages lost, time to recover) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.opstools import LoadPublisher, cluster, note_counts, scrape, wait_health
from tests.servers import RedisServer, UvicornServer
from tests.wsclient import WsClient, http_get_json

pytestmark = [pytest.mark.redis, pytest.mark.slow]

INSTANCES = 3
FINAL_BATCH = 30  # messages per instance after recovery: all must arrive exactly once
OUTAGE = 4.0  # seconds Redis stays down (or frozen)


@dataclass
class Rig:
    redis: RedisServer
    servers: list[UvicornServer]
    receivers: list[WsClient]
    publishers: list[LoadPublisher]


@contextlib.asynccontextmanager
async def rig(redis: RedisServer, env: dict[str, str] | None = None) -> AsyncIterator[Rig]:
    with cluster(redis, INSTANCES, env=env) as servers:
        async with contextlib.AsyncExitStack() as stack:
            receivers = [
                await stack.enter_async_context(WsClient(s.ws_url("/ws"))) for s in servers
            ]
            senders = [await stack.enter_async_context(WsClient(s.ws_url("/ws"))) for s in servers]
            for receiver in receivers:
                await receiver.subscribe("chat/lobby")
            publishers = [LoadPublisher(c, f"p{i}") for i, c in enumerate(senders)]
            # Warm up: one message from each instance reaches every instance.
            for publisher in publishers:
                assert (await publisher.publish_one())["type"] == "ack"
            for receiver in receivers:
                await receiver.wait_for(lambda evs: len(note_counts(evs)) >= INSTANCES)
            yield Rig(redis, servers, receivers, publishers)


async def _local_traffic_works(receivers: list[WsClient]) -> None:
    for receiver in receivers:
        answer = await receiver.call("ping", timeout=3.0)
        assert answer == {"type": "reply", "id": answer["id"], "data": "pong"}


async def _wait_errors(publishers: list[LoadPublisher], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not all(p.errors for p in publishers):
        if time.monotonic() > deadline:
            raise TimeoutError("no broker_unavailable answer")
        await asyncio.sleep(0.02)


async def _final_batch_exactly_once(r: Rig) -> None:
    """After recovery: FINAL_BATCH new messages per instance, all acked, each received once
    by every instance."""
    first = {p.source: p.next_n + 1 for p in r.publishers}
    for _ in range(FINAL_BATCH):
        for publisher in r.publishers:
            answer = await publisher.publish_one()
            assert answer["type"] == "ack", answer
    wanted = {(src, n) for src, start in first.items() for n in range(start, start + FINAL_BATCH)}
    for receiver in r.receivers:
        await receiver.wait_for(lambda evs: wanted <= set(note_counts(evs)), timeout=15.0)
    await asyncio.sleep(0.3)  # a duplicate would arrive right behind
    for receiver in r.receivers:
        counts = note_counts(receiver.events)
        assert all(counts[key] == 1 for key in wanted)


def _no_duplicates(r: Rig) -> None:
    for receiver in r.receivers:
        dups = {k: c for k, c in note_counts(receiver.events).items() if c > 1}
        assert not dups, f"delivered more than once: {dups}"


def _loss_figures(r: Rig) -> dict[str, int]:
    """Acked messages some instance never got, and refused ones (the outage's losses)."""
    acked = {(p.source, n) for p in r.publishers for n in p.acked}
    # A publisher's first refusal splits its messages into "before" and "after" the outage.
    first_error = {p.source: min(p.errors, default=p.next_n + 1) for p in r.publishers}
    before = after = 0
    for receiver in r.receivers:
        for source, n in acked - set(note_counts(receiver.events)):
            if n < first_error[source]:
                before += 1
            else:
                after += 1
    return {
        "published": sum(p.next_n for p in r.publishers),
        "acked": len(acked),
        "refused (broker_unavailable)": sum(len(p.errors) for p in r.publishers),
        "acked, missed by an instance: as Redis went down": before,
        "acked, missed by an instance: while the others resubscribed": after,
    }


async def _metrics_count_the_losses(r: Rig) -> None:
    for server, publisher in zip(r.servers, r.publishers, strict=True):
        metrics = await scrape(server)
        assert metrics["asyncws_publish_errors_total"] == len(publisher.errors)
        assert metrics["asyncws_broker_reconnects_total"] >= 1
        assert metrics["asyncws_broker_up"] == 1
        assert metrics['asyncws_broker_state{state="connected"}'] == 1
        assert metrics['asyncws_frames_sent_total{type="error"}'] >= len(publisher.errors)


def _logs_say_so(servers: list[UvicornServer], *expected: str) -> None:
    for server in servers:
        log = server.log_text()
        for text in expected:
            assert text in log, f"{text!r} not in the log of {server}:\n{log[-3000:]}"


async def test_redis_stopped_under_load(fresh_redis: RedisServer) -> None:
    async with rig(fresh_redis) as r:
        for publisher in r.publishers:
            publisher.start()
        await asyncio.sleep(1.0)

        down_at = time.monotonic()
        await asyncio.to_thread(r.redis.stop)
        # Loud, not silent: publishes are refused with broker_unavailable...
        await _wait_errors(r.publishers)
        # ... while the instances keep serving local traffic and tell the load balancer.
        await _local_traffic_works(r.receivers)
        await wait_health(r.servers, 503, within=10.0)
        for server in r.servers:
            code, body = await http_get_json(server.url + "/health")
            assert code == 503 and body["broker"] == "reconnecting", body
        await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))

        up_at = time.monotonic()
        await asyncio.to_thread(r.redis.start)  # same port
        recovered = await wait_health(r.servers, 200, within=20.0)
        await asyncio.sleep(0.5)
        for publisher in r.publishers:
            await publisher.stop()
        outage = up_at - down_at

        assert all(set(p.errors.values()) == {"broker_unavailable"} for p in r.publishers)
        for server in r.servers:
            assert server.running()
        _no_duplicates(r)
        # A refused publish was not published: nobody received it.
        refused = {(p.source, n) for p in r.publishers for n in p.errors}
        for receiver in r.receivers:
            assert not refused & set(note_counts(receiver.events))
        figures = _loss_figures(r)
        await _final_batch_exactly_once(r)
        _no_duplicates(r)
        await _metrics_count_the_losses(r)
        _logs_say_so(
            r.servers,
            "Redis connection lost",
            "Redis connection restored",
            "broker publish failed",
        )
        print(
            f"\n[outage: redis stopped {outage:.1f}s] recovered {recovered:.2f}s after restart;",
            figures,
        )


async def test_redis_restart_with_data_gone(fresh_redis: RedisServer) -> None:
    """Stop and start at once (nothing is saved, so the new Redis is empty): pub/sub has no
    data, so this is the same as any restart: reconnect, resubscribe, carry on."""
    async with rig(fresh_redis) as r:
        assert r.redis.command("SET", "marker", "1") == b"+OK"
        for publisher in r.publishers:
            publisher.start()
        await asyncio.sleep(1.0)
        started = time.monotonic()
        await asyncio.to_thread(r.redis.restart)
        assert r.redis.command("GET", "marker") == b"$-1"  # the data is gone
        # The health check may not even see the gap: wait until everyone has reconnected.
        async with asyncio.timeout(20):
            while True:
                metrics = [await scrape(s) for s in r.servers]
                if all(
                    m["asyncws_broker_reconnects_total"] >= 1 and m["asyncws_broker_up"] == 1
                    for m in metrics
                ):
                    break
                await asyncio.sleep(0.05)
        recovered = time.monotonic() - started
        await wait_health(r.servers, 200)
        await asyncio.sleep(0.5)
        for publisher in r.publishers:
            await publisher.stop()
        assert all(set(p.errors.values()) <= {"broker_unavailable"} for p in r.publishers)
        _no_duplicates(r)
        figures = _loss_figures(r)
        await _final_batch_exactly_once(r)
        _no_duplicates(r)
        _logs_say_so(r.servers, "Redis connection lost", "Redis connection restored")
        print(f"\n[outage: redis restarted] all reconnected within {recovered:.2f}s;", figures)


async def test_redis_frozen_under_load(fresh_redis: RedisServer) -> None:
    """SIGSTOP: connections stay open but nothing is answered. Publishes time out (after the
    command timeout) into broker_unavailable, the listener's health check notices and
    reconnects, and after SIGCONT delivery resumes."""
    async with rig(fresh_redis) as r:
        for publisher in r.publishers:
            publisher.start()
        await asyncio.sleep(1.0)

        frozen_at = time.monotonic()
        r.redis.pause()
        try:
            await _local_traffic_works(r.receivers)
            # The listener's PING goes unanswered: the broker is declared down.
            noticed = await wait_health(r.servers, 503, within=10.0)
            await _wait_errors(r.publishers, within=10.0)
            await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - frozen_at)))
            await _local_traffic_works(r.receivers)
        finally:
            r.redis.resume()
        thawed_at = time.monotonic()
        recovered = await wait_health(r.servers, 200, within=20.0)
        await asyncio.sleep(0.5)
        for publisher in r.publishers:
            await publisher.stop()

        for server in r.servers:
            assert server.running()
        assert all(set(p.errors.values()) == {"broker_unavailable"} for p in r.publishers)
        # Every publish was answered, none later than the command timeout allows (with retry).
        slowest = max(max(p.latencies) for p in r.publishers)
        assert slowest < 5.0
        _no_duplicates(r)
        figures = _loss_figures(r)
        await _final_batch_exactly_once(r)
        _no_duplicates(r)
        await _metrics_count_the_losses(r)
        _logs_say_so(r.servers, "Redis did not answer a PING", "broker publish failed")
        print(
            f"\n[outage: redis frozen {thawed_at - frozen_at:.1f}s] noticed after "
            f"{noticed:.2f}s, recovered {recovered:.2f}s after SIGCONT, slowest publish answer "
            f"{slowest:.2f}s;",
            figures,
        )


async def test_redis_restarted_with_its_data_under_load_history_topics() -> None:
    """The restart again, with ``chat/{room}`` keeping history and Redis saving every write
    (AOF, fsync always): each instance fills the gap of its subscribers from the last offset
    it delivered, so nothing Redis accepted is lost, and nothing arrives twice."""
    with RedisServer(extra_args=["--appendonly", "yes", "--appendfsync", "always"]) as redis:
        async with rig(redis, env={"ASYNCWS_OPS_HISTORY": "1"}) as r:
            for publisher in r.publishers:
                publisher.start()
            await asyncio.sleep(1.0)
            started = time.monotonic()
            await asyncio.to_thread(r.redis.restart)
            async with asyncio.timeout(20):
                while True:
                    metrics = [await scrape(s) for s in r.servers]
                    if all(
                        m["asyncws_broker_reconnects_total"] >= 1 and m["asyncws_broker_up"] == 1
                        for m in metrics
                    ):
                        break
                    await asyncio.sleep(0.05)
            recovered = time.monotonic() - started
            await wait_health(r.servers, 200)
            await asyncio.sleep(0.5)
            for publisher in r.publishers:
                await publisher.stop()
            figures = _loss_figures(r)
            # what was acked reaches every instance (the gap fills run right after reconnect)
            acked = {(p.source, n) for p in r.publishers for n in p.acked}
            for receiver in r.receivers:
                await receiver.wait_for(lambda evs: acked <= set(note_counts(evs)), timeout=15.0)
            _no_duplicates(r)
            late = _loss_figures(r)
            assert late["acked, missed by an instance: as Redis went down"] == 0, late
            assert late["acked, missed by an instance: while the others resubscribed"] == 0, late
            await _final_batch_exactly_once(r)
            _no_duplicates(r)
            print(
                f"\n[outage: redis restarted with AOF, history topic] reconnected within "
                f"{recovered:.2f}s; at reconnect {figures}; after the gap fills {late}"
            )
