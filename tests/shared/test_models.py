import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared import limits
from shared.models import CatalogEntry, CatalogImport, Payment, Product, Sale, SaleLine, SalesBatch, describe_errors
from shared.money import vat_part
from tests.builders import (make_discount, make_line3, make_refund, make_sale, make_sale3, make_shift_close, make_void,
                            make_void3)

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=timezone.utc)


def line(**kw):
    base = dict(sku="RICE", name="চাল", qty=Decimal("2"), unit_price=100, list_price=100, line_total=200)
    return SaleLine(**{**base, **kw})


def test_a_line_whose_total_does_not_match_is_refused():
    with pytest.raises(ValidationError, match="line_total"):
        line(line_total=201)


def test_a_sale_total_must_be_the_sum_of_its_lines_and_equal_the_payment():
    with pytest.raises(ValidationError):
        Sale(seq=1, sale_id=uuid.uuid4().hex, recorded_at=NOW, lines=[line()], payment=Payment(method="cash", amount=200), total=199)
    with pytest.raises(ValidationError):
        Sale(seq=1, sale_id=uuid.uuid4().hex, recorded_at=NOW, lines=[line()], payment=Payment(method="cash", amount=100), total=200)


def test_a_void_refers_to_an_earlier_sale_and_carries_a_negative_total():
    v = Sale(seq=2, sale_id=uuid.uuid4().hex, kind="void", voids=1, recorded_at=NOW, lines=[],
             payment=Payment(method="cash", amount=-200), total=-200)
    assert v.total == -200
    with pytest.raises(ValidationError):
        Sale(seq=2, sale_id=uuid.uuid4().hex, kind="void", voids=3, recorded_at=NOW, lines=[],
             payment=Payment(method="cash", amount=-200), total=-200)


def test_naive_times_extra_fields_and_control_characters_are_refused():
    with pytest.raises(ValidationError):
        Sale(seq=1, sale_id=uuid.uuid4().hex, recorded_at=datetime(2026, 1, 1), lines=[line()],
             payment=Payment(method="cash", amount=200), total=200)
    with pytest.raises(ValidationError):
        Product.model_validate({"sku": "A", "name": "x", "price": 1, "colour": "red"})
    with pytest.raises(ValidationError):
        Product(sku="A", name="bad\x00name", price=1)


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_a_time_that_leaves_the_calendar_once_in_utc_is_a_validation_error(moment):
    with pytest.raises(ValidationError, match="years 1 to 9999"):
        SalesBatch.model_validate({"branch": "b1", "sent_at": moment, "sales": []})


def test_negative_prices_and_floats_for_quantities_with_too_many_decimals_are_refused():
    with pytest.raises(ValidationError):
        Product(sku="A", name="x", price=-1)
    with pytest.raises(ValidationError):
        line(qty=Decimal("0.0001"))


def test_batches_must_be_in_ascending_order():
    s1 = Sale(seq=1, sale_id=uuid.uuid4().hex, recorded_at=NOW, lines=[line()], payment=Payment(method="cash", amount=200), total=200)
    s2 = s1.model_copy(update={"seq": 2})
    with pytest.raises(ValidationError):
        SalesBatch(branch="b1", sent_at=NOW, sales=[s2, s1])


def test_a_tombstone_has_no_product_and_a_live_entry_has_one():
    assert CatalogEntry(version=3, sku="A", deleted=True).product is None
    with pytest.raises(ValidationError):
        CatalogEntry(version=3, sku="A", deleted=False)


def test_a_vat_rate_spelled_as_one_before_is_that_rate_and_a_wrong_one_is_refused_each_time():
    def rate(value):
        return Product.model_validate_json(json.dumps({"sku": "A", "name": "n", "price": 1, "vat_rate": value})).vat_rate

    assert rate("7.5") == rate("7.5") == rate(7.5) == Decimal("7.5")
    for wrong in ("7.555", "101", "-1", "abc", "123456"):
        for _ in range(2):  # the second time as the first: a refusal is never remembered as a rate
            with pytest.raises(ValidationError):
                rate(wrong)


