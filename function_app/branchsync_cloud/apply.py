"""Exactly-once apply of a sales batch, as pure functions (no I/O).

Per branch and numbering generation the cloud keeps `applied_through` (every seq up to it
is stored) and the inclusive ranges stored above it while a gap waits to be filled. A
till starts a new generation with every restore, so a restored till never numbers a sale
the way a lost one was numbered, and the old generation's messages still apply under it.
Planning a batch (`plan_apply`) says which sales are new, which of its voids are refused,
and what the state becomes. Planning its write (`plan_transactions`) turns that into what
the store commits: the chunk rows, the marks on stored chunks of the sales voided, and the
ledger after each transaction, cut to Table Storage's transaction limits (usually one
transaction); each ledger describes exactly the chunks written with and before it, so
data and watermark never disagree, and a store only translates the plan into requests.

Voids are checked here because the till's own check can be undone by a restore: a void
must name a sale of this branch (any generation) that the cloud holds or that comes
earlier in the same batch, void it at most once, and carry exactly minus its total. A
refused void still takes its number (the sequence stays gap-free and the sales behind it
apply); it is stored as refused, counts nothing, and is reported.
"""

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from shared.errors import ContractError, ErrorCode
from shared.models import Sale, SaleKind, SalesBatch, sale_number

from .catalog import PROPERTY_MAX_BYTES, TXN_MAX_DATA_BYTES, TXN_MAX_OPS

# (generation, seq): a sale's identity within its branch.
SaleKey = tuple[int, int]

# Each range costs ~35 characters of a string property limited to 32K characters; a
# branch with this many holes in its sequence is broken, and its batch is dead-lettered
# (the branch re-pushes unacknowledged sales later, so nothing is lost).
MAX_RANGES = 500
# A chunk's sales are one binary property.
CHUNK_MAX_BYTES = PROPERTY_MAX_BYTES


@dataclass(frozen=True)
class ApplyState:
    applied_through: int = 0
    # Sorted, disjoint, non-adjacent inclusive ranges, all starting above applied_through + 1.
    ranges: tuple[tuple[int, int], ...] = ()

    def is_stored(self, seq: int) -> bool:
        return seq <= self.applied_through or any(lo <= seq <= hi for lo, hi in self.ranges)

    def with_stored(self, runs: Iterable[tuple[int, int]]) -> "ApplyState":
        """The state once the given inclusive runs are stored as well."""
        merged = sorted([*self.ranges, *runs])
        out: list[list[int]] = []
        for lo, hi in merged:
            if out and lo <= out[-1][1] + 1:
                out[-1][1] = max(out[-1][1], hi)
            else:
                out.append([lo, hi])
        through = self.applied_through
        # Advance the watermark over every range that now touches it.
        while out and out[0][0] <= through + 1:
            through = max(through, out.pop(0)[1])
        return ApplyState(through, tuple((lo, hi) for lo, hi in out))


@dataclass
class BranchLedger:
    """A branch's apply watermarks (one per numbering generation) and running totals.

    One row for all generations: a pull reads every watermark with one operation, and
    applies of any generation of the branch are serialised by its ETag (None: not stored yet).
    """

    branch: str
    watermarks: dict[int, ApplyState] = field(default_factory=dict)
    sales_applied: int = 0
    total_paisa: int = 0
    last_push: datetime | None = None
    etag: str | None = field(default=None, compare=False)

    def apply_of(self, generation: int) -> ApplyState:
        return self.watermarks.get(generation) or ApplyState()

    @property
    def apply(self) -> ApplyState:
        """Generation 1's watermark (every branch has one; later generations follow restores)."""
        return self.apply_of(1)


@dataclass(frozen=True)
class VoidTarget:
    """What the cloud holds of a sale a void refers to (read from the chunk that stores it)."""

    kind: SaleKind
    total: int
    voided: bool  # already voided by an applied void
    refused: bool = False  # itself a refused void


