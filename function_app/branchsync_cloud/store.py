"""The cloud's one storage seam: the records it keeps and the operations on them.

`TableStore` (table_store.py) implements this over Azure Table Storage; the layout and
the cost of each operation are in docs/storage.md. Writers use optimistic concurrency:
a record read with an `etag` is written back only if nobody changed it meanwhile,
otherwise `Conflict` is raised and the caller re-reads and re-plans.
"""

import math
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Protocol

from shared.access import AuditEntry
from shared.models import Sale

# BranchLedger is a store record too; it is defined with the apply, which plans its changes.
from .apply import ApplyWrite, BranchLedger, Refunded
from .catalog import SEGMENT_MAX_ENTRIES, TXN_HARD_MAX_DATA_BYTES, TXN_MAX_OPS, CatalogTxn, Counter, IndexEntry, Segment
from .summaries import DaySummary


# --- errors --------------------------------------------------------------------------------


class StorageError(Exception):
    """Storage did not do what was asked; the message says what happened."""


class StoreUnavailable(StorageError):
    """Storage cannot be reached or is throttling: retry later (HTTP 503, queue retry)."""


class Conflict(StorageError):
    """Someone else changed the record first (ETag mismatch, row already exists): re-read and re-plan."""


class NotFound(StorageError):
    """The record to change does not exist."""


def check_transaction(ops: int, data_bytes: int, what: str) -> None:
    """Refuse a transaction Table Storage would refuse: more than 100 operations, or more than 4 MiB.

    Checked before sending: Azurite answers an oversized transaction with a malformed reply.
    `data_bytes`: its binary properties, which travel as base64 (TXN_HARD_MAX_DATA_BYTES still fits).
    """
    if ops > TXN_MAX_OPS:
        raise StorageError(f"{what}: {ops} operations exceed a transaction's {TXN_MAX_OPS}")
    if data_bytes > TXN_HARD_MAX_DATA_BYTES:
        raise StorageError(f"{what}: {data_bytes} bytes of binary data exceed a transaction's 4 MiB")


# --- what both stores keep and read alike ------------------------------------------------------

# A dead letter keeps at most this much of the raw message (a binary property holds 64 KiB)
# and of its reason.
DEADLETTER_RAW_MAX = 60 * 1024
REASON_MAX_CHARS = 4000
# More index buckets than this are read with one range query over all of them.
INDEX_POINT_READS_MAX = 8
# A pull reads at most this many query pages of segments; the first asks for a few rows
# (a bulk-imported segment holds ~1,000 entries), or for a wide page as many as it needs at
# the least (a segment holds at most SEGMENT_MAX_ENTRIES) and one more for the cursor's
# part-sent segment; later ones for as many as look needed.
SEGMENT_READ_MAX_PAGES = 6
SEGMENT_FIRST_PAGE = 4
SEGMENT_PAGE_MAX = 64

# One query page of catalog segments: (per_page, token) -> ((segment, entries stored in its row)
# decoded as iterated, next token or None).
SegmentPages = Callable[[int, object], tuple[Iterable[tuple[Segment, int]], object]]


def read_segments(page: SegmentPages, min_entries: int) -> tuple[list[Segment], bool]:
    """Store.read_catalog over one store's query pages: segments until `min_entries`, and whether that is the end."""
    segments: list[Segment] = []
    entries = read = 0
    token = None
    per_page = max(SEGMENT_FIRST_PAGE, min(SEGMENT_PAGE_MAX, math.ceil(min_entries / SEGMENT_MAX_ENTRIES) + 1))
    for _ in range(SEGMENT_READ_MAX_PAGES):
        rows, token = page(per_page, token)
        for segment, stored in rows:
            if entries >= min_entries:
                return segments, False  # enough: the rest are left for the next pull
            segments.append(segment)
            entries += len(segment.rows)
            read += stored
        if token is None:
            return segments, True
        if entries >= min_entries:
            return segments, False
        # As many rows as the entries still wanted look to need, judged by those read so far.
        per_row = max(1.0, read / len(segments)) if segments else 1.0
        per_page = max(SEGMENT_FIRST_PAGE, min(SEGMENT_PAGE_MAX, math.ceil((min_entries - entries) / per_row) + 1))
    return segments, False


def audit_since_key(since: datetime) -> str:
    """The lowest audit id at or after `since`: ids begin with their entry's UTC time."""
    return since.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%f")


