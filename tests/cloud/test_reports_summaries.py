"""The day summaries through the service: kept by the apply exactly once, rebuilt alike, read by the reports."""

import dataclasses
from datetime import date, datetime, timedelta, timezone

import pytest

from branchsync_cloud.store import Conflict
from branchsync_cloud.summaries import business_day
from shared.encoding import encode_batch, from_queue_text
from shared.errors import ContractError
from shared.models import SalesBatch
from tests.builders import (
    T0, make_line, make_line3, make_refund, make_sale, make_sale3, make_shift_close, make_void, make_void3,
)
from tests.cloud.test_service import enroll, pull, push

DAY = date(2026, 11, 28)  # T0 in Dhaka


def v3_batch(branch, sales, generation=1):
    return SalesBatch.of(branch, generation, T0, sales)


def at(sale, when):
    return sale.model_copy(update={"recorded_at": when})


def mixed_events():
    """Three business days of every kind of event, v1 and v3."""
    s1 = make_sale3(1, [make_line3("RICE", "2", 10000, vat_rate="5"), make_line3("OIL", "1", 5000, vat_rate="7.5")],
                    discount=("amount", 500), cashier="karim")
    s2 = make_sale3(2, [make_line3("RICE", "1", 10000)], cashier="rahim")
    s3 = at(make_sale3(3, [make_line3("DAL", "1.5", 8000, vat_rate="0")]), T0 + timedelta(days=1))
    refund = at(make_refund(4, s1, [(1, "1", 9750)], cashier="rahim"), T0 + timedelta(days=1))
    void = at(make_void3(5, s2, cashier="karim"), T0 + timedelta(days=1))
    close = at(make_shift_close(6, cashier="karim"), T0 + timedelta(days=2))
    return [s1, s2, s3, refund, void, close]


def summaries(service, branch="dhaka-1"):
    return service.store.read_summaries(branch, date.min, date.max)


