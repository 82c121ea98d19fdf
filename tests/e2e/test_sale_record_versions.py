"""v1, v2 and v3 sales batches side by side on the real queue, applied by the dev host's poller.

A chain upgrades its tills over weeks, so one branch's messages of every version meet on
one queue. The test puts raw queue messages (signed with the enrolled till's secret) on the
Azurite queue and reads the result back through `branchsync-admin sales export`.
"""

import csv
import io
import json
import time

import pytest
from azure.storage.queue import QueueClient

from branch_client.store import Store
from shared.encoding import encode_batch
from shared.models import SalesBatch
from tests.builders import T0, make_batch, make_line3, make_refund, make_sale, make_sale3, make_shift_close
from tests.processes import cli, enrolled_till, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


def _listing(env, branch_name) -> dict:
    return next(b for b in json.loads(cli("branchsync-admin", "branches", "--json", env=env))["branches"]
                if b["branch"] == branch_name)


def _wait_for(env, branch_name, key: str, value: int) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (mine := _listing(env, branch_name))[key] >= value:
            return mine
        time.sleep(0.3)
    raise AssertionError(f"{branch_name}: {key} did not reach {value} within 60 s: {mine}")


def test_old_and_new_tills_messages_apply_on_one_queue_and_export_exactly_their_events(tmp_path, admin_env, cloud,
                                                                                          storage, branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    home = enrolled_till(tmp_path, env, branch_name, f"RICE-{branch_name}", "চাল", "420")
    secret = Store(home).identity().secret
    queue = QueueClient.from_connection_string(storage, "sales")

    old = make_sale(1, total=10_000)
    v1 = make_batch(branch_name, [old, make_sale(2, total=2_000)])
    v2 = SalesBatch.of(branch_name, 2, T0, [make_sale(1, total=700)])
    for batch in (v1, v2):
        queue.send_message(encode_batch(batch, secret))
    _wait_for(env, branch_name, "sales_applied", 3)  # a till pushes a refund only once its sale is acknowledged

    sale = make_sale3(3, [make_line3(qty="2", unit_price=42_000, discount=("percent", "10")),
                          make_line3("OIL-1L", unit_price=18_000, vat_rate="15")], discount=("amount", 1000))
    v3 = make_batch(branch_name, [sale, make_refund(4, old, [(1, "1", 4_000)]),
                                  make_refund(5, sale, [(2, "2", 1)]),  # more oil than was sold: refused
                                  make_shift_close(6)])
    assert (v1.v, v2.v, v3.v) == (1, 2, 3)
    queue.send_message(encode_batch(v3, secret))
    _wait_for(env, branch_name, "applied_through", 6)
    # The refusal is recorded beside the applied batch, not in its transaction: wait for it too.
    listing = wait_for(lambda: (mine := _listing(env, branch_name))["last_error"] and mine, timeout=30) \
        or _listing(env, branch_name)
    takings = 10_000 + 2_000 + 700 + sale.total - 4_000
    # The refused refund keeps its number and counts nowhere; the shift close is no sale.
    assert (listing["total_paisa"], listing["sales_applied"]) == (takings, 5)
    assert "refund_exceeds_sale" in listing["last_error"]

    exported = [json.loads(line) for line in cli("branchsync-admin", "sales", "export", "--branch", branch_name,
                                                 "--format", "jsonl", env=env).splitlines()]
    assert [(e["generation"], e["sale"]["seq"], e["sale"]["kind"], e["sale"]["total"]) for e in exported] == [
        (1, 1, "sale", 10_000), (1, 2, "sale", 2_000), (1, 3, "sale", sale.total), (1, 4, "refund", -4_000),
        (1, 6, "shift_close", 0), (2, 1, "sale", 700)]
    assert exported[2]["sale"] == json.loads(sale.model_dump_json())  # the full v3 event

    rows = list(csv.DictReader(io.StringIO(cli("branchsync-admin", "sales", "export", "--branch", branch_name,
                                               env=env))))
    assert [(r["seq"], r["kind"], r["line"]) for r in rows] == [
        ("1", "sale", ""), ("2", "sale", ""), ("3", "sale", "1"), ("3", "sale", "2"), ("4", "refund", "1"),
        ("6", "shift_close", ""), ("2-1", "sale", "")]
    assert sum(int(r["total_paisa"]) for r in rows if r["total_paisa"]) == takings
    assert [(r["net_paisa"], r["vat_paisa"], r["cashier"]) for r in rows[2:4]] == [
        (str(line.net), str(line.vat), "rahim") for line in sale.lines]
    assert rows[0]["cashier"] == "" and json.loads(rows[0]["lines"])[0]["line_total"] == 10_000


def test_a_till_records_the_complete_record_at_the_command_line_and_the_export_shows_exactly_those_events(
        tmp_path, admin_env, cloud, branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url, "BRANCHSYNC_CASHIER": "Rahim"}
    sku = f"RICE-{branch_name}"
    home = enrolled_till(tmp_path, env, branch_name, sku, "চাল", "420")

    def till(*args):
        return cli("branchsync", "--home", home, *args, env=env)

    till("shift", "open", "--float", "2000")
    till("sale", "add", f"{sku}=2", "--discount", "10%:loyal customer", "--pay", "bkash:9C7D2XK41Q=256",
         "--pay", "cash=500")                                               # 1: 756.00, change 0.00
    till("sale", "add", f"{sku}=1", "--pay", "card")                        # 2: 420.00
    till("sale", "refund", "1", "1=1", "--pay", "cash")                     # 3: 378.00 back in cash
    till("sale", "void", "2")                                               # 4
    till("shift", "close", "--counted", "2122")                             # 5
    till("sync", "--ack-wait", "30")
    till("sync")  # the refund waits for its sale's acknowledgement when cut from its message; never here
    listing = _wait_for(env, branch_name, "applied_through", 5)
    assert (listing["total_paisa"], listing["sales_applied"]) == (75_600 - 37_800, 4)

    exported = [json.loads(line)["sale"] for line in cli("branchsync-admin", "sales", "export", "--branch",
                                                         branch_name, "--format", "jsonl", env=env).splitlines()]
    assert [(e["seq"], e["kind"], e["total"], e["cashier"]) for e in exported] == [
        (1, "sale", 75_600, "Rahim"), (2, "sale", 42_000, "Rahim"), (3, "refund", -37_800, "Rahim"),
        (4, "void", -42_000, "Rahim"), (5, "shift_close", 0, "Rahim")]
    sale = exported[0]
    assert sale["discount"]["amount"] == 8_400 and sale["payments"] == [
        {"method": "mobile", "amount": 25_600, "wallet": "bkash", "txn_id": "9C7D2XK41Q"},
        {"method": "cash", "amount": 50_000, "tendered": 50_000, "change": 0}]
    assert exported[2]["returns"] == [{"line": 1, "sku": sku, "qty": "1", "amount": 37_800}]
    shift = exported[4]["shift"]
    # float 2000 + cash 500 - cash back 378 = 2122, counted exactly; card 420 - 420, bkash 256.
    assert (shift["expected_cash"], shift["counted_cash"]) == (212_200, 212_200)
    assert shift["by_method"] == {"cash": 12_200, "card": 0, "mobile": 25_600}
