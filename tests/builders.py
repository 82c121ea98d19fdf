"""Small builders for valid wire objects, shared by the cloud and branch test suites.

Every builder returns a validated shared.models object; override what a test is about
and leave the rest to sensible defaults. Money is integer paisa.
"""

import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal

from shared.models import Discount, Payment, Product, RefundLine, Sale, SaleKind, SaleLine, SaleRef, SalesBatch, ShiftClose
from shared.money import line_total, percent_of, share_out, vat_part

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
    """A batch of the given seqs (built with make_sale) or of ready-made sales, of the lowest version that carries them."""
    sales = [s if isinstance(s, Sale) else make_sale(s) for s in seqs]
    return SalesBatch.of(branch, 1, sent_at, sales)


# --- the complete sale record (v3) ------------------------------------------------------------


def make_discount(kind: str, value: str | int, base: int, reason: str = "damaged packet") -> Discount:
    value = Decimal(str(value))
    return Discount(kind=kind, value=value, reason=reason,
                    amount=int(value) if kind == "amount" else percent_of(base, value))


def make_line3(sku: str = "RICE-5KG", qty: str = "1", unit_price: int = 42000, *, vat_rate: str = "5",
               discount: tuple[str, str | int] | None = None) -> SaleLine:
    """A v3 line; its net is set by make_sale3 once the sale discount is shared out."""
    gross = line_total(Decimal(qty), unit_price)
    disc = make_discount(*discount, gross) if discount else None
    net = gross - (disc.amount if disc else 0)
    return SaleLine(sku=sku, name=f"Product {sku}", qty=Decimal(qty), unit_price=unit_price, list_price=unit_price,
                    line_total=gross, discount=disc, net=net, vat_rate=Decimal(vat_rate), vat=vat_part(net, Decimal(vat_rate)))


def make_sale3(seq: int, lines: list[SaleLine] | None = None, *, cashier: str = "rahim",
               discount: tuple[str, str | int] | None = None, payments: list[Payment] | None = None,
               recorded_at: datetime = T0) -> Sale:
    """A v3 sale, paid in cash with no change unless `payments` are given."""
    lines = lines or [make_line3()]
    bases = [line.after_line_discount for line in lines]
    disc = make_discount(*discount, sum(bases), reason="loyal customer") if discount else None
    shares = share_out(disc.amount if disc else 0, bases)
    lines = [line.model_copy(update={"net": base - share, "vat": vat_part(base - share, line.vat_rate)})
             for line, base, share in zip(lines, bases, shares)]
    total = sum(line.net for line in lines)
    payments = payments or [Payment(method="cash", amount=total, tendered=total, change=0)]
    return Sale(seq=seq, sale_id=uuid.uuid4().hex, recorded_at=recorded_at, lines=lines, payments=payments, total=total,
                cashier=cashier, discount=disc)


def make_refund(seq: int, sale: Sale, returns: list[tuple[int, str, int]], *, generation: int = 1,
                cashier: str = "rahim", method: str = "cash") -> Sale:
    """A refund of `sale`: (line position, qty, paisa) per returned line (a position past its lines names the last one's SKU)."""
    items = [RefundLine(line=pos, sku=sale.lines[min(pos, len(sale.lines)) - 1].sku, qty=Decimal(qty), amount=amount)
             for pos, qty, amount in returns]
    total = -sum(r.amount for r in items)
    return Sale(seq=seq, sale_id=uuid.uuid4().hex, kind=SaleKind.REFUND, recorded_at=T0, lines=[], total=total,
                cashier=cashier, refunds=SaleRef(generation=generation, seq=sale.seq), returns=items,
                payments=[Payment(method=method, amount=total)])


def make_void3(seq: int, voided: Sale, *, cashier: str = "rahim") -> Sale:
    return Sale(seq=seq, sale_id=uuid.uuid4().hex, kind=SaleKind.VOID, voids=voided.seq, recorded_at=T0, lines=[],
                total=-voided.total, cashier=cashier, payments=[Payment(method="cash", amount=-voided.total)])


def make_shift_close(seq: int, *, cashier: str = "rahim", by_method: dict | None = None) -> Sale:
    shift = ShiftClose(shift_id="S-1", opened_at=T0, opening_float=500000, counted_cash=574600, expected_cash=574600,
                       by_method=by_method or {"cash": 74600})
    return Sale(seq=seq, sale_id=uuid.uuid4().hex, kind=SaleKind.SHIFT_CLOSE, recorded_at=T0, lines=[], total=0,
                cashier=cashier, payments=[], shift=shift)


def make_product(sku: str, price: int = 10000, **fields) -> Product:
    return Product(sku=sku, name=fields.pop("name", f"Product {sku}"), price=price, **fields)
