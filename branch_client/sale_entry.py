"""Sale entry, the core without I/O: parse items, price them, build sale, void and refund events.

An item on the command line is `SKU=QTY` or `SKU=QTY@PRICE` (a barcode works as well as a
SKU, in any case), or the SKU or barcode alone (one piece, or what a scale label says). QTY
is an exact decimal in plain digits; the product's unit decides what it may be (pieces
whole, weighed goods up to 3 decimals); PRICE is an override in taka with at most 2
decimals. The till's cart is checked by the same functions. Every
problem is a `BadSaleInput` that names the item and says what to do; the store calls
these functions inside its transaction, so a refused sale stores nothing.

Every new event is the complete record (batch v3, shared.models): the cashier, lines with
the product's VAT rate, their `net` and the VAT inside it, optional line and sale discounts
with a reason, and a list of payments that add up exactly to the total. Rounding, all to a
whole paisa (shared.money): a percent discount is percent_of (half up); a sale discount is
shared out over the lines in proportion to what each costs after its own discount
(share_out); VAT is vat_part of the line's net. A price below the list price (0 included)
needs a reason, which the line carries (`price_reason`) whenever its price differs from
the list price; a v3 void or refund carries its reason too.

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
from shared.models import (Discount, DiscountKind, Payment, PaymentMethod, Product, RefundLine, Sale, SaleKind,
                           SaleLine, SaleRef, SalesBatch, ShiftClose, Wallet)
from shared.money import format_taka, line_total, parse_quantity, parse_taka, percent_of, share_out, vat_part

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
    # Why the price was overridden (required below the list price); sent on the line when it differs.
    price_reason: str | None = None
    discount: "DiscountSpec | None" = None

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


# SKU=QTY@PRICE:REASON, the reason for a price override after the price.
_WITH_REASON = re.compile(r"^(?P<item>.+=[^=@]+@[^:]*):(?P<reason>.*)$", re.S)


def parse_item(text: str) -> ItemSpec:
    raw = text.strip()
    with_reason = _WITH_REASON.match(raw)
    if with_reason:
        item = parse_item(with_reason.group("item"))
        reason = " ".join(with_reason.group("reason").split())
        if not reason:
            raise BadSaleInput(f"item {text!r}: the reason after ':' is empty; say why the price is changed, "
                               'e.g. SOAP=1@30:"damaged box"')
        return ItemSpec(item.sku, item.qty, item.price, raw, price_reason=reason)
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
        if item.price is not None and (item.price == 0 or item.price < product.price) and not item.price_reason:
            hint = f', e.g. {item.text}:"damaged box"' if "@" in item.text else ""
            raise BadSaleInput(f"item {item.label()!r}: a price below the list price {format_taka(product.price)} "
                               f"(or 0) needs a reason (why it is sold for less){hint}")
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


def encoded_alone(sale: Sale, branch: str = _LONGEST_BRANCH, sent_at: datetime = _LONGEST_TIME,
                  generation: int = 1) -> int:
    """Characters of the queue message that carries `sale` alone, encoded exactly as the push encodes it."""
    return len(encode_batch(SalesBatch.of(branch, generation, sent_at, [sale]), _ANY_SECRET))


def too_large_to_send(sale: Sale) -> bool:
    """Whether `sale` might not fit, alone, in one queue message, from any branch at any time."""
    return encoded_alone(sale, generation=limits.GENERATION_MAX) > limits.QUEUE_MESSAGE_BUDGET_CHARS - SEND_MARGIN_CHARS


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "value"
    return f"{where}: {err.get('msg', 'invalid')}"


# --- the complete record: discounts, payments, pricing -------------------------------------------

# Who recorded an event when nobody is signed in (the command line without --cashier, a till
# with no cashiers yet): the v3 record always names someone.
DEFAULT_CASHIER = "manager"
DISCOUNT_HINT = 'write a discount as PERCENT%:REASON or TAKA:REASON, e.g. 10%:"loyal customer" or 50:"damaged box"'
PAY_HINT = ("write a payment as METHOD[=TAKA]: cash=1000 (what the customer handed over), card=250.50, "
            "bkash:TXNID=200 or nagad:TXNID=200; one payment may leave out its amount and takes the rest")


@dataclass(frozen=True)
class DiscountSpec:
    """A discount as asked for: `value` paisa off (amount) or `value` percent (percent), with its reason."""

    kind: DiscountKind
    value: Decimal
    reason: str


@dataclass(frozen=True)
class PaymentSpec:
    """A payment as asked for. `amount` None: the rest of the total. For cash, `tendered` is
    what the customer handed over (the change is what it exceeds the cash part by)."""

    method: PaymentMethod
    amount: int | None = None
    tendered: int | None = None
    wallet: Wallet | None = None
    txn_id: str | None = None


@dataclass(frozen=True)
class Priced:
    """A cart priced: its v3 lines, the sale discount, and the total the payments must make."""

    lines: list[SaleLine]
    discount: Discount | None

    @property
    def total(self) -> int:
        return sum(line.net for line in self.lines)


def _reason(text, what: str) -> str:
    reason = " ".join(text.split()) if isinstance(text, str) else ""
    if not reason:
        raise BadSaleInput(f"{what} needs a reason (why it is given)")
    if len(reason) > limits.NAME_MAX_CHARS or not reason.isprintable():
        raise BadSaleInput(f"{what}: the reason is at most {limits.NAME_MAX_CHARS} printable characters")
    return reason


def discount_spec(kind, value, reason, what: str = "the discount") -> DiscountSpec:
    """A discount from its parts (the till's JSON): kind amount (`value` whole paisa) or percent."""
    try:
        kind = DiscountKind(str(kind))
    except ValueError:
        raise BadSaleInput(f"{what}: kind {kind!r} is not amount or percent") from None
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not QTY_TEXT.match(text):
        raise BadSaleInput(f"{what}: {value!r} is not a number in plain digits, e.g. 10 or 12.5")
    number = Decimal(text)
    if kind == DiscountKind.PERCENT:
        if not 0 < number <= 100 or number != number.quantize(Decimal("0.01")):
            raise BadSaleInput(f"{what}: a percent is above 0 and at most 100, with at most 2 decimals")
    elif number != number.to_integral_value() or not 0 < number <= limits.PAISA_MAX:
        raise BadSaleInput(f"{what}: an amount is a whole number of paisa above 0")
    return DiscountSpec(kind, number.normalize() if kind == DiscountKind.PERCENT else Decimal(int(number)),
                        _reason(reason, what))


def parse_discount(text: str, what: str = "the discount") -> DiscountSpec:
    """A discount as typed at the command line: `10%:REASON` or `50:REASON` (taka)."""
    value, sep, reason = str(text).partition(":")
    value = value.strip()
    if not sep or not value:
        raise BadSaleInput(f"{what} {text!r}: {DISCOUNT_HINT}")
    if value.endswith("%"):
        return discount_spec(DiscountKind.PERCENT, value[:-1].strip(), reason, what)
    try:
        paisa = parse_taka(value)
    except ValueError as exc:
        raise BadSaleInput(f"{what} {text!r}: {exc}; {DISCOUNT_HINT}") from None
    return discount_spec(DiscountKind.AMOUNT, str(paisa), reason, what)


def _discount(spec: DiscountSpec | None, base: int, what: str) -> Discount | None:
    if spec is None:
        return None
    amount = int(spec.value) if spec.kind == DiscountKind.AMOUNT else percent_of(base, spec.value)
    if amount > base:
        raise BadSaleInput(f"{what} of {format_taka(amount)} taka is more than the {format_taka(base)} taka "
                           "it applies to")
    return Discount(kind=spec.kind, value=spec.value, reason=spec.reason, amount=amount)


def price(lines: Sequence[SaleLine], products: Sequence[Product], line_discounts: Sequence[DiscountSpec | None],
          sale_discount: DiscountSpec | None = None, price_reasons: Sequence[str | None] = ()) -> Priced:
    """The v3 lines of a cart: each line's discount, its share of the sale discount (share_out
    over what the lines cost after their own discounts), its net and the VAT inside it, and
    `price_reasons[i]` on a line whose price differs from the list price (the contract
    allows it nowhere else)."""
    reasons = list(price_reasons) + [None] * (len(lines) - len(price_reasons))
    discounts = [_discount(spec, line.line_total, f"the discount on {line.sku}")
                 for line, spec in zip(lines, line_discounts, strict=True)]
    bases = [line.line_total - (d.amount if d else 0) for line, d in zip(lines, discounts)]
    whole = _discount(sale_discount, sum(bases), "the sale discount")
    shares = share_out(whole.amount if whole else 0, bases)
    out = []
    for line, product, d, base, share, why in zip(lines, products, discounts, bases, shares, reasons, strict=True):
        net = base - share
        try:
            out.append(SaleLine(**{**line.model_dump(), "discount": d, "net": net, "vat_rate": product.vat_rate,
                                   "vat": vat_part(net, product.vat_rate),
                                   "price_reason": why if line.unit_price != line.list_price else None}))
        except ValidationError as exc:
            raise BadSaleInput(f"item {line.sku}: {_first_error(exc)}") from None
    return Priced(out, whole)


def parse_pay(text: str) -> PaymentSpec:
    """A payment as typed at the command line (see PAY_HINT): `cash`, `cash=1000`, `card=250.50`,
    `bkash:TXNID=200`. A cash amount is what was tendered; the cash part is the rest of the total."""
    head, sep, amount_text = str(text).strip().partition("=")
    method_text, colon, txn = head.partition(":")
    method_text = method_text.strip().lower()
    amount = None
    if sep:
        try:
            amount = parse_taka(amount_text.strip())
        except ValueError as exc:
            raise BadSaleInput(f"payment {text!r}: {exc}; {PAY_HINT}") from None
    if method_text in {w.value for w in Wallet}:
        if not colon or not txn.strip():
            raise BadSaleInput(f"payment {text!r}: a {method_text} payment needs the customer's transaction id, "
                               f"e.g. {method_text}:9C7D2XK41Q=200")
        return PaymentSpec(PaymentMethod.MOBILE, amount, wallet=Wallet(method_text), txn_id=txn.strip())
    method = parse_payment(method_text) if not colon else None
    if method is None or method == PaymentMethod.MOBILE:
        raise BadSaleInput(f"payment {text!r}: name the wallet and the customer's transaction id, "
                           f"e.g. bkash:9C7D2XK41Q=200; {PAY_HINT}")
    if method == PaymentMethod.CASH:
        return PaymentSpec(method, None, tendered=amount)
    return PaymentSpec(method, amount)


def payment_spec(body, n: int = 1) -> PaymentSpec:
    """A payment from the till's JSON: {"method", "amount" (paisa), "tendered"?, "wallet"?, "txn_id"?}."""
    if not isinstance(body, dict) or set(body) - {"method", "amount", "tendered", "wallet", "txn_id"}:
        raise BadSaleInput(f"payment {n} is not a payment (method, amount, tendered, wallet, txn_id); reload the page")
    method = parse_payment(body.get("method", ""))

    def paisa(name):
        value = body.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limits.PAISA_MAX:
            raise BadSaleInput(f"payment {n}: {name} is a whole number of paisa")
        return value

    wallet = body.get("wallet")
    if wallet is not None:
        try:
            wallet = Wallet(str(wallet).lower())
        except ValueError:
            raise BadSaleInput(f"payment {n}: wallet {wallet!r} is not bkash or nagad") from None
    txn = body.get("txn_id")
    if txn is not None and not isinstance(txn, str):
        raise BadSaleInput(f"payment {n}: the transaction id is text")
    return PaymentSpec(method, paisa("amount"), paisa("tendered"), wallet, txn.strip() if txn else None)


_TXN = re.compile(r"^[0-9A-Za-z-]{1,64}$")


def settle(total: int, specs: Sequence[PaymentSpec], *, refund: bool = False) -> list[Payment]:
    """The payments of an event of `total` paisa (a refund: paid back, negative): they must add
    up exactly; one payment may leave out its amount and takes the rest; cash may be
    over-tendered (change = tendered - the cash part), never under."""
    due = -total if refund else total
    specs = list(specs) or [PaymentSpec(PaymentMethod.CASH)]
    if len(specs) > limits.SALE_MAX_PAYMENTS:
        raise BadSaleInput(f"at most {limits.SALE_MAX_PAYMENTS} payments")
    if sum(1 for p in specs if p.method == PaymentMethod.CASH) > 1:
        raise BadSaleInput("give cash once (what the customer handed over in all)")
    open_ = [p for p in specs if p.amount is None]
    if len(open_) > 1:
        raise BadSaleInput(f"only one payment may leave out its amount (it takes the rest); {PAY_HINT}")
    given = sum(p.amount for p in specs if p.amount is not None)
    rest = due - given
    out = []
    for p in specs:
        amount = rest if p.amount is None else p.amount
        if p.amount is None and (rest < 0 or (rest == 0 and due > 0)):
            raise BadSaleInput(f"the other payments already make {format_taka(given)} taka of the "
                               f"{format_taka(due)} taka due, so the {p.method.value} payment has nothing left to pay")
        if amount == 0 and due > 0:
            raise BadSaleInput(f"the {p.method.value} payment is 0; leave it out")
        change = tendered = None
        if p.tendered is not None:
            if refund:
                raise BadSaleInput("a refund is paid out: give no amount tendered")
            if p.method != PaymentMethod.CASH:
                raise BadSaleInput("only cash has an amount tendered")
            if p.tendered < amount:
                raise BadSaleInput(f"cash tendered {format_taka(p.tendered)} taka is less than the "
                                   f"{format_taka(amount)} taka to pay in cash; take more, or pay the rest another way")
            tendered, change = p.tendered, p.tendered - amount
        if p.method == PaymentMethod.MOBILE:
            if p.wallet is None or not p.txn_id:
                raise BadSaleInput("a mobile payment names its wallet (bkash or nagad) and the customer's "
                                   "transaction id, e.g. bkash:9C7D2XK41Q")
            if not _TXN.match(p.txn_id):
                raise BadSaleInput(f"transaction id {p.txn_id!r} is letters, digits and '-' only, as the "
                                   "customer's phone shows it")
        elif p.wallet is not None or p.txn_id is not None:
            raise BadSaleInput(f"a {p.method.value} payment has no wallet or transaction id")
        out.append(Payment(method=p.method, amount=-amount if refund else amount, wallet=p.wallet,
                           txn_id=p.txn_id if p.method == PaymentMethod.MOBILE else None,
                           tendered=tendered, change=change))
    if sum(p.amount for p in out) != total:
        raise BadSaleInput(f"the payments make {format_taka(abs(sum(p.amount for p in out)))} taka but "
                           f"{format_taka(due)} taka is due; they must add up exactly")
    return out


def _event(what: str, **fields) -> Sale:
    try:
        sale = Sale(**fields)
    except ValidationError as exc:
        raise BadSaleInput(f"the {what} cannot be recorded: {_first_error(exc)}") from None
    if too_large_to_send(sale):
        raise BadSaleInput(f"this {what} of {len(sale.lines)} items is too large to send to head office (its names "
                           "and items do not fit in one message); nothing was recorded: split it into two sales")
    return sale


def new_sale(seq: int, sale_id: str, recorded_at: datetime, priced: Priced, payments: Sequence[Payment],
             cashier: str) -> Sale:
    """The sale event (v3); refused when it could never be sent (see `too_large_to_send`)."""
    return _event("sale", seq=seq, sale_id=sale_id, kind=SaleKind.SALE, recorded_at=recorded_at,
                  lines=list(priced.lines), total=priced.total, cashier=cashier, payments=list(payments),
                  discount=priced.discount)


def new_void(seq: int, sale_id: str, recorded_at: datetime, voided: Sale, voided_generation: int | None = None,
             cashier: str = DEFAULT_CASHIER, reason: str | None = None) -> Sale:
    """The void event of `voided`: no lines, minus its total, paid back the way it was paid.

    A void takes the record version of the sale it voids: a v3 void (with its cashier and
    `reason`) of a v3 sale, a v1/v2 void of an older one (whose mobile payment names no
    wallet, which a v3 payment must, and which has no field for the reason), so the two can
    always travel in one message.
    `voided_generation`: the voided sale's generation when it is an earlier one than the void's.
    """
    if voided.kind != SaleKind.SALE:
        raise BadSaleInput(f"number {voided.seq} is a {voided.kind.value.replace('_', ' ')}, not a sale; "
                           "only a sale can be voided")
    common = dict(seq=seq, sale_id=sale_id, kind=SaleKind.VOID, voids=voided.seq, voids_generation=voided_generation,
                  recorded_at=recorded_at, lines=[], total=-voided.total)
    if not voided.is_v3:
        return Sale(**common, payment=Payment(method=voided.payment.method, amount=-voided.total))
    back = [Payment(method=p.method, amount=-p.amount, wallet=p.wallet, txn_id=p.txn_id) for p in voided.payments]
    return _event("void", **common, payments=back, cashier=cashier, reason=reason)


def paid_for(line: SaleLine) -> int:
    """What the customer paid for a line: its net (v3), or its line total (v1/v2)."""
    return line.net if line.net is not None else line.line_total


def refund_lines(sale: Sale, returns: Sequence[tuple[int, str]], earlier: dict[int, tuple[Decimal, int]]) -> list[RefundLine]:
    """What a refund returns of `sale`: (line position from 1, quantity text) pairs, against
    `earlier` (per line, the quantity and paisa earlier refunds returned).

    The amount is the line's paid amount (`net`) in proportion to the quantity returned so
    far, rounded half up, less what earlier refunds returned: a full-line return returns
    exactly the line's net, and parts returned one by one add up to it.
    """
    if not returns:
        raise BadSaleInput("say which lines come back, as LINE=QTY (line numbers as on the receipt, from 1)")
    seen, out = set(), []
    for line_no, qty_text in returns:
        if not isinstance(line_no, int) or isinstance(line_no, bool) or not 1 <= line_no <= len(sale.lines):
            raise BadSaleInput(f"sale {sale.seq} has lines 1 to {len(sale.lines)}; there is no line {line_no}")
        if line_no in seen:
            raise BadSaleInput(f"line {line_no} is named twice; give each line once with its whole quantity")
        seen.add(line_no)
        line = sale.lines[line_no - 1]
        try:
            qty = parse_qty(str(qty_text))
        except ValueError as exc:
            raise BadSaleInput(f"line {line_no} ({line.sku}): {exc}") from None
        had_qty, had_amount = earlier.get(line_no, (Decimal(0), 0))
        left = line.qty - had_qty
        if qty > left:
            raise BadSaleInput(f"line {line_no} ({line.sku}): {format(qty, 'f')} is more than the "
                               f"{format(left, 'f')} sold and not yet returned")
        paid = paid_for(line)
        so_far = paid if had_qty + qty == line.qty else int(
            (Decimal(paid) * (had_qty + qty) / line.qty).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        amount = so_far - had_amount
        if amount < 1:
            raise BadSaleInput(f"line {line_no} ({line.sku}): {format(qty, 'f')} is too little to pay back any paisa")
        out.append(RefundLine(line=line_no, sku=line.sku, qty=qty, amount=amount))
    return out


def new_refund(seq: int, sale_id: str, recorded_at: datetime, ref: SaleRef, returns: Sequence[RefundLine],
               payments: Sequence[PaymentSpec], cashier: str, reason: str | None = None) -> Sale:
    """The refund event: no lines, what comes back of which lines, minus their amounts paid back, and why."""
    total = -sum(r.amount for r in returns)
    return _event("refund", seq=seq, sale_id=sale_id, kind=SaleKind.REFUND, recorded_at=recorded_at, lines=[],
                  total=total, cashier=cashier, payments=settle(total, payments, refund=True), refunds=ref,
                  returns=list(returns), reason=reason)


def new_shift_close(seq: int, sale_id: str, recorded_at: datetime, shift: ShiftClose, cashier: str) -> Sale:
    """The shift close event: no lines, no payments, a total of 0, and the Z report's figures."""
    return _event("shift close", seq=seq, sale_id=sale_id, kind=SaleKind.SHIFT_CLOSE, recorded_at=recorded_at,
                  lines=[], total=0, cashier=cashier, payments=[], shift=shift)


def payments_of(sale: Sale) -> list[Payment]:
    """An event's payments, whatever its record version."""
    return list(sale.payments) if sale.payments is not None else [sale.payment]


def method_text(sale: Sale) -> str:
    """The methods an event was paid by, e.g. `cash+mobile` (`-` for a shift close)."""
    return "+".join(dict.fromkeys(p.method.value for p in payments_of(sale))) or "-"
