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

Voids and refunds are checked here because the till's own check can be undone by a
restore: each must name a sale of this branch (any generation) that the cloud holds or that
comes earlier in the same batch. A void voids it at most once and carries exactly minus its
total; a refund returns per line at most the quantity and the amount sold and not yet
refunded (earlier refunds stored or in the same batch). A voided sale cannot be refunded,
nor a refunded one voided (the refund already settled part of it; what is left is refunded
too). A refused event still takes its number (the sequence stays gap-free and the sales
behind it apply); it is stored as refused, counts nothing, and is reported.
"""

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

from shared.errors import ContractError, ErrorCode
from shared.models import Sale, SaleKind, SaleLine, SalesBatch, sale_number

from .catalog import PROPERTY_MAX_BYTES, TXN_MAX_DATA_BYTES, TXN_MAX_OPS
from .summaries import DaySummary, business_day, fold_events, pack

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


# Per line position (from 1) of a sale: the quantity and paisa refunded so far.
Refunded = Mapping[int, tuple[Decimal, int]]


@dataclass(frozen=True)
class ReferencedSale:
    """What the cloud holds of a sale a void or refund refers to (read from the chunk that stores it)."""

    kind: SaleKind
    total: int
    voided: bool  # already voided by an applied void
    refused: bool = False  # itself a refused event
    lines: tuple[SaleLine, ...] = ()
    refunded: Refunded = field(default_factory=dict)

    @classmethod
    def of(cls, sale: Sale, voided: bool = False, refused: bool = False, refunded: Refunded | None = None):
        return cls(sale.kind, sale.total, voided, refused, tuple(sale.lines), dict(refunded or {}))


@dataclass(frozen=True)
class Refused:
    seq: int
    sale_id: str
    code: ErrorCode
    reason: str
    kind: SaleKind = SaleKind.VOID


@dataclass(frozen=True)
class ApplyPlan:
    new_sales: list[Sale]
    state: ApplyState
    duplicates: int
    # Maximal runs of consecutive new seqs; each becomes its own chunk row(s), so chunk
    # rows never interleave and reading them in key order is reading in seq order.
    runs: list[list[Sale]] = field(default_factory=list)
    generation: int = 1
    # New void and refund events refused (stored under their number, counted nowhere), by seq.
    refused: dict[int, Refused] = field(default_factory=dict)
    # Sales voided by this batch's accepted voids.
    voided: list[SaleKey] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.new_sales)

    @property
    def counted(self) -> list[Sale]:
        """The new events that count: every new one except refused voids and refunds."""
        return [s for s in self.new_sales if s.seq not in self.refused]

    @property
    def sales_counted(self) -> int:
        """How many of the new events count as sales: a shift close is a report, not a sale."""
        return sum(1 for s in self.counted if s.kind != SaleKind.SHIFT_CLOSE)

    @property
    def total_paisa(self) -> int:
        return sum(s.total for s in self.counted)


def consecutive_runs(sales: Sequence[Sale], ends: frozenset[int] = frozenset()) -> list[list[Sale]]:
    """Maximal runs of consecutive seqs; a run also ends after a seq in `ends`."""
    runs: list[list[Sale]] = []
    for sale in sales:
        if runs and sale.seq == runs[-1][-1].seq + 1 and runs[-1][-1].seq not in ends:
            runs[-1].append(sale)
        else:
            runs.append([sale])
    return runs


def merge_batches(batches: Sequence[SalesBatch]) -> tuple[SalesBatch, frozenset[int]] | None:
    """Several validated messages of one branch and generation as one batch, and the last seq of each.

    Planned as one, they are read, folded and committed once; each message's sales still
    become chunk rows of their own (`plan_apply(ends=...)`), so a chunk holds at most one
    message's sales, as the readers of chunks expect. None when they cannot be one batch:
    other branches or generations, or seqs that overlap (a resend beside its original).
    """
    first = batches[0]
    if any(b.branch != first.branch or b.generation != first.generation for b in batches):
        return None
    ordered = sorted(batches, key=lambda b: b.sales[0].seq)
    if any(b.sales[0].seq <= a.sales[-1].seq for a, b in zip(ordered, ordered[1:])):
        return None
    merged = SalesBatch.model_construct(v=max(b.v for b in ordered), branch=first.branch, generation=first.generation,
                                        sent_at=max(b.sent_at for b in ordered), sales=[s for b in ordered for s in b.sales])
    return merged, frozenset(b.sales[-1].seq for b in ordered)


def void_target(generation: int, void: Sale) -> SaleKey:
    """The sale a void or a refund refers to."""
    if void.kind == SaleKind.REFUND:
        return (void.refunds.generation, void.refunds.seq)
    return (void.voids_generation or generation, void.voids)


REFERRING_KINDS = frozenset({SaleKind.VOID, SaleKind.REFUND})


def plan_apply(state: ApplyState, batch: SalesBatch, targets: Mapping[SaleKey, ReferencedSale] | None = None,
               ends: frozenset[int] = frozenset()) -> ApplyPlan:
    """Plan `batch` against its generation's `state`; `targets` holds the stored sales its new voids and refunds name.

    `ends`: seqs after which a run (a chunk row) ends even if the next seq follows (merge_batches).

    A till pushes a void or refund only in the message of the sale it refers to or once the
    cloud has acknowledged that sale, so one naming a sale the cloud does not hold is
    refused: it is never left waiting, since the database that could push it again may be gone.
    """
    new = [s for s in batch.sales if not state.is_stored(s.seq)]  # stored seqs change nothing
    runs = consecutive_runs(new, ends)
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
                targets: Mapping[SaleKey, ReferencedSale]) -> tuple[dict[int, Refused], list[SaleKey]]:
    """Which of the new voids and refunds are refused, and which sales the accepted voids void, in seq order."""
    earlier: dict[int, Sale] = {}
    voided: list[SaleKey] = []
    refunded: dict[SaleKey, dict[int, tuple[Decimal, int]]] = {}  # this batch's accepted refunds so far
    refused: dict[int, Refused] = {}
    for sale in new_sales:
        if sale.kind in REFERRING_KINDS:
            key = void_target(generation, sale)
            in_batch = earlier.get(key[1]) if key[0] == generation else None
            target = ReferencedSale.of(in_batch) if in_batch is not None else targets.get(key)
            if target is not None:
                target = ReferencedSale(target.kind, target.total, target.voided or key in voided, target.refused,
                                        target.lines, add_refunds(target.refunded, refunded.get(key, {})))
            problem = (_void_problem(sale, key, target) if sale.kind == SaleKind.VOID
                       else _refund_problem(sale, key, target))
            if problem is not None:
                refused[sale.seq] = Refused(sale.seq, sale.sale_id, *problem, kind=sale.kind)
            elif sale.kind == SaleKind.VOID:
                voided.append(key)
            else:
                refunded[key] = add_refunds(refunded.get(key, {}), returned(sale))
        earlier[sale.seq] = sale
    return refused, voided


def returned(refund: Sale) -> dict[int, tuple[Decimal, int]]:
    return {r.line: (r.qty, r.amount) for r in refund.returns or ()}


def add_refunds(a: Refunded, b: Refunded) -> dict[int, tuple[Decimal, int]]:
    out = dict(a)
    for line, (qty, amount) in b.items():
        had_qty, had_amount = out.get(line, (Decimal(0), 0))
        out[line] = (had_qty + qty, had_amount + amount)
    return out


def _target_problem(event: Sale, what: str, key: SaleKey, target: ReferencedSale | None) -> tuple[ErrorCode, str] | None:
    name = sale_number(*key)
    code = ErrorCode.VOID_UNKNOWN_SALE if event.kind == SaleKind.VOID else ErrorCode.REFUND_UNKNOWN_SALE
    if target is None:
        return (code, f"{what} {event.seq} refers to sale {name}, which the cloud does not hold (a till pushes a "
                f"{what} only with its sale or once the cloud has acknowledged the sale), so this {what} is not counted")
    if target.kind != SaleKind.SALE or target.refused:
        return (code, f"{what} {event.seq} refers to number {name}, which is a {target.kind.replace('_', ' ')}, "
                "not a sale; it is not counted")
    return None


def _void_problem(void: Sale, key: SaleKey, target: ReferencedSale | None) -> tuple[ErrorCode, str] | None:
    name = sale_number(*key)
    if (problem := _target_problem(void, "void", key, target)) is not None:
        return problem
    if target.voided:
        return (ErrorCode.VOID_TWICE, f"void {void.seq} voids sale {name} a second time (a restored till's database "
                "no longer knew the first void); the first void counts, this one does not")
    if target.refunded:
        return (ErrorCode.VOID_OF_REFUNDED, f"void {void.seq} voids sale {name}, which was refunded in part already; "
                "a refunded sale is not voided (refund what is left of it instead), so this void is not counted")
    if void.total != -target.total:
        return (ErrorCode.VOID_WRONG_TOTAL, f"void {void.seq} carries {void.total} paisa but sale {name} was "
                f"{target.total} paisa; a void carries exactly minus the sale's total, so it is not counted")
    return None


def _refund_problem(refund: Sale, key: SaleKey, target: ReferencedSale | None) -> tuple[ErrorCode, str] | None:
    name = sale_number(*key)
    if (problem := _target_problem(refund, "refund", key, target)) is not None:
        return problem
    if target.voided:
        return (ErrorCode.REFUND_OF_VOIDED, f"refund {refund.seq} refunds sale {name}, which was voided; a voided "
                "sale has nothing left to refund, so this refund is not counted")
    for r in refund.returns:
        line = target.lines[r.line - 1] if r.line <= len(target.lines) else None
        if line is None or line.sku != r.sku:
            return (ErrorCode.REFUND_EXCEEDS_SALE, f"refund {refund.seq} returns {r.sku} as line {r.line} of sale "
                    f"{name}, which has no such line; it is not counted")
        qty, amount = target.refunded.get(r.line, (Decimal(0), 0))
        paid = line.net if line.net is not None else line.line_total
        if qty + r.qty > line.qty or amount + r.amount > paid:
            return (ErrorCode.REFUND_EXCEEDS_SALE, f"refund {refund.seq} returns {r.qty} of {r.sku} for {r.amount} "
                    f"paisa, but sale {name} sold {line.qty} for {paid} paisa of which {qty} for {amount} paisa are "
                    "refunded already; it is not counted")
    return None



# --- planning the write ----------------------------------------------------------------------


class StoredChunk(Protocol):
    """Where a stored sale that a void or refund names lives (store.Chunk is one)."""

    generation: int
    first_seq: int
    voided: frozenset[int]
    refunded: Mapping[int, Refunded]
    etag: str | None


# A chunk row: (generation, first seq).
ChunkKey = tuple[int, int]


# A chunk row's `data`: zlib of the JSON list of its sales, or (AS_SENT) the zlib JSON of the
# queue message's batch that carried exactly its sales, stored as it came once opened and
# validated, so the apply neither serialises nor compresses them again.
LIST_ENCODING = "zlib+json"
AS_SENT_ENCODING = "zlib+batch"


@dataclass(frozen=True)
class ChunkWrite:
    """A new chunk row: consecutive new events of the plan's generation, compressed."""

    sales: tuple[Sale, ...]
    data: bytes  # zlib of the sales' JSON (`encoding`), at most CHUNK_MAX_BYTES
    voided: frozenset[int] = frozenset()  # its sales voided by voids committed with it
    refused: Mapping[int, str] = field(default_factory=dict)  # its refused voids and refunds: seq -> reason code
    refunded: Mapping[int, Refunded] = field(default_factory=dict)  # its sales refunded by refunds committed with it
    encoding: str = LIST_ENCODING

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
    """A chunk row written before this transaction, given the whole set of its voided and refunded sales."""

    generation: int
    first_seq: int
    voided: frozenset[int]
    # If-Match as read; None for a chunk this apply wrote in an earlier transaction (the
    # store then holds the ETag that write returned).
    etag: str | None
    refunded: Mapping[int, Refunded] = field(default_factory=dict)


