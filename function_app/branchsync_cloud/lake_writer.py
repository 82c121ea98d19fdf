"""Writes the data lake: applied events from the store, files through the lake's blob seam.

One branch at a time: under the branch's lock (a lease on its state blob, so two writers
never interleave the files of one branch), read its state, read the events applied since,
rewrite every business day they touch (branchsync_cloud/lake.py says why that is enough),
then save the state. A crash before the state is saved leaves the watermark where it was:
the next run reads the same events and writes the same bytes again.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from shared.errors import ContractError, ErrorCode
from shared.models import LakeDay, LakeWriteResult, SummaryRebuild

from . import lake
from .branches import existing_branch
from .lake import Event, LakeState
from .store import Store
from .summaries import DaySummary

log = logging.getLogger("branchsync.lake")

# Seqs of one generation a run reads per branch at most: a first build over a long history,
# or a branch back after weeks offline, goes on in the next run instead of holding every
# event in memory at once (about 2 KB each as parsed).
MAX_SEQS_PER_RUN = 20_000


class BranchFiles(Protocol):
    """One branch's part of the lake, held exclusively while it is in use."""

    def read_state(self) -> bytes | None: ...
    def put(self, path: str, data: bytes) -> None: ...  # replaces the file; keeps the hold alive
    def save_state(self, data: bytes) -> None: ...


class LakeBlobs(Protocol):
    ops: int  # storage operations issued so far

    def peek_state(self, name: str) -> bytes | None: ...  # the branch's state without holding it; None: none yet

    # The branch's files, held until the block ends; None when another writer holds them.
    def branch(self, name: str) -> AbstractContextManager["BranchFiles | None"]: ...
    def list(self, prefix: str = "") -> list[str]: ...  # file names under prefix, sorted
    def read(self, path: str) -> bytes | None: ...


@dataclass
class LakeRun:
    branches: int = 0
    events: int = 0  # newly applied events read
    days: list[tuple[str, date]] = field(default_factory=list)  # (branch, day) rewritten
    files: int = 0
    bytes: int = 0
    busy: list[str] = field(default_factory=list)  # branches another writer held
    more: list[str] = field(default_factory=list)  # branches with events left for the next run

    def answer(self) -> LakeWriteResult:
        return LakeWriteResult(branches=self.branches, events=self.events, files=self.files, bytes=self.bytes,
                               days=[LakeDay(branch=b, day=d) for b, d in self.days], busy=self.busy, more=self.more)


