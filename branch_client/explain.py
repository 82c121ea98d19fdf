"""Why a sale is not acknowledged yet, and what happens next: in words for the shop (no I/O)."""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.errors import ErrorCode

from .status import LastRefusal, UnsendableSale
from .store import SaleRecord, SaleState

# Pushed this often without an acknowledgement, a sale is refused rather than slow.
REFUSED_AFTER_PUSHES = 3
# Refusals of one void event: the rest of its message was counted.
VOID_CODES = frozenset({ErrorCode.VOID_UNKNOWN_SALE, ErrorCode.VOID_TWICE, ErrorCode.VOID_WRONG_TOTAL})


@dataclass(frozen=True)
class Explanation:
    seq: int
    state: str
    why: str
    next: str
    number: str = ""  # as printed on the receipt: 14, or 2-14 after a restore


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    if minutes < 120:
        return f"{minutes} minutes"
    hours = minutes // 60
    return f"{hours} hours" if hours < 48 else f"{hours // 24} days"


def refusal_advice(refusal: LastRefusal, branch: str | None) -> str:
    """What the shop should do about a refusal the cloud reported on the last pull."""
    if refusal.code == ErrorCode.CLONED_TILL:
        if refusal.this_till is False:
            return (f"another PC is syncing as branch {branch or '?'} with a copy of this till's data; find it, stop "
                    "selling on it and have head office enroll it as a new branch. This till's sales are counted")
        return ("if this PC's data was copied from another till, stop selling on it and ask head office for a new "
                "branch code ('branchsync enroll --force CODE'); head office then replays or discards the refused "
                "sales ('branchsync-admin deadletter list')")
    if refusal.code in VOID_CODES:
        number = refusal.number or refusal.seq or "?"
        return (f"the cloud did not count void {number}, so head office's takings still include the sale it names "
                "(the other sales were counted). Check the receipts: if the sale really was voided only once, "
                "nothing is wrong and head office discards the dead letter; otherwise tell head office which sale "
                f"to correct ('branchsync-admin deadletter list', branch {branch or '?'})")
    return (f"ask head office to look at the dead letters of branch {branch or '?'} "
            "('branchsync-admin deadletter list') and replay or discard them; run 'branchsync doctor'")


def describe_refusal(refusal: LastRefusal, branch: str | None) -> str:
    """One sentence for `status`: whose sales were refused, why, and what to do."""
    whose = "another PC syncing as this branch" if refusal.this_till is False else "this till"
    if refusal.code in VOID_CODES:
        return (f"the cloud refused a void from {whose} ({refusal.at}): {refusal.reason}. "
                f"What to do: {refusal_advice(refusal, branch)}")
    return (f"the cloud refused sales from {whose} ({refusal.at}): {refusal.reason}. "
            f"What to do: {refusal_advice(refusal, branch)}")


UNSENDABLE_ADVICE = ("it stays on this PC and the sales after it are sent and counted; tell head office its number "
                     "and total so they can account for it by hand")


def explain(record: SaleRecord, now: datetime, *, branch: str | None, last_error: str | None,
            resend_after: timedelta, refusal: LastRefusal | None = None, unsendable: UnsendableSale | None = None) -> Explanation:
    return replace(_explain(record, now, branch=branch, last_error=last_error, resend_after=resend_after,
                            refusal=refusal, unsendable=unsendable), number=record.number)


def _explain(record: SaleRecord, now: datetime, *, branch: str | None, last_error: str | None,
             resend_after: timedelta, refusal: LastRefusal | None = None, unsendable: UnsendableSale | None = None) -> Explanation:
    seq = record.sale.seq
    if unsendable is not None:  # the push set it aside: no sync will ever send it
        return Explanation(seq, "not sendable", unsendable.reason, UNSENDABLE_ADVICE)
    if refusal is not None and refusal.this_till is not False and refusal.code not in VOID_CODES:
        return Explanation(seq, record.state.value, f"the cloud refused sales from this till: {refusal.reason}",
                           f"What to do: {refusal_advice(refusal, branch)}")
    if record.state == SaleState.PENDING:
        if last_error:
            return Explanation(seq, "pending", f"not pushed yet: the last sync failed ({last_error})",
                               "the next sync pushes it; run 'branchsync doctor' if the error repeats")
        return Explanation(seq, "pending", "recorded since the last sync", "the next sync pushes it")
    pushed_at = datetime.fromisoformat(record.pushed_at)
    age = now - pushed_at
    if record.push_count >= REFUSED_AFTER_PUSHES and age >= resend_after:
        return Explanation(
            seq, "pushed",
            f"pushed {record.push_count} times, last {_ago(age)} ago, and never acknowledged: "
            "the cloud is refusing it (or a sale before it)",
            f"it is pushed again on every sync and counted once when it gets through; ask head office to "
            f"check the dead letters of branch {branch or '?'} (branchsync-admin deadletter list)",
        )
    if age < resend_after:
        return Explanation(seq, "pushed", f"pushed {_ago(age)} ago; the cloud applies it within moments",
                           "the next sync's pull acknowledges it")
    return Explanation(seq, "pushed", f"pushed {_ago(age)} ago and not acknowledged yet",
                       "the next sync pushes it again; the cloud counts it once")
