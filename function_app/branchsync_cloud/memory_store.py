"""The Store in memory, with Table Storage's semantics: for tests and the branch side's fake cloud.

What TableStore gets from Azure, this keeps by hand: ETags and If-Match (a stale one, or a
row that already exists, is `Conflict`), transactions that commit all or nothing within 100
operations and 4 MiB, query pages (and, with `empty_pages`, the empty pages carrying a
continuation that Azure may answer with), and `ops` counted per billed request exactly
where TableStore counts them. Thread-safe: one lock guards every record. No I/O.
"""

import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timezone
from itertools import count

from shared import limits
from shared.access import AuditEntry

from . import faults, nonces
from .apply import ApplyWrite, BranchLedger
from .summaries import DaySummary, pack, unpack
from .catalog import BUCKETS, TXN_MAX_OPS, CatalogTxn, Counter, Segment, decode_bucket, decode_rows
from .store import (
    DEADLETTER_RAW_MAX,
    INDEX_POINT_READS_MAX,
    REASON_MAX_CHARS,
    BranchRecord,
    BucketRecord,
    Chunk,
    Conflict,
    CounterRecord,
    DeadLetter,
    NotFound,
    PersonRecord,
    StoreUnavailable,
    audit_id,
    audit_page,
    audit_since_key,
    check_transaction,
    read_segments,
)

# Table names, only to count the one request TableStore spends creating each on first use.
SALES, BRANCHES, CATALOG, DEADLETTERS = "sales", "branches", "catalog", "deadletters"
PEOPLE, AUDIT = "people", "audit"