@dataclass(frozen=True)
class Refused:
    seq: int
    sale_id: str
    code: ErrorCode
    reason: str


@dataclass(frozen=True)
class ApplyPlan:
    new_sales: list[Sale]
    state: ApplyState
    duplicates: int
    # Maximal runs of consecutive new seqs; each becomes its own chunk row(s), so chunk
    # rows never interleave and reading them in key order is reading in seq order.
    runs: list[list[Sale]] = field(default_factory=list)
    generation: int = 1
    # New void events refused (stored under their number, counted nowhere), by seq.
    refused: dict[int, Refused] = field(default_factory=dict)
    # Sales voided by this batch's accepted voids.
    voided: list[SaleKey] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.new_sales)

    @property
    def counted(self) -> list[Sale]:
        """The new events that count: every new one except refused voids."""
        return [s for s in self.new_sales if s.seq not in self.refused]

    @property
    def total_paisa(self) -> int:
        return sum(s.total for s in self.counted)


def consecutive_runs(sales: Sequence[Sale]) -> list[list[Sale]]:
    runs: list[list[Sale]] = []
    for sale in sales:
        if runs and sale.seq == runs[-1][-1].seq + 1:
            runs[-1].append(sale)
        else:
            runs.append([sale])
    return runs


def void_target(generation: int, void: Sale) -> SaleKey:
    return (void.voids_generation or generation, void.voids)


def plan_apply(state: ApplyState, batch: SalesBatch, targets: Mapping[SaleKey, VoidTarget] | None = None) -> ApplyPlan:
    """Plan `batch` against its generation's `state`; `targets` holds the stored sales its new voids name.

    A till pushes a void only in the message of the sale it voids or once the cloud has
    acknowledged that sale, so a void naming a sale the cloud does not hold is refused: it
    is never left waiting, since the database that could push it again may be gone.
    """
    new = [s for s in batch.sales if not state.is_stored(s.seq)]  # stored seqs change nothing
    runs = consecutive_runs(new)
    after = state.with_stored((run[0].seq, run[-1].seq) for run in runs)
    if len(after.ranges) > MAX_RANGES:
        raise ContractError(
            ErrorCode.MALFORMED_MESSAGE,
            f"batch would leave more than {MAX_RANGES} gaps in the branch's sequence; "
            "the branch must push its sales in order (it re-pushes unacknowledged sales on its next sync)",
        )
    refused, voided = check_voids(batch.generation, new, targets or {})
    return ApplyPlan(new_sales=new, state=after, duplicates=len(batch.sales) - len(new), runs=runs,
                     generation=batch.generation, refused=refused, voided=voided)


def check_voids(generation: int, new_sales: Sequence[Sale],
                targets: Mapping[SaleKey, VoidTarget]) -> tuple[dict[int, Refused], list[SaleKey]]:
    """Which of the new voids are refused, and which sales the others void, in seq order."""
    earlier: dict[int, Sale] = {}
    voided: list[SaleKey] = []
    refused: dict[int, Refused] = {}
    for sale in new_sales:
        if sale.kind == SaleKind.VOID:
            key = void_target(generation, sale)
            in_batch = earlier.get(key[1]) if key[0] == generation else None
            problem = _void_problem(sale, key, in_batch, targets, set(voided))
            if problem is None:
                voided.append(key)
            else:
                refused[sale.seq] = Refused(sale.seq, sale.sale_id, *problem)
        earlier[sale.seq] = sale
    return refused, voided


