"""A branch's secrets over its life: rotation and revocation, as pure functions (no I/O).

States of a branch record, and the only transitions they make:

    CREATED ---enroll------> ENROLLED       the one-time code is traded for `secret`
    ENROLLED --rotate------> ROTATING       `next_secret` is stored; the branch's next pull,
                                            signed with `secret`, carries it (`rotate_secret`)
    ROTATING --rotate------> ROTATING       unchanged: the branch may already hold next_secret
    ROTATING --a request or
               queue message
               signed with
               next_secret-> ENROLLED       promoted: previous = secret, secret = next, next = none
    any -------revoke------> REVOKED        final: every request is refused, every message
                                            dead-lettered; an outstanding code dies with it

A queue message signed with `previous_secret` was pushed before the branch switched, so it
is still applied, for as long as a queue message can live (7 days) after the promotion.
HTTP requests are never accepted with the previous secret: once the branch has shown it
holds the new one, the old one is useless to whoever copied it.
"""

from dataclasses import replace
from datetime import datetime, timedelta
from enum import StrEnum

from .store import BranchRecord

# Azure Storage Queue keeps a message at most 7 days by default; a message signed with the
# previous secret cannot be older than its promotion plus that.
PREVIOUS_SECRET_GRACE = timedelta(days=7)


class BranchState(StrEnum):
    CREATED = "created"
    ENROLLED = "enrolled"
    ROTATING = "rotating"
    REVOKED = "revoked"


def state_of(record: BranchRecord) -> BranchState:
    if record.revoked_at is not None:
        return BranchState.REVOKED
    if not record.enrolled:
        return BranchState.CREATED
    return BranchState.ROTATING if record.next_secret else BranchState.ENROLLED


def request_secrets(record: BranchRecord) -> list[str]:
    """Secrets an HTTP request may be signed with, current first."""
    return [s for s in (record.secret, record.next_secret) if s]


def message_secrets(record: BranchRecord, now: datetime) -> list[str]:
    """Secrets a queue message may be signed with: also the previous one, while such a message can exist."""
    keys = request_secrets(record)
    if record.previous_secret and record.rotated_at and now - record.rotated_at <= PREVIOUS_SECRET_GRACE:
        keys.append(record.previous_secret)
    return keys


def with_rotation(record: BranchRecord, new_secret: str, now: datetime) -> BranchRecord:
    """The record with a pending next secret; a pending one is kept (the branch may hold it already)."""
    if record.next_secret:
        return record
    return replace(record, next_secret=new_secret, rotation_requested_at=now)


def promoted(record: BranchRecord, now: datetime) -> BranchRecord:
    """The record once the branch has signed with its next secret."""
    return replace(record, previous_secret=record.secret, secret=record.next_secret, next_secret=None,
                   rotated_at=now, rotation_requested_at=None)


def revoked(record: BranchRecord, now: datetime) -> BranchRecord:
    """The record of a revoked branch: no pending secret, no usable enrollment code."""
    if record.revoked_at is not None:
        return record
    return replace(record, revoked_at=now, next_secret=None, rotation_requested_at=None,
                   token_hash=None, token_expires=None)