@dataclass(frozen=True)
class SummaryWrite:
    """A day summary row as it stands after its transaction (summaries.py), packed.

    `summary.etag`: If-Match as read; None for a day not stored yet (create) or, when this
    apply wrote it in an earlier transaction, the ETag that write returned (the store holds it).
    """

    summary: DaySummary
    parts: tuple[bytes, ...]

    @property
    def data_bytes(self) -> int:
        return sum(len(p) for p in self.parts)


@dataclass(frozen=True)
class SummaryInput:
    """What folding an apply into the day summaries needs besides the plan."""

    stored: Mapping[date, DaySummary]  # the summaries of the days the plan touches, as read (absent: none yet)
    originals: Mapping[SaleKey, Sale]  # the stored sales its voids and refunds name
    zone: ZoneInfo  # the business day's time zone


# A chunk piece spans at most this many business days, so its day rows fit its transaction.
PIECE_MAX_DAYS = 16


@dataclass(frozen=True)
class ApplyTxn:
    """One atomic write: new chunk rows, marks on stored ones, the day summaries and the ledger they lead to.

    The ledger row and the summary rows describe exactly the chunks written up to this
    transaction, so data, figures and watermark agree after every commit.
    """

    chunks: tuple[ChunkWrite, ...]
    marks: tuple[VoidMark, ...]
    ledger: BranchLedger  # etag None: the store writes it If-Match the previous ledger's
    summaries: tuple[SummaryWrite, ...] = ()

    @property
    def ops(self) -> int:
        return len(self.chunks) + len(self.marks) + len(self.summaries) + 1

    @property
    def data_bytes(self) -> int:
        return sum(len(c.data) for c in self.chunks) + sum(s.data_bytes for s in self.summaries)


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


