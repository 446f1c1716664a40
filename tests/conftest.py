"""Shared fixtures: private Redis servers started for the tests (never the machine's 6379).

- ``redis_server``: one server for the whole session.
- ``redis_url``: that server's URL, emptied (FLUSHALL) before the test.
- ``fresh_redis``: a server of the test's own, for tests that stop, restart or pause it.
- ``redis_cluster``: a 6-node Redis Cluster (3 primaries + 3 replicas) for the session;
  ``cluster_url`` is its ``redis+cluster://`` URL, every primary emptied before the test.

Without a ``redis-server`` binary these fixtures (and tests marked ``redis``) skip the test, except under CI (env ``CI``
set), where a missing binary is an install bug and fails loudly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clusters import RedisClusterServers
from tests.servers import RedisServer


def _require_redis_server() -> None:
    if shutil.which("redis-server") is not None:
        return
    if os.environ.get("CI"):
        pytest.fail(
            "redis-server is not installed but CI is set: scripts/install should have "
            "installed it (apt-get install redis-server)",
            pytrace=False,
        )
    pytest.skip("redis-server is not installed (apt-get install redis-server, or scripts/install)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``redis`` get the same skip-or-fail treatment as the fixtures."""
    if item.get_closest_marker("redis") or item.get_closest_marker("cluster"):
        _require_redis_server()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private Redis server shared by the whole session."""
    _require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, with every key removed before the test."""
    if not redis_server.running():
        # A test may have stopped the shared server by mistake; bring it back.
        redis_server.start()
    redis_server.flushall()
    return redis_server.url


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A Redis server of this test's own: free to stop, restart, pause and resume."""
    _require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A private 6-node Redis Cluster shared by the session (tests that kill nodes start
    their own `RedisClusterServers`)."""
    _require_redis_server()
    with RedisClusterServers() as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterServers) -> str:
    """The session cluster's URL, with every key removed before the test."""
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, built once per run by `mkdocs build --strict` (mkdocs.yml)."""
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING" not in run.stderr, run.stderr
    return out
