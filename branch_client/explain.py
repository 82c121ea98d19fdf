"""Why a sale is not acknowledged yet, and what happens next: in words for the shop (no I/O)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from .store import SaleRecord, SaleState

# Pushed this often without an acknowledgement, a sale is refused rather than slow.
REFUSED_AFTER_PUSHES = 3


@dataclass(frozen=True)
class Explanation:
    seq: int
    state: str
    why: str
    next: str


def _ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    if minutes < 120:
        return f"{minutes} minutes"
    hours = minutes // 60
    return f"{hours} hours" if hours < 48 else f"{hours // 24} days"


def refusal_advice(refusal: dict, branch: str | None) -> str:
    """What the shop should do about a refusal the cloud reported on the last pull."""
    if refusal["code"] == "cloned_till":
        if refusal.get("this_till") is False:
            return (f"another PC is syncing as branch {branch or '?'} with a copy of this till's data; find it, stop "
                    "selling on it and have head office enroll it as a new branch. This till's sales are counted")
        return ("if this PC's data was copied from another till, stop selling on it and ask head office for a new "
                "branch code ('branchsync enroll --force CODE'); head office then replays or discards the refused "
                "sales ('branchsync-admin deadletter list')")
    return (f"ask head office to look at the dead letters of branch {branch or '?'} "
            "('branchsync-admin deadletter list') and replay or discard them; run 'branchsync doctor'")


def describe_refusal(refusal: dict, branch: str | None) -> str:
    """One sentence for `status`: whose sales were refused, why, and what to do."""
    whose = "another PC syncing as this branch" if refusal.get("this_till") is False else "this till"
    return (f"the cloud refused sales from {whose} ({refusal['at']}): {refusal['reason']}. "
            f"What to do: {refusal_advice(refusal, branch)}")


UNSENDABLE_ADVICE = ("it stays on this PC and the sales after it are sent and counted; tell head office its number "
                     "and total so they can account for it by hand")


def explain(record: SaleRecord, now: datetime, *, branch: str | None, last_error: str | None,
            resend_after: timedelta, refusal: dict | None = None, unsendable: dict | None = None) -> Explanation:
    seq = record.sale.seq
    if unsendable is not None:  # the push set it aside: no sync will ever send it
        return Explanation(seq, "not sendable", unsendable["reason"], UNSENDABLE_ADVICE)
    if refusal is not None and refusal.get("this_till") is not False:
        return Explanation(seq, record.state.value, f"the cloud refused sales from this till: {refusal['reason']}",
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
