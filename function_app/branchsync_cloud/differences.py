"""Head office's price-difference report, as pure functions (no I/O).

A branch sells from the catalog it pulled last. While it is offline head office may delete
a product or change its price; the sale is applied exactly as sold (that is what the
customer paid), and this report shows the applied sale lines the current catalog no longer
agrees with. The service reads the catalog index once per report page, and the product
rows only for the SKUs that page sold. A voided sale sold nothing, so its lines are left out.
"""

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from shared.models import AppliedSale, PriceDifference, Product, Sale, SaleKind
from shared.money import line_total

from .catalog import IndexEntry, Segment


def merged_index(buckets: Iterable[Mapping[str, IndexEntry]]) -> dict[str, IndexEntry]:
    """The index buckets as one {sku: entry} (a SKU lives in exactly one bucket)."""
    out: dict[str, IndexEntry] = {}
    for bucket in buckets:
        out.update(bucket)
    return out


def sold_lines(sales: Iterable[AppliedSale], since: datetime | None = None):
    """(applied sale, line number from 1, line) of every sale (not void) recorded at or after `since`."""
    for applied in sales:
        sale = applied.sale
        if sale.kind != SaleKind.SALE or (since is not None and sale.recorded_at < since):
            continue
        for n, line in enumerate(sale.lines, 1):
            yield applied, n, line


def voided_seqs(sales: Iterable[Sale]) -> set[int]:
    """The seqs the voids among `sales` (one branch's) void."""
    return {sale.voids for sale in sales if sale.kind == SaleKind.VOID and sale.voids is not None}


def wanted_versions(skus: Iterable[str], index: Mapping[str, IndexEntry]) -> dict[str, int]:
    """{sku: current version} for the SKUs still live in the catalog: the product rows to read."""
    return {sku: index[sku].version for sku in set(skus) if sku in index and not index[sku].deleted}


def current_products(segments: Iterable[Segment], wanted: Mapping[str, int]) -> dict[str, Product]:
    """The products at exactly the versions the index names current; stops reading once all are found.

    Segments may still hold superseded rows of a SKU until compaction; matching the version
    the index names skips them.
    """
    found: dict[str, Product] = {}
    if not wanted:
        return found
    for segment in segments:
        for row in segment.rows:
            if row.product is not None and wanted.get(row.sku) == row.version:
                found[row.sku] = row.product
        if len(found) == len(wanted):
            break
    return found


def price_differences(sales: Iterable[AppliedSale], index: Mapping[str, IndexEntry],
                      products: Mapping[str, Product], since: datetime | None = None,
                      voided: Collection[tuple[str, int]] = ()) -> list[PriceDifference]:
    """Every sold line whose SKU is deleted or unknown now, or whose unit price is not the current price.

    Lines of the sales in `voided` ((branch, seq) pairs) are left out: the void took them back.
    """
    out = []
    for applied, n, line in sold_lines(sales, since):
        if (applied.branch, applied.sale.seq) in voided:
            continue
        entry = index.get(line.sku)
        current = products.get(line.sku)
        if current is not None and current.price == line.unit_price:
            continue
        if current is not None:
            status, difference = "price_differs", line.line_total - line_total(line.qty, current.price)
        else:
            status, difference = ("deleted" if entry is not None and entry.deleted else "unknown"), None
        sale = applied.sale
        out.append(PriceDifference(
            branch=applied.branch, seq=sale.seq, sale_id=sale.sale_id, recorded_at=sale.recorded_at, line=n,
            sku=line.sku, name=line.name, qty=line.qty, sold_price=line.unit_price, list_price=line.list_price,
            current_price=None if current is None else current.price, status=status, difference=difference,
        ))
    return out
