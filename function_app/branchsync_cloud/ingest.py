"""Sales coming in: the push route, applying a queue message exactly once, and its dead letters.

To change how a pushed batch is applied, read this module's `Ingest.apply_message`, then
apply.py (the pure plan, cut into transactions by `plan_transactions`) and table_store.py
(`commit_apply`, each planned transaction as entities and requests).
Bad input is dead-lettered with its reason and the branch's till is told (`last_refusal`
on its next pull) when the branch signed it; storage errors raise, so the queue retries.
"""

import base64
import json
import logging
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from shared import limits
from shared.encoding import from_queue_text, open_frame, parse_frame, signed_by
from shared.errors import ContractError, ErrorCode, shown
from shared.models import (
    BRANCH_RE, DeadLetterDetail, DeadLetterInfo, DeadLetterList, PushAccepted, PushRequest, Refusal, ReplayResult, Sale,
    SaleKind, SalesBatch, sale_number,
)

from . import branch_keys, faults, telemetry
from .apply import (
    REFERRING_KINDS, ApplyPlan, ReferencedSale, Refused, SummaryInput, merge_batches, plan_apply, plan_transactions,
    void_target,
)
from .conflicts import retrying, together
from .request_auth import RequestAuth, SignedRequest
from .store import BranchLedger, BranchRecord, Chunk, DeadLetter, NotFound, Store
from .summaries import DEFAULT_ZONE, days_of
from .telemetry import dims

log = logging.getLogger("branchsync.cloud")

# Refusals of messages that failed before the branch's signature was verified: someone
# else may have sent them, so the branch's till is not told about them.
UNSIGNED_CODES = frozenset({ErrorCode.BAD_SIGNATURE, ErrorCode.UNKNOWN_BRANCH})
_LETTER_ID = re.compile(r"[0-9]{8}-[0-9]{12}-[0-9a-f]{8}")


# --- typed refusals ------------------------------------------------------------------------


class SaleRefused(ContractError):
    """A refusal that names one sale of the branch's till, so the till can say which."""

    def __init__(self, code: ErrorCode, message: str, generation: int, seq: int, sale_id: str):
        super().__init__(code, message)
        self.generation, self.seq, self.sale_id = generation, seq, sale_id


class ClonedTill(SaleRefused):
    """A sale number arrived with other contents than the sale applied under it; names that sale."""

    def __init__(self, branch: str, seq: int, sale_id: str, generation: int = 1):
        super().__init__(
            ErrorCode.CLONED_TILL,
            f"sale {sale_number(generation, seq)} of branch {branch} arrived with other contents than the sale "
            "already applied under that number: two PCs are syncing as this branch (a copied database?). Keep the "
            "real till, enroll any other PC as a new branch, then replay or discard this message",
            generation, seq, sale_id,
        )


class VoidRefused(SaleRefused):
    """A void or refund the cloud did not count; the rest of its message was applied. Names it."""

    def __init__(self, branch: str, generation: int, refused: Refused):
        super().__init__(refused.code, f"branch {branch}: {refused.reason}. The rest of the message was applied; "
                         "settle the sale with the shop, then discard this dead letter (replaying it changes nothing)",
                         generation, refused.seq, refused.sale_id)


class RefusedMessage(Exception):
    """A queue message that is not applied: why, and the branch it claims once its frame was read."""

    def __init__(self, error: ContractError, branch: str | None = None, record: BranchRecord | None = None,
                 spent: int | None = None):
        super().__init__(error.message)
        self.error, self.branch, self.record = error, branch, record
        # Storage operations spent on it in its branch's turn and opening it, which may have run
        # on another thread; None: everything spent on it ran on this thread.
        self.spent = spent


@dataclass(frozen=True)
class _Opened:
    """A message opened and validated, waiting for its branch's turn."""

    record: BranchRecord
    batch: SalesBatch
    body: bytes
    compressed: bytes  # the zlib JSON of `batch` as it came (signed, opened and validated)
    opened_ops: int  # storage operations opening it took (its branch record)
    began: float  # time.monotonic() when its apply began


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


