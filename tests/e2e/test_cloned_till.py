"""A branch database copied to a second PC that syncs as the same branch is refused, not double counted."""

import json
import shutil
import time

import pytest

from tests.e2e.test_console_scripts import cli, enrolled_branch, exported, write_catalog

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


def test_a_cloned_till_is_noticed_and_its_sales_are_not_counted(tmp_path, admin_env, cloud, branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    sku = f"OIL-{branch_name}"
    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "c.csv", [(sku, "সয়াবিন তেল", "180", "ltr")]), env=env)
    real = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", real, "sync", env=env)
    cli("branchsync", "--home", real, "sale", "add", f"{sku}=1", env=env)
    clone = tmp_path / "copied-to-another-pc"
    shutil.copytree(real, clone)

    cli("branchsync", "--home", real, "sale", "add", f"{sku}=2", env=env)   # sale 2 on the real till
    cli("branchsync", "--home", clone, "sale", "add", f"{sku}=5", env=env)  # another sale 2 on the copy
    cli("branchsync", "--home", real, "sync", env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(exported(branch_name, env)) < 2:
        time.sleep(0.3)
    cli("branchsync", "--home", clone, "sync", env=env)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        letters = [d for d in json.loads(cli("branchsync-admin", "deadletter", "list", "--json", env=env).stdout)["dead_letters"]
                   if d["branch"] == branch_name]
        if letters:
            break
        time.sleep(0.3)
    assert [d["code"] for d in letters] == ["cloned_till"]
    assert [s["sale"]["total"] for s in exported(branch_name, env)] == [18000, 36000]
    listing = json.loads(cli("branchsync-admin", "branches", "--json", env=env).stdout)["branches"]
    assert "cloned_till" in next(b for b in listing if b["branch"] == branch_name)["last_error"]

    # The next pull tells each PC: the copy that its sale was refused, the real till that another PC's was.
    for home in (clone, real):
        cli("branchsync", "--home", home, "sync", env=env)
    copy_says = json.loads(cli("branchsync", "--home", clone, "status", "--json", env=env).stdout)["last_refusal"]
    assert copy_says["code"] == "cloned_till" and copy_says["this_till"] is True
    assert copy_says["says"].startswith("the cloud refused sales from this till")
    human = cli("branchsync", "--home", clone, "status", env={**env, "COLUMNS": "250"}).stdout
    assert "refused by the cloud" in human and "What to do:" in human
    doctor = cli("branchsync", "--home", clone, "doctor", "--json", env=env, check=False)
    refused = next(f for f in json.loads(doctor.stdout)["findings"] if f["check"] == "sales refused by the cloud")
    assert doctor.returncode == 1 and refused["level"] == "fail"
    real_says = json.loads(cli("branchsync", "--home", real, "status", "--json", env=env).stdout)["last_refusal"]
    assert real_says["this_till"] is False and "another PC" in real_says["says"]
