"""What every Store promises, checked against each: TableStore on Azurite and MemoryStore.

MemoryStore runs twice: as is, and answering every query with an empty page carrying a
continuation before each page of rows (Azure may answer so), so the paging loops behind
every read are exercised. Operation counts are per billed request; a query page costs one.
"""

import random
import string
import threading
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from branchsync_cloud.apply import (
    CHUNK_MAX_BYTES, ApplyState, ReferencedSale, SummaryInput, plan_apply, plan_transactions,
)
from branchsync_cloud.catalog import (
    BUCKETS,
    TXN_HARD_MAX_DATA_BYTES,
    TXN_MAX_OPS,
    BucketWrite,
    CatalogTxn,
    Counter,
    Segment,
    SegmentWrite,
    encode_rows,
    plan_delete,
    plan_import,
    sku_bucket,
)
from branchsync_cloud.memory_store import MemoryStore
from branchsync_cloud.store import (
    SEGMENT_READ_MAX_PAGES,
    BranchRecord,
    Conflict,
    DeadLetter,
    NotFound,
    StorageError,
)
from branchsync_cloud.summaries import DaySummary, days_of
from branchsync_cloud.table_store import TableStore
from tests.builders import make_batch, make_line, make_line3, make_product, make_refund, make_sale, make_sale3, make_void

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=timezone.utc)


@pytest.fixture(params=[pytest.param("table", marks=pytest.mark.azurite), "memory", "memory, empty pages"])
def store(request):
    if request.param == "table":
        return TableStore(request.getfixturevalue("storage"), request.getfixturevalue("table_prefix"))
    return MemoryStore(empty_pages=1 if "empty" in request.param else 0)


def pages(store, n: int) -> int:
    """What reading `n` pages of rows costs this store: each empty page is a request too."""
    return n * (1 + getattr(store, "empty_pages", 0))


def commit(store, before, plan, targets=None):
    return store.commit_apply(before, plan_transactions(before, plan, targets or {}, NOW, NOW))


def apply(store, batch):
    before = store.get_ledger(batch.branch)
    return commit(store, before, plan_apply(before.apply_of(batch.generation), batch))


def held(sale) -> ReferencedSale:
    """The stored, not yet voided `sale` as the planner learns of it."""
    return ReferencedSale(sale.kind, sale.total, voided=False)


def gen2(batch):
    return batch.model_copy(update={"generation": 2})


def branch(name: str, **fields) -> BranchRecord:
    return BranchRecord(name=name, created_at=NOW, **fields)


# --- branches ----------------------------------------------------------------------------------


def test_a_created_branch_reads_back_as_written_with_an_etag(store):
    record = branch("dhaka-1", token_hash="h1", token_expires=NOW + timedelta(days=1), pending=3)
    store.create_branch(record)
    assert record.etag is not None
    assert store.get_branch("dhaka-1") == record and store.get_branch("dhaka-1").etag == record.etag
    assert store.get_branch("nobody") is None


def test_creating_a_branch_whose_name_exists_is_a_conflict(store):
    store.create_branch(branch("dhaka-1", secret="first"))
    with pytest.raises(Conflict):
        store.create_branch(branch("dhaka-1", secret="second"))
    assert store.get_branch("dhaka-1").secret == "first"


def test_a_branch_is_found_by_its_token_hash_and_no_other(store):
    store.create_branch(branch("dhaka-1", token_hash="h1"))
    store.create_branch(branch("dhaka-2", token_hash="h2"))
    assert store.find_branch_by_token_hash("h2").name == "dhaka-2"
    assert store.find_branch_by_token_hash("h3") is None


def test_replacing_a_branch_moves_its_etag_and_a_stale_etag_is_a_conflict(store):
    record = branch("dhaka-1")
    store.create_branch(record)
    stale = replace(record)
    changed = replace(record, enrolled=True, secret="s")
    store.replace_branch(changed)
    assert changed.etag != stale.etag and store.get_branch("dhaka-1").enrolled
    with pytest.raises(Conflict):
        store.replace_branch(replace(stale, secret="other"))
    assert store.get_branch("dhaka-1").secret == "s"


def test_replacing_a_branch_that_is_gone_is_not_found(store):
    with pytest.raises(NotFound):
        store.replace_branch(branch("nobody"))


