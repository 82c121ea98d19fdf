"""`branchsync --version` and `--help` must start fast: no pydantic, SQLAlchemy, httpx or azure."""

import subprocess
import sys

HEAVY = ("pydantic", "pydantic_core", "sqlalchemy", "httpx", "azure", "tenacity", "cryptography")

PROBE = """
import sys
sys.argv = ["branchsync", *sys.argv[1:]]
from branch_client import cli
try:
    cli.main()
except SystemExit:
    pass
print("LOADED=" + ",".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def _loaded(*args: str) -> tuple[str, set[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    out, _, loaded = proc.stdout.rpartition("LOADED=")
    return out, set(loaded.strip().split(","))


def test_version_imports_no_heavy_module():
    out, loaded = _loaded("--version")
    assert out.startswith("branchsync ") and "(protocol 1)" in out
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_help_imports_no_heavy_module():
    out, loaded = _loaded("--help")
    assert "sync" in out
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