def audit_id(entry: AuditEntry) -> str:
    """A new audit entry's id (its RowKey): its time, then randomness so two in one microsecond differ."""
    return audit_since_key(entry.at) + "-" + secrets.token_hex(4)


def audit_page(rows: Iterable[tuple[str, AuditEntry]], limit: int) -> tuple[list[AuditEntry], str | None]:
    """Store.list_audit over one store's (id, entry) rows in id order: the first `limit`, and the id to go on after."""
    page: list[tuple[str, AuditEntry]] = []
    for row in rows:
        if len(page) == limit:
            return [e for _, e in page], page[-1][0]
        page.append(row)
    return [e for _, e in page], None


# --- records -------------------------------------------------------------------------------


@dataclass
class BranchRecord:
    name: str
    created_at: datetime
    enrolled: bool = False
    secret: str | None = None
    token_hash: str | None = None
    token_expires: datetime | None = None
    last_pull: datetime | None = None
    pending: int | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    # Rotation and revocation (branchsync_cloud/branch_keys.py): the pending and the replaced secret.
    next_secret: str | None = None
    rotation_requested_at: datetime | None = None
    previous_secret: str | None = None
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None
    # JSON of shared.models.Refusal: the latest message signed by this branch that was refused;
    # the pull hands it to the till. "" once head office has replayed or discarded it.
    last_refusal: str | None = None
    last_refusal_letter: str | None = None  # the dead letter's id
    etag: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Chunk:
    """A run of consecutive applied events of one generation as stored together.

    `voided`: seqs of its sales that an applied void has voided; `refunded`: per seq of its
    sales, per line, the quantity and paisa applied refunds returned; `refused`: seqs of its
    void and refund events the cloud refused (stored to keep the sequence whole, counted
    nowhere), with the reason code. `etag` lets an apply mark a sale voided or refunded atomically.
    """

    branch: str
    first_seq: int
    last_seq: int
    applied_at: datetime
    sales: list[Sale]
    generation: int = 1
    voided: frozenset[int] = frozenset()
    refused: Mapping[int, str] = field(default_factory=dict)
    etag: str | None = field(default=None, compare=False)
    refunded: Mapping[int, Refunded] = field(default_factory=dict)

    @property
    def counted(self) -> list[Sale]:
        return [s for s in self.sales if s.seq not in self.refused]


@dataclass(frozen=True)
class CounterRecord:
    counter: Counter
    etag: str | None  # None: no counter row yet


@dataclass(frozen=True)
class BucketRecord:
    """One bucket of the catalog index: {sku: IndexEntry}."""

    number: int
    entries: dict[str, IndexEntry]
    etag: str | None  # None: no bucket row yet


@dataclass(frozen=True)
class DeadLetter:
    received_at: datetime
    code: str
    reason: str
    raw: bytes
    branch: str | None = None
    truncated: bool = False
    id: str | None = None  # set by the store: "<day>-<time>-<random>", newest sorts last
    size: int | None = None  # bytes as received (raw may be truncated)
    replays: int = 0


@dataclass
class PersonRecord:
    """A head-office person's credential: its roles and the salted hash of its secret (never the secret)."""

    name: str
    roles: tuple[str, ...]
    salt: str  # hex
    secret_hash: str  # hex HMAC-SHA256(salt, secret); people.py
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    etag: str | None = field(default=None, compare=False)


# --- the interface -------------------------------------------------------------------------


