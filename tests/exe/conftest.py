"""Fixtures for the smoke test of the BUILT branch executable.

`exe` is the binary under test: $BRANCHSYNC_EXE if set (CI points it at the fresh
build), else dist/branchsync (dist/branchsync.exe on Windows), which is built first with
packaging/exe/build.sh when it is missing or older than the sources it is made from.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "branch_client", ROOT / "shared", ROOT / "packaging" / "exe", ROOT / "pyproject.toml"]
BUILD_TIMEOUT = 900


def default_exe() -> Path:
    return ROOT / "dist" / ("branchsync.exe" if sys.platform == "win32" else "branchsync")


def newest_source_mtime() -> float:
    newest = 0.0
    for source in SOURCES:
        files = [source] if source.is_file() else [p for p in source.rglob("*")
                                                    if p.is_file() and "__pycache__" not in p.parts]
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def needs_build(exe: Path) -> bool:
    return not exe.exists() or exe.stat().st_mtime < newest_source_mtime()


@pytest.fixture(scope="session")
def exe(tmp_path_factory) -> Path:
    given = os.environ.get("BRANCHSYNC_EXE")
    if given:
        path = Path(given)
        assert path.is_file(), f"BRANCHSYNC_EXE={given} is not a file"
        return path
    path = default_exe()
    with FileLock(str(ROOT / "build" / "exe-build.lock") if (ROOT / "build").is_dir()
                  else str(tmp_path_factory.getbasetemp() / "exe-build.lock")):
        if needs_build(path):
            proc = subprocess.run(["bash", str(ROOT / "packaging" / "exe" / "build.sh")], cwd=ROOT,
                                  capture_output=True, text=True, timeout=BUILD_TIMEOUT)
            assert proc.returncode == 0, f"the exe build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert path.is_file()
    return path


if sys.platform == "win32":  # pragma: no cover - the Windows CI runner
    # The shared stand-ins (headoffice/stand_ins.py) start Azurite through the POSIX shim in
    # node_modules/.bin and stop processes with killpg; on Windows use the .cmd shim and
    # end the process tree with taskkill instead.
    from headoffice import stand_ins

    def _azurite_binary() -> str:
        return str(stand_ins.ROOT / "node_modules" / ".bin" / "azurite.cmd")

    def _stop(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(proc.pid)], capture_output=True)
            proc.wait(timeout=10)

    stand_ins.azurite_binary = _azurite_binary
    stand_ins._stop = _stop
