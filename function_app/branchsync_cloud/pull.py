"""A branch's pull: a page of the catalog, its acks (watermarks), how to push, and what it must know.

The HTTP adapter authenticates the request (request_auth.py) and parses its parameters
into a `PullQuery`; nothing here reads a header or a query string.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared import limits
from shared.errors import ContractError, ErrorCode
from shared.models import PullAnswer, PushRoute, Refusal

from .branches import acks_of
from .catalog import build_page, needs_full_resync, settled
from .queue_access import signer_for
from .settings import Settings
from .store import BranchRecord, Store
from .telemetry import dims

log = logging.getLogger("branchsync.cloud")

PUSH_ROUTE = PushRoute(path="/api/push", max_messages=limits.PUSH_ROUTE_MAX_MESSAGES,
                       max_body_bytes=limits.PUSH_ROUTE_MAX_BODY_BYTES)


@dataclass(frozen=True)
class PullQuery:
    cursor: int = 0  # the last catalog version the branch holds
    limit: int = limits.CATALOG_PAGE_MAX  # at most this many catalog entries
    pending: int | None = None  # sales waiting at the till, as it reports them
    version: str | None = None  # the branch's branchsync version: logged only
    ways: frozenset[str] = frozenset({"queue"})  # the ways this branch can push


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

    def pull(self, branch: BranchRecord, query: PullQuery) -> PullAnswer:
        cursor, limit, pending, version = query.cursor, query.limit, query.pending, query.version
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
        push, route = self._push_ways(query.ways, now)  # before any write: a refusal here stores nothing
        self.store.merge_branch(branch.name, last_pull=now, pending=pending)
        log.info("pull branch=%s cursor=%d entries=%d next=%d more=%s applied_through=%d pending=%s version=%s",
                 branch.name, cursor, len(page.entries), page.next_cursor, page.more, state.apply.applied_through,
                 pending, version or "-",
                 extra=dims(event="pull", branch=branch.name, cursor=cursor, entries=len(page.entries),
                            applied_through=state.apply.applied_through, pending=pending, client_version=version))
        return PullAnswer(
            branch=branch.name, applied_through=state.apply.applied_through, catalog=page, server_time=now,
            push=push, push_route=route, rotate_secret=branch.next_secret,
            acks=acks_of(state),
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
