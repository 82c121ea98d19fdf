"""`status` says, for a sale that is not acknowledged, why it waits and what happens next."""

from datetime import datetime, timedelta, timezone

from branch_client.explain import explain
from branch_client.status import LastRefusal
from branch_client.store import RESEND_AFTER, SaleRecord, SaleState
from tests.builders import make_sale

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)


def record(state: SaleState, pushed_ago: timedelta | None = None, pushes: int = 0) -> SaleRecord:
    pushed_at = (NOW - pushed_ago).isoformat() if pushed_ago is not None else None
    return SaleRecord(make_sale(7), state, pushed_at, pushes, None, None)


def why(rec, last_error=None):
    return explain(rec, NOW, branch="dhaka-1", last_error=last_error, resend_after=RESEND_AFTER)


def test_a_sale_not_pushed_yet_waits_for_the_next_sync():
    e = why(record(SaleState.PENDING))
    assert e.seq == 7 and "since the last sync" in e.why and "next sync pushes it" in e.next


def test_a_sale_held_back_by_a_failed_sync_names_the_failure():
    e = why(record(SaleState.PENDING), last_error="cannot reach the cloud")
    assert "cannot reach the cloud" in e.why and "doctor" in e.next


def test_a_sale_pushed_moments_ago_waits_for_the_acknowledgement():
    e = why(record(SaleState.PUSHED, timedelta(minutes=2), 1))
    assert "2 minutes ago" in e.why and "acknowledges" in e.next


def test_a_sale_unacknowledged_too_long_is_pushed_again():
    e = why(record(SaleState.PUSHED, timedelta(minutes=30), 1))
    assert "not acknowledged" in e.why and "pushes it again" in e.next


def test_a_sale_pushed_many_times_without_an_ack_points_ops_at_the_dead_letters():
    e = why(record(SaleState.PUSHED, timedelta(hours=5), 4))
    assert "4 times" in e.why and "refusing" in e.why
    assert "deadletter list" in e.next and "dhaka-1" in e.next


def test_a_sale_of_a_till_the_cloud_refused_says_so_and_what_to_do():
    refusal = LastRefusal(at="2026-11-28T08:00:00Z", code="cloned_till", reason="two PCs sync as dhaka-1", this_till=True)
    e = explain(record(SaleState.PUSHED, timedelta(minutes=2), 1), NOW, branch="dhaka-1", last_error=None,
                resend_after=RESEND_AFTER, refusal=refusal)
    assert e.why == "the cloud refused sales from this till: two PCs sync as dhaka-1"
    assert e.next.startswith("What to do:") and "new branch code" in e.next


def test_another_pc_s_refused_sale_does_not_explain_this_till_s_waiting_sale():
    refusal = LastRefusal(at="2026-11-28T08:00:00Z", code="cloned_till", reason="two PCs", this_till=False)
    e = explain(record(SaleState.PENDING), NOW, branch="dhaka-1", last_error=None, resend_after=RESEND_AFTER,
                refusal=refusal)
    assert "refused" not in e.why
