"""``memory://`` is one process only: several workers on it are detected and warned about.

``uvicorn --workers 2`` with the memory broker runs two hubs that share nothing. Each worker
logs a WARNING at startup saying so, and at least one of them names the other worker's pid
(found through the worker registry, not the command line).
"""

from __future__ import annotations

import http.client
import json
import time

import pytest

from asyncws.brokers import memory
from tests.servers import UvicornServer

MAX_REQUESTS = 200  # bound on the search for both workers


def _pid_of_the_worker_answering(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:  # a new connection each time: the kernel picks the worker
        conn.request("GET", "/debug/state", headers={"Connection": "close"})
        return int(json.loads(conn.getresponse().read())["pid"])
    finally:
        conn.close()


@pytest.mark.slow
def test_two_workers_on_memory_warn_at_startup() -> None:
    with UvicornServer(
        "tests.apps.ops_app:app",
        extra_args=["--workers", "2"],
        env={"ASYNCWS_BROKER_URL": "memory://"},
        ready_path="/health/live",
    ) as server:
        # Ready means one worker answers; the other may still be starting on a loaded machine.
        # Wait (bounded) until both logged their warning (in startup) before asking who answers.
        deadline = time.monotonic() + 30
        while server.log_text().count("memory:// broker in process") < 2:
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.05)
        pids: set[int] = set()
        for _ in range(MAX_REQUESTS):
            pids.add(_pid_of_the_worker_answering(server.port))
            if len(pids) == 2:
                break
        assert len(pids) == 2, f"only one worker answered in {MAX_REQUESTS} requests"
        # both serve, so both ran their startup (where the warning is logged)
        log = server.log_text()
    warnings = [line for line in log.splitlines() if "memory:// works inside ONE process" in line]
    for pid in pids:
        assert any(f"memory:// broker in process {pid}," in line for line in warnings), log
    assert any("other worker process(es)" in line for line in warnings), warnings
    assert all("Use a Redis broker" in line for line in warnings)


@pytest.mark.slow
def test_one_worker_on_memory_says_nothing() -> None:
    with UvicornServer(
        "tests.apps.ops_app:app", env={"ASYNCWS_BROKER_URL": "memory://"}, ready_path="/health"
    ) as server:
        assert _pid_of_the_worker_answering(server.port) == server.pid
        log = server.log_text()
    assert "ONE process" not in log


@pytest.mark.parametrize(
    ("argv", "env", "asked"),
    [
        (["uvicorn", "app:app"], {}, 1),
        (["uvicorn", "app:app", "--workers", "4"], {}, 4),
        (["uvicorn", "app:app", "--workers=3"], {}, 3),
        (["gunicorn", "-w", "2", "app:app"], {}, 2),
        (["uvicorn", "app:app", "--reload"], {}, 1),
        (["uvicorn", "app:app"], {"WEB_CONCURRENCY": "5"}, 5),
        (["uvicorn", "app:app", "--workers"], {}, 1),
    ],
)
def test_the_command_line_hint(argv: list[str], env: dict[str, str], asked: int) -> None:
    assert memory._workers_asked(argv, env) == asked


def test_a_single_process_is_not_several_workers() -> None:
    assert memory.several_workers() is None  # pytest itself: no parent, no --workers
