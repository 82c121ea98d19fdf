"""The cloud counts a refund only against a sale of the same till, for no more than is left.

A till's own check can be undone by a restore, so the cloud checks every refund against the
sale it holds and the refunds it counted before. These run the real Service on MemoryStore
(the store contract covers the same marks on Azurite). A refused refund is handled like a
refused void: it keeps its number, counts nowhere, is dead-lettered and told to the till.
"""

import pytest

from shared.models import SalesBatch
from tests.builders import (
    T0, make_batch, make_line3, make_refund, make_sale, make_sale3, make_shift_close, make_void, make_void3,
)
from tests.cloud.test_service import enroll, letters, pull, push, state

RICE, OIL = make_line3(qty="2", unit_price=42000), make_line3("OIL-1L", qty="1.5", unit_price=18000, vat_rate="15")


def sold():
    return make_sale3(1, [RICE, OIL])


def test_v1_v2_and_v3_messages_apply_side_by_side_on_one_queue(service, clock):
    secret = enroll(service)
    old, sale = make_sale(1, total=10_000), make_sale3(3, [RICE, OIL], discount=("percent", "5"))
    push(service, make_batch("dhaka-1", [old, make_sale(2, total=2_000)]), secret)          # an old till: v1
    v3 = make_batch("dhaka-1", [sale, make_refund(4, sale, [(2, "0.5", 8_000)]), make_refund(5, old, [(1, "1", 4_000)]),
                                make_shift_close(6)])
    assert v3.v == 3
    assert push(service, v3, secret).applied_through == 6
    v2 = SalesBatch.of("dhaka-1", 2, T0, [make_sale(1, total=700)])                           # a restored old till
    assert v2.v == 2 and push(service, v2, secret).status == "applied"
    after = state(service, "dhaka-1")
    assert after.total_paisa == 10_000 + 2_000 + sale.total - 8_000 - 4_000 + 700
    assert after.sales_applied == 6  # the shift close takes its number but is no sale
    assert letters(service, clock) == []
    assert [(e.generation, e.sale.seq, e.sale.kind) for e in service.export_sales("dhaka-1").sales] == [
        (1, 1, "sale"), (1, 2, "sale"), (1, 3, "sale"), (1, 4, "refund"), (1, 5, "refund"), (1, 6, "shift_close"),
        (2, 1, "sale")]


@pytest.mark.parametrize("returns", [[(1, "2.001", 1)], [(2, "0.5", OIL.line_total + 1)], [(3, "1", 100)]],
                         ids=["more than sold", "more paisa than paid", "no such line"])
def test_a_refund_of_more_than_the_sale_holds_is_refused_and_the_sales_behind_it_apply(service, clock, returns):
    secret = enroll(service)
    sale = sold()
    push(service, make_batch("dhaka-1", [sale]), secret)
    outcome = push(service, make_batch("dhaka-1", [make_refund(2, sale, returns), make_sale3(3)]), secret)
    assert outcome.applied_through == 3
    assert state(service, "dhaka-1").total_paisa == sale.total + make_sale3(3).total
    assert [d.code for d in letters(service, clock)] == ["refund_exceeds_sale"]
    refusal = pull(service, "dhaka-1", secret, clock).last_refusal
    assert (refusal.code, refusal.seq) == ("refund_exceeds_sale", 2)
    assert [e.sale.seq for e in service.export_sales("dhaka-1").sales] == [1, 3]


def test_refunds_add_up_across_messages_and_within_one_and_the_one_past_the_sale_is_refused(service, clock):
    secret = enroll(service)
    sale = sold()
    push(service, make_batch("dhaka-1", [sale, make_refund(2, sale, [(1, "1", 42_000)])]), secret)
    # The second rice bag comes back, then a third that was never sold, in one message.
    later = make_batch("dhaka-1", [make_refund(3, sale, [(1, "1", 42_000)]), make_refund(4, sale, [(1, "1", 1)])])
    push(service, later, secret)
    assert state(service, "dhaka-1").total_paisa == sale.total - 84_000
    assert [(d.code, "refund 4" in d.reason) for d in letters(service, clock)] == [("refund_exceeds_sale", True)]


def test_a_refund_of_a_sale_the_cloud_does_not_hold_or_of_another_till_is_refused(service, clock):
    secret, other = enroll(service), enroll(service, "dhaka-2")
    sale = sold().model_copy(update={"seq": 5})
    push(service, make_batch("dhaka-2", [*(make_sale3(n) for n in range(1, 5)), sale]), other)
    # A restored dhaka-1 refunds number 5 of generation 1: dhaka-2 has one, dhaka-1 never had.
    push(service, SalesBatch.of("dhaka-1", 2, T0, [make_refund(1, sale, [(1, "1", 1)], generation=1)]), secret)
    assert [d.code for d in letters(service, clock)] == ["refund_unknown_sale"]
    assert state(service, "dhaka-1").apply_of(2).applied_through == 1 and state(service, "dhaka-1").total_paisa == 0


def test_a_refund_of_a_refund_is_refused_as_naming_no_sale(service, clock):
    secret = enroll(service)
    sale = sold()
    first = make_refund(2, sale, [(1, "1", 100)])
    push(service, make_batch("dhaka-1", [sale, first]), secret)
    again = make_refund(3, first.model_copy(update={"lines": sale.lines}), [(1, "1", 100)])
    push(service, make_batch("dhaka-1", [again]), secret)
    assert [d.code for d in letters(service, clock)] == ["refund_unknown_sale"]


def test_a_voided_sale_cannot_be_refunded_and_a_refunded_one_cannot_be_voided(service, clock):
    secret = enroll(service)
    voided, refunded = make_sale3(1), sold().model_copy(update={"seq": 2})
    push(service, make_batch("dhaka-1", [voided, refunded, make_void3(3, voided), make_refund(4, refunded, [(1, "1", 100)])]),
         secret)
    push(service, make_batch("dhaka-1", [make_refund(5, voided, [(1, "1", 100)]), make_void3(6, refunded)]), secret)
    assert sorted(d.code for d in letters(service, clock)) == ["refund_of_voided", "void_of_refunded"]
    assert state(service, "dhaka-1").total_paisa == refunded.total - 100


def test_a_v1_sale_refunded_by_a_new_till_is_checked_against_its_line_totals(service, clock):
    secret = enroll(service)
    old = make_sale(1, total=5_000)
    push(service, make_batch("dhaka-1", [old]), secret)
    push(service, make_batch("dhaka-1", [make_refund(2, old, [(1, "1", 5_001)])]), secret)
    push(service, make_batch("dhaka-1", [make_void(3, old)]), secret)  # nothing was refunded: the void counts
    assert [d.code for d in letters(service, clock)] == ["refund_exceeds_sale"]
    assert state(service, "dhaka-1").total_paisa == 0
