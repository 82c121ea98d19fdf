"""Rotating and revoking a branch's secret: the pure transitions, then Service against Azurite."""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from branchsync_cloud import branch_keys
from branchsync_cloud.branch_keys import BranchState
from branchsync_cloud.store import BranchRecord
from shared.enrollment import decode_code
from shared.errors import ContractError, ErrorCode
from shared.models import EnrollRequest, PullAnswer
from tests.builders import make_batch
from tests.cloud.test_service import enroll, letters, pull, push, state

T = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)


def record(**fields) -> BranchRecord:
    return BranchRecord(name="dhaka-1", created_at=T, enrolled=True, secret="old", **fields)


# --- the pure transitions ------------------------------------------------------------------


def test_a_rotation_waits_as_next_secret_and_a_second_one_keeps_it():
    rotating = branch_keys.with_rotation(record(), "new", T)
    assert branch_keys.state_of(rotating) == BranchState.ROTATING and rotating.next_secret == "new"
    assert branch_keys.with_rotation(rotating, "newer", T + timedelta(hours=1)).next_secret == "new"


def test_promotion_makes_next_current_and_keeps_the_old_one_as_previous():
    done = branch_keys.promoted(branch_keys.with_rotation(record(), "new", T), T + timedelta(minutes=5))
    assert (done.previous_secret, done.secret, done.next_secret) == ("old", "new", None)
    assert branch_keys.state_of(done) == BranchState.ENROLLED


def test_the_previous_secret_signs_queue_messages_only_while_one_can_still_be_queued():
    done = branch_keys.promoted(branch_keys.with_rotation(record(), "new", T), T)
    assert branch_keys.request_secrets(done) == ["new"]
    assert branch_keys.message_secrets(done, T + timedelta(days=7)) == ["new", "old"]
    assert branch_keys.message_secrets(done, T + timedelta(days=7, seconds=1)) == ["new"]


def test_revoking_drops_a_pending_secret_and_an_unused_enrollment_code():
    gone = branch_keys.revoked(record(next_secret="new", token_hash="h", token_expires=T), T)
    assert branch_keys.state_of(gone) == BranchState.REVOKED
    assert gone.next_secret is None and gone.token_hash is None
    assert branch_keys.revoked(gone, T + timedelta(days=1)).revoked_at == T


# --- rotation through the service ------------------------------------------------------------


def test_a_rotated_secret_rides_on_the_next_pull_signed_with_the_current_one(service, clock):
    old = enroll(service)
    rotation = service.rotate_branch("dhaka-1")
    assert rotation.already_pending is False and rotation.requested_at == clock.now
    answer = pull(service, "dhaka-1", old, clock, cursor=0)
    assert answer.rotate_secret and answer.rotate_secret != old
    assert pull(service, "dhaka-1", old, clock, cursor=0).rotate_secret == answer.rotate_secret  # until used
    [info] = service.list_branches().branches
    assert info.rotation_pending and info.revoked_at is None


def test_rotating_while_a_rotation_waits_keeps_the_waiting_secret(service, clock):
    old = enroll(service)
    service.rotate_branch("dhaka-1")
    first = pull(service, "dhaka-1", old, clock, cursor=0).rotate_secret
    assert service.rotate_branch("dhaka-1").already_pending
    assert pull(service, "dhaka-1", old, clock, cursor=0).rotate_secret == first


def test_the_first_request_signed_with_the_new_secret_promotes_it_and_the_old_one_stops_working(service, clock):
    old = enroll(service)
    service.rotate_branch("dhaka-1")
    new = pull(service, "dhaka-1", old, clock, cursor=0).rotate_secret
    answer = pull(service, "dhaka-1", new, clock, cursor=0)
    assert answer.rotate_secret is None
    stored = service.store.get_branch("dhaka-1")
    assert (stored.secret, stored.previous_secret, stored.next_secret) == (new, old, None)
    assert not service.list_branches().branches[0].rotation_pending
    with pytest.raises(ContractError) as err:
        pull(service, "dhaka-1", old, clock, cursor=0)
    assert err.value.code == ErrorCode.BAD_SIGNATURE


