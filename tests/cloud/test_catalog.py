"""Catalog planning and page building: versions, segments, buckets, cursors and the horizon."""

import json
import random
import string

import pytest
from tests.builders import make_product

from branchsync_cloud.catalog import (
    BUCKET_MAX_BYTES,
    BUCKETS,
    SEGMENT_MAX_BYTES,
    TXN_MAX_DATA_BYTES,
    TXN_MAX_OPS,
    CatalogFull,
    Counter,
    IndexEntry,
    Segment,
    VersionRow,
    sku_bucket,
    build_page,
    page_rows,
    decode_bucket,
    decode_rows,
    digest,
    encode_bucket,
    encode_rows,
    pack_segments,
    plan_compaction,
    plan_delete,
    plan_import,
    plan_purge,
)
from shared.errors import ContractError, ErrorCode
from shared.models import CatalogPage, Product


def rows(*specs):
    """VersionRows from (version, sku) pairs; a sku starting with '-' is a tombstone."""
    return [VersionRow(v, sku.lstrip("-"), None if sku.startswith("-") else make_product(sku)) for v, sku in specs]


def seg(first, last, *specs):
    return Segment(first, last, tuple(rows(*specs)))


def index(*entries):
    """Buckets from (sku, IndexEntry) pairs, as plan_import and plan_compaction take them."""
    buckets = {}
    for sku, e in entries:
        buckets.setdefault(sku_bucket(sku), {})[sku] = e
    return buckets


def live(sku, version, price=10000):
    return sku, IndexEntry(version, digest(make_product(sku, price)))


def gone(sku, version):
    return sku, IndexEntry(version, "", True)


def written(txns):
    return [r for t in txns for w in t.created for r in w.segment.rows]


def noise(rng, k):
    return "".join(rng.choices(string.ascii_letters, k=k))


# --- buckets and encoding ----------------------------------------------------------------------


def test_a_skus_bucket_is_a_stable_hash_not_pythons_hash():
    # Fixed values: the bucket must be the same in every process and every release.
    assert [sku_bucket(s) for s in ("RICE-5KG", "P000001", "চাল-৫")] == [0x19, 0x1A, 0x0E]
    assert {sku_bucket(f"P{i:06d}") for i in range(2000)} == set(range(BUCKETS))


def test_entries_and_buckets_round_trip_through_their_encoding():
    product = make_product("OIL-1L", 18050, barcode="8901234567890", unit="bottle", vat_rate="7.50", active=False)
    stored = [VersionRow(7, "OIL-1L", product), VersionRow(9, "GONE", None), VersionRow(12, "চাল", make_product("চাল"))]
    assert decode_rows(encode_rows(stored)) == tuple(stored)
    assert decode_rows(encode_rows(stored), after_version=7) == tuple(stored[1:])
    bucket = {"A": IndexEntry(3, "ab" * 16), "B": IndexEntry(4, "", True)}
    assert decode_bucket(encode_bucket(bucket)) == bucket


# --- import and delete -------------------------------------------------------------------------


def test_versions_are_consecutive_from_the_counter_in_request_order():
    [txn] = plan_import(Counter(10), [make_product("C"), make_product("A"), make_product("B")], {})
    assert [(r.version, r.sku) for r in written([txn])] == [(11, "C"), (12, "A"), (13, "B")]
    assert txn.counter == Counter(13) and txn.versions == (11, 12, 13)
    [segment] = txn.created
    assert (segment.segment.first_version, segment.segment.last_version) == (11, 13)
    assert {s: e.version for w in txn.buckets for s, e in w.entries.items()} == {"C": 11, "A": 12, "B": 13}
    assert sorted(w.number for w in txn.buckets) == sorted({sku_bucket(s) for s in "ABC"})


def test_a_changed_product_gets_a_new_version_and_its_bucket_the_new_digest():
    buckets = index(live("A", 4, 100), live("B", 5))
    [txn] = plan_import(Counter(9), [make_product("A", 200)], buckets)
    assert [r.version for r in written([txn])] == [10]
    [bucket] = txn.buckets
    assert bucket.entries["A"] == IndexEntry(10, digest(make_product("A", 200)), False)
    # The rest of the bucket is kept as it was.
    assert {s: e for s, e in bucket.entries.items() if s != "A"} == {s: e for s, e in buckets[bucket.number].items() if s != "A"}


