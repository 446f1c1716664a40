"""The test helpers themselves: real redis-server and uvicorn processes on free ports."""

from __future__ import annotations

import http.client
import os
import socket
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import (
    RedisServer,
    ServerError,
    UvicornServer,
    free_port,
    port_accepts,
    redis_ping,
)


def _pid_gone(pid: int | None) -> bool:
    """Whether no process has this PID (the helpers reap their children, so no zombies)."""
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


@pytest.mark.redis
def test_redis_server_lifecycle(fresh_redis: RedisServer) -> None:
    server = fresh_redis
    port = server.port
    assert port != 6379
    assert server.url == f"redis://127.0.0.1:{port}/0"
    assert redis_ping(port)
    assert server.command("SET", "k", "v") == b"+OK"

    first_pid = server.pid
    assert first_pid is not None
    server.restart()
    assert server.port == port
    assert server.pid is not None and server.pid != first_pid
    assert _pid_gone(first_pid)
    assert redis_ping(port)
    # Nothing is saved to disk: the restarted server is empty.
    assert server.command("GET", "k") == b"$-1"

    pid = server.pid
    server.stop()
    assert _pid_gone(pid)
    assert not server.running()
    assert not port_accepts(port)
    assert not redis_ping(port)
    server.stop()  # idempotent


@pytest.mark.redis
def test_redis_server_pause_resume(fresh_redis: RedisServer) -> None:
    fresh_redis.pause()
    assert not redis_ping(fresh_redis.port, timeout=0.3)
    fresh_redis.resume()
    deadline = time.monotonic() + 5
    while not redis_ping(fresh_redis.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_ping(fresh_redis.port)


@pytest.mark.redis
def test_stop_while_paused(fresh_redis: RedisServer) -> None:
    fresh_redis.pause()
    pid = fresh_redis.pid
    assert pid is not None
    started = time.monotonic()
    fresh_redis.stop()
    assert time.monotonic() - started < 4
    assert _pid_gone(pid)


@pytest.mark.redis
def test_redis_url_fixture_flushes(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_url == redis_server.url
    assert redis_server.command("DBSIZE") == b":0"
    redis_server.command("SET", "left-over", "1")


@pytest.mark.redis
def test_redis_url_fixture_flushes_again(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_server.command("DBSIZE") == b":0"


@pytest.mark.redis
def test_context_manager_cleans_up() -> None:
    server = RedisServer()
    with server:
        pid = server.pid
        assert pid is not None
        assert redis_ping(server.port)
        directory = server.dir
        assert directory.is_dir()
    assert _pid_gone(pid)
    assert not directory.exists()


@pytest.mark.redis
def test_redis_bad_argument_raises_with_log() -> None:
    server = RedisServer(extra_args=["--no-such-option", "x"], startup_timeout=5)
    with pytest.raises(ServerError, match="exited early"), server:
        pass
    assert not server.running()


@pytest.fixture
def tiny_app(tmp_path: Path) -> Iterator[str]:
    """An ASGI app in a temporary module, importable by the uvicorn subprocess."""
    module = tmp_path / "tiny_asgi_app.py"
    module.write_text(
        textwrap.dedent(
            """
            import os

            async def app(scope, receive, send):
                if scope["type"] == "lifespan":
                    while True:
                        message = await receive()
                        if message["type"] == "lifespan.startup":
                            await send({"type": "lifespan.startup.complete"})
                        elif message["type"] == "lifespan.shutdown":
                            await send({"type": "lifespan.shutdown.complete"})
                            return
                body = os.environ.get("TINY_BODY", "none").encode()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})
            """
        )
    )
    yield str(tmp_path)


@pytest.mark.slow
def test_uvicorn_server(tiny_app: str) -> None:
    server = UvicornServer(
        "tiny_asgi_app:app",
        env={"TINY_BODY": "hello", "PYTHONPATH": tiny_app},
        ready_path="/ready",
    )
    with server:
        pid = server.pid
        assert pid is not None
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.ws_url("feed") == f"ws://127.0.0.1:{server.port}/feed"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"hello"
        finally:
            conn.close()
    assert _pid_gone(pid)
    assert not port_accepts(server.port)


@pytest.mark.slow
def test_uvicorn_server_import_error_raises() -> None:
    server = UvicornServer("tests.no_such_module:app", startup_timeout=15)
    with pytest.raises(ServerError, match="exited early"), server:
        pass