class MemoryStore:
    def __init__(self, *, empty_pages: int = 0):
        """`empty_pages`: empty pages (each one request, each with a continuation) before every page of rows."""
        self.empty_pages = empty_pages
        # Set to a reason to make every operation raise StoreUnavailable, as an outage would.
        self.outage: str | None = None
        self.ops = 0
        self._lock = threading.RLock()
        self._local = threading.local()
        self._etags = count(1)
        self._tables: set[str] = set()
        self._branches: dict[str, tuple[BranchRecord, str]] = {}
        self._ledgers: dict[str, tuple[BranchLedger, str]] = {}
        self._chunks: dict[tuple[str, int], dict[int, tuple[Chunk, str]]] = {}  # (branch, generation) -> first_seq
        self._counter: tuple[Counter, str] | None = None
        self._buckets: dict[int, tuple[bytes, str]] = {}
        self._segments: dict[int, tuple[int, bytes, int]] = {}  # last_version -> (first_version, data, entries)
        self._letters: dict[str, DeadLetter] = {}
        self._nonces: dict[int, set[tuple[str, str]]] = {}
        self._days: dict[tuple[str, date], tuple[tuple[bytes, ...], str]] = {}  # (branch, day) -> (packed, etag)
        self._people: dict[str, tuple[PersonRecord, str]] = {}
        self._audit: dict[str, AuditEntry] = {}

    # --- plumbing ------------------------------------------------------------------------

    def _use(self, table: str) -> None:
        """A table's first use costs one request (TableStore creates it), counted store-wide only."""
        with self._lock:
            if table not in self._tables:
                self._tables.add(table)
                self.ops += 1

    def _tick(self, table: str | None = None) -> None:
        """One request, on `table` (None: on the account, such as listing tables)."""
        if table is not None:
            self._use(table)
        with self._lock:
            self.ops += 1
        self._local.ops = self.thread_ops + 1
        if self.outage:
            raise StoreUnavailable(f"storage cannot be reached ({self.outage})")

    @property
    def thread_ops(self) -> int:
        """Operations issued by the calling thread (the per-apply count under concurrency)."""
        return getattr(self._local, "ops", 0)

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    def _page(self, rows: Sequence, per_page: int, token) -> tuple[list, object]:
        """One query page of `rows` at `token` (None: the first) and the next token, None at the end."""
        at, empties = token or (0, self.empty_pages)
        if empties:
            return [], (at, empties - 1)
        page = list(rows[at : at + per_page])
        end = at + len(page)
        return page, ((end, self.empty_pages) if end < len(rows) else None)

    def _query(self, table: str, rows: Sequence, per_page: int = 1000) -> Iterator:
        """`rows` page by page, one request each, as TableStore's queries read them."""
        token = None
        while True:
            self._tick(table)
            page, token = self._page(rows, per_page, token)
            yield from page
            if token is None:
                return

    # --- branches ------------------------------------------------------------------------

    def create_branch(self, record: BranchRecord) -> None:
        self._tick(BRANCHES)
        with self._lock:
            if record.name in self._branches:
                raise Conflict(f"create branch {record.name}: changed concurrently (409 EntityAlreadyExists)")
            record.etag = self._put_branch(record)

    def _put_branch(self, record: BranchRecord) -> str:
        etag = self._etag()
        self._branches[record.name] = (replace(record, etag=None), etag)
        return etag

    @staticmethod
    def _branch(stored: tuple[BranchRecord, str]) -> BranchRecord:
        record, etag = stored
        # An emptied refusal reads back as none, as its absent Table property does.
        return replace(record, last_refusal=record.last_refusal or None,
                       last_refusal_letter=record.last_refusal_letter or None, etag=etag)

    def get_branch(self, name: str) -> BranchRecord | None:
        self._tick(BRANCHES)
        with self._lock:
            stored = self._branches.get(name)
        return self._branch(stored) if stored else None

    def find_branch_by_token_hash(self, token_hash: str) -> BranchRecord | None:
        with self._lock:
            rows = [self._branch(s) for _, s in sorted(self._branches.items()) if s[0].token_hash == token_hash]
        return next(self._query(BRANCHES, rows), None)

    def replace_branch(self, record: BranchRecord) -> None:
        self._tick(BRANCHES)
        with self._lock:
            stored = self._branches.get(record.name)
            if stored is None:
                raise NotFound(f"update branch {record.name}: not found")
            if record.etag is not None and record.etag != stored[1]:
                raise Conflict(f"update branch {record.name}: changed concurrently (412 UpdateConditionNotSatisfied)")
            record.etag = self._put_branch(record)

    def merge_branch(self, name: str, **fields) -> None:
        self._tick(BRANCHES)
        with self._lock:
            stored = self._branches.get(name)
            if stored is None:
                raise NotFound(f"update branch {name}: not found")
            # A merge leaves the properties it does not carry, and None is not carried.
            self._put_branch(replace(stored[0], **{k: v for k, v in fields.items() if v is not None}))

    def list_branches(self) -> list[BranchRecord]:
        with self._lock:
            rows = [self._branch(s) for _, s in sorted(self._branches.items())]
        return list(self._query(BRANCHES, rows))

    # --- sales ---------------------------------------------------------------------------

    def get_ledger(self, branch: str) -> BranchLedger:
        self._tick(SALES)
        with self._lock:
            stored = self._ledgers.get(branch)
        return self._ledger(branch, stored)

    @staticmethod
    def _ledger(branch: str, stored: tuple[BranchLedger, str] | None) -> BranchLedger:
        if stored is None:
            return BranchLedger(branch)
        ledger, etag = stored
        # Generation 1 is always stored (its watermark may be zero), later ones after it.
        later = {g: w for g, w in sorted(ledger.watermarks.items()) if g != 1}
        return replace(ledger, watermarks={1: ledger.apply, **later}, etag=etag)

    def init_ledger(self, branch: str) -> None:
        self._tick(SALES)
        with self._lock:
            self._ledgers.setdefault(branch, (BranchLedger(branch), self._etag()))

    def commit_apply(self, before: BranchLedger, write: ApplyWrite) -> BranchLedger:
        branch, gen = before.branch, write.generation
        ledger, ledger_etag = before, before.etag
        written: dict[tuple[int, int], str] = {}  # ETags of the chunk rows this apply wrote
        days_written: dict[date, str] = {}  # and of the day summaries
        for txn in write.txns:
            seqs = f"{txn.chunks[0].first_seq}-{txn.chunks[-1].last_seq}"
            what = f"apply sales {seqs} of {branch}"
            check_transaction(txn.ops, txn.data_bytes, what)
            self._tick(SALES)
            with self._lock:
                current = self._ledgers.get(branch)
                if (current is not None) != (ledger_etag is not None) or (current and current[1] != ledger_etag):
                    raise Conflict(f"{what}: changed concurrently (the branch's ledger)")
                rows = self._chunks.setdefault((branch, gen), {})
                if any(c.first_seq in rows for c in txn.chunks):
                    raise Conflict(f"{what}: changed concurrently (a chunk row exists)")
                marked = []
                for mark in txn.marks:
                    key = (mark.generation, mark.first_seq)
                    stored = self._chunks.get((branch, mark.generation), {}).get(mark.first_seq)
                    if stored is None or stored[1] != written.get(key, mark.etag):
                        raise Conflict(f"{what}: changed concurrently (chunk {mark.generation}-{mark.first_seq})")
                    marked.append((key, replace(stored[0], voided=mark.voided, refunded=dict(mark.refunded))))
                for row in txn.summaries:
                    day = row.summary.day
                    stored = self._days.get((branch, day))
                    expected = days_written.get(day, row.summary.etag)
                    if (stored is None) != (expected is None) or (stored and stored[1] != expected):
                        raise Conflict(f"{what}: changed concurrently (the summary of {day})")
                # Checked whole: now written whole.
                for c in txn.chunks:
                    etag = written[(gen, c.first_seq)] = self._etag()
                    rows[c.first_seq] = (Chunk(branch, c.first_seq, c.last_seq, write.applied_at, list(c.sales), gen,
                                               c.voided, dict(c.refused), refunded=dict(c.refunded)), etag)
                for key, chunk in marked:
                    etag = written[key] = self._etag()
                    self._chunks[(branch, key[0])][key[1]] = (chunk, etag)
                for row in txn.summaries:
                    etag = days_written[row.summary.day] = self._etag()
                    self._days[(branch, row.summary.day)] = (row.parts, etag)
                ledger_etag = self._etag()
                ledger = replace(txn.ledger, watermarks=dict(txn.ledger.watermarks), etag=ledger_etag)
                self._ledgers[branch] = (replace(ledger, etag=None), ledger_etag)
            faults.hit("apply.between_transactions", f"{branch}:{seqs}")  # where TableStore has it
        return ledger

    def get_ledger_and_days(self, branch: str, first: date) -> tuple[BranchLedger, dict[date, DaySummary]]:
        with self._lock:  # one query: the day rows from `first` on, then the ledger row (it sorts last)
            rows = [(day, parts, etag) for (b, day), (parts, etag) in sorted(self._days.items())
                    if b == branch and day >= first]
            rows.append(self._ledgers.get(branch))
        read = list(self._query(SALES, rows, per_page=100))
        days = {day: unpack(branch, day, parts, etag) for day, parts, etag in read[:-1]}
        return self._ledger(branch, read[-1]), days

    def read_summaries(self, branch: str, first: date, last: date, products: bool = True) -> list[DaySummary]:
        with self._lock:
            rows = [(day, parts, etag) for (b, day), (parts, etag) in sorted(self._days.items())
                    if b == branch and first <= day <= last]
        return [unpack(branch, day, parts, etag, products) for day, parts, etag in self._query(SALES, rows, per_page=100)]

    def replace_summaries(self, ledger: BranchLedger, summaries: Sequence[DaySummary]) -> BranchLedger:
        branch, ledger_etag = ledger.branch, ledger.etag
        rows = [(s.day, pack(s)) for s in summaries]
        for at in range(0, len(rows), TXN_MAX_OPS - 1):
            part = rows[at:at + TXN_MAX_OPS - 1]
            what = f"rebuild the summaries of {branch}"
            check_transaction(len(part) + 1, sum(len(p) for _, parts in part for p in parts), what)
            self._tick(SALES)
            with self._lock:
                current = self._ledgers.get(branch)
                if current is None or current[1] != ledger_etag:
                    raise Conflict(f"{what}: changed concurrently (the branch's ledger)")
                for day, parts in part:
                    self._days[(branch, day)] = (parts, self._etag())
                ledger_etag = self._etag()
                self._ledgers[branch] = (current[0], ledger_etag)
        return replace(ledger, etag=ledger_etag)

    def _chunk_rows(self, branch: str, generation: int, lo: int, hi: int | None = None) -> list[Chunk]:
        with self._lock:
            rows = self._chunks.get((branch, generation), {})
            return [replace(c, sales=list(c.sales), etag=etag) for first, (c, etag) in sorted(rows.items())
                    if first >= lo and (hi is None or first <= hi)]

    def iter_chunks(self, branch: str, from_first_seq: int = 0, generation: int = 1) -> Iterator[Chunk]:
        return self._query(SALES, self._chunk_rows(branch, generation, from_first_seq), per_page=16)

    def find_chunk(self, branch: str, generation: int, seq: int) -> Chunk | None:
        # As TableStore: one query over the chunks that may hold it (a chunk holds at most one batch's run).
        near = self._chunk_rows(branch, generation, max(1, seq - limits.BATCH_MAX_SALES + 1), seq)
        return next((c for c in self._query(SALES, [c for c in near if c.last_seq >= seq], per_page=4)
                     if c.first_seq <= seq <= c.last_seq), None)

    # --- catalog -------------------------------------------------------------------------

    def get_catalog_counter(self) -> CounterRecord:
        self._tick(CATALOG)
        with self._lock:
            return CounterRecord(*self._counter) if self._counter else CounterRecord(Counter(), None)

    def get_catalog_index(self, buckets: Iterable[int] | None = None) -> dict[int, BucketRecord]:
        wanted = sorted(set(range(BUCKETS) if buckets is None else buckets))
        with self._lock:
            stored = dict(self._buckets)
        found: dict[int, BucketRecord] = {}
        if len(wanted) > INDEX_POINT_READS_MAX:
            rows = [BucketRecord(n, decode_bucket(data), etag) for n, (data, etag) in sorted(stored.items())]
            found = {r.number: r for r in self._query(CATALOG, rows, per_page=BUCKETS) if r.number in wanted}
        else:
            for number in wanted:
                self._tick(CATALOG)
                if number in stored:
                    found[number] = BucketRecord(number, decode_bucket(stored[number][0]), stored[number][1])
        return {n: found.get(n) or BucketRecord(n, {}, None) for n in wanted}

    def commit_catalog(self, base: CounterRecord, txn: CatalogTxn,
                       buckets: Mapping[int, BucketRecord]) -> tuple[CounterRecord, dict[int, BucketRecord]]:
        what = f"catalog write at version {txn.counter.last_version}"
        check_transaction(txn.ops, txn.data_bytes, what)
        self._tick(CATALOG)
        with self._lock:
            current = self._counter[1] if self._counter else None
            if current != base.etag:
                raise Conflict(f"{what}: changed concurrently (the catalog counter)")
            if any(w.segment.last_version in self._segments for w in txn.created):
                raise Conflict(f"{what}: changed concurrently (a segment row exists)")
            if any(k not in self._segments for k in txn.deleted):
                raise Conflict(f"{what}: changed concurrently (a segment row to delete is gone)")
            for w in txn.buckets:
                before = buckets.get(w.number)
                if (self._buckets[w.number][1] if w.number in self._buckets else None) != (before.etag if before else None):
                    raise Conflict(f"{what}: changed concurrently (index bucket {w.number})")
            # Checked whole: now written whole.
            self._counter = (txn.counter, self._etag())
            for w in (*txn.created, *txn.rewritten):
                self._segments[w.segment.last_version] = (w.segment.first_version, w.data, len(w.segment.rows))
            for k in txn.deleted:
                del self._segments[k]
            written = {}
            for w in txn.buckets:
                self._buckets[w.number] = (w.data, self._etag())
                written[w.number] = BucketRecord(w.number, w.entries, self._buckets[w.number][1])
            return CounterRecord(*self._counter), written

    def _segment_rows(self, after_version: int) -> list[tuple[int, int, bytes, int]]:
        with self._lock:
            return [(last, *row) for last, row in sorted(self._segments.items()) if last > after_version]

    def read_catalog(self, after_version: int, min_entries: int) -> tuple[list[Segment], bool]:
        rows = self._segment_rows(after_version)

        def page(per_page: int, token) -> tuple[Iterator[tuple[Segment, int]], object]:
            self._tick(CATALOG)
            found, token = self._page(rows, per_page, token)
            return ((Segment(first, last, decode_rows(data, after_version)), n) for last, first, data, n in found), token

        return read_segments(page, min_entries)

    def scan_catalog(self) -> Iterator[Segment]:
        for last, first, data, _ in self._query(CATALOG, self._segment_rows(0), per_page=32):
            yield Segment(first, last, decode_rows(data, 0))

    # --- dead letters --------------------------------------------------------------------

    def add_dead_letter(self, letter: DeadLetter) -> str:
        at = letter.received_at.astimezone(timezone.utc)
        raw = letter.raw[:DEADLETTER_RAW_MAX]
        letter_id = f"{at:%Y%m%d}-{at:%H%M%S%f}-{secrets.token_hex(4)}"
        self._tick(DEADLETTERS)
        with self._lock:
            self._letters[letter_id] = replace(
                letter, received_at=at, reason=letter.reason[:REASON_MAX_CHARS], raw=raw, id=letter_id,
                truncated=letter.truncated or len(raw) < len(letter.raw), size=len(letter.raw))
        return letter_id

    def list_dead_letters(self, day: date | None = None) -> list[DeadLetter]:
        with self._lock:
            rows = [d for _, d in sorted(self._letters.items()) if day is None or d.id.startswith(f"{day:%Y%m%d}-")]
        return list(self._query(DEADLETTERS, rows))

    def get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        self._tick(DEADLETTERS)
        with self._lock:
            return self._letters.get(letter_id)

    def update_dead_letter(self, letter_id: str, code: str, reason: str, replays: int) -> None:
        self._tick(DEADLETTERS)
        with self._lock:
            if letter_id not in self._letters:
                raise NotFound(f"dead letter {letter_id} is gone")
            self._letters[letter_id] = replace(self._letters[letter_id], code=code, reason=reason[:REASON_MAX_CHARS],
                                               replays=replays)

    def delete_dead_letter(self, letter_id: str) -> None:
        if self.get_dead_letter(letter_id) is None:
            raise NotFound(f"dead letter {letter_id} is gone")
        self._tick(DEADLETTERS)
        with self._lock:
            self._letters.pop(letter_id, None)

    # --- request nonces --------------------------------------------------------------------

    def claim_nonce(self, branch: str, nonce: str, bucket: int) -> bool:
        self._tick(nonces.table_name(bucket))
        with self._lock:
            seen = self._nonces.setdefault(bucket, set())
            if (branch, nonce) in seen:
                return False
            seen.add((branch, nonce))
            return True

    def nonce_buckets(self) -> list[int]:
        self._tick()
        with self._lock:
            return sorted(self._nonces)

    def drop_nonce_bucket(self, bucket: int) -> None:
        name = nonces.table_name(bucket)
        with self._lock:
            self._tables.discard(name)
            self._nonces.pop(bucket, None)
        self._tick()

    # --- head-office people and the audit trail ----------------------------------------------

    def create_person(self, record: PersonRecord) -> None:
        self._tick(PEOPLE)
        with self._lock:
            if record.name in self._people:
                raise Conflict(f"create person {record.name}: changed concurrently (409 EntityAlreadyExists)")
            record.etag = self._etag()
            self._people[record.name] = (replace(record, etag=None), record.etag)

    def get_person(self, name: str) -> PersonRecord | None:
        self._tick(PEOPLE)
        with self._lock:
            stored = self._people.get(name)
        return replace(stored[0], etag=stored[1]) if stored else None

    def list_people(self) -> list[PersonRecord]:
        with self._lock:
            rows = [replace(r, etag=e) for _, (r, e) in sorted(self._people.items())]
        return list(self._query(PEOPLE, rows))

    def replace_person(self, record: PersonRecord) -> None:
        self._tick(PEOPLE)
        with self._lock:
            stored = self._people.get(record.name)
            if stored is None:
                raise NotFound(f"update person {record.name}: not found")
            if record.etag is not None and record.etag != stored[1]:
                raise Conflict(f"update person {record.name}: changed concurrently (412 UpdateConditionNotSatisfied)")
            record.etag = self._etag()
            self._people[record.name] = (replace(record, etag=None), record.etag)

    def add_audit(self, entry: AuditEntry) -> str:
        entry_id = audit_id(entry)
        self._tick(AUDIT)
        with self._lock:
            self._audit[entry_id] = entry
        return entry_id

    def list_audit(self, since: datetime, after: str | None, who: str | None,
                   limit: int) -> tuple[list[AuditEntry], str | None]:
        lo = after or audit_since_key(since)
        with self._lock:
            rows = [(i, e) for i, e in sorted(self._audit.items())
                    if (i > lo if after else i >= lo) and (who is None or e.who == who)]
        return audit_page(self._query(AUDIT, rows), limit)