def test_an_unchanged_product_gets_no_new_version():
    assert plan_import(Counter(9), [make_product("A", 100)], index(live("A", 4, 100))) == []


def test_a_deleted_product_imported_again_comes_back_under_a_new_version():
    [txn] = plan_import(Counter(9), [make_product("A")], index(gone("A", 5)))
    assert [r.version for r in written([txn])] == [10]
    assert not txn.buckets[0].entries["A"].deleted


def test_a_sku_twice_in_one_import_is_refused():
    with pytest.raises(ContractError) as err:
        plan_import(Counter(), [make_product("A"), make_product("A", 5)], {})
    assert err.value.code == ErrorCode.BAD_REQUEST and "A" in err.value.message


def test_deleting_writes_a_one_entry_tombstone_segment_and_its_bucket():
    txn = plan_delete(Counter(7, 2), "A", index(live("A", 3))[sku_bucket("A")])
    [w] = txn.created
    assert (w.segment.first_version, w.segment.last_version) == (8, 8)
    assert [(r.version, r.sku, r.deleted) for r in w.segment.rows] == [(8, "A", True)]
    assert txn.counter == Counter(8, 2) and txn.ops == 3
    assert txn.buckets[0].entries["A"] == IndexEntry(8, "", True)


@pytest.mark.parametrize("bucket", [{}, {"A": IndexEntry(3, "", True)}])
def test_deleting_an_unknown_or_deleted_sku_is_not_found(bucket):
    with pytest.raises(ContractError) as err:
        plan_delete(Counter(7), "A", bucket)
    assert err.value.code == ErrorCode.NOT_FOUND


def test_deletes_share_the_transaction_segment_and_bucket_rows_of_the_products_of_the_same_change():
    # E and H share bucket 38: one bucket row carries the new price and the tombstone.
    assert sku_bucket("E") == sku_bucket("H")
    buckets = index(live("E", 3, 100), live("B", 4), live("H", 5))
    [txn] = plan_import(Counter(9, 2), [make_product("E", 200), make_product("C")], buckets, deleted=["H", "B"])
    [w] = txn.created
    # Products first, then the deletes, each in request order.
    assert [(r.version, r.sku, r.deleted) for r in w.segment.rows] == [
        (10, "E", False), (11, "C", False), (12, "H", True), (13, "B", True)]
    assert txn.counter == Counter(13, 2) and txn.versions == (10, 11, 12, 13)
    assert txn.ops == 1 + 1 + 3  # counter, one segment, buckets 38, 37 and 21
    shared = next(b for b in txn.buckets if b.number == sku_bucket("E"))
    assert shared.entries == {"E": IndexEntry(10, digest(make_product("E", 200))), "H": IndexEntry(12, "", True)}


def test_a_retry_skips_the_skus_its_committed_transactions_already_deleted():
    products, deleted = [make_product("D", 1)], ["A", "B", "C"]
    # The race was lost after this change's transaction for B's and D's buckets committed.
    after_race = index(live("A", 3), gone("B", 10), live("C", 5), live("D", 11, 1))
    [retry] = plan_import(Counter(11), products, after_race, deleted)
    assert [(r.version, r.sku, r.deleted) for r in written([retry])] == [(12, "A", True), (13, "C", True)]
    # Once all of it is committed, the same change writes nothing.
    done = {**after_race, **{w.number: w.entries for w in retry.buckets}}
    assert plan_import(Counter(13), products, done, deleted) == []


def test_a_delete_of_a_sku_the_catalog_never_had_refuses_the_whole_change_naming_each_such_sku():
    buckets = index(live("A", 3), live("B", 4), gone("C", 5))
    with pytest.raises(ContractError) as err:
        plan_import(Counter(9), [make_product("A", 1)], buckets, deleted=["B", "NEVER-1", "C", "NEVER-2"])
    assert err.value.code == ErrorCode.NOT_FOUND
    message = err.value.message
    assert message.startswith("2 skus to delete are not in the catalog") and "NEVER-1, NEVER-2" in message
    assert "nothing was changed" in message and " B" not in message and " C" not in message


def test_a_refusal_of_many_unknown_skus_names_the_first_twenty_and_counts_the_rest():
    with pytest.raises(ContractError) as err:
        plan_import(Counter(), [], {}, deleted=[f"NO-{i:03d}" for i in range(500)])
    message = err.value.message
    assert "NO-000" in message and "NO-019" in message and "NO-020" not in message
    assert "and 480 more" in message and len(message) < 500


