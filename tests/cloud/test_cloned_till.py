"""A copied branch database syncing from a second PC is noticed and refused, never double counted."""

from shared.signing import new_secret
from tests.builders import make_batch
from tests.cloud.test_service import enroll, letters, pull, push, state


def test_a_different_sale_under_an_applied_number_is_dead_lettered_as_a_cloned_till(service):
    secret = enroll(service)
    original = make_batch("dhaka-1", [1, 2, 3])
    assert push(service, original, secret).status == "applied"
    clone = make_batch("dhaka-1", [2, 3, 4])  # other sales under numbers 2 and 3
    outcome = push(service, clone, secret)
    assert (outcome.status, outcome.code) == ("dead_lettered", "cloned_till")
    after = state(service, "dhaka-1")
    assert after.apply.applied_through == 3 and after.sales_applied == 3
    assert after.total_paisa == sum(s.total for s in original.sales)
    assert "cloned_till" in service.store.get_branch("dhaka-1").last_error


def test_the_same_sales_delivered_again_are_a_plain_duplicate_not_a_clone(service):
    secret = enroll(service)
    batch = make_batch("dhaka-1", [1, 2, 3])
    push(service, batch, secret)
    assert push(service, batch, secret).status == "duplicate"
    overlapping = make_batch("dhaka-1", [4, 5])
    resent = type(batch)(branch="dhaka-1", sent_at=batch.sent_at, sales=[*batch.sales[1:], *overlapping.sales])
    outcome = push(service, resent, secret)
    assert (outcome.status, outcome.new_sales, outcome.applied_through) == ("applied", 2, 5)


def test_the_clone_s_next_pull_carries_the_refused_sale_and_the_real_till_can_tell_it_is_not_its_own(service, clock):
    secret = enroll(service)
    original = make_batch("dhaka-1", [1, 2])
    push(service, original, secret)
    clone = make_batch("dhaka-1", [2, 3])
    push(service, clone, secret)
    refusal = pull(service, "dhaka-1", secret, clock).last_refusal
    assert (refusal.code, refusal.seq, refusal.sale_id) == ("cloned_till", 2, clone.sales[0].sale_id)
    assert refusal.sale_id != original.sales[1].sale_id and "two PCs" in refusal.reason


def test_a_forged_message_is_not_reported_to_the_branch_s_till_as_its_refusal(service, clock):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", [1]), new_secret())  # not signed with the branch's secret
    assert "bad_signature" in service.store.get_branch("dhaka-1").last_error
    assert pull(service, "dhaka-1", secret, clock).last_refusal is None


def test_once_head_office_discards_the_refused_message_the_pull_stops_reporting_it(service, clock):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", [1]), secret)
    push(service, make_batch("dhaka-1", [1]), secret)  # the same number, another sale
    [letter] = letters(service, clock)
    assert pull(service, "dhaka-1", secret, clock).last_refusal is not None
    service.discard_dead_letter(letter.id)
    assert pull(service, "dhaka-1", secret, clock).last_refusal is None
