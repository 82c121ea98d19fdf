"""The cloud counts a void only against a sale it holds, once, for exactly minus its total.

A restored till's database may have forgotten an earlier void, so the till's own check is
not enough: these run against the real Service over Azurite.
"""

import uuid

from shared.models import Payment, Sale, SaleKind, SalesBatch
from tests.builders import T0, make_batch, make_sale, make_void
from tests.cloud.test_service import enroll, letters, pull, push, state


def void_of(seq: int, voided: Sale, *, generation: int | None = None, total: int | None = None) -> Sale:
    amount = -voided.total if total is None else total
    return Sale(seq=seq, sale_id=uuid.uuid4().hex, kind=SaleKind.VOID, voids=voided.seq, voids_generation=generation,
                recorded_at=T0, lines=[], payment=Payment(method=voided.payment.method, amount=amount), total=amount)


def batch(seqs, generation: int = 1) -> SalesBatch:
    return SalesBatch.of("dhaka-1", generation, T0, list(make_batch("dhaka-1", seqs).sales))


def test_a_sale_voided_again_after_a_restore_is_counted_once_and_the_second_void_is_refused(service, clock):
    secret = enroll(service)
    big, small = make_sale(1, total=42_000), make_sale(2, total=7_000)
    push(service, make_batch("dhaka-1", [big, small, make_void(3, big)]), secret)
    # Restored from a backup taken before the void: the till voids sale 1 again, in generation 2.
    again = SalesBatch.of("dhaka-1", 2, T0, [void_of(1, big, generation=1), make_sale(2, total=500)])
    outcome = push(service, again, secret)
    assert (outcome.status, outcome.applied_through) == ("applied", 2)  # the sale behind it is applied
    after = state(service, "dhaka-1")
    assert after.total_paisa == 7_000 + 500 and after.sales_applied == 4
    [letter] = letters(service, clock)
    assert letter.code == "void_twice" and "1" in letter.reason
    refusal = pull(service, "dhaka-1", secret, clock).last_refusal
    assert (refusal.code, refusal.generation, refusal.seq) == ("void_twice", 2, 1)
    exported = service.export_sales("dhaka-1").sales
    assert [(e.generation, e.sale.seq) for e in exported] == [(1, 1), (1, 2), (1, 3), (2, 2)]


def test_a_redelivered_batch_with_a_refused_void_changes_nothing_and_is_not_refused_twice(service, clock):
    secret = enroll(service)
    sale = make_sale(1, total=1_000)
    refused = make_batch("dhaka-1", [sale, void_of(2, sale, total=-900)])
    push(service, refused, secret)
    assert push(service, refused, secret).status == "duplicate"
    assert [d.code for d in letters(service, clock)] == ["void_wrong_total"]
    assert state(service, "dhaka-1").total_paisa == 1_000


def test_a_void_of_a_sale_the_cloud_never_had_is_refused_without_blocking_later_sales(service, clock):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", [1]), secret)
    ghost = make_sale(5, total=3_000)
    outcome = push(service, SalesBatch.of("dhaka-1", 2, T0, [void_of(1, ghost, generation=1)]), secret)
    assert outcome.status == "applied"
    push(service, batch([2, 3], generation=2), secret)
    assert state(service, "dhaka-1").apply_of(2).applied_through == 3
    assert [d.code for d in letters(service, clock)] == ["void_unknown_sale"]


def test_a_void_of_a_void_is_refused(service, clock):
    secret = enroll(service)
    sale = make_sale(1, total=1_000)
    void = make_void(2, sale)
    push(service, make_batch("dhaka-1", [sale, void]), secret)
    void_as_sale = Sale(seq=3, sale_id=uuid.uuid4().hex, kind=SaleKind.VOID, voids=2, recorded_at=T0, lines=[],
                        payment=Payment(method="cash", amount=-1_000), total=-1_000)
    push(service, make_batch("dhaka-1", [void_as_sale]), secret)
    assert [d.code for d in letters(service, clock)] == ["void_unknown_sale"]
    assert state(service, "dhaka-1").total_paisa == 0


def test_a_void_that_arrives_before_its_sale_is_refused_never_left_waiting(service, clock):
    # A till sends a void only with its sale or after the sale's ack; a void that still comes
    # first is refused visibly rather than left waiting for a database that may be gone.
    secret = enroll(service)
    sale = make_sale(1, total=2_000)
    push(service, make_batch("dhaka-1", [make_void(2, sale), make_sale(3, total=100)]), secret)
    push(service, make_batch("dhaka-1", [sale]), secret)
    after = state(service, "dhaka-1")
    assert after.apply.applied_through == 3 and after.total_paisa == 2_100
    assert [d.code for d in letters(service, clock)] == ["void_unknown_sale"]


def test_voids_in_one_batch_cost_no_read_per_sale(service):
    secret = enroll(service)
    sales = [make_sale(n, total=1_000) for n in range(1, 501)]
    push(service, make_batch("dhaka-1", sales), secret)
    # 500 more sales and 10 voids of the first batch's sales: one read for their chunk, not one per sale.
    later = [make_sale(n, total=1_000) for n in range(501, 1001)]
    voids = [make_void(999 + i, sales[i - 1]) for i in range(1, 11)]
    outcome = push(service, make_batch("dhaka-1", [*later[:-1], *voids]), secret)
    assert outcome.status == "applied" and outcome.ops <= 8
    after = state(service, "dhaka-1")
    assert after.apply.applied_through == 1009 and after.total_paisa == (500 + 499 - 10) * 1_000
    again = [make_void(1010, sales[0])]
    push(service, make_batch("dhaka-1", again), secret)  # sale 1 was voided by 1000: refused
    assert state(service, "dhaka-1").total_paisa == (500 + 499 - 10) * 1_000


def test_generations_have_their_own_watermarks_and_the_pull_acks_each(service, clock):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", [1, 2, 3]), secret)
    push(service, batch([1, 2], generation=2), secret)      # a restored till numbers anew...
    push(service, make_batch("dhaka-1", [4, 5]), secret)    # ...while the lost database's message arrives late
    answer = pull(service, "dhaka-1", secret, clock)
    assert answer.applied_through == 5
    assert [(a.generation, a.applied_through) for a in answer.acks] == [(2, 2)]
    assert state(service, "dhaka-1").sales_applied == 7
    assert letters(service, clock) == []


def test_a_branch_never_restored_gets_no_acks_field_so_older_tills_still_read_the_pull(service, clock):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", [1]), secret)
    assert "acks" not in pull(service, "dhaka-1", secret, clock).model_dump(mode="json")


def test_a_cloned_till_in_a_later_generation_is_still_refused(service, clock):
    secret = enroll(service)
    push(service, batch([1, 2], generation=2), secret)
    outcome = push(service, batch([2, 3], generation=2), secret)
    assert (outcome.status, outcome.code) == ("dead_lettered", "cloned_till")
    assert pull(service, "dhaka-1", secret, clock).last_refusal.generation == 2
