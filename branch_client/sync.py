"""The sync engine: pull (catalog and acks), then push (new sales), like git.

States of one engine, and the only transitions it makes:

    IDLE ----run()----> PULLING      take the lock, then pull page after page until `more` is
                                     false; each page, its cursor and the ack are stored in one
                                     transaction (the last page with the cloud's latest refusal),
                                     so an interruption resumes from the cursor.
                                     `full_resync` resets the catalog and pulls again from 0.
    PULLING ----------> PUSHING      pack the unacknowledged sales (never pushed, or pushed
                                     longer than 10 minutes ago) into queue messages; mark the
                                     sales pushed once the queue has accepted their message.
                                     A sale that does not fit in a message even alone (recorded
                                     before sale entry refused such sales) is set aside, never
                                     blocking the ones behind it; the store keeps why (`unsendable`).
    PUSHING ----------> ACKING       with `ack_wait` > 0 and sales pushed: ask the cloud again (a pull
                                     from the stored cursor, whose answer carries the acks) until
                                     every pushed sale is acknowledged or `ack_wait` seconds passed.
                                     The push is done by then: a slow or unreachable cloud only
                                     leaves sales on their way, it never fails the sync.
    PUSHING, ACKING --> IDLE         done: last_error is cleared, last_sync_ok recorded.
    PULLING, PUSHING -> FAILED       any error: last_error is recorded (one line) and the error
                                     is raised; nothing is lost, unpushed sales stay pending.
    FAILED ---run()---> PULLING      the next run starts over (from the stored cursor).

Head office may rotate the branch secret: a pull answer then carries `rotate_secret`. The
engine stores it (atomically replacing the secret file) before it signs anything with it,
then signs every later request and message with it; the cloud makes it current on the first
one it sees. A crash before the file is written just means the next pull brings it again.

A sync holds an exclusive lock (`sync.lock` in the data home, timeout 0; branch_client.lock):
a second sync raises SyncAlreadyRunning at once, naming the process that holds it; a lock
left by a dead or orphaned process is taken over. Progress is reported through a
callback so the CLI can draw it; the engine itself prints nothing. What it reads of the store
before and after a run, and after each acknowledgement ask, comes from the unacknowledged sales
only (Store.sync_position, Store.on_the_way_count), never from status(), which counts every sale.
"""

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from shared import limits
from shared.encoding import Packer
from shared.models import PullAnswer, sale_number

from .cloud_client import CloudClient, PushWay
from .errors import BranchSyncError, CloudBadAnswer
from .identity import Identity
from .lock import SyncLock
from .store import RESEND_AFTER, UNCHANGED, Store, SyncPosition, utcnow


class SyncState(StrEnum):
    IDLE = "idle"
    PULLING = "pulling"
    PUSHING = "pushing"
    ACKING = "acking"
    FAILED = "failed"


TRANSITIONS: dict[SyncState, frozenset[SyncState]] = {
    SyncState.IDLE: frozenset({SyncState.PULLING}),
    SyncState.PULLING: frozenset({SyncState.PUSHING, SyncState.FAILED}),
    SyncState.PUSHING: frozenset({SyncState.ACKING, SyncState.IDLE, SyncState.FAILED}),
    SyncState.ACKING: frozenset({SyncState.IDLE, SyncState.FAILED}),
    SyncState.FAILED: frozenset({SyncState.PULLING}),
}

# Renew the push SAS when it has less than this left.
SAS_MARGIN = timedelta(minutes=2)
# Sales loaded from the store per round of packing: bounds memory on a long backlog, and the
# first message leaves once this many are packed, so the cloud starts applying early (a round
# of 1,000 takes about 0.1 s to read and pack; 5,000 kept the queue empty for half a second).
PUSH_CHUNK = 1_000
# Puts under way at once, each on its own connection: on a mobile link a put's answer takes a
# round trip after its last byte, and one put at a time left the uplink idle for it every
# message (10,000 sales over 1 Mbit/s and 150 ms each way: 0.8 s a message, about 20 s where
# the bytes alone take 12). The queue is unordered anyway; the cloud applies in any order.
PUSH_SENDERS = 2
# Messages handed to the sending threads and not yet accepted, at most: one more than the
# puts under way, so a sender never waits for the next message to be packed.
PUSH_AHEAD_EXTRA = 1
# Catalog pages asked for beyond the one being written, at most (each up to 10,000 products).
PULL_AHEAD = 2
# Waits between the pulls that ask for the acknowledgement after a push: the cloud applies a
# message in well under a second when it is keeping up, so ask soon. Each ask is one pull
# (one ledger read in the cloud). While the asks see sales acknowledged, the cloud is working
# through the push and its last apply comes soon after: the next ask is due when the pace so
# far says the rest will be, and never more than ACK_POLL_BUSY later (a backlog's applies
# speed up once the push stops taking the CPU, so the pace so far is a late guess; at 0.4 s
# the till saw the last of 10,000 sales 0.3 s after it was applied). An ask that sees nothing
# doubles the wait, up to ACK_POLL_MAX: a cloud that is slow to start (a cold instance) is
# asked 9 times in the default 5 s (14 when the longest wait was 0.4 s).
ACK_POLL_FIRST = 0.1
ACK_POLL_BUSY = 0.15
ACK_POLL_MAX = 0.8


