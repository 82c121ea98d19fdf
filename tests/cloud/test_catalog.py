"""Catalog planning and page building: versions, tombstones, cursors and the horizon."""

import pytest
from tests.builders import make_product

from cloud.catalog import (
    Counter,
    IndexEntry,
    VersionRow,
    build_page,
    digest,
    group_writes,
    plan_delete,
    plan_purge,
    plan_upserts,
)
from shared.errors import ContractError, ErrorCode


def rows(*specs):
    """VersionRows from (version, sku) pairs; a sku starting with '-' is a tombstone."""
    return [VersionRow(v, sku.lstrip("-"), None if sku.startswith("-") else make_product(sku)) for v, sku in specs]


def test_versions_are_consecutive_from_the_counter():
    writes = plan_upserts(Counter(10), [make_product("A"), make_product("B"), make_product("C")], {})
    assert [w.row.version for w in writes] == [11, 12, 13]
    assert all(w.previous_version is None for w in writes)


def test_a_changed_product_replaces_its_previous_version():
    index = {"A": IndexEntry("A", 4, False, digest(make_product("A", 100)))}
    [write] = plan_upserts(Counter(9), [make_product("A", 200)], index)
    assert write.row.version == 10 and write.previous_version == 4 and write.ops == 3


def test_an_unchanged_product_gets_no_new_version():
    index = {"A": IndexEntry("A", 4, False, digest(make_product("A", 100)))}
    assert plan_upserts(Counter(9), [make_product("A", 100)], index) == []


def test_a_deleted_product_imported_again_comes_back_under_a_new_version():
    index = {"A": IndexEntry("A", 5, True)}
    [write] = plan_upserts(Counter(9), [make_product("A")], index)
    assert write.row.version == 10 and write.previous_version == 5


def test_a_sku_twice_in_one_import_is_refused():
    with pytest.raises(ContractError) as err:
        plan_upserts(Counter(), [make_product("A"), make_product("A", 5)], {})
    assert err.value.code == ErrorCode.BAD_REQUEST and "A" in err.value.message


def test_deleting_writes_a_tombstone_under_the_next_version():
    write = plan_delete(Counter(7), "A", IndexEntry("A", 3, False))
    assert write.row.deleted and write.row.version == 8 and write.previous_version == 3


@pytest.mark.parametrize("current", [None, IndexEntry("A", 3, True)])
def test_deleting_an_unknown_or_deleted_sku_is_not_found(current):
    with pytest.raises(ContractError) as err:
        plan_delete(Counter(7), "A", current)
    assert err.value.code == ErrorCode.NOT_FOUND


def test_writes_are_grouped_into_transactions_of_at_most_100_operations():
    index = {f"P{i}": IndexEntry(f"P{i}", i + 1, False) for i in range(0, 1000, 2)}
    writes = plan_upserts(Counter(1000), [make_product(f"P{i}") for i in range(1000)], index)
    groups = group_writes(writes)
    assert all(sum(w.ops for w in g) + 1 <= 100 for g in groups)
    assert [w for g in groups for w in g] == writes
    assert len(groups) == 26  # 2,500 operations / 99 per transaction


def test_a_page_holds_ascending_versions_up_to_the_limit_and_says_more():
    page = build_page(0, rows((1, "A"), (2, "B"), (3, "C")), limit=2, exhausted=False, counter=Counter(9))
    assert [e.version for e in page.entries] == [1, 2]
    assert page.next_cursor == 2 and page.more and not page.full_resync


def test_the_last_page_jumps_the_cursor_to_the_counter():
    # Versions 6..9 were superseded or purged: nothing to read, but the cursor moves past them.
    page = build_page(3, rows((4, "A"), (5, "-B")), limit=10, exhausted=True, counter=Counter(9))
    assert [(e.version, e.deleted) for e in page.entries] == [(4, False), (5, True)]
    assert page.entries[1].product is None
    assert page.next_cursor == 9 and not page.more


def test_nothing_new_keeps_the_cursor():
    page = build_page(9, [], limit=10, exhausted=True, counter=Counter(9))
    assert page.entries == [] and page.next_cursor == 9 and not page.more


def test_a_sku_met_twice_while_reading_appears_once_at_its_latest_version():
    page = build_page(0, rows((1, "A"), (2, "B"), (3, "A")), limit=10, exhausted=True, counter=Counter(3))
    assert [(e.version, e.sku) for e in page.entries] == [(2, "B"), (3, "A")]


def test_a_cursor_below_the_tombstone_horizon_asks_for_full_resync():
    page = build_page(4, [], limit=10, exhausted=True, counter=Counter(20, tombstone_horizon=5))
    assert page.full_resync and page.next_cursor == 0 and page.entries == []


@pytest.mark.parametrize("cursor", [0, 5, 6])
def test_a_fresh_or_current_cursor_needs_no_full_resync(cursor):
    page = build_page(cursor, [], limit=10, exhausted=True, counter=Counter(20, tombstone_horizon=5))
    assert not page.full_resync


def test_a_cursor_beyond_the_last_version_asks_for_full_resync():
    # The branch holds versions this catalog never issued: the catalog was reset.
    assert build_page(30, [], limit=10, exhausted=True, counter=Counter(20)).full_resync


def test_purge_takes_only_tombstones_older_than_every_live_product():
    scanned = rows((3, "-A"), (4, "-B"), (6, "C"), (7, "-D"))
    assert [r.version for r in plan_purge(scanned, up_to=100)] == [3, 4]
    assert [r.version for r in plan_purge(scanned, up_to=3)] == [3]
