"""The simulated shop day behind docs/cost.md, run small so it cannot rot. Only counts are asserted."""

import pytest

from bench.day import parser, simulate

pytestmark = [pytest.mark.azurite]


def test_a_short_day_counts_one_pull_per_sync_plus_one_per_acknowledged_push_and_three_queue_ops_a_message(tmp_path):
    args = parser().parse_args(["--day-minutes", "30", "--sales", "4", "--imports", "1", "--price-changes", "5",
                                "--products", "300"])
    day = simulate(args, tmp_path)
    assert day["syncs"] == 6 and day["pending_at_end"] == 0
    assert 1 <= day["apply_executions"] <= 4  # one message per sync that had sales
    assert day["pull_executions"] == day["syncs"] + day["apply_executions"]  # each push waits for its ack once
    assert day["queue_ops"] == 3 * day["apply_executions"]
    assert day["storage_ops"] == day["pull_ops"] + day["apply_ops"] > day["pull_executions"]


def test_without_the_acknowledgement_wait_a_day_makes_one_pull_per_sync(tmp_path):
    args = parser().parse_args(["--day-minutes", "30", "--sales", "4", "--imports", "1", "--price-changes", "5",
                                "--products", "300", "--ack-wait", "0"])
    day = simulate(args, tmp_path)
    assert day["pull_executions"] == day["syncs"] == 6