def test_merging_changes_only_the_fields_given_and_an_emptied_refusal_reads_as_none(store):
    store.create_branch(branch("dhaka-1", secret="s", last_refusal='{"code":"x"}', last_refusal_letter="l1"))
    store.merge_branch("dhaka-1", last_pull=NOW, pending=4, last_error=None)
    store.merge_branch("dhaka-1", last_refusal="", last_refusal_letter="")
    got = store.get_branch("dhaka-1")
    assert (got.secret, got.last_pull, got.pending, got.last_refusal, got.last_refusal_letter) == ("s", NOW, 4, None, None)


def test_merging_into_a_branch_that_is_gone_is_not_found(store):
    with pytest.raises(NotFound):
        store.merge_branch("nobody", pending=1)


def test_branches_are_listed_in_name_order(store):
    for name in ["b-2", "b-10", "b-1"]:
        store.create_branch(branch(name))
    assert [b.name for b in store.list_branches()] == ["b-1", "b-10", "b-2"]


# --- sales ---------------------------------------------------------------------------------------


def test_a_ledger_never_written_reads_as_empty_and_without_an_etag(store):
    assert store.get_ledger("nobody").etag is None
    assert store.get_ledger("nobody").apply == ApplyState() and store.get_ledger("nobody").sales_applied == 0


def test_initialising_a_ledger_twice_keeps_the_first(store):
    store.init_ledger("b1")
    apply(store, make_batch("b1", [1, 2]))
    store.init_ledger("b1")
    stored = store.get_ledger("b1")
    assert stored.etag is not None and stored.watermarks == {1: ApplyState(2)} and stored.sales_applied == 2


def test_applying_a_batch_is_one_transaction_of_chunk_and_state(store):
    state_before = store.get_ledger("b1")
    plan = plan_apply(state_before.apply, make_batch("b1", range(1, 501)))
    ops = store.ops
    after = commit(store, state_before, plan)
    assert store.ops - ops == 1
    assert after.apply == ApplyState(500, ()) and after.sales_applied == 500
    stored = store.get_ledger("b1")
    assert stored.apply == after.apply and stored.total_paisa == plan.total_paisa and stored.last_push == NOW
    assert stored.etag == after.etag
    [chunk] = list(store.iter_chunks("b1"))
    assert (chunk.first_seq, chunk.last_seq) == (1, 500)
    assert chunk.sales == plan.new_sales


def test_a_stale_state_etag_is_a_conflict_and_writes_nothing(store):
    stale = store.get_ledger("b1")
    apply(store, make_batch("b1", [1, 2]))
    plan = plan_apply(stale.apply, make_batch("b1", [3]))
    with pytest.raises(Conflict):
        commit(store, stale, plan)
    assert store.get_ledger("b1").apply.applied_through == 2
    assert [c.first_seq for c in store.iter_chunks("b1")] == [1]


def test_an_existing_chunk_row_is_a_conflict(store):
    apply(store, make_batch("b1", [1, 2]))
    current = store.get_ledger("b1")
    # A planner that did not see the first apply writes the same chunk again: refused, not doubled.
    with pytest.raises(Conflict):
        commit(store, current, plan_apply(ApplyState(), make_batch("b1", [1, 2])))
    assert store.get_ledger("b1").sales_applied == 2


def test_concurrent_applies_of_one_ledger_commit_exactly_once(store):
    before = store.get_ledger("b1")
    plan = plan_apply(before.apply, make_batch("b1", [1, 2, 3]))
    outcomes: list[str] = []

    def attempt():
        try:
            commit(store, before, plan)
            outcomes.append("applied")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["applied"] + ["conflict"] * 5
    assert store.get_ledger("b1").sales_applied == 3


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


def test_iterating_chunks_reads_every_page_in_seq_order(store):
    for seq in range(1, 41):  # 40 one-sale chunks: three pages of at most 16
        apply(store, make_batch("b1", [seq]))
    ops = store.ops
    assert [c.first_seq for c in store.iter_chunks("b1")] == list(range(1, 41))
    assert store.ops - ops >= pages(store, 3)


