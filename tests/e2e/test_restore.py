"""A till restored from a backup while its lost database's last message is still queued loses nothing.

The held message stands for a cloud outage: it is sent to the Azurite queue with a long
visibility timeout (invisible to the dev host's poller), and released after the restored
till has sold and synced. Before numbering generations, the restored till reused numbers
4 and 5, and the held sales 4, 5, 6 were dead-lettered as a cloned till, for good.
"""

import json
import time
from datetime import datetime, timezone

import pytest
from azure.storage.queue import QueueClient

from branch_client.store import Store
from shared.encoding import pack_sales
from tests.e2e.test_console_scripts import cli, enrolled_branch, exported, status, write_catalog

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


def branch_info(name: str, env: dict) -> dict:
    listing = json.loads(cli("branchsync-admin", "branches", "--json", env=env).stdout)["branches"]
    return next(b for b in listing if b["branch"] == name)


def wait_for(predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.3)


def test_a_restore_with_the_old_database_s_message_still_queued_counts_every_sale_once(
        tmp_path, admin_env, cloud, storage, branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    sku = f"TEA-{branch_name}"
    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "c.csv", [(sku, "চা পাতা", "250", "pcs")]), env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)
    for qty in (1, 2, 3):                                        # sales 1-3, synced
        cli("branchsync", "--home", home, "sale", "add", f"{sku}={qty}", env=env)
    cli("branchsync", "--home", home, "sync", env=env)
    saved = cli("branchsync", "--home", home, "backup", env=env).stdout.split("backup written: ")[1].strip()
    for qty in (4, 5, 6):                                        # sales 4-6, pushed as the till would...
        cli("branchsync", "--home", home, "sale", "add", f"{sku}={qty}", env=env)
    with Store(home) as store:
        identity, todo = store.identity(), store.sales_to_push()
        [(held_sales, text)] = pack_sales(identity.branch, todo, identity.secret, datetime.now(timezone.utc))
        queue = QueueClient.from_connection_string(storage, "sales")
        held = queue.send_message(text, visibility_timeout=3600)  # ...but the cloud does not get to it
        store.mark_pushed([s.seq for s in held_sales])
    assert [s.seq for s in held_sales] == [4, 5, 6]

    restored = cli("branchsync", "--home", home, "restore", saved, env=env)
    assert "new sales are numbered 2-1, 2-2" in restored.stdout
    sold = [cli("branchsync", "--home", home, "sale", "add", f"{sku}={qty}", env=env).stdout.split()[1] for qty in (7, 8)]
    assert sold == ["2-1", "2-2"]
    cli("branchsync", "--home", home, "sync", env=env)
    wait_for(lambda: (branch_info(branch_name, env)["acks"] or [{}])[0].get("applied_through") == 2)

    queue.update_message(held, pop_receipt=held.pop_receipt, visibility_timeout=0)  # the outage ends
    wait_for(lambda: branch_info(branch_name, env)["applied_through"] == 6)
    cli("branchsync", "--home", home, "sync", env=env)

    sales = exported(branch_name, env)
    assert [(e["generation"], e["sale"]["seq"]) for e in sales] == [(1, n) for n in range(1, 7)] + [(2, 1), (2, 2)]
    assert sum(e["sale"]["total"] for e in sales) == sum(range(1, 9)) * 25_000
    letters = [d for d in json.loads(cli("branchsync-admin", "deadletter", "list", "--json", env=env).stdout)["dead_letters"]
               if d["branch"] == branch_name]
    assert letters == []
    info = status(home, env)
    assert info["pending"] == 0 and info["generation"] == 2 and info["last_refusal"] is None
    listed = cli("branchsync", "--home", home, "sale", "list", env={**env, "COLUMNS": "200"}).stdout
    assert " 2-2 " in listed and " 2-1 " in listed                # the printed numbers, unchanged
