"""End to end: the real console scripts as processes, the dev host, and Azurite."""

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from headoffice.stand_ins import free_port, start_cloud

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
BIN = Path(sys.executable).parent


def cli(*args, env, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], env=env, text=True, capture_output=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def write_catalog(path: Path, rows: list[tuple]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sku", "name", "price", "unit"])
        w.writerows(rows)
    return path


def enrolled_branch(tmp_path: Path, name: str, env: dict) -> Path:
    code = cli("branchsync-admin", "branch", "add", name, env=env).stdout.strip()
    home = tmp_path / name
    cli("branchsync", "--home", home, "enroll", code, env=env)
    return home


def status(home: Path, env: dict) -> dict:
    return json.loads(cli("branchsync", "--home", home, "status", "--json", env=env).stdout)


def wait_applied(name: str, through: int, env: dict, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        listing = json.loads(cli("branchsync-admin", "branches", "--json", env=env).stdout)["branches"]
        mine = next(b for b in listing if b["branch"] == name)
        if mine["applied_through"] >= through or time.monotonic() > deadline:
            return mine
        time.sleep(0.3)


def exported(name: str, env: dict) -> list[dict]:
    out = cli("branchsync-admin", "sales", "export", "--branch", name, "--format", "jsonl", env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture
def env(admin_env, cloud):
    return {**admin_env, "BRANCHSYNC_URL": cloud.url}


def test_a_sale_recorded_offline_reaches_the_cloud_exactly_once(tmp_path, env, branch_name):
    sku = f"DAL-{branch_name}"
    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "c.csv", [(sku, "মসুর ডাল", "140.50", "kg")]), env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)

    first = cli("branchsync", "--home", home, "sale", "add", f"{sku}=1.250", "--payment", "cash", env=env)
    cli("branchsync", "--home", home, "sale", "add", f"{sku}=2@130:end of day", "--pay", "bkash:9C7D2XK41Q", env=env)
    cli("branchsync", "--home", home, "sale", "void", "1", env=env)
    assert "1" in first.stdout
    assert status(home, env)["pending"] == 3

    cli("branchsync", "--home", home, "sync", env=env)
    assert wait_applied(branch_name, 3, env)["applied_through"] == 3
    cli("branchsync", "--home", home, "sync", env=env)  # a second push of the same sales changes nothing
    cli("branchsync", "--home", home, "sync", env=env)

    sales = exported(branch_name, env)
    assert [s["sale"]["seq"] for s in sales] == [1, 2, 3]
    assert [s["sale"]["total"] for s in sales] == [17563, 26000, -17563]
    assert sales[1]["sale"]["lines"][0]["list_price"] == 14050 and sales[1]["sale"]["lines"][0]["unit_price"] == 13000
    after = status(home, env)
    assert after["pending"] == 0 and after["applied_through"] == 3 and after["last_error"] in (None, "")


def test_catalog_changes_and_deletions_reach_the_branch(tmp_path, env, branch_name):
    keep, gone = f"RICE-{branch_name}", f"SALT-{branch_name}"
    cli("branchsync-admin", "catalog", "import",
        write_catalog(tmp_path / "a.csv", [(keep, "চাল ৫ কেজি Rice", "420", "bag"), (gone, "লবণ Salt", "40", "pcs")]), env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)
    assert gone in cli("branchsync", "--home", home, "catalog", "search", gone, env=env).stdout

    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "b.csv", [(keep, "চাল ৫ কেজি Rice", "455.25", "bag")]), env=env)
    cli("branchsync-admin", "catalog", "delete", gone, env=env)
    cli("branchsync", "--home", home, "sync", env=env)

    # By this test's SKU: every test shares one cloud catalog, and other tests sell "চাল" too.
    found = cli("branchsync", "--home", home, "catalog", "search", keep, env=env).stdout
    assert keep in found and "455.25" in found
    assert "no product matches" in cli("branchsync", "--home", home, "catalog", "search", gone, env=env).stdout
    refused = cli("branchsync", "--home", home, "sale", "add", f"{gone}=1", env=env, check=False)
    assert refused.returncode == 2 and gone in refused.stderr + refused.stdout
    assert status(home, env)["pending"] == 0



