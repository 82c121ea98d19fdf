"""When the till's background sync runs: after each sale, one at a time, coalesced, and
backing off while head office cannot be reached.

Pure: the caller passes the time (seconds on a monotonic clock) and says how each sync
ended; this decides whether one starts now, later or not at all. Many sales during one
sync give one more sync after it, not one per sale; a sync that could not reach the cloud
is retried after a growing pause (15 s up to 5 min), whatever the cashier sells meanwhile.
The cashier's "sync now" key skips the pause but never starts a second sync.
"""

from dataclasses import dataclass
from enum import Enum

BACKOFF = (15.0, 30.0, 60.0, 120.0, 300.0)
# Another process holds the sync lock (the scheduled sync): it may have pushed before this
# sale committed, so look again soon.
BUSY_RETRY = 10.0


class Outcome(Enum):
    DONE = "done"
    UNREACHABLE = "unreachable"  # no network, the cloud down: nothing is lost, try later
    BUSY = "busy"  # the scheduled sync holds the lock
    FAILED = "failed"  # the cloud refused or answered badly: retrying per sale will not help


@dataclass
class PushPlan:
    running: bool = False
    again: bool = False  # something recorded (or left unsent) since the running or last sync began
    failures: int = 0
    retry_at: float | None = None
    last: Outcome | None = None

    def sale_recorded(self, now: float) -> bool:
        """A sale or void committed; True: start a sync now."""
        if self.running or (self.retry_at is not None and now < self.retry_at):
            self.again = True
            return False
        return self._start()

    def sync_now(self) -> bool:
        """The cashier asked; True: start a sync now (never a second one at once)."""
        return False if self.running else self._start()

    def due(self, now: float) -> bool:
        """A deferred sync whose pause is over; True: start it now."""
        if self.running or not self.again or (self.retry_at is not None and now < self.retry_at):
            return False
        return self._start()

    def wake_at(self) -> float | None:
        """When `due` may next say True (None: nothing waits)."""
        return None if self.running or not self.again else (self.retry_at or 0.0)

    def finished(self, now: float, outcome: Outcome) -> bool:
        """The running sync ended; True: start the next one now."""
        self.running, self.last = False, outcome
        if outcome is Outcome.DONE:
            self.failures, self.retry_at = 0, None
            return self._start() if self.again else False
        if outcome is Outcome.BUSY:
            self.retry_at = now + BUSY_RETRY
        else:
            self.failures += 1
            self.retry_at = now + BACKOFF[min(self.failures, len(BACKOFF)) - 1]
        self.again = True  # what this sync did not send is still waiting
        return False

    def retry_in(self, now: float) -> int | None:
        """Whole seconds until the next try after a failed or blocked sync (None: none planned)."""
        if self.running or self.retry_at is None or self.last is Outcome.DONE:
            return None
        return max(0, int(self.retry_at - now + 0.999))

    def _start(self) -> bool:
        self.running, self.again = True, False
        return True


@dataclass(frozen=True)
class Note:
    """How a sync ended, for the status line: a code the page words in its language, the
    numbers it needs, and the English text for logs and the command line."""

    code: str                  # "pushed", "done", "unreachable", "busy" or "failed"
    text: str
    count: int | None = None   # "pushed": how many sales went
    error: str | None = None   # "failed", "unreachable": the error's code (branch_client.errors, ErrorCode)


def describe(plan: PushPlan, note: Note | None, now: float) -> dict | None:
    """The status line for the last sync's `note` and what happens next: {"code", "text"} and
    the numbers ("count", "retry_in" seconds, "error" code) its words need."""
    if plan.running:
        return {"code": "sending", "text": "sending sales to head office"}
    if plan.last is Outcome.UNREACHABLE:
        wait = plan.retry_in(now)
        return {"code": "unreachable", "retry_in": wait,
                "text": f"head office cannot be reached: sales are kept safely on this till and sent on their own "
                        f"when it can be reached (next try in {wait} s)"}
    if note is None:
        return None
    shown = {"code": note.code, "text": note.text}
    if note.count is not None:
        shown["count"] = note.count
    if note.error is not None:
        shown["error"] = note.error
    wait = plan.retry_in(now)
    if wait is not None and note.text:
        shown.update(retry_in=wait, text=f"{note.text} (next try in {wait} s)")
    return shown
