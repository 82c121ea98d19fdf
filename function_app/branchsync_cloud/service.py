"""The operations behind the HTTP and queue functions, built from the pure core and the Store.

Handlers parse a request, call one method here and serialise the answer. Input that
breaks the contract raises shared.errors.ContractError; storage trouble raises
store.StoreUnavailable (HTTP 503, or a queue retry).
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pydantic import TypeAdapter, ValidationError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from shared import limits
from shared.encoding import from_queue_text, open_frame, parse_frame, signed_by
from shared.enrollment import encode_code
from shared.errors import ContractError, ErrorCode
from shared.models import (
    DeadLetterDetail,
    DeadLetterInfo,
    DeadLetterList,
    ReplayResult,
    BRANCH_RE,
    AppliedSale,
    BranchCreate,
    BranchCreated,
    BranchInfo,
    BranchList,
    BranchRevocation,
    BranchRotation,
    CatalogCompaction,
    CatalogImport,
    CatalogWriteResult,
    EnrollAnswer,
    EnrollRequest,
    GenerationAck,
    PUSH_WAYS,
    PriceDifferencePage,
    PullAnswer,
    PushAccepted,
    PushRequest,
    PushRoute,
    Refusal,
    Sale,
    SaleKind,
    SalesBatch,
    SalesExportPage,
    Sku,
    sale_number,
)
from shared.signing import HEADER_BRANCH, HEADER_NONCE, HEADER_TIME, new_secret, verify_request

from . import branch_keys, differences, faults, nonces, telemetry
from .apply import Refused, VoidTarget, plan_apply, plan_transactions, void_target
from .catalog import (
    Counter, sku_bucket, build_page, check_unique, needs_full_resync, plan_compaction, plan_delete, plan_import, settled,
)
from .queue_access import SalesQueue, signer_for
from .settings import Settings
from .store import BranchRecord, Chunk, Conflict, DeadLetter, NotFound, Store

log = logging.getLogger("branchsync.cloud")

TOKEN_LIFETIME = timedelta(hours=24)
EXPORT_LIMIT_DEFAULT = 1000
# Optimistic writes that lose a race re-read and re-plan; bounded, then the caller retries
# later (the queue redelivers, an admin sees 503).
CONFLICT_ATTEMPTS = 8
_SKU = TypeAdapter(Sku)
# Refusals of messages that failed before the branch's signature was verified: someone
# else may have sent them, so the branch's till is not told about them.
UNSIGNED_CODES = frozenset({ErrorCode.BAD_SIGNATURE, ErrorCode.UNKNOWN_BRANCH})
# The optional `version` a branch sends with its pull (its branchsync version): logged only.
CLIENT_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,39}")


class ClonedTill(ContractError):
    """A sale number arrived with other contents than the sale applied under it; names that sale."""

    def __init__(self, branch: str, seq: int, sale_id: str, generation: int = 1):
        super().__init__(
            ErrorCode.CLONED_TILL,
            f"sale {sale_number(generation, seq)} of branch {branch} arrived with other contents than the sale "
            "already applied under that number: two PCs are syncing as this branch (a copied database?). Keep the "
            "real till, enroll any other PC as a new branch, then replay or discard this message",
        )
        self.seq, self.sale_id, self.generation = seq, sale_id, generation


class VoidRefused(ContractError):
    """A void the cloud did not count; the rest of its message was applied. Names the void."""

    def __init__(self, branch: str, generation: int, refused: Refused):
        super().__init__(refused.code, f"branch {branch}: {refused.reason}. The rest of the message was applied; "
                         "settle the sale with the shop, then discard this dead letter (replaying it changes nothing)")
        self.seq, self.sale_id, self.generation = refused.seq, refused.sale_id, generation


@dataclass(frozen=True)
class ApplyOutcome:
    status: str  # "applied", "duplicate" (changed nothing) or "dead_lettered"
    branch: str | None
    new_sales: int = 0
    duplicates: int = 0
    applied_through: int = 0
    ops: int = 0
    code: str | None = None
    reason: str | None = None


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _retrying() -> Retrying:
    return Retrying(
        retry=retry_if_exception_type(Conflict), stop=stop_after_attempt(CONFLICT_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.02, max=0.5), reraise=True,
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_admin(settings: Settings, presented: str | None) -> None:
    key = settings.usable_admin_key
    if key is None:
        raise ContractError(ErrorCode.UNAUTHENTICATED, settings.admin_key_problem)
    # Bounded and encoded leniently: a header that is not text (a lone surrogate) is simply wrong.
    if (not presented or len(presented) > limits.AUTH_HEADER_MAX_CHARS
            or not hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), key.encode())):
        raise ContractError(ErrorCode.UNAUTHENTICATED, "admin requests need the header X-Branchsync-Admin-Key with the admin key")


class Service:
    def __init__(self, store: Store, settings: Settings, clock: Callable[[], datetime] = _utcnow, signer=None,
                 sales_queue=None):
        self.store = store
        self.settings = settings
        self.clock = clock
        # Signs the branches' push SAS: the account key locally, a user delegation key in production.
        self._signer = signer
        # Where POST /api/push puts the branches' messages (with the app's own identity).
        self._sales_queue = sales_queue
        # The nonce bucket this instance last purged below: old nonce tables are dropped once an hour.
        self._nonces_purged_at: int | None = None

    @property
    def signer(self):
        if self._signer is None:
            self._signer = signer_for(self.settings.storage_source, self.settings.queue_public_url)
        return self._signer

    @property
    def sales_queue(self):
        if self._sales_queue is None:
            self._sales_queue = SalesQueue(self.settings.storage_source)
        return self._sales_queue

    def _ops(self) -> int:
        return getattr(self.store, "thread_ops", self.store.ops)

    # --- enrollment ----------------------------------------------------------------------

    def create_branch(self, name: str, base_url: str) -> BranchCreated:
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

    # --- pull ----------------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str], method: str, path: str, query: Mapping[str, str], body: bytes) -> BranchRecord:
        name = headers.get(HEADER_BRANCH) or ""
        if not BRANCH_RE.fullmatch(name):
            raise ContractError(ErrorCode.UNAUTHENTICATED, "request names no branch (X-Branchsync-Branch): enroll this branch and sync with branchsync")
        record = self.store.get_branch(name)
        if record is None or not record.enrolled or not record.secret:
            raise ContractError(ErrorCode.UNKNOWN_BRANCH, f"branch {name} is not enrolled at this cloud; ask head office for an enrollment code")
        now = self.clock().timestamp()
        secret = self._verified_with(record, headers, method, path, query, body, now)
        if record.revoked_at is not None:
            raise ContractError(ErrorCode.BRANCH_REVOKED, revoked_message(record))
        self._claim_nonce(name, headers, now)
        if secret == record.next_secret:
            record = self._promote(record, secret)
        return record

    @staticmethod
    def _verified_with(record: BranchRecord, headers, method, path, query, body, now: float) -> str:
        """The secret (current, else the pending next one) the request is signed with."""
        secrets_ = branch_keys.request_secrets(record)
        for i, secret in enumerate(secrets_):
            try:
                verify_request(secret, headers, method, path, query, body, now)
                return secret
            except ContractError as err:
                if err.code != ErrorCode.BAD_SIGNATURE or i == len(secrets_) - 1:
                    raise
        raise AssertionError("unreachable: a branch record always has a secret")

    def _promote(self, record: BranchRecord, secret: str) -> BranchRecord:
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

        changed = _retrying()(attempt)
        log.info("branch secret rotated branch=%s", record.name, extra=_dims(event="secret_rotated", branch=record.name))
        return changed

    def _claim_nonce(self, branch: str, headers: Mapping[str, str], now: float) -> None:
        """Refuse a verified request whose nonce was seen before (a captured request sent again)."""
        self._purge_nonces(now)
        bucket = nonces.hour_bucket(int(headers[HEADER_TIME]))
        if not self.store.claim_nonce(branch, headers[HEADER_NONCE], bucket):
            log.warning("replayed request refused branch=%s", branch, extra=_dims(event="replayed", branch=branch))
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

    def pull(self, headers: Mapping[str, str], method: str, path: str, query: Mapping[str, str], body: bytes = b"") -> PullAnswer:
        branch = self.authenticate(headers, method, path, query, body)
        cursor = int_param(query, "cursor", 0, 0, 2**53)
        limit = int_param(query, "limit", limits.CATALOG_PAGE_MAX, 1, limits.CATALOG_PAGE_MAX)
        pending = int_param(query, "pending", None, 0, 2**53)
        version = client_version_param(query)
        ways = push_ways_param(query)
        now = self.clock()
        state = self.store.get_ledger(branch.name)
        # The counter first: every version up to it is then either read below or superseded.
        counter = self.store.get_catalog_counter().counter
        if needs_full_resync(cursor, counter):
            segments, exhausted = [], True
        else:
            segments, exhausted = self.store.read_catalog(cursor, limit)
            # And again after: a compaction that purged a tombstone while the segments were read
            # raised the horizon in the same write, so this read sees it (see catalog.settled).
            counter = settled(counter, self.store.get_catalog_counter().counter)
        page = build_page(cursor, segments, limit, exhausted, counter)
        push, route = self._push_ways(ways, now)  # before any write: a refusal here stores nothing
        self.store.merge_branch(branch.name, last_pull=now, pending=pending)
        log.info("pull branch=%s cursor=%d entries=%d next=%d more=%s applied_through=%d pending=%s version=%s",
                 branch.name, cursor, len(page.entries), page.next_cursor, page.more, state.apply.applied_through,
                 pending, version or "-",
                 extra=_dims(event="pull", branch=branch.name, cursor=cursor, entries=len(page.entries),
                             applied_through=state.apply.applied_through, pending=pending, client_version=version))
        return PullAnswer(
            branch=branch.name, applied_through=state.apply.applied_through, catalog=page, server_time=now,
            push=push, push_route=route, rotate_secret=branch.next_secret,
            acks=_acks(state),
            last_refusal=Refusal.model_validate_json(branch.last_refusal) if branch.last_refusal else None,
        )

    def _push_ways(self, ways: frozenset[str], now: datetime):
        """(queue SAS or None, push route or None) for this deployment and what the branch can use."""
        route = PUSH_ROUTE if "route" in ways else None
        if self.settings.push_mode == "route":
            if route is None:
                raise ContractError(ErrorCode.BAD_REQUEST, "this cloud takes sales through POST /api/push only, which "
                                    "this branchsync cannot use; install the current branchsync and sync again")
            return None, route
        return self.signer.access(now), route

    def push(self, headers: Mapping[str, str], method: str, path: str, query: Mapping[str, str], body: bytes) -> PushAccepted:
        """POST /api/push: put a branch's own queue messages on the sales queue, as they are.

        The fallback to the queue SAS. The request is signed like a pull; each message must
        be a frame that names this branch (its HMAC and everything else is checked when the
        queue function applies it, exactly once, as for a message the branch queued itself).
        """
        if len(body) > limits.PUSH_ROUTE_MAX_BODY_BYTES:
            raise ContractError(ErrorCode.OVERSIZED_MESSAGE, f"a push is at most {limits.PUSH_ROUTE_MAX_BODY_BYTES} "
                                f"bytes; send at most {limits.PUSH_ROUTE_MAX_MESSAGES} messages per request")
        branch = self.authenticate(headers, method, path, query, body)
        request = PushRequest.model_validate_json(body)
        for i, text in enumerate(request.messages):
            try:
                frame = parse_frame(from_queue_text(text))
            except ContractError as err:
                raise ContractError(err.code, f"message {i + 1} of the push: {err.message}") from None
            if frame.branch != branch.name:
                raise ContractError(ErrorCode.FORBIDDEN, f"message {i + 1} of the push claims branch "
                                    f"{_shown(frame.branch)}; a branch pushes only its own sales")
        self.sales_queue.send(request.messages)
        log.info("push route branch=%s messages=%d bytes=%d", branch.name, len(request.messages), len(body),
                 extra=_dims(event="push_route", branch=branch.name, messages=len(request.messages), bytes=len(body)))
        return PushAccepted(accepted=len(request.messages))

    # --- applying pushed sales -----------------------------------------------------------

    def apply_message(self, body: bytes) -> ApplyOutcome:
        """Apply one queue message exactly once; bad input is dead-lettered, storage errors raise."""
        start = self._ops()
        began = time.monotonic()
        seen: dict[str, BranchRecord | str | None] = {}
        try:
            outcome = self._retry_apply(self._open(body, seen), start, began, body)
        except ContractError as err:
            return self._dead_letter(body, err, seen.get("name"), seen.get("record"), start)
        telemetry.apply_latency(outcome.branch or "", outcome.status, (time.monotonic() - began) * 1000)
        return outcome

    def _open(self, body: bytes, seen: dict) -> SalesBatch:
        """Authenticate and validate a message body; `seen` learns which branch it claimed.

        Any secret the branch may have signed it with counts (branch_keys.message_secrets): a
        message pushed just before a rotation still applies, and one signed with the pending
        secret promotes it. A revoked branch's genuine messages are refused as such.
        """
        frame = _parsed(body)
        record = self.store.get_branch(frame.branch)
        seen["name"], seen["record"] = frame.branch, record
        if record is None or not record.enrolled or not record.secret:
            raise ContractError(ErrorCode.UNKNOWN_BRANCH, f"message from unknown branch {frame.branch}")
        secret = next((k for k in branch_keys.message_secrets(record, self.clock()) if signed_by(frame, k)), None)
        if secret is None:
            raise ContractError(ErrorCode.BAD_SIGNATURE, f"message signature does not match branch {frame.branch}'s secret")
        if record.revoked_at is not None:
            raise ContractError(ErrorCode.BRANCH_REVOKED, f"branch {frame.branch} was revoked by head office on "
                                f"{record.revoked_at:%Y-%m-%d %H:%M} UTC; its messages are not applied (discard this "
                                "one, or keep it as a record of what the revoked till sent)")
        batch = _opened(frame, secret)
        if secret == record.next_secret:
            self._promote(record, secret)
        return batch

    def _retry_apply(self, batch: SalesBatch, start: int, began: float | None = None, body: bytes = b"") -> ApplyOutcome:
        return _retrying()(self._apply_once, batch, start, time.monotonic() if began is None else began, body)

    def _apply_once(self, batch: SalesBatch, start: int, began: float | None = None, body: bytes = b"") -> ApplyOutcome:
        began = time.monotonic() if began is None else began
        gen = batch.generation
        before = self.store.get_ledger(batch.branch)
        mark = before.apply_of(gen)
        new_voids = [s for s in batch.sales if s.kind == SaleKind.VOID and not mark.is_stored(s.seq)]
        targets = self._void_targets(batch.branch, gen, new_voids, before)
        plan = plan_apply(mark, batch, {k: v for k, (v, _) in targets.items()})
        if plan.duplicates:
            self._check_one_till(batch, mark)
        seqs = f"{batch.sales[0].seq}-{batch.sales[-1].seq}"
        if not plan.changed:
            log.info("duplicate batch branch=%s seqs=%s sales=%d applied_through=%d ops=%d generation=%d",
                     batch.branch, seqs, len(batch.sales), mark.applied_through, self._ops() - start, gen)
            return ApplyOutcome("duplicate", batch.branch, 0, plan.duplicates, mark.applied_through, self._ops() - start)
        faults.hit("apply.before_commit", f"{batch.branch}:{seqs}")
        write = plan_transactions(before, plan, {k: chunk for k, (_, chunk) in targets.items()},
                                  pushed_at=batch.sent_at, applied_at=self.clock())
        after = self.store.commit_apply(before, write)
        faults.hit("apply.after_commit", f"{batch.branch}:{seqs}")
        if plan.refused:
            self._report_refused_voids(batch, plan, body)
        through = after.apply_of(gen).applied_through
        ops = self._ops() - start
        applied_at = self.clock()
        duration_ms = round((time.monotonic() - began) * 1000)
        # Lag: from the newest sale's recording at the till to now; offline hours show up here.
        newest = max(s.recorded_at for s in plan.new_sales) if plan.new_sales else applied_at
        lag_s = max(0, round((applied_at - newest).total_seconds()))
        log.info("applied batch branch=%s seqs=%s new=%d duplicates=%d paisa=%d applied_through=%d waiting_ranges=%d "
                 "generation=%d refused_voids=%d ops=%d duration_ms=%d lag_s=%d",
                 batch.branch, seqs, len(plan.new_sales), plan.duplicates, plan.total_paisa,
                 through, len(after.apply_of(gen).ranges), gen, len(plan.refused), ops, duration_ms, lag_s,
                 extra=_dims(event="apply", branch=batch.branch, generation=gen, seq_first=batch.sales[0].seq,
                             seq_last=batch.sales[-1].seq, sales_applied=len(plan.counted), duplicates=plan.duplicates,
                             refused_voids=len(plan.refused), applied_through=through, duration_ms=duration_ms,
                             lag_s=lag_s, ops=ops))
        telemetry.sales_applied(batch.branch, len(plan.counted))
        return ApplyOutcome("applied", batch.branch, len(plan.new_sales), plan.duplicates, through, ops)

    def _void_targets(self, branch: str, generation: int, voids: list[Sale], state) -> dict:
        """{(generation, seq): (VoidTarget, Chunk)} for the stored sales the new voids name.

        One chunk read per distinct chunk named, and only for voids: sales cost no read.
        A target earlier in the same batch, or not stored at all, is left to the planner.
        """
        found: dict = {}
        chunks: list[Chunk] = []
        for void in voids:
            key = void_target(generation, void)
            if key in found or not state.apply_of(key[0]).is_stored(key[1]):
                continue
            chunk = next((c for c in chunks if c.generation == key[0] and c.first_seq <= key[1] <= c.last_seq), None)
            if chunk is None:
                chunk = self.store.find_chunk(branch, *key)
                if chunk is None:
                    continue
                chunks.append(chunk)
            sale = next((s for s in chunk.sales if s.seq == key[1]), None)
            if sale is not None:
                found[key] = (VoidTarget(sale.kind, sale.total, voided=sale.seq in chunk.voided,
                                         refused=sale.seq in chunk.refused), chunk)
        return found

    def _report_refused_voids(self, batch: SalesBatch, plan, body: bytes) -> None:
        """Refused voids are stored (counted nowhere) with the batch; each is also dead-lettered for head office.

        The dead letter keeps the message and the reason; replaying it changes nothing (its
        numbers are applied), so head office reads it, settles the sale with the shop, and
        discards it. The till learns of the latest one on its next pull (`last_refusal`).
        """
        now = self.clock()
        record = self.store.get_branch(batch.branch)
        for refused in plan.refused.values():
            err = VoidRefused(batch.branch, plan.generation, refused)
            self._dead_letter(body, err, batch.branch, record, self._ops())
            log.warning("void refused branch=%s number=%s code=%s", batch.branch,
                        sale_number(plan.generation, refused.seq), refused.code,
                        extra=_dims(event="void_refused", branch=batch.branch, code=str(refused.code)))

    def _check_one_till(self, batch: SalesBatch, mark) -> None:
        """A number already applied must come back as the very same sale (same sale_id).

        A different sale under a stored number of the same generation means two tills share
        one identity, e.g. the branch database was copied to a second PC. Refusing it keeps
        the books from counting both; reading the stored chunks costs a few operations, and
        only on duplicates. (A restore starts a new generation, so it never looks like this.)
        """
        repeated = {s.seq: s.sale_id for s in batch.sales if mark.is_stored(s.seq)}
        lo, hi = min(repeated), max(repeated)
        # A chunk holds at most one batch's run of sales, so the one holding `lo` starts no earlier than this.
        for chunk in self.store.iter_chunks(batch.branch, max(1, lo - limits.BATCH_MAX_SALES + 1), batch.generation):
            if chunk.first_seq > hi:
                return
            for sale in chunk.sales:
                if sale.seq in repeated and repeated[sale.seq] != sale.sale_id:
                    raise ClonedTill(batch.branch, sale.seq, repeated[sale.seq], batch.generation)

    def _dead_letter(self, body: bytes, err: ContractError, name, record, start: int) -> ApplyOutcome:
        now = self.clock()
        letter_id = self.store.add_dead_letter(DeadLetter(received_at=now, code=str(err.code), reason=err.message, raw=body,
                                                          branch=name))
        if isinstance(record, BranchRecord):
            refusal = None
            if err.code not in UNSIGNED_CODES:  # signed with the branch's secret: its till sent it
                generation = getattr(err, "generation", 1)
                refusal = Refusal(at=now, code=str(err.code), reason=err.message, seq=getattr(err, "seq", None),
                                  sale_id=getattr(err, "sale_id", None),
                                  generation=generation if generation != 1 else None).model_dump_json()
            try:
                self.store.merge_branch(record.name, last_error=f"{now:%Y-%m-%dT%H:%M:%SZ} {err.code}: {err.message}",
                                        last_error_at=now, last_refusal=refusal,
                                        last_refusal_letter=letter_id if refusal else None)
            except NotFound:
                pass
        log.warning("dead-lettered message branch=%s code=%s reason=%s bytes=%d", name, err.code, err.message, len(body),
                    extra=_dims(event="dead_letter", branch=name, code=str(err.code), bytes=len(body)))
        telemetry.dead_lettered(str(err.code))
        return ApplyOutcome("dead_lettered", name, ops=self._ops() - start, code=str(err.code), reason=err.message)

    # --- admin: dead letters ---------------------------------------------------------------

    def list_dead_letters(self) -> DeadLetterList:
        return DeadLetterList(dead_letters=[_letter_info(d) for d in self.store.list_dead_letters()])

    def get_dead_letter(self, letter_id: str) -> DeadLetterDetail:
        letter = self._letter(letter_id)
        return DeadLetterDetail(info=_letter_info(letter), raw_base64=base64.b64encode(letter.raw).decode(),
                                summary=describe_message(letter.raw))

    def replay_dead_letter(self, letter_id: str) -> ReplayResult:
        """Apply a dead letter again once its cause is fixed; applying is exactly once, so replays are safe."""
        letter = self._letter(letter_id)
        if letter.truncated:
            raise ContractError(ErrorCode.CONFLICT, f"dead letter {letter_id} was too large to keep whole and cannot be "
                                "replayed; discard it (the branch pushes unacknowledged sales again)")
        start = self._ops()
        try:
            outcome = self._retry_apply(self._open(letter.raw, {}), start, body=letter.raw)
        except ContractError as err:
            self.store.update_dead_letter(letter_id, str(err.code), err.message, letter.replays + 1)
            log.warning("dead letter replay failed id=%s code=%s reason=%s", letter_id, err.code, err.message)
            return ReplayResult(id=letter_id, status="still_failing", code=str(err.code), reason=err.message)
        try:
            self.store.delete_dead_letter(letter_id)
        except NotFound:  # a concurrent replay finished first; the apply above changed nothing twice
            pass
        self._settle_refusal(letter)
        log.info("dead letter replayed id=%s status=%s new=%d", letter_id, outcome.status, outcome.new_sales)
        return ReplayResult(id=letter_id, status=outcome.status, new_sales=outcome.new_sales,
                            applied_through=outcome.applied_through)

    def discard_dead_letter(self, letter_id: str) -> DeadLetterInfo:
        letter = self._letter(letter_id)
        try:
            self.store.delete_dead_letter(letter_id)
        except NotFound:
            raise ContractError(ErrorCode.NOT_FOUND, f"dead letter {letter_id} is already gone") from None
        self._settle_refusal(letter)
        log.info("dead letter discarded id=%s code=%s branch=%s", letter_id, letter.code, letter.branch)
        return _letter_info(letter)

    def _settle_refusal(self, letter: DeadLetter) -> None:
        """Head office dealt with the dead letter its branch's till is told about: stop telling it."""
        record = self.store.get_branch(letter.branch) if letter.branch and BRANCH_RE.fullmatch(letter.branch) else None
        if record is not None and record.last_refusal and record.last_refusal_letter == letter.id:
            try:
                self.store.merge_branch(record.name, last_refusal="")
            except NotFound:
                pass

    def _letter(self, letter_id: str) -> DeadLetter:
        if not _LETTER_ID.fullmatch(letter_id or ""):
            raise ContractError(ErrorCode.BAD_REQUEST, f"{_shown(letter_id)} is not a dead-letter id; "
                                "see 'branchsync-admin deadletter list'")
        letter = self.store.get_dead_letter(letter_id)
        if letter is None:
            raise ContractError(ErrorCode.NOT_FOUND, f"there is no dead letter {letter_id}; see 'branchsync-admin deadletter list'")
        return letter

    # --- admin: rotating and revoking a branch's secret ------------------------------------

    def rotate_branch(self, name: str) -> BranchRotation:
        """Store a pending secret for the branch; its next pull fetches it (see branch_keys)."""

        def attempt() -> BranchRotation:
            record = self._branch(name)
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

        answer = _retrying()(attempt)
        log.info("branch rotation requested branch=%s already_pending=%s", name, answer.already_pending)
        return answer

    def revoke_branch(self, name: str) -> BranchRevocation:
        """Refuse the branch from now on: its requests, its queued messages and its enrollment code."""

        def attempt() -> BranchRevocation:
            record = self._branch(name)
            if record.revoked_at is not None:
                return BranchRevocation(branch=name, revoked_at=record.revoked_at, already_revoked=True)
            changed = branch_keys.revoked(record, self.clock())
            self.store.replace_branch(changed)
            return BranchRevocation(branch=name, revoked_at=changed.revoked_at)

        answer = _retrying()(attempt)
        log.warning("branch revoked branch=%s", name, extra=_dims(event="branch_revoked", branch=name))
        return answer

    def _branch(self, name: str) -> BranchRecord:
        if not BRANCH_RE.fullmatch(name or ""):
            raise ContractError(ErrorCode.BAD_REQUEST, f"{_shown(name)} is not a valid branch name")
        record = self.store.get_branch(name)
        if record is None:
            raise ContractError(ErrorCode.NOT_FOUND, f"branch {name} does not exist; see 'branchsync-admin branches'")
        return record

    # --- admin: branches and sales -------------------------------------------------------

    def list_branches(self) -> BranchList:
        infos = []
        for b in sorted(self.store.list_branches(), key=lambda r: r.name):
            state = self.store.get_ledger(b.name)
            infos.append(BranchInfo(
                branch=b.name, created_at=b.created_at, enrolled=b.enrolled, applied_through=state.apply.applied_through,
                sales_applied=state.sales_applied, total_paisa=state.total_paisa, last_pull=b.last_pull,
                last_push=state.last_push, last_error=b.last_error, rotation_pending=bool(b.next_secret),
                revoked_at=b.revoked_at, acks=_acks(state),
            ))
        return BranchList(branches=infos)

    def export_sales(self, branch: str | None = None, after: str | None = None, limit: int = EXPORT_LIMIT_DEFAULT) -> SalesExportPage:
        """Applied sales in (branch, seq) order, up to each branch's applied_through.

        Only sales at or below applied_through are final (a gap below a stored range may
        still fill), so a consumer resuming from `next` never misses one.
        """
        if not 1 <= limit <= limits.EXPORT_PAGE_MAX:
            raise ContractError(ErrorCode.BAD_REQUEST, f"limit must be from 1 to {limits.EXPORT_PAGE_MAX}")
        if branch is not None:
            self._branch(branch)  # a valid name of an existing branch, else 400 / 404
        resume = _decode_export_token(after) if after else None
        if resume and branch is not None and resume[0] != branch:
            raise ContractError(ErrorCode.BAD_REQUEST, "after belongs to an export of another branch; start again without it")
        names = [branch] if branch is not None else sorted(b.name for b in self.store.list_branches())
        if resume:
            names = [n for n in names if n >= resume[0]]
        out: list[AppliedSale] = []
        last: tuple[str, int, int, int] | None = None
        for name in names:
            state = self.store.get_ledger(name)
            for gen in sorted(state.watermarks):
                if resume and (name, gen) < resume[:2]:
                    continue
                first_chunk, after_seq = (resume[2], resume[3]) if resume and resume[:2] == (name, gen) else (0, 0)
                through = state.apply_of(gen).applied_through
                if after_seq >= through:
                    continue
                for chunk in self.store.iter_chunks(name, first_chunk, gen):
                    if chunk.first_seq > through:
                        break
                    for sale in chunk.sales:
                        if sale.seq <= after_seq or sale.seq in chunk.refused:  # a refused void counts nowhere
                            continue
                        if sale.seq > through:
                            break
                        if len(out) == limit:
                            return SalesExportPage(sales=out, next=_encode_export_token(*last))
                        out.append(AppliedSale(branch=name, generation=gen, sale=sale, applied_at=chunk.applied_at))
                        last = (name, gen, chunk.first_seq, sale.seq)
        return SalesExportPage(sales=out, next=None)

    def price_differences(self, branch: str | None = None, since: str | None = None, after: str | None = None,
                          limit: int = EXPORT_LIMIT_DEFAULT) -> PriceDifferencePage:
        """Applied sale lines the current catalog disagrees with (deleted or unknown SKU, other price).

        Paged like export_sales, `limit` sales examined per page, so a page may hold no
        difference and still carry `next`. Per page: the export's reads, the catalog index
        once, and the segments up to the last current version of a SKU the page sold.
        """
        moment = time_param("since", since)
        page = self.export_sales(branch, after, limit)
        index = differences.merged_index(b.entries for b in self.store.get_catalog_index().values())
        wanted = differences.wanted_versions((line.sku for _, _, line in differences.sold_lines(page.sales, moment)), index)
        products = differences.current_products(self.store.scan_catalog(), wanted) if wanted else {}
        found = differences.price_differences(page.sales, index, products, moment)
        if found:  # the voids of those sales may come in this page or any later one
            voided = self._voided({d.branch: d.seq for d in reversed(found)})
            found = [d for d in found if (d.branch, d.seq) not in voided]
        return PriceDifferencePage(differences=found, next=page.next)

    def _voided(self, first_seq: Mapping[str, int]) -> set[tuple[str, int]]:
        """(branch, seq) of the applied sales voided, per branch from `first_seq` on.

        A void comes after the sale it voids, so one read of the branch's applied sales
        from that seq (its chunk, at most a batch earlier) finds every void of them; only
        the report's pages that list a difference pay for it.
        """
        out: set[tuple[str, int]] = set()
        for branch, lo in first_seq.items():
            through = self.store.get_ledger(branch).apply.applied_through
            for chunk in self.store.iter_chunks(branch, max(1, lo - limits.BATCH_MAX_SALES + 1)):
                if chunk.first_seq > through:
                    break
                out |= {(branch, seq) for seq in differences.voided_seqs(s for s in chunk.sales if s.seq <= through)}
        return out

    # --- admin: catalog ------------------------------------------------------------------

    def import_catalog(self, request: CatalogImport) -> CatalogWriteResult:
        """Write changed products under fresh versions: one transaction, or a few for a large catalog.

        Each transaction carries the counter (If-Match), the new segment(s) and the touched
        index buckets. Unchanged products are skipped, which also makes a retry after a
        lost race continue where the committed transactions stopped.
        """
        products = request.products
        check_unique(products)
        written: list[int] = []

        def attempt() -> int:
            base = self.store.get_catalog_counter()
            buckets = self.store.get_catalog_index({sku_bucket(p.sku) for p in products})
            plan = plan_import(base.counter, products, {n: b.entries for n, b in buckets.items()})
            for txn in plan:
                base, changed = self.store.commit_catalog(base, txn, buckets)
                buckets = {**buckets, **changed}
                written.extend(txn.versions)
            return base.counter.last_version

        last_version = _retrying()(attempt)
        log.info("catalog import products=%d written=%d versions=%s", len(products), len(written),
                 f"{written[0]}-{written[-1]}" if written else "none")
        if not written:
            return CatalogWriteResult(written=0, first_version=last_version, last_version=last_version)
        return CatalogWriteResult(written=len(written), first_version=written[0], last_version=written[-1])

    def delete_sku(self, sku: str) -> CatalogWriteResult:
        try:
            sku = _SKU.validate_python(sku)
        except ValidationError:
            raise ContractError(ErrorCode.BAD_REQUEST, f"{_shown(sku)} is not a valid sku") from None

        def attempt() -> int:
            base = self.store.get_catalog_counter()
            buckets = self.store.get_catalog_index([sku_bucket(sku)])
            txn = plan_delete(base.counter, sku, buckets[sku_bucket(sku)].entries)
            self.store.commit_catalog(base, txn, buckets)
            return txn.counter.last_version

        version = _retrying()(attempt)
        log.info("catalog delete sku=%s version=%d", sku, version)
        return CatalogWriteResult(written=1, first_version=version, last_version=version)

    def purge_tombstones(self, up_to: int | None = None) -> int:
        """Compact the catalog (see compact_catalog); returns how many tombstones were purged."""
        return self.compact_catalog(up_to).purged

    def compact_catalog(self, up_to: int | None = None) -> CatalogCompaction:
        """Drop tombstones older than every live product (and at most `up_to`) and compact.

        Segments are rewritten without superseded entries and purged tombstones, and small
        neighbours merged. The horizon rises in the same transaction that drops a
        tombstone, so a branch is told to resync before it could miss one. Safe to run at
        any time, alongside pulls, imports and another compaction (every write is
        ETag-checked on the counter); the timer function runs it nightly.
        """
        limit = 2**53 if up_to is None else up_to
        purged = 0
        before: tuple[int, int] | None = None  # (segments, entries) as first read
        after = (0, 0)
        counter = Counter()

        def attempt() -> None:
            nonlocal purged, before, after, counter
            base = self.store.get_catalog_counter()  # first: a write after it fails the plan's ETag
            buckets = self.store.get_catalog_index()
            segments = list(self.store.scan_catalog())
            entries = sum(len(seg.rows) for seg in segments)
            before = before or (len(segments), entries)
            plan = plan_compaction(base.counter, {n: b.entries for n, b in buckets.items()}, segments, limit)
            rows = {seg.last_version: len(seg.rows) for seg in segments}
            removed = written = gone = 0
            for txn in plan:
                base, changed = self.store.commit_catalog(base, txn, buckets)
                buckets = {**buckets, **changed}
                purged += txn.purged
                replaced = {*txn.deleted, *(w.segment.last_version for w in txn.rewritten)}
                removed += sum(rows.pop(k, 0) for k in replaced)
                written += sum(len(w.segment.rows) for w in txn.rewritten)
                gone += len(txn.deleted)
            after = (len(segments) - gone, entries - removed + written)
            counter = base.counter

        _retrying()(attempt)
        result = CatalogCompaction(purged=purged, segments_before=before[0], segments_after=after[0],
                                   entries_before=before[1], entries_after=after[1],
                                   last_version=counter.last_version, tombstone_horizon=counter.tombstone_horizon)
        log.info("catalog compaction purged=%d segments=%d->%d entries=%d->%d horizon=%d", purged, before[0],
                 after[0], before[1], after[1], counter.tombstone_horizon,
                 extra=_dims(event="catalog_compaction", purged=purged, entries=after[1], segments=after[0]))
        return result


