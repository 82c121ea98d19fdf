"""The lake's core: business days in the business time zone, the rows of a day, which days to write."""

import io
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from branchsync_cloud import lake
from branchsync_cloud.lake import Event, LakeState
from shared.models import Payment
from tests.builders import (
    T0, make_line3, make_refund, make_sale, make_sale3, make_shift_close, make_void, make_void3,
)

DHAKA = lake.business_zone("Asia/Dhaka")
DAY = date(2026, 11, 28)


def rows(data: bytes) -> list[dict]:
    return pq.read_table(io.BytesIO(data)).to_pylist()


def at(sale, moment: datetime):
    return sale.model_copy(update={"recorded_at": moment})


def test_a_business_day_ends_at_midnight_in_dhaka_not_in_utc():
    assert lake.business_day(datetime(2026, 11, 28, 17, 59, 59, tzinfo=timezone.utc), DHAKA) == date(2026, 11, 28)
    assert lake.business_day(datetime(2026, 11, 28, 18, 0, tzinfo=timezone.utc), DHAKA) == date(2026, 11, 29)
    with pytest.raises(ValueError, match="BRANCHSYNC_BUSINESS_TIMEZONE"):
        lake.business_zone("Dhaka")


def test_files_are_named_hive_style_by_dataset_day_and_branch():
    assert lake.part_path("sales", DAY, "dhaka-1") == "sales/date=2026-11-28/branch=dhaka-1/part-0.parquet"
    assert lake.state_path("dhaka-1") == "state/dhaka-1.json"


def test_a_v3_sale_is_a_row_per_line_with_its_discounts_vat_and_money_in_paisa_and_taka():
    sale = make_sale3(1, [make_line3(qty="2", discount=("percent", "10")),
                          make_line3("OIL-1L", qty="1.5", unit_price=18000, vat_rate="15")], discount=("amount", 500))
    lines = rows(lake.day_files(DAY, "dhaka-1", [Event("dhaka-1", 1, sale)])["sales"])
    assert [(r["line_no"], r["sku"], r["qty"]) for r in lines] == [(1, "RICE-5KG", Decimal("2")), (2, "OIL-1L", Decimal("1.5"))]
    for row, line in zip(lines, sale.lines):
        assert row["line_total_paisa"] - row["discount_paisa"] == row["net_paisa"] == line.net
        assert (row["vat_paisa"], row["vat_rate"]) == (line.vat, line.vat_rate)
        assert row["net_taka"] == Decimal(line.net) / 100
    assert sum(r["net_paisa"] for r in lines) == sale.total
    assert (lines[0]["discount_reason"], lines[1]["discount_reason"]) == ("damaged packet", "loyal customer")
    assert lines[0]["recorded_at"] == T0 and lines[0]["cashier"] == "rahim" and lines[0]["business_date"] == DAY


def test_refunds_and_voids_take_back_the_lines_of_the_sale_they_name_and_all_adds_up_to_the_takings():
    sale = make_sale3(1, [make_line3(qty="2"), make_line3("OIL-1L", unit_price=18_000, vat_rate="15")])
    old = make_sale(2, total=7_000)
    events = [sale, old, make_refund(3, sale, [(2, "1", 18_000)]), make_void(4, old), make_void3(5, sale)]
    originals = {(1, 1): sale, (1, 2): old}
    lines = rows(lake.day_files(DAY, "dhaka-1", [Event("dhaka-1", 1, s) for s in events], originals)["sales"])
    assert [(r["kind"], r["sku"], r["qty"], r["net_paisa"], r["vat_paisa"], r["refers_to"]) for r in lines] == [
        ("sale", "RICE-5KG", Decimal("2"), 84_000, 4_000, None), ("sale", "OIL-1L", Decimal("1"), 18_000, 2_348, None),
        ("sale", "SKU-2", Decimal("1"), 7_000, None, None),
        ("refund", "OIL-1L", Decimal("-1"), -18_000, -2_348, "1"),
        ("void", "SKU-2", Decimal("-1"), -7_000, 0, "2"),
        ("void", "RICE-5KG", Decimal("-2"), -84_000, -4_000, "1"), ("void", "OIL-1L", Decimal("-1"), -18_000, -2_348, "1")]
    assert sum(r["net_paisa"] for r in lines) == sum(s.total for s in events)
    assert all(r["line_total_paisa"] - r["discount_paisa"] == r["net_paisa"] for r in lines)


