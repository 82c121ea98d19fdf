"""`branchsync sync` against the real dev host and Azurite ends acknowledged when the cloud
applies promptly: after its push it asks again for the acknowledgement, within its wait."""

import json
from pathlib import Path

import pytest

from tests.processes import cli, enrolled_till, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


def enrolled_till_with_sales(tmp_path, admin_env, cloud, branch_name, sales: int) -> tuple[Path, dict]:
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    sku = f"TEA-{branch_name}"
    home = enrolled_till(tmp_path, env, branch_name, sku, "চা পাতা Tea", "120.00")
    for i in range(sales):
        cli("branchsync", "--home", home, "sale", "add", f"{sku}={1 + i}", env=env)
    return home, env


def test_one_sync_pushes_and_ends_with_every_sale_acknowledged(tmp_path, admin_env, cloud, branch_name):
    home, env = enrolled_till_with_sales(tmp_path, admin_env, cloud, branch_name, 4)
    # A generous bound for a busy machine: the sync returns as soon as the acknowledgement is in.
    out = cli("branchsync", "--home", home, "sync", "--ack-wait", "60", env=env)
    assert "pushed 4 sales in 1 messages; 4 acknowledged by head office, 0 still on their way" in out
    status = json.loads(cli("branchsync", "--home", home, "status", "--json", env=env))
    assert status["pending"] == 0 and status["applied_through"] == 4


def test_a_sync_told_not_to_wait_says_its_sales_are_still_on_their_way(tmp_path, admin_env, cloud, branch_name):
    home, env = enrolled_till_with_sales(tmp_path, admin_env, cloud, branch_name, 2)
    out = cli("branchsync", "--home", home, "sync", "--ack-wait", "0", env=env)
    assert "pushed 2 sales in 1 messages; 0 acknowledged by head office, 2 still on their way" in out
    # A later sync brings the acknowledgement once the cloud has applied them (a sync that pushes
    # nothing does not wait, so ask until it has: the queue function runs on its own time).
    def acknowledged() -> str | None:
        said = cli("branchsync", "--home", home, "sync", "--ack-wait", "0", env=env)
        return said if "2 acknowledged by head office" in said else None

    later = wait_for(acknowledged, timeout=60, every=0.5)
    assert later and "pushed 0 sales" in later and "0 still on their way" in later