class Store(Protocol):
    ops: int  # storage operations issued so far (each billed request counts one)
    thread_ops: int  # of those, the ones the calling thread issued (one apply's count while others run)

    # branches
    def create_branch(self, record: BranchRecord) -> None: ...  # Conflict if the name exists
    def get_branch(self, name: str) -> BranchRecord | None: ...
    def find_branch_by_token_hash(self, token_hash: str) -> BranchRecord | None: ...
    def replace_branch(self, record: BranchRecord) -> None: ...  # Conflict if record.etag is stale
    def merge_branch(self, name: str, **fields) -> None: ...  # NotFound if the branch is gone
    def list_branches(self) -> list[BranchRecord]: ...

    # sales
    def get_ledger(self, branch: str) -> BranchLedger: ...
    def init_ledger(self, branch: str) -> None: ...  # no-op when it exists
    # The write planned by apply.plan_transactions, one transaction after another, the
    # ledger If-Match `before` then each previous one; Conflict if the ledger or a marked
    # chunk changed meanwhile or a chunk row exists (what committed before stays, and agrees
    # with its ledger). Returns the ledger after the last.
    def commit_apply(self, before: BranchLedger, write: ApplyWrite) -> BranchLedger: ...
    def iter_chunks(self, branch: str, from_first_seq: int = 0, generation: int = 1) -> Iterator[Chunk]: ...
    def find_chunk(self, branch: str, generation: int, seq: int) -> Chunk | None: ...  # the chunk holding seq

    # day summaries (summaries.py), kept in the branch's partition beside its chunks and ledger;
    # commit_apply writes them with the sales (If-Match as read, created when new)
    # The ledger and the stored summaries of the days from `first` on, with one query (their
    # rows sort just below the ledger's): what an apply reads, at the cost of the ledger alone.
    def get_ledger_and_days(self, branch: str, first: date) -> tuple[BranchLedger, dict[date, DaySummary]]: ...
    # The days first..last, in order; products=False: their figures only (products left empty, less read).
    def read_summaries(self, branch: str, first: date, last: date, products: bool = True) -> list[DaySummary]: ...
    # Replace the given days' rows whatever they hold (a rebuild), in transactions of at most
    # 99 rows, each with the ledger If-Match `ledger` then each previous one (unchanged), so an
    # apply that committed meanwhile makes it Conflict. Returns the ledger after the last.
    def replace_summaries(self, ledger: BranchLedger, summaries: Sequence[DaySummary]) -> BranchLedger: ...

    # catalog
    def get_catalog_counter(self) -> CounterRecord: ...
    # The index buckets asked for (None: all of them); an absent bucket comes back empty.
    def get_catalog_index(self, buckets: Iterable[int] | None = None) -> dict[int, BucketRecord]: ...
    # One transaction: the counter (If-Match base.etag) and what `txn` writes; Conflict if
    # anything changed meanwhile. Returns the new counter and the written buckets' records.
    def commit_catalog(self, base: CounterRecord, txn: CatalogTxn,
                       buckets: Mapping[int, BucketRecord]) -> tuple[CounterRecord, dict[int, BucketRecord]]: ...
    # Segments with a key above `after_version` in key order (their entries at or below it
    # left out), until they hold `min_entries` entries above it or a bounded number of
    # query pages was read; and whether that reached the end.
    def read_catalog(self, after_version: int, min_entries: int) -> tuple[list[Segment], bool]: ...
    def scan_catalog(self) -> Iterator[Segment]: ...  # every segment, in key order

    # dead letters
    def add_dead_letter(self, letter: DeadLetter) -> str: ...  # returns the new id
    def list_dead_letters(self, day: date | None = None) -> list[DeadLetter]: ...  # oldest first
    def get_dead_letter(self, letter_id: str) -> DeadLetter | None: ...
    def update_dead_letter(self, letter_id: str, code: str, reason: str, replays: int) -> None: ...  # NotFound
    def delete_dead_letter(self, letter_id: str) -> None: ...  # NotFound if already gone

    # request nonces (replay protection), one table per hour bucket (branchsync_cloud/nonces.py)
    def claim_nonce(self, branch: str, nonce: str, bucket: int) -> bool: ...  # False: already seen
    def nonce_buckets(self) -> list[int]: ...
    def drop_nonce_bucket(self, bucket: int) -> None: ...  # a bucket already gone is fine

    # head-office people and the audit trail (people.py, audit.py); the audit is only ever added to
    def create_person(self, record: PersonRecord) -> None: ...  # Conflict if the name exists
    def get_person(self, name: str) -> PersonRecord | None: ...
    def list_people(self) -> list[PersonRecord]: ...  # in name order
    def replace_person(self, record: PersonRecord) -> None: ...  # Conflict if record.etag is stale
    def add_audit(self, entry: AuditEntry) -> str: ...  # returns its id; ids sort as the entries' times
    # Entries at or after `since` (after the id `after` when given), oldest first, of `who` only
    # when given; at most `limit`, and the id to pass as `after` for more (None: no more).
    def list_audit(self, since: datetime, after: str | None, who: str | None,
                   limit: int) -> tuple[list[AuditEntry], str | None]: ...