# --- helpers -------------------------------------------------------------------------------


def _acks(state) -> list[GenerationAck] | None:
    """The watermarks of generation 2 and up (None when the branch was never restored)."""
    return [GenerationAck(generation=g, applied_through=w.applied_through)
            for g, w in sorted(state.watermarks.items()) if g != 1] or None


def _parsed(body: bytes):
    """parse_frame, with anything it raises but a ContractError refused as malformed (see _opened)."""
    try:
        return parse_frame(body)
    except ContractError:
        raise
    except Exception as exc:
        raise _unreadable(exc) from exc


def _opened(frame, secret: str) -> SalesBatch:
    """open_frame, with anything it raises but a ContractError refused as malformed.

    Decoding is pure (no storage), so whatever else escapes it is a defect met on this
    input: the message goes to the dead-letter table with its reason, never to a retry
    loop that ends in the poison queue.
    """
    try:
        return open_frame(frame, secret)
    except ContractError:
        raise
    except Exception as exc:
        raise _unreadable(exc) from exc


def _unreadable(exc: Exception) -> ContractError:
    log.exception("decoding a queue message raised %s", type(exc).__name__)
    return ContractError(ErrorCode.MALFORMED_MESSAGE, f"sales batch could not be read ({type(exc).__name__}); "
                         "keep the dead letter and report it to the developers")


