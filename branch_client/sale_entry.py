"""Sale entry, the core without I/O: parse items, build sale and void events.

An item on the command line is `SKU=QTY` or `SKU=QTY@PRICE` (a barcode works as well as a
SKU, in any case), or the SKU or barcode alone (one piece, or what a scale label says). QTY
is an exact decimal in plain digits; the product's unit decides what it may be (pieces
whole, weighed goods up to 3 decimals); PRICE is an override in taka with at most 2
decimals. The till's cart is checked by the same functions. Every
problem is a `BadSaleInput` that names the item and says what to do; the store calls
these functions inside its transaction, so a refused sale stores nothing.

A sale must also fit, alone, in one queue message as the push encodes it
(`shared.encoding.encode_batch`): one that does not could never reach head office, so it
is refused before it gets a number (`encoded_alone`, `too_large_to_send`).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

from pydantic import ValidationError

from shared import limits
from shared.encoding import encode_batch
from shared.models import Payment, PaymentMethod, Product, Sale, SaleKind, SaleLine, SalesBatch
from shared.money import line_total, parse_quantity, parse_taka

from .barcodes import Embedded, Value, grams_to_units
from .errors import BadSaleInput

ITEM_HINT = ("write items as SKU=QTY or SKU=QTY@PRICE (a barcode works as well as a SKU), "
             "e.g. RICE-5KG=2 or DAL-1KG=1.5@120.50")
# A quantity as it may be written: plain digits with an optional decimal point (no "1e3", "1,5", "1_000").
QTY_TEXT = re.compile(r"^[0-9]+(\.[0-9]+)?$")
# Units sold by weight or volume: quantities with up to 3 decimals; every other unit counts pieces.
WEIGHED_UNITS = frozenset({"kg", "g", "gm", "l", "ltr", "litre", "liter", "ml", "m"})
# More than this many of a unit (thousands for g and ml) is asked again: a scanner or a finger
# that typed 500 instead of 5 must not pass unnoticed.
LARGE_QTY = Decimal(100)
_SMALL_UNITS = frozenset({"g", "gm", "ml"})

# A new sale is measured framed for the longest branch name and sent at a time with
# microseconds (the longest spellings), and must leave this much of the message budget
# spare, so the real push of it alone can never be a few compressed bytes over.
SEND_MARGIN_CHARS = 256
_LONGEST_BRANCH = "b" * limits.BRANCH_NAME_MAX_CHARS
_LONGEST_TIME = datetime(2000, 1, 1, 0, 0, 0, 999_999, tzinfo=timezone.utc)
_ANY_SECRET = "s" * 43  # the signature is 32 bytes whatever the secret


class QuantityNeedsConfirmation(BadSaleInput):
    """A quantity large enough to be a slip: recorded only when the cashier confirms it."""

    code = "confirm_quantity"


@dataclass(frozen=True)
class ItemSpec:
    """One parsed item: what to sell (a SKU in any case, or a barcode), how much, and an
    optional price override in paisa. `qty` None: one piece, or what a scale label says."""

    sku: str
    qty: Decimal | None
    price: int | None = None
    text: str = ""

    def label(self) -> str:
        return self.text or (self.sku if self.qty is None else f"{self.sku}={self.qty}")


@dataclass(frozen=True)
class Match:
    """The catalog product an item names, and the scale label it was scanned from, if any."""

    product: Product
    embedded: Embedded | None = None


def is_weighed(unit: str) -> bool:
    return unit.strip().lower() in WEIGHED_UNITS


def parse_qty(text: str) -> Decimal:
    """A quantity as typed at the command line or the till: plain digits, a dot for decimals."""
    raw = text.strip()
    if "," in raw:
        dotted = raw.replace(",", ".")
        raise ValueError(f"quantity {text!r} has a comma: write {dotted} with a dot for a decimal "
                         "(and thousands with no separator, e.g. 1000)")
    if not QTY_TEXT.match(raw) and "e" not in raw.lower():
        raise ValueError(f"quantity {text!r} is not a number like 2 or 1.250")
    return parse_quantity(raw)


def parse_item(text: str) -> ItemSpec:
    raw = text.strip()
    ref, sep, rest = raw.rpartition("=")
    if not sep:  # a bare SKU or barcode: one piece, or the weight or price on its scale label
        ref, rest = raw, ""
        if not ref or "@" in ref:
            raise BadSaleInput(f"item {text!r} is not an item: {ITEM_HINT}")
        return ItemSpec(sku=ref, qty=None, text=raw)
    ref = ref.strip()
    if not ref or not rest.strip():
        raise BadSaleInput(f"item {text!r} is not an item: {ITEM_HINT}")
    qty_text, at, price_text = rest.partition("@")
    try:
        qty = parse_qty(qty_text)
    except ValueError as exc:
        raise BadSaleInput(f"item {text!r}: {exc}; {ITEM_HINT}") from None
    price = None
    if at:
        try:
            price = parse_taka(price_text.strip()) if price_text.strip() else _no_price()
        except ValueError as exc:
            raise BadSaleInput(f"item {text!r}: {exc}; give the price in taka, e.g. @120.50") from None
    return ItemSpec(sku=ref, qty=qty, price=price, text=raw)


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


def unknown_item(item: ItemSpec, suggestions: Sequence[Product]) -> BadSaleInput:
    """The refusal of an item no product has, with the closest matches the search found."""
    said = f"item {item.label()!r}: no product with SKU or barcode {item.sku!r} in the catalog"
    if suggestions:
        close = "; ".join(f"{p.sku} ({p.name})" for p in suggestions)
        return BadSaleInput(f"{said}; did you mean {close}?")
    return BadSaleInput(f"{said}; find it with 'branchsync catalog search TEXT', or sync to get the latest catalog")


def is_large(qty: Decimal, unit: str) -> bool:
    return qty > (LARGE_QTY * 1000 if unit.strip().lower() in _SMALL_UNITS else LARGE_QTY)


def quantity_of(item: ItemSpec, match: Match) -> tuple[Decimal, int | None]:
    """The item's quantity in its product's unit and its price override, by the product's unit
    and the scale label: pieces whole, weighed goods up to 3 decimals (checked when parsed)."""
    product, label = match.product, match.embedded
    weighed = is_weighed(product.unit)
    if label is not None:
        if item.qty is not None:
            raise BadSaleInput(f"item {item.label()!r}: the scale label carries the {label.value.value}; "
                               f"give the code alone, without =QTY")
        if label.amount <= 0:
            raise BadSaleInput(f"item {item.label()!r}: the scale label says 0; weigh it again")
        if label.value == Value.WEIGHT:
            if not weighed:
                raise BadSaleInput(f"item {item.label()!r}: {product.name} is sold by the piece ({product.unit}) "
                                   "but this label carries a weight; check the scale's product list")
            return grams_to_units(label.amount, product.unit), None
        if weighed and product.price > 0:
            # The weight the scale charged for, at the catalog's price per unit (to the gram).
            grams = (Decimal(label.amount) * 1000 / product.price).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            return grams_to_units(max(1, int(grams)), product.unit), None
        return Decimal(1), label.amount
    if item.qty is None:
        if weighed:
            raise BadSaleInput(f"item {item.label()!r}: {product.name} is sold by {product.unit}; "
                               f"give the quantity, e.g. {item.sku}=1.250")
        return Decimal(1), item.price
    if not weighed and item.qty != item.qty.to_integral_value():
        raise BadSaleInput(f"item {item.label()!r}: {product.name} is sold by the piece ({product.unit}); "
                           "give a whole number")
    return item.qty, item.price


def build_lines(items: Sequence[ItemSpec], matches: Sequence[Match], *, confirmed: bool = False) -> list[SaleLine]:
    """Sale lines priced from the catalog; `matches[i]` is the product `items[i]` names.

    A quantity over LARGE_QTY raises QuantityNeedsConfirmation unless `confirmed`.
    """
    if not items:
        raise BadSaleInput(f"a sale needs at least one item: {ITEM_HINT}")
    if len(items) > limits.SALE_MAX_LINES:
        raise BadSaleInput(f"a sale holds at most {limits.SALE_MAX_LINES} items; split it into several sales")
    lines = []
    for item, match in zip(items, matches, strict=True):
        product = match.product
        if not product.active:
            raise BadSaleInput(
                f"item {item.label()!r}: {product.name} ({product.sku}) is not for sale (inactive); remove it from the sale")
        qty, price = quantity_of(item, match)
        if is_large(qty, product.unit) and not confirmed:
            raise QuantityNeedsConfirmation(
                f"item {item.label()!r}: {format(qty, 'f')} {product.unit} of {product.name} is a lot; "
                "check the quantity, and confirm it to record it (--yes at the command line)")
        unit_price = product.price if price is None else price
        total = line_total(qty, unit_price)
        if total > limits.PAISA_MAX:
            raise BadSaleInput(f"item {item.label()!r}: the line total is too large; check the quantity and price")
        try:
            lines.append(SaleLine(sku=product.sku, name=product.name, qty=qty, unit_price=unit_price,
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


def new_void(seq: int, sale_id: str, recorded_at: datetime, voided: Sale, voided_generation: int | None = None) -> Sale:
    """The void event of `voided`: no lines, minus its total, paid back the same way.

    `voided_generation`: the voided sale's generation when it is an earlier one than the void's.
    """
    if voided.kind != SaleKind.SALE:
        raise BadSaleInput(f"number {voided.seq} is itself a void, not a sale; only a sale can be voided")
    return Sale(seq=seq, sale_id=sale_id, kind=SaleKind.VOID, voids=voided.seq, voids_generation=voided_generation,
                recorded_at=recorded_at, lines=[],
                payment=Payment(method=voided.payment.method, amount=-voided.total), total=-voided.total)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg', 'invalid')}"
