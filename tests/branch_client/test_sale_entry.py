from datetime import datetime, timezone
from decimal import Decimal

import pytest

from branch_client.errors import BadSaleInput
from branch_client import sale_entry
from branch_client.barcodes import Embedded, Value
from branch_client.sale_entry import (ItemSpec, Match, PaymentSpec, QuantityNeedsConfirmation, build_lines, new_refund,
                                      new_sale, new_void, parse_discount, parse_item, parse_items, parse_pay,
                                      parse_payment, payment_spec, price, quantity_of, refund_lines, settle)
from shared import limits
from shared.encoding import pack_sales
from shared.errors import ContractError
from shared.models import Payment, PaymentMethod, Sale, SaleKind, SaleRef
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
    lines = lines_of(["RICE-5KG=2", "DAL-1KG=1.5@120.50:end of day"])
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


def sale_of(texts, payments=(), discount=None, cashier="rahim", line_discounts=None):
    """A v3 sale of CATALOG items, priced and paid as the store does it."""
    items = parse_items(texts)
    products = [CATALOG[i.sku] for i in items]
    priced = price(build_lines(items, [Match(p) for p in products]), products,
                   line_discounts or [None] * len(items), discount, [i.price_reason for i in items])
    return new_sale(1, "a" * 32, NOW, priced, settle(priced.total, list(payments)), cashier)


def test_a_sale_totals_its_lines_and_is_paid_in_full_in_cash_by_default():
    sale = sale_of(["RICE-5KG=2", "DAL-1KG=1"])
    assert sale.is_v3 and sale.cashier == "rahim"
    assert sale.total == 84000 + 14050 == sum(p.amount for p in sale.payments)
    assert [p.method for p in sale.payments] == [PaymentMethod.CASH]


def test_each_line_carries_its_products_vat_rate_its_net_and_the_vat_inside_it():
    rice = product("RICE", 10500, vat_rate=Decimal(5))
    [line] = price(build_lines([ItemSpec("RICE", Decimal(1))], [Match(rice)]), [rice], [None]).lines
    assert (line.vat_rate, line.net, line.vat) == (Decimal(5), 10500, 500)


def test_a_percent_discount_rounds_half_up_and_a_sale_discount_is_shared_out_over_the_lines():
    ten = parse_discount("10%:damaged bag")
    sale = sale_of(["RICE-5KG=1", "DAL-1KG=1"], line_discounts=[None, ten], discount=parse_discount("1:loyal customer"))
    rice, dal = sale.lines
    assert dal.discount.amount == 1405  # 10% of 14050
    # 100 paisa over 42000 and 12645: rounded down 76 and 23, the paisa left over to the first line.
    assert (rice.net, dal.net) == (42000 - 77, 12645 - 23)
    assert sale.discount.reason == "loyal customer" and sale.total == rice.net + dal.net


@pytest.mark.parametrize("text, says", [
    ("10%", "PERCENT%:REASON"),
    ("10%:", "needs a reason"),
    ("0%:x", "above 0 and at most 100"),
    ("101%:x", "above 0 and at most 100"),
    ("1e2:x", "scientific notation"),
    ("five:x", "not a number"),
])
def test_a_malformed_discount_is_refused_saying_how_to_write_it(text, says):
    with pytest.raises(BadSaleInput, match=says):
        parse_discount(text)


def test_a_discount_larger_than_what_it_applies_to_is_refused():
    with pytest.raises(BadSaleInput, match="more than the 420.00 taka"):
        sale_of(["RICE-5KG=1"], discount=parse_discount("500:too much"))


def test_a_price_below_the_list_price_needs_a_reason_and_the_reason_is_kept_on_the_item():
    with pytest.raises(BadSaleInput, match="needs a reason"):
        lines_of(["RICE-5KG=1@0"])
    item = parse_item('RICE-5KG=1@300:"torn bag"')
    assert (item.price, item.price_reason) == (30000, '"torn bag"')
    assert parse_item("RICE-5KG=1@300:torn bag: second hand").price_reason == "torn bag: second hand"
    assert lines_of(["RICE-5KG=1@500"])[0].unit_price == 50000  # above the list price: no reason needed


