"""The short form of the soak (benchmarks/soak.py): ~20 s of connection churn across two
instances on Redis, then every count is back to its baseline and memory stopped growing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_soak_short_form_leaks_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/soak.py", "--seconds", "20", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    print(proc.stdout)
    (report,) = tmp_path.glob("soak-*.json")
    (samples,) = tmp_path.glob("soak-*.csv")
    result = json.loads(report.read_text())
    failed = [c for c in result["checks"] if not c["ok"]]
    assert proc.returncode == 0 and not failed, (failed, proc.stdout, proc.stderr[-3000:])
    assert result["churn"]["cycles"] > 100
    assert result["churn"]["errors"] == {}
    # the churn really happened on both instances, and was sampled over time
    assert len(samples.read_text().splitlines()) > 20
    for i in (0, 1):
        assert max(r["connections"] for r in result["samples"] if r["instance"] == i) > 0
