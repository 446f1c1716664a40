"""Real processes for tests: a Redis server and a uvicorn server, each on a free port.

Plain helpers (not fixtures) so that any test can start as many as it needs::

    with RedisServer() as redis, UvicornServer(
        "examples.chat.app:app", env={"ASYNCWS_BROKER_URL": redis.url}
    ) as web:
        ...

Every process is started here and stopped by the PID recorded here: nothing is ever looked up
or killed by name, and the machine's own Redis on port 6379 is never used.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = [
    "REPO_ROOT",
    "RedisServer",
    "ServerError",
    "UvicornServer",
    "free_port",
    "port_accepts",
    "redis_command",
    "redis_ping",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

_STOP_GRACE = 5.0
_LOG_TAIL = 4000


class ServerError(RuntimeError):
    """A helper process did not start (the message carries the tail of its log)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _encode_command(args: Sequence[str]) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def redis_command(port: int, *args: str, host: str = "127.0.0.1", timeout: float = 2.0) -> bytes:
    """Send one command over a raw socket and return the first reply line (e.g. ``b"+OK"``).

    Enough for PING, FLUSHALL, CONFIG SET and the like; not a Redis client.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_encode_command(args))
        buf = b""
        while not buf.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.split(b"\r\n", 1)[0]


def redis_ping(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether a Redis server on host:port answers ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            buf = b""
            while b"\r\n" not in buf:
                chunk = sock.recv(64)
                if not chunk:
                    break
                buf += chunk
            return buf.startswith(b"+PONG")
    except OSError:
        return False


def _tail(path: Path, limit: int = _LOG_TAIL) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no log>"
    return text[-limit:]


def _reap(proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    """Last resort for a helper that was never stopped: kill its child by PID, close its log."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_STOP_GRACE)
    log.close()


class _Process:
    """A child process started by a helper, stopped by its PID only."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._finalizer: weakref.finalize[..., _Process] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def spawn(
        self, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self._log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except BaseException:
            self._close_log()
            raise
        # Never leave an orphan server behind, even if the owner forgets to stop it.
        self._finalizer = weakref.finalize(self, _reap, self.proc, self._log)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signum)

    def stop(self) -> None:
        """SIGTERM by PID, wait, then SIGKILL. Idempotent."""
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                # A stopped (SIGSTOPped) process cannot act on SIGTERM until it continues.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=_STOP_GRACE)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=_STOP_GRACE)
            else:
                proc.wait()
        finally:
            self.proc = None
            self._close_log()

    def _close_log(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._log is not None:
            self._log.close()
            self._log = None


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1 and a free port, nothing kept on disk.

    ``restart()`` keeps the port (to simulate an outage); ``pause()``/``resume()`` freeze and
    thaw the process (SIGSTOP/SIGCONT) to simulate a slow or hung Redis.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 10.0,
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = port if port is not None else free_port()
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="asyncws-redis-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.dir, ignore_errors=True)
        self.log_path = self.dir / "redis.log"
        self._process = _Process(self.log_path)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def running(self) -> bool:
        return self._process.alive()

    def argv(self) -> list[str]:
        return [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.dir),
            *self.extra_args,
        ]

    def start(self) -> Self:
        if self._process.alive():
            return self
        self._process.spawn(self.argv(), cwd=self.dir)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self._process.alive():
                self._process.stop()
                raise ServerError(
                    f"redis-server on port {self.port} exited early:\n{self.log_text()}"
                )
            if redis_ping(self.port):
                return self
            time.sleep(0.05)
        self._process.stop()
        raise ServerError(
            f"redis-server on port {self.port} did not answer PING within "
            f"{self.startup_timeout:.0f}s:\n{self.log_text()}"
        )

    def stop(self) -> None:
        self._process.stop()

    def restart(self) -> Self:
        """Stop, then start again on the same port (the data is gone: nothing is saved)."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing is answered."""
        self._process.signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused server (SIGCONT)."""
        self._process.signal(signal.SIGCONT)

    def command(self, *args: str) -> bytes:
        """One raw command, first reply line: ``server.command("FLUSHALL") == b"+OK"``."""
        return redis_command(self.port, *args)

    def flushall(self) -> None:
        reply = self.command("FLUSHALL")
        if reply != b"+OK":
            raise ServerError(f"FLUSHALL answered {reply!r}")

    def log_text(self) -> str:
        return _tail(self.log_path)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        self._cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, pid={self.pid})"


class UvicornServer:
    """``python -m uvicorn APP`` on 127.0.0.1 and a free port, run from the repo root.

    ``app`` is an import string such as ``"examples.chat.app:app"`` or
    ``"tests.apps.echo:app"``. ``env`` is added to the current environment (e.g.
    ``{"ASYNCWS_BROKER_URL": redis.url}``); ``extra_args`` go to uvicorn. With ``ready_path``
    set, start() also waits for an HTTP GET of that path to answer (any status).
    """

    def __init__(
        self,
        app: str,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready_path: str | None = None,
        startup_timeout: float = 20.0,
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.app = app
        self.port = port if port is not None else free_port()
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.ready_path = ready_path
        self.startup_timeout = startup_timeout
        self.cwd = cwd
        self.dir = Path(tempfile.mkdtemp(prefix="asyncws-uvicorn-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.dir, ignore_errors=True)
        self.log_path = self.dir / "uvicorn.log"
        self._process = _Process(self.log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return f"ws://127.0.0.1:{self.port}{path}"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def running(self) -> bool:
        return self._process.alive()

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            self.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        paths = [str(REPO_ROOT)]
        if self.env.get("PYTHONPATH"):
            paths.append(self.env["PYTHONPATH"])
        elif os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _http_ready(self) -> bool:
        assert self.ready_path is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
        try:
            conn.request("GET", self.ready_path)
            conn.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def start(self) -> Self:
        if self._process.alive():
            return self
        self._process.spawn(self.argv(), cwd=self.cwd, env=self.environment())
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self._process.alive():
                self._process.stop()
                raise ServerError(
                    f"uvicorn {self.app} on port {self.port} exited early:\n{_tail(self.log_path)}"
                )
            if port_accepts(self.port) and (self.ready_path is None or self._http_ready()):
                return self
            time.sleep(0.05)
        self._process.stop()
        raise ServerError(
            f"uvicorn {self.app} on port {self.port} not ready within "
            f"{self.startup_timeout:.0f}s:\n{_tail(self.log_path)}"
        )

    def stop(self) -> None:
        self._process.stop()

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        """Everything the server wrote so far (stdout and stderr)."""
        return _tail(self.log_path, limit=10_000_000)

    def close(self) -> None:
        self.stop()
        self._cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"UvicornServer({self.app!r}, port={self.port}, pid={self.pid})"
