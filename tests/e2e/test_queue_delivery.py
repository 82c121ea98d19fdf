"""Queue delivery faults through the real queue and the dev host's poller.

The branch's own sales are recorded and packed by the real branch code; the test then
puts the messages on the Azurite queue itself, in the order a faulty network might
deliver them: reversed, twice, with forged and malformed messages between them.
"""

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient

from branch_client.sale_entry import parse_items
from branch_client.store import Store
from shared.encoding import pack_sales, to_queue_text
from shared.signing import new_secret
from tests.processes import cli, enrolled_till

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
BIN = Path(sys.executable).parent



def test_messages_reversed_duplicated_and_mixed_with_forgeries_are_applied_exactly_once(tmp_path, admin_env, cloud, storage, branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    sku = f"EGG-{branch_name}"
    home = enrolled_till(tmp_path, env, branch_name, sku, "ডিম Egg", "13.50")

    store = Store(home)
    for i in range(60):
        store.record_sale(parse_items([f"{sku}={1 + i % 12}"]), "cash")
    identity = store.identity()
    sales = store.sales_to_push(datetime.now(timezone.utc))
    # A small budget splits the 60 sales into several messages so that order matters.
    packed = pack_sales(identity.branch, sales, identity.secret, datetime.now(timezone.utc), budget=1_200)
    assert len(packed) >= 4
    good = [text for _, text in packed]
    forged = pack_sales(identity.branch, sales[:5], new_secret(), datetime.now(timezone.utc))[0][1]
    malformed = to_queue_text(b"BSQ1 this is not a batch")

    queue = QueueClient.from_connection_string(storage, "sales")
    for text in [*reversed(good), forged, *good, malformed]:
        queue.send_message(text)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = next(b for b in json.loads(cli("branchsync-admin", "branches", "--json", env=env))["branches"]
                    if b["branch"] == branch_name)
        if mine["applied_through"] == 60:
            break
        time.sleep(0.3)
    time.sleep(1)  # let the duplicate deliveries behind the last good one be processed too

    exported = [json.loads(line) for line in
                cli("branchsync-admin", "sales", "export", "--branch", branch_name, "--format", "jsonl", env=env).splitlines()]
    assert [e["sale"]["seq"] for e in exported] == list(range(1, 61))
    assert sum(e["sale"]["total"] for e in exported) == sum(s.total for s in sales)
    listing = next(b for b in json.loads(cli("branchsync-admin", "branches", "--json", env=env))["branches"]
                   if b["branch"] == branch_name)
    assert listing["sales_applied"] == 60 and listing["total_paisa"] == sum(s.total for s in sales)
    assert "signature" in (listing["last_error"] or "")
    # Nothing good ended in the poison queue: bad input is dead-lettered, not retried.
    poison = QueueClient.from_connection_string(storage, "sales-poison")
    assert all(branch_name.encode() not in _body(m.content) for m in poison.peek_messages(max_messages=32))

    # The test, not the till, pushed these sales: the till pushes them once itself (the cloud
    # finds them the same sales and changes nothing), and the sync after that sees them acknowledged.
    cli("branchsync", "--home", home, "sync", env=env)
    cli("branchsync", "--home", home, "sync", env=env)
    assert json.loads(cli("branchsync", "--home", home, "status", "--json", env=env))["pending"] == 0


def _body(text: str) -> bytes:
    import base64
    try:
        return base64.b64decode(text)
    except ValueError:
        return text.encode()