def _void_problem(void: Sale, key: SaleKey, in_batch: Sale | None, targets: Mapping[SaleKey, VoidTarget],
                  voided_here: set[SaleKey]) -> tuple[ErrorCode, str] | None:
    name = sale_number(*key)
    target = VoidTarget(in_batch.kind, in_batch.total, voided=False) if in_batch is not None else targets.get(key)
    if target is None:
        return (ErrorCode.VOID_UNKNOWN_SALE, f"void {void.seq} refers to sale {name}, which the cloud does not hold "
                "(a till pushes a void only with its sale or once the cloud has acknowledged the sale), so this "
                "void is not counted")
    if target.kind != SaleKind.SALE or target.refused:
        return (ErrorCode.VOID_UNKNOWN_SALE, f"void {void.seq} refers to number {name}, which is itself a void, "
                "not a sale; it is not counted")
    if target.voided or key in voided_here:
        return (ErrorCode.VOID_TWICE, f"void {void.seq} voids sale {name} a second time (a restored till's database "
                "no longer knew the first void); the first void counts, this one does not")
    if void.total != -target.total:
        return (ErrorCode.VOID_WRONG_TOTAL, f"void {void.seq} carries {void.total} paisa but sale {name} was "
                f"{target.total} paisa; a void carries exactly minus the sale's total, so it is not counted")
    return None



# --- planning the write ----------------------------------------------------------------------


class StoredChunk(Protocol):
    """Where a stored sale that a void names lives (store.Chunk is one)."""

    generation: int
    first_seq: int
    voided: frozenset[int]
    etag: str | None


# A chunk row: (generation, first seq).
ChunkKey = tuple[int, int]


@dataclass(frozen=True)
class ChunkWrite:
    """A new chunk row: consecutive new events of the plan's generation, compressed."""

    sales: tuple[Sale, ...]
    data: bytes  # zlib of the sales' JSON, at most CHUNK_MAX_BYTES
    voided: frozenset[int] = frozenset()  # its sales voided by voids committed with it
    refused: Mapping[int, str] = field(default_factory=dict)  # its refused voids: seq -> reason code

    @property
    def first_seq(self) -> int:
        return self.sales[0].seq

    @property
    def last_seq(self) -> int:
        return self.sales[-1].seq

    @property
    def total_paisa(self) -> int:
        return sum(s.total for s in self.sales if s.seq not in self.refused)


@dataclass(frozen=True)
class VoidMark:
    """A chunk row written before this transaction, given the whole set of its voided sales."""

    generation: int
    first_seq: int
    voided: frozenset[int]
    # If-Match as read; None for a chunk this apply wrote in an earlier transaction (the
    # store then holds the ETag that write returned).
    etag: str | None


@dataclass(frozen=True)
class ApplyTxn:
    """One atomic write: new chunk rows, marks on stored ones, and the ledger they lead to.

    The ledger row describes exactly the chunks written up to this transaction, so data and
    watermark agree after every commit.
    """

    chunks: tuple[ChunkWrite, ...]
    marks: tuple[VoidMark, ...]
    ledger: BranchLedger  # etag None: the store writes it If-Match the previous ledger's

    @property
    def ops(self) -> int:
        return len(self.chunks) + len(self.marks) + 1

    @property
    def data_bytes(self) -> int:
        return sum(len(c.data) for c in self.chunks)


@dataclass(frozen=True)
class ApplyWrite:
    """Everything applying a batch writes, as transactions to commit in order."""

    branch: str
    generation: int
    applied_at: datetime
    txns: tuple[ApplyTxn, ...]

    @property
    def seqs(self) -> str:
        """The seqs written, for messages: "first-last"."""
        return f"{self.txns[0].chunks[0].first_seq}-{self.txns[-1].chunks[-1].last_seq}" if self.txns else "-"


def encode_run(run: Sequence[Sale]) -> list[tuple[tuple[Sale, ...], bytes]]:
    """A run of consecutive sales as compressed pieces of at most CHUNK_MAX_BYTES each."""
    body = json.dumps([s.model_dump(mode="json") for s in run], separators=(",", ":"), ensure_ascii=False)
    data = zlib.compress(body.encode(), 6)
    if len(data) <= CHUNK_MAX_BYTES:
        return [(tuple(run), data)]
    if len(run) == 1:
        raise ValueError(f"sale {run[0].seq} compresses to {len(data)} bytes, more than a chunk row holds")
    mid = len(run) // 2
    return encode_run(run[:mid]) + encode_run(run[mid:])