def test_catalog_compact_through_the_manage_route_keeps_a_synced_branch_exact(tmp_path, env, branch_name):
    keep, gone = f"OIL-{branch_name}", f"SUGAR-{branch_name}"
    cli("branchsync-admin", "catalog", "import",
        write_catalog(tmp_path / "a.csv", [(keep, "Soybean oil", "180", "l"), (gone, "Sugar", "130", "kg")]), env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)
    cli("branchsync-admin", "catalog", "delete", gone, env=env)
    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "b.csv", [(keep, "Soybean oil", "185", "l")]), env=env)

    out = cli("branchsync-admin", "catalog", "compact", env=env).stdout
    assert out.startswith("compacted the catalog: purged ") and "a fresh pull now reads" in out
    cli("branchsync", "--home", home, "sync", env=env)
    assert "185.00" in cli("branchsync", "--home", home, "catalog", "search", keep, env=env).stdout
    assert "no product matches" in cli("branchsync", "--home", home, "catalog", "search", gone, env=env).stdout
    refused = cli("branchsync-admin", "--url", "http://127.0.0.1:9", "catalog", "compact", env=env, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr

def test_sync_without_the_cloud_exits_non_zero_with_one_line_and_loses_nothing(tmp_path, storage, admin_env, branch_name):
    port = free_port()
    own = start_cloud(tmp_path / "cloud", storage, admin_env["BRANCHSYNC_ADMIN_KEY"], port=port)
    env = {**admin_env, "BRANCHSYNC_URL": own.url}
    try:
        sku = f"TEA-{branch_name}"
        cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "c.csv", [(sku, "চা পাতা", "90", "pcs")]), env=env)
        home = enrolled_branch(tmp_path, branch_name, env)
        cli("branchsync", "--home", home, "sync", env=env)
        own.stop()

        cli("branchsync", "--home", home, "sale", "add", f"{sku}=2", env=env)
        failed = cli("branchsync", "--home", home, "sync", env=env, check=False)
        assert failed.returncode != 0
        reason = [line for line in failed.stderr.splitlines() if line.strip()]
        assert len(reason) == 1, failed.stderr
        offline = status(home, env)
        assert offline["pending"] == 1 and offline["last_error"]

        own = start_cloud(tmp_path / "cloud", storage, admin_env["BRANCHSYNC_ADMIN_KEY"], port=port)
        cli("branchsync", "--home", home, "sync", env=env)
        assert wait_applied(branch_name, 1, env)["applied_through"] == 1
        assert [s["sale"]["total"] for s in exported(branch_name, env)] == [18000]
    finally:
        own.stop()


def test_a_second_sync_while_one_runs_exits_at_once_saying_so(tmp_path, env, branch_name):
    home = enrolled_branch(tmp_path, branch_name, env)
    # Hold the same lock a running sync holds (the lock file is the sync engine's seam).
    with FileLock(str(home / "sync.lock"), timeout=0):
        started = time.monotonic()
        second = cli("branchsync", "--home", home, "sync", env=env, check=False)
    assert second.returncode == 4
    assert "already running" in (second.stderr + second.stdout).lower()
    assert time.monotonic() - started < 30


def test_status_json_has_the_documented_keys(tmp_path, env, branch_name):
    home = enrolled_branch(tmp_path, branch_name, env)
    keys = set(status(home, env))
    assert {"pending", "applied_through", "catalog_version", "last_pull", "last_push", "last_error"} <= keys
    assert "secret" not in json.dumps(status(home, env)).lower()


def test_an_enrollment_code_works_only_once(tmp_path, env, branch_name):
    code = cli("branchsync-admin", "branch", "add", branch_name, env=env).stdout.strip()
    cli("branchsync", "--home", tmp_path / "one", "enroll", code, env=env)
    again = cli("branchsync", "--home", tmp_path / "two", "enroll", code, env=env, check=False)
    assert again.returncode != 0 and "enroll" in (again.stderr + again.stdout).lower()


def test_the_admin_cli_refuses_to_run_without_the_admin_key(env):
    no_key = {k: v for k, v in env.items() if k != "BRANCHSYNC_ADMIN_KEY"}
    proc = cli("branchsync-admin", "branches", env=no_key, check=False)
    assert proc.returncode == 2 and "BRANCHSYNC_ADMIN_KEY" in proc.stderr
    wrong = cli("branchsync-admin", "branches", env={**env, "BRANCHSYNC_ADMIN_KEY": "wrong"}, check=False)
    assert wrong.returncode == 1 and "refused the admin key" in " ".join(wrong.stderr.split())