def revoked_message(record: BranchRecord) -> str:
    return (f"head office revoked this till (branch {record.name}) on {record.revoked_at:%Y-%m-%d %H:%M} UTC, so it can "
            "no longer sync. Sales recorded on it stay on this PC; call head office: a PC that should keep selling is "
            "enrolled again as a new branch with a new code")


def int_param(query: Mapping[str, str], name: str, default, lo: int, hi: int):
    """A whole-number query parameter within [lo, hi], or `default` when absent."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    # Length first: int() refuses strings of more than 4,300 digits with a ValueError.
    if len(raw) > limits.INT_PARAM_MAX_DIGITS or not raw.isascii() or not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ContractError(ErrorCode.BAD_REQUEST, f"query parameter {name} must be a whole number from {lo} to {hi}")
    return int(raw)


def time_param(name: str, raw: str | None) -> datetime | None:
    """An optional time query parameter: ISO 8601 with a zone, or a date (midnight UTC)."""
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is not None and len(raw) == 10:  # a bare date
        moment = moment.replace(tzinfo=timezone.utc)
    if moment is None or moment.tzinfo is None:
        raise ContractError(ErrorCode.BAD_REQUEST, f"query parameter {name} must be a date (2026-11-28) or a time "
                            "with a zone (2026-11-28T06:00:00Z)")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:59:59-23:59 is in year 10000 in UTC
        raise ContractError(ErrorCode.BAD_REQUEST, f"query parameter {name} lies outside the years 1 to 9999 once "
                            "converted to UTC; give a time from 0001-01-02 to 9999-12-30") from None


def _shown(value: str, limit: int = 40) -> str:
    """A client's value as quoted in an error: escaped by repr, and shortened so it is never echoed whole."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."