@pytest.mark.parametrize("products, deleted, said", [
    (["A"], ["B", "A"], "sku A is both written and deleted"),
    ([], ["B", "A", "B"], "sku B is deleted twice"),
])
def test_a_sku_both_written_and_deleted_or_deleted_twice_is_refused_naming_it(products, deleted, said):
    buckets = index(live("A", 3), live("B", 4))
    with pytest.raises(ContractError) as err:
        plan_import(Counter(9), [make_product(s) for s in products], buckets, deleted=deleted)
    assert err.value.code == ErrorCode.BAD_REQUEST and said in err.value.message


def test_1000_new_products_are_one_transaction_of_at_most_100_operations():
    [txn] = plan_import(Counter(), [make_product(f"P{i:04d}") for i in range(1000)], {})
    assert txn.ops <= TXN_MAX_OPS and txn.data_bytes <= TXN_MAX_DATA_BYTES
    assert len(txn.buckets) == BUCKETS and len(txn.created) <= 2
    assert [r.version for r in written([txn])] == list(range(1, 1001))


def test_an_import_into_a_large_catalog_is_cut_at_bucket_boundaries_into_transactions_within_the_limits():
    rng = random.Random(3)
    # ~150,000 stored products: the 64 buckets together are far more than one transaction carries.
    stored = [(f"S{i:07d}", IndexEntry(i + 1, "%032x" % rng.getrandbits(128))) for i in range(150_000)]
    buckets = index(*stored)
    products = [make_product(f"S{i:07d}", 1) for i in range(0, 150_000, 150)] + [make_product(f"N{i:04d}") for i in range(100)]
    txns = plan_import(Counter(150_000), products, buckets)
    assert 1 < len(txns) <= 4
    assert all(t.ops <= TXN_MAX_OPS and t.data_bytes <= TXN_MAX_DATA_BYTES for t in txns)
    # Versions stay a prefix: each transaction continues where the one before stopped.
    assert [r.version for r in written(txns)] == list(range(150_001, 151_101))
    assert [t.counter.last_version for t in txns] == [t.versions[-1] for t in txns]
    assert all(t.versions[0] == prev.versions[-1] + 1 for prev, t in zip(txns, txns[1:]))
    # Each bucket is written once, by the transaction that writes all of its products.
    numbers = [w.number for t in txns for w in t.buckets]
    assert sorted(numbers) == sorted(set(numbers))
    for t in txns:
        assert {sku_bucket(r.sku) for w in t.created for r in w.segment.rows} == {w.number for w in t.buckets}


def test_2000_deletes_over_all_64_buckets_and_products_into_a_large_catalog_split_into_transactions_within_the_limits():
    rng = random.Random(11)
    stored = [(f"S{i:07d}", IndexEntry(i + 1, "%032x" % rng.getrandbits(128))) for i in range(150_000)]
    buckets = index(*stored)
    deleted = [f"S{i:07d}" for i in range(0, 150_000, 75)]
    products = [make_product(f"S{i:07d}", 1) for i in range(1, 150_000, 300)] + [make_product(f"N{i:04d}") for i in range(100)]
    assert len(deleted) == 2000 and {sku_bucket(s) for s in deleted} == set(range(BUCKETS))
    txns = plan_import(Counter(150_000), products, buckets, deleted)
    assert len(txns) > 1
    assert all(t.ops <= TXN_MAX_OPS and t.data_bytes <= TXN_MAX_DATA_BYTES for t in txns)
    assert all(len(w.data) <= SEGMENT_MAX_BYTES and len(w.segment.rows) <= 1000 for t in txns for w in t.created)
    # Every change once, under a prefix of versions; each bucket row written once.
    rows_written = written(txns)
    assert [r.version for r in rows_written] == list(range(150_001, 150_001 + len(products) + 2000))
    assert {r.sku for r in rows_written if r.deleted} == set(deleted)
    assert {r.sku for r in rows_written if not r.deleted} == {p.sku for p in products}
    numbers = [w.number for t in txns for w in t.buckets]
    assert sorted(numbers) == sorted(set(numbers)) == list(range(BUCKETS))
    for t in txns:
        assert {sku_bucket(r.sku) for w in t.created for r in w.segment.rows} == {w.number for w in t.buckets}
        assert all(w.entries[s].deleted for w in t.buckets for s in deleted if s in w.entries)