class LakeWriter:
    def __init__(self, store: Store, blobs: LakeBlobs, zone_name: str, max_seqs: int = MAX_SEQS_PER_RUN):
        self.store = store
        self.blobs = blobs
        self.zone_name = zone_name
        self.zone = lake.business_zone(zone_name)
        self.max_seqs = max_seqs

    def run(self, rewrite: Iterable[date] = (), branches: Iterable[str] | None = None) -> LakeRun:
        """Bring the lake up to every branch's applied_through; `rewrite`: days to write again even if unchanged."""
        out = LakeRun()
        names = sorted(b.name for b in self.store.list_branches()) if branches is None else sorted(branches)
        for name in names:
            out.branches += 1
            self.write_branch(name, set(rewrite), out)
        return out

    def write_branch(self, name: str, rewrite: set[date], out: LakeRun) -> None:
        ledger = self.store.get_ledger(name)
        applied = {g: ledger.apply_of(g).applied_through for g in ledger.watermarks}
        # One read for a branch with nothing new (most of them, most runs); the hold is taken only to write.
        seen = LakeState.from_json(self.blobs.peek_state(name), self.zone_name)
        if not lake.to_read(seen, applied) and not rewrite & seen.days.keys():
            return
        with self.blobs.branch(name) as files:
            if files is None:
                out.busy.append(name)
                log.info("lake: branch %s is being written by another run; left to it", name)
                return
            state = LakeState.from_json(files.read_state(), self.zone_name)
            if state.zone != self.zone_name:
                raise ValueError(f"the lake of branch {name} was written with business days in {state.zone}, not "
                                 f"{self.zone_name}: empty the lake container and run again to rebuild it in the new zone")
            reads = {}
            for g, (lo, hi) in lake.to_read(state, applied).items():
                if hi - lo + 1 > self.max_seqs:
                    hi = lo + self.max_seqs - 1
                    out.more.append(name)
                reads[g] = (lo, hi)
            events: dict[tuple[int, int], Event] = {}
            changed: set[date] = set()
            for g, (lo, hi) in reads.items():
                new = list(self._events(name, g, lo, hi))
                out.events += len(new)
                events.update(((g, e.sale.seq), e) for e in new)
                changed |= lake.advance(state, g, (e.sale for e in new), hi, self.zone)
            days = changed | (rewrite & state.days.keys())
            # The rest of those days' events: what lies below what was just read.
            for g, (lo, hi) in lake.ranges_of(state, days).items():
                first_new = reads.get(g, (hi + 1, hi))[0]
                if lo < first_new:
                    events.update(((g, e.sale.seq), e) for e in self._events(name, g, lo, min(hi, first_new - 1)))
            by_day: dict[date, list[Event]] = defaultdict(list)
            for e in events.values():
                day = lake.business_day(e.sale.recorded_at, self.zone)
                if day in days:
                    by_day[day].append(e)
            originals = self._originals(name, [e for d in days for e in by_day[d]], events)
            for day in sorted(days):
                for dataset, data in lake.day_files(day, name, by_day[day], originals).items():
                    files.put(lake.part_path(dataset, day, name), data)
                    out.files += 1
                    out.bytes += len(data)
                out.days.append((name, day))
            if reads:
                files.save_state(state.to_json())

    def rebuild_summaries(self, branch: str | None = None) -> SummaryRebuild:
        """Write every day summary again from the lake's events, not from the stored sales.

        The lake is the copy of record outside Table Storage: this is how the figures come
        back when the summaries are lost or doubted. A branch whose lake is behind its applied
        sales is refused (write the lake first); days summarised before but holding no event
        now are written empty; an apply that commits meanwhile makes the replace Conflict
        (the store's ledger If-Match), so try again.
        """
        names = [existing_branch(self.store, branch).name] if branch is not None else \
            sorted(b.name for b in self.store.list_branches())
        out: dict[str, int] = {}
        counted = 0
        files = self.blobs.list("events/")
        for name in names:
            ledger = self.store.get_ledger(name)
            state = LakeState.from_json(self.blobs.peek_state(name), self.zone_name)
            behind = {g: t for g in ledger.watermarks if state.through.get(g, 0) < (t := ledger.apply_of(g).applied_through)}
            if behind:
                g, t = min(behind.items())
                raise ContractError(ErrorCode.CONFLICT, f"the lake of branch {name} is behind its applied sales (generation "
                                    f"{g}: {state.through.get(g, 0)} of {t}): run `branchsync-admin lake write` first")
            mine = [p for p in files if f"/branch={name}/" in p]
            days, n = lake.fold_summaries(name, (e for p in mine for e in lake.events_of(self.blobs.read(p))), self.zone)
            for stale in self.store.read_summaries(name, date.min, date.max):
                days.setdefault(stale.day, DaySummary(name, stale.day))
            self.store.replace_summaries(ledger, [days[d] for d in sorted(days)])
            out[name] = len(days)
            counted += n
        return SummaryRebuild(branches=out, events=counted)

    def _originals(self, branch: str, day_events: list[Event], read: dict[tuple[int, int], Event]) -> dict:
        """The sales these days' counted voids and refunds name: from what was read, else one lookup each (rare)."""
        out = {}
        for key in {lake.named(e) for e in day_events if not e.refused} - {None}:
            if key in read:
                out[key] = read[key].sale
            elif (chunk := self.store.find_chunk(branch, *key)) is not None:
                out[key] = next(s for s in chunk.sales if s.seq == key[1])
        return out

    def _events(self, branch: str, generation: int, lo: int, hi: int) -> Iterator[Event]:
        """The applied events lo..hi of one generation in seq order, refused voids and refunds marked."""
        first = self.store.find_chunk(branch, generation, lo)
        for chunk in self.store.iter_chunks(branch, first.first_seq if first else lo, generation):
            if chunk.first_seq > hi:
                return
            for sale in chunk.sales:
                if lo <= sale.seq <= hi:
                    yield Event(branch, generation, sale, chunk.applied_at, chunk.refused.get(sale.seq))
