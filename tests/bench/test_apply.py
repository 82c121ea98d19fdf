"""The apply benchmark at a small size, so it keeps running: a real till's sales, real Azurite.
Counts only; no timing is asserted."""

import pytest

from bench import apply

pytestmark = pytest.mark.azurite


def test_the_apply_benchmark_applies_every_sale_and_counts_each_storage_operation_once(capsys):
    figures = apply.main(["--sales", "1200"])
    assert figures["applied_through"] == 1200 and figures["messages"] >= 3
    # At most the 3 operations of a message applied alone, each counted once by its outcome.
    assert figures["ops"] == figures["outcome_ops"] <= 3 * figures["messages"]
    assert "1200 sales in" in capsys.readouterr().out


def test_a_profile_of_the_applies_one_by_one_shows_the_apply_itself(capsys):
    # With one thread the messages are applied on the profiled thread, not waited for.
    apply.main(["--sales", "300", "--threads", "1", "--profile", "40"])
    assert "apply_message" in capsys.readouterr().out