def test_generations_keep_their_own_watermarks_and_chunks(store):
    apply(store, make_batch("b1", [1, 2]))
    apply(store, gen2(make_batch("b1", [1])))
    ledger = store.get_ledger("b1")
    assert ledger.watermarks == {1: ApplyState(2), 2: ApplyState(1)} and ledger.sales_applied == 3
    assert [c.first_seq for c in store.iter_chunks("b1", generation=2)] == [1]
    assert store.find_chunk("b1", 2, 1).generation == 2 and store.find_chunk("b1", 2, 2) is None


def test_the_chunk_holding_a_seq_is_found_and_a_seq_not_stored_is_none(store):
    apply(store, make_batch("b1", [1, 2, 3]))
    apply(store, make_batch("b1", [4, 5]))
    assert (store.find_chunk("b1", 1, 5).first_seq, store.find_chunk("b1", 1, 2).first_seq) == (4, 1)
    assert store.find_chunk("b1", 1, 6) is None and store.find_chunk("nobody", 1, 1) is None


def test_a_void_marks_the_stored_chunk_of_its_sale_in_the_same_transaction(store):
    sale = make_sale(1, total=500)
    apply(store, make_batch("b1", [sale, make_sale(2)]))
    before = store.get_ledger("b1")
    target = store.find_chunk("b1", 1, 1)
    plan = plan_apply(before.apply, make_batch("b1", [make_void(3, sale)]), {(1, 1): held(sale)})
    assert not plan.refused
    ops = store.ops
    after = commit(store, before, plan, {(1, 1): target})
    assert store.ops - ops == 1 and after.total_paisa == before.total_paisa - 500
    assert store.find_chunk("b1", 1, 1).voided == {1}


def test_a_refund_adds_what_it_returned_to_the_stored_chunk_of_its_sale_and_reads_back_exactly(store):
    sale = make_sale3(1, [make_line3(qty="1.5"), make_line3("OIL-1L", qty="2", unit_price=18000)])
    apply(store, make_batch("b1", [sale]))
    for seq, returns in ((2, [(1, "0.5", 21000)]), (3, [(1, "0.25", 10500), (2, "1", 18000)])):
        before = store.get_ledger("b1")
        target = store.find_chunk("b1", 1, 1)
        known = ReferencedSale.of(sale, refunded=target.refunded.get(1))
        plan = plan_apply(before.apply, make_batch("b1", [make_refund(seq, sale, returns)]), {(1, 1): known})
        assert not plan.refused
        commit(store, before, plan, {(1, 1): target})
    assert store.find_chunk("b1", 1, 1).refunded == {1: {1: (Decimal("0.75"), 31500), 2: (Decimal("1"), 18000)}}
    assert store.get_ledger("b1").total_paisa == sale.total - 31500 - 18000


def test_a_void_whose_sale_was_marked_meanwhile_is_a_conflict_and_writes_nothing(store):
    sale = make_sale(1, total=500)
    apply(store, make_batch("b1", [sale]))
    stale_target = store.find_chunk("b1", 1, 1)
    before = store.get_ledger("b1")
    first = plan_apply(before.apply, make_batch("b1", [make_void(2, sale)]), {(1, 1): held(sale)})
    commit(store, before, first, {(1, 1): stale_target})
    # A second void planned against the chunk as it was before the first one was marked.
    current = store.get_ledger("b1")
    with pytest.raises(Conflict):
        commit(store, current, plan_apply(current.apply, make_batch("b1", [make_void(3, sale)]), {(1, 1): held(sale)}),
               {(1, 1): stale_target})
    assert store.get_ledger("b1").apply.applied_through == 2 and store.find_chunk("b1", 1, 3) is None


def test_an_apply_transaction_of_more_than_100_operations_is_refused_and_writes_nothing(store):
    before = store.get_ledger("b1")
    write = plan_transactions(before, plan_apply(before.apply, make_batch("b1", [1])), {}, NOW, NOW)
    # The planner never cuts this; a store must refuse it rather than send it.
    [txn] = write.txns
    chunks = tuple(replace(txn.chunks[0], sales=(make_sale(n),)) for n in range(1, TXN_MAX_OPS + 1))
    with pytest.raises(StorageError, match="operations exceed"):
        store.commit_apply(before, replace(write, txns=(replace(txn, chunks=chunks),)))
    assert store.get_ledger("b1").etag is None and list(store.iter_chunks("b1")) == []


