"""The Table Storage store against a real Azurite: atomic writes, conflicts, sizes, types."""

import os
import random
import re
import string
from datetime import date, datetime, timezone

import pytest

from branchsync_cloud.apply import ApplyState, plan_apply
from branchsync_cloud.catalog import (
    BUCKETS,
    PROPERTY_MAX_BYTES,
    BucketWrite,
    CatalogTxn,
    Counter,
    IndexEntry,
    sku_bucket,
    encode_bucket,
    plan_delete,
    plan_import,
)
from branchsync_cloud.store import SEGMENT_READ_MAX_PAGES, Conflict, DeadLetter, StorageError, StoreUnavailable
from branchsync_cloud.table_store import CATALOG, CATALOG_PK, CHUNK_MAX_BYTES, TableStore
from headoffice.stand_ins import free_port
from tests.builders import make_batch, make_line, make_product, make_sale

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=timezone.utc)


def apply(store, batch):
    before = store.get_ledger(batch.branch)
    return store.commit_apply(before, plan_apply(before.apply, batch), batch.sent_at, NOW)


def test_tables_are_created_on_first_use(store):
    assert store.get_branch("nobody") is None
    assert store.get_ledger("nobody").etag is None


def test_applying_a_batch_is_one_transaction_of_chunk_and_state(store):
    state_before = store.get_ledger("b1")
    plan = plan_apply(state_before.apply, make_batch("b1", range(1, 501)))
    ops = store.ops
    after = store.commit_apply(state_before, plan, NOW, NOW)
    assert store.ops - ops == 1
    assert after.apply == ApplyState(500, ()) and after.sales_applied == 500
    stored = store.get_ledger("b1")
    assert stored.apply == after.apply and stored.total_paisa == plan.total_paisa and stored.last_push == NOW
    [chunk] = list(store.iter_chunks("b1"))
    assert (chunk.first_seq, chunk.last_seq) == (1, 500)
    assert chunk.sales == plan.new_sales


def test_a_stale_state_etag_is_a_conflict_and_writes_nothing(store):
    stale = store.get_ledger("b1")
    apply(store, make_batch("b1", [1, 2]))
    plan = plan_apply(stale.apply, make_batch("b1", [3]))
    with pytest.raises(Conflict):
        store.commit_apply(stale, plan, NOW, NOW)
    assert store.get_ledger("b1").apply.applied_through == 2
    assert [c.first_seq for c in store.iter_chunks("b1")] == [1]


def test_an_existing_chunk_row_is_a_conflict(store):
    apply(store, make_batch("b1", [1, 2]))
    current = store.get_ledger("b1")
    # A planner that did not see the first apply writes the same chunk again: refused, not doubled.
    with pytest.raises(Conflict):
        store.commit_apply(current, plan_apply(ApplyState(), make_batch("b1", [1, 2])), NOW, NOW)
    assert store.get_ledger("b1").sales_applied == 2


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
    assert store.get_ledger("b1").total_paisa == 4_500_000_000


def test_iterating_chunks_can_start_at_a_chunk(store):
    apply(store, make_batch("b1", [1, 2, 3]))
    apply(store, make_batch("b1", [4, 5]))
    apply(store, make_batch("b1", [6]))
    assert [c.first_seq for c in store.iter_chunks("b1", 4)] == [4, 6]


def import_(store, products):
    """What Service.import_catalog does, without the retry."""
    base = store.get_catalog_counter()
    buckets = store.get_catalog_index({sku_bucket(p.sku) for p in products})
    for txn in plan_import(base.counter, products, {n: b.entries for n, b in buckets.items()}):
        base, changed = store.commit_catalog(base, txn, buckets)
        buckets |= changed
    return base


def versions(segments):
    return [r.version for s in segments for r in s.rows]


def test_catalog_writes_commit_with_the_counter_and_read_back_in_version_order(store):
    base = store.get_catalog_counter()
    assert base.counter == Counter() and base.etag is None
    products = [make_product(f"P{i:03d}", 100 + i, barcode=f"89{i:05d}", vat_rate="7.5") for i in range(60)]
    ops = store.ops
    import_(store, products)
    assert store.ops - ops <= 3 + 1  # counter, index, one transaction (+ creating the table)
    assert store.get_catalog_counter().counter.last_version == 60
    segments, exhausted = store.read_catalog(0, 1000)
    assert exhausted and versions(segments) == list(range(1, 61))
    assert [r.product for s in segments for r in s.rows] == products
    # Entries at or below the cursor are left out of the segment read again.
    page, exhausted = store.read_catalog(10, 20)
    assert exhausted and versions(page) == list(range(11, 61))


