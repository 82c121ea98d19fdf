"""Dead letters: listed with their reason, shown, replayed once the cause is fixed, discarded."""

import base64
import dataclasses

import pytest

from branchsync_cloud.ingest import describe_message
from shared.encoding import encode_batch, from_queue_text
from shared.errors import ContractError, ErrorCode
from shared.signing import new_secret
from tests.builders import make_batch
from tests.cloud.test_service import enroll, push, state


def break_secret(service, name: str) -> str:
    """Make the cloud hold a wrong secret for a branch (as a mistaken restore would); returns the right one."""
    record = service.store.get_branch(name)
    service.store.replace_branch(dataclasses.replace(record, secret=new_secret()))
    return record.secret


def restore_secret(service, name: str, secret: str) -> None:
    record = service.store.get_branch(name)
    service.store.replace_branch(dataclasses.replace(record, secret=secret))


def test_a_dead_letter_is_listed_with_its_reason_and_shown_with_what_it_claims(service):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", [1, 2, 3]), new_secret())
    [info] = service.list_dead_letters().dead_letters
    assert info.code == "bad_signature" and info.branch == "dhaka-1" and "signature" in info.reason
    detail = service.get_dead_letter(info.id)
    assert base64.b64decode(detail.raw_base64).startswith(b"BSQ1")
    assert "dhaka-1" in detail.summary and "seq 1-3" in detail.summary
    assert secret not in detail.model_dump_json()


def test_a_replay_after_the_cause_is_fixed_applies_the_sales_and_removes_the_dead_letter(service):
    secret = enroll(service)
    push(service, make_batch("dhaka-1", [1]), secret)
    right = break_secret(service, "dhaka-1")
    assert push(service, make_batch("dhaka-1", [2, 3]), right).status == "dead_lettered"
    [info] = service.list_dead_letters().dead_letters

    still = service.replay_dead_letter(info.id)
    assert (still.status, still.code) == ("still_failing", "bad_signature")
    assert service.list_dead_letters().dead_letters[0].replays == 1

    restore_secret(service, "dhaka-1", right)
    result = service.replay_dead_letter(info.id)
    assert (result.status, result.new_sales, result.applied_through) == ("applied", 2, 3)
    assert service.list_dead_letters().dead_letters == []
    with pytest.raises(ContractError) as gone:
        service.replay_dead_letter(info.id)
    assert gone.value.code == ErrorCode.NOT_FOUND


def test_replaying_two_copies_of_one_message_counts_its_sales_once(service):
    enroll(service)
    right = break_secret(service, "dhaka-1")
    batch = make_batch("dhaka-1", [1, 2, 3, 4])
    text = encode_batch(batch, right)
    for _ in range(2):  # the queue delivered it twice
        service.apply_message(from_queue_text(text))
    restore_secret(service, "dhaka-1", right)
    first, second = service.list_dead_letters().dead_letters
    assert service.replay_dead_letter(first.id).status == "applied"
    assert service.replay_dead_letter(second.id).status == "duplicate"
    after = state(service, "dhaka-1")
    assert after.apply.applied_through == 4 and after.sales_applied == 4
    assert after.total_paisa == sum(s.total for s in batch.sales)


def test_a_discarded_dead_letter_is_gone_and_a_second_discard_says_so(service):
    service.apply_message(b"not a batch at all")
    [info] = service.list_dead_letters().dead_letters
    assert service.discard_dead_letter(info.id).code == "malformed_message"
    assert service.list_dead_letters().dead_letters == []
    with pytest.raises(ContractError) as again:
        service.discard_dead_letter(info.id)
    assert again.value.code == ErrorCode.NOT_FOUND


def test_an_id_that_is_not_a_dead_letter_id_is_a_bad_request(service):
    with pytest.raises(ContractError) as bad:
        service.get_dead_letter("../../etc")
    assert bad.value.code == ErrorCode.BAD_REQUEST


def test_describing_a_message_never_trusts_it():
    assert "not a readable sales batch" in describe_message(b"garbage")
    frame = from_queue_text(encode_batch(make_batch("b1", [5, 6]), new_secret()))
    assert "claims branch b1" in describe_message(frame) and "seq 5-6" in describe_message(frame)
    assert "body unreadable" in describe_message(frame[: len(frame) // 2])
