"""Sale entry, the core without I/O: parse items, build sale and void events.

An item on the command line is `SKU=QTY` or `SKU=QTY@PRICE`: QTY is an exact decimal
(weighed goods: `1.250`), PRICE an override in taka with at most 2 decimals. Every
problem is a `BadSaleInput` that names the item and says what to do; the store calls
these functions inside its transaction, so a refused sale stores nothing.

A sale must also fit, alone, in one queue message as the push encodes it
(`shared.encoding.encode_batch`): one that does not could never reach head office, so it
is refused before it gets a number (`encoded_alone`, `too_large_to_send`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from pydantic import ValidationError

from shared import limits
from shared.encoding import encode_batch
from shared.models import Payment, PaymentMethod, Product, Sale, SaleKind, SaleLine, SalesBatch
from shared.money import line_total, parse_quantity, parse_taka

from .errors import BadSaleInput

ITEM_HINT = "write items as SKU=QTY or SKU=QTY@PRICE, e.g. RICE-5KG=2 or DAL-1KG=1.5@120.50"

# A new sale is measured framed for the longest branch name and sent at a time with
# microseconds (the longest spellings), and must leave this much of the message budget
# spare, so the real push of it alone can never be a few compressed bytes over.
SEND_MARGIN_CHARS = 256
_LONGEST_BRANCH = "b" * limits.BRANCH_NAME_MAX_CHARS
_LONGEST_TIME = datetime(2000, 1, 1, 0, 0, 0, 999_999, tzinfo=timezone.utc)
_ANY_SECRET = "s" * 43  # the signature is 32 bytes whatever the secret


@dataclass(frozen=True)
class ItemSpec:
    """One parsed item: what to sell, how much, and an optional price override in paisa."""

    sku: str
    qty: Decimal
    price: int | None = None
    text: str = ""

    def label(self) -> str:
        return self.text or f"{self.sku}={self.qty}"


def parse_item(text: str) -> ItemSpec:
    raw = text.strip()
    sku, sep, rest = raw.rpartition("=")
    sku = sku.strip()
    if not sep or not sku or not rest.strip():
        raise BadSaleInput(f"item {text!r} is not an item: {ITEM_HINT}")
    qty_text, at, price_text = rest.partition("@")
    try:
        qty = parse_quantity(qty_text.strip())
    except ValueError as exc:
        raise BadSaleInput(f"item {text!r}: {exc}; {ITEM_HINT}") from None
    price = None
    if at:
        try:
            price = parse_taka(price_text.strip()) if price_text.strip() else _no_price()
        except ValueError as exc:
            raise BadSaleInput(f"item {text!r}: {exc}; give the price in taka, e.g. @120.50") from None
    return ItemSpec(sku=sku, qty=qty, price=price, text=raw)


def _no_price() -> int:
    raise ValueError("the price after '@' is missing")


def parse_items(texts: Sequence[str]) -> list[ItemSpec]:
    if not texts:
        raise BadSaleInput(f"a sale needs at least one item: {ITEM_HINT}")
    if len(texts) > limits.SALE_MAX_LINES:
        raise BadSaleInput(f"a sale holds at most {limits.SALE_MAX_LINES} items; split it into several sales")
    return [parse_item(t) for t in texts]


def parse_payment(text: str | PaymentMethod) -> PaymentMethod:
    try:
        return PaymentMethod(str(text).strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in PaymentMethod)
        raise BadSaleInput(f"payment {text!r} is not known; use one of {choices}") from None


def build_lines(items: Sequence[ItemSpec], products: Mapping[str, Product]) -> list[SaleLine]:
    """Sale lines priced from the catalog; `products` maps SKU to the current product."""
    if not items:
        raise BadSaleInput(f"a sale needs at least one item: {ITEM_HINT}")
    if len(items) > limits.SALE_MAX_LINES:
        raise BadSaleInput(f"a sale holds at most {limits.SALE_MAX_LINES} items; split it into several sales")
    lines = []
    for item in items:
        product = products.get(item.sku)
        if product is None:
            raise BadSaleInput(
                f"item {item.label()!r}: no product with SKU {item.sku!r} in the catalog; "
                "find it with 'branchsync catalog search TEXT', or sync to get the latest catalog")
        if not product.active:
            raise BadSaleInput(
                f"item {item.label()!r}: {product.name} ({product.sku}) is not for sale (inactive); remove it from the sale")
        unit_price = product.price if item.price is None else item.price
        total = line_total(item.qty, unit_price)
        if total > limits.PAISA_MAX:
            raise BadSaleInput(f"item {item.label()!r}: the line total is too large; check the quantity and price")
        try:
            lines.append(SaleLine(sku=product.sku, name=product.name, qty=item.qty, unit_price=unit_price,
                                  list_price=product.price, line_total=total))
        except ValidationError as exc:
            raise BadSaleInput(f"item {item.label()!r}: {_first_error(exc)}") from None
    return lines


def new_sale(seq: int, sale_id: str, recorded_at: datetime, lines: Sequence[SaleLine], method: PaymentMethod) -> Sale:
    """The sale event; refused when it could never be sent (see `too_large_to_send`)."""
    total = sum(line.line_total for line in lines)
    try:
        sale = Sale(seq=seq, sale_id=sale_id, kind=SaleKind.SALE, recorded_at=recorded_at, lines=list(lines),
                    payment=Payment(method=method, amount=total), total=total)
    except ValidationError as exc:
        raise BadSaleInput(f"the sale cannot be recorded: {_first_error(exc)}") from None
    if too_large_to_send(sale):
        raise BadSaleInput(f"this sale of {len(lines)} items is too large to send to head office (its names and "
                           "items do not fit in one message); nothing was recorded: split it into two sales")
    return sale


def encoded_alone(sale: Sale, branch: str = _LONGEST_BRANCH, sent_at: datetime = _LONGEST_TIME) -> int:
    """Characters of the queue message that carries `sale` alone, encoded exactly as the push encodes it."""
    return len(encode_batch(SalesBatch(branch=branch, sent_at=sent_at, sales=[sale]), _ANY_SECRET))


def too_large_to_send(sale: Sale) -> bool:
    """Whether `sale` might not fit, alone, in one queue message, from any branch at any time."""
    return encoded_alone(sale) > limits.QUEUE_MESSAGE_BUDGET_CHARS - SEND_MARGIN_CHARS


def new_void(seq: int, sale_id: str, recorded_at: datetime, voided: Sale) -> Sale:
    """The void event of `voided`: no lines, minus its total, paid back the same way."""
    if voided.kind != SaleKind.SALE:
        raise BadSaleInput(f"number {voided.seq} is itself a void, not a sale; only a sale can be voided")
    return Sale(seq=seq, sale_id=sale_id, kind=SaleKind.VOID, voids=voided.seq, recorded_at=recorded_at, lines=[],
                payment=Payment(method=voided.payment.method, amount=-voided.total), total=-voided.total)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg', 'invalid')}"
