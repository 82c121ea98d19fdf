"""The sales export's CSV rows: old events exactly as before, the complete record one row per line."""

import json
from datetime import datetime, timezone

from headoffice.sales_rows import COLUMNS, sale_rows
from shared.models import AppliedSale, Payment
from tests.builders import make_line3, make_refund, make_sale, make_sale3, make_shift_close, make_void, make_void3

APPLIED = datetime(2026, 11, 28, 8, 0, tzinfo=timezone.utc)


def rows(sale, generation=1):
    out = list(sale_rows(AppliedSale(branch="dhaka-1", generation=generation, sale=sale, applied_at=APPLIED)))
    assert all(len(r) == len(COLUMNS) for r in out)
    return [dict(zip(COLUMNS, r)) for r in out]


def test_a_v1_sale_and_its_void_export_as_before_with_the_new_columns_empty():
    sale = make_sale(7, total=63_000, method="mobile")
    [row] = rows(sale)
    assert list(row.values())[:10] == ["dhaka-1", "7", sale.sale_id, "sale", "", sale.recorded_at.isoformat(),
                                       APPLIED.isoformat(), "mobile", 63_000,
                                       json.dumps([l.model_dump(mode="json") for l in sale.lines], ensure_ascii=False)]
    assert set(list(row.values())[10:]) == {""}
    [void] = rows(make_void(8, sale))
    assert (void["kind"], void["voids"], void["total_paisa"], void["payment"]) == ("void", "7", -63_000, "mobile")


def test_a_v3_sale_is_one_row_per_line_with_cashier_discounts_vat_and_its_payments_total_on_the_first_row():
    lines = [make_line3(qty="2", unit_price=42_000, discount=("percent", "10")), make_line3("OIL-1L", unit_price=18_000,
                                                                                             vat_rate="15")]
    sale = make_sale3(3, lines, discount=("amount", 1000), cashier="rahim")
    split = [Payment(method="cash", amount=50_000, tendered=100_000, change=50_000),
             Payment(method="mobile", amount=sale.total - 50_000, wallet="bkash", txn_id="9C7D2XK41Q")]
    sale = sale.model_copy(update={"payments": split})
    first, second = rows(sale, generation=2)
    assert (first["seq"], first["cashier"], first["line"], first["sku"], first["qty"]) == ("2-3", "rahim", 1, "RICE-5KG", "2")
    assert (first["line_total_paisa"], first["discount_paisa"], first["net_paisa"], first["vat_rate"], first["vat_paisa"]) == (
        84_000, 8_400, 74_792, "5", 3_562)
    assert (second["net_paisa"], second["vat_rate"], second["vat_paisa"], second["discount_paisa"]) == (17_808, "15", 2_323, "")
    assert (first["total_paisa"], second["total_paisa"]) == (sale.total, "")
    assert [(r["name"], r["unit_price_paisa"], r["list_price_paisa"]) for r in (first, second)] == [
        ("Product RICE-5KG", 42_000, 42_000), ("Product OIL-1L", 18_000, 18_000)]
    assert first["sale_discount_paisa"] == 1000 and first["sale_discount_reason"] == "loyal customer"
    assert first["payment"] == "cash+mobile"
    assert first["payments"] == f"cash:50000 tendered=100000 change=50000; mobile/bkash:{sale.total - 50_000} txn=9C7D2XK41Q"


def test_a_refund_is_one_row_per_returned_line_and_a_shift_close_one_row_with_its_figures():
    sale = make_sale3(3, [make_line3(qty="2"), make_line3("OIL-1L", qty="1", unit_price=18_000)])
    [row] = rows(make_refund(4, sale, [(2, "1", 18_000)], method="card"))
    assert (row["kind"], row["refunds"], row["line"], row["sku"], row["qty"], row["net_paisa"], row["total_paisa"],
            row["payments"]) == ("refund", "3", 2, "OIL-1L", "1", -18_000, -18_000, "card:-18000")
    [close] = rows(make_shift_close(5))
    assert (close["kind"], close["total_paisa"], close["line"], close["payments"]) == ("shift_close", 0, "", "")
    assert json.loads(close["shift"])["counted_cash"] == 574_600


def test_a_voids_and_a_refunds_reason_and_a_lines_price_override_reason_have_their_own_columns():
    override = make_line3(unit_price=40_000).model_copy(update={"list_price": 42_000, "price_reason": "torn bag"})
    sale = make_sale3(3, [override, make_line3("OIL-1L", unit_price=18_000)])
    first, second = rows(sale)
    assert (first["price_reason"], second["price_reason"], first["reason"]) == ("torn bag", "", "")
    [void] = rows(make_void3(4, sale).model_copy(update={"reason": "customer changed mind"}))
    assert (void["reason"], void["price_reason"]) == ("customer changed mind", "")
    refund = make_refund(5, sale, [(1, "1", 20_000), (2, "1", 18_000)]).model_copy(update={"reason": "torn bag"})
    assert [(r["reason"], r["price_reason"]) for r in rows(refund)] == [("torn bag", ""), ("torn bag", "")]
    assert COLUMNS.index("reason") > COLUMNS.index("shift")  # after the columns consumers already read by position