def test_bangla_names_round_trip_through_json():
    p = Product(sku="DAL-1", name="মসুর ডাল ১ কেজি", price=14000)
    assert Product.model_validate_json(p.model_dump_json()).name == "মসুর ডাল ১ কেজি"


def test_a_validation_error_echoes_a_hostile_field_name_or_value_only_shortened_and_escaped():
    # Unknown keys and quoted values once reached error bodies and log lines whole (100 KB, newlines).
    body = ('{"products": [{"sku": "A", "name": "x", "price": 1, "k\\n' + "y" * 100_000 + '": 1},'
            ' {"sku": "B", "name": "x", "price": 1, "vat_rate": "1' + "0" * 100_000 + '"}]}')
    with pytest.raises(ValidationError) as err:
        CatalogImport.model_validate_json(body)
    text = describe_errors(err.value, 3)
    assert len(text) < 600 and "\n" not in text
    assert text.startswith("products.0.k\\nyyy") and "products.1.vat_rate" in text


IMPORT_BODY = '{"products":[{"sku":"RICE","name":"চাল","price":100,"barcode":null,"unit":"pcs","vat_rate":"0","active":true}]}'


def test_an_import_of_products_alone_validates_and_serialises_byte_for_byte_as_before_deletes_rode_along():
    change = CatalogImport.model_validate_json(IMPORT_BODY)
    assert change.deleted == [] and change.model_dump_json() == IMPORT_BODY


def test_a_catalog_change_carries_deleted_skus_with_products_or_alone():
    both = CatalogImport.model_validate_json(IMPORT_BODY[:-1] + ',"deleted":["OIL-1L","চাল-৫"]}')
    assert both.deleted == ["OIL-1L", "চাল-৫"] and [p.sku for p in both.products] == ["RICE"]
    alone = CatalogImport(products=[], deleted=["OIL-1L"])
    assert json.loads(alone.model_dump_json()) == {"products": [], "deleted": ["OIL-1L"]}
    assert CatalogImport.model_validate_json(alone.model_dump_json()) == alone


def _product(sku):
    return {"sku": sku, "name": "n", "price": 1}


@pytest.mark.parametrize("body, said", [
    ({"products": []}, "at least one product or one deleted sku"),
    ({"products": [], "deleted": []}, "at least one product or one deleted sku"),
    ({"products": [_product(f"P{i}") for i in range(600)], "deleted": [f"D{i}" for i in range(limits.CATALOG_IMPORT_MAX - 599)]},
     f"at most {limits.CATALOG_IMPORT_MAX} products and deleted skus together, not {limits.CATALOG_IMPORT_MAX + 1}"),
    ({"products": [], "deleted": ["has space"]}, "deleted.0"),
    ({"products": [], "deleted": ["a/b"]}, "deleted.0"),
    ({"products": [], "deleted": [""]}, "deleted.0"),
    ({"deleted": ["A"]}, "products"),
])
def test_a_catalog_change_with_nothing_too_much_or_a_bad_sku_to_delete_is_refused_saying_which(body, said):
    with pytest.raises(ValidationError) as err:
        CatalogImport.model_validate_json(json.dumps(body))
    assert said in describe_errors(err.value)


def test_a_catalog_change_of_exactly_the_limit_is_accepted():
    body = {"products": [_product(f"P{i}") for i in range(600)], "deleted": [f"D{i}" for i in range(limits.CATALOG_IMPORT_MAX - 600)]}
    change = CatalogImport.model_validate_json(json.dumps(body))
    assert len(change.products) + len(change.deleted) == limits.CATALOG_IMPORT_MAX


# --- the complete sale record (v3) and the older versions beside it ---------------------------