_SALE_LIST = TypeAdapter(list[Sale])


def encode_run(run: Sequence[Sale]) -> list[tuple[tuple[Sale, ...], bytes]]:
    """A run of consecutive sales as compressed pieces of at most CHUNK_MAX_BYTES each."""
    # Compact UTF-8 JSON, byte for byte what json.dumps of model_dump gave, in half the time:
    # it runs while the branch's turn is held, once per message.
    data = zlib.compress(_SALE_LIST.dump_json(list(run)), 6)
    if len(data) <= CHUNK_MAX_BYTES:
        return [(tuple(run), data)]
    if len(run) == 1:
        raise ValueError(f"sale {run[0].seq} compresses to {len(data)} bytes, more than a chunk row holds")
    mid = len(run) // 2
    return encode_run(run[:mid]) + encode_run(run[mid:])


def _group(pieces: Sequence[tuple[tuple[Sale, ...], bytes]], marks: Sequence[int],
           days: Sequence[set[date]] = (), reserve: Mapping[date, int] | None = None) -> list[list[int]]:
    """Piece indexes per transaction; `marks[i]`: at most how many void marks piece i adds to its transaction.

    `days[i]`: the business days piece i's events fall on; each day first met in a
    transaction adds its summary row, of at most `reserve[day]` bytes. One operation of each
    transaction is the ledger row.
    """
    groups: list[list[int]] = []
    size = ops = 0
    held: set[date] = set()

    def cost(data: bytes, extra: int, new_days: set[date]) -> tuple[int, int]:
        return (1 + min(extra, TXN_MAX_OPS - 2) + len(new_days),
                len(data) + sum((reserve or {}).get(d, 0) for d in new_days))

    for i, ((_, data), extra) in enumerate(zip(pieces, marks)):
        piece_days = days[i] if days else set()
        need, grows = cost(data, extra, piece_days - held)
        if not groups or ops + need > TXN_MAX_OPS - 1 or size + grows > TXN_MAX_DATA_BYTES:
            groups.append([])
            size = ops = 0
            held = set()
            need, grows = cost(data, extra, piece_days)
        groups[-1].append(i)
        size += grows
        ops += need
        held |= piece_days
    return groups