def test_a_stale_counter_etag_is_a_conflict_and_writes_nothing(store):
    stale = store.get_catalog_counter()
    store.commit_catalog(stale, plan_import(Counter(), [make_product("A")], {})[0], {})
    with pytest.raises(Conflict):
        store.commit_catalog(stale, plan_import(Counter(), [make_product("B")], {})[0], {})
    assert versions(store.read_catalog(0, 1000)[0]) == [1]
    assert "B" not in store.get_catalog_index([sku_bucket("B")])[sku_bucket("B")].entries


def test_a_stale_bucket_etag_is_a_conflict(store):
    import_(store, [make_product("A")])
    stale = store.get_catalog_index([sku_bucket("A")])
    import_(store, [make_product("A", 5)])
    base = store.get_catalog_counter()  # a fresh counter, but the bucket was read before the write
    txn = plan_delete(base.counter, "A", stale[sku_bucket("A")].entries)
    with pytest.raises(Conflict):
        store.commit_catalog(base, txn, stale)


def test_the_index_is_read_by_points_or_by_one_range(store):
    products = [make_product(f"K{i:02d}") for i in range(20)] + [make_product("চাল-৫")]
    import_(store, products)
    few = [sku_bucket("K01"), sku_bucket("K05")]
    ops = store.ops
    buckets = store.get_catalog_index(few)
    assert store.ops - ops == len(set(few))
    assert buckets[sku_bucket("K05")].entries["K05"].version == 6
    ops = store.ops
    everything = store.get_catalog_index()
    assert store.ops - ops == 1 and sorted(everything) == list(range(BUCKETS))
    found = {sku: e.version for b in everything.values() for sku, e in b.entries.items()}
    assert found == {p.sku: v for v, p in enumerate(products, 1)}
    untouched = next(n for n in range(BUCKETS) if not everything[n].entries)
    assert everything[untouched].etag is None


def test_a_bucket_larger_than_one_binary_property_is_stored_in_several(store):
    rng = random.Random(1)
    number = 7
    entries = {f"S{i:06d}": IndexEntry(i + 1, "%032x" % rng.getrandbits(128)) for i in range(8000)}
    data = encode_bucket(entries)
    assert len(data) > 2 * PROPERTY_MAX_BYTES
    txn = CatalogTxn(counter=Counter(8000), buckets=(BucketWrite(number, entries, data),))
    _, written = store.commit_catalog(store.get_catalog_counter(), txn, {})
    assert store.get_catalog_index([number])[number] == written[number]
    assert store.get_catalog_index([number])[number].entries == entries


def test_a_pull_reads_many_small_segments_in_a_bounded_number_of_query_pages(store):
    import_(store, [make_product(f"P{i}") for i in range(40)])
    for i in range(40):  # 40 one-entry segments
        base = store.get_catalog_counter()
        buckets = store.get_catalog_index([sku_bucket(f"P{i}")])
        store.commit_catalog(base, plan_delete(base.counter, f"P{i}", buckets[sku_bucket(f"P{i}")].entries), buckets)
    ops = store.ops
    segments, exhausted = store.read_catalog(0, 1000)
    assert exhausted and store.ops - ops <= 2 and len(segments) == 41
    assert versions(segments) == list(range(1, 81))
    ops = store.ops
    segments, exhausted = store.read_catalog(40, 3)  # enough entries: stop early
    assert not exhausted and store.ops - ops == 1 and versions(segments) == [41, 42, 43]
    assert SEGMENT_READ_MAX_PAGES <= 8


def test_rows_of_the_old_one_row_per_version_layout_are_reported_clearly(store):
    store.get_catalog_counter()  # creates the table
    store._table(CATALOG).create_entity({"PartitionKey": CATALOG_PK, "RowKey": "v000000000001", "version": 1, "sku": "A"})
    with pytest.raises(StorageError, match="old one-row-per-version layout"):
        store.read_catalog(0, 1000)


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
