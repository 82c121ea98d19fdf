"""When the till pushes: PushPlan with the time passed in (no clock, no sleeps)."""

from branch_client.till.autopush import BACKOFF, BUSY_RETRY, Note, Outcome, PushPlan, describe


def test_a_sale_on_an_idle_till_starts_a_sync_at_once():
    plan = PushPlan()
    assert plan.sale_recorded(0.0) is True
    assert plan.running


def test_many_sales_during_one_sync_give_one_more_sync_after_it_not_one_per_sale():
    plan = PushPlan()
    assert plan.sale_recorded(0.0)
    assert [plan.sale_recorded(t) for t in (1.0, 2.0, 3.0, 4.0)] == [False] * 4
    assert plan.finished(5.0, Outcome.DONE) is True  # the one more sync
    assert plan.finished(6.0, Outcome.DONE) is False  # nothing was sold during it: no third
    assert not plan.running and plan.wake_at() is None


def test_an_unreachable_cloud_backs_off_and_sales_meanwhile_start_no_sync():
    plan = PushPlan()
    plan.sale_recorded(0.0)
    assert plan.finished(1.0, Outcome.UNREACHABLE) is False
    assert [plan.sale_recorded(1.0 + t) for t in range(1, 14)] == [False] * 13
    assert plan.wake_at() == 1.0 + BACKOFF[0]
    assert plan.due(1.0 + BACKOFF[0] - 0.5) is False
    assert plan.due(1.0 + BACKOFF[0]) is True


def test_the_pause_grows_with_each_failure_up_to_five_minutes_and_a_success_resets_it():
    plan, now, pauses = PushPlan(), 0.0, []
    plan.sale_recorded(now)
    for _ in range(len(BACKOFF) + 2):
        plan.finished(now, Outcome.UNREACHABLE)
        pauses.append(plan.wake_at() - now)
        now = plan.wake_at()
        assert plan.due(now)
    assert pauses == [*BACKOFF, BACKOFF[-1], BACKOFF[-1]]
    assert BACKOFF[-1] == 300.0
    plan.finished(now, Outcome.DONE)
    assert plan.sale_recorded(now + 1) is True  # back online: the next sale pushes at once
    plan.finished(now + 2, Outcome.UNREACHABLE)
    assert plan.wake_at() == now + 2 + BACKOFF[0]


def test_unsent_sales_are_retried_after_the_pause_even_when_nothing_more_is_sold():
    plan = PushPlan()
    plan.sale_recorded(0.0)
    plan.finished(0.0, Outcome.FAILED)
    assert plan.due(BACKOFF[0]) is True


def test_the_cashiers_sync_now_skips_the_pause_but_never_starts_a_second_sync():
    plan = PushPlan()
    plan.sale_recorded(0.0)
    assert plan.sync_now() is False
    plan.finished(1.0, Outcome.UNREACHABLE)
    assert plan.sync_now() is True


def test_a_sync_blocked_by_the_scheduled_sync_looks_again_soon_without_counting_a_failure():
    plan = PushPlan()
    plan.sale_recorded(0.0)
    plan.finished(1.0, Outcome.BUSY)
    assert plan.failures == 0
    assert plan.wake_at() == 1.0 + BUSY_RETRY
    assert plan.due(1.0 + BUSY_RETRY)


def test_the_status_line_says_in_plain_words_that_sales_are_kept_and_when_the_next_try_is():
    plan = PushPlan()
    plan.sale_recorded(0.0)
    assert describe(plan, None, 0.0) == {"code": "sending", "text": "sending sales to head office"}
    plan.finished(10.0, Outcome.UNREACHABLE)
    shown = describe(plan, Note("unreachable", "cannot reach the cloud at example (ConnectError)"), 20.0)
    assert (shown["code"], shown["retry_in"]) == ("unreachable", 5)
    assert shown["text"] == ("head office cannot be reached: sales are kept safely on this till and sent on their own "
                             "when it can be reached (next try in 5 s)")
    plan.due(25.0)
    plan.finished(26.0, Outcome.DONE)
    assert describe(plan, Note("pushed", "sync done: pushed 3 sales", count=3), 27.0) == {
        "code": "pushed", "count": 3, "text": "sync done: pushed 3 sales"}


def test_a_blocked_sync_keeps_its_code_and_message_and_adds_the_next_try():
    plan = PushPlan()
    plan.sale_recorded(0.0)
    plan.finished(0.0, Outcome.BUSY)
    assert describe(plan, Note("busy", "a sync is already running", error="sync_running"), 4.0) == {
        "code": "busy", "error": "sync_running", "retry_in": 6, "text": "a sync is already running (next try in 6 s)"}


def test_a_refused_sync_carries_the_errors_code_for_the_page_to_word():
    plan = PushPlan()
    plan.sale_recorded(0.0)
    plan.finished(0.0, Outcome.FAILED)
    shown = describe(plan, Note("failed", "cloud refused (branch_revoked): revoked", error="branch_revoked"), 1.0)
    assert (shown["code"], shown["error"], shown["retry_in"]) == ("failed", "branch_revoked", 14)
