"""A branch's pull: a page of the catalog, its acks (watermarks), how to push, and what it must know.

The HTTP adapter authenticates the request (request_auth.py) and parses its parameters
into a `PullQuery`; nothing here reads a header or a query string.
"""

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared import limits
from shared.errors import ContractError, ErrorCode
from shared.models import PullAnswer, PushRoute, Refusal

from .branches import acks_of
from .catalog import PageRows, needs_full_resync, page_rows, settled
from .queue_access import signer_for
from .settings import Settings
from .store import BranchRecord, Store
from .telemetry import dims

log = logging.getLogger("branchsync.cloud")

# A branch's last-pull time is written again when it is at least this old (or `pending` changed).
LAST_PULL_REFRESH = timedelta(seconds=60)

# The branch's ledger is read, and its last pull recorded, on threads of this pool while the
# catalog is read: none of them depends on another, so every pull (each acknowledgement ask
# is nothing more) waits for one round trip to storage where it waited for two or three.
_BESIDE = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pull-beside")

PUSH_ROUTE = PushRoute(path="/api/push", max_messages=limits.PUSH_ROUTE_MAX_MESSAGES,
                       max_body_bytes=limits.PUSH_ROUTE_MAX_BODY_BYTES)


@dataclass(frozen=True)
class PullQuery:
    cursor: int = 0  # the last catalog version the branch holds
    limit: int = limits.CATALOG_PAGE_MAX  # at most this many catalog entries (up to CATALOG_PAGE_WIDE_MAX)
    pending: int | None = None  # sales waiting at the till, as it reports them
    version: str | None = None  # the branch's branchsync version: logged only
    ways: frozenset[str] = frozenset({"queue"})  # the ways this branch can push


@dataclass(frozen=True)
class PullReply:
    """A pull's answer, its catalog entries kept as the rows read until it is encoded.

    `json()` writes the answer with the rows' stored form spliced in as its entries: a page
    of 10,000 products becomes JSON without a model per product (building and serializing
    those was most of a page's CPU time). `answer()` is the same answer as a model.
    """

    shell: PullAnswer  # the answer with its catalog's entries left out
    page: PageRows

    def answer(self) -> PullAnswer:
        return self.shell.model_copy(update={"catalog": self.page.page()})

    def json(self) -> str:
        text = self.shell.model_dump_json()
        # The branch name comes first and holds no quote, so this is the catalog's one "entries".
        head, found, tail = text.partition(_EMPTY_ENTRIES)
        if not found:
            raise AssertionError("a pull answer's JSON starts with its branch, applied_through and catalog")
        return f'{head}"catalog":{{"entries":{self.page.entries_json()}{tail}'


_EMPTY_ENTRIES = '"catalog":{"entries":[]'


class Pulls:
    def __init__(self, store: Store, settings: Settings, clock: Callable[[], datetime], signer=None):
        self.store = store
        self.settings = settings
        self.clock = clock
        # Signs the branches' push SAS: the account key locally, a user delegation key in production.
        self._signer = signer

    @property
    def signer(self):
        if self._signer is None:
            self._signer = signer_for(self.settings.storage_source, self.settings.queue_public_url)
        return self._signer

    def pull(self, branch: BranchRecord, query: PullQuery) -> PullReply:
        cursor, limit, pending, version = query.cursor, query.limit, query.pending, query.version
        now = self.clock()
        push, route = self._push_ways(query.ways, now)  # before any write: a refusal here stores nothing
        ledger = _BESIDE.submit(self.store.get_ledger, branch.name)
        # What the till reported when it asked: true whatever the reads below then find.
        recorded = (_BESIDE.submit(self.store.merge_branch, branch.name, last_pull=now, pending=pending)
                    if self._worth_recording(branch, now, pending) else None)
        try:
            # The counter first: every version up to it is then either read below or superseded.
            counter = self.store.get_catalog_counter().counter
            if needs_full_resync(cursor, counter) or cursor == counter.last_version:
                # Up to date (most pulls: a sync with no catalog news, every acknowledgement ask):
                # no version above the cursor was issued when the counter was read, so there is
                # nothing to read, and no tombstone the page could skip.
                segments, exhausted = [], True
            else:
                segments, exhausted = self.store.read_catalog(cursor, limit)
                # And again after: a compaction that purged a tombstone while the segments were read
                # raised the horizon in the same write, so this read sees it (see catalog.settled).
                counter = settled(counter, self.store.get_catalog_counter().counter)
        finally:
            state = ledger.result()  # its error and the record's, if any, after this thread's
            if recorded is not None:
                recorded.result()
        page = page_rows(cursor, segments, limit, exhausted, counter)
        log.info("pull branch=%s cursor=%d entries=%d next=%d more=%s applied_through=%d pending=%s version=%s",
                 branch.name, cursor, len(page.rows), page.next_cursor, page.more, state.apply.applied_through,
                 pending, version or "-",
                 extra=dims(event="pull", branch=branch.name, cursor=cursor, entries=len(page.rows),
                            applied_through=state.apply.applied_through, pending=pending, client_version=version))
        answer = PullAnswer(
            branch=branch.name, applied_through=state.apply.applied_through, catalog=page.page(entries=False),
            server_time=now, push=push, push_route=route, rotate_secret=branch.next_secret,
            acks=acks_of(state),
            last_refusal=Refusal.model_validate_json(branch.last_refusal) if branch.last_refusal else None,
        )
        return PullReply(answer, page)

    @staticmethod
    def _worth_recording(branch: BranchRecord, now: datetime, pending: int | None) -> bool:
        """Whether this pull changes what the branch record says of its last pull.

        The pages of one sync (and its acknowledgement polls while nothing changes) come within
        seconds of each other with the same `pending`: writing each one's time is a storage
        operation per page that tells head office nothing new. An older time is only ever
        more cautious (reports.complete_through counts days before the recorded pull).
        """
        return (branch.last_pull is None or branch.pending != pending
                or not timedelta(0) <= now - branch.last_pull < LAST_PULL_REFRESH)

    def _push_ways(self, ways: frozenset[str], now: datetime):
        """(queue SAS or None, push route or None) for this deployment and what the branch can use."""
        route = PUSH_ROUTE if "route" in ways else None
        if self.settings.push_mode == "route":
            if route is None:
                raise ContractError(ErrorCode.BAD_REQUEST, "this cloud takes sales through POST /api/push only, which "
                                    "this branchsync cannot use; install the current branchsync and sync again")
            return None, route
        return self.signer.access(now), route