# Batches exactly as tills sent them before the v3 record existed.
V1_MESSAGE = ('{"v":1,"branch":"dhaka-1","sent_at":"2026-11-28T07:00:00Z","sales":[{"seq":7,"sale_id":"3f0c3f0c3f0c3f0c'
              '3f0c3f0c3f0c3f0c","kind":"sale","voids":null,"recorded_at":"2026-11-28T07:00:00Z","lines":[{"sku":"RICE-5KG",'
              '"name":"চাল ৫ কেজি","qty":"1.5","unit_price":42000,"list_price":43000,"line_total":63000}],"payment":'
              '{"method":"mobile","amount":63000},"total":63000},{"seq":8,"sale_id":"4a1d4a1d4a1d4a1d4a1d4a1d4a1d4a1d",'
              '"kind":"void","voids":7,"recorded_at":"2026-11-28T07:00:00Z","lines":[],"payment":{"method":"mobile",'
              '"amount":-63000},"total":-63000}]}')
V2_MESSAGE = ('{"v":2,"branch":"dhaka-1","generation":2,"sent_at":"2026-11-28T07:00:00Z","sales":[{"seq":3,"sale_id":'
              '"5b2e5b2e5b2e5b2e5b2e5b2e5b2e5b2e","kind":"void","voids":9,"voids_generation":1,"recorded_at":'
              '"2026-11-28T07:00:00Z","lines":[],"payment":{"method":"cash","amount":-100},"total":-100}]}')


@pytest.mark.parametrize("text", [V1_MESSAGE, V2_MESSAGE], ids=["v1", "v2"])
def test_an_old_batch_still_validates_and_serialises_byte_for_byte_as_it_was_sent(text):
    batch = SalesBatch.model_validate_json(text)
    assert batch.model_dump_json() == text
    assert SalesBatch.of(batch.branch, batch.generation, batch.sent_at, batch.sales).v == batch.v


def test_a_v3_sale_round_trips_with_discounts_vat_split_payments_and_its_cashier():
    sale = make_sale3(1, [make_line3(qty="2", unit_price=42000, discount=("percent", "10")),
                          make_line3("OIL-1L", unit_price=18000, vat_rate="15")],
                      discount=("amount", 1000),
                      payments=None)
    batch = SalesBatch.of("dhaka-1", 1, NOW, [sale])
    assert batch.v == 3 and '"generation":1' in batch.model_dump_json()
    again = SalesBatch.model_validate_json(batch.model_dump_json())
    assert again == batch
    first, second = again.sales[0].lines
    # 84000 less 10% = 75600 and 18000; the 1000 off the sale is shared 808 / 192.
    assert (first.discount.amount, first.net, second.net) == (8400, 75600 - 808, 18000 - 192)
    assert first.vat == round(Decimal(first.net) * 5 / 105) and again.sales[0].total == first.net + second.net


def test_payments_must_add_up_to_the_total_and_change_is_tendered_less_the_amount():
    sale = make_sale3(1)
    with pytest.raises(ValidationError, match="add up"):
        Sale.model_validate({**sale.model_dump(), "payments": [{"method": "cash", "amount": sale.total - 1}]})
    with pytest.raises(ValidationError, match="change"):
        Payment(method="cash", amount=900, tendered=1000, change=50)
    with pytest.raises(ValidationError, match="wallet"):
        Sale.model_validate({**sale.model_dump(), "payments": [{"method": "mobile", "amount": sale.total}]})
    split = [{"method": "cash", "amount": 20000, "tendered": 50000, "change": 30000},
             {"method": "mobile", "amount": sale.total - 20000, "wallet": "bkash", "txn_id": "9C7D2XK41Q"}]
    assert len(Sale.model_validate({**sale.model_dump(), "payments": split}).payments) == 2