def test_applying_a_batch_keeps_its_days_figures_beside_the_sales(service):
    secret = enroll(service)
    events = mixed_events()
    push(service, v3_batch("dhaka-1", events), secret)
    days = {s.day: s for s in summaries(service)}
    assert sorted(days) == [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    assert days[DAY].sales == 2 and days[DAY].net == events[0].total + events[1].total
    later = days[DAY + timedelta(days=1)]
    assert (later.sales, later.refunds, later.voids) == (1, 1, 1)
    assert later.net == events[2].total + events[3].total + events[4].total
    assert days[DAY + timedelta(days=2)].shifts[0]["cashier"] == "karim"
    assert sum(s.net for s in days.values()) == service.store.get_ledger("dhaka-1").total_paisa


def test_a_redelivered_message_and_a_replay_count_nothing_twice(service):
    secret = enroll(service)
    batch = v3_batch("dhaka-1", mixed_events())
    push(service, batch, secret)
    once = summaries(service)
    push(service, batch, secret)  # the queue delivers it again
    assert service.apply_message(from_queue_text(encode_batch(batch, secret))).status == "duplicate"
    assert all(a.same_figures(b) for a, b in zip(once, summaries(service))) and len(once) == len(summaries(service))


def test_rebuilt_summaries_agree_with_the_incremental_ones_after_out_of_order_and_repeated_messages(service):
    secret = enroll(service)
    events = mixed_events()
    later = [make_sale(7, [make_line("TEA", "3", 2000)], recorded_at=T0 + timedelta(days=2)),
             make_void(8, make_sale(7, [make_line("TEA", "3", 2000)]), recorded_at=T0 + timedelta(days=2))]
    later[1] = later[1].model_copy(update={"voids": 7})
    push(service, SalesBatch.of("dhaka-1", 1, T0, later), secret)  # arrives before its predecessor
    push(service, v3_batch("dhaka-1", events[:3]), secret)
    push(service, v3_batch("dhaka-1", events[:3]), secret)  # redelivered
    push(service, v3_batch("dhaka-1", events[3:]), secret)
    incremental = summaries(service)
    result = service.rebuild_summaries()
    assert result.branches == {"dhaka-1": 3} and result.events == 8
    rebuilt = summaries(service)
    assert len(rebuilt) == len(incremental)
    assert all(a.same_figures(b) for a, b in zip(incremental, rebuilt))


def test_rebuild_builds_the_summaries_of_sales_applied_before_they_were_kept(service):
    secret = enroll(service)
    push(service, v3_batch("dhaka-1", mixed_events()), secret)
    expected = summaries(service)
    # As stored before the apply kept summaries: the sales and ledger only.
    service.store._days.clear()
    assert summaries(service) == []
    service.rebuild_summaries("dhaka-1")
    assert all(a.same_figures(b) for a, b in zip(expected, summaries(service))) and len(summaries(service)) == 3


def test_a_rebuild_that_loses_a_race_to_an_apply_reads_the_branch_again(service, monkeypatch):
    secret = enroll(service)
    push(service, v3_batch("dhaka-1", mixed_events()[:2]), secret)
    real = service.store.replace_summaries
    calls = []

    def racing(ledger, days):
        calls.append(len(days))
        if len(calls) == 1:  # an apply commits between the rebuild's read and its write
            push(service, v3_batch("dhaka-1", [make_sale3(3, [make_line3("DAL", "1", 100)])]), secret)
        return real(ledger, days)

    monkeypatch.setattr(service.store, "replace_summaries", racing)
    service.rebuild_summaries()
    [day] = summaries(service)
    assert len(calls) == 2 and day.sales == 3


def test_a_stale_summary_etag_makes_the_apply_re_plan_rather_than_overwrite(service, monkeypatch):
    secret = enroll(service)
    push(service, make_batch_v1(1), secret)
    real = service.store.get_ledger_and_days
    seen = []

    def stale(branch, first):
        ledger, found = real(branch, first)
        seen.append(1)
        if len(seen) == 1:  # as if another instance's apply changed the day after this read
            return ledger, {d: dataclasses.replace(s, etag='W/"stale"') for d, s in found.items()}
        return ledger, found

    monkeypatch.setattr(service.store, "get_ledger_and_days", stale)
    push(service, make_batch_v1(2), secret)
    [day] = summaries(service)
    assert len(seen) == 2 and day.sales == 2


def make_batch_v1(seq):
    return SalesBatch.of("dhaka-1", 1, T0, [make_sale(seq)])


def test_a_batch_over_many_days_is_cut_so_each_transaction_holds_its_day_rows(service):
    secret = enroll(service)
    sales = [make_sale(seq, recorded_at=T0 + timedelta(days=seq)) for seq in range(1, 201)]
    push(service, SalesBatch.of("dhaka-1", 1, T0, sales), secret)
    assert len(summaries(service)) == 200
    assert sum(s.net for s in summaries(service)) == sum(s.total for s in sales)
    assert service.store.get_ledger("dhaka-1").apply.applied_through == 200


# --- the reports ---------------------------------------------------------------------------------


def test_the_sales_report_by_day_names_a_branch_that_has_not_synced_since_the_day_ended(service, clock):
    a, b = enroll(service, "dhaka-1"), enroll(service, "ctg-1")
    push(service, v3_batch("dhaka-1", mixed_events()), a)
    push(service, SalesBatch.of("ctg-1", 1, T0, [make_sale(1)]), b)
    clock.now = datetime(2026, 11, 30, 4, tzinfo=timezone.utc)  # the 30th in Dhaka
    pull(service, "dhaka-1", a, clock, cursor=0, pending=0)
    pull(service, "ctg-1", b, clock, cursor=0, pending=3)  # synced, but still holding sales
    report = service.sales_report(DAY, DAY + timedelta(days=1), by="day")
    assert report.columns[:2] == ["day", "sales"] and [r[0] for r in report.rows] == ["2026-11-28", "2026-11-29"]
    first = dict(zip(report.columns, report.rows[0]))
    assert first["sales"] == 3 and first["complete"] == "no" and first["waiting_on"] == "ctg-1"
    assert not report.complete
    assert {s.branch: s.complete_through for s in report.branches} == {"dhaka-1": date(2026, 11, 29), "ctg-1": None}


def test_the_sales_report_by_branch_carries_each_branchs_last_sync_and_pending_count(service, clock):
    a = enroll(service, "dhaka-1")
    push(service, v3_batch("dhaka-1", mixed_events()), a)
    clock.now = datetime(2026, 12, 5, 4, tzinfo=timezone.utc)
    pull(service, "dhaka-1", a, clock, cursor=0, pending=0)
    report = service.sales_report(DAY, DAY + timedelta(days=2), by="branch")
    [row] = [dict(zip(report.columns, r)) for r in report.rows]
    assert row["branch"] == "dhaka-1" and row["net"] == service.store.get_ledger("dhaka-1").total_paisa
    assert row["pending_at_sync"] == 0 and row["last_sync"].startswith("2026-12-05") and row["complete"] == "yes"
    assert report.complete


@pytest.mark.parametrize("by, key, expected", [
    ("product", "sku", {"RICE", "OIL", "DAL"}),
    ("payment", "method", {"cash"}),
    ("cashier", "cashier", {"karim", "rahim"}),
    ("vat", "vat_rate", {"5.00", "7.50", "0.00"}),
])
def test_the_sales_report_groups_by_product_payment_cashier_and_vat_rate(service, by, key, expected):
    push(service, v3_batch("dhaka-1", mixed_events()), enroll(service))
    report = service.sales_report(DAY, DAY + timedelta(days=2), by=by)
    rows = [dict(zip(report.columns, r)) for r in report.rows]
    assert {r[key] for r in rows} == expected
    net = "amount" if by == "payment" else "net"
    assert sum(r[net] for r in rows) == service.store.get_ledger("dhaka-1").total_paisa


def test_the_shifts_report_shows_each_closed_shift_over_or_short(service):
    close = make_shift_close(1, cashier="karim")
    close = close.model_copy(update={"shift": close.shift.model_copy(update={"counted_cash": 574000})})
    push(service, v3_batch("dhaka-1", [close]), enroll(service))
    report = service.shifts_report(DAY, DAY)
    [row] = [dict(zip(report.columns, r)) for r in report.rows]
    assert (row["cashier"], row["expected_cash"], row["counted_cash"], row["difference"], row["over_short"]) == \
        ("karim", 574600, 574000, -600, "short")


def test_the_exceptions_report_lists_voids_refunds_discounts_and_overrides_largest_first(service):
    override = make_sale3(6, [make_line3("TEA", "1", 1500).model_copy(update={"list_price": 2000})], cashier="rahim")
    push(service, v3_batch("dhaka-1", [*mixed_events()[:5], override]), enroll(service))
    report = service.exceptions_report(DAY, DAY + timedelta(days=1))
    rows = [dict(zip(report.columns, r)) for r in report.rows]
    kinds = {(r["cashier"], r["kind"]) for r in rows}
    assert {("karim", "void"), ("rahim", "refund"), ("karim", "discount"), ("rahim", "price_override")} <= kinds
    amounts = [abs(r["amount"]) for r in rows]
    assert amounts == sorted(amounts, reverse=True)


@pytest.mark.parametrize("first, last, by", [(DAY, DAY - timedelta(days=1), "day"), (DAY, DAY + timedelta(days=400), "day"),
                                             (DAY, DAY, "week")])
def test_a_report_of_a_bad_range_or_grouping_is_refused_with_what_to_ask(service, first, last, by):
    with pytest.raises(ContractError) as refused:
        service.sales_report(first, last, by=by)
    assert refused.value.code == "bad_request"


def test_the_business_day_follows_the_configured_zone(service):
    late = datetime(2026, 11, 28, 19, tzinfo=timezone.utc)  # the 29th in Dhaka
    push(service, SalesBatch.of("dhaka-1", 1, T0, [make_sale(1, recorded_at=late)]), enroll(service))
    assert [s.day for s in summaries(service)] == [business_day(late, service.settings.business_zone)] == \
        [date(2026, 11, 29)]


@pytest.mark.azurite
def test_on_table_storage_the_days_commit_with_the_sales_and_a_redelivery_and_rebuild_change_nothing(
        storage, table_prefix, clock):
    from branchsync_cloud.service import Service
    from branchsync_cloud.settings import Settings
    from branchsync_cloud.table_store import TableStore

    table = TableStore(storage, table_prefix)
    service = Service(table, Settings(storage=storage, admin_key="k", table_prefix=table_prefix), clock)
    secret = enroll(service)
    batch = v3_batch("dhaka-1", mixed_events())
    assert push(service, batch, secret).ops == 1 + 1 + 1  # branch, the ledger with its days, 1 transaction
    once = summaries(service)
    assert push(service, batch, secret).status == "duplicate"
    service.rebuild_summaries("dhaka-1")
    again = summaries(service)
    assert len(once) == len(again) == 3 and all(a.same_figures(b) for a, b in zip(once, again))
    assert sum(d.net for d in again) == table.get_ledger("dhaka-1").total_paisa


def test_an_apply_that_crashes_between_its_transactions_and_is_redelivered_counts_each_sale_once(service, monkeypatch):
    from branchsync_cloud import faults

    secret = enroll(service)
    # A sale a day for 200 days: each transaction holds at most 99 rows, so the apply takes several.
    sales = [make_sale(n, recorded_at=T0 + timedelta(days=n)) for n in range(1, 201)]
    batch = SalesBatch.of("dhaka-1", 1, T0, sales)
    # The first transaction commits, then the process dies (the queue will deliver the message again).
    monkeypatch.setattr(faults, "_registry", faults.Registry("apply.between_transactions=raise:1:1"))
    with pytest.raises(faults.FailpointError):
        push(service, batch, secret)
    monkeypatch.setattr(faults, "_registry", None)
    partly = service.store.get_ledger("dhaka-1")
    assert 0 < partly.apply.applied_through < 200
    assert sum(d.net for d in summaries(service)) == partly.total_paisa  # figures agree with what was stored
    push(service, batch, secret)  # redelivered
    assert service.store.get_ledger("dhaka-1").apply.applied_through == 200
    days = summaries(service)
    assert sum(d.sales for d in days) == 200 and sum(d.net for d in days) == sum(s.total for s in sales)
    service.rebuild_summaries()
    assert all(a.same_figures(b) for a, b in zip(days, summaries(service)))