def test_segments_too_large_for_one_binary_property_are_split_over_the_same_range():
    rng = random.Random(7)
    big = [VersionRow(100 + i, f"X{i}", make_product(f"X{i}", name=noise(rng, 190))) for i in range(1000)]
    pieces = pack_segments(big, 90, 1200)
    assert len(pieces) > 1 and all(len(p.data) <= SEGMENT_MAX_BYTES for p in pieces)
    assert [r for p in pieces for r in p.segment.rows] == big
    assert pieces[0].segment.first_version == 90 and pieces[-1].segment.last_version == 1200
    assert all(a.segment.last_version + 1 == b.segment.first_version for a, b in zip(pieces, pieces[1:]))


def test_a_bucket_that_outgrows_its_row_is_refused_with_a_clear_error():
    rng = random.Random(5)
    target = sku_bucket("NEW")
    crowded = {f"K{i}": IndexEntry(i + 1, "%032x" % rng.getrandbits(128)) for i in range(40_000)}
    assert len(encode_bucket(crowded)) > BUCKET_MAX_BYTES
    with pytest.raises(CatalogFull) as err:
        plan_import(Counter(40_000), [make_product("NEW")], {target: crowded})
    assert err.value.code == ErrorCode.CONFLICT and "outgrown" in err.value.message


# --- pages -------------------------------------------------------------------------------------


def stored_rows():
    """Rows as a pull reads them from a segment: defaults left out, Bangla, a tombstone."""
    products = [make_product("OIL-1L", 18050, barcode="8901234567890", unit="bottle", vat_rate="7.50", active=False),
                make_product("চাল-৫", 42000, name="চাল মিনিকেট ৫ কেজি"), make_product("SOAP", 0, vat_rate="15")]
    written = [VersionRow(i + 1, p.sku, p) for i, p in enumerate(products)] + [VersionRow(4, "GONE", None)]
    return decode_rows(encode_rows(written)), products


def test_a_page_read_from_segments_is_written_as_the_same_json_as_its_models():
    read, _ = stored_rows()
    page = page_rows(0, [Segment(1, 4, read)], limit=10, exhausted=True, counter=Counter(4))
    models = CatalogPage(entries=[r.entry() for r in read], next_cursor=4, more=False)
    assert page.page().model_dump_json() == models.model_dump_json()
    assert page.entries_json() == json.dumps(json.loads(models.model_dump_json())["entries"], separators=(",", ":"),
                                             ensure_ascii=False)


def test_a_page_read_from_segments_validates_no_product_again(monkeypatch):
    read, products = stored_rows()
    built = []
    validate = Product.model_validate.__func__
    monkeypatch.setattr(Product, "model_validate", classmethod(lambda cls, *a, **k: built.append(1) or validate(cls, *a, **k)))
    page = page_rows(0, [Segment(1, 4, decode_rows(encode_rows(read)))], limit=10, exhausted=True, counter=Counter(4))
    sent = json.loads(page.entries_json())
    assert built == [] and [e["product"] and e["product"]["price"] for e in sent] == [18050, 42000, 0, None]
    # Asked for, a stored row still is the validated product it was imported as.
    assert [r.product for r in page.rows] == [*products, None] and len(built) == 3


def test_a_page_holds_ascending_versions_up_to_the_limit_and_says_more():
    page = build_page(0, [seg(1, 3, (1, "A"), (2, "B"), (3, "C"))], limit=2, exhausted=False, counter=Counter(9))
    assert [e.version for e in page.entries] == [1, 2]
    assert page.next_cursor == 2 and page.more and not page.full_resync


def test_a_page_that_ends_inside_a_segment_resumes_inside_it_without_repeats():
    segments = [seg(1, 3, (1, "A"), (2, "B"), (3, "C")), seg(4, 5, (4, "D"), (5, "E"))]
    first = build_page(0, segments, limit=4, exhausted=True, counter=Counter(5))
    assert [e.version for e in first.entries] == [1, 2, 3, 4] and first.next_cursor == 4 and first.more
    # The next pull reads segments keyed above 4: the second one again, minus what was sent.
    again = [Segment(4, 5, tuple(r for r in segments[1].rows if r.version > 4))]
    second = build_page(4, again, limit=4, exhausted=True, counter=Counter(5))
    assert [e.version for e in second.entries] == [5] and second.next_cursor == 5 and not second.more


