"""Exactly-once apply of a sales batch, as pure functions (no I/O).

Per branch and numbering generation the cloud keeps `applied_through` (every seq up to it
is stored) and the inclusive ranges stored above it while a gap waits to be filled. A
till starts a new generation with every restore, so a restored till never numbers a sale
the way a lost one was numbered, and the old generation's messages still apply under it.
Planning a batch says which sales are new, which of its voids are refused, and what the
state becomes; the store then writes all of it in one transaction, so data and watermark
can never disagree.

Voids are checked here because the till's own check can be undone by a restore: a void
must name a sale of this branch (any generation) that the cloud holds or that comes
earlier in the same batch, void it at most once, and carry exactly minus its total. A
refused void still takes its number (the sequence stays gap-free and the sales behind it
apply); it is stored as refused, counts nothing, and is reported.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from shared.errors import ContractError, ErrorCode
from shared.models import Sale, SaleKind, SalesBatch, sale_number

# (generation, seq): a sale's identity within its branch.
SaleKey = tuple[int, int]

# Each range costs ~35 characters of a string property limited to 32K characters; a
# branch with this many holes in its sequence is broken, and its batch is dead-lettered
# (the branch re-pushes unacknowledged sales later, so nothing is lost).
MAX_RANGES = 500


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


def plan_sales(state: ApplyState, sales: Sequence[Sale]) -> ApplyPlan:
    """What to store of ascending `sales` given `state`; stored seqs change nothing."""
    new = [s for s in sales if not state.is_stored(s.seq)]
    runs = consecutive_runs(new)
    after = state.with_stored((run[0].seq, run[-1].seq) for run in runs)
    if len(after.ranges) > MAX_RANGES:
        raise ContractError(
            ErrorCode.MALFORMED_MESSAGE,
            f"batch would leave more than {MAX_RANGES} gaps in the branch's sequence; "
            "the branch must push its sales in order (it re-pushes unacknowledged sales on its next sync)",
        )
    return ApplyPlan(new_sales=new, state=after, duplicates=len(sales) - len(new), runs=runs)


def void_target(generation: int, void: Sale) -> SaleKey:
    return (void.voids_generation or generation, void.voids)


def plan_apply(state: ApplyState, batch: SalesBatch, targets: Mapping[SaleKey, VoidTarget] | None = None) -> ApplyPlan:
    """Plan `batch` against its generation's `state`; `targets` holds the stored sales its new voids name.

    A till pushes a void only in the message of the sale it voids or once the cloud has
    acknowledged that sale, so a void naming a sale the cloud does not hold is refused: it
    is never left waiting, since the database that could push it again may be gone.
    """
    plan = plan_sales(state, batch.sales)
    refused, voided = check_voids(batch.generation, plan.new_sales, targets or {})
    return ApplyPlan(new_sales=plan.new_sales, state=plan.state, duplicates=plan.duplicates, runs=plan.runs,
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

