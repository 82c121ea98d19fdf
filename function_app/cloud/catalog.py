"""Catalog versioning as pure functions (no I/O).

Every change to a SKU gets the next version from one counter, in the same atomic write
that stores it, so readers only ever see a prefix of the versions. A SKU keeps exactly
one version row (its latest); a deleted SKU keeps a tombstone row until it is purged,
and purging advances the tombstone horizon: a branch whose cursor lies below it may
have missed a delete and must resync in full.
"""

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared import limits
from shared.errors import ContractError, ErrorCode
from shared.models import CatalogEntry, CatalogPage, Product

# A transaction holds at most 100 operations; one of them is the counter update.
TXN_MAX_OPS = 100


@dataclass(frozen=True)
class Counter:
    last_version: int = 0
    tombstone_horizon: int = 0


@dataclass(frozen=True)
class IndexEntry:
    """Where a SKU's current row is, and a digest of its product to skip unchanged imports."""

    sku: str
    version: int
    deleted: bool
    digest: str = ""


@dataclass(frozen=True)
class VersionRow:
    version: int
    sku: str
    product: Product | None  # None: a tombstone

    @property
    def deleted(self) -> bool:
        return self.product is None

    def entry(self) -> CatalogEntry:
        return CatalogEntry(version=self.version, sku=self.sku, deleted=self.deleted, product=self.product)


@dataclass(frozen=True)
class CatalogWrite:
    """Store `row`, drop the SKU's previous version row (if any), point the index at `row`."""

    row: VersionRow
    previous_version: int | None

    @property
    def ops(self) -> int:
        return 2 + (self.previous_version is not None)


def digest(product: Product) -> str:
    return hashlib.sha256(product.model_dump_json().encode()).hexdigest()[:32]


def check_unique(products: Sequence[Product]) -> None:
    seen: set[str] = set()
    for p in products:
        if p.sku in seen:
            raise ContractError(ErrorCode.BAD_REQUEST, f"sku {p.sku} appears more than once in the import; keep one line per sku")
        seen.add(p.sku)


def plan_upserts(counter: Counter, products: Sequence[Product], index: Mapping[str, IndexEntry]) -> list[CatalogWrite]:
    """Versions for the products that differ from what is stored, in the given order."""
    check_unique(products)
    writes: list[CatalogWrite] = []
    version = counter.last_version
    for p in products:
        current = index.get(p.sku)
        if current is not None and not current.deleted and current.digest == digest(p):
            continue  # unchanged: re-importing a full price list costs branches nothing
        version += 1
        writes.append(CatalogWrite(VersionRow(version, p.sku, p), current.version if current else None))
    return writes


def plan_delete(counter: Counter, sku: str, current: IndexEntry | None) -> CatalogWrite:
    if current is None or current.deleted:
        raise ContractError(ErrorCode.NOT_FOUND, f"sku {sku} is not in the catalog (unknown or already deleted)")
    return CatalogWrite(VersionRow(counter.last_version + 1, sku, None), current.version)


def group_writes(writes: Sequence[CatalogWrite], max_ops: int = TXN_MAX_OPS - 1) -> list[list[CatalogWrite]]:
    """Split writes, in version order, into transactions of at most `max_ops` operations."""
    groups: list[list[CatalogWrite]] = []
    used = max_ops
    for w in writes:
        if used + w.ops > max_ops:
            groups.append([])
            used = 0
        groups[-1].append(w)
        used += w.ops
    return groups


def plan_purge(rows_from_start: Iterable[VersionRow], up_to: int) -> list[VersionRow]:
    """Tombstones that may go: those at or below `up_to` and older than every live row.

    Purging only below the oldest live row keeps a fresh pull from 0 correct: its first
    page already starts above the new horizon, so paging never lands under it.
    """
    purge: list[VersionRow] = []
    for row in rows_from_start:
        if row.version > up_to or not row.deleted:
            break
        purge.append(row)
    return purge


def needs_full_resync(cursor: int, counter: Counter) -> bool:
    # Below the horizon a purged delete may have been missed; above the last version the
    # branch holds versions this catalog never issued (the catalog was reset).
    return 0 < cursor < counter.tombstone_horizon or cursor > counter.last_version


def build_page(cursor: int, rows: Sequence[VersionRow], limit: int, exhausted: bool, counter: Counter) -> CatalogPage:
    """The pull answer's catalog part.

    `rows` are version rows above `cursor` as read (at most `limit`), `exhausted` says
    the read reached the end, and `counter` was read before the rows, so every version
    up to counter.last_version was either read or superseded by one that was.
    """
    if not 1 <= limit <= limits.CATALOG_PAGE_MAX:
        raise ValueError(f"limit {limit} out of range")
    if needs_full_resync(cursor, counter):
        return CatalogPage(entries=[], next_cursor=0, more=True, full_resync=True)
    ordered = sorted((r for r in rows if r.version > cursor), key=lambda r: r.version)[:limit]
    if len(ordered) == limit and len(rows) > limit:
        exhausted = False
    # A page read across several requests can meet a SKU twice when it changed meanwhile.
    latest: dict[str, VersionRow] = {}
    for r in ordered:
        latest[r.sku] = r
    entries = [r.entry() for r in sorted(latest.values(), key=lambda r: r.version)]
    last_read = ordered[-1].version if ordered else cursor
    # At the end, jump to the counter: the versions in between were superseded or purged.
    next_cursor = max(cursor, last_read, counter.last_version if exhausted else 0)
    return CatalogPage(entries=entries, next_cursor=next_cursor, more=not exhausted, full_resync=False)