class Ingest:
    def __init__(self, store: Store, clock: Callable[[], datetime], auth: RequestAuth, sales_queue: Callable[[], object],
                 zone: ZoneInfo = ZoneInfo(DEFAULT_ZONE)):
        self.store = store
        self.zone = zone  # the business day of the summaries
        self.clock = clock
        self.auth = auth
        # Where POST /api/push puts the branches' messages; built on first use (the app's own identity).
        self._sales_queue = sales_queue

    def _ops(self) -> int:
        """Storage operations this thread has issued: an apply's own count, whatever else runs meanwhile."""
        return self.store.thread_ops

    # --- the push route ------------------------------------------------------------------

    def push(self, request: SignedRequest) -> PushAccepted:
        """POST /api/push: put a branch's own queue messages on the sales queue, as they are.

        The fallback to the queue SAS. The request is signed like a pull; each message must
        be a frame that names this branch (its HMAC and everything else is checked when the
        queue function applies it, exactly once, as for a message the branch queued itself).
        """
        body = request.body
        if len(body) > limits.PUSH_ROUTE_MAX_BODY_BYTES:
            raise ContractError(ErrorCode.OVERSIZED_MESSAGE, f"a push is at most {limits.PUSH_ROUTE_MAX_BODY_BYTES} "
                                f"bytes; send at most {limits.PUSH_ROUTE_MAX_MESSAGES} messages per request")
        branch = self.auth.authenticate(request)
        pushed = PushRequest.model_validate_json(body)
        for i, text in enumerate(pushed.messages):
            try:
                frame = parse_frame(from_queue_text(text))
            except ContractError as err:
                raise ContractError(err.code, f"message {i + 1} of the push: {err.message}") from None
            if frame.branch != branch.name:
                raise ContractError(ErrorCode.FORBIDDEN, f"message {i + 1} of the push claims branch "
                                    f"{shown(frame.branch)}; a branch pushes only its own sales")
        self._sales_queue().send(pushed.messages)
        log.info("push route branch=%s messages=%d bytes=%d", branch.name, len(pushed.messages), len(body),
                 extra=dims(event="push_route", branch=branch.name, messages=len(pushed.messages), bytes=len(body)))
        return PushAccepted(accepted=len(pushed.messages))

    # --- applying a queue message --------------------------------------------------------

    def apply_message(self, body: bytes) -> ApplyOutcome:
        """Apply one queue message exactly once; bad input is dead-lettered, storage errors raise."""
        start = self._ops()
        began = time.monotonic()
        try:
            outcome = self._open_and_apply(body, start, began)
        except RefusedMessage as refused:
            return self._dead_letter(body, refused, start)
        telemetry.apply_latency(outcome.branch or "", outcome.status, (time.monotonic() - began) * 1000)
        return outcome

    def _open_and_apply(self, body: bytes, start: int, began: float) -> ApplyOutcome:
        """Open the message and apply it in its branch's turn; RefusedMessage if it cannot be.

        Opening (signature, decompressing, validating) runs outside the turn. The thread
        whose turn it is applies every message of the branch opened meanwhile with its own
        (conflicts.together): one ledger read, one fold of each day, one commit for them all.
        """
        record, batch, compressed = self._open(body)
        opened = _Opened(record, batch, body, compressed, self._ops() - start, began)
        try:
            return together(batch.branch, opened, self._apply_turn)
        except RefusedMessage as refused:  # refused in the turn
            refused.spent += opened.opened_ops
            raise

    def _apply_turn(self, items: list["_Opened"]) -> list["ApplyOutcome | RefusedMessage"]:
        """Apply the messages of one branch's turn; one result per message, in order."""
        start = self._ops()
        if len(items) > 1 and (merged := merge_batches([i.batch for i in items])) is not None:
            try:
                return retrying()(self._apply_once, start, items, *merged)
            except ContractError:
                pass  # one of them is refused: apply each alone, so only that one is dead-lettered
        # The operations of a failed attempt together are counted on the first message.
        return [self._apply_alone(item, start if i == 0 else self._ops()) for i, item in enumerate(items)]

    def _apply_alone(self, item: "_Opened", start: int) -> "ApplyOutcome | RefusedMessage":
        try:
            return retrying()(self._apply_once, start, [item], item.batch)[0]
        except ContractError as err:
            return RefusedMessage(err, item.batch.branch, item.record, spent=self._ops() - start)

    def _open(self, body: bytes) -> tuple[BranchRecord, SalesBatch, bytes]:
        """Authenticate and validate a message body: the branch's record, the batch and its zlib JSON as it came.

        Any secret the branch may have signed it with counts (branch_keys.message_secrets): a
        message pushed just before a rotation still applies, and one signed with the pending
        secret promotes it. A revoked branch's genuine messages are refused as such.
        """
        try:
            frame = _parsed(body)
        except ContractError as err:
            raise RefusedMessage(err) from err
        record = self._branch_record(frame.branch)
        try:
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
                self.auth.promote(record, secret)
        except ContractError as err:
            raise RefusedMessage(err, frame.branch, record) from err
        return record, batch, frame.compressed

    def _branch_record(self, name: str) -> BranchRecord | None:
        """The branch's record, read after this call began; messages of one branch opened at once share the read.

        `together` hands the read to the first caller whose turn comes and gives its result to
        every caller queued before it started, so each message still sees the record as it
        was after it arrived (a rotation or a revocation as soon as before), and a batch of
        16 messages of one backlog costs a read or two instead of 16. Nothing is cached.
        The record is shared between those callers: promote() and the rest replace it, never
        change it. (The key cannot be a branch's turn: ':' is not in a branch name.)
        """
        return together(f"record:{name}", None, lambda callers: [self.store.get_branch(name)] * len(callers))

    def _apply_once(self, turn_start: int, items: list["_Opened"], batch: SalesBatch,
                    ends: frozenset[int] = frozenset()) -> list[ApplyOutcome]:
        """Plan and commit `batch` (one message's, or several merged: `ends`); an outcome per message.

        `turn_start`: this thread's storage operations before the first attempt (a lost race re-plans).
        """
        gen = batch.generation
        # The ledger and the day summaries the batch may touch, in one query.
        before, days = self.store.get_ledger_and_days(batch.branch, min(days_of(batch.sales, self.zone)))
        mark = before.apply_of(gen)
        new_voids = [s for s in batch.sales if s.kind in REFERRING_KINDS and not mark.is_stored(s.seq)]
        targets = self._void_targets(batch.branch, gen, new_voids, before)
        plan = plan_apply(mark, batch, {k: v for k, (v, _) in targets.items()}, ends)
        if plan.duplicates:
            self._check_one_till(batch, mark)
        seqs = f"{batch.sales[0].seq}-{batch.sales[-1].seq}"
        after = before
        if plan.changed:
            as_sent = {(i.batch.sales[0].seq, i.batch.sales[-1].seq): i.compressed for i in items}
            after = self._commit(before, plan, batch, {k: chunk for k, (_, chunk) in targets.items()}, seqs, days,
                                 as_sent)
            if plan.refused:
                self._report_refused_voids(items, plan)
        through = after.apply_of(gen).applied_through
        turn_ops = self._ops() - turn_start
        new_seqs = {s.seq for s in plan.new_sales}
        outcomes = []
        for i, item in enumerate(items):
            # The turn's own operations are counted on its first message, so they add up once.
            ops = item.opened_ops + (turn_ops if i == 0 else 0)
            outcomes.append(self._outcome(item, new_seqs, plan, through, after, ops, len(items)))
        return outcomes

    def _outcome(self, item: "_Opened", new_seqs: set[int], plan: ApplyPlan, through: int, after: BranchLedger,
                 ops: int, together: int) -> ApplyOutcome:
        """One message's share of a planned apply, logged as before (`together`: messages applied in its turn)."""
        batch, gen = item.batch, item.batch.generation
        seqs = f"{batch.sales[0].seq}-{batch.sales[-1].seq}"
        new = [s for s in batch.sales if s.seq in new_seqs]
        duplicates = len(batch.sales) - len(new)
        if not new:
            log.info("duplicate batch branch=%s seqs=%s sales=%d applied_through=%d ops=%d generation=%d",
                     batch.branch, seqs, len(batch.sales), through, ops, gen)
            return ApplyOutcome("duplicate", batch.branch, 0, duplicates, through, ops)
        counted = [s for s in new if s.seq not in plan.refused]
        sales_counted = sum(1 for s in counted if s.kind != SaleKind.SHIFT_CLOSE)
        refused = sum(1 for s in new if s.seq in plan.refused)
        applied_at = self.clock()
        duration_ms = round((time.monotonic() - item.began) * 1000)
        # Lag: from the newest sale's recording at the till to now; offline hours show up here.
        newest = max(s.recorded_at for s in new)
        lag_s = max(0, round((applied_at - newest).total_seconds()))
        log.info("applied batch branch=%s seqs=%s new=%d duplicates=%d paisa=%d applied_through=%d waiting_ranges=%d "
                 "generation=%d refused_voids=%d together=%d ops=%d duration_ms=%d lag_s=%d",
                 batch.branch, seqs, len(new), duplicates, sum(s.total for s in counted),
                 through, len(after.apply_of(gen).ranges), gen, refused, together, ops, duration_ms, lag_s,
                 extra=dims(event="apply", branch=batch.branch, generation=gen, seq_first=batch.sales[0].seq,
                            seq_last=batch.sales[-1].seq, sales_applied=sales_counted, duplicates=duplicates,
                            refused_voids=refused, applied_through=through, duration_ms=duration_ms,
                            lag_s=lag_s, ops=ops, together=together))
        telemetry.sales_applied(batch.branch, sales_counted)
        return ApplyOutcome("applied", batch.branch, len(new), duplicates, through, ops)

    def _commit(self, before: BranchLedger, plan: ApplyPlan, batch: SalesBatch, targets: dict[tuple[int, int], Chunk],
                seqs: str, days: dict, as_sent: dict[tuple[int, int], bytes]) -> BranchLedger:
        """The one place a plan reaches storage (between the failpoints the fault suite fires).

        The summaries of the days the plan's events fall on (`days`, read with the ledger) are
        written with the sales and the ledger, If-Match as read.
        """
        faults.hit("apply.before_commit", f"{batch.branch}:{seqs}")
        wanted = days_of(plan.counted, self.zone)
        stored = {day: summary for day, summary in days.items() if day in wanted}
        originals = {(c.generation, s.seq): s for c in targets.values() for s in c.sales}
        summaries = SummaryInput(stored, originals, self.zone)
        write = plan_transactions(before, plan, targets, pushed_at=batch.sent_at, applied_at=self.clock(),
                                  summaries=summaries, as_sent=as_sent)
        after = self.store.commit_apply(before, write)
        faults.hit("apply.after_commit", f"{batch.branch}:{seqs}")
        return after

    def _void_targets(self, branch: str, generation: int, voids: list[Sale], state: BranchLedger) -> dict:
        """{(generation, seq): (ReferencedSale, Chunk)} for the stored sales the new voids and refunds name.

        One chunk read per distinct chunk named, and only for voids and refunds: sales cost no read.
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
                found[key] = (ReferencedSale.of(sale, voided=sale.seq in chunk.voided, refused=sale.seq in chunk.refused,
                                                refunded=chunk.refunded.get(sale.seq)), chunk)
        return found

    def _report_refused_voids(self, items: list["_Opened"], plan: ApplyPlan) -> None:
        """Refused voids and refunds are stored (counted nowhere) with the batch; each is also dead-lettered for head office.

        The dead letter keeps the message and the reason; replaying it changes nothing (its
        numbers are applied), so head office reads it, settles the sale with the shop, and
        discards it. The till learns of the latest one on its next pull (`last_refusal`).
        """
        branch = items[0].batch.branch
        record = self.store.get_branch(branch)
        for refused in plan.refused.values():
            # The dead letter keeps the message that carried the refused event.
            body = next(i.body for i in items if i.batch.sales[0].seq <= refused.seq <= i.batch.sales[-1].seq)
            err = VoidRefused(branch, plan.generation, refused)
            self._dead_letter(body, RefusedMessage(err, branch, record), self._ops())
            log.warning("%s refused branch=%s number=%s code=%s", refused.kind, branch,
                        sale_number(plan.generation, refused.seq), refused.code,
                        extra=dims(event=f"{refused.kind}_refused", branch=branch, code=str(refused.code)))

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

    def _dead_letter(self, body: bytes, refused: RefusedMessage, start: int) -> ApplyOutcome:
        """Keep a refused message with its reason; `start`: this thread's operations when it began (see `spent`)."""
        if refused.spent is not None:
            start = self._ops() - refused.spent
        err, name, record = refused.error, refused.branch, refused.record
        now = self.clock()
        letter_id = self.store.add_dead_letter(DeadLetter(received_at=now, code=str(err.code), reason=err.message, raw=body,
                                                          branch=name))
        if record is not None:
            refusal = None
            if err.code not in UNSIGNED_CODES:  # signed with the branch's secret: its till sent it
                named = err if isinstance(err, SaleRefused) else None  # the till can say which sale
                refusal = Refusal(at=now, code=str(err.code), reason=err.message,
                                  seq=named.seq if named else None, sale_id=named.sale_id if named else None,
                                  generation=named.generation if named and named.generation != 1 else None,
                                  ).model_dump_json()
            try:
                self.store.merge_branch(record.name, last_error=f"{now:%Y-%m-%dT%H:%M:%SZ} {err.code}: {err.message}",
                                        last_error_at=now, last_refusal=refusal,
                                        last_refusal_letter=letter_id if refusal else None)
            except NotFound:
                pass
        log.warning("dead-lettered message branch=%s code=%s reason=%s bytes=%d", name, err.code, err.message, len(body),
                    extra=dims(event="dead_letter", branch=name, code=str(err.code), bytes=len(body)))
        telemetry.dead_lettered(str(err.code))
        return ApplyOutcome("dead_lettered", name, ops=self._ops() - start, code=str(err.code), reason=err.message)

    # --- head office's dead letters ------------------------------------------------------

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
        try:
            outcome = self._open_and_apply(letter.raw, self._ops(), time.monotonic())
        except RefusedMessage as refused:
            err = refused.error
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
            raise ContractError(ErrorCode.BAD_REQUEST, f"{shown(letter_id)} is not a dead-letter id; "
                                "see 'branchsync-admin deadletter list'")
        letter = self.store.get_dead_letter(letter_id)
        if letter is None:
            raise ContractError(ErrorCode.NOT_FOUND, f"there is no dead letter {letter_id}; see 'branchsync-admin deadletter list'")
        return letter


# --- reading a message without trusting it ---------------------------------------------------


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
