"""Head office's branches: create one, enroll it with its code, rotate or revoke its secret, list them.

Every change to a branch record is ETag-checked (store.replace_branch); the secret's
life is branch_keys.py.
"""

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from shared.enrollment import encode_code
from shared.errors import ContractError, ErrorCode, shown
from shared.models import (
    BRANCH_RE, BranchCreate, BranchCreated, BranchInfo, BranchList, BranchRevocation, BranchRotation, EnrollAnswer,
    EnrollRequest, GenerationAck,
)
from shared.signing import new_secret

from . import branch_keys
from .conflicts import retrying
from .store import BranchLedger, BranchRecord, Conflict, Store
from .telemetry import dims

log = logging.getLogger("branchsync.cloud")

TOKEN_LIFETIME = timedelta(hours=24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def acks_of(ledger: BranchLedger) -> list[GenerationAck] | None:
    """The watermarks of generation 2 and up (None when the branch was never restored)."""
    return [GenerationAck(generation=g, applied_through=w.applied_through)
            for g, w in sorted(ledger.watermarks.items()) if g != 1] or None


def existing_branch(store: Store, name: str) -> BranchRecord:
    """The record of an admin request's branch: a valid name (else 400) of a branch that exists (else 404)."""
    if not BRANCH_RE.fullmatch(name or ""):
        raise ContractError(ErrorCode.BAD_REQUEST, f"{shown(name)} is not a valid branch name")
    record = store.get_branch(name)
    if record is None:
        raise ContractError(ErrorCode.NOT_FOUND, f"branch {name} does not exist; see 'branchsync-admin branches'")
    return record


class Branches:
    def __init__(self, store: Store, clock: Callable[[], datetime]):
        self.store = store
        self.clock = clock

    def create(self, name: str, base_url: str) -> BranchCreated:
        name = BranchCreate(name=name).name
        now = self.clock()
        token = secrets.token_urlsafe(32)
        record = BranchRecord(name=name, created_at=now, token_hash=token_hash(token), token_expires=now + TOKEN_LIFETIME)
        # The (idempotent) state row first: a failure in between leaves no branch without one.
        self.store.init_ledger(name)
        try:
            self.store.create_branch(record)
        except Conflict:
            raise ContractError(ErrorCode.CONFLICT, f"branch {name} already exists; choose another name") from None
        log.info("branch created branch=%s", name)
        return BranchCreated(branch=name, enrollment_code=encode_code(base_url, token), expires_at=record.token_expires)

    def enroll(self, request: EnrollRequest) -> EnrollAnswer:
        record = self.store.find_branch_by_token_hash(token_hash(request.token))
        invalid = "this enrollment code is unknown or was already used; ask head office for a new code"
        if record is None or record.enrolled:
            raise ContractError(ErrorCode.ENROLLMENT_INVALID, invalid)
        if record.token_expires is None or record.token_expires <= self.clock():
            raise ContractError(ErrorCode.ENROLLMENT_INVALID, "this enrollment code has expired (codes last 24 hours); ask head office for a new code")
        record.enrolled, record.secret, record.token_hash, record.token_expires = True, new_secret(), None, None
        try:
            self.store.replace_branch(record)  # ETag-checked: of two racing enrollments one wins
        except Conflict:
            raise ContractError(ErrorCode.ENROLLMENT_INVALID, invalid) from None
        log.info("branch enrolled branch=%s", record.name)
        return EnrollAnswer(branch=record.name, secret=record.secret)

    def rotate(self, name: str) -> BranchRotation:
        """Store a pending secret for the branch; its next pull fetches it (see branch_keys)."""

        def attempt() -> BranchRotation:
            record = existing_branch(self.store, name)
            state = branch_keys.state_of(record)
            if state == branch_keys.BranchState.REVOKED:
                raise ContractError(ErrorCode.CONFLICT, f"branch {name} is revoked; a revoked branch gets no new secret")
            if state == branch_keys.BranchState.CREATED:
                raise ContractError(ErrorCode.CONFLICT, f"branch {name} has not enrolled yet, so it has no secret to "
                                    "rotate; its enrollment code hands out a fresh one")
            if state == branch_keys.BranchState.ROTATING:
                return BranchRotation(branch=name, requested_at=record.rotation_requested_at or self.clock(),
                                      already_pending=True)
            changed = branch_keys.with_rotation(record, new_secret(), self.clock())
            self.store.replace_branch(changed)  # ETag-checked: a promotion or revocation meanwhile re-plans
            return BranchRotation(branch=name, requested_at=changed.rotation_requested_at)

        answer = retrying()(attempt)
        log.info("branch rotation requested branch=%s already_pending=%s", name, answer.already_pending)
        return answer

    def revoke(self, name: str) -> BranchRevocation:
        """Refuse the branch from now on: its requests, its queued messages and its enrollment code."""

        def attempt() -> BranchRevocation:
            record = existing_branch(self.store, name)
            if record.revoked_at is not None:
                return BranchRevocation(branch=name, revoked_at=record.revoked_at, already_revoked=True)
            changed = branch_keys.revoked(record, self.clock())
            self.store.replace_branch(changed)
            return BranchRevocation(branch=name, revoked_at=changed.revoked_at)

        answer = retrying()(attempt)
        log.warning("branch revoked branch=%s", name, extra=dims(event="branch_revoked", branch=name))
        return answer

    def list_all(self) -> BranchList:
        infos = []
        for b in sorted(self.store.list_branches(), key=lambda r: r.name):
            state = self.store.get_ledger(b.name)
            infos.append(BranchInfo(
                branch=b.name, created_at=b.created_at, enrolled=b.enrolled, applied_through=state.apply.applied_through,
                sales_applied=state.sales_applied, total_paisa=state.total_paisa, last_pull=b.last_pull,
                last_push=state.last_push, last_error=b.last_error, rotation_pending=bool(b.next_secret),
                revoked_at=b.revoked_at, acks=acks_of(state),
            ))
        return BranchList(branches=infos)
