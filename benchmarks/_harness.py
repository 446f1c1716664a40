"""Shared plumbing for bench.py and ci_guard.py: processes by PID, /proc sampling, load phases.

Every process is started here, recorded by PID and stopped by that PID (SIGTERM, then
SIGKILL after a grace period): at the end of its scenario, and all of them again at exit, on
error, Ctrl-C, SIGTERM and SIGHUP. Nothing is looked up or killed by name. Everything binds
127.0.0.1. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.servers import RedisServer, free_port  # noqa: E402

__all__ = [
    "REPO_ROOT",
    "LoadWorker",
    "Phase",
    "RedisServer",
    "Server",
    "cpu_s",
    "free_port",
    "http_json",
    "install_signal_handlers",
    "machine_busy",
    "percentile",
    "rss_kib",
    "run_phase",
    "stop_all",
    "wait_quiet",
    "write_json",
]

CLK = os.sysconf("SC_CLK_TCK")


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# peerbench's flags; without the ``speed`` extra (uvloop, httptools) uvicorn picks its defaults.
UVICORN_FLAGS = [
    "--workers",
    "1",
    "--loop",
    "uvloop" if _have("uvloop") else "auto",
    "--http",
    "httptools" if _have("httptools") else "auto",
    "--ws",
    "websockets-sansio",
    "--log-level",
    "warning",
    "--no-access-log",
    "--timeout-graceful-shutdown",
    "2",
    "--backlog",
    "4096",
]

_PIDS: dict[int, str] = {}


# -- processes ----------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_pid(pid: int, grace: float = 3.0) -> None:
    """SIGTERM this one PID, wait up to ``grace`` s, then SIGKILL it."""
    if _PIDS.pop(pid, None) is None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        _reap(pid)
        if not _alive(pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            _reap(pid)
            if not _alive(pid):
                break
            time.sleep(0.05)
    _reap(pid)


def stop_all() -> None:
    for pid in list(_PIDS)[::-1]:
        stop_pid(pid)


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(stop_all)


def cpu_s(pid: int | None) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_kib(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_json(port: int, path: str, timeout: float = 5.0) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


class Server:
    """``python -m uvicorn APP`` on 127.0.0.1 (same flags as peerbench), stopped by PID.

    ``pythonpath`` goes first on the server's path: point it at another asyncws checkout (or a
    patched copy) to measure that one with the same scenarios.
    """

    def __init__(
        self, app: str, env: dict[str, str], log_dir: Path, pythonpath: str | None = None
    ) -> None:
        self.app = app
        self.port = free_port()
        self.log = log_dir / f"{app.replace(':', '_')}-{self.port}.log"
        self.cwd = log_dir  # not the repo: ``python -m`` puts the cwd first on sys.path
        paths = [p for p in (pythonpath, str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p]
        self.env = dict(os.environ, **env, PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1")
        self.pid: int | None = None

    def start(self, timeout: float = 30.0) -> Server:
        with open(self.log, "wb") as logf:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "uvicorn", self.app, "--host", "127.0.0.1", "--port", str(self.port)),
                    *UVICORN_FLAGS,
                ],
                cwd=str(self.cwd),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = proc.pid
        _PIDS[proc.pid] = f"server {self.app} :{self.port}"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not _alive(proc.pid):
                raise RuntimeError(f"{self.app} exited at startup:\n{self.log_tail()}")
            if _port_accepts(self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.app} not listening after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.pid is not None:
            stop_pid(self.pid)

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return "<no log>"

    def log_errors(self) -> int:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for ln in text.splitlines() if "ERROR" in ln or "Traceback" in ln)


class LoadWorker:
    """A wsload.py process and its JSON-lines control pipe."""

    def __init__(self, proc: asyncio.subprocess.Process, tag: str) -> None:
        self.proc, self.tag, self.pid = proc, tag, proc.pid

    @classmethod
    async def spawn(cls, tag: str, m: int, log_dir: Path, phases: int = 2) -> LoadWorker:
        errf = _open_append(log_dir / f"client-{tag}.log")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "wsload.py"),
                "--m",
                str(m),
                "--phases",
                str(phases),
                "--max-seconds",
                "900",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errf,
                start_new_session=True,
                limit=1 << 24,
            )
        finally:
            errf.close()
        _PIDS[proc.pid] = f"client {tag}"
        worker = cls(proc, tag)
        await worker._read(20)
        return worker

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"load worker {self.tag} exited (see its log)")
        result: dict[str, Any] = json.loads(line)
        return result

    async def call(self, op: str, timeout: float = 60.0, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, **kw}) + "\n").encode())
        await self.proc.stdin.drain()
        res = await self._read(timeout)
        if "error" in res:
            raise RuntimeError(f"load worker {self.tag} {op}: {res['error']}")
        return res

    async def quit(self) -> None:
        """Ask the worker to close its sockets and exit; stop it by PID if it does not."""
        with contextlib.suppress(Exception):
            await self.call("quit", timeout=5)
        try:
            await asyncio.wait_for(self.proc.wait(), 3.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()  # SIGKILL to this PID
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.proc.wait(), 3.0)
        _PIDS.pop(self.pid, None)


def machine_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over ``seconds`` (from /proc/stat), 0..1."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals), idle

    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def wait_quiet(max_wait: float, threshold: float = 0.15) -> float:
    """Wait (at most ``max_wait`` s) until other work on the machine leaves the CPUs mostly
    idle; returns the last busy fraction seen. Measurements taken while something else runs
    (a test suite, a build) are noisy in msg/s and latency; CPU per delivery much less."""
    end = time.monotonic() + max_wait
    busy = machine_busy()
    while busy > threshold and time.monotonic() < end:
        busy = machine_busy()
    return busy


# -- phases -------------------------------------------------------------------------------------


def percentile(sorted_vals: Any, q: float) -> float | None:
    if not len(sorted_vals):
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q * len(sorted_vals)) - 1))
    return float(sorted_vals[k])


@dataclass
class Phase:
    """One publish run: M messages of ``kind`` round-robin over ``targets``."""

    index: int
    kind: str  # "topic", "send" (seed protocol), "conn", "user"
    targets: list[str]
    expected: int  # unique deliveries expected over the subscriber groups
    rate: float = 0.0
    window: int = 0
    cap_s: float = 60.0
    stall_s: float = 3.0
    groups: list[str] = field(default_factory=lambda: ["sub"])
    op: str = "publish"  # the load worker's publish op ("publish_many": many publishers)
    count: int = 0  # messages to send (0: the load worker's M)
    pad: int = 0  # payload padding in bytes (0: ~100-byte payloads)


async def run_phase(
    phase: Phase,
    pub: LoadWorker,
    subs: list[LoadWorker],
    servers: list[Server],
    redis_pid: int | None,
    lat_dir: Path,
) -> dict[str, Any]:
    """Publish, wait until every delivery arrived (or a stall / the cap), and measure."""
    pids = [s.pid for s in servers]
    c0 = [cpu_s(p) for p in pids]
    r0 = cpu_s(redis_pid)
    t0 = time.monotonic()
    extra: dict[str, Any] = {"pad": phase.pad} if phase.pad else {}
    if phase.count:
        extra["count"] = phase.count
    rss_start = sum(rss_kib(p) for p in pids)
    rss_peak = rss_start
    task = asyncio.create_task(
        pub.call(
            phase.op,
            timeout=phase.cap_s + 30,
            phase=phase.index,
            kind=phase.kind,
            targets=phase.targets,
            rate=phase.rate,
            window=phase.window,
            deadline_s=phase.cap_s,
            **extra,
        )
    )
    outcome = "complete"
    last_total, last_change = -1, time.monotonic()
    try:
        while True:
            await asyncio.sleep(0.05)
            total = 0
            for w in subs:
                for g in phase.groups:
                    total += (await w.call("status", group=g))["count"][phase.index]
            t = time.monotonic()
            rss_peak = max(rss_peak, sum(rss_kib(p) for p in pids))
            if total != last_total:
                last_total, last_change = total, t
            if task.done() and total >= phase.expected:
                break
            if task.done() and t - last_change > phase.stall_s:
                outcome = f"stalled ({phase.stall_s:.0f}s without a delivery)"
                break
            if t - t0 > phase.cap_s + 5:
                outcome = f"cut off at {phase.cap_s:.0f}s"
                break
        wall = time.monotonic() - t0
        c1 = [cpu_s(p) for p in pids]
        r1 = cpu_s(redis_pid)
        pres = await task
    finally:
        if not task.done():
            task.cancel()
    lat = array("d")
    unique = dups = 0
    last_rx: list[float] = []
    for w in subs:
        for g in phase.groups:
            path = lat_dir / f"{w.tag}-{g}-{phase.index}-{time.monotonic_ns()}.bin"
            st = await w.call("stats", phase=phase.index, lat_path=str(path), group=g)
            lat.frombytes(_take_file(path))
            unique += st["unique"]
            dups += st["dups"]
            if st["last_rx"]:
                last_rx.append(st["last_rx"])
    ordered = sorted(lat)
    span = max(last_rx) - pres["first_send"] if last_rx else None
    server_cpu = sum(b - a for a, b in zip(c0, c1, strict=True))
    return {
        "outcome": outcome,
        "sent": pres["sent"],
        "send_rate": pres["send_rate"],
        "window_stalls": pres["window_stalls"],
        "expected": phase.expected,
        "delivered": unique,
        "lost": phase.expected - unique,
        "duplicates": dups,
        "delivered_msgs_s": unique / span if span else None,
        "latency_ms": {
            "p50": _ms(percentile(ordered, 0.5)),
            "p99": _ms(percentile(ordered, 0.99)),
            "max": _ms(ordered[-1] if ordered else None),
        },
        "server_cpu_s": server_cpu,
        "server_cpu_per_server_s": [b - a for a, b in zip(c0, c1, strict=True)],
        "server_cpu_s_per_1k": server_cpu / (unique / 1000) if unique else None,
        "server_rss_kib": [rss_kib(p) for p in pids],
        "server_rss_peak_growth_kib": rss_peak - rss_start,
        "server_cpu_us_per_msg": server_cpu / pres["sent"] * 1e6 if pres["sent"] else None,
        "redis_cpu_s": r1 - r0,
        "wall_s": wall,
    }


def _open_append(path: Path) -> Any:
    return open(path, "ab")  # closed by the caller once the child has it


def _take_file(path: Path) -> bytes:
    """Read a file the load worker wrote, then remove it."""
    data = path.read_bytes()
    path.unlink()
    return data


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 3)