def _split_by_days(sales: tuple[Sale, ...], data: bytes, zone: ZoneInfo) -> list[tuple[tuple[Sale, ...], bytes]]:
    """A piece whose events span more than PIECE_MAX_DAYS business days, cut so each piece's day rows fit."""
    if len({business_day(s.recorded_at, zone) for s in sales}) <= PIECE_MAX_DAYS:
        return [(sales, data)]
    out: list[list[Sale]] = [[]]
    seen: set[date] = set()
    for sale in sales:
        day = business_day(sale.recorded_at, zone)
        if day not in seen and len(seen) == PIECE_MAX_DAYS:
            out.append([])
            seen = set()
        seen.add(day)
        out[-1].append(sale)
    return [piece for run in out for piece in encode_run(run)]


def _pieces(run: Sequence[Sale], as_sent: Mapping[tuple[int, int], bytes]) -> list[tuple[tuple[Sale, ...], bytes]]:
    data = as_sent.get((run[0].seq, run[-1].seq))
    if data is not None and len(data) <= CHUNK_MAX_BYTES:
        return [(tuple(run), data)]
    return encode_run(run)


def plan_transactions(before: BranchLedger, plan: ApplyPlan, targets: Mapping[SaleKey, StoredChunk],
                      pushed_at: datetime, applied_at: datetime, summaries: SummaryInput | None = None,
                      as_sent: Mapping[tuple[int, int], bytes] | None = None) -> ApplyWrite:
    """The chunks, void marks and ledger of `plan` against `before`, cut into transactions.

    `as_sent`: (first seq, last seq) -> the zlib JSON of the validated message batch that
    carried exactly those sales; a run that is a whole message is stored as it came
    (AS_SENT_ENCODING) instead of being encoded again.

    `targets`: the stored chunks holding the sales its accepted voids and refunds name. A
    void or refund is committed in the transaction of its own chunk, together with the mark
    on the chunk of the sale it refers to (If-Match), so a sale is voided at most once and
    refunded at most what it sold. Usually one transaction; several only when the chunks do
    not fit one (100 operations, the data limit).
    """
    gen = plan.generation
    accepted = {s.seq for s in plan.counted if s.kind in REFERRING_KINDS}
    refused = {seq: str(r.code) for seq, r in plan.refused.items()}
    as_sent = as_sent or {}
    pieces = [piece for run in plan.runs for piece in _pieces(run, as_sent)]
    folding = _Folding(before.branch, gen, plan, summaries) if summaries is not None else None
    if folding is not None:
        pieces = [cut for sales, data in pieces for cut in _split_by_days(sales, data, summaries.zone)]
    # Where each voided sale is stored: a piece written now, or a chunk already stored.
    home_of: dict[SaleKey, ChunkKey] = {(gen, s.seq): (gen, sales[0].seq) for sales, _ in pieces for s in sales}
    voided: dict[ChunkKey, set[int]] = {}
    refunded: dict[ChunkKey, dict[int, Refunded]] = {}
    etags: dict[ChunkKey, str | None] = {}
    for key, chunk in targets.items():
        row = (chunk.generation, chunk.first_seq)
        home_of.setdefault(key, row)
        voided.setdefault(row, set(chunk.voided))
        refunded.setdefault(row, dict(chunk.refunded))
        etags.setdefault(row, chunk.etag)
    written: set[ChunkKey] = set()
    ledger = before
    txns: list[ApplyTxn] = []
    marks_per_piece = [sum(1 for s in sales if s.seq in accepted) for sales, _ in pieces]
    groups = (_group(pieces, marks_per_piece, [folding.days(sales) for sales, _ in pieces], folding.reserve)
              if folding is not None else _group(pieces, marks_per_piece))
    for group in groups:
        rows = {(gen, pieces[i][0][0].seq) for i in group}
        touched: set[ChunkKey] = set()
        for i in group:
            for sale in pieces[i][0]:
                if sale.seq in accepted:
                    key = void_target(gen, sale)
                    target = home_of[key]
                    if sale.kind == SaleKind.VOID:
                        voided.setdefault(target, set()).add(key[1])
                    else:
                        marks_of = refunded.setdefault(target, {})
                        marks_of[key[1]] = add_refunds(marks_of.get(key[1], {}), returned(sale))
                    touched.add(target)
        chunks = tuple(
            ChunkWrite(sales, data, frozenset(voided.get((gen, sales[0].seq), ())),
                       {seq: code for seq, code in refused.items() if sales[0].seq <= seq <= sales[-1].seq},
                       dict(refunded.get((gen, sales[0].seq), {})),
                       AS_SENT_ENCODING if as_sent.get((sales[0].seq, sales[-1].seq)) is data else LIST_ENCODING)
            for sales, data in (pieces[i] for i in group))
        marks = tuple(VoidMark(g, first, frozenset(voided.get((g, first), ())),
                               None if (g, first) in written else etags[(g, first)], dict(refunded.get((g, first), {})))
                      for g, first in sorted(touched - rows))
        ledger = BranchLedger(
            branch=before.branch,
            watermarks={**ledger.watermarks, gen: ledger.apply_of(gen).with_stored((c.first_seq, c.last_seq) for c in chunks)},
            # A shift close is a report the till made, not a sale: it takes its number and counts nowhere.
            sales_applied=ledger.sales_applied + sum(1 for c in chunks for s in c.sales
                                                     if s.seq not in refused and s.kind != SaleKind.SHIFT_CLOSE),
            total_paisa=ledger.total_paisa + sum(c.total_paisa for c in chunks),
            last_push=max(filter(None, [ledger.last_push, pushed_at])),
        )
        days = folding.fold([s for c in chunks for s in c.sales]) if folding is not None else ()
        txns.append(ApplyTxn(chunks, marks, ledger, days))
        written |= rows | touched
    return ApplyWrite(before.branch, gen, applied_at, tuple(txns))