def test_an_apply_cut_into_several_transactions_leaves_each_ledger_agreeing_with_its_chunks(store):
    rng = random.Random(5)
    noise = lambda: "".join(rng.choices(string.printable[:94], k=200))  # noqa: E731 - incompressible names
    # More than a transaction's data limit even compressed (far more than one message holds): cut in several.
    sales = [make_sale(n, [make_line(sku=f"S{n}-{i}", name=noise()) for i in range(14)]) for n in range(1, 1001)]
    before = store.get_ledger("b1")
    write = plan_transactions(before, plan_apply(before.apply, make_batch("b1", sales)), {}, NOW, NOW)
    assert len(write.txns) > 1
    ops = store.ops
    after = store.commit_apply(before, write)
    assert store.ops - ops == len(write.txns) and after.apply.applied_through == 1000
    assert [s.seq for c in store.iter_chunks("b1") for s in c.sales] == list(range(1, 1001))
    assert store.get_ledger("b1") == write.txns[-1].ledger


# --- day summaries -------------------------------------------------------------------------------

DHAKA = ZoneInfo("Asia/Dhaka")


def commit_with_days(store, before, batch, zone=DHAKA):
    """An apply as the queue function commits it: its days' summaries read with the ledger, folded and written with it."""
    before, stored = store.get_ledger_and_days(batch.branch, min(days_of(batch.sales, zone)))
    plan = plan_apply(before.apply_of(batch.generation), batch)
    write = plan_transactions(before, plan, {}, NOW, NOW, SummaryInput(stored, {}, zone))
    return store.commit_apply(before, write), write


def days_from(store, branch, first):
    return store.get_ledger_and_days(branch, first)[1]


def three_days(seqs):
    return make_batch("b1", [make_sale(n, recorded_at=NOW + timedelta(days=n % 3)) for n in seqs])


def test_day_summaries_are_written_in_the_apply_transaction_and_read_back_by_day_and_by_range(store):
    before = store.get_ledger("b1")
    ops = store.ops
    after, write = commit_with_days(store, before, three_days(range(1, 31)))
    assert store.ops - ops == pages(store, 1) + 1  # the ledger and its days in one query, one transaction
    assert len(write.txns) == 1 and len(write.txns[0].summaries) == 3
    first = NOW.date()
    ops = store.ops
    days = store.read_summaries("b1", first, first + timedelta(days=2))
    assert store.ops - ops == pages(store, 1)
    assert [d.day for d in days] == [first + timedelta(days=i) for i in range(3)]
    assert sum(d.net for d in days) == after.total_paisa and sum(d.sales for d in days) == 30
    assert all(d.etag for d in days)
    ops = store.ops
    ledger, later = store.get_ledger_and_days("b1", first + timedelta(days=1))
    assert store.ops - ops == pages(store, 1) and ledger == after and ledger.etag == after.etag
    assert list(later) == [first + timedelta(days=1), first + timedelta(days=2)]
    assert later[first + timedelta(days=1)].same_figures(days[1])
    assert store.get_ledger_and_days("b1", first + timedelta(days=9)) == (after, {})
    assert store.get_ledger_and_days("b9", first) == (store.get_ledger("b9"), {})
    assert [d.day for d in store.read_summaries("b1", first + timedelta(days=1), first + timedelta(days=1))] == \
        [first + timedelta(days=1)]
    assert store.read_summaries("b2", first, first) == []
    figures_only = store.read_summaries("b1", first, first + timedelta(days=2), products=False)
    assert [d.products for d in figures_only] == [{}, {}, {}] and all(d.products for d in days)
    assert [(d.day, d.net, d.sales, d.payments) for d in figures_only] == [(d.day, d.net, d.sales, d.payments) for d in days]


def test_summaries_do_not_show_among_the_chunks_of_any_generation(store):
    commit_with_days(store, store.get_ledger("b1"), three_days(range(1, 4)))
    before = store.get_ledger("b1")
    commit_with_days(store, before, gen2(three_days(range(1, 3))))
    assert [c.first_seq for c in store.iter_chunks("b1")] == [1]
    assert [c.first_seq for c in store.iter_chunks("b1", 0, 2)] == [1]
    assert store.find_chunk("b1", 1, 3).first_seq == 1