@pytest.mark.parametrize("field, value, problem", [
    ("vat", 1, "vat"),
    ("net", 1, "net"),
])
def test_a_v3_line_whose_vat_or_net_does_not_follow_the_rounding_rules_is_refused(field, value, problem):
    sale = make_sale3(1)
    data = sale.model_dump()
    data["lines"][0][field] += value
    with pytest.raises(ValidationError, match=problem):
        Sale.model_validate(data)


def test_a_discount_amount_must_be_what_its_percent_gives_and_no_more_than_it_applies_to():
    data = make_sale3(1, [make_line3(unit_price=1005, discount=("percent", "10"))]).model_dump()
    assert data["lines"][0]["discount"]["amount"] == 101  # 100.5 rounds half up
    data["lines"][0]["discount"]["amount"] = 100
    with pytest.raises(ValidationError, match="discount amount"):
        Sale.model_validate(data)
    with pytest.raises(ValueError, match="more than"):
        make_discount("amount", 501, 500).check(500, "line")


def test_old_and_new_records_do_not_mix_in_one_batch_and_v3_fields_need_the_v3_record():
    with pytest.raises(ValidationError, match="v3 batch"):
        SalesBatch(v=1, branch="dhaka-1", sent_at=NOW, sales=[make_sale(1), make_sale3(2)])
    with pytest.raises(ValidationError, match="v3 batch"):
        SalesBatch(v=3, branch="dhaka-1", sent_at=NOW, sales=[make_sale(1)])
    old = make_sale(1).model_dump()
    with pytest.raises(ValidationError, match="v3 record"):
        Sale.model_validate({**old, "cashier": "rahim"})