class _Folding:
    """The day summaries of an apply, folded transaction by transaction (summaries.py)."""

    def __init__(self, branch: str, generation: int, plan: ApplyPlan, given: SummaryInput):
        self.branch, self.generation, self.zone = branch, generation, given.zone
        self.refused = set(plan.refused)
        # A void or refund may name a sale of this batch committed in an earlier transaction.
        self.originals = {**given.originals, **{(generation, s.seq): s for s in plan.new_sales}}
        self.stored = given.stored
        self.current: dict[date, DaySummary] = {}  # days as the transactions so far leave them (copied when first folded)
        self.written: set[date] = set()  # days this apply wrote already: the store holds their ETags
        # The most bytes each day's row can take in any transaction: the day with the whole plan folded in.
        whole = fold_events(branch, generation, self._counted(plan.new_sales), self.originals, self.zone,
                            into={day: s.copy() for day, s in given.stored.items()})
        # Packed once: the transaction that completes a day writes exactly this, so it is not packed again.
        self.whole, self.packed = whole, {day: pack(s) for day, s in whole.items()}
        self.unfolded = len(self._counted(plan.new_sales))  # events no transaction has folded yet
        self.reserve = {day: sum(len(p) for p in parts) + 1024 for day, parts in self.packed.items()}

    def _counted(self, sales) -> list[Sale]:
        return [s for s in sales if s.seq not in self.refused]

    def days(self, sales) -> set[date]:
        return {business_day(s.recorded_at, self.zone) for s in self._counted(sales)}

    def fold(self, sales) -> tuple[SummaryWrite, ...]:
        counted = self._counted(sales)
        days = self.days(counted)
        if len(counted) == self.unfolded and not self.written:
            # The usual single transaction: its days are the whole plan's, folded already.
            self.current.update({day: self.whole[day] for day in days})
        else:
            for day in days - self.current.keys():
                if day in self.stored:
                    self.current[day] = self.stored[day].copy()
            fold_events(self.branch, self.generation, counted, self.originals, self.zone, into=self.current)
        self.unfolded -= len(counted)
        out = []
        for day in sorted(days):
            summary = self.current[day]
            if day in self.written:
                summary.etag = None
            parts = self.packed[day] if summary == self.whole.get(day) else pack(summary)
            # The last transaction's days change no more: they need no copy of their own.
            out.append(SummaryWrite(summary.copy() if self.unfolded else summary, parts))
        self.written |= days
        return tuple(out)
