"""The day-summary fold: pure, over sale events of every record version."""

from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from branchsync_cloud.summaries import DaySummary, business_day, fold_events
from shared.models import Payment
from tests.builders import (
    make_line, make_line3, make_refund, make_sale, make_sale3, make_shift_close, make_void, make_void3,
)

DHAKA = ZoneInfo("Asia/Dhaka")


def fold(events, originals=None, zone=DHAKA):
    return fold_events("dhaka-1", 1, events, originals or {}, zone)


def test_the_business_day_is_the_date_in_the_configured_zone():
    late_evening_utc = datetime(2026, 11, 28, 19, 30, tzinfo=timezone.utc)  # 01:30 on the 29th in Dhaka
    assert business_day(late_evening_utc, DHAKA) == date(2026, 11, 29)
    assert business_day(late_evening_utc, ZoneInfo("UTC")) == date(2026, 11, 28)


def test_a_v3_sale_counts_gross_discounts_net_vat_payment_cashier_and_products():
    sale = make_sale3(1, [make_line3("RICE", "2", 10000, vat_rate="5", discount=("amount", 1000)),
                          make_line3("OIL", "1", 5000, vat_rate="7.5")],
                      discount=("percent", "10"), cashier="karim",
                      payments=None)
    day = fold([sale])[date(2026, 11, 28)]
    assert (day.sales, day.gross, day.net) == (1, 25000, sale.total)
    assert day.discounts == 25000 - sale.total
    assert day.net == day.gross - day.discounts - day.refunded - day.voided
    assert day.payments == {"cash": sale.total}
    assert day.vat == {"5.00": [sale.lines[0].net, sale.lines[0].vat], "7.50": [sale.lines[1].net, sale.lines[1].vat]}
    assert day.cashiers["karim"]["sales"] == 1 and day.cashiers["karim"]["discounts"] == 1
    assert day.cashiers["karim"]["discounted"] == day.discounts
    assert day.products["RICE"] == ["Product RICE", Decimal("2"), sale.lines[0].net, sale.lines[0].vat]


def test_a_v1_sale_has_one_payment_an_unknown_cashier_and_no_vat():
    day = fold([make_sale(1, [make_line("TEA", "3", 2000)], method="card")])[date(2026, 11, 28)]
    assert day.payments == {"card": 6000}
    assert day.vat == {"0.00": [6000, 0]}
    assert day.cashiers["unknown"]["net"] == 6000
    assert day.products["TEA"][1:] == [Decimal("3"), 6000, 0]


def test_a_void_takes_back_the_voided_sales_products_vat_and_payment_on_its_own_day():
    sale = make_sale3(1, [make_line3("RICE", "2", 10000)])
    void = make_void3(2, sale, cashier="karim").model_copy(update={"recorded_at": datetime(2026, 11, 29, 4, tzinfo=timezone.utc)})
    days = fold([sale, void])
    sold, voided = days[date(2026, 11, 28)], days[date(2026, 11, 29)]
    assert (sold.net, sold.voids) == (20000, 0)
    assert (voided.sales, voided.voids, voided.voided, voided.net) == (0, 1, 20000, -20000)
    assert voided.products["RICE"][1:] == [Decimal("-2"), -20000, -sale.lines[0].vat]
    assert voided.vat["5.00"] == [-20000, -sale.lines[0].vat]
    assert voided.payments == {"cash": -20000}
    assert voided.cashiers["karim"]["voids"] == 1 and voided.cashiers["karim"]["voided"] == 20000


def test_a_void_of_a_stored_sale_reads_it_from_the_originals():
    sale = make_sale(5, [make_line("TEA", "1", 2000)])
    day = fold_events("dhaka-1", 1, [make_void(9, sale)], {(1, 5): sale}, DHAKA)[date(2026, 11, 28)]
    assert day.products["TEA"][1:] == [Decimal("-1"), -2000, 0]
    with pytest.raises(ValueError, match="not given"):
        fold([make_void(9, sale)])


def test_a_refund_returns_part_of_a_line_with_its_vat():
    sale = make_sale3(1, [make_line3("RICE", "2", 10000, vat_rate="5")])
    refund = make_refund(2, sale, [(1, "1", 10000)], cashier="karim")
    day = fold([sale, refund])[date(2026, 11, 28)]
    assert (day.refunds, day.refunded, day.net) == (1, 10000, 10000)
    assert day.products["RICE"][1:3] == [Decimal("1"), 10000]
    assert day.vat["5.00"][0] == 10000
    assert day.cashiers["karim"]["refunded"] == 10000


def test_a_price_override_is_counted_for_its_cashier():
    line = make_line("TEA", "2", 1500, list_price=2000)
    day = fold([make_sale(1, [line])])[date(2026, 11, 28)]
    assert day.cashiers["unknown"]["overrides"] == 1
    assert day.cashiers["unknown"]["overridden"] == 1000


def test_a_shift_close_counts_no_sale_and_is_kept_with_its_over_or_short():
    close = make_shift_close(3, cashier="karim")
    close = close.model_copy(update={"shift": close.shift.model_copy(update={"counted_cash": 574000})})
    day = fold([close])[date(2026, 11, 28)]
    assert (day.sales, day.net, day.events) == (0, 0, 1)
    assert day.shifts[0]["cashier"] == "karim" and day.shifts[0]["difference"] == -600


def test_split_payments_are_totalled_per_method():
    total = make_sale3(1).total
    sale = make_sale3(1, payments=[Payment(method="cash", amount=total - 100, tendered=total - 100, change=0),
                                   Payment(method="mobile", amount=100, wallet="bkash", txn_id="TX1")])
    assert fold([sale])[date(2026, 11, 28)].payments == {"cash": total - 100, "mobile": 100}


def test_folding_in_two_parts_through_the_stored_form_gives_the_figures_of_one_fold():
    events = [make_sale3(1, [make_line3("RICE", "1.5", 10000)]), make_sale(2, [make_line("TEA", "0.25", 2000)])]
    whole = fold(events)[date(2026, 11, 28)]
    first = fold(events[:1])[date(2026, 11, 28)]
    stored = DaySummary.from_stored(first.branch, first.day, first.figures(), first.product_rows())
    part = fold_events("dhaka-1", 1, events[1:], {}, DHAKA, into={stored.day: stored})[date(2026, 11, 28)]
    assert part.same_figures(whole)
    assert part.net == sum(e.total for e in events)


def test_folding_into_a_copy_of_a_day_leaves_the_day_as_it_was():
    rice = make_sale3(1, [make_line3("RICE", "2", 10000), make_line3("OIL", "1", 5000, vat_rate="7.5")])
    day = fold([rice])[date(2026, 11, 28)]
    as_it_was = DaySummary.from_stored(day.branch, day.day, day.figures(), day.product_rows())
    copy = day.copy()
    fold_events("dhaka-1", 1, [make_sale3(2, [make_line3("RICE", "1", 10000)]), make_void3(3, rice)], {(1, 1): rice}, DHAKA,
                into={copy.day: copy})
    assert copy.products["RICE"][1] == Decimal("1") and copy.voids == 1
    assert day.same_figures(as_it_was)


def test_a_zero_vat_rate_written_with_a_minus_sign_keeps_its_own_text():
    lines = [make_line3("RICE", "1", 10000, vat_rate="0"), make_line3("TEA", "1", 2000, vat_rate="-0")]
    assert set(fold([make_sale3(1, lines)])[date(2026, 11, 28)].vat) == {"0.00", "-0.00"}
