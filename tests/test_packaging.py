"""The wheel ships templates/ and specs/ inside the package and declares the console script.

Builds the real wheel, installs it with ``--no-deps --no-index`` into a fresh virtualenv and
inspects the installed tree from that virtualenv's own Python, without importing asyncws (its
dependencies are not installed there).
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT

pytestmark = pytest.mark.slow

_INSPECT = """
import json, sysconfig
from pathlib import Path

pkg = Path(sysconfig.get_paths()["purelib"]) / "asyncws"
print(json.dumps({
    "package": str(pkg),
    "init": (pkg / "__init__.py").is_file() or (pkg / "py.typed").is_file(),
    "templates_readme": (pkg / "templates" / "README.md").is_file(),
    "specs_readme": (pkg / "specs" / "README.md").is_file(),
}))
"""


def _run(argv: list[str], *, cwd: Path | None = None) -> str:
    result = subprocess.run(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(argv)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir)], cwd=REPO_ROOT)
    wheels = sorted(outdir.glob("asyncws-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points_text = zf.read(entry_points).decode()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()

    assert "asyncws/templates/README.md" in names
    assert "asyncws/specs/README.md" in names
    assert "asyncws/py.typed" in names
    # Nothing but the package and its metadata.
    assert all(n.startswith(("asyncws/", "asyncws-0.1.0.dist-info/")) for n in names), names
    assert "[console_scripts]" in entry_points_text
    assert "asyncws = asyncws.cli:main" in entry_points_text
    assert "Version: 0.1.0" in metadata
    assert "Requires-Python: >=3.11" in metadata


def test_wheel_installs_with_data(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # The dev venv's pip installs into the fresh venv (pip's --python), which has no pip.
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            str(wheel),
        ]
    )
    found = json.loads(_run([str(python), "-I", "-c", _INSPECT]))
    assert Path(found["package"]).is_relative_to(env_dir), found
    assert found["init"], found
    assert found["templates_readme"], found
    assert found["specs_readme"], found
    assert (env_dir / "bin" / "asyncws").is_file()
