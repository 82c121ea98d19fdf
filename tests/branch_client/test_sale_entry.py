from datetime import datetime, timezone
from decimal import Decimal

import pytest

from branch_client.errors import BadSaleInput
from branch_client import sale_entry
from branch_client.barcodes import Embedded, Value
from branch_client.sale_entry import (ItemSpec, Match, QuantityNeedsConfirmation, build_lines, new_sale, new_void,
                                      parse_item, parse_items, parse_payment, quantity_of)
from shared import limits
from shared.encoding import pack_sales
from shared.errors import ContractError
from shared.models import Payment, PaymentMethod, Sale, SaleKind
from tests.branch_client.fakes import bulky_products, product

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=timezone.utc)
CATALOG = {
    "RICE-5KG": product("RICE-5KG", 42000, "চাল ৫ কেজি"),
    "DAL-1KG": product("DAL-1KG", 14050, "মসুর ডাল ১ কেজি", unit="kg"),
    "OLD-TEA": product("OLD-TEA", 9000, active=False),
}


def lines_of(texts, confirmed=False):
    """Sale lines for item texts, each naming a CATALOG SKU (the store finds the product)."""
    items = parse_items(texts)
    return build_lines(items, [Match(CATALOG[i.sku]) for i in items], confirmed=confirmed)


def test_an_item_without_a_price_is_a_sku_and_an_exact_quantity():
    assert parse_item("RICE-5KG=2") == ItemSpec("RICE-5KG", Decimal(2), None, "RICE-5KG=2")


def test_a_price_override_is_read_in_taka_and_kept_in_paisa():
    item = parse_item("DAL-1KG=1.5@120.50")
    assert item.qty == Decimal("1.5") and item.price == 12050 and isinstance(item.price, int)


def test_weighed_goods_take_up_to_three_decimals():
    assert parse_item("DAL-1KG=0.125").qty == Decimal("0.125")


@pytest.mark.parametrize("text, says", [
    ("=2", "SKU=QTY"),
    ("RICE@5", "SKU=QTY"),
    ("RICE-5KG=", "SKU=QTY"),
    ("RICE-5KG=two", "not a number"),
    ("RICE-5KG=0", "greater than zero"),
    ("RICE-5KG=-1", "not a number like 2 or 1.250"),
    ("RICE-5KG=1,5", "write 1.5 with a dot"),
    ("RICE-5KG=1_000", "not a number"),
    ("RICE-5KG=1e3", "scientific notation"),
    ("RICE-5KG=1.2345", "decimals"),
    ("RICE-5KG=1@", "missing"),
    ("RICE-5KG=1@12.345", "2 decimals"),
    ("RICE-5KG=1@-5", "negative"),
    ("RICE-5KG=1@cheap", "not a number"),
])
def test_a_malformed_item_is_refused_with_a_message_naming_it(text, says):
    with pytest.raises(BadSaleInput) as exc:
        parse_item(text)
    assert repr(text) in str(exc.value) and says in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_a_sale_needs_at_least_one_item():
    with pytest.raises(BadSaleInput, match="at least one item"):
        parse_items([])


def test_lines_carry_the_catalog_price_as_list_price_and_the_override_as_unit_price():
    lines = lines_of(["RICE-5KG=2", "DAL-1KG=1.5@120.50"])
    assert [(ln.sku, ln.name, ln.unit_price, ln.list_price, ln.line_total) for ln in lines] == [
        ("RICE-5KG", "চাল ৫ কেজি", 42000, 42000, 84000),
        ("DAL-1KG", "মসুর ডাল ১ কেজি", 12050, 14050, 18075),
    ]


def test_a_line_total_is_rounded_half_up_to_a_paisa():
    # 0.333 kg x 140.50 Tk = 46.7865 Tk -> 4679 paisa
    (line,) = lines_of(["DAL-1KG=0.333"])
    assert line.line_total == 4679


def test_an_unknown_item_names_the_closest_matches_or_says_how_to_find_the_right_one():
    assert "did you mean RICE-5KG (চাল ৫ কেজি)?" in str(sale_entry.unknown_item(parse_item("rice=1"), [CATALOG["RICE-5KG"]]))
    assert "catalog search" in str(sale_entry.unknown_item(parse_item("NOPE=1"), []))


def test_a_bare_sku_is_one_piece_but_weighed_goods_need_their_quantity():
    assert [ln.qty for ln in lines_of(["RICE-5KG"])] == [Decimal(1)]
    with pytest.raises(BadSaleInput, match="sold by kg; give the quantity, e.g. DAL-1KG=1.250"):
        lines_of(["DAL-1KG"])


def test_pieces_are_whole_numbers_and_weighed_goods_take_three_decimals():
    with pytest.raises(BadSaleInput, match="sold by the piece.*whole number"):
        lines_of(["RICE-5KG=1.5"])
    assert [ln.qty for ln in lines_of(["DAL-1KG=1.255"])] == [Decimal("1.255")]