def test_split_payments_add_up_exactly_and_cash_tendered_over_the_rest_gives_change():
    sale = sale_of(["RICE-5KG=2"], [parse_pay("bkash:9C7D2XK41Q=340"), parse_pay("cash=1000")])
    mobile, cash = sale.payments
    assert (mobile.wallet, mobile.txn_id, mobile.amount) == ("bkash", "9C7D2XK41Q", 34000)
    assert (cash.amount, cash.tendered, cash.change) == (50000, 100000, 50000)


@pytest.mark.parametrize("pays, says", [
    (["card=100"], "make 100.00 taka but 420.00 taka is due"),
    (["card=500"], "make 500.00 taka but 420.00 taka is due"),
    (["card", "nagad:TX1"], "only one payment may leave out its amount"),
    (["cash=100"], "cash tendered 100.00 taka is less than the 420.00"),
    (["card=420", "cash=10"], "nothing left to pay"),
    (["mobile=420"], "name the wallet"),
    (["bkash=420"], "transaction id"),
    (["cash", "cash"], "give cash once"),
    (["cheque"], "cash, card, mobile"),
    (["bkash:bad id!=420"], "letters, digits"),
])
def test_payments_that_do_not_make_the_total_are_refused_saying_what_is_wrong(pays, says):
    with pytest.raises(BadSaleInput, match=says):
        sale_of(["RICE-5KG=1"], [parse_pay(p) for p in pays])


def test_a_till_payment_is_read_from_its_json_in_paisa():
    assert payment_spec({"method": "cash", "amount": 42000, "tendered": 50000}) == PaymentSpec(
        PaymentMethod.CASH, 42000, 50000)
    for bad, says in (({"method": "cash", "amount": 1.5}, "whole number of paisa"),
                      ({"method": "mobile", "wallet": "rocket"}, "not bkash or nagad"),
                      ({"method": "card", "extra": 1}, "not a payment")):
        with pytest.raises(BadSaleInput, match=says):
            payment_spec(bad)


def test_a_void_of_a_v3_sale_pays_back_each_payment_and_names_its_cashier():
    sale = sale_of(["RICE-5KG=1"], [parse_pay("bkash:TX1=20"), parse_pay("cash=500")])
    void = new_void(2, "b" * 32, NOW, sale, cashier="karim")
    assert (void.kind, void.voids, void.lines, void.total, void.cashier) == (SaleKind.VOID, 1, [], -42000, "karim")
    assert [(p.method, p.amount, p.wallet) for p in void.payments] == [
        (PaymentMethod.MOBILE, -2000, "bkash"), (PaymentMethod.CASH, -40000, None)]


def test_a_void_of_an_older_sale_keeps_the_older_record_so_both_travel_in_one_message():
    line = lines_of(["RICE-5KG=1"])[0]
    old = Sale(seq=1, sale_id="a" * 32, recorded_at=NOW, lines=[line],
               payment=Payment(method=PaymentMethod.MOBILE, amount=42000), total=42000)
    void = new_void(2, "b" * 32, NOW, old, reason="wrong item")
    assert not void.is_v3 and void.payment.method == PaymentMethod.MOBILE and void.payment.amount == -42000
    assert void.reason is None  # a v1/v2 void has no field for it: the store keeps it


def test_a_v3_void_carries_its_reason():
    void = new_void(2, "b" * 32, NOW, sale_of(["RICE-5KG=1"]), reason="customer changed mind")
    assert void.reason == "customer changed mind"
    with pytest.raises(BadSaleInput, match="the void cannot be recorded: reason"):
        new_void(2, "b" * 32, NOW, sale_of(["RICE-5KG=1"]), reason="x" * (limits.NAME_MAX_CHARS + 1))


def test_a_price_override_carries_its_reason_on_its_line_and_a_price_at_the_list_price_none():
    sale = sale_of(['RICE-5KG=1@300:torn bag', "DAL-1KG=1@140.50:checked", "DAL-1KG=1"])
    assert [line.price_reason for line in sale.lines] == ["torn bag", None, None]
    dearer = sale_of(["RICE-5KG=1@500:gift wrapped"]).lines[0]
    assert (dearer.unit_price, dearer.list_price, dearer.price_reason) == (50000, 42000, "gift wrapped")
    with pytest.raises(BadSaleInput, match="item RICE-5KG: .*price_reason"):
        sale_of(["RICE-5KG=1@300:" + "x" * (limits.NAME_MAX_CHARS + 1)])


