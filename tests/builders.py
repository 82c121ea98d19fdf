"""Small builders for valid wire objects, shared by the cloud and branch test suites.

Every builder returns a validated shared.models object; override what a test is about
and leave the rest to sensible defaults. Money is integer paisa.
"""

import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal

from shared.models import Payment, Product, Sale, SaleKind, SaleLine, SalesBatch
from shared.money import line_total

T0 = datetime(2026, 11, 28, 6, 0, tzinfo=timezone.utc)


def make_line(sku: str = "RICE-5KG", qty: str | Decimal = "1", unit_price: int = 42000, *,
              name: str | None = None, list_price: int | None = None) -> SaleLine:
    qty = Decimal(str(qty))
    return SaleLine(sku=sku, name=name or f"Product {sku}", qty=qty, unit_price=unit_price,
                    list_price=unit_price if list_price is None else list_price, line_total=line_total(qty, unit_price))


def make_sale(seq: int, lines: list[SaleLine] | None = None, *, total: int | None = None, sale_id: str | None = None,
              recorded_at: datetime = T0, method: str = "cash") -> Sale:
    """A sale; by default one line priced 1000 + seq paisa, or priced `total` when given."""
    if lines is None:
        lines = [make_line(sku=f"SKU-{seq % 7}", unit_price=1000 + seq if total is None else total)]
    amount = sum(line.line_total for line in lines)
    return Sale(seq=seq, sale_id=sale_id or uuid.uuid4().hex, kind=SaleKind.SALE, recorded_at=recorded_at, lines=lines,
                payment=Payment(method=method, amount=amount), total=amount)


def make_void(seq: int, voided: Sale, *, recorded_at: datetime = T0) -> Sale:
    return Sale(seq=seq, sale_id=uuid.uuid4().hex, kind=SaleKind.VOID, voids=voided.seq, recorded_at=recorded_at,
                lines=[], payment=Payment(method=voided.payment.method, amount=-voided.total), total=-voided.total)


def make_batch(branch: str, seqs: Iterable[int] | Iterable[Sale], *, sent_at: datetime = T0) -> SalesBatch:
    """A batch of the given seqs (built with make_sale) or of ready-made sales."""
    sales = [s if isinstance(s, Sale) else make_sale(s) for s in seqs]
    return SalesBatch(branch=branch, sent_at=sent_at, sales=sales)


def make_product(sku: str, price: int = 10000, **fields) -> Product:
    return Product(sku=sku, name=fields.pop("name", f"Product {sku}"), price=price, **fields)
