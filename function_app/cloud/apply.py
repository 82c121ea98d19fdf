"""Exactly-once apply of a sales batch, as pure functions (no I/O).

Per branch the cloud keeps `applied_through` (every seq up to it is stored) and the
inclusive ranges stored above it while a gap waits to be filled. Planning a batch says
which sales are new and what the state becomes; the store then writes both in one
transaction, so data and watermark can never disagree.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shared.errors import ContractError, ErrorCode
from shared.models import Sale, SalesBatch

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
class ApplyPlan:
    new_sales: list[Sale]
    state: ApplyState
    duplicates: int
    # Maximal runs of consecutive new seqs; each becomes its own chunk row(s), so chunk
    # rows never interleave and reading them in key order is reading in seq order.
    runs: list[list[Sale]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.new_sales)

    @property
    def total_paisa(self) -> int:
        return sum(s.total for s in self.new_sales)


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


def plan_apply(state: ApplyState, batch: SalesBatch) -> ApplyPlan:
    return plan_sales(state, batch.sales)