def test_a_later_apply_updates_the_stored_day_if_match_and_a_stale_summary_etag_is_a_conflict(store):
    commit_with_days(store, store.get_ledger("b1"), three_days([1]))
    stale = days_from(store, "b1", (NOW + timedelta(days=1)).date())
    commit_with_days(store, store.get_ledger("b1"), three_days([4]))  # same business day as sale 1
    [day] = store.read_summaries("b1", date.min, date.max)
    assert day.sales == 2
    before = store.get_ledger("b1")
    plan = plan_apply(before.apply, three_days([7]))
    with pytest.raises(Conflict):
        store.commit_apply(before, plan_transactions(before, plan, {}, NOW, NOW, SummaryInput(stale, {}, DHAKA)))
    assert store.get_ledger("b1") == before and store.read_summaries("b1", date.min, date.max)[0].sales == 2


def test_a_day_written_meanwhile_is_a_conflict_for_an_apply_that_read_it_absent(store):
    before = store.get_ledger("b1")
    plan = plan_apply(before.apply, three_days([3]))
    absent = days_from(store, "b1", min(days_of(plan.counted, DHAKA)))
    assert absent == {}
    commit_with_days(store, store.get_ledger("b1"), three_days([6]))  # same day, committed first
    with pytest.raises(Conflict):
        store.commit_apply(store.get_ledger("b1"),
                           plan_transactions(store.get_ledger("b1"), plan_apply(store.get_ledger("b1").apply,
                                                                                 three_days([9])), {}, NOW, NOW,
                                             SummaryInput(absent, {}, DHAKA)))
    assert store.read_summaries("b1", date.min, date.max)[0].sales == 1


def test_an_apply_cut_into_several_transactions_carries_each_days_rows_with_the_etag_of_the_one_before(store):
    rng = random.Random(7)
    noise = lambda: "".join(rng.choices(string.printable[:94], k=200))  # noqa: E731 - incompressible names
    # A day keeps one row per SKU whatever the names sold under it: 14 SKUs here.
    sales = [make_sale(n, [make_line(sku=f"S{i}", name=noise()) for i in range(14)],
                       recorded_at=NOW + timedelta(days=n % 2)) for n in range(1, 1001)]
    before = store.get_ledger("b1")
    after, write = commit_with_days(store, before, make_batch("b1", sales))
    assert len(write.txns) > 1 and all(t.ops <= TXN_MAX_OPS for t in write.txns)
    days = store.read_summaries("b1", date.min, date.max)
    assert [d.sales for d in days] == [500, 500] and sum(d.net for d in days) == after.total_paisa


def test_rebuilt_summaries_replace_the_stored_days_with_the_ledger_if_match(store):
    after, _ = commit_with_days(store, store.get_ledger("b1"), three_days(range(1, 4)))
    days = store.read_summaries("b1", date.min, date.max)
    emptied = [DaySummary("b1", d.day) for d in days]
    ledger = store.get_ledger("b1")
    ops = store.ops
    written = store.replace_summaries(ledger, emptied)
    assert store.ops - ops == 1 and written.etag != ledger.etag
    assert store.get_ledger("b1").etag == written.etag and store.get_ledger("b1").total_paisa == after.total_paisa
    assert [d.sales for d in store.read_summaries("b1", date.min, date.max)] == [0, 0, 0]
    with pytest.raises(Conflict):
        store.replace_summaries(ledger, days)  # the ledger moved since it was read
    assert [d.sales for d in store.read_summaries("b1", date.min, date.max)] == [0, 0, 0]


def test_rebuilding_more_than_99_days_takes_one_transaction_per_99(store):
    commit_with_days(store, store.get_ledger("b1"), three_days([1]))
    ledger = store.get_ledger("b1")
    ops = store.ops
    store.replace_summaries(ledger, [DaySummary("b1", date(2026, 1, 1) + timedelta(days=d)) for d in range(150)])
    assert store.ops - ops == 2
    assert len(store.read_summaries("b1", date.min, date.max)) == 151