def test_a_void_cannot_itself_be_voided():
    with pytest.raises(BadSaleInput, match="is a void"):
        new_void(3, "c" * 32, NOW, new_void(2, "b" * 32, NOW, sale_of(["RICE-5KG=1"])))


def test_a_full_line_return_pays_back_exactly_its_net_and_parts_add_up_to_it():
    sale = sale_of(["DAL-1KG=3"], line_discounts=[parse_discount("10%:x")])  # net 42150 - 4215 = 37935
    assert refund_lines(sale, [(1, "3")], {})[0].amount == 37935
    first = refund_lines(sale, [(1, "1")], {})[0]
    assert first.amount == 12645  # 37935 / 3
    second = refund_lines(sale, [(1, "2")], {1: (Decimal(1), first.amount)})[0]
    assert first.amount + second.amount == 37935


@pytest.mark.parametrize("returns, earlier, says", [
    ([(2, "1")], {}, "lines 1 to 1; there is no line 2"),
    ([(1, "4")], {}, "more than the 3 sold"),
    ([(1, "2")], {1: (Decimal(2), 28100)}, "more than the 1 sold and not yet returned"),
    ([(1, "1"), (1, "1")], {}, "named twice"),
    ([(1, "1,5")], {}, "with a dot"),
    ([], {}, "LINE=QTY"),
])
def test_a_refund_returns_at_most_what_was_sold_and_not_yet_returned(returns, earlier, says):
    with pytest.raises(BadSaleInput, match=says):
        refund_lines(sale_of(["DAL-1KG=3"]), returns, earlier)


def test_a_refund_is_paid_back_negative_and_refuses_an_amount_tendered():
    returns = refund_lines(sale_of(["RICE-5KG=1"]), [(1, "1")], {})
    refund = new_refund(2, "b" * 32, NOW, SaleRef(generation=1, seq=1), returns, [], "rahim", "torn bag")
    assert (refund.kind, refund.total, [p.amount for p in refund.payments]) == (SaleKind.REFUND, -42000, [-42000])
    assert refund.reason == "torn bag"
    with pytest.raises(BadSaleInput, match="no amount tendered"):
        new_refund(2, "b" * 32, NOW, SaleRef(generation=1, seq=1), returns, [parse_pay("cash=500")], "rahim")


# --- a sale must fit in a queue message ---------------------------------------------------------------


def _bulky_lines(count: int):
    found = {p.sku: p for p in bulky_products(count)}
    lines = build_lines([ItemSpec(sku, Decimal(1)) for sku in found], [Match(p) for p in found.values()])
    return price(lines, list(found.values()), [None] * len(lines))


def _bulky_sale(count: int):
    priced = _bulky_lines(count)
    return new_sale(1, "a" * 32, NOW, priced, settle(priced.total, []), "rahim")


def test_a_sale_too_large_for_one_queue_message_is_refused_saying_to_split_it():
    priced = _bulky_lines(limits.SALE_MAX_LINES)
    with pytest.raises(BadSaleInput, match="too large to send") as refused:
        new_sale(1, "a" * 32, NOW, priced, settle(priced.total, []), "rahim")
    assert "split it into two sales" in str(refused.value)
    # The push could indeed never send it: alone, it is over the message budget.
    whole = Sale(seq=1, sale_id="a" * 32, kind=SaleKind.SALE, recorded_at=NOW, lines=priced.lines,
                 payments=[Payment(method=PaymentMethod.CASH, amount=priced.total)], total=priced.total, cashier="r")
    with pytest.raises(ContractError, match="alone does not fit"):
        pack_sales("dhaka-1", [whole], "k" * 43, NOW)


def test_half_of_that_sale_fits_and_is_measured_as_the_push_encodes_it():
    sale = _bulky_sale(limits.SALE_MAX_LINES // 2)
    [(_, text)] = pack_sales("dhaka-1", [sale], "k" * 43, NOW)
    assert sale_entry.encoded_alone(sale, "dhaka-1", NOW) == len(text)
    assert sale_entry.encoded_alone(sale) < limits.QUEUE_MESSAGE_BUDGET_CHARS - sale_entry.SEND_MARGIN_CHARS
