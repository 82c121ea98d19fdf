"""Head office's reads of the applied sales: the export, the price-differences report, and the
reports from the day summaries.

The export and the price differences page through the sales table up to each generation's
applied_through (only sales at or below it are final), resuming from an opaque `next`
token. The sales, shifts and exceptions reports read the day summaries only (one range
query per branch), never the sales; `rebuild_summaries` writes those summaries from the
stored sales once, for sales applied before the apply kept them.
"""

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from shared import limits
from shared.errors import ContractError, ErrorCode
from shared.models import (
    BRANCH_RE, AppliedSale, BranchSync, PriceDifferencePage, ReportTable, SaleKind, SalesExportPage, SummaryRebuild,
)

from . import differences, sales_report
from .branches import existing_branch
from .conflicts import retrying
from .store import BranchRecord, Store
from .summaries import DEFAULT_ZONE, DaySummary, fold_events

EXPORT_LIMIT_DEFAULT = 1000
# A report covers at most this many days (a year, leap day included).
REPORT_MAX_DAYS = 366


class Reports:
    def __init__(self, store: Store, zone: ZoneInfo = ZoneInfo(DEFAULT_ZONE)):
        self.store = store
        self.zone = zone

    # --- from the day summaries -----------------------------------------------------------

    def sales_report(self, first: date, last: date, branch: str | None = None, by: str = "day") -> ReportTable:
        """The sales figures of the business days first..last, grouped `by` (sales_report.BY)."""
        if by not in sales_report.BY:
            raise ContractError(ErrorCode.BAD_REQUEST, f"by must be one of {', '.join(sales_report.BY)}")
        summaries, syncs = self._read(first, last, branch, products=by == "product")
        columns, kinds, rows = sales_report.sales_table(summaries, by, first, last, syncs)
        return self._table("sales", first, last, branch, by, columns, kinds, rows, syncs)

    def shifts_report(self, first: date, last: date, branch: str | None = None) -> ReportTable:
        summaries, syncs = self._read(first, last, branch, products=False)
        return self._table("shifts", first, last, branch, None, *sales_report.shifts_table(summaries, syncs), syncs)

    def exceptions_report(self, first: date, last: date, branch: str | None = None) -> ReportTable:
        summaries, syncs = self._read(first, last, branch, products=False)
        return self._table("exceptions", first, last, branch, None, *sales_report.exceptions_table(summaries), syncs)

    def _table(self, report, first, last, branch, by, columns, kinds, rows, syncs) -> ReportTable:
        return ReportTable(report=report, first=first, last=last, by=by, branch=branch, zone=self.zone.key,
                           columns=columns, kinds=kinds, rows=rows,
                           complete=all(sales_report.is_complete(s, last) for s in syncs.values()),
                           branches=sorted(syncs.values(), key=lambda s: s.branch))

    def _read(self, first: date, last: date, branch: str | None,
              products: bool) -> tuple[list[DaySummary], dict[str, BranchSync]]:
        """The day summaries of the range (one range query per branch) and where each branch stands.

        Branches not enrolled yet or revoked sell nothing more, so they never make a report incomplete.
        """
        if last < first:
            raise ContractError(ErrorCode.BAD_REQUEST, f"to ({last}) is before from ({first})")
        if (last - first).days + 1 > REPORT_MAX_DAYS:
            raise ContractError(ErrorCode.BAD_REQUEST, f"a report covers at most {REPORT_MAX_DAYS} days; ask for a "
                                "shorter range")
        records = [existing_branch(self.store, branch)] if branch is not None else self.store.list_branches()
        summaries = [s for r in sorted(records, key=lambda r: r.name)
                     for s in self.store.read_summaries(r.name, first, last, products)]
        syncs = {r.name: self._sync(r) for r in records if r.enrolled and r.revoked_at is None}
        return summaries, syncs

    def _sync(self, record: BranchRecord) -> BranchSync:
        return BranchSync(branch=record.name, last_pull=record.last_pull, pending=record.pending,
                          complete_through=sales_report.complete_through(record.last_pull, record.pending, self.zone))

    def rebuild_summaries(self, branch: str | None = None) -> SummaryRebuild:
        """Write every day summary again from the stored sales (for sales applied before the apply kept them).

        Per branch: read its ledger, fold every stored counted event of every generation in
        seq order, and replace the day rows in transactions that carry the ledger If-Match, so
        an apply that commits meanwhile makes the branch start again (it re-reads everything).
        Days summarised before but holding no event now (the business zone changed) are
        written empty.
        """
        names = [existing_branch(self.store, branch).name] if branch is not None else \
            sorted(b.name for b in self.store.list_branches())
        days: dict[str, int] = {}
        events = 0
        for name in names:
            # No in-process turn: the ledger's ETag decides, and a rebuild is rare (applies go on meanwhile).
            written, folded = retrying()(self._rebuild_branch, name)
            days[name] = written
            events += folded
        return SummaryRebuild(branches=days, events=events)

    def _rebuild_branch(self, name: str) -> tuple[int, int]:
        ledger = self.store.get_ledger(name)
        days: dict[date, DaySummary] = {}
        originals: dict[tuple[int, int], object] = {}
        events = 0
        for gen in sorted(ledger.watermarks):
            for chunk in self.store.iter_chunks(name, 0, gen):
                counted = chunk.counted
                fold_events(name, gen, counted, originals, self.zone, into=days)
                originals.update({(gen, s.seq): s for s in counted if s.kind == SaleKind.SALE})
                events += len(counted)
        for stale in self.store.read_summaries(name, date.min, date.max, products=False):
            days.setdefault(stale.day, DaySummary(name, stale.day))
        self.store.replace_summaries(ledger, [days[d] for d in sorted(days)])
        return len(days), events

    def export_sales(self, branch: str | None = None, after: str | None = None, limit: int = EXPORT_LIMIT_DEFAULT) -> SalesExportPage:
        """Applied sales in (branch, seq) order, up to each branch's applied_through.

        Only sales at or below applied_through are final (a gap below a stored range may
        still fill), so a consumer resuming from `next` never misses one.
        """
        if not 1 <= limit <= limits.EXPORT_PAGE_MAX:
            raise ContractError(ErrorCode.BAD_REQUEST, f"limit must be from 1 to {limits.EXPORT_PAGE_MAX}")
        if branch is not None:
            existing_branch(self.store, branch)  # a valid name of an existing branch, else 400 / 404
        resume = _decode_export_token(after) if after else None
        if resume and branch is not None and resume[0] != branch:
            raise ContractError(ErrorCode.BAD_REQUEST, "after belongs to an export of another branch; start again without it")
        names = [branch] if branch is not None else sorted(b.name for b in self.store.list_branches())
        if resume:
            names = [n for n in names if n >= resume[0]]
        out: list[AppliedSale] = []
        last: tuple[str, int, int, int] | None = None
        for name in names:
            state = self.store.get_ledger(name)
            for gen in sorted(state.watermarks):
                if resume and (name, gen) < resume[:2]:
                    continue
                first_chunk, after_seq = (resume[2], resume[3]) if resume and resume[:2] == (name, gen) else (0, 0)
                through = state.apply_of(gen).applied_through
                if after_seq >= through:
                    continue
                for chunk in self.store.iter_chunks(name, first_chunk, gen):
                    if chunk.first_seq > through:
                        break
                    for sale in chunk.sales:
                        if sale.seq <= after_seq or sale.seq in chunk.refused:  # a refused void counts nowhere
                            continue
                        if sale.seq > through:
                            break
                        if len(out) == limit:
                            return SalesExportPage(sales=out, next=_encode_export_token(*last))
                        out.append(AppliedSale(branch=name, generation=gen, sale=sale, applied_at=chunk.applied_at))
                        last = (name, gen, chunk.first_seq, sale.seq)
        return SalesExportPage(sales=out, next=None)

    def price_differences(self, branch: str | None = None, since: datetime | None = None, after: str | None = None,
                          limit: int = EXPORT_LIMIT_DEFAULT) -> PriceDifferencePage:
        """Applied sale lines the current catalog disagrees with (deleted or unknown SKU, other price).

        Paged like export_sales, `limit` sales examined per page, so a page may hold no
        difference and still carry `next`. Per page: the export's reads, the catalog index
        once, and the segments up to the last current version of a SKU the page sold.
        """
        page = self.export_sales(branch, after, limit)
        index = differences.merged_index(b.entries for b in self.store.get_catalog_index().values())
        wanted = differences.wanted_versions((line.sku for _, _, line in differences.sold_lines(page.sales, since)), index)
        products = differences.current_products(self.store.scan_catalog(), wanted) if wanted else {}
        found = differences.price_differences(page.sales, index, products, since)
        if found:  # the voids of those sales may come in this page or any later one
            voided = self._voided({d.branch: d.seq for d in reversed(found)})
            found = [d for d in found if (d.branch, d.seq) not in voided]
        return PriceDifferencePage(differences=found, next=page.next)

    def _voided(self, first_seq: Mapping[str, int]) -> set[tuple[str, int]]:
        """(branch, seq) of the applied sales voided, per branch from `first_seq` on.

        A void comes after the sale it voids, so one read of the branch's applied sales
        from that seq (its chunk, at most a batch earlier) finds every void of them; only
        the report's pages that list a difference pay for it.
        """
        out: set[tuple[str, int]] = set()
        for branch, lo in first_seq.items():
            through = self.store.get_ledger(branch).apply.applied_through
            for chunk in self.store.iter_chunks(branch, max(1, lo - limits.BATCH_MAX_SALES + 1)):
                if chunk.first_seq > through:
                    break
                out |= {(branch, seq) for seq in differences.voided_seqs(s for s in chunk.sales if s.seq <= through)}
        return out


def _encode_export_token(branch: str, generation: int, chunk_first: int, seq: int) -> str:
    fields = {"b": branch, "c": chunk_first, "s": seq, **({"g": generation} if generation != 1 else {})}
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_export_token(token: str) -> tuple[str, int, int, int]:
    """(branch, generation, chunk, seq); a token without `g` is generation 1, as tokens were before."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        branch, chunk, seq, gen = data["b"], data["c"], data["s"], data.get("g", 1)
        if not (isinstance(branch, str) and BRANCH_RE.fullmatch(branch) and type(chunk) is int and type(seq) is int
                and type(gen) is int and 1 <= gen <= limits.GENERATION_MAX and 0 <= chunk <= seq):
            raise ValueError
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
        raise ContractError(ErrorCode.BAD_REQUEST, "after is not a token this API gave out; pass back `next` exactly, or start without it") from None
    return branch, gen, chunk, seq