# --- catalog -------------------------------------------------------------------------------------


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


def segment_write(first: int, last: int, sku: str = "A") -> SegmentWrite:
    from branchsync_cloud.catalog import VersionRow

    rows = tuple(VersionRow(v, f"{sku}{v}", make_product(f"{sku}{v}")) for v in range(first, last + 1))
    return SegmentWrite(Segment(first, last, rows), encode_rows(rows))


def test_deleting_a_segment_that_is_gone_is_a_conflict_and_writes_nothing(store):
    base = store.get_catalog_counter()
    with pytest.raises(Conflict):
        store.commit_catalog(base, CatalogTxn(Counter(5), created=(segment_write(1, 5),), deleted=(9,)), {})
    assert store.get_catalog_counter().etag is None and store.read_catalog(0, 1000) == ([], True)


def test_a_rewritten_segment_replaces_the_row_of_its_key(store):
    base, _ = store.commit_catalog(store.get_catalog_counter(), CatalogTxn(Counter(3), created=(segment_write(1, 3),)), {})
    store.commit_catalog(base, CatalogTxn(Counter(3), rewritten=(segment_write(2, 3, "B"),)), {})
    [segment] = list(store.scan_catalog())
    assert (segment.first_version, [r.sku for r in segment.rows]) == (2, ["B2", "B3"])


def test_a_catalog_transaction_of_more_than_100_operations_is_refused_and_writes_nothing(store):
    created = tuple(segment_write(v, v) for v in range(1, TXN_MAX_OPS + 1))
    with pytest.raises(StorageError, match="operations exceed"):
        store.commit_catalog(store.get_catalog_counter(), CatalogTxn(Counter(TXN_MAX_OPS), created=created), {})
    assert store.get_catalog_counter().etag is None


def test_a_transaction_of_more_than_4_mib_is_refused_and_writes_nothing(store):
    rng = random.Random(3)
    size = TXN_HARD_MAX_DATA_BYTES // 3 + 1
    buckets = tuple(BucketWrite(n, {}, rng.randbytes(size)) for n in range(3))
    with pytest.raises(StorageError, match="4 MiB"):
        store.commit_catalog(store.get_catalog_counter(), CatalogTxn(Counter(1), buckets=buckets), {})
    assert store.get_catalog_counter().etag is None


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
    assert store.ops - ops == pages(store, 1) and sorted(everything) == list(range(BUCKETS))
    found = {sku: e.version for b in everything.values() for sku, e in b.entries.items()}
    assert found == {p.sku: v for v, p in enumerate(products, 1)}
    untouched = next(n for n in range(BUCKETS) if not everything[n].entries)
    assert everything[untouched].etag is None


def test_a_pull_reads_many_small_segments_in_a_bounded_number_of_query_pages(store):
    import_(store, [make_product(f"P{i}") for i in range(40)])
    for i in range(40):  # 40 one-entry segments
        base = store.get_catalog_counter()
        buckets = store.get_catalog_index([sku_bucket(f"P{i}")])
        store.commit_catalog(base, plan_delete(base.counter, f"P{i}", buckets[sku_bucket(f"P{i}")].entries), buckets)
    ops = store.ops
    segments, exhausted = store.read_catalog(0, 1000)
    assert store.ops - ops <= SEGMENT_READ_MAX_PAGES
    if not getattr(store, "empty_pages", 0):
        assert exhausted and store.ops - ops <= 2 and len(segments) == 41
        assert versions(segments) == list(range(1, 81))
    ops = store.ops
    segments, exhausted = store.read_catalog(40, 3)  # enough entries: stop early
    assert not exhausted and store.ops - ops <= pages(store, 1) and versions(segments) == [41, 42, 43]
    assert SEGMENT_READ_MAX_PAGES <= 8


def test_pulling_from_each_cursor_in_turn_reads_every_version_once_even_past_empty_pages(store):
    import_(store, [make_product(f"P{i}") for i in range(10)])
    for i in range(10):
        base = store.get_catalog_counter()
        buckets = store.get_catalog_index([sku_bucket(f"P{i}")])
        store.commit_catalog(base, plan_delete(base.counter, f"P{i}", buckets[sku_bucket(f"P{i}")].entries), buckets)
    # What a pull's caller does: read from its cursor until the store says it reached the end.
    cursor, seen, exhausted = 0, [], False
    for _ in range(30):
        segments, exhausted = store.read_catalog(cursor, 4)
        seen += versions(segments)
        cursor = segments[-1].last_version if segments else cursor
        if exhausted:
            break
    assert exhausted and seen == list(range(1, 21))


