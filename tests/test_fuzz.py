"""Property-based fuzzing of the whole wire protocol, both dialects (see tests/fuzz_frames.py).

Several clients at once on one app: a victim subscribed to a room, a bystander posting to it
after every step, and 1-3 attackers sending random sequences of valid, malformed and hostile
frames. Whatever they send, the server never crashes, never logs an error, never leaks
internal details, closes attackers only with 1008/1009, and the victim keeps receiving every
post, verbatim and once. The corpus tests pin the exact answer to each hostile case (the
table in docs/hostile-input.md).

The example budget is sized for ~20 s here; ``ASYNCWS_FUZZ_EXAMPLES=2000 pytest
tests/test_fuzz.py`` runs longer, and ``python benchmarks/fuzz.py --minutes 10`` runs the same
properties for minutes, plus the corpus over a real network.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from asyncws import AsyncWS, Router
from asyncws.protocol import frame_id
from asyncws.testing import TestClient
from tests.fuzz_frames import (
    Frame,
    chat_frames,
    chat_target,
    corpus,
    run_corpus,
    run_scenario,
    seed_frames,
    seed_target,
    steps,
)

EXAMPLES = int(os.environ.get("ASYNCWS_FUZZ_EXAMPLES", "250"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
    print_blob=True,
)

Scenario = list[tuple[list[tuple[int, Frame]], str]]


@FUZZ
@given(n_attackers=st.integers(1, 3), scenario=steps(chat_frames()))
def test_the_declarative_endpoint_survives_hostile_clients(
    n_attackers: int, scenario: Scenario
) -> None:
    asyncio.run(run_scenario(chat_target(), n_attackers, scenario))


@FUZZ
@given(n_attackers=st.integers(1, 3), scenario=steps(seed_frames()))
def test_the_seed_endpoint_survives_hostile_clients(n_attackers: int, scenario: Scenario) -> None:
    asyncio.run(run_scenario(seed_target(), n_attackers, scenario))


@pytest.mark.parametrize("target_name", ["chat", "seed"])
async def test_every_hostile_case_gets_its_documented_answer(target_name: str) -> None:
    target = chat_target() if target_name == "chat" else seed_target()
    results, violations = await run_corpus(target, corpus())
    assert not violations, "\n".join(violations)
    wrong = [
        f"{r.case.name}: got {r.outcome!r}, expected {r.case.expect(target_name)!r}"
        for r in results
        if not r.case.accepts(target_name, r.outcome)
    ]
    assert not wrong, "\n".join(wrong)
    # a connection that was not closed still answers a valid frame afterwards
    dead = [r.case.name for r in results if r.close_code is None and not r.probe_ok]
    assert not dead, dead
    assert len(results) == sum(1 for c in corpus() if c.frame(target_name) is not None)


# -- regressions for what the fuzzing found ---------------------------------------------------


@pytest.mark.parametrize("value", ["\ud800", "a\udfff", "\udc00\ud800"])
def test_an_id_with_a_lone_surrogate_is_never_echoed(value: str) -> None:
    # it cannot be encoded as UTF-8: echoing it broke the connection's writer
    assert frame_id({"id": value}) is None
    assert frame_id({"id": "\U0001f642"}) == "\U0001f642"  # a real pair is fine


class Note(BaseModel):
    text: str


def _bypass_app() -> tuple[Any, Any, Any]:
    router = Router()
    router.topic("t/{a}", Note)
    private = router.topic("t/{a}/private", Note, authorize=lambda: False)
    admin = router.topic("t/{a}/admin", Note, subscribe_scopes=["admin"])
    ws = AsyncWS(authenticate=lambda: {"name": "eve"})
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return app, private, admin


@pytest.mark.parametrize("pattern", ["t/#", "t/+/#", "t/x/#"])
async def test_a_wildcard_cannot_reach_a_topic_it_is_not_allowed_to_see(pattern: str) -> None:
    app, private, admin = _bypass_app()
    async with TestClient(app, timeout=2) as client, client.connect("/ws") as ws:
        answer = await ws.subscribe(pattern)
        assert answer["type"] == "error" and answer["code"] == "forbidden", answer
        await private.publish(Note(text="secret"), a="x")
        await admin.publish(Note(text="admin only"), a="x")
        with pytest.raises(TimeoutError):
            await ws.receive_event(timeout=0.2)
        # the topic without a rule stays reachable, concretely and with '+'
        assert (await ws.subscribe("t/x"))["type"] == "ack"
        assert (await ws.subscribe("t/+"))["type"] == "ack"


async def test_a_fixed_topic_is_not_reachable_through_a_parameter_of_another() -> None:
    router = Router()
    router.topic("u/{name}", Note)
    router.topic("u/admin", Note, authorize=lambda: False)
    ws = AsyncWS()
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app, timeout=2) as client, client.connect("/ws") as s:
        for pattern in ("u/admin", "u/+", "u/#"):
            answer = await s.subscribe(pattern)
            assert answer["code"] == "forbidden", (pattern, answer)
        assert (await s.subscribe("u/bob"))["type"] == "ack"


async def test_a_client_cannot_publish_to_a_fixed_topic_through_a_parameter() -> None:
    router = Router()
    router.topic("n/{name}", Note, client_publish=True)
    router.topic("n/admin", Note)  # servers only
    ws = AsyncWS()
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app, timeout=2) as client, client.connect("/ws") as s:
        answer = await s.call("publish", {"text": "spoof"}, topic="n/admin")
        assert answer["code"] == "forbidden", answer
        assert (await s.call("publish", {"text": "hi"}, topic="n/bob"))["type"] == "ack"
