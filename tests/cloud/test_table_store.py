"""The Table Storage store against a real Azurite: atomic writes, conflicts, sizes, types."""

import os
import random
import re
import string
from datetime import date, datetime, timezone

import pytest

from cloud.apply import ApplyState, plan_apply
from cloud.catalog import Counter, group_writes, plan_upserts
from cloud.store import Conflict, DeadLetter, StoreUnavailable
from cloud.table_store import CHUNK_MAX_BYTES, TableStore
from headoffice.stand_ins import free_port
from tests.builders import make_batch, make_line, make_product, make_sale

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=timezone.utc)


def apply(store, batch):
    before = store.get_sales_state(batch.branch)
    return store.commit_apply(before, plan_apply(before.apply, batch), batch.sent_at, NOW)


def test_tables_are_created_on_first_use(store):
    assert store.get_branch("nobody") is None
    assert store.get_sales_state("nobody").etag is None


def test_applying_a_batch_is_one_transaction_of_chunk_and_state(store):
    state_before = store.get_sales_state("b1")
    plan = plan_apply(state_before.apply, make_batch("b1", range(1, 501)))
    ops = store.ops
    after = store.commit_apply(state_before, plan, NOW, NOW)
    assert store.ops - ops == 1
    assert after.apply == ApplyState(500, ()) and after.sales_applied == 500
    stored = store.get_sales_state("b1")
    assert stored.apply == after.apply and stored.total_paisa == plan.total_paisa and stored.last_push == NOW
    [chunk] = list(store.iter_chunks("b1"))
    assert (chunk.first_seq, chunk.last_seq) == (1, 500)
    assert chunk.sales == plan.new_sales


def test_a_stale_state_etag_is_a_conflict_and_writes_nothing(store):
    stale = store.get_sales_state("b1")
    apply(store, make_batch("b1", [1, 2]))
    plan = plan_apply(stale.apply, make_batch("b1", [3]))
    with pytest.raises(Conflict):
        store.commit_apply(stale, plan, NOW, NOW)
    assert store.get_sales_state("b1").apply.applied_through == 2
    assert [c.first_seq for c in store.iter_chunks("b1")] == [1]


def test_an_existing_chunk_row_is_a_conflict(store):
    apply(store, make_batch("b1", [1, 2]))
    current = store.get_sales_state("b1")
    # A planner that did not see the first apply writes the same chunk again: refused, not doubled.
    with pytest.raises(Conflict):
        store.commit_apply(current, plan_apply(ApplyState(), make_batch("b1", [1, 2])), NOW, NOW)
    assert store.get_sales_state("b1").sales_applied == 2


def test_a_run_too_large_for_one_binary_property_is_split_into_several_chunk_rows(store):
    rng = random.Random(7)
    noise = lambda: "".join(rng.choices(string.ascii_letters, k=150))  # noqa: E731 - incompressible names
    sales = [make_sale(n, [make_line(sku=f"S{n}-{i}", name=noise()) for i in range(4)]) for n in range(1, 401)]
    after = apply(store, make_batch("b1", sales))
    chunks = list(store.iter_chunks("b1"))
    assert len(chunks) > 1
    assert [s.seq for c in chunks for s in c.sales] == list(range(1, 401))
    assert all(c.last_seq + 1 == nxt.first_seq for c, nxt in zip(chunks, chunks[1:]))
    assert after.apply.applied_through == 400
    assert CHUNK_MAX_BYTES <= 64 * 1024


def test_totals_beyond_32_bits_round_trip(store):
    big = [make_sale(n, total=900_000_000) for n in range(1, 6)]
    apply(store, make_batch("b1", big))
    assert store.get_sales_state("b1").total_paisa == 4_500_000_000


def test_iterating_chunks_can_start_at_a_chunk(store):
    apply(store, make_batch("b1", [1, 2, 3]))
    apply(store, make_batch("b1", [4, 5]))
    apply(store, make_batch("b1", [6]))
    assert [c.first_seq for c in store.iter_chunks("b1", 4)] == [4, 6]


def test_catalog_writes_commit_with_the_counter_and_read_back_in_version_order(store):
    base = store.get_catalog_counter()
    assert base.counter == Counter() and base.etag is None
    products = [make_product(f"P{i:03d}", 100 + i, barcode=f"89{i:05d}") for i in range(60)]
    writes = plan_upserts(base.counter, products, {})
    for group in group_writes(writes):
        base = store.commit_catalog(base, Counter(group[-1].row.version), group)
    assert store.get_catalog_counter().counter.last_version == 60
    rows, exhausted = store.read_catalog(0, 1000)
    assert exhausted and [r.version for r in rows] == list(range(1, 61))
    assert rows[5].product == products[5]
    page, exhausted = store.read_catalog(10, 20)
    assert not exhausted and [r.version for r in page] == list(range(11, 31))


def test_a_stale_counter_etag_is_a_conflict(store):
    stale = store.get_catalog_counter()
    store.commit_catalog(stale, Counter(1), plan_upserts(Counter(), [make_product("A")], {}))
    with pytest.raises(Conflict):
        store.commit_catalog(stale, Counter(1), plan_upserts(Counter(), [make_product("B")], {}))


def test_the_index_is_read_by_points_or_by_one_range(store):
    products = [make_product(f"K{i:02d}") for i in range(20)] + [make_product("চাল-৫")]
    base = store.get_catalog_counter()
    for group in group_writes(plan_upserts(base.counter, products, {})):
        base = store.commit_catalog(base, Counter(group[-1].row.version), group)
    few = store.get_catalog_index(["K01", "K05", "nope"])
    assert set(few) == {"K01", "K05"} and few["K05"].version == 6
    many = store.get_catalog_index([f"K{i:02d}" for i in range(0, 20, 2)] + ["চাল-৫", "K99"])
    assert set(many) == {f"K{i:02d}" for i in range(0, 20, 2)} | {"চাল-৫"}


def test_dead_letters_keep_the_raw_message_truncated_with_a_flag(store):
    store.add_dead_letter(DeadLetter(NOW, "malformed_message", "bad magic", b"x" * 70_000, "b1"))
    store.add_dead_letter(DeadLetter(NOW, "unknown_branch", "who?", b"small"))
    letters = sorted(store.list_dead_letters(date(2026, 11, 28)), key=lambda d: d.code)
    assert [(d.code, d.branch, d.truncated, len(d.raw)) for d in letters] == [
        ("malformed_message", "b1", True, 60 * 1024), ("unknown_branch", None, False, 5)]


def test_storage_that_cannot_be_reached_raises_store_unavailable(storage):
    dead = re.sub(r"TableEndpoint=http://127.0.0.1:\d+", f"TableEndpoint=http://127.0.0.1:{free_port()}", storage)
    store = TableStore(dead, "t" + os.urandom(4).hex(), retry_total=0)
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        store.get_branch("b1")


def test_a_missing_connection_string_is_reported_as_unavailable():
    with pytest.raises(StoreUnavailable, match="AzureWebJobsStorage"):
        TableStore("")