def test_scanning_the_catalog_reads_every_segment_in_key_order(store):
    import_(store, [make_product(f"P{i}") for i in range(3)])
    base = store.get_catalog_counter()
    buckets = store.get_catalog_index([sku_bucket("P1")])
    store.commit_catalog(base, plan_delete(base.counter, "P1", buckets[sku_bucket("P1")].entries), buckets)
    assert [(s.first_version, s.last_version) for s in store.scan_catalog()] == [(1, 3), (4, 4)]
    assert versions(store.scan_catalog()) == [1, 2, 3, 4]


# --- dead letters --------------------------------------------------------------------------------


def test_dead_letters_keep_the_raw_message_truncated_with_a_flag(store):
    store.add_dead_letter(DeadLetter(NOW, "malformed_message", "bad magic", b"x" * 70_000, "b1"))
    store.add_dead_letter(DeadLetter(NOW, "unknown_branch", "who?", b"small"))
    letters = sorted(store.list_dead_letters(date(2026, 11, 28)), key=lambda d: d.code)
    assert [(d.code, d.branch, d.truncated, len(d.raw)) for d in letters] == [
        ("malformed_message", "b1", True, 60 * 1024), ("unknown_branch", None, False, 5)]
    assert [d.size for d in letters] == [70_000, 5]


def test_dead_letters_are_listed_oldest_first_and_by_day(store):
    ids = [store.add_dead_letter(DeadLetter(NOW + timedelta(days=d, seconds=s), "c", "r", b"m"))
           for d, s in [(1, 0), (0, 5), (0, 1)]]
    assert [d.id for d in store.list_dead_letters()] == [ids[2], ids[1], ids[0]]
    assert [d.id for d in store.list_dead_letters(date(2026, 11, 29))] == [ids[0]]
    assert store.list_dead_letters(date(2026, 12, 1)) == []


def test_a_dead_letter_is_read_updated_and_deleted_by_its_id(store):
    letter_id = store.add_dead_letter(DeadLetter(NOW, "unknown_branch", "who?", b"m", "b1"))
    got = store.get_dead_letter(letter_id)
    assert (got.id, got.code, got.raw, got.received_at, got.replays) == (letter_id, "unknown_branch", b"m", NOW, 0)
    store.update_dead_letter(letter_id, "bad_signature", "still bad", 2)
    got = store.get_dead_letter(letter_id)
    assert (got.code, got.reason, got.replays, got.raw) == ("bad_signature", "still bad", 2, b"m")
    store.delete_dead_letter(letter_id)
    assert store.get_dead_letter(letter_id) is None


def test_changing_a_dead_letter_that_is_gone_is_not_found(store):
    letter_id = store.add_dead_letter(DeadLetter(NOW, "c", "r", b"m"))
    store.delete_dead_letter(letter_id)
    with pytest.raises(NotFound):
        store.delete_dead_letter(letter_id)
    with pytest.raises(NotFound):
        store.update_dead_letter(letter_id, "c", "r", 1)


# --- request nonces ------------------------------------------------------------------------------


def test_a_nonce_is_claimed_once_per_branch_and_bucket(store):
    assert store.claim_nonce("b1", "n1", 100) is True
    assert store.claim_nonce("b1", "n1", 100) is False
    assert store.claim_nonce("b2", "n1", 100) is True and store.claim_nonce("b1", "n1", 101) is True


def test_nonce_buckets_are_listed_and_dropped_and_a_dropped_one_starts_afresh(store):
    store.claim_nonce("b1", "n1", 100)
    store.claim_nonce("b1", "n1", 102)
    assert store.nonce_buckets() == [100, 102]
    store.drop_nonce_bucket(100)
    store.drop_nonce_bucket(105)  # never there: fine
    assert store.nonce_buckets() == [102]
    assert store.claim_nonce("b1", "n1", 100) is True