def test_a_refund_names_its_sale_returns_lines_for_a_negative_total_and_comes_after_the_sale():
    sale = make_sale3(1, [make_line3(qty="2")])
    refund = make_refund(2, sale, [(1, "1", sale.total // 2)])
    assert refund.total == -(sale.total // 2) and SalesBatch.of("dhaka-1", 1, NOW, [sale, refund]).v == 3
    with pytest.raises(ValidationError, match="later number"):
        SalesBatch.of("dhaka-1", 1, NOW, [make_refund(1, sale.model_copy(update={"seq": 5}), [(1, "1", 100)])])
    with pytest.raises(ValidationError, match="minus the sum"):
        Sale.model_validate({**refund.model_dump(), "total": -1, "payments": [{"method": "cash", "amount": -1}]})


def test_a_v3_void_and_refund_carry_their_reason_and_an_override_its_price_reason_through_json():
    override = make_line3(unit_price=40000).model_copy(update={"list_price": 42000, "price_reason": "damaged bag"})
    sale = make_sale3(1, [override])
    void = make_void3(2, sale).model_copy(update={"reason": "customer changed mind"})
    refund = make_refund(3, make_sale3(1), [(1, "1", 100)]).model_copy(update={"reason": "torn bag"})
    again = SalesBatch.model_validate_json(SalesBatch.of("dhaka-1", 1, NOW, [sale, void]).model_dump_json())
    assert again.sales[0].lines[0].price_reason == "damaged bag" and again.sales[1].reason == "customer changed mind"
    assert Sale.model_validate_json(refund.model_dump_json()).reason == "torn bag"


def test_a_v3_event_without_reasons_serialises_with_neither_field():
    text = SalesBatch.of("dhaka-1", 1, NOW, [sale := make_sale3(1), make_void3(2, sale)]).model_dump_json()
    assert '"reason"' not in text and "price_reason" not in text


@pytest.mark.parametrize("kind", ["sale", "shift_close"])
def test_only_a_void_or_a_refund_carries_a_reason(kind):
    event = make_sale3(1) if kind == "sale" else make_shift_close(1)
    with pytest.raises(ValidationError, match="only a void or a refund carries a reason"):
        Sale.model_validate({**event.model_dump(), "reason": "because"})


def test_a_price_reason_needs_a_price_that_differs_from_the_list_price_and_the_v3_record():
    data = make_sale3(1).model_dump()
    data["lines"][0]["price_reason"] = "damaged bag"
    with pytest.raises(ValidationError, match="price_reason belongs to a line whose unit_price differs"):
        Sale.model_validate(data)
    with pytest.raises(ValidationError, match="v3 line carries net"):
        line(unit_price=90, line_total=180, price_reason="damaged bag")


def test_a_v1_void_with_a_reason_is_refused_as_v3_only():
    void = make_void(2, make_sale(1)).model_dump()
    with pytest.raises(ValidationError, match="v3 record"):
        Sale.model_validate({**void, "reason": "customer changed mind"})


@pytest.mark.parametrize("reason", ["", "x" * 201, "bad\x07bell"])
def test_a_reason_on_the_wire_is_text_like_any_name(reason):
    void = make_void3(2, make_sale3(1)).model_dump()
    assert Sale.model_validate({**void, "reason": "x" * 200}).reason == "x" * 200
    with pytest.raises(ValidationError, match="reason"):
        Sale.model_validate({**void, "reason": reason})


def test_a_shift_close_has_no_lines_no_payments_and_a_total_of_zero():
    close = make_shift_close(3)
    assert close.total == 0 and close.shift.by_method == {"cash": 74600}
    with pytest.raises(ValidationError, match="shift close"):
        Sale.model_validate({**close.model_dump(), "total": 5, "payments": [{"method": "cash", "amount": 5}]})


# --- refusals the validators' quicker paths must keep ---------------------------------------


def test_a_quantity_is_judged_by_how_it_is_written_however_often_it_comes():
    # Checked quantities are remembered by their text: "1000" once accepted must not let "1E+3" in.
    assert line(qty=Decimal("1000"), line_total=100_000).qty == 1000
    for _ in range(2):  # a refusal is never remembered as an acceptance
        with pytest.raises(ValidationError, match="scientific notation"):
            line(qty=Decimal("1E+3"), line_total=100_000)
        with pytest.raises(ValidationError, match="more than 3 decimals"):
            line(qty=Decimal("0.0001"), line_total=0)
    assert str(line(qty=Decimal("2.000")).qty) == "2" and str(line(qty=Decimal("0.750"), line_total=75).qty) == "0.75"


@pytest.mark.parametrize("name", ["চাল\x00", "চাল\x85", "rice\x7f", "rice\n"])
def test_a_name_with_a_control_character_is_refused_whatever_its_script(name):
    with pytest.raises(ValidationError, match="control characters"):
        line(name=name)


def test_a_name_with_invisible_joiners_or_other_spaces_is_not_a_control_character():
    # Bangla text carries zero-width joiners: not printable to Python, yet no control character.
    assert line(name="র\u200d্যাব\u00a0চাল").name == "র\u200d্যাব\u00a0চাল"


def test_a_line_at_vat_rate_zero_carries_no_vat():
    data = make_sale3(1, [make_line3(vat_rate="0")]).model_dump()
    assert data["lines"][0]["vat"] == 0
    data["lines"][0]["vat"] = 1
    with pytest.raises(ValidationError, match=r"vat 1 != net x rate / \(100 \+ rate\) = 0"):
        Sale.model_validate(data)


def test_without_a_sale_discount_a_lines_net_is_its_total_less_its_own_discount():
    data = make_sale3(1, [make_line3(discount=("amount", 500)), make_line3("OIL-1L")]).model_dump()
    data["lines"][0]["net"] -= 1
    data["lines"][0]["vat"] = vat_part(data["lines"][0]["net"], Decimal(5))  # so that the net is the one problem
    data["total"] -= 1
    data["payments"] = [{"method": "cash", "amount": data["total"]}]
    with pytest.raises(ValidationError, match="net 41499 of RICE-5KG != 41500 .* its share 0 of the sale discount"):
        Sale.model_validate(data)