def _group(pieces: Sequence[tuple[tuple[Sale, ...], bytes]], marks: Sequence[int]) -> list[list[int]]:
    """Piece indexes per transaction; `marks[i]`: at most how many void marks piece i adds to its transaction.

    One operation of each transaction is the ledger row.
    """
    groups: list[list[int]] = []
    size = ops = 0
    for i, ((_, data), extra) in enumerate(zip(pieces, marks)):
        need = 1 + min(extra, TXN_MAX_OPS - 2)
        if not groups or ops + need > TXN_MAX_OPS - 1 or size + len(data) > TXN_MAX_DATA_BYTES:
            groups.append([])
            size = ops = 0
        groups[-1].append(i)
        size += len(data)
        ops += need
    return groups


def plan_transactions(before: BranchLedger, plan: ApplyPlan, targets: Mapping[SaleKey, StoredChunk],
                      pushed_at: datetime, applied_at: datetime) -> ApplyWrite:
    """The chunks, void marks and ledger of `plan` against `before`, cut into transactions.

    `targets`: the stored chunks holding the sales its accepted voids name. A void is
    committed in the transaction of its own chunk, together with the mark on the chunk of
    the sale it voids (If-Match), so a sale is voided at most once. Usually one transaction;
    several only when the chunks do not fit one (100 operations, the data limit).
    """
    gen = plan.generation
    accepted = {s.seq for s in plan.counted if s.kind == SaleKind.VOID}
    refused = {seq: str(r.code) for seq, r in plan.refused.items()}
    pieces = [piece for run in plan.runs for piece in encode_run(run)]
    # Where each voided sale is stored: a piece written now, or a chunk already stored.
    home_of: dict[SaleKey, ChunkKey] = {(gen, s.seq): (gen, sales[0].seq) for sales, _ in pieces for s in sales}
    voided: dict[ChunkKey, set[int]] = {}
    etags: dict[ChunkKey, str | None] = {}
    for key, chunk in targets.items():
        row = (chunk.generation, chunk.first_seq)
        home_of.setdefault(key, row)
        voided.setdefault(row, set(chunk.voided))
        etags.setdefault(row, chunk.etag)
    written: set[ChunkKey] = set()
    ledger = before
    txns: list[ApplyTxn] = []
    for group in _group(pieces, [sum(1 for s in sales if s.seq in accepted) for sales, _ in pieces]):
        rows = {(gen, pieces[i][0][0].seq) for i in group}
        touched: set[ChunkKey] = set()
        for i in group:
            for sale in pieces[i][0]:
                if sale.seq in accepted:
                    target = home_of[void_target(gen, sale)]
                    voided.setdefault(target, set()).add(sale.voids)
                    touched.add(target)
        chunks = tuple(
            ChunkWrite(sales, data, frozenset(voided.get((gen, sales[0].seq), ())),
                       {seq: code for seq, code in refused.items() if sales[0].seq <= seq <= sales[-1].seq})
            for sales, data in (pieces[i] for i in group))
        marks = tuple(VoidMark(g, first, frozenset(voided[(g, first)]), None if (g, first) in written else etags[(g, first)])
                      for g, first in sorted(touched - rows))
        ledger = BranchLedger(
            branch=before.branch,
            watermarks={**ledger.watermarks, gen: ledger.apply_of(gen).with_stored((c.first_seq, c.last_seq) for c in chunks)},
            sales_applied=ledger.sales_applied + sum(1 for c in chunks for s in c.sales if s.seq not in refused),
            total_paisa=ledger.total_paisa + sum(c.total_paisa for c in chunks),
            last_push=max(filter(None, [ledger.last_push, pushed_at])),
        )
        txns.append(ApplyTxn(chunks, marks, ledger))
        written |= rows | touched
    return ApplyWrite(before.branch, gen, applied_at, tuple(txns))