def test_entries_at_or_below_the_cursor_in_the_first_segment_are_skipped():
    page = build_page(2, [seg(1, 4, (1, "A"), (2, "B"), (3, "C"), (4, "D"))], limit=10, exhausted=True, counter=Counter(4))
    assert [e.version for e in page.entries] == [3, 4] and page.next_cursor == 4


def test_the_last_page_jumps_the_cursor_to_the_counter():
    # Versions 6..9 were superseded or purged: nothing to read, but the cursor moves past them.
    page = build_page(3, [seg(4, 5, (4, "A"), (5, "-B"))], limit=10, exhausted=True, counter=Counter(9))
    assert [(e.version, e.deleted) for e in page.entries] == [(4, False), (5, True)]
    assert page.entries[1].product is None
    assert page.next_cursor == 9 and not page.more


def test_a_read_cut_short_moves_the_cursor_past_the_segments_it_read():
    # The store stopped reading before `limit` entries (its page budget): all of them are sent.
    page = build_page(0, [seg(1, 10, (4, "A")), seg(11, 20, (20, "B"))], limit=10, exhausted=False, counter=Counter(90))
    assert [e.version for e in page.entries] == [4, 20] and page.next_cursor == 20 and page.more


def test_nothing_new_keeps_the_cursor():
    page = build_page(9, [], limit=10, exhausted=True, counter=Counter(9))
    assert page.entries == [] and page.next_cursor == 9 and not page.more


def test_a_sku_met_twice_in_a_page_appears_once_at_its_latest_version():
    segments = [seg(1, 2, (1, "A"), (2, "B")), seg(3, 3, (3, "A"))]
    page = build_page(0, segments, limit=10, exhausted=True, counter=Counter(3))
    assert [(e.version, e.sku) for e in page.entries] == [(2, "B"), (3, "A")]


def test_an_entry_read_twice_is_sent_once():
    # A compaction merged the first segment into the second while the pull read them.
    segments = [seg(1, 2, (1, "A"), (2, "B")), seg(1, 4, (1, "A"), (2, "B"), (4, "C"))]
    page = build_page(0, segments, limit=10, exhausted=True, counter=Counter(4))
    assert [e.version for e in page.entries] == [1, 2, 4]


def test_a_cursor_below_the_tombstone_horizon_asks_for_full_resync():
    page = build_page(4, [], limit=10, exhausted=True, counter=Counter(20, tombstone_horizon=5))
    assert page.full_resync and page.next_cursor == 0 and page.entries == [] and page.more


@pytest.mark.parametrize("cursor", [0, 5, 6])
def test_a_fresh_or_current_cursor_needs_no_full_resync(cursor):
    page = build_page(cursor, [], limit=10, exhausted=True, counter=Counter(20, tombstone_horizon=5))
    assert not page.full_resync


def test_a_cursor_beyond_the_last_version_asks_for_full_resync():
    # The branch holds versions this catalog never issued: the catalog was reset.
    assert build_page(30, [], limit=10, exhausted=True, counter=Counter(20)).full_resync


# --- purge and compaction ----------------------------------------------------------------------


def test_purge_takes_only_tombstones_older_than_every_live_product():
    current = dict([gone("D", 7), gone("A", 3), live("C", 6), gone("B", 4)])
    assert [(sku, e.version) for sku, e in plan_purge(current, up_to=100)] == [("A", 3), ("B", 4)]
    assert [sku for sku, _ in plan_purge(current, up_to=3)] == ["A"]


