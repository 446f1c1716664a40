"""The app memprobe.py measures, with a census agent beside it (never in its request path).

    MEMPROBE_TARGET=benchmarks.bench_app:app MEMPROBE_AGENT_PORT=9999 uvicorn benchmarks.memprobe_app:app

``app`` is the target app itself (re-exported, not wrapped: a wrapper would add a coroutine
frame per connection and distort what is measured). Importing this module starts one daemon
thread that listens on 127.0.0.1:``MEMPROBE_AGENT_PORT`` for one-line commands and answers
one JSON line:

* ``census``: live gc-tracked objects by type (``coroutine`` and ``Task`` by the qualified name
  of the coroutine, so the frames an idle connection keeps suspended show up by function);
* ``snap``: a tracemalloc snapshot (needs ``MEMPROBE_TRACE=1``, which starts tracemalloc at
  import: much slower, use it for the "what", never for the RSS figures);
* ``diff``: the allocations grown since ``snap``, by source line, largest first.

The census walks every object while holding the GIL: the server pauses for that long, so
take it only while the connections are idle.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import socket
import threading
import tracemalloc
from collections import Counter
from typing import Any

_TRACE = os.environ.get("MEMPROBE_TRACE") == "1"
if _TRACE:
    tracemalloc.start(int(os.environ.get("MEMPROBE_FRAMES", "1")))

_target = os.environ.get("MEMPROBE_TARGET", "benchmarks.bench_app:app")
_module, _, _attr = _target.partition(":")
app: Any = getattr(importlib.import_module(_module), _attr or "app")

_state: dict[str, Any] = {}


def _name(obj: Any) -> str:
    kind = type(obj).__name__
    if kind in ("coroutine", "async_generator", "generator"):
        return f"{kind} {getattr(obj, '__qualname__', '?')}"
    if kind == "Task":
        coro = obj.get_coro()
        return f"Task {getattr(coro, '__qualname__', '?')}"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def census() -> dict[str, int]:
    gc.collect()
    return dict(Counter(_name(o) for o in gc.get_objects()))


def snap() -> dict[str, Any]:
    if not _TRACE:
        return {"error": "MEMPROBE_TRACE=1 is not set"}
    gc.collect()
    _state["snap"] = tracemalloc.take_snapshot()
    return {"ok": True}


def diff(limit: int = 400) -> dict[str, Any]:
    if not _TRACE or "snap" not in _state:
        return {"error": "no snapshot (MEMPROBE_TRACE=1, then snap)"}
    gc.collect()
    now = tracemalloc.take_snapshot()
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = now.filter_traces(filters).compare_to(_state["snap"].filter_traces(filters), "lineno")
    rows = [
        {
            "where": f"{s.traceback[0].filename}:{s.traceback[0].lineno}",
            "size_diff": s.size_diff,
            "count_diff": s.count_diff,
        }
        for s in stats
        if s.size_diff > 0
    ]
    total = sum(s.size_diff for s in stats)
    return {"total": total, "top": rows[:limit]}


def _serve(port: int) -> None:
    srv = socket.create_server(("127.0.0.1", port))
    while True:
        conn, _ = srv.accept()
        with conn:
            command = conn.makefile("r").readline().strip()
            try:
                answer: Any = {"census": census, "snap": snap, "diff": diff}[command]()
            except Exception as exc:  # report, keep serving
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            conn.sendall((json.dumps(answer) + "\n").encode())


_port = os.environ.get("MEMPROBE_AGENT_PORT")
if _port:
    threading.Thread(target=_serve, args=(int(_port),), daemon=True, name="memprobe").start()
