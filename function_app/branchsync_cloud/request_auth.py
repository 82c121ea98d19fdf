"""Who sent a request: a branch's signed request (signature, revocation, nonce), or head office
(the admin key, or a person's named credential: people.py).

The HTTP adapter reads the signature headers into a `SignedRequest`; `RequestAuth`
answers with the branch's record, or raises ContractError (401/403). A request signed
with the branch's pending secret promotes that secret (branch_keys), as does a queue
message (ingest.py calls `promote`).
"""

import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from shared import limits
from shared.access import BOOTSTRAP_NAME, VIA_ADMIN_KEY, Role, credential_parts
from shared.errors import ContractError, ErrorCode
from shared.models import BRANCH_RE
from shared.signing import verify_signature

from . import branch_keys, nonces
from .conflicts import retrying
from .roles import Principal
from .settings import Settings
from .store import BranchRecord, Conflict, Store
from .telemetry import dims

log = logging.getLogger("branchsync.cloud")


@dataclass(frozen=True)
class SignedRequest:
    """A branch's request as signed: its signature headers' values as sent ("" when absent)."""

    branch: str
    timestamp: str
    nonce: str
    signature: str
    method: str
    path: str
    query: Mapping[str, str]
    body: bytes = b""


def check_admin(settings: Settings, presented: str | None) -> None:
    key = settings.usable_admin_key
    if key is None:
        raise ContractError(ErrorCode.UNAUTHENTICATED, settings.admin_key_problem)
    # Bounded and encoded leniently: a header that is not text (a lone surrogate) is simply wrong.
    if (not presented or len(presented) > limits.AUTH_HEADER_MAX_CHARS
            or not hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), key.encode())):
        raise ContractError(ErrorCode.UNAUTHENTICATED, "admin requests need the header X-Branchsync-Admin-Key with "
                            "the admin key or a head-office credential")


def head_office_principal(settings: Settings, presented: str | None, recognise: Callable[[str], Principal]) -> Principal:
    """Who a head-office request comes from: a named credential (`recognise` looks it up: people.py)
    or the deployment's admin key, the bootstrap administrator. 401 otherwise."""
    if presented and len(presented) <= limits.AUTH_HEADER_MAX_CHARS and credential_parts(presented) is not None:
        return recognise(presented)
    check_admin(settings, presented)
    return Principal(BOOTSTRAP_NAME, frozenset({Role.ADMIN}), VIA_ADMIN_KEY)


def revoked_message(record: BranchRecord) -> str:
    return (f"head office revoked this till (branch {record.name}) on {record.revoked_at:%Y-%m-%d %H:%M} UTC, so it can "
            "no longer sync. Sales recorded on it stay on this PC; call head office: a PC that should keep selling is "
            "enrolled again as a new branch with a new code")


class RequestAuth:
    def __init__(self, store: Store, clock: Callable[[], datetime]):
        self.store = store
        self.clock = clock
        # The nonce bucket this instance last purged below: old nonce tables are dropped once an hour.
        self._nonces_purged_at: int | None = None

    def authenticate(self, request: SignedRequest) -> BranchRecord:
        name = request.branch
        if not BRANCH_RE.fullmatch(name):
            raise ContractError(ErrorCode.UNAUTHENTICATED, "request names no branch (X-Branchsync-Branch): enroll this branch and sync with branchsync")
        record = self.store.get_branch(name)
        if record is None or not record.enrolled or not record.secret:
            raise ContractError(ErrorCode.UNKNOWN_BRANCH, f"branch {name} is not enrolled at this cloud; ask head office for an enrollment code")
        now = self.clock().timestamp()
        secret = self._verified_with(record, request, now)
        if record.revoked_at is not None:
            raise ContractError(ErrorCode.BRANCH_REVOKED, revoked_message(record))
        self._claim_nonce(request, now)
        if secret == record.next_secret:
            record = self.promote(record, secret)
        return record

    @staticmethod
    def _verified_with(record: BranchRecord, request: SignedRequest, now: float) -> str:
        """The secret (current, else the pending next one) the request is signed with."""
        secrets_ = branch_keys.request_secrets(record)
        for i, secret in enumerate(secrets_):
            try:
                verify_signature(secret, request.timestamp, request.nonce, request.signature, request.method,
                                 request.path, request.query, request.body, now)
                return secret
            except ContractError as err:
                if err.code != ErrorCode.BAD_SIGNATURE or i == len(secrets_) - 1:
                    raise
        raise AssertionError("unreachable: a branch record always has a secret")

    def promote(self, record: BranchRecord, secret: str) -> BranchRecord:
        """The branch signed with its pending secret: make it the current one (ETag-checked)."""
        held = [record]

        def attempt() -> BranchRecord:
            current = held[0]
            if current.secret == secret:  # a concurrent request or message promoted it first
                return current
            if current.next_secret != secret:
                raise ContractError(ErrorCode.BAD_SIGNATURE, f"branch {record.name}'s secret changed meanwhile; sync again")
            changed = branch_keys.promoted(current, self.clock())
            try:
                self.store.replace_branch(changed)
            except Conflict:
                held[0] = self.store.get_branch(record.name) or current
                raise
            return changed

        changed = retrying()(attempt)
        log.info("branch secret rotated branch=%s", record.name, extra=dims(event="secret_rotated", branch=record.name))
        return changed

    def _claim_nonce(self, request: SignedRequest, now: float) -> None:
        """Refuse a verified request whose nonce was seen before (a captured request sent again)."""
        self._purge_nonces(now)
        bucket = nonces.hour_bucket(int(request.timestamp))
        if not self.store.claim_nonce(request.branch, request.nonce, bucket):
            log.warning("replayed request refused branch=%s", request.branch, extra=dims(event="replayed", branch=request.branch))
            raise ContractError(ErrorCode.REPLAYED, "this signed request was already received once and is refused as a "
                                "replay; branchsync signs every request afresh, so just sync again (if this keeps "
                                "happening, something between this PC and the cloud is resending requests)")

    def _purge_nonces(self, now: float) -> None:
        """Drop nonce tables no request can fall in any more; at most once an hour per instance."""
        current = nonces.hour_bucket(int(now))
        if self._nonces_purged_at == current:
            return
        self._nonces_purged_at = current
        for bucket in nonces.stale_buckets(self.store.nonce_buckets(), now):
            self.store.drop_nonce_bucket(bucket)
            log.info("dropped nonce table bucket=%d", bucket)
