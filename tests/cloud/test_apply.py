"""Exactly-once planning: which sales of a batch are new, and what the state becomes."""

import random
import string
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from tests.builders import T0, make_batch, make_line3, make_refund, make_sale3
from hypothesis import given, settings
from hypothesis import strategies as st

from branchsync_cloud import summaries
from branchsync_cloud.apply import (
    MAX_RANGES, ApplyState, BranchLedger, ReferencedSale, SummaryInput, merge_batches, plan_apply, plan_transactions,
)
from branchsync_cloud.store import Chunk
from shared.errors import ContractError, ErrorCode


def seqs(plan):
    return [s.seq for s in plan.new_sales]


def test_a_first_batch_is_stored_whole_and_advances_applied_through():
    plan = plan_apply(ApplyState(), make_batch("b1", range(1, 6)))
    assert seqs(plan) == [1, 2, 3, 4, 5]
    assert plan.state == ApplyState(5, ())
    assert plan.total_paisa == sum(1000 + n for n in range(1, 6))


def test_a_batch_delivered_twice_changes_nothing_the_second_time():
    batch = make_batch("b1", range(1, 4))
    first = plan_apply(ApplyState(), batch)
    again = plan_apply(first.state, batch)
    assert not again.changed and again.duplicates == 3
    assert again.state == first.state


def test_sales_at_or_below_applied_through_are_dropped():
    plan = plan_apply(ApplyState(10), make_batch("b1", [9, 10, 11, 12]))
    assert seqs(plan) == [11, 12] and plan.duplicates == 2
    assert plan.state.applied_through == 12


def test_a_batch_that_arrives_before_its_predecessor_waits_in_a_range():
    plan = plan_apply(ApplyState(3), make_batch("b1", [7, 8, 9]))
    assert seqs(plan) == [7, 8, 9]
    assert plan.state == ApplyState(3, ((7, 9),))


def test_filling_the_gap_advances_applied_through_over_the_waiting_range():
    plan = plan_apply(ApplyState(3, ((7, 9), (12, 12))), make_batch("b1", [4, 5, 6]))
    assert plan.state == ApplyState(9, ((12, 12),))


def test_an_overlapping_batch_stores_only_its_new_sales():
    plan = plan_apply(ApplyState(3, ((7, 9),)), make_batch("b1", range(2, 12)))
    assert seqs(plan) == [4, 5, 6, 10, 11]
    assert plan.state == ApplyState(11, ())
    # Runs never straddle a stored range, so chunk rows never interleave.
    assert [[s.seq for s in run] for run in plan.runs] == [[4, 5, 6], [10, 11]]


def test_a_batch_inside_a_stored_range_changes_nothing():
    state = ApplyState(3, ((7, 20),))
    plan = plan_apply(state, make_batch("b1", [8, 9, 15]))
    assert not plan.changed and plan.state == state


def test_adjacent_ranges_merge_into_one():
    plan = plan_apply(ApplyState(0, ((5, 6),)), make_batch("b1", [7, 8]))
    assert plan.state == ApplyState(0, ((5, 8),))


def test_a_batch_with_holes_is_stored_as_separate_runs():
    plan = plan_apply(ApplyState(), make_batch("b1", [1, 2, 5, 6, 9]))
    assert [[s.seq for s in run] for run in plan.runs] == [[1, 2], [5, 6], [9]]
    assert plan.state == ApplyState(2, ((5, 6), (9, 9)))


def test_a_batch_leaving_too_many_gaps_is_refused_as_malformed():
    odd = range(3, 2 * MAX_RANGES + 6, 2)
    with pytest.raises(ContractError) as err:
        plan_apply(ApplyState(), make_batch("b1", odd))
    assert err.value.code == ErrorCode.MALFORMED_MESSAGE


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_order_and_duplication_of_batches_stores_each_sale_exactly_once(data):
    n = data.draw(st.integers(1, 40))
    cuts = sorted(data.draw(st.sets(st.integers(1, n), max_size=8)) | {n})
    bounds = [0, *cuts]
    batches = [make_batch("b1", range(lo + 1, hi + 1)) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]
    # At-least-once, unordered delivery: every batch at least once, some twice, any order.
    deliveries = batches + data.draw(st.lists(st.sampled_from(batches), max_size=6))
    deliveries = data.draw(st.permutations(deliveries))
    state, stored = ApplyState(), []
    for batch in deliveries:
        plan = plan_apply(state, batch)
        stored += seqs(plan)
        state = plan.state
    assert sorted(stored) == list(range(1, n + 1))
    assert state == ApplyState(n, ())


def test_refund_marks_cut_into_several_transactions_carry_only_the_refunds_committed_so_far():
    rng = random.Random(5)
    sold = make_sale3(1, [make_line3(qty="10", unit_price=1000)])
    stored = Chunk("b1", 1, 1, T0, [sold], etag="e1")
    before = BranchLedger("b1", {1: ApplyState(1)})
    # Incompressible names make the batch more than one transaction holds.
    noisy = [make_sale3(n, [make_line3(f"S{n}-{i}").model_copy(
        update={"name": "".join(rng.choices(string.ascii_letters, k=200))}) for i in range(14)]) for n in range(3, 1000)]
    sales = [make_refund(2, sold, [(1, "1", 1000)]), *noisy, make_refund(1000, sold, [(1, "2", 2000)])]
    plan = plan_apply(before.apply, make_batch("b1", sales), {(1, 1): ReferencedSale.of(sold)})
    assert not plan.refused
    write = plan_transactions(before, plan, {(1, 1): stored}, T0, T0)
    marks = [m.refunded for t in write.txns for m in t.marks]
    assert len(write.txns) > 1 and len(marks) == 2
    # Should the apply stop after the first transaction, the mark holds only the refund committed with it.
    assert marks == [{1: {1: (Decimal(1), 1000)}}, {1: {1: (Decimal(3), 3000)}}]


def test_runs_end_after_the_given_seqs_so_merged_messages_keep_a_chunk_each():
    first, second = make_batch("b1", range(1, 4)), make_batch("b1", range(4, 7))
    merged, ends = merge_batches([second, first])
    assert [s.seq for s in merged.sales] == list(range(1, 7)) and ends == {3, 6}
    plan = plan_apply(ApplyState(), merged, ends=ends)
    assert [[s.seq for s in run] for run in plan.runs] == [[1, 2, 3], [4, 5, 6]]
    assert plan.state == ApplyState(6, ())


def test_messages_that_overlap_or_belong_to_other_branches_are_not_merged():
    assert merge_batches([make_batch("b1", [1, 2, 3]), make_batch("b1", [3, 4])]) is None
    assert merge_batches([make_batch("b1", [1, 2]), make_batch("b2", [3, 4])]) is None


def test_an_apply_of_one_transaction_folds_each_event_into_its_day_once(monkeypatch):
    folded = []
    fold_event = summaries.fold_event
    monkeypatch.setattr(summaries, "fold_event", lambda day, event, original=None: (folded.append(event.seq),
                                                                                    fold_event(day, event, original)))
    plan = plan_apply(ApplyState(), make_batch("b1", range(1, 41)))
    write = plan_transactions(BranchLedger("b1"), plan, {}, T0, T0, SummaryInput({}, {}, ZoneInfo("Asia/Dhaka")))
    assert len(write.txns) == 1 and sorted(folded) == list(range(1, 41))
    [day] = write.txns[0].summaries
    assert day.summary.sales == 40 and day.parts == summaries.pack(day.summary)
