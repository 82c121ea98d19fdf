"""A copied branch database syncing from a second PC is noticed and refused, never double counted."""

from tests.builders import make_batch
from tests.cloud.test_service import enroll, push, state


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
