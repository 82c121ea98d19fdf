"""Helpers for tests that drive real processes: wait for what they do, run the console scripts."""

import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv's console scripts (branchsync, branchsync-admin, ...)


def wait_for(check, timeout=20.0, every=0.1):
    """Call `check` until it returns something truthy or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def cli(*args, env) -> str:
    """Run a console script to success and return its output (the failure shows both streams)."""
    proc = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], env=env, text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def enrolled_till(tmp_path: Path, env: dict, branch_name: str, sku: str, name: str, price: str) -> Path:
    """Head office imports one product and adds the branch; a till enrolls and syncs. Returns its home."""
    catalog = tmp_path / "c.csv"
    catalog.write_text(f"sku,name,price\n{sku},{name},{price}\n", encoding="utf-8")
    cli("branchsync-admin", "catalog", "import", catalog, env=env)
    code = cli("branchsync-admin", "branch", "add", branch_name, env=env).strip()
    home = tmp_path / "till"
    cli("branchsync", "--home", home, "enroll", code, env=env)
    cli("branchsync", "--home", home, "sync", env=env)
    return home