def test_every_tender_is_a_payment_row_and_a_shift_close_a_shift_row_not_a_sale():
    split = [Payment(method="card", amount=30_000),
             Payment(method="mobile", amount=12_000, wallet="bkash", txn_id="8N7A6B5C4D")]
    sale = make_sale3(1, [make_line3()], payments=split)
    days = lake.day_files(DAY, "dhaka-1", [Event("dhaka-1", 1, sale), Event("dhaka-1", 1, make_shift_close(2))])
    assert [(p["method"], p["wallet"], p["amount_paisa"]) for p in rows(days["payments"])] == [
        ("card", None, 30_000), ("mobile", "bkash", 12_000)]
    [shift] = rows(days["shifts"])
    assert (shift["shift_id"], shift["over_short_paisa"], shift["by_cash_paisa"]) == ("S-1", 0, 74_600)
    assert {r["seq"] for r in rows(days["sales"])} == {1}


def test_a_day_gives_the_same_bytes_whatever_order_its_events_come_in():
    events = [Event("dhaka-1", g, make_sale3(n)) for g in (1, 2) for n in range(1, 30)]
    once = lake.day_files(DAY, "dhaka-1", events)
    assert once == lake.day_files(DAY, "dhaka-1", list(reversed(events)))
    assert [(r["generation"], r["seq"]) for r in rows(once["sales"])] == [(e.generation, e.sale.seq) for e in events]
    assert b"created_at" not in once["sales"] and pq.ParquetFile(io.BytesIO(once["sales"])).metadata.num_row_groups == 1


def test_the_state_remembers_each_days_seq_range_so_a_late_sale_touches_only_its_own_day():
    state = LakeState(zone="Asia/Dhaka")
    today = [at(make_sale3(n), T0 + timedelta(minutes=n)) for n in range(1, 6)]
    assert lake.to_read(state, {1: 5}) == {1: (1, 5)}
    assert lake.advance(state, 1, today, 5, DHAKA) == {DAY}
    assert lake.to_read(state, {1: 5}) == {}
    # A till offline since yesterday evening sends its last sale of yesterday with today's.
    late = [at(make_sale3(6), T0 - timedelta(days=1)), at(make_sale3(7), T0 + timedelta(hours=1))]
    assert lake.advance(state, 1, late, 7, DHAKA) == {DAY - timedelta(days=1), DAY}
    assert state.days == {DAY: {1: (1, 7)}, DAY - timedelta(days=1): {1: (6, 6)}}
    assert lake.ranges_of(state, [DAY - timedelta(days=1)]) == {1: (6, 6)}
    assert LakeState.from_json(state.to_json(), "Asia/Dhaka") == state
    assert LakeState.from_json(None, "Asia/Dhaka") == LakeState(zone="Asia/Dhaka")


def test_the_events_dataset_keeps_every_event_as_applied_refused_ones_too_and_reads_back_exactly():
    sale = make_sale3(1, [make_line3(qty="2")], discount=("percent", "5"))
    refused = Event("dhaka-1", 1, make_refund(2, sale, [(1, "3", 1)]), T0, "refund_exceeds_sale")
    events = [Event("dhaka-1", 1, sale, T0), refused, Event("dhaka-1", 1, make_shift_close(3), T0)]
    files = lake.day_files(DAY, "dhaka-1", events)
    assert [r["seq"] for r in rows(files["sales"])] == [1]  # the refused refund counts nowhere
    assert [r["seq"] for r in rows(files["payments"])] == [1]
    assert lake.events_of(files["events"]) == events


def test_the_reasons_for_a_refund_and_a_price_change_reach_the_lakes_sales_rows():
    changed = make_line3("OIL-1L", unit_price=17_000, vat_rate="15").model_copy(
        update={"list_price": 18_000, "price_reason": "dented tin"})
    sale = make_sale3(1, [make_line3(qty="2"), changed])
    refund = make_refund(2, sale, [(1, "1", 42_000)]).model_copy(update={"reason": "wrong rice"})
    lines = rows(lake.day_files(DAY, "dhaka-1", [Event("dhaka-1", 1, s) for s in (sale, refund)],
                                {(1, 1): sale})["sales"])
    assert [(r["kind"], r["sku"], r["reason"], r["price_reason"]) for r in lines] == [
        ("sale", "RICE-5KG", None, None), ("sale", "OIL-1L", None, "dented tin"),
        ("refund", "RICE-5KG", "wrong rice", None)]
