"""Smoke test of the BUILT one-file executable (not the Python sources) against the local cloud.

Head office is played by `branchsync-admin` from the project's environment; the branch
is the built binary: --version, enroll, sale add, sync, status, against the dev host and
Azurite (the `cloud` fixture).
"""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The first test may build the binary (about a minute with a fresh build environment).
pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.azurite, pytest.mark.timeout(900)]

MAX_SIZE = 35 * 1000 * 1000  # bytes: the budget for the one-file executable


def run(exe: Path, *args, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(exe), *map(str, args)], env=env, text=True, encoding="utf-8",
                          capture_output=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def admin(*args, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "headoffice.admin_cli", *map(str, args)], env=env, text=True,
                          encoding="utf-8", capture_output=True, timeout=120)
    assert proc.returncode == 0, f"admin {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def env(admin_env, cloud, tmp_path) -> dict:
    clean = {k: v for k, v in admin_env.items() if k != "BRANCHSYNC_HOME"}
    return {**clean, "BRANCHSYNC_URL": cloud.url, "PYTHONIOENCODING": "utf-8"}


def test_the_executable_prints_its_version_and_stays_within_the_size_budget(exe):
    proc = run(exe, "--version", env={**os.environ})
    assert proc.stdout.startswith("branchsync ") and "(protocol " in proc.stdout
    assert "unknown" not in proc.stdout
    assert exe.stat().st_size <= MAX_SIZE, f"{exe} is {exe.stat().st_size} bytes, over {MAX_SIZE}"


def test_the_executable_enrolls_sells_syncs_and_reports_against_the_local_cloud(exe, env, tmp_path, branch_name):
    sku = f"DAL-{branch_name}"
    catalog = tmp_path / "catalog.csv"
    with open(catalog, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["sku", "name", "price", "unit"], [sku, "মসুর ডাল", "140.50", "kg"]])
    admin("catalog", "import", catalog, env=env)
    code = admin("branch", "add", branch_name, env=env).strip()
    home = tmp_path / "till"

    assert branch_name in run(exe, "--home", home, "enroll", code, env=env).stdout
    run(exe, "--home", home, "sync", env=env)
    assert "sale 1 recorded: total 281.00 taka" in run(exe, "--home", home, "sale", "add", f"{sku}=2", env=env).stdout
    pushed = run(exe, "--home", home, "sync", env=env).stdout
    assert "pushed 1 sales" in pushed

    deadline = time.monotonic() + 60
    while True:  # the queue function applies the sale; the next pull brings the acknowledgement
        run(exe, "--home", home, "sync", env=env)
        info = json.loads(run(exe, "--home", home, "status", "--json", env=env).stdout)
        if info["applied_through"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert info["branch"] == branch_name and info["applied_through"] == 1 and info["pending"] == 0
    assert info["last_error"] is None and info["products"] >= 1  # the catalog is shared by every test's branch
    assert sku in run(exe, "--home", home, "catalog", "search", sku, env=env).stdout
    assert "secret" not in json.dumps(info).lower()
    assert "branch" in run(exe, "--home", home, "status", env=env).stdout

    # The field commands work in the frozen build too.
    report = json.loads(run(exe, "--home", home, "doctor", "--json", env=env, check=False).stdout)
    levels = {f["check"]: f["level"] for f in report["findings"]}
    assert levels["enrolled, credentials accepted"] == "ok" and levels["cloud reachable"] == "ok"
    assert levels["database integrity"] == "ok" and levels["clock"] == "ok"
    task = run(exe, "--home", home, "schedule", "install", "--every", "15m", "--dry-run", env=env)
    assert "<Interval>PT15M</Interval>" in task.stdout and str(exe.resolve()) in task.stdout
    assert "schtasks /Create /TN branchsync-sync /XML" in task.stderr
    assert "backup written:" in run(exe, "--home", home, "backup", env=env).stdout
    log = (home / "logs" / "branchsync.log").read_text("utf-8")
    assert "sync ok: " in log and "pushed 1 sales" in log


def test_the_default_data_home_is_not_next_to_the_executable_nor_in_its_unpack_folder(exe, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "BRANCHSYNC_HOME"}
    # Point the platform's data folders at tmp_path so the test leaves nothing behind.
    env.update({"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg"),
                "PROGRAMDATA": str(tmp_path / "ProgramData"), "LOCALAPPDATA": str(tmp_path / "LocalAppData")})
    home = Path(json.loads(run(exe, "status", "--json", env=env).stdout)["home"]).resolve()
    assert home.is_relative_to(tmp_path.resolve())
    assert not home.is_relative_to(exe.resolve().parent)
    assert not home.name.startswith("_MEI") and not any(part.startswith("_MEI") for part in home.parts)


def test_the_executable_serves_the_till_page_with_its_assets(exe, tmp_path):
    import httpx

    from headoffice.stand_ins import free_port

    port = free_port()
    proc = subprocess.Popen([str(exe), "--home", str(tmp_path / "till"), "till", "--port", str(port), "--no-browser"],
                            env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "no answer"
                time.sleep(0.2)
        assert page.status_code == 200 and 'name="till-token"' in page.text
        for asset in ("till.js", "i18n.js", "till.css", "receipt.js"):
            assert httpx.get(f"http://127.0.0.1:{port}/static/{asset}", timeout=5).status_code == 200, asset
        assert httpx.get(f"http://127.0.0.1:{port}/api/products?q=rice", timeout=5).json() == {"products": []}
    finally:
        proc.terminate()
        proc.wait(10)
