"""Head office's reads of the applied sales: the export and the price-differences report.

Both page through the sales table up to each generation's applied_through (only sales at
or below it are final), resuming from an opaque `next` token.
"""

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime

from shared import limits
from shared.errors import ContractError, ErrorCode
from shared.models import BRANCH_RE, AppliedSale, PriceDifferencePage, SalesExportPage

from . import differences
from .branches import existing_branch
from .store import Store

EXPORT_LIMIT_DEFAULT = 1000


class Reports:
    def __init__(self, store: Store):
        self.store = store

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