def next_ack_pause(pause: float, waited: int, waiting: int, elapsed: float) -> float:
    """The wait before the next ask: `waited` were on their way before the last ask, `waiting` after it, `elapsed` s apart."""
    if 0 < waiting < waited and elapsed > 0:
        pace = (waited - waiting) / elapsed  # sales acknowledged a second
        return min(max(waiting / pace, ACK_POLL_FIRST), ACK_POLL_BUSY)
    return min(pause * 2, ACK_POLL_MAX)


@dataclass(frozen=True)
class Progress:
    state: SyncState
    done: int
    total: int | None
    message: str


@dataclass
class SyncReport:
    pages: int = 0
    entries: int = 0
    full_resync: bool = False
    catalog_version: int = 0
    applied_through: int = 0
    pushed: int = 0
    messages: int = 0
    pending: int = 0        # events not yet acknowledged after this sync (pushed or not)
    acknowledged: int = 0   # events the cloud acknowledged during this sync (at the first pull or after the push)
    on_the_way: int = 0     # events pushed and not yet acknowledged after this sync
    ack_pulls: int = 0      # pulls made after the push to ask for the acknowledgement
    # Sales that cannot be sent because one alone exceeds a queue message: {seq, sale_id, size, reason}.
    unsendable: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class _Fetched:
    answer: PullAnswer
    following: tuple[int, Future] | None  # the next page, asked for from the cursor these bytes named


