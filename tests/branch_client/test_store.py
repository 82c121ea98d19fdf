"""The store on real SQLite files in tmp_path."""

import multiprocessing
import os
import sqlite3
import stat
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import event, text

from branch_client.errors import BadInput, BadSaleInput, NotEnrolled
from branch_client.identity import Identity
from branch_client.sale_entry import DEFAULT_CASHIER, parse_discount, parse_items, parse_pay
from branch_client.store import FTS_AUTOMERGE, SaleState, Store
from shared.models import PaymentMethod, Sale, SaleKind
from tests.branch_client.fakes import entry, page, product, tombstone
from tests.branch_client.steps import sell_and_acknowledge, sqlite_steps

T0 = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)


def _row_count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _skus(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT sku FROM products ORDER BY sku")).scalars().all()


def _record_many(home, count, start_barrier=None):
    with Store(home) as s:
        if start_barrier is not None:
            start_barrier.wait()
        for _ in range(count):
            s.record_sale(parse_items(["SOAP=1"]))


# --- the file --------------------------------------------------------------------------------------


def test_the_database_is_one_file_in_the_home_in_wal_mode_with_full_sync(store, home):
    assert store.path == home / "branchsync.db" and store.path.exists()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


# --- numbering -------------------------------------------------------------------------------------


def test_sales_are_numbered_one_two_three(stocked):
    seqs = [stocked.record_sale(parse_items(["SOAP=1"])).seq for _ in range(3)]
    assert seqs == [1, 2, 3]


def test_the_number_is_taken_inside_a_begin_immediate_transaction(stocked):
    statements = []
    event.listen(stocked.engine, "before_cursor_execute", lambda c, cur, stmt, *a: statements.append(stmt))
    stocked.record_sale(parse_items(["SOAP=1"]))
    begin = [s for s in statements if s.startswith("BEGIN")]
    assert begin == ["BEGIN IMMEDIATE"]
    assert statements.index("BEGIN IMMEDIATE") < next(i for i, s in enumerate(statements) if "max(sales.seq)" in s)


def test_processes_recording_at_once_get_every_number_exactly_once(stocked, home):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    workers = [ctx.Process(target=_record_many, args=(home, 25, barrier)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    with stocked.engine.connect() as conn:
        seqs = conn.execute(text("SELECT seq FROM sales ORDER BY seq")).scalars().all()
        ids = conn.execute(text("SELECT count(DISTINCT sale_id) FROM sales")).scalar_one()
    assert seqs == list(range(1, 101)) and ids == 100
    bodies = [Sale.model_validate_json(b) for b in _bodies(stocked)]
    assert [b.seq for b in bodies] == seqs  # the number inside the stored sale is its row's number


def _bodies(store):
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT body FROM sales ORDER BY seq")).scalars().all()


def test_threads_recording_at_once_get_every_number_exactly_once(stocked, home):
    barrier = threading.Barrier(4)
    threads = [threading.Thread(target=_record_many, args=(home, 20, barrier)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with stocked.engine.connect() as conn:
        assert conn.execute(text("SELECT seq FROM sales ORDER BY seq")).scalars().all() == list(range(1, 81))


def test_a_refused_sale_stores_nothing_and_uses_up_no_number(stocked):
    stocked.record_sale(parse_items(["SOAP=1"]))
    with pytest.raises(BadSaleInput):
        stocked.record_sale(parse_items(["SOAP=1", "NOPE=1"]))
    with pytest.raises(BadSaleInput):
        stocked.record_sale(parse_items(["SOAP=1"]), payment="cheque")
    assert _row_count(stocked, "sales") == 1
    assert stocked.record_sale(parse_items(["SOAP=1"])).seq == 2


def test_a_stored_sale_reads_back_as_the_same_contract_sale(stocked):
    sale = stocked.record_sale(parse_items(["RICE-5KG=2", "DAL-1KG=1.5@120.50:end of day"]), PaymentMethod.CARD, now=T0)
    (record,) = stocked.recent_sales()
    assert record.sale == sale and record.state == SaleState.PENDING
    assert sale.total == 84000 + 18075 and sale.recorded_at == T0
    # The override's reason travels on its line, and is kept on this PC with the sale too.
    assert record.price_reasons == (None, "end of day") and sale.lines[1].price_reason == "end of day"


def test_every_new_sale_is_the_complete_record_with_its_cashier_discounts_and_split_payments(stocked):
    done = stocked.record(parse_items(["RICE-5KG=1", "SOAP=2"]), cashier="rahim",
                          discount=parse_discount("10%:loyal customer"),
                          payments=[parse_pay("bkash:9C7D2XK41Q=100"), parse_pay("cash=500")])
    sale = stocked.get_sale(done.number).sale
    assert sale == done.sale and sale.is_v3 and sale.cashier == "rahim"
    assert sale.discount.amount == 5100 and sale.total == 51000 - 5100
    cash = sale.payments[1]
    assert (cash.amount, cash.tendered, cash.change) == (45900 - 10000, 50000, 50000 - 35900)


def test_a_sale_recorded_without_a_cashier_names_the_documented_placeholder(stocked):
    assert stocked.record_sale(parse_items(["SOAP=1"])).cashier == DEFAULT_CASHIER == "manager"


def test_a_sale_whose_payments_do_not_add_up_stores_nothing_and_uses_no_number(stocked):
    with pytest.raises(BadSaleInput, match="add up exactly"):
        stocked.record(parse_items(["SOAP=1"]), payments=[parse_pay("card=40")])
    assert stocked.record(parse_items(["SOAP=1"])).number == "1"


# --- voids -----------------------------------------------------------------------------------------


def test_a_void_is_a_new_event_with_minus_the_sale_total(stocked):
    sale = stocked.record(parse_items(["RICE-5KG=1"]), payments=[parse_pay("nagad:TX9")]).sale
    void = stocked.void(sale.seq, cashier="karim").sale
    assert (void.seq, void.kind, void.voids, void.total, void.cashier) == (2, SaleKind.VOID, 1, -42000, "karim")
    assert [(p.method, p.amount, p.txn_id) for p in void.payments] == [("mobile", -42000, "TX9")]
    assert stocked.get_sale(1).voided_by == "2"


@pytest.mark.parametrize("target, says", [(99, "no sale number 99"), (2, "is a void"), (1, "already voided by number 2")])
def test_voiding_an_unknown_number_a_void_or_a_voided_sale_is_refused_and_stores_nothing(stocked, target, says):
    stocked.record_sale(parse_items(["SOAP=1"]))
    stocked.void_sale(1)
    with pytest.raises(BadSaleInput, match=says):
        stocked.void_sale(target)
    assert _row_count(stocked, "sales") == 2


# --- refunds ---------------------------------------------------------------------------------------


def test_a_refund_returns_part_of_a_sale_and_a_second_one_at_most_what_is_left(stocked):
    stocked.record(parse_items(["SOAP=3", "RICE-5KG=1"]))
    first = stocked.refund("1", [(1, "1")], cashier="rahim", reason="broken")
    assert (first.number, first.sale.kind, first.sale.total) == ("2", SaleKind.REFUND, -4500)
    assert first.sale.refunds.seq == 1 and [p.amount for p in first.sale.payments] == [-4500]
    with pytest.raises(BadSaleInput, match="more than the 2 sold and not yet returned"):
        stocked.refund("1", [(1, "3")])
    rest = stocked.refund("1", [(1, "2"), (2, "1")], payments=[parse_pay("card")])
    assert rest.sale.total == -(9000 + 42000) and rest.sale.payments[0].method == "card"
    record = stocked.get_sale("1")
    assert record.refunded_by == ("2", "3")
    assert record.returned == {1: (Decimal(3), 13500), 2: (Decimal(1), 42000)}
    assert stocked.get_sale("2").reason == "broken" and first.sale.reason == "broken" and rest.sale.reason is None


def test_a_voided_sale_cannot_be_refunded_nor_a_refunded_sale_voided(stocked):
    stocked.record_sale(parse_items(["SOAP=2"]))
    stocked.record_sale(parse_items(["SOAP=2"]))
    stocked.void(1)
    with pytest.raises(BadSaleInput, match="was voided by number 3"):
        stocked.refund("1", [(1, "1")])
    stocked.refund("2", [(1, "1")])
    with pytest.raises(BadSaleInput, match="refunded in part by number 4.*refund what is left"):
        stocked.void(2)
    with pytest.raises(BadSaleInput, match="is a refund; only a sale can be refunded"):
        stocked.refund("4", [(1, "1")])
    assert stocked.status()["sales_recorded"] == 4


def test_a_retried_refund_with_the_same_key_records_one_refund(stocked):
    stocked.record_sale(parse_items(["SOAP=2"]))
    key = "f" * 32
    assert stocked.refund("1", [(1, "1")], client_key=key).number == stocked.refund("1", [(1, "1")], client_key=key).number
    assert stocked.status()["sales_recorded"] == 2


# --- shifts ----------------------------------------------------------------------------------------


def test_closing_a_shift_records_a_shift_close_event_with_its_z_report_in_one_go(stocked):
    stocked.record_sale(parse_items(["SOAP=1"]))  # before the shift: in no Z report
    shift = stocked.open_shift("rahim", 200000)
    assert stocked.current_shift() == shift
    with pytest.raises(BadSaleInput, match="open already"):
        stocked.open_shift("karim", 0)
    stocked.record(parse_items(["RICE-5KG=1"]), payments=[parse_pay("cash=500")])        # cash 42000
    stocked.record(parse_items(["SOAP=2"]), payments=[parse_pay("bkash:TX1")],
                   discount=parse_discount("5:damaged"))                                  # bkash 8500
    stocked.refund("2", [(1, "1")])                                                       # cash back 42000
    stocked.record(parse_items(["SOAP=1"]), payments=[parse_pay("card")])                 # card 4500
    stocked.void(5)                                                                       # card back 4500
    report = stocked.close_shift(200050)
    assert (report.sales, report.gross, report.discounts, report.net) == (3, 42000 + 9000 + 4500, 500, 55000)
    assert (report.refunds, report.refunded, report.voids, report.voided) == (1, 42000, 1, 4500)
    assert report.by_method == {PaymentMethod.CASH: 0, PaymentMethod.CARD: 0, PaymentMethod.MOBILE: 8500}
    assert (report.expected_cash, report.counted_cash, report.difference) == (200000, 200050, 50)
    close = stocked.get_sale(report.number).sale
    assert close.kind == SaleKind.SHIFT_CLOSE and close.total == 0 and close.shift.shift_id == shift.id
    assert (close.shift.expected_cash, close.shift.by_method) == (200000, report.by_method)
    assert stocked.current_shift() is None and stocked.shift_report(shift.id) == report
    with pytest.raises(BadSaleInput, match="no shift is open"):
        stocked.close_shift(0)


# --- catalog ---------------------------------------------------------------------------------------


def test_products_are_found_by_sku_barcode_or_name_in_any_case(stocked):
    assert [p.sku for p in stocked.search_products("rice")] == ["RICE-5KG"]
    assert [p.sku for p in stocked.search_products("8901234")] == ["RICE-5KG"]
    assert [p.sku for p in stocked.search_products("LUX soap")] == ["SOAP"]


def test_bangla_names_are_found_by_any_part(stocked):
    assert [p.sku for p in stocked.search_products("ডাল")] == ["DAL-1KG"]
    assert sorted(p.sku for p in stocked.search_products("কেজি")) == ["DAL-1KG", "RICE-5KG"]


def test_an_exact_sku_comes_before_names_that_merely_contain_it(store):
    store.apply_catalog_page(page(entry(1, product("TEA", name="Black tea")), entry(2, product("ICE", name="Iced tea")),
                                  entry(3, product("GREEN", name="Green tea"))), 0)
    assert [p.sku for p in store.search_products("tea")][0] == "TEA"
    assert len(store.search_products("tea", limit=2)) == 2


def test_a_catalog_page_upserts_products_deletes_tombstones_and_stores_its_cursor(stocked):
    stocked.apply_catalog_page(page(entry(5, product("SOAP", 5000, "Lux Soap Bar")), tombstone(6, "DAL-1KG"),
                                    entry(7, product("SALT", 2500))), applied_through=0, now=T0)
    assert stocked.get_product("SOAP").price == 5000
    assert stocked.get_product("DAL-1KG") is None and stocked.get_product("SALT").price == 2500
    status = stocked.status()
    assert status["catalog_version"] == 7 and status["last_pull"].startswith("2026-11-28T06:00")


def test_a_catalog_page_acknowledges_pushed_sales_up_to_applied_through(stocked):
    for _ in range(3):
        stocked.record_sale(parse_items(["SOAP=1"]))
    stocked.mark_pushed([1, 2, 3])
    stocked.apply_catalog_page(page(next_cursor=4), applied_through=2)
    assert [r.state for r in stocked.recent_sales()] == [SaleState.PUSHED, SaleState.ACKED, SaleState.ACKED]
    assert stocked.status()["applied_through"] == 2 and stocked.pending_count() == 1


def test_a_sale_never_pushed_from_this_till_is_pushed_once_before_an_ack_can_cover_it(stocked):
    """A copied database holds sales the cloud may have under the same numbers from another PC."""
    for _ in range(2):
        stocked.record_sale(parse_items(["SOAP=1"]))
    stocked.apply_catalog_page(page(next_cursor=4), applied_through=2)
    assert [r.state for r in stocked.recent_sales()] == [SaleState.PENDING, SaleState.PENDING]
    assert [s.seq for s in stocked.sales_to_push(T0)] == [1, 2]
    stocked.mark_pushed([1, 2])
    stocked.apply_catalog_page(page(next_cursor=4), applied_through=2)
    assert stocked.pending_count() == 0


def test_a_failure_while_applying_a_page_leaves_no_entry_cursor_or_ack_behind(stocked, monkeypatch):
    stocked.record_sale(parse_items(["SOAP=1"]))
    before = (stocked.status(), stocked.search_products("soap"))

    def broken(*_args):
        raise RuntimeError("power cut")

    monkeypatch.setattr(Store, "_mark_acked", staticmethod(broken))
    with pytest.raises(RuntimeError):
        stocked.apply_catalog_page(page(entry(9, product("SOAP", 1)), tombstone(10, "RICE-5KG")), applied_through=1)
    assert (stocked.status(), stocked.search_products("soap")) == before
    assert stocked.get_product("RICE-5KG") is not None and stocked.catalog_cursor() == 4


def test_a_full_resync_keeps_products_sellable_until_the_new_catalog_is_complete(stocked):
    stocked.reset_catalog()
    assert stocked.catalog_cursor() == 0
    stocked.apply_catalog_page(page(entry(20, product("RICE-5KG", 43000, "চাল ৫ কেজি")), more=True), 0)
    # mid-resync: everything is still there and sellable
    assert stocked.record_sale(parse_items(["SOAP=1", "RICE-5KG=1"])).total == 4500 + 43000
    stocked.apply_catalog_page(page(entry(21, product("SOAP", 4500)), more=False), 0)
    # DAL, OLD-TEA were not sent again: gone from the catalog and from the search index
    assert stocked.search_products("dal") == [] and stocked.search_products("tea") == []
    assert stocked.get_product("DAL-1KG") is None and stocked.catalog_cursor() == 21


def test_a_full_resync_stopped_by_an_earlier_release_still_drops_what_the_cloud_did_not_send_again(stocked, home):
    from branch_client.store import UNCONFIRMED

    stocked.reset_catalog()
    stocked.apply_catalog_page(page(entry(20, product("RICE-5KG", 43000)), more=True), 0)
    with stocked.engine.begin() as conn:  # as the earlier release left it: no marker
        conn.execute(text("DELETE FROM meta WHERE key = :k"), {"k": UNCONFIRMED})
    stocked.close()
    with Store(home) as reopened:
        reopened.apply_catalog_page(page(entry(21, product("SOAP", 4500)), more=False), 0)
        assert _skus(reopened) == ["RICE-5KG", "SOAP"] and reopened.search_products("dal") == []


def test_a_pull_s_last_page_drops_products_only_after_a_full_resync(stocked):
    statements = []
    event.listen(stocked.engine, "before_cursor_execute", lambda c, cur, stmt, *a: statements.append(stmt))
    stocked.apply_catalog_page(page(entry(20, product("RICE-5KG", 43000))), 0)
    assert not [s for s in statements if s.startswith("DELETE FROM products")]
    stocked.reset_catalog()
    stocked.apply_catalog_page(page(entry(21, product("SOAP", 4500))), 0)
    assert [s for s in statements if s.startswith("DELETE FROM products")]
    assert _skus(stocked) == ["SOAP"]


# --- the counts a sync reads -----------------------------------------------------------------------


def test_the_counts_a_sync_reads_agree_with_status_as_sales_go_out_and_come_back_acknowledged(stocked):
    def agree():
        status, position = stocked.status(), stocked.sync_position()
        assert (position.pending, position.on_the_way, position.applied_through, position.catalog_cursor) == (
            status["pending"], status["pushed_unacked"], status["applied_through"], status["catalog_version"])
        assert stocked.on_the_way_count() == status["pushed_unacked"]
        assert stocked.pending_count() == status["pending"]
        due = stocked.due_counts(T0)
        assert (sum(due.values()), list(due)) == (stocked.count_to_push(T0), stocked.generations_to_push(T0))
        return position.pending, position.on_the_way

    assert agree() == (0, 0)
    for _ in range(4):
        stocked.record_sale(parse_items(["SOAP=1"]))
    assert agree() == (4, 0)
    stocked.mark_pushed([1, 2, 3], T0)
    assert agree() == (4, 3)
    stocked.apply_catalog_page(page(next_cursor=9), applied_through=2)
    assert agree() == (2, 1)


def test_counting_the_sales_on_their_way_reads_the_unacknowledged_ones_only(stocked):
    """The count a sync's ack wait repeats takes as many SQLite steps with 10 or 110 sales acknowledged."""
    def steps_to_count() -> int:
        return sqlite_steps(stocked, stocked.on_the_way_count, stocked.sync_position)

    sell_and_acknowledge(stocked, 12, 10, T0)  # two on their way
    few = steps_to_count()
    sell_and_acknowledge(stocked, 100, 110, T0)
    assert stocked.on_the_way_count() == 2 and steps_to_count() == few


def test_the_status_without_lifetime_figures_reads_the_unacknowledged_sales_only(stocked):
    """What the till's sync line reads every 3 s costs the same with 10 or 110 sales acknowledged;
    the lifetime figures, which read every sale, are left out (None) and grow with them."""
    sell_and_acknowledge(stocked, 12, 10, T0)
    few = sqlite_steps(stocked, lambda: stocked.status(lifetime=False))
    few_lifetime = sqlite_steps(stocked, stocked.status)
    sell_and_acknowledge(stocked, 100, 110, T0)
    assert sqlite_steps(stocked, lambda: stocked.status(lifetime=False)) == few
    assert sqlite_steps(stocked, stocked.status) > few_lifetime + 100
    short, full = stocked.status(lifetime=False), stocked.status()
    assert (short["sales_recorded"], short["total_paisa"]) == (None, None)
    assert full["sales_recorded"] == 112 and full["total_paisa"] == sum(r.sale.total for r in stocked.recent_sales(200))
    assert {k: v for k, v in short.items() if k not in ("sales_recorded", "total_paisa")} == {
        k: v for k, v in full.items() if k not in ("sales_recorded", "total_paisa")}
    assert (short["pending"], short["pushed_unacked"], short["never_pushed"]) == (2, 2, 0)


# --- push bookkeeping ------------------------------------------------------------------------------


def test_sales_are_due_for_push_until_pushed_then_again_after_ten_minutes_until_acked(stocked):
    for _ in range(3):
        stocked.record_sale(parse_items(["SOAP=1"]))
    assert [s.seq for s in stocked.sales_to_push(T0)] == [1, 2, 3]
    stocked.mark_pushed([1, 2], T0)
    assert [s.seq for s in stocked.sales_to_push(T0 + timedelta(minutes=9))] == [3]
    assert [s.seq for s in stocked.sales_to_push(T0 + timedelta(minutes=10))] == [1, 2, 3]
    stocked.apply_catalog_page(page(next_cursor=4), applied_through=1)
    assert [s.seq for s in stocked.sales_to_push(T0 + timedelta(hours=1))] == [2, 3]
    assert stocked.get_sale(1).push_count == 1 and stocked.status()["last_push"].startswith("2026-11-28T06:00")


def test_push_candidates_come_in_ascending_chunks(stocked):
    for _ in range(5):
        stocked.record_sale(parse_items(["SOAP=1"]))
    assert [s.seq for s in stocked.sales_to_push(T0, limit=2, after_seq=2)] == [3, 4]
    assert stocked.count_to_push(T0) == 5


def test_events_to_push_are_the_sales_to_push_as_their_stored_json_with_version_and_what_they_refer_to(stocked):
    from tests.branch_client.fakes import insert_as_an_older_version
    from tests.builders import make_sale

    insert_as_an_older_version(stocked, make_sale(1))  # a v1 sale of an older branchsync
    sold = stocked.record_sale(parse_items(["SOAP=2"]))
    stocked.void(sold.seq, reason="rang twice")
    again = stocked.record_sale(parse_items(["SOAP=1"]))
    stocked.refund(again.seq, [(1, "1")], reason="broken")
    sales, events = stocked.sales_to_push(T0), stocked.events_to_push(T0)
    assert [e.seq for e in events] == [s.seq for s in sales] == [1, 2, 3, 4, 5]
    assert [e.json for e in events] == [s.model_dump_json() for s in sales]
    assert [e.is_v3 for e in events] == [s.is_v3 for s in sales] == [False, True, True, True, True]
    assert [e.refers_to for e in events] == [None, None, (1, 2), None, (1, 4)]
    assert [e.seq for e in stocked.events_to_push(T0, limit=2, after_seq=2)] == [3, 4]


def test_a_sync_error_is_kept_as_one_line_until_cleared(store):
    store.record_error("cannot reach\nthe cloud", T0)
    assert store.status()["last_error"] == "cannot reach the cloud"
    store.clear_error()
    assert store.status()["last_error"] is None


def test_a_sync_errors_code_is_kept_beside_its_words_and_goes_with_them(store):
    store.record_error("cloud refused (branch_revoked): head office revoked this branch", T0, code="branch_revoked")
    assert store.status()["last_error_code"] == "branch_revoked"
    store.record_error("something new", T0)  # no code: the old one does not stay
    assert (store.status()["last_error"], store.status()["last_error_code"]) == ("something new", None)
    store.record_error("cannot reach the cloud", T0, code="cloud_unreachable")
    store.record_sync_ok(T0)
    assert (store.status()["last_error"], store.status()["last_error_code"]) == (None, None)


# --- status and identity -----------------------------------------------------------------------------


def test_status_reports_pending_acks_catalog_and_errors_under_stable_keys(stocked):
    stocked.record_sale(parse_items(["SOAP=1"]))
    status = stocked.status()
    assert {"pending", "applied_through", "catalog_version", "last_pull", "last_push", "last_error"} <= set(status)
    assert (status["pending"], status["applied_through"], status["catalog_version"]) == (1, 0, 4)
    assert status["sales_recorded"] == 1 and status["pushed_unacked"] == 0 and status["products"] == 4


def test_an_unenrolled_home_says_how_to_enroll(store):
    with pytest.raises(NotEnrolled, match="branchsync enroll CODE"):
        store.identity()


def test_the_branch_name_for_a_receipt_is_none_until_enrolled_then_the_enrolled_name(store):
    assert store.branch_name() is None
    store.save_identity(Identity("dhaka-1", "https://cloud.example", "s" * 40))
    assert store.branch_name() == "dhaka-1"


def test_the_secret_lives_only_in_an_owner_only_file(store, home):
    secret = "s3cr3t-" + "x" * 40
    store.save_identity(Identity("dhaka-1", "https://cloud.example", secret))
    assert store.identity() == Identity("dhaka-1", "https://cloud.example", secret)
    secret_file = home / "secret"
    if os.name == "posix":
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret not in repr(store.identity()) and secret not in str(store.status())
    store.close()
    for f in home.glob("branchsync.db*"):
        assert secret.encode() not in f.read_bytes()


# --- the till's additions: idempotency key, void reason, the search index -------------------------


def test_a_second_submission_with_the_same_key_returns_the_first_sale_and_records_nothing(stocked):
    first = stocked.record_sale(parse_items(["SOAP=1"]), "cash", client_key="a" * 32)
    again = stocked.record_sale(parse_items(["SOAP=1"]), "cash", client_key="a" * 32)
    other = stocked.record_sale(parse_items(["SOAP=1"]), "cash", client_key="b" * 32)
    assert again == first and other.seq == first.seq + 1
    assert stocked.status()["sales_recorded"] == 2


def test_a_void_keeps_its_reason_on_this_pc_and_sends_it_with_the_void(stocked):
    stocked.record_sale(parse_items(["SOAP=1"]))
    void = stocked.void_sale(1, reason="wrong item")
    assert stocked.get_sale(2).reason == "wrong item" and stocked.get_sale(1).reason is None
    assert void.reason == "wrong item" and stocked.get_sale(2).sale.reason == "wrong item"


def test_the_search_index_follows_every_catalog_change_in_the_same_transaction(stocked):
    stocked.apply_catalog_page(page(entry(10, product("SOAP", 4600, "Meril Soap", barcode="5000009")),
                                    tombstone(11, "DAL-1KG")), 0)
    assert stocked.search_products("lux") == [] and [p.sku for p in stocked.search_products("meril")] == ["SOAP"]
    assert stocked.find_by_code("5000009").sku == "SOAP" and stocked.find_by_code("5000001") is None
    assert stocked.search_products("ডাল") == []


def _schema(store: Store) -> set:
    with store.engine.connect() as conn:
        return set(conn.execute(text("SELECT type, name, tbl_name FROM sqlite_master")).all())


def _first_pull_page(first: int, count: int, more: bool):
    return page(*(entry(v, product(f"P{v}", name=f"চাল মিনিকেট {v}", barcode=f"89{v:08d}"))
                  for v in range(first, first + count)), more=more)


def _fts_is_consistent(store: Store) -> bool:
    with store.engine.begin() as conn:  # FTS5 raises if its index differs from product_terms
        conn.exec_driver_sql("INSERT INTO product_search (product_search, rank) VALUES ('integrity-check', 1)")
    return True


def test_a_first_pull_indexes_each_page_for_search_in_one_pass_and_restores_the_triggers_with_its_last(store, home):
    with Store(home.parent / "fresh") as fresh:
        schema = _schema(fresh)
    store.apply_catalog_page(_first_pull_page(1, 50, more=True), 0)
    # The page's keys went in beside it, set-based; no trigger (nor index) of products or product_terms is there.
    assert _row_count(store, "products") == 50 and _row_count(store, "product_terms") == 50
    assert not {(t, n) for t, n, tbl in _schema(store) - schema if tbl in ("products", "product_terms")}
    assert {n for t, n, tbl in schema - _schema(store)} >= {"products_search_ai", "product_terms_ai", "products_barcode"}
    assert [p.sku for p in store.search_products("মিনিকেট 7")][:1] == ["P7"]
    store.apply_catalog_page(_first_pull_page(51, 50, more=False), 0)
    assert _row_count(store, "product_terms") == 100 and _schema(store) == schema and _fts_is_consistent(store)
    assert all(store.find_by_code(f"89{v:08d}").sku == f"P{v}" for v in range(1, 101))
    assert [p.sku for p in store.search_products("মিনিকেট 7")][:2] == ["P7", "P70"]
    # later pulls go through the triggers again, in the page's own transaction
    store.apply_catalog_page(page(entry(101, product("P7", name="Atta 2kg")), tombstone(102, "P70")), 0)
    assert [p.sku for p in store.search_products("atta")] == ["P7"]
    assert [p.sku for p in store.search_products("মিনিকেট 7")][:2] == ["P71", "P72"]


def _fts_automerge(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT v FROM product_search_config WHERE k = 'automerge'").scalar()


def test_a_first_pull_looks_up_no_new_sku_and_leaves_merging_the_search_index_to_its_last_page(store):
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda c, cur, stmt, *a: statements.append(stmt))
    store.apply_catalog_page(_first_pull_page(1, 50, more=True), 0)
    store.apply_catalog_page(_first_pull_page(51, 50, more=True), 0)
    # Every SKU was new: no search keys to take out, and the FTS index's segments stay unmerged.
    assert not [s for s in statements if "'delete'" in s or s.startswith("DELETE FROM product_terms")]
    assert _fts_automerge(store) == 0
    store.apply_catalog_page(_first_pull_page(101, 50, more=False), 0)
    assert _fts_automerge(store) == FTS_AUTOMERGE and _fts_is_consistent(store)
    assert [p.sku for p in store.search_products("মিনিকেট 120")] == ["P120"]


def test_a_sku_changed_or_deleted_while_a_first_pull_runs_is_searchable_only_as_it_ends(store):
    store.apply_catalog_page(_first_pull_page(1, 30, more=True), 0)
    # The cloud's later pages bring P7 again (renamed meanwhile) and P9's tombstone.
    store.apply_catalog_page(page(entry(40, product("P7", name="Atta 2kg", barcode="8900000777")), tombstone(41, "P9"),
                                  more=True), 0)
    store.apply_catalog_page(_first_pull_page(50, 5, more=False), 0)
    assert _fts_is_consistent(store) and _row_count(store, "product_terms") == _row_count(store, "products") == 34
    assert [p.sku for p in store.search_products("atta")] == ["P7"] and store.find_by_code("8900000777").sku == "P7"
    assert not store.search_products("মিনিকেট 7") and not store.search_products("P9")
    assert {p.sku for p in store.search_products("মিনিকেট", limit=100)} == {f"P{v}" for v in (*range(1, 31), *range(50, 55))} - {"P7", "P9"}


def test_a_first_pull_page_of_tombstones_only_is_stored(store):
    store.apply_catalog_page(_first_pull_page(1, 5, more=True), 0)
    store.apply_catalog_page(page(tombstone(6, "P2"), tombstone(7, "P4"), more=True), 0)
    store.apply_catalog_page(_first_pull_page(8, 2, more=False), 0)
    assert _fts_is_consistent(store) and {p.sku for p in store.search_products("মিনিকেট")} == {"P1", "P3", "P5", "P8", "P9"}


def test_a_price_day_rewrites_no_search_keys_of_products_whose_name_and_barcode_stay(store, home):
    store.apply_catalog_page(_first_pull_page(1, 300, more=False), 0)
    with sqlite3.connect(home / "branchsync.db") as db:  # counts what the search trigger rewrites
        db.executescript("""CREATE TABLE rewrites (sku TEXT);
            CREATE TRIGGER count_rewrites AFTER UPDATE ON product_terms BEGIN INSERT INTO rewrites VALUES (new.sku); END""")
    repriced = [entry(300 + v, product(f"P{v}", 555, name=f"চাল মিনিকেট {v}", barcode=f"89{v:08d}", unit="bag"))
                for v in range(1, 201)]
    renamed = entry(501, product("P250", 777, name="Atta 2kg", barcode=f"89{250:08d}"))
    store.apply_catalog_page(page(*repriced, renamed), 0)
    assert _row_count(store, "rewrites") == 1 and [p.sku for p in store.search_products("atta")] == ["P250"]
    assert store.find_by_code(f"89{7:08d}").price == 555 and store.find_by_code(f"89{7:08d}").unit == "bag"
    assert _fts_is_consistent(store) and store.catalog_cursor() == 501


def _pull_one_page_then_die(home):
    with Store(home) as s:
        s.apply_catalog_page(_first_pull_page(1, 40, more=True), 0)
        os.kill(os.getpid(), 9)


def test_a_first_pull_killed_between_pages_leaves_every_pulled_product_searchable(home):
    with Store(home) as s:  # the database exists before the pull starts, as after enrolling
        schema = _schema(s)
    killed = multiprocessing.get_context("spawn").Process(target=_pull_one_page_then_die, args=(home,))
    killed.start()
    killed.join(60)
    assert killed.exitcode == -9
    with Store(home) as s:
        assert all(s.find_by_code(f"89{v:08d}").sku == f"P{v}" for v in range(1, 41))
        assert {p.sku for p in s.search_products("মিনিকেট", limit=100)} == {f"P{v}" for v in range(1, 41)}
        assert _schema(s) == schema and s.catalog_cursor() == 40 and _fts_automerge(s) == FTS_AUTOMERGE
        s.apply_catalog_page(_first_pull_page(41, 20, more=False), 0)  # the pull resumes, on the triggers
        assert {p.sku for p in s.search_products("মিনিকেট", limit=100)} == {f"P{v}" for v in range(1, 61)}


def test_the_search_key_of_ascii_text_is_its_full_normalisation():
    import string
    import unicodedata

    from branch_client.store import fold

    def normalised(v):
        return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", v).casefold())

    for text_ in [*map(chr, range(128)), string.printable * 2, "RICE-5KG", "8901234567890"]:
        assert fold(text_) == normalised(text_)
    assert fold("ﬁ Straße") == normalised("ﬁ Straße") == "fi strasse"


def test_composed_and_decomposed_bangla_find_the_same_products(store):
    import unicodedata

    name = "কোকো বিস্কুট"
    store.apply_catalog_page(page(entry(1, product("COCO", 2000, unicodedata.normalize("NFD", name)))), 0)
    for query in (unicodedata.normalize("NFC", "কোকো"), unicodedata.normalize("NFD", "কোকো")):
        assert [p.sku for p in store.search_products(query)] == ["COCO"]


def test_a_query_shorter_than_three_characters_matches_the_start_only(stocked):
    assert [p.sku for p in stocked.search_products("so")] == ["SOAP"]
    assert [p.sku for p in stocked.search_products("চা")] == ["RICE-5KG"]
    assert stocked.search_products("ap") == []  # inside "SOAP", not at its start


def test_an_exact_code_comes_first_even_when_a_broad_query_matches_thousands(store):
    from branch_client.store import SEARCH_WINDOW

    many = [entry(i + 1, product(f"TEA-{i:05d}", 1000, f"Tea {i}", barcode=f"777{i:05d}"))
            for i in range(SEARCH_WINDOW * 3)]
    store.apply_catalog_page(page(*many, entry(10_000, product("TEA", 900, "Zz tea"))), 0)
    found = store.search_products("tea", limit=5)
    assert found[0].sku == "TEA" and len(found) == 5
    assert store.search_products(f"777{SEARCH_WINDOW * 3 - 1:05d}")[0].sku == f"TEA-{SEARCH_WINDOW * 3 - 1:05d}"


# --- one lookup for what is typed or scanned ---------------------------------------------------------

ATTA_LABEL_BASE = "2012345000001"  # a scale's product list: prefix 20, item 12345, weight zeroed


@pytest.fixture
def weighed(stocked):
    stocked.apply_catalog_page(page(entry(10, product("ATTA", 6500, "আটা (খোলা)", barcode=ATTA_LABEL_BASE, unit="kg"))),
                               applied_through=0)
    return stocked


def test_a_sku_in_any_case_or_a_barcode_is_sold_like_the_sku(stocked):
    sale = stocked.record_sale(parse_items(["rice-5kg=1", "8901234567890=2", "soap"]))
    assert [(ln.sku, ln.qty) for ln in sale.lines] == [("RICE-5KG", 1), ("RICE-5KG", 2), ("SOAP", 1)]


def test_an_unknown_item_suggests_the_closest_products_from_the_search(stocked):
    with pytest.raises(BadSaleInput, match=r"no product with SKU or barcode 'RICE' .*did you mean RICE-5KG \(চাল ৫ কেজি\)"):
        stocked.record_sale(parse_items(["RICE=1"]))
    assert stocked.status()["sales_recorded"] == 0


def test_a_weight_label_from_the_scale_sells_its_weight_of_the_product(weighed):
    match = weighed.lookup("2012345012509")
    assert match.product.sku == "ATTA" and match.embedded.amount == 1250
    (line,) = weighed.record_sale(parse_items(["2012345012509"])).lines
    assert (line.sku, line.qty, line.line_total) == ("ATTA", Decimal("1.25"), 8125)


def test_the_scale_rule_is_a_setting_price_labels_included(weighed):
    weighed.set_setting("barcode.value", "price")
    (line,) = weighed.record_sale(parse_items(["2012345081253"])).lines  # ৳81.25 of atta at ৳65/kg
    assert (line.qty, line.line_total) == (Decimal("1.25"), 8125)
    weighed.set_setting("barcode.prefixes", "21,22")
    assert weighed.lookup("2012345081253") is None


def test_a_misread_label_or_one_no_product_has_is_refused_and_nothing_is_stored(weighed):
    with pytest.raises(BadSaleInput, match="wrong check digit"):
        weighed.record_sale(parse_items(["2012345012503"]))
    with pytest.raises(BadSaleInput, match="no product has item code 54321"):
        weighed.record_sale(parse_items(["2054321012509"]))
    assert weighed.status()["sales_recorded"] == 0


def test_a_setting_that_would_break_the_label_rule_is_refused_and_not_kept(stocked):
    stocked.set_setting("barcode.item_digits", "6")
    with pytest.raises(BadInput, match="verifier digit needs a 4- or 5-digit value"):
        stocked.set_setting("barcode.verifier", "yes")
    assert stocked.settings()["barcode.verifier"] == "no"
    with pytest.raises(BadInput, match="there is no setting"):
        stocked.set_setting("shop.colour", "blue")


def test_a_very_large_quantity_needs_confirming(stocked):
    with pytest.raises(BadSaleInput, match="is a lot"):
        stocked.record_sale(parse_items(["SOAP=1000"]))
    assert stocked.record_sale(parse_items(["SOAP=1000"]), confirmed=True).total == 4500 * 1000


def test_the_quantity_check_is_the_sales_own(stocked):
    assert stocked.quantity("DAL-1KG", "1.255")[1] == Decimal("1.255")
    with pytest.raises(BadSaleInput, match="whole number"):
        stocked.quantity("SOAP", "1.5")
    with pytest.raises(BadSaleInput, match="write 1.5 with a dot"):
        stocked.quantity("DAL-1KG", "1,5")


# --- held carts and cashiers --------------------------------------------------------------------------


def test_a_held_cart_survives_reopening_the_database_and_is_taken_back_once(stocked, home):
    held = stocked.hold_cart(parse_items(["SOAP=2", "RICE-5KG=1"]), [{"sku": "SOAP", "qty": "2"},
                                                                    {"sku": "RICE-5KG", "qty": "1"}], cashier="Rahim")
    assert (held.total, held.line_count, held.first_name) == (9000 + 42000, 2, "Lux Soap Bar")
    with Store(home) as again:
        [kept] = again.held_carts()
        assert kept.items == [{"sku": "SOAP", "qty": "2"}, {"sku": "RICE-5KG", "qty": "1"}] and kept.cashier == "Rahim"
        assert again.take_held_cart(kept.id).id == held.id
        with pytest.raises(BadSaleInput, match="gone"):
            again.take_held_cart(kept.id)
    assert stocked.held_carts() == [] and stocked.status()["sales_recorded"] == 0


def test_a_cashiers_pin_is_kept_only_as_a_salted_hash_and_checked(stocked):
    stocked.add_cashier("Rahim", "4821")
    stocked.add_cashier("Karim", "4821")
    with stocked.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(text("SELECT pin_hash FROM cashiers"))]
    # Every field of what is kept is accounted for (scheme, cost, salt, digest), so the PIN is not
    # in it; looking for "4821" in the hex instead would fail now and then by chance.
    for kept in hashes:
        scheme, n, r, p, salt, digest = kept.split("$")
        assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
        assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    assert hashes[0] != hashes[1]  # salted: the same PIN is kept differently
    assert stocked.sign_in("rahim", "4821") == "Rahim"
    assert stocked.sign_in("Rahim", "1111") is None and stocked.sign_in("Nobody", "4821") is None
    with pytest.raises(BadInput, match="already a cashier Rahim"):
        stocked.add_cashier("RAHIM", "9999")
    stocked.add_cashier("rahim", "9999", replace=True)
    assert stocked.sign_in("Rahim", "9999") == "Rahim" and stocked.cashier_names() == ["Karim", "Rahim"]


def test_a_sale_and_a_void_record_who_was_signed_in(stocked):
    stocked.record(parse_items(["SOAP=1"]), cashier="Rahim")
    stocked.void("1", reason="wrong item", cashier="Karim")
    assert [(r.number, r.cashier) for r in stocked.recent_sales()] == [("2", "Karim"), ("1", "Rahim")]