def _dims(**fields) -> dict:
    """Custom dimensions for a log record's `extra=`: absent rather than None (OpenTelemetry drops None)."""
    return {k: v for k, v in fields.items() if v is not None}


PUSH_ROUTE = PushRoute(path="/api/push", max_messages=limits.PUSH_ROUTE_MAX_MESSAGES,
                       max_body_bytes=limits.PUSH_ROUTE_MAX_BODY_BYTES)


def push_ways_param(query: Mapping[str, str]) -> frozenset[str]:
    """The optional `push` of a pull: the ways this branch can push ("queue,route"); the queue if absent."""
    raw = query.get("push")
    if raw is None or raw == "":
        return frozenset({"queue"})
    ways = frozenset(raw.split(","))
    if len(raw) > 40 or not ways <= set(PUSH_WAYS):
        raise ContractError(ErrorCode.BAD_REQUEST, "query parameter push must list ways to push from: "
                            + ", ".join(PUSH_WAYS) + " (e.g. queue,route)")
    return ways


def client_version_param(query: Mapping[str, str]) -> str | None:
    """The optional `version` of a pull: the branch's software version, for the logs only."""
    raw = query.get("version")
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not CLIENT_VERSION_RE.fullmatch(raw):
        raise ContractError(ErrorCode.BAD_REQUEST, "query parameter version must be 1 to 40 characters: letters, "
                            "digits and . + _ - (e.g. 0.3.1), starting with a letter or digit")
    return raw