class SyncEngine:
    def __init__(self, store: Store, client: CloudClient, *, page_limit: int = limits.CATALOG_PAGE_WIDE_MAX,
                 resend_after: timedelta = RESEND_AFTER, clock: Callable[[], datetime] = utcnow,
                 on_progress: Callable[[Progress], None] | None = None, push_chunk: int = PUSH_CHUNK,
                 on_secret: Callable[[str], None] | None = None, ack_wait: float = 0.0, push_senders: int = PUSH_SENDERS,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.client = client
        self.page_limit = page_limit
        self.resend_after = resend_after
        self.clock = clock
        self.on_progress = on_progress or (lambda _p: None)
        self.push_chunk = push_chunk
        self.push_senders = max(1, push_senders)
        # Told about a rotated secret once it is stored (the CLI masks it in the log).
        self.on_secret = on_secret or (lambda _s: None)
        self._secret: str | None = None
        # Seconds to wait after a push for its acknowledgement (0: do not wait).
        self.ack_wait = max(0.0, ack_wait)
        self.sleep = sleep
        self.monotonic = monotonic
        self.state = SyncState.IDLE
        self._cursor = 0
        self._access: PushWay | None = None
        # Compressed bytes per JSON character of the last message packed: the next packer's first guess.
        self._ratio: float | None = None
        self._marker: ThreadPoolExecutor | None = None
        self._writing = 0  # the page of the pull being written (pages ahead are counted from it)
        self._marks: list[Future] = []

    def run(self) -> SyncReport:
        with SyncLock(self.store.home, "sync"):
            return self._run()

    def _move(self, new: SyncState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"sync cannot go from {self.state} to {new}")
        self.state = new

    def _run(self) -> SyncReport:
        report = SyncReport()
        self._move(SyncState.PULLING)
        try:
            identity = self.store.identity()
            self._secret = identity.secret
            start = self.store.sync_position()
            self._pull(report, start)
            self._move(SyncState.PUSHING)
            self._push(identity, report)
            if self.ack_wait and report.pushed:
                self._move(SyncState.ACKING)
                self._await_acks(report)
            self.store.record_sync_ok(self.clock())
            self._move(SyncState.IDLE)
        except BaseException as exc:
            self._move(SyncState.FAILED)
            try:
                code = exc.code if isinstance(exc, BranchSyncError) else None
                self.store.record_error(_describe(exc), self.clock(), code=code)
            except Exception:  # the original error matters more than the failure to record it
                pass
            raise
        end = self.store.sync_position()
        report.pending, report.on_the_way = end.pending, end.on_the_way
        report.acknowledged = max(0, end.applied_through - start.applied_through)
        self._emit(SyncState.IDLE, report.pushed, report.pushed, "sync done")
        return report

    # --- pull ------------------------------------------------------------------------------------

    def _pull(self, report: SyncReport, start: SyncPosition) -> None:
        self._cursor = start.catalog_cursor
        pending = start.pending
        resynced = False
        self._emit(SyncState.PULLING, 0, None, f"pulling catalog after version {self._cursor}")
        # The next page is fetched while this one is written to SQLite: on a long pull the
        # cloud's answer and the local write take about as long as each other (see _fetch).
        with ThreadPoolExecutor(max_workers=PULL_AHEAD, thread_name_prefix="pull-ahead") as ahead:
            if pending:
                self.client.warm_push()
            coming: Future | None = None
            index = 0
            while True:
                self._writing = index
                fetched = coming.result() if coming is not None else self._fetch(
                    ahead, self._cursor, self._first_page_limit(), pending, index)
                coming = None
                answer = fetched.answer
                self._adopt(answer)  # before the next request is signed
                page = answer.catalog
                if page.full_resync:
                    if resynced or self._cursor == 0:
                        raise CloudBadAnswer("the cloud keeps asking for a full catalog resync; report this to head office")
                    self.store.reset_catalog()
                    resynced = report.full_resync = True
                    self._cursor = 0
                    self._emit(SyncState.PULLING, report.pages, None, "catalog too old: pulling it again in full")
                    continue
                if page.more and page.next_cursor <= self._cursor:
                    raise CloudBadAnswer(f"the cloud's catalog cursor did not advance past {self._cursor}; "
                                         "report this to head office")
                if page.more:
                    asked, following = fetched.following or (None, None)
                    if asked == page.next_cursor:
                        coming = following
                    else:  # asked ahead from a cursor the validated page does not name (or not at all)
                        if following is not None:
                            following.cancel()
                        coming = ahead.submit(self._fetch, ahead, page.next_cursor, self.page_limit, pending, index + 1)
                # The last page keeps the answer's refusal in its own commit.
                refusal = UNCHANGED if page.more else answer.last_refusal
                try:
                    report.entries += self.store.apply_catalog_page(page, answer.applied_through, self.clock(), _acks(answer),
                                                                    refusal)
                except BaseException:
                    if coming is not None:
                        coming.cancel()
                    raise
                report.pages += 1
                index += 1
                self._cursor = report.catalog_version = page.next_cursor
                report.applied_through = answer.applied_through
                self._access = PushWay.of(answer)
                self._emit(SyncState.PULLING, report.pages, None,
                           f"catalog at version {self._cursor}, {report.entries} changes")
                if not page.more:
                    return

    def _fetch(self, ahead: ThreadPoolExecutor, cursor: int, limit: int, pending: int, index: int) -> "_Fetched":
        """Page `index` of this pull, from `cursor`, validated.

        Once its bytes are in and name a page after it, that page is asked for before this one
        is validated, so the cloud builds it meanwhile (validating a page of 10,000 takes the
        till about as long as the cloud takes to build one), while no more than PULL_AHEAD
        pages are beyond the one being written. The cursor asked from is checked against the
        validated page before that answer is used; a rotated secret stops asking ahead.
        """
        reply = self.client.fetch_pull(cursor, limit, pending)
        following = None
        after = reply.next_cursor()
        if after is not None and after > cursor and index + 1 <= self._writing + PULL_AHEAD:
            following = (after, ahead.submit(self._fetch, ahead, after, self.page_limit, pending, index + 1))
        return _Fetched(reply.answer(), following)

    def _first_page_limit(self) -> int:
        """A pull from 0 (a new till, a full resync) asks for a page of 1,000 first: the till starts
        writing after one tenth of the cloud's work for a wide page, and the pages after it come
        while it writes. From a cursor (a price day) one wide page is often the whole pull."""
        return min(self.page_limit, limits.CATALOG_PAGE_MAX) if self._cursor == 0 else self.page_limit

    def _await_acks(self, report: SyncReport) -> None:
        """Pull again until what was pushed is acknowledged or `ack_wait` has passed; never raises for the cloud."""
        deadline = self.monotonic() + self.ack_wait
        pause = ACK_POLL_FIRST
        waiting = self._on_the_way()
        asked = self.monotonic()
        self._emit(SyncState.ACKING, 0, None, f"waiting up to {self.ack_wait:g} s for the acknowledgement")
        while waiting and (left := deadline - self.monotonic()) > 0:
            self.sleep(min(pause, left))
            try:
                answer = self.client.pull(self._cursor, self.page_limit, waiting)
            except BranchSyncError as exc:  # the sales are on the queue; the next sync asks again
                self._emit(SyncState.ACKING, 0, None, f"could not ask for the acknowledgement: {exc}")
                return
            report.ack_pulls += 1
            self._adopt(answer)
            if not answer.catalog.full_resync:  # catalog news on the way in is kept; a resync waits for the next sync
                report.entries += self.store.apply_catalog_page(answer.catalog, answer.applied_through, self.clock(),
                                                                _acks(answer))
                self._cursor = report.catalog_version = answer.catalog.next_cursor
                report.applied_through = answer.applied_through
            waited, waiting, before = waiting, self._on_the_way(), asked
            asked = self.monotonic()
            pause = next_ack_pause(pause, waited, waiting, asked - before)
            self._emit(SyncState.ACKING, 0, None, f"{waiting} still on their way")

    def _on_the_way(self) -> int:
        """Pushed and not yet acknowledged (a sale not sent, e.g. set aside, is not waited for)."""
        return self.store.on_the_way_count()

    def _fresh_access(self) -> PushWay:
        """The way to push from the pull (a SAS is renewed by one more pull when it is about to expire)."""
        if self._access is None or self._access.expires_at - SAS_MARGIN <= self.clock():
            answer: PullAnswer = self.client.pull(self._cursor, self.page_limit, self.store.pending_count())
            self._adopt(answer)
            if not answer.catalog.full_resync:  # the next sync deals with a resync
                self.store.apply_catalog_page(answer.catalog, answer.applied_through, self.clock(), _acks(answer))
                self._cursor = answer.catalog.next_cursor
            self._access = PushWay.of(answer)
        return self._access

    def _adopt(self, answer: PullAnswer) -> None:
        """Take up a rotated secret: stored first, then used, so nothing is ever signed with an unsaved one."""
        secret = answer.rotate_secret
        if not secret or secret == self._secret:
            return
        self.store.save_secret(secret)
        self.client.use_secret(secret)
        self._secret = secret
        try:
            self.on_secret(secret)
        except Exception:  # masking in the log must never break a sync
            pass
        self._emit(SyncState.PULLING, 0, None, "head office rotated this branch's secret: the new one is stored")

    # --- push ------------------------------------------------------------------------------------

    def _push(self, identity: Identity, report: SyncReport) -> None:
        started = self.clock()
        due = self.store.due_counts(started, self.resend_after)
        total = sum(due.values())
        self._emit(SyncState.PUSHING, 0, total, f"{total} sales to push" if total else "nothing to push")
        # A restored till may still owe sales of an earlier generation: each goes in its own messages.
        for generation in due:
            self._push_generation(identity, generation, started, total, report)

    def _push_generation(self, identity: Identity, generation: int, started: datetime, total: int,
                         report: SyncReport) -> None:
        after = 0
        # One packer for the generation: the events of a round fill up what the round before left
        # part-filled, so a long backlog travels in as few messages as if it were packed at once
        # (the cloud applies them one by one). The stored JSON is sent as it is (Store.events_to_push).
        packer = Packer(identity.branch, self._secret, self.clock, generation=generation, ratio=self._ratio,
                        set_aside=True)
        # Messages are put on the queue by sending threads (`push_senders` puts at once) while
        # the next ones are read and packed. Their sales are marked pushed once the queue has
        # accepted them, by another thread, in one commit for what was accepted since the last
        # (a commit per message kept the sender from its next put about as long as the put
        # itself; SQLite and the sockets wait without the GIL, so they overlap). After a refused
        # put no message not yet started is sent (they stay pending); what the queue accepted,
        # a put under way beside the refused one included, is marked.
        failed = threading.Event()
        sending: deque[Future] = deque()
        accepted: list[int] = []  # seqs the queue accepted, not yet handed to the marking thread
        try:
            with (ThreadPoolExecutor(max_workers=1, thread_name_prefix="mark-behind") as self._marker,
                  ThreadPoolExecutor(max_workers=self.push_senders, thread_name_prefix="push-behind") as behind):
                try:
                    while True:
                        todo = self.store.events_to_push(started, self.resend_after, limit=self.push_chunk,
                                                         after_seq=after, generation=generation)
                        after = todo[-1].seq if todo else after
                        packer.secret = self._secret  # a pull for a fresh SAS may have brought a rotated one
                        messages = packer.add(todo) if todo else packer.finish()
                        self._set_aside(packer, report, generation)
                        for chunk, text in self._with_their_sales(identity.branch, messages, generation):
                            sending.append(behind.submit(self._send, self._fresh_access(), chunk, text, failed))
                            while len(sending) > self.push_senders + PUSH_AHEAD_EXTRA or (sending and sending[0].done()):
                                accepted += self._sent(sending.popleft().result(), report, total)
                        self._mark(accepted, generation)
                        if not todo:
                            break
                    while sending:
                        accepted += self._sent(sending.popleft().result(), report, total)
                except BaseException:
                    failed.set()
                    raise
                finally:  # waits for the puts under way: what the queue took is marked, even after a failure
                    accepted += [seq for f in sending if not f.cancelled() and f.exception() is None for seq in f.result()]
                    self._mark(accepted, generation)
        finally:
            marks, self._marks = self._marks, []
        for mark in marks:  # a failed mark fails the push (the sales stay due: sent again, applied once)
            mark.result()
        self._ratio = packer.ratio
        # Every due sale was looked at: what is set aside now is all that is (the list is replaced).
        self.store.save_unsendable(report.unsendable)

    def _send(self, access: PushWay, chunk: list, text: str, failed: threading.Event) -> list[int]:
        if failed.is_set():
            raise BranchSyncError("push stopped after an earlier message was refused")
        try:
            self.client.push(access, text)
        except BaseException:
            failed.set()
            raise
        return [e.seq for e in chunk]

    def _sent(self, seqs: list[int], report: SyncReport, total: int) -> list[int]:
        report.pushed += len(seqs)
        report.messages += 1
        self._emit(SyncState.PUSHING, report.pushed, max(total, report.pushed),
                   f"pushed {report.pushed} of {max(total, report.pushed)} sales")
        return seqs

    def _mark(self, accepted: list[int], generation: int) -> None:
        if accepted:
            self._marks.append(self._marker.submit(self.store.mark_pushed, list(accepted), self.clock(), generation))
            accepted.clear()

    def _with_their_sales(self, branch: str, messages: list, generation: int) -> list:
        """Messages whose voids and refunds each travel with the sale they refer to, or after the
        cloud acknowledged it.

        Packing may cut a void or refund from its sale (the message is full, or the two are of
        different record versions: a v3 refund of a v1 sale); such an event is left for the
        next sync (by then the sale is acknowledged), since the cloud refuses a void or refund
        of a sale it does not hold.
        """
        def waits_here(e) -> int | None:  # the seq of a sale of this generation it refers to
            target = e.refers_to
            return target[1] if target is not None and (target[0] or generation) == generation else None

        out = []
        for chunk, text in messages:
            here = {e.seq for e in chunk}
            named = {t for e in chunk if (t := waits_here(e)) is not None and t not in here}
            acked = self.store.acknowledged(generation, named) if named else set()
            keep = [e for e in chunk if (t := waits_here(e)) is None or t in here or t in acked]
            if len(keep) == len(chunk):
                out.append((chunk, text))
            elif keep:
                again = Packer(branch, self._secret, self.clock, generation=generation, ratio=self._ratio)
                out += again.add(keep) + again.finish()
        return out

    def _set_aside(self, packer: Packer, report: SyncReport, generation: int) -> None:
        """Report the sales the packer set aside: too large for a message even alone."""
        budget = limits.QUEUE_MESSAGE_BUDGET_CHARS
        for event, size in packer.aside:
            body = json.loads(event.json)
            number = sale_number(generation, event.seq)
            report.unsendable.append({
                "seq": event.seq, "sale_id": body["sale_id"], "size": size,
                "reason": f"sale {number} ({len(body['lines'])} items) is {size} characters as a queue "
                          f"message, more than the {budget} one message can carry, so it cannot be sent"})
            self._emit(SyncState.PUSHING, report.pushed, None, f"sale {number} is too large to send: set aside")
        packer.aside.clear()

    def _emit(self, state: SyncState, done: int, total: int | None, message: str) -> None:
        try:
            self.on_progress(Progress(state, done, total, message))
        except Exception:  # a display problem must never break a sync
            pass


def _acks(answer: PullAnswer) -> dict[int, int]:
    return {a.generation: a.applied_through for a in answer.acks or ()}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BranchSyncError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "sync was interrupted"
    return f"{type(exc).__name__}: {exc}"
