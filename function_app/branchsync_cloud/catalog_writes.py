"""Head office's catalog writes: import and delete products, and compact (also nightly, by timer).

Each write reads the counter and the index buckets it touches, plans with catalog.py (pure)
and commits the plan's transactions ETag-checked on the counter; a lost race re-reads
and re-plans. What a branch pulls of the catalog is pull.py.
"""

import logging

from pydantic import TypeAdapter, ValidationError

from shared.errors import ContractError, ErrorCode, shown
from shared.models import CatalogCompaction, CatalogImport, CatalogWriteResult, Sku

from .catalog import Counter, check_unique, plan_compaction, plan_delete, plan_import, sku_bucket
from .conflicts import retrying
from .store import Store
from .telemetry import dims

log = logging.getLogger("branchsync.cloud")

_SKU = TypeAdapter(Sku)


class CatalogWrites:
    def __init__(self, store: Store):
        self.store = store

    def import_catalog(self, request: CatalogImport) -> CatalogWriteResult:
        """Write changed products and deleted SKUs' tombstones under fresh versions: one transaction,
        or a few for a large catalog (plan_import).

        Each transaction carries the counter (If-Match), the new segment(s) and the touched
        index buckets. Unchanged products and SKUs already deleted are skipped, which also
        makes a retry after a lost race continue where the committed transactions stopped.
        A deleted SKU the catalog never had refuses the whole request, before anything is
        written.
        """
        products, deleted = request.products, request.deleted
        check_unique(products, deleted)
        touched = {sku_bucket(p.sku) for p in products} | {sku_bucket(sku) for sku in deleted}
        written: list[int] = []

        def attempt() -> int:
            base = self.store.get_catalog_counter()
            buckets = self.store.get_catalog_index(touched)
            plan = plan_import(base.counter, products, {n: b.entries for n, b in buckets.items()}, deleted)
            for txn in plan:
                base, changed = self.store.commit_catalog(base, txn, buckets)
                buckets = {**buckets, **changed}
                written.extend(txn.versions)
            return base.counter.last_version

        last_version = retrying()(attempt)
        log.info("catalog import products=%d deleted=%d written=%d versions=%s", len(products), len(deleted),
                 len(written), f"{written[0]}-{written[-1]}" if written else "none")
        if not written:
            return CatalogWriteResult(written=0, first_version=last_version, last_version=last_version)
        return CatalogWriteResult(written=len(written), first_version=written[0], last_version=written[-1])

    def delete_sku(self, sku: str) -> CatalogWriteResult:
        try:
            sku = _SKU.validate_python(sku)
        except ValidationError:
            raise ContractError(ErrorCode.BAD_REQUEST, f"{shown(sku)} is not a valid sku") from None

        def attempt() -> int:
            base = self.store.get_catalog_counter()
            buckets = self.store.get_catalog_index([sku_bucket(sku)])
            txn = plan_delete(base.counter, sku, buckets[sku_bucket(sku)].entries)
            self.store.commit_catalog(base, txn, buckets)
            return txn.counter.last_version

        version = retrying()(attempt)
        log.info("catalog delete sku=%s version=%d", sku, version)
        return CatalogWriteResult(written=1, first_version=version, last_version=version)

    def purge_tombstones(self, up_to: int | None = None) -> int:
        """Compact the catalog (see compact_catalog); returns how many tombstones were purged."""
        return self.compact_catalog(up_to).purged

    def compact_catalog(self, up_to: int | None = None) -> CatalogCompaction:
        """Drop tombstones older than every live product (and at most `up_to`) and compact.

        Segments are rewritten without superseded entries and purged tombstones, and small
        neighbours merged. The horizon rises in the same transaction that drops a
        tombstone, so a branch is told to resync before it could miss one. Safe to run at
        any time, alongside pulls, imports and another compaction (every write is
        ETag-checked on the counter); the timer function runs it nightly.
        """
        limit = 2**53 if up_to is None else up_to
        purged = 0
        before: tuple[int, int] | None = None  # (segments, entries) as first read
        after = (0, 0)
        counter = Counter()

        def attempt() -> None:
            nonlocal purged, before, after, counter
            base = self.store.get_catalog_counter()  # first: a write after it fails the plan's ETag
            buckets = self.store.get_catalog_index()
            segments = list(self.store.scan_catalog())
            entries = sum(len(seg.rows) for seg in segments)
            before = before or (len(segments), entries)
            plan = plan_compaction(base.counter, {n: b.entries for n, b in buckets.items()}, segments, limit)
            rows = {seg.last_version: len(seg.rows) for seg in segments}
            removed = written = gone = 0
            for txn in plan:
                base, changed = self.store.commit_catalog(base, txn, buckets)
                buckets = {**buckets, **changed}
                purged += txn.purged
                replaced = {*txn.deleted, *(w.segment.last_version for w in txn.rewritten)}
                removed += sum(rows.pop(k, 0) for k in replaced)
                written += sum(len(w.segment.rows) for w in txn.rewritten)
                gone += len(txn.deleted)
            after = (len(segments) - gone, entries - removed + written)
            counter = base.counter

        retrying()(attempt)
        result = CatalogCompaction(purged=purged, segments_before=before[0], segments_after=after[0],
                                   entries_before=before[1], entries_after=after[1],
                                   last_version=counter.last_version, tombstone_horizon=counter.tombstone_horizon)
        log.info("catalog compaction purged=%d segments=%d->%d entries=%d->%d horizon=%d", purged, before[0],
                 after[0], before[1], after[1], counter.tombstone_horizon,
                 extra=dims(event="catalog_compaction", purged=purged, entries=after[1], segments=after[0]))
        return result