def test_messages_signed_before_and_after_a_rotation_all_apply_once(service, clock):
    old = enroll(service)
    assert push(service, make_batch("dhaka-1", [1, 2]), old).status == "applied"
    service.rotate_branch("dhaka-1")
    new = pull(service, "dhaka-1", old, clock, cursor=0).rotate_secret
    queued_before_switch = make_batch("dhaka-1", [3, 4])
    # The first message signed with the new secret arrives first and promotes it ...
    assert push(service, make_batch("dhaka-1", [5]), new).status == "applied"
    assert service.store.get_branch("dhaka-1").secret == new
    # ... and one pushed with the old secret before the switch still applies.
    assert push(service, queued_before_switch, old).status == "applied"
    assert push(service, queued_before_switch, old).status == "duplicate"
    after = state(service, "dhaka-1")
    assert after.apply.applied_through == 5 and after.sales_applied == 5
    assert letters(service, clock) == []


def test_a_message_signed_with_the_previous_secret_after_its_grace_is_dead_lettered(service, clock):
    old = enroll(service)
    service.rotate_branch("dhaka-1")
    new = pull(service, "dhaka-1", old, clock, cursor=0).rotate_secret
    pull(service, "dhaka-1", new, clock, cursor=0)
    clock.now += branch_keys.PREVIOUS_SECRET_GRACE + timedelta(minutes=1)
    outcome = push(service, make_batch("dhaka-1", [1]), old)
    assert (outcome.status, outcome.code) == ("dead_lettered", "bad_signature")


def test_concurrent_messages_signed_with_the_new_secret_promote_it_once_and_all_apply(service, clock):
    old = enroll(service)
    service.rotate_branch("dhaka-1")
    new = pull(service, "dhaka-1", old, clock, cursor=0).rotate_secret
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda s: push(service, make_batch("dhaka-1", [s]), new), [1, 2, 3, 4]))
    assert [o.status for o in outcomes] == ["applied"] * 4
    stored = service.store.get_branch("dhaka-1")
    assert (stored.secret, stored.previous_secret) == (new, old)
    assert state(service, "dhaka-1").apply.applied_through == 4


@pytest.mark.parametrize("setup, code", [
    (lambda s: None, ErrorCode.NOT_FOUND),
    (lambda s: s.create_branch("dhaka-1", "https://x"), ErrorCode.CONFLICT),
    (lambda s: (enroll(s), s.revoke_branch("dhaka-1")), ErrorCode.CONFLICT),
])
def test_only_an_enrolled_branch_that_is_not_revoked_can_be_rotated(service, setup, code):
    setup(service)
    with pytest.raises(ContractError) as err:
        service.rotate_branch("dhaka-1")
    assert err.value.code == code


def test_a_pull_answer_without_a_new_secret_does_not_mention_the_field(service, clock):
    # Branches from before the field refuse unknown fields, so an absent secret is left out.
    answer = pull(service, "dhaka-1", enroll(service), clock, cursor=0)
    assert "rotate_secret" not in answer.model_dump_json()
    assert PullAnswer.model_validate_json(answer.model_dump_json()) == answer


# --- revocation through the service ----------------------------------------------------------


def test_a_revoked_branchs_next_request_is_refused_saying_head_office_revoked_it(service, clock):
    secret = enroll(service)
    revocation = service.revoke_branch("dhaka-1")
    assert revocation.revoked_at == clock.now and not revocation.already_revoked
    with pytest.raises(ContractError) as err:
        pull(service, "dhaka-1", secret, clock, cursor=0)
    assert err.value.code == ErrorCode.BRANCH_REVOKED and err.value.http_status == 403
    assert "head office revoked this till" in err.value.message and "new branch" in err.value.message
    assert service.revoke_branch("dhaka-1").already_revoked


def test_a_revoked_branchs_queued_messages_are_dead_lettered_as_branch_revoked(service, clock):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", [1]), secret)
    service.revoke_branch("dhaka-1")
    outcome = push(service, make_batch("dhaka-1", [2, 3]), secret)
    assert (outcome.status, outcome.code) == ("dead_lettered", "branch_revoked")
    [letter] = letters(service, clock)
    assert letter.code == "branch_revoked" and letter.branch == "dhaka-1" and "revoked by head office" in letter.reason
    assert state(service, "dhaka-1").apply.applied_through == 1
    # A forged message naming the revoked branch is still told apart: it is a bad signature.
    assert push(service, make_batch("dhaka-1", [4]), "A" * 43).code == "bad_signature"


def test_revoking_a_branch_that_never_enrolled_kills_its_enrollment_code(service):
    token = decode_code(service.create_branch("dhaka-1", "https://x").enrollment_code).token
    service.revoke_branch("dhaka-1")
    with pytest.raises(ContractError) as err:
        service.enroll(EnrollRequest(token=token))
    assert err.value.code == ErrorCode.ENROLLMENT_INVALID
    [info] = service.list_branches().branches
    assert info.revoked_at is not None and not info.enrolled