def _encode_export_token(branch: str, generation: int, chunk_first: int, seq: int) -> str:
    fields = {"b": branch, "c": chunk_first, "s": seq, **({"g": generation} if generation != 1 else {})}
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_export_token(token: str) -> tuple[str, int, int, int]:
    """(branch, generation, chunk, seq); a token without `g` is generation 1, as tokens were before."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        branch, chunk, seq, gen = data["b"], data["c"], data["s"], data.get("g", 1)
        if not (isinstance(branch, str) and BRANCH_RE.fullmatch(branch) and type(chunk) is int and type(seq) is int
                and type(gen) is int and 1 <= gen <= limits.GENERATION_MAX and 0 <= chunk <= seq):
            raise ValueError
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
        raise ContractError(ErrorCode.BAD_REQUEST, "after is not a token this API gave out; pass back `next` exactly, or start without it") from None
    return branch, gen, chunk, seq


_LETTER_ID = re.compile(r"[0-9]{8}-[0-9]{12}-[0-9a-f]{8}")


def _letter_info(d: DeadLetter) -> DeadLetterInfo:
    return DeadLetterInfo(id=d.id, received_at=d.received_at, branch=d.branch, code=d.code, reason=d.reason,
                          size=d.size if d.size is not None else len(d.raw), truncated=d.truncated, replays=d.replays)


def describe_message(raw: bytes) -> str:
    """What an admin can learn from a refused message without trusting it (bounded work)."""
    try:
        frame = parse_frame(raw)
    except ContractError as err:
        return f"not a readable sales batch ({err.message}); {len(raw)} bytes"
    text = f"claims branch {frame.branch}, {len(frame.compressed)} compressed bytes"
    try:
        inflater = zlib.decompressobj()
        data = json.loads(inflater.decompress(frame.compressed, limits.BATCH_MAX_JSON_BYTES))
        seqs = [s["seq"] for s in data["sales"]]
        text += f", {len(seqs)} sales, seq {min(seqs)}-{max(seqs)}"
    except (zlib.error, ValueError, KeyError, TypeError, RecursionError):  # deep nesting exhausts json's recursion
        text += ", body unreadable"
    return text
