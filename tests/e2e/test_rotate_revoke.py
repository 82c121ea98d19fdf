"""Rotating and revoking a branch with the real console scripts, the dev host and Azurite."""

import json
import time

import httpx
import pytest
from azure.storage.queue import QueueClient

from shared.encoding import encode_batch
from shared.models import AppliedSale, SalesBatch
from shared.signing import sign_request
from tests.builders import make_batch
from tests.e2e.test_console_scripts import cli, enrolled_branch, exported, wait_applied, write_catalog

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


@pytest.fixture
def env(admin_env, cloud):
    return {**admin_env, "BRANCHSYNC_URL": cloud.url}


def secret_of(home) -> str:
    return (home / "secret").read_text("ascii").strip()


def branch_row(name, env) -> dict:
    listing = json.loads(cli("branchsync-admin", "branches", "--json", env=env).stdout)["branches"]
    return next(b for b in listing if b["branch"] == name)


def letters_of(name, env, timeout=30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        mine = [d for d in json.loads(cli("branchsync-admin", "deadletter", "list", "--json", env=env).stdout)["dead_letters"]
                if d["branch"] == name]
        if mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.3)


def signed_pull(cloud, name, secret) -> httpx.Response:
    query = {"cursor": "0"}
    headers = sign_request(secret, name, "GET", "/api/pull", query, b"", time.time())
    return httpx.get(f"{cloud.url}/api/pull", params=query, headers=headers, timeout=10)


def test_sales_pushed_before_and_after_a_rotation_are_all_applied_once_and_the_old_secret_stops(
        tmp_path, env, cloud, storage, branch_name):
    sku = f"TEA-{branch_name}"
    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "c.csv", [(sku, "চা পাতা", "95", "pcs")]), env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)
    for _ in range(2):
        cli("branchsync", "--home", home, "sale", "add", f"{sku}=1", env=env)
    cli("branchsync", "--home", home, "sync", env=env)  # sales 1-2, signed with the first secret
    old = secret_of(home)

    assert "new secret stored" in cli("branchsync-admin", "branch", "rotate", branch_name, env=env).stdout
    assert branch_row(branch_name, env)["rotation_pending"]
    assert "rotation pending" in cli("branchsync-admin", "branches", env={**env, "COLUMNS": "250"}).stdout
    cli("branchsync", "--home", home, "sale", "add", f"{sku}=2", env=env)
    synced = cli("branchsync", "--home", home, "sync", env=env)  # takes up the new secret, pushes sale 3 with it
    new = secret_of(home)
    assert new != old and new not in synced.stdout + synced.stderr
    cli("branchsync", "--home", home, "sale", "add", f"{sku}=3", env=env)
    cli("branchsync", "--home", home, "sync", env=env)
    assert wait_applied(branch_name, 4, env)["applied_through"] == 4
    assert not branch_row(branch_name, env)["rotation_pending"]

    # A message signed with the old secret before the switch, delivered only now, is still accepted.
    late = SalesBatch.of(branch_name, 1, AppliedSale.model_validate(exported(branch_name, env)[0]).applied_at,
                         [AppliedSale.model_validate(s).sale for s in exported(branch_name, env)[:2]])
    QueueClient.from_connection_string(storage, "sales").send_message(encode_batch(late, old))
    deadline = time.monotonic() + 30
    while f"duplicate batch branch={branch_name} seqs=1-2" not in cloud.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert f"duplicate batch branch={branch_name} seqs=1-2" in cloud.log.read_text()
    sales = exported(branch_name, env)
    assert [s["sale"]["seq"] for s in sales] == [1, 2, 3, 4]
    assert [s["sale"]["total"] for s in sales] == [9500, 9500, 19000, 28500]
    assert letters_of(branch_name, env, timeout=0) == []

    refused = signed_pull(cloud, branch_name, old)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "bad_signature"
    assert signed_pull(cloud, branch_name, new).status_code == 200


def test_a_revoked_till_is_refused_with_a_clear_message_and_its_queued_messages_are_dead_lettered(
        tmp_path, env, storage, branch_name):
    sku = f"SUGAR-{branch_name}"
    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "c.csv", [(sku, "চিনি", "120", "kg")]), env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)
    cli("branchsync", "--home", home, "sale", "add", f"{sku}=1", env=env)
    # Not waiting for the acknowledgement: the till is revoked before any pull brings it.
    cli("branchsync", "--home", home, "sync", "--ack-wait", "0", env=env)
    assert wait_applied(branch_name, 1, env)["applied_through"] == 1

    assert "revoked" in cli("branchsync-admin", "branch", "revoke", branch_name, env=env).stdout
    # A message the till had already put on the queue when head office revoked it.
    QueueClient.from_connection_string(storage, "sales").send_message(
        encode_batch(make_batch(branch_name, [2, 3]), secret_of(home)))
    [letter] = letters_of(branch_name, env)
    assert letter["code"] == "branch_revoked" and "revoked by head office" in letter["reason"]
    assert "branch_revoked" in cli("branchsync-admin", "deadletter", "list", env={**env, "COLUMNS": "250"}).stdout

    cli("branchsync", "--home", home, "sale", "add", f"{sku}=2", env=env)
    refused = cli("branchsync", "--home", home, "sync", env=env, check=False)
    assert refused.returncode == 5 and "head office revoked this till" in refused.stderr
    row = branch_row(branch_name, env)
    assert row["revoked_at"] and row["applied_through"] == 1
    assert "revoked" in cli("branchsync-admin", "branches", env={**env, "COLUMNS": "250"}).stdout
    # Nothing is lost at the till: sale 2 was never pushed, sale 1's acknowledgement never came back.
    assert json.loads(cli("branchsync", "--home", home, "status", "--json", env=env).stdout)["pending"] == 2
