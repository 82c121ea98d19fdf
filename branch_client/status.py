"""What a till knows about its sync, as one typed object: `read(store)`.

The CLI (`status`, `enroll`, `support-bundle`), `doctor` and the till's sync line all read
this one object, so a field renamed in the store fails in one place instead of as a key
missing at run time. `as_json()` keeps the keys `status --json` has always printed.
The store's own read (`Store.status()`) stays the raw row; nothing here does I/O beyond
calling it.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store


@dataclass(frozen=True)
class LastRefusal:
    """The cloud's latest refusal of a queue message sent as this branch (reported on the pull)."""

    at: str
    code: str                      # a shared.errors.ErrorCode value (kept as text: a newer cloud may send more)
    reason: str
    seq: int | None = None
    sale_id: str | None = None
    generation: int | None = None
    number: str | None = None      # the refused sale's printed number (14, or 2-14)
    this_till: bool | None = None  # the refused sale is this till's own; None: cannot tell


@dataclass(frozen=True)
class RestoreRecord:
    """What the last `branchsync restore` did."""

    at: str
    source: str
    generation: int
    safety_backup: str | None = None
    lost_sales: list[str] = field(default_factory=list)
    lost_identity: str | None = None
    generation_taken: int | None = None  # the generation a restore of a newer backup found already in use


@dataclass(frozen=True)
class UnsendableSale:
    """A sale kept here that no push can carry: too large for one queue message."""

    seq: int
    sale_id: str
    size: int
    reason: str


@dataclass(frozen=True)
class BranchStatus:
    pending: int                   # events not acknowledged by the cloud
    pushed_unacked: int
    never_pushed: int
    applied_through: int           # the cloud's watermark of the generation new sales are numbered in
    generation: int
    catalog_version: int
    products: int
    sales_recorded: int | None     # None: read without the lifetime figures (read(store, lifetime=False))
    last_seq: int
    last_number: str | None
    total_paisa: int | None        # takings: voids carry negative totals; None as sales_recorded
    last_pull: str | None
    last_push: str | None
    last_sync_ok: str | None
    last_error: str | None
    last_error_at: str | None
    last_refusal: LastRefusal | None
    restored: RestoreRecord | None
    unsendable: list[UnsendableSale]
    branch: str | None
    cloud_url: str | None
    enrolled: bool
    schema_version: int
    home: str
    last_error_code: str | None = None  # the code of last_error, when it has one (branch_client.errors, ErrorCode)

    @property
    def online(self) -> bool:
        """The last sync reached the cloud and no error came after it (False before the first sync)."""
        return bool(self.last_sync_ok) and not self.last_error

    def as_json(self) -> dict:
        return asdict(self)


def _known(cls, facts: Mapping[str, Any]) -> dict:
    names = cls.__dataclass_fields__
    return {k: v for k, v in facts.items() if k in names}


def from_facts(facts: Mapping[str, Any]) -> BranchStatus:
    """The typed status from the store's row; keys the store adds later are left out, never fatal."""
    values = _known(BranchStatus, facts)
    refusal, restored = facts.get("last_refusal"), facts.get("restored")
    values["last_refusal"] = LastRefusal(**_known(LastRefusal, refusal)) if refusal else None
    values["restored"] = RestoreRecord(**_known(RestoreRecord, restored)) if restored else None
    values["unsendable"] = [UnsendableSale(**_known(UnsendableSale, u)) for u in facts.get("unsendable") or []]
    return BranchStatus(**values)


def read(store: "Store", lifetime: bool = True) -> BranchStatus:
    """The status of the till whose store is open: what is pending, what failed and why; never the secret.

    `lifetime=False`: without the sales recorded and the takings since the till began (None),
    which read every sale; what the till's sync line shows every 3 s does not need them."""
    return from_facts(store.status(lifetime))