def test_a_very_large_quantity_is_recorded_only_when_confirmed():
    with pytest.raises(QuantityNeedsConfirmation, match="500 pcs .* is a lot.*--yes"):
        lines_of(["RICE-5KG=500"])
    assert lines_of(["RICE-5KG=500"], confirmed=True)[0].qty == 500
    assert lines_of(["RICE-5KG=100"])[0].qty == 100  # up to 100 passes as typed


def test_a_weight_label_sells_its_grams_and_a_price_label_its_price():
    atta = product("ATTA", 6500, "আটা", unit="kg")
    weight = Embedded("2012345012342", "12345", Value.WEIGHT, 1250)
    assert quantity_of(ItemSpec("2012345012342", None), Match(atta, weight)) == (Decimal("1.25"), None)
    # A price label on a weighed product: the weight the scale charged for at the catalog price.
    price = Embedded("2212345081250", "12345", Value.PRICE, 8125)
    assert quantity_of(ItemSpec("2212345081250", None), Match(atta, price)) == (Decimal("1.25"), None)
    # On a product sold by the piece: one piece at the printed price.
    cake = product("CAKE", 30000, "কেক")
    assert quantity_of(ItemSpec("2212345081250", None), Match(cake, price)) == (Decimal(1), 8125)


def test_a_weight_label_on_a_product_sold_by_the_piece_or_with_a_quantity_is_refused():
    weight = Embedded("2012345012342", "12345", Value.WEIGHT, 1250)
    with pytest.raises(BadSaleInput, match="sold by the piece"):
        quantity_of(ItemSpec("2012345012342", None), Match(product("CAKE", 30000), weight))
    with pytest.raises(BadSaleInput, match="without =QTY"):
        quantity_of(ItemSpec("2012345012342", Decimal(2)), Match(product("ATTA", 6500, unit="kg"), weight))


def test_an_inactive_product_cannot_be_sold():
    with pytest.raises(BadSaleInput, match="not for sale"):
        lines_of(["OLD-TEA=1"])


def test_payment_methods_are_read_in_any_case_and_unknown_ones_list_the_choices():
    assert parse_payment("CARD") == PaymentMethod.CARD
    with pytest.raises(BadSaleInput, match="cash, card, mobile"):
        parse_payment("cheque")


def test_a_sale_totals_its_lines_and_is_paid_in_full():
    sale = new_sale(1, "a" * 32, NOW, lines_of(["RICE-5KG=2", "DAL-1KG=1"]), PaymentMethod.CASH)
    assert sale.total == 84000 + 14050 == sale.payment.amount


def test_a_void_has_no_lines_and_minus_the_voided_total_paid_back_the_same_way():
    sale = new_sale(1, "a" * 32, NOW, lines_of(["RICE-5KG=1"]), PaymentMethod.MOBILE)
    void = new_void(2, "b" * 32, NOW, sale)
    assert (void.kind, void.voids, void.lines, void.total) == (SaleKind.VOID, 1, [], -42000)
    assert void.payment.method == PaymentMethod.MOBILE and void.payment.amount == -42000


def test_a_void_cannot_itself_be_voided():
    sale = new_sale(1, "a" * 32, NOW, lines_of(["RICE-5KG=1"]), PaymentMethod.CASH)
    with pytest.raises(BadSaleInput, match="itself a void"):
        new_void(3, "c" * 32, NOW, new_void(2, "b" * 32, NOW, sale))


# --- a sale must fit in a queue message ---------------------------------------------------------------


def _bulky_lines(count: int):
    found = {p.sku: p for p in bulky_products(count)}
    return build_lines([ItemSpec(sku, Decimal(1)) for sku in found], [Match(p) for p in found.values()])


def test_a_sale_too_large_for_one_queue_message_is_refused_saying_to_split_it():
    lines = _bulky_lines(limits.SALE_MAX_LINES)
    with pytest.raises(BadSaleInput, match="too large to send") as refused:
        new_sale(1, "a" * 32, NOW, lines, PaymentMethod.CASH)
    assert "split it into two sales" in str(refused.value)
    # The push could indeed never send it: alone, it is over the message budget.
    total = sum(line.line_total for line in lines)
    whole = Sale(seq=1, sale_id="a" * 32, kind=SaleKind.SALE, recorded_at=NOW, lines=lines,
                 payment=Payment(method=PaymentMethod.CASH, amount=total), total=total)
    with pytest.raises(ContractError, match="alone does not fit"):
        pack_sales("dhaka-1", [whole], "k" * 43, NOW)


def test_half_of_that_sale_fits_and_is_measured_as_the_push_encodes_it():
    sale = new_sale(1, "a" * 32, NOW, _bulky_lines(limits.SALE_MAX_LINES // 2), PaymentMethod.CASH)
    [(_, text)] = pack_sales("dhaka-1", [sale], "k" * 43, NOW)
    assert sale_entry.encoded_alone(sale, "dhaka-1", NOW) == len(text)
    assert sale_entry.encoded_alone(sale) < limits.QUEUE_MESSAGE_BUDGET_CHARS - sale_entry.SEND_MARGIN_CHARS