def test_compaction_drops_superseded_entries_and_purged_tombstones_and_raises_the_horizon():
    # 1-3 A B C; 4 deletes A; 5 changes B; 6 deletes C; 7 adds D (a big segment stays as it is).
    segments = [seg(1, 3, (1, "A"), (2, "B"), (3, "C")), seg(4, 4, (4, "-A")), seg(5, 5, (5, "B")),
                seg(6, 6, (6, "-C")), Segment(7, 400, tuple(rows(*[(v, f"D{v}") for v in range(7, 401)])))]
    current = [gone("A", 4), live("B", 5), gone("C", 6)] + [live(f"D{v}", v) for v in range(7, 401)]
    txns = plan_compaction(Counter(400), index(*current), segments, up_to=2**53)
    # Only A's tombstone (4) is older than every live product (B at 5): C's tombstone stays.
    assert sum(t.purged for t in txns) == 1 and txns[-1].counter == Counter(400, 4)
    rewritten = [r for t in txns for w in t.rewritten for r in w.segment.rows]
    assert [(r.version, r.sku, r.deleted) for r in rewritten] == [(5, "B", False), (6, "C", True)]
    # The small segments 1-6 are merged into the last one's key; the others are deleted.
    assert [w.segment.last_version for t in txns for w in t.rewritten] == [6]
    assert sorted(k for t in txns for k in t.deleted) == [3, 4, 5]
    assert all(t.ops <= TXN_MAX_OPS for t in txns)
    # A leaves its bucket; the big segment of live products is not touched.
    [bucket] = [w for t in txns for w in t.buckets]
    assert "A" not in bucket.entries and bucket.number == sku_bucket("A")


def test_compaction_raises_the_horizon_with_the_transaction_that_drops_the_tombstone():
    rng = random.Random(11)
    # 60 tombstones, each in a big (incompressible) segment of its own: several transactions.
    segments = [Segment(v, v, (VersionRow(v, f"T{v}", None),)) for v in range(1, 61)]
    fat = [VersionRow(v, f"L{v}", make_product(f"L{v}", name=noise(rng, 190))) for v in range(61, 1061)]
    segments += [w.segment for w in pack_segments(fat, 61, 1060)]
    superseded = [live(f"L{v}", v + 5000) for v in range(61, 1061)]  # every L changed later...
    current = [gone(f"T{v}", v) for v in range(1, 61)] + superseded + [live("Z", 1061)]
    txns = plan_compaction(Counter(7000), index(*current), segments, up_to=2**53)
    assert len(txns) > 1 and all(t.ops <= TXN_MAX_OPS and t.data_bytes <= TXN_MAX_DATA_BYTES for t in txns)
    # ...so every segment goes, and the horizon rises to the tombstones as they are dropped.
    assert sorted(k for t in txns for k in t.deleted) == [s.last_version for s in segments]
    dropped_so_far = 0
    for t in txns:
        dropped_so_far = max([dropped_so_far] + [k for k in t.deleted if k <= 60])
        assert t.counter.tombstone_horizon >= dropped_so_far
    assert txns[-1].counter == Counter(7000, 60) and sum(t.purged for t in txns) == 60


def test_compaction_leaves_a_clean_catalog_alone():
    segments = [Segment(1, 300, tuple(rows(*[(v, f"P{v}") for v in range(1, 301)])))]
    current = [live(f"P{v}", v) for v in range(1, 301)]
    assert plan_compaction(Counter(300), index(*current), segments, up_to=2**53) == []


def test_compaction_leaves_segments_written_after_the_counter_was_read():
    segments = [seg(1, 1, (1, "A")), seg(2, 2, (2, "A"))]
    assert plan_compaction(Counter(1), index(live("A", 1)), segments, up_to=2**53) == []


def test_compaction_never_moves_an_entry_below_its_old_key():
    # A reader's continuation token may point at a key: an entry moved below it would be missed.
    rng = random.Random(13)
    segments, current, v = [], [], 0
    for _ in range(4):  # dirty segments that do not fit into one when merged
        rows_ = [VersionRow(v + i + 1, f"N{v + i + 1}", make_product(f"N{v + i + 1}", name=noise(rng, 120))) for i in range(220)]
        segments.append(Segment(v + 1, v + 220, tuple(rows_)))
        current += [live(r.sku, r.version + (10_000 if r.version % 10 == 0 else 0)) for r in rows_]
        v += 220
    txns = plan_compaction(Counter(20_000), index(*current), segments, up_to=2**53)
    old_key = {r.version: s.last_version for s in segments for r in s.rows}
    pieces = [w.segment for t in txns for w in t.rewritten]
    assert len(pieces) > 1 and all(len(w.data) <= SEGMENT_MAX_BYTES for t in txns for w in t.rewritten)
    assert all(old_key[r.version] <= p.last_version for p in pieces for r in p.rows)
    assert {p.last_version for p in pieces} <= {s.last_version for s in segments}
    assert sorted(r.version for p in pieces for r in p.rows) == [r for r in range(1, 881) if r % 10]
