"""Wire models: every message and request body, validated and typed at once.

Money fields are integer paisa; quantities are decimals serialised as strings.
Models forbid unknown fields so that a typo or a forged extra field is refused
rather than silently dropped.
"""

import functools
import re
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WrapValidator, model_serializer,
                      model_validator)

from . import limits
from .money import line_total, parse_quantity, percent_of, share_out, vat_part

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Use fullmatch: with match, a trailing "$" also accepts a name ending in a newline.
BRANCH_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,%d}" % (limits.BRANCH_NAME_MAX_CHARS - 1))


def _no_control(value: str) -> str:
    # Control characters are never printable, so printable text (nearly every name) needs no regex.
    if not value.isprintable() and _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


# How much of one field name, or of one problem, an error message may echo of the input.
FIELD_NAME_ECHO_CHARS = 40
PROBLEM_ECHO_CHARS = 200


def describe_errors(exc: ValidationError, count: int = 1) -> str:
    """The first `count` problems, each naming its field, e.g. `products.0.price: ...`.

    Field names can come from the input (an unknown key), and a problem can quote a value,
    so each is escaped and shortened: an error never echoes much of a hostile body.
    """
    parts = []
    for e in exc.errors()[:count]:
        where = ".".join(_echo(p, FIELD_NAME_ECHO_CHARS) for p in e.get("loc", ())) or "body"
        parts.append(f"{where}: {_echo(e.get('msg', 'invalid'), PROBLEM_ECHO_CHARS)}")
    return "; ".join(parts)


def _echo(part, limit: int) -> str:
    text = str(part)
    text = text if text.isprintable() else ascii(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone (UTC)")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-23:59: pydantic lets only ValueError become a validation error
        raise ValueError("lies outside the years 1 to 9999 once converted to UTC") from None


# parse_quantity is a function of the text alone, and a batch repeats a few quantities ("1",
# "2", "0.75") thousands of times: each text is checked once (lru_cache keeps no refusal, so
# those are raised every time).
_parsed_quantity = functools.lru_cache(maxsize=4096)(parse_quantity)


def _qty(value: Decimal) -> Decimal:
    return _parsed_quantity(str(value))


class _Spellings:
    """A wrap validator that gives a text it has validated before the same Decimal again.

    A catalog's VAT rates are a handful of spellings ("0", "7.5", "15") over 100,000 products,
    and a batch's quantities and rates a few ("1", "2", "0.75") over thousands of lines; checking
    a Decimal's digits and places costs pydantic a call into Python per value (a third of a
    catalog page's validation). Anything else (a number, a new spelling) is validated in full,
    so every refusal is the one the field gives. Bounded; Decimals are immutable. It assumes
    lax validation, the only kind the models get (strict mode would refuse a text every time).
    """

    def __init__(self, kept: int):
        self.seen: dict[str, Decimal] = {}
        self.kept = kept

    def __call__(self, value, handler):
        if type(value) is str and (known := self.seen.get(value)) is not None:
            return known
        result = handler(value)
        if type(value) is str and len(self.seen) < self.kept:
            self.seen[value] = result
        return result


def _branch(value: str) -> str:
    if not BRANCH_RE.fullmatch(value):
        raise ValueError(
            f"branch name must be 1-{limits.BRANCH_NAME_MAX_CHARS} letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


Text = Annotated[str, Field(min_length=1, max_length=limits.NAME_MAX_CHARS), AfterValidator(_no_control)]
Sku = Annotated[str, Field(min_length=1, max_length=limits.SKU_MAX_CHARS, pattern=r"^[^\s/\\#?]+$"), AfterValidator(_no_control)]
BranchName = Annotated[str, AfterValidator(_branch)]
Paisa = Annotated[int, Field(ge=0, le=limits.PAISA_MAX)]
SignedPaisa = Annotated[int, Field(ge=-limits.PAISA_MAX * limits.SALE_MAX_LINES, le=limits.PAISA_MAX * limits.SALE_MAX_LINES)]
# A report figure, not an amount anyone paid: a line (at most PAISA_MAX) less the same quantity
# at the current price (at most QTY_MAX x PAISA_MAX, about 10**14: still exact in JSON).
DifferencePaisa = Annotated[int, Field(ge=-limits.QTY_MAX * limits.PAISA_MAX, le=limits.PAISA_MAX)]
Quantity = Annotated[Decimal, AfterValidator(_qty), WrapValidator(_Spellings(4096))]
UtcTime = Annotated[datetime, AfterValidator(_utc)]
Seq = Annotated[int, Field(ge=1, le=2**53)]
# A till's numbering generation: 1 until its first restore from a backup, then one more per restore.
Generation = Annotated[int, Field(ge=1, le=limits.GENERATION_MAX)]


def _omit_none(data: dict, names: tuple[str, ...]) -> dict:
    """Leave fields out of the JSON when absent: readers older than a field refuse unknown fields."""
    for name in names:
        if data.get(name) is None:
            data.pop(name, None)
    return data


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


# --- sales -------------------------------------------------------------------------------


class PaymentMethod(StrEnum):
    CASH = "cash"
    CARD = "card"
    MOBILE = "mobile"


class Wallet(StrEnum):
    BKASH = "bkash"
    NAGAD = "nagad"


class SaleKind(StrEnum):
    SALE = "sale"
    VOID = "void"
    # The v3 record's events (see SalesBatch):
    REFUND = "refund"
    SHIFT_CLOSE = "shift_close"


# Event kinds only a v3 batch carries.
V3_KINDS = frozenset({SaleKind.REFUND, SaleKind.SHIFT_CLOSE})


def sale_number(generation: int, seq: int) -> str:
    """A sale's number as the till prints it on the receipt: `14` in generation 1, `2-14` after a restore.

    Generation 1 prints the bare seq, as every receipt did before generations existed.
    """
    return str(seq) if generation == 1 else f"{generation}-{seq}"


SALE_NUMBER_RE = re.compile(r"(?:([0-9]{1,3})-)?([0-9]{1,16})")


def parse_sale_number(text: str) -> tuple[int, int]:
    """(generation, seq) of a printed sale number (`14` or `2-14`); ValueError if it is not one."""
    match = SALE_NUMBER_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a sale number; write it as printed on the receipt, e.g. 14 or 2-14")
    generation, seq = int(match.group(1) or 1), int(match.group(2))
    if not 1 <= generation <= limits.GENERATION_MAX or not 1 <= seq <= 2**53:
        raise ValueError(f"{text!r} is not a sale number; write it as printed on the receipt, e.g. 14 or 2-14")
    return generation, seq


VatRate = Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2), WrapValidator(_Spellings(64))]
# A wallet's transaction id as the customer's phone shows it (bKash: 10 letters and digits).
TxnId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z-]+$")]


class DiscountKind(StrEnum):
    AMOUNT = "amount"
    PERCENT = "percent"


class Discount(Model):
    """A discount with its reason (v3): `value` paisa off, or `value` percent of what it applies to.

    `amount` is the paisa taken off: the value itself, or percent_of (half up to a whole paisa).
    """

    kind: DiscountKind
    value: Annotated[Decimal, Field(gt=0, le=limits.PAISA_MAX, decimal_places=2)]
    reason: Text
    amount: Paisa

    @model_validator(mode="after")
    def _value(self):
        if self.kind == DiscountKind.PERCENT and self.value > 100:
            raise ValueError("a percent discount is at most 100")
        if self.kind == DiscountKind.AMOUNT and self.value != self.value.to_integral_value():
            raise ValueError("an amount discount is whole paisa")
        return self

    def check(self, base: int, what: str) -> None:
        expected = int(self.value) if self.kind == DiscountKind.AMOUNT else percent_of(base, self.value)
        if self.amount != expected:
            raise ValueError(f"{what} discount amount {self.amount} != {expected} ({self.kind} {self.value} of {base})")
        if self.amount > base:
            raise ValueError(f"{what} discount {self.amount} is more than the {base} paisa it applies to")


class SaleLine(Model):
    sku: Sku
    name: Text
    qty: Quantity
    unit_price: Paisa
    # The catalog price when the sale was rung up; differs from unit_price on an override.
    list_price: Paisa
    # qty x unit_price, before any discount.
    line_total: Paisa
    # v3 (absent in v1/v2 JSON): the line's discount, what the customer pays for it after
    # both discounts (`net`), and the VAT inside `net` at the product's rate.
    discount: Discount | None = None
    net: Paisa | None = None
    vat_rate: VatRate | None = None
    vat: Paisa | None = None
    # v3: why the price was overridden; only on a line whose unit_price differs from list_price.
    price_reason: Text | None = None

    _v3_fields: ClassVar[tuple[str, ...]] = ("discount", "net", "vat_rate", "vat", "price_reason")

    @property
    def is_v3(self) -> bool:
        # Spelt out (the _v3_fields): the cloud asks it of every line a few times while validating a batch.
        return (self.net is not None or self.vat_rate is not None or self.vat is not None or self.discount is not None
                or self.price_reason is not None)

    @property
    def after_line_discount(self) -> int:
        return self.line_total - (self.discount.amount if self.discount else 0)

    @model_validator(mode="after")
    def _total_matches(self):
        # Runs for every line the cloud receives: each field is read once (is_v3 spelt out again).
        if self.line_total != line_total(self.qty, self.unit_price):
            raise ValueError(f"line_total {self.line_total} != qty x unit_price for {self.sku}")
        net, rate, vat, discount, reason = self.net, self.vat_rate, self.vat, self.discount, self.price_reason
        if net is not None or rate is not None or vat is not None or discount is not None or reason is not None:
            if net is None or rate is None or vat is None:
                raise ValueError(f"a v3 line carries net, vat_rate and vat ({self.sku})")
            if reason is not None and self.unit_price == self.list_price:
                raise ValueError(f"price_reason belongs to a line whose unit_price differs from list_price ({self.sku})")
            if discount is not None:
                discount.check(self.line_total, f"line {self.sku}")
            if vat != (expected := vat_part(net, rate)):
                raise ValueError(f"vat {vat} != net x rate / (100 + rate) = {expected} for {self.sku}")
        return self

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler):
        return _omit_none(handler(self), self._v3_fields)


class Payment(Model):
    method: PaymentMethod
    amount: SignedPaisa
    # v3 (absent in v1/v2 JSON): a mobile wallet and the customer's transaction id; for
    # cash, what the customer handed over and the change given back.
    wallet: Wallet | None = None
    txn_id: TxnId | None = None
    tendered: Paisa | None = None
    change: Paisa | None = None

    _v3_fields: ClassVar[tuple[str, ...]] = ("wallet", "txn_id", "tendered", "change")

    @model_validator(mode="after")
    def _consistent(self):
        if (self.wallet is not None or self.txn_id is not None) and self.method != PaymentMethod.MOBILE:
            raise ValueError("wallet and txn_id belong to a mobile payment")
        if (self.tendered is not None or self.change is not None) and self.method != PaymentMethod.CASH:
            raise ValueError("tendered and change belong to a cash payment")
        if (self.tendered is None) != (self.change is None):
            raise ValueError("a cash payment carries tendered and change together")
        if self.tendered is not None and self.change != self.tendered - self.amount:
            raise ValueError(f"change {self.change} != tendered {self.tendered} - amount {self.amount}")
        return self

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler):
        return _omit_none(handler(self), self._v3_fields)


class SaleRef(Model):
    """Which sale of this till a refund refers to."""

    generation: Generation
    seq: Seq


class RefundLine(Model):
    """What a refund returns of one line of the sale: `line` is its position there, from 1."""

    line: Annotated[int, Field(ge=1, le=limits.SALE_MAX_LINES)]
    sku: Sku
    qty: Quantity
    amount: Annotated[int, Field(ge=1, le=limits.PAISA_MAX)]


class ShiftClose(Model):
    """A cashier's shift as the till closed it (the Z report's figures), all in paisa."""

    shift_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]
    opened_at: UtcTime
    opening_float: Paisa
    counted_cash: Paisa
    expected_cash: SignedPaisa
    # Per payment method, the shift's sales less its refunds, as the till computed them.
    by_method: dict[PaymentMethod, SignedPaisa]


class Sale(Model):
    """One event in a branch's gap-free sequence: a sale, the void of an earlier one, and in v3
    a refund or a shift close.

    A void carries no lines and the negative of the voided total, so that the sum of
    `total` over all events is what the branch took. `voids` names the voided sale's seq
    in the void's own generation, or in `voids_generation` when that is an earlier one
    (a restored till voiding a sale it rang up before the restore).

    The v3 record is told by `payments` (a list) in place of `payment`, and carries who
    recorded it (`cashier`). A v3 sale's `total` is the sum of its lines' `net`; a refund
    returns `returns` of the sale `refunds` names for a negative total; a shift close has
    no lines, a total of 0 and no payments, and counts as no sale.
    """

    seq: Seq
    sale_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    kind: SaleKind = SaleKind.SALE
    voids: Seq | None = None
    voids_generation: Generation | None = None
    recorded_at: UtcTime
    lines: Annotated[list[SaleLine], Field(max_length=limits.SALE_MAX_LINES)]
    # v1/v2: the one payment. v3 carries `payments` instead.
    payment: Payment | None = None
    total: SignedPaisa
    # v3 (absent in v1/v2 JSON):
    cashier: Text | None = None
    payments: Annotated[list[Payment], Field(max_length=limits.SALE_MAX_PAYMENTS)] | None = None
    discount: Discount | None = None
    refunds: SaleRef | None = None
    returns: Annotated[list[RefundLine], Field(max_length=limits.SALE_MAX_LINES)] | None = None
    shift: ShiftClose | None = None
    # Why a void or a refund was recorded (optional on the wire; the till always gives a void's).
    reason: Text | None = None

    _v3_fields: ClassVar[tuple[str, ...]] = ("cashier", "payments", "discount", "refunds", "returns", "shift",
                                             "reason")

    @property
    def is_v3(self) -> bool:
        return self.payments is not None

    @model_validator(mode="after")
    def _consistent(self):
        if self.payments is not None:  # is_v3, asked of every event the cloud receives
            return self._consistent_v3()
        if self.payment is None:
            raise ValueError("a sale carries payment (v1/v2) or payments (v3)")
        if (self.kind in V3_KINDS or any(getattr(self, n) is not None for n in self._v3_fields)
                or any(line.is_v3 for line in self.lines) or self.payment.model_dump(exclude_none=True).keys() - {"method", "amount"}):
            raise ValueError("cashier, discounts, VAT, refunds, shift closes, reasons and payment details belong to the v3 "
                             "record, which carries payments (a list) instead of payment")
        if self.kind == SaleKind.SALE:
            if not self.lines:
                raise ValueError("a sale needs at least one line")
            if self.voids is not None or self.voids_generation is not None:
                raise ValueError("only a void refers to another sale")
            if self.total != sum(line.line_total for line in self.lines):
                raise ValueError("total is not the sum of the line totals")
        else:
            self._check_void()
        if self.payment.amount != self.total:
            raise ValueError("payment amount must equal the total")
        return self

    def _check_void(self) -> None:
        if self.lines or self.voids is None or (self.voids_generation is None and self.voids >= self.seq):
            raise ValueError("a void has no lines and refers to an earlier sale")
        if self.total > 0:
            raise ValueError("a void's total is the negative of the voided sale")

    def _consistent_v3(self):
        kind, total, payments = self.kind, self.total, self.payments
        if self.payment is not None:
            raise ValueError("a v3 event carries payments, not payment")
        if self.cashier is None:
            raise ValueError("a v3 event names its cashier")
        if kind != SaleKind.SALE and self.discount is not None:
            raise ValueError("only a sale carries a discount")
        if kind != SaleKind.REFUND and (self.refunds is not None or self.returns is not None):
            raise ValueError("only a refund carries refunds and returns")
        if kind != SaleKind.SHIFT_CLOSE and self.shift is not None:
            raise ValueError("only a shift close carries shift")
        if kind != SaleKind.VOID and kind != SaleKind.REFUND and self.reason is not None:
            raise ValueError("only a void or a refund carries a reason (a discount's reason is in the discount, "
                             "a price override's in its line's price_reason)")
        if kind != SaleKind.VOID and (self.voids is not None or self.voids_generation is not None):
            raise ValueError("only a void refers to another sale by voids")
        if kind == SaleKind.SALE:
            self._check_v3_sale()
        elif kind == SaleKind.VOID:
            self._check_void()
        elif kind == SaleKind.REFUND:
            if self.lines or not self.returns or self.refunds is None:
                raise ValueError("a refund has no lines; it names the sale (refunds) and what it returns (returns)")
            if len({r.line for r in self.returns}) != len(self.returns):
                raise ValueError("a refund names each line of the sale at most once")
            if total != -sum(r.amount for r in self.returns):
                raise ValueError("a refund's total is minus the sum of its returns' amounts")
        else:
            if self.lines or self.shift is None or total != 0 or payments:
                raise ValueError("a shift close has no lines and no payments, a total of 0, and its shift")
        if sum(p.amount for p in payments) != total:
            raise ValueError("the payments add up to the total")
        for p in payments:
            if p.method == PaymentMethod.MOBILE and (p.wallet is None or p.txn_id is None):
                raise ValueError("a mobile payment names its wallet and the customer's transaction id")
            if total < 0 < p.amount or p.amount < 0 < total:
                raise ValueError("each payment has the sign of the total")
        return self

    def _check_v3_sale(self) -> None:
        lines = self.lines
        if not lines:
            raise ValueError("a sale needs at least one line")
        # A validated line with net is v3: is_v3 is asked only of the others.
        for line in lines:
            if line.net is None and not line.is_v3:
                raise ValueError("every line of a v3 sale carries net, vat_rate and vat")
        discount = self.discount
        net_sum = 0
        if discount is None:  # the usual sale: every line's share of the sale discount is 0, no lists built
            for line in lines:
                net, base = line.net, line.line_total if line.discount is None else line.line_total - line.discount.amount
                if net != base:
                    raise ValueError(f"net {net} of {line.sku} != {base} (line total less its discount "
                                     "and its share 0 of the sale discount)")
                net_sum += net
        else:
            bases = [line.line_total if line.discount is None else line.line_total - line.discount.amount for line in lines]
            discount.check(sum(bases), "sale")
            for line, base, share in zip(lines, bases, share_out(discount.amount, bases)):
                if line.net != base - share:
                    raise ValueError(f"net {line.net} of {line.sku} != {base - share} (line total less its discount "
                                     f"and its share {share} of the sale discount)")
                net_sum += line.net
        if self.total != net_sum:
            raise ValueError("total is not the sum of the lines' net")

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler):
        return _omit_none(handler(self), ("voids_generation", "payment", *self._v3_fields))


class SalesBatch(Model):
    """The body of one queue message: sales of one generation of one branch, ascending seq.

    v1 (no `generation`) is generation 1, byte for byte what tills sent before generations
    existed; v2 carries the generation, which only a restored till (generation 2 and up) sends.
    v3 carries the generation too, and only v3 events (cashier, payments, discounts, VAT,
    refunds, shift closes); it is 3 because 2 already means "carries a generation".
    """

    v: Literal[1, 2, 3] = 1
    branch: BranchName
    generation: Generation = 1
    sent_at: UtcTime
    sales: Annotated[list[Sale], Field(min_length=1, max_length=limits.BATCH_MAX_SALES)]

    @model_validator(mode="after")
    def _ascending(self):
        seqs = [s.seq for s in self.sales]
        if any(b <= a for a, b in zip(seqs, seqs[1:])):
            raise ValueError("sales must be in strictly ascending seq order")
        if self.v == 1 and self.generation != 1:
            raise ValueError("a batch of generation 2 or later is v2")
        if any(s.is_v3 != (self.v == 3) for s in self.sales):
            raise ValueError("a v3 batch carries only v3 events (payments), a v1 or v2 batch none")
        for sale in self.sales:
            if sale.voids_generation is not None and (
                    sale.voids_generation > self.generation
                    or (sale.voids_generation == self.generation and sale.voids >= sale.seq)):
                raise ValueError(f"void {sale.seq} refers to a sale of a later generation or a later number")
            ref = sale.refunds
            if ref is not None and (ref.generation > self.generation
                                    or (ref.generation == self.generation and ref.seq >= sale.seq)):
                raise ValueError(f"refund {sale.seq} refers to a sale of a later generation or a later number")
        return self

    @classmethod
    def of(cls, branch: str, generation: int, sent_at: datetime, sales: list[Sale]) -> "SalesBatch":
        """The lowest version that carries these events."""
        v = 3 if any(s.is_v3 for s in sales) else 1 if generation == 1 else 2
        return cls(v=v, branch=branch, generation=generation, sent_at=sent_at, sales=sales)

    @model_serializer(mode="wrap")
    def _omit_generation(self, handler):
        data = handler(self)
        if data.get("v") == 1:
            data.pop("generation", None)
        return data


# --- catalog -------------------------------------------------------------------------------

class Product(Model):
    sku: Sku
    name: Text
    price: Paisa
    barcode: Annotated[str, Field(min_length=1, max_length=limits.BARCODE_MAX_CHARS, pattern=r"^[0-9A-Za-z-]+$")] | None = None
    unit: Annotated[str, Field(min_length=1, max_length=limits.UNIT_MAX_CHARS), AfterValidator(_no_control)] = "pcs"
    vat_rate: Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2), WrapValidator(_Spellings(64))] = Decimal(0)
    active: bool = True


class CatalogEntry(Model):
    """A product at a catalog version, or a tombstone (deleted=True, product=None)."""

    version: Seq
    sku: Sku
    deleted: bool = False
    product: Product | None = None

    @model_validator(mode="after")
    def _shape(self):
        if self.deleted == (self.product is not None):
            raise ValueError("an entry carries a product, or is a tombstone without one")
        if self.product is not None and self.product.sku != self.sku:
            raise ValueError("entry sku differs from its product's sku")
        return self


class CatalogPage(Model):
    # Up to CATALOG_PAGE_MAX, or CATALOG_PAGE_WIDE_MAX for a till that asked for more.
    entries: Annotated[list[CatalogEntry], Field(max_length=limits.CATALOG_PAGE_WIDE_MAX)]
    # The version to ask from next; equal to the request's cursor when nothing is new.
    next_cursor: Annotated[int, Field(ge=0)]
    more: bool
    # The cursor is older than the tombstone horizon: drop the local catalog and pull from 0.
    full_resync: bool = False


class QueueAccess(Model):
    """Where and how a branch may push: a queue URL and a SAS that can only add messages."""

    queue_url: str
    sas_token: str
    expires_at: UtcTime


Secret = Annotated[str, Field(min_length=32, max_length=128)]


class Refusal(Model):
    """The latest queue message of this branch (signed with its secret) that the cloud refused.

    `seq` and `sale_id` name the refused sale when one sale is the reason (cloned_till: the
    sale that arrived under a number already taken), so a till can tell its own sale from
    another PC's.
    """

    at: UtcTime
    code: str
    reason: str
    seq: Seq | None = None
    sale_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = None
    # The refused sale's generation when it is not 1 (absent for generation 1, as before).
    generation: Generation | None = None

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler):
        return _omit_none(handler(self), ("generation",))


class GenerationAck(Model):
    """The cloud's watermark of one numbering generation of a branch (generation 2 and up)."""

    generation: Generation
    applied_through: Annotated[int, Field(ge=0)]


PUSH_ROUTE_PATH_RE = re.compile(r"/[A-Za-z0-9/_-]{1,100}")


def _push_path(value: str) -> str:
    # A path on the cloud the branch enrolled with, never a host: nothing is sent elsewhere.
    if not PUSH_ROUTE_PATH_RE.fullmatch(value) or "//" in value:
        raise ValueError("must be a path like /api/push")
    return value


class PushRoute(Model):
    """Push through the cloud instead of the queue: POST `PushRequest` to `path`, signed like a pull."""

    path: Annotated[str, AfterValidator(_push_path)]
    max_messages: Annotated[int, Field(ge=1)]
    max_body_bytes: Annotated[int, Field(ge=1)]


class PushRequest(Model):
    """The body of POST /api/push: the very queue message texts the branch would have sent."""

    messages: Annotated[list[Annotated[str, Field(min_length=1, max_length=limits.QUEUE_MESSAGE_BUDGET_CHARS)]],
                        Field(min_length=1, max_length=limits.PUSH_ROUTE_MAX_MESSAGES)]


class PushAccepted(Model):
    """The messages are on the sales queue; they are applied (exactly once) from there."""

    accepted: Annotated[int, Field(ge=0)]


# What a branch says it can push through, in the pull's `push` query parameter. Without it
# (older branches) only the queue: such a branch gets `push` and never `push_route`.
PUSH_WAYS = ("queue", "route")


class PullAnswer(Model):
    branch: BranchName
    # Generation 1's watermark; later generations' are in `acks`.
    applied_through: Annotated[int, Field(ge=0)]
    catalog: CatalogPage
    server_time: UtcTime
    # The queue SAS; absent when the cloud takes pushes through the route only (push mode
    # "route"), and then only for branches that said they can use it.
    push: QueueAccess | None = None
    # The push route, for branches that said they can use it: the only way when `push` is
    # absent, else the fallback when the queue cannot be reached (a proxy that blocks it).
    push_route: PushRoute | None = None
    # Absent from older clouds, and when nothing of this branch is refused.
    last_refusal: Refusal | None = None

    # Head office rotated this branch's secret: store this one and sign with it from now on.
    rotate_secret: Secret | None = Field(default=None, repr=False)
    # Watermarks of every generation after the first the cloud holds sales of; absent when none.
    acks: Annotated[list[GenerationAck], Field(max_length=limits.GENERATION_MAX)] | None = None

    # Left out of the JSON when absent: branches older than a field refuse unknown fields.
    _omitted_when_none: ClassVar[tuple[str, ...]] = ("rotate_secret", "last_refusal", "acks", "push", "push_route")

    @model_validator(mode="after")
    def _some_way_to_push(self):
        if self.push is None and self.push_route is None:
            raise ValueError("a pull answer names a way to push: push or push_route")
        return self

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler):
        return _omit_none(handler(self), self._omitted_when_none)

    def applied_through_of(self, generation: int) -> int:
        if generation == 1:
            return self.applied_through
        return next((a.applied_through for a in self.acks or () if a.generation == generation), 0)


# --- enrollment ------------------------------------------------------------------------------


class EnrollRequest(Model):
    token: Annotated[str, Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


class EnrollAnswer(Model):
    branch: BranchName
    secret: Secret


# --- admin -------------------------------------------------------------------------------------


class BranchCreate(Model):
    name: BranchName


class BranchCreated(Model):
    branch: BranchName
    enrollment_code: str
    expires_at: UtcTime


class BranchInfo(Model):
    branch: BranchName
    created_at: UtcTime
    enrolled: bool
    applied_through: int
    sales_applied: int
    total_paisa: int
    last_pull: UtcTime | None = None
    last_push: UtcTime | None = None
    last_error: str | None = None
    # A new secret waits for the branch's next pull (`branch rotate`).
    rotation_pending: bool = False
    revoked_at: UtcTime | None = None
    # Watermarks of the generations after the first (a till restored from a backup numbers anew).
    acks: list[GenerationAck] | None = None


class BranchRotation(Model):
    branch: BranchName
    requested_at: UtcTime
    # A rotation was already waiting; it is kept, since the branch may hold that secret already.
    already_pending: bool = False


class BranchRevocation(Model):
    branch: BranchName
    revoked_at: UtcTime
    already_revoked: bool = False


class BranchList(Model):
    branches: list[BranchInfo]


class CatalogImport(Model):
    """One change to the catalog: products to write and SKUs to delete (tombstones), together.

    At least one of either and at most CATALOG_IMPORT_MAX of both. `deleted` is left out of
    the JSON when empty, so an import of products alone is the body it always was (a cloud
    from before deletes rode along refuses the unknown field). A SKU named twice, written
    and deleted at once, or deleted twice, is refused by the cloud as it plans the change,
    naming the SKU (docs/protocol.md, "Catalog changes").
    """

    products: Annotated[list[Product], Field(max_length=limits.CATALOG_IMPORT_MAX)]
    deleted: Annotated[list[Sku], Field(max_length=limits.CATALOG_IMPORT_MAX)] = []

    @model_validator(mode="after")
    def _size(self):
        count = len(self.products) + len(self.deleted)
        if not count:
            raise ValueError("a catalog change names at least one product or one deleted sku")
        if count > limits.CATALOG_IMPORT_MAX:
            raise ValueError(f"a catalog change carries at most {limits.CATALOG_IMPORT_MAX} products and deleted skus "
                             f"together, not {count}; send the rest in another request")
        return self

    @model_serializer(mode="wrap")
    def _omit_no_deletes(self, handler):
        data = handler(self)
        if not data.get("deleted"):
            data.pop("deleted", None)
        return data


class CatalogWriteResult(Model):
    written: int
    first_version: int
    last_version: int


class LakeDay(Model):
    branch: BranchName
    day: date


class LakeWriteResult(Model):
    """What one write of the data lake did (docs/reporting.md, "Data lake").

    `events`: applied events read since the last write; `days`: the business days rewritten;
    `busy`: branches another write was doing; `more`: branches with events left for the next write.
    """

    branches: Annotated[int, Field(ge=0)]
    events: Annotated[int, Field(ge=0)]
    days: list[LakeDay]
    files: Annotated[int, Field(ge=0)]
    bytes: Annotated[int, Field(ge=0)]
    busy: list[BranchName]
    more: list[BranchName]


class CatalogCompaction(Model):
    """What a compaction did: tombstones purged, and the stored segments and entries before and after.

    A fresh pull reads `entries_after` entries: once compacted, one per live product plus
    the tombstones still newer than some live product.
    """

    purged: Annotated[int, Field(ge=0)]
    segments_before: Annotated[int, Field(ge=0)]
    segments_after: Annotated[int, Field(ge=0)]
    entries_before: Annotated[int, Field(ge=0)]
    entries_after: Annotated[int, Field(ge=0)]
    last_version: Annotated[int, Field(ge=0)]
    tombstone_horizon: Annotated[int, Field(ge=0)]


class AppliedSale(Model):
    branch: BranchName
    generation: Generation = 1
    sale: Sale
    applied_at: UtcTime


class SalesExportPage(Model):
    sales: list[AppliedSale]
    # Opaque continuation; None when this is the last page.
    next: str | None = None


class PriceDifference(Model):
    """An applied sale line that the current catalog no longer agrees with.

    The sale stays as sold; this only shows head office where it and the catalog differ:
    `deleted` (the SKU was deleted since), `unknown` (never in the catalog, or its deletion
    was purged) or `price_differs` (the current price is not the unit price charged).
    """

    branch: BranchName
    seq: Seq
    sale_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    recorded_at: UtcTime
    line: Annotated[int, Field(ge=1)]  # position in the sale, from 1
    sku: Sku
    name: Text
    qty: Quantity
    sold_price: Paisa      # the unit price charged
    list_price: Paisa      # the branch's catalog price when it was sold
    current_price: Paisa | None = None   # None: no longer in the catalog
    status: Literal["deleted", "unknown", "price_differs"]
    # line_total minus qty x current_price (positive: sold dearer than the catalog says now).
    difference: DifferencePaisa | None = None


class PriceDifferencePage(Model):
    differences: list[PriceDifference]
    # Opaque continuation, as for the sales export; a page may be empty and still carry one.
    next: str | None = None


class ErrorDetail(Model):
    code: str
    message: str


class ErrorBody(Model):
    error: ErrorDetail


# --- dead letters --------------------------------------------------------------------------------

DeadLetterId = Annotated[str, Field(pattern=r"^[0-9]{8}-[0-9]{12}-[0-9a-f]{8}$")]


class DeadLetterInfo(Model):
    """A queue message the cloud refused, kept with its reason until replayed or discarded."""

    id: DeadLetterId
    received_at: UtcTime
    branch: str | None = None
    code: str
    reason: str
    size: int
    truncated: bool = False
    replays: int = 0


class DeadLetterList(Model):
    dead_letters: list[DeadLetterInfo]


class DeadLetterDetail(Model):
    info: DeadLetterInfo
    # The message body as received (after the queue's base64), base64 again for JSON.
    raw_base64: str
    # What could be read of it without trusting it: the frame's branch and the seq range.
    summary: str


class ReplayResult(Model):
    id: DeadLetterId
    # applied: new sales stored; duplicate: all already applied (nothing changed);
    # still_failing: refused again, the dead letter stays with the new reason.
    status: Literal["applied", "duplicate", "still_failing"]
    new_sales: int = 0
    applied_through: int | None = None
    code: str | None = None
    reason: str | None = None


# --- head office's reports from the day summaries ---------------------------------------------

# What a report column holds, so a reader formats it: text, a whole number, integer paisa
# (shown as taka with two decimals), an exact quantity (text), a date, or a time (ISO 8601).
ReportKind = Literal["text", "int", "paisa", "qty", "date", "time"]
ReportCell = str | int | None


class BranchSync(Model):
    """How far a branch's figures are known: its last sync and what it still held then."""

    branch: BranchName
    last_pull: UtcTime | None = None
    pending: int | None = None  # unacknowledged events the branch reported on that pull
    # The last business day whose figures are complete: the branch synced after that day
    # ended with nothing pending. None: no such day yet.
    complete_through: date | None = None


class ReportTable(Model):
    """A report as a table: typed columns, rows of cells (money in integer paisa), and how complete it is.

    `complete` is false when a branch the report covers has not synced, with nothing
    pending, since the end of the report's last day; `branches` says where each stands.
    """

    report: str
    first: date
    last: date
    by: str | None = None
    branch: BranchName | None = None
    zone: str
    columns: list[str]
    kinds: list[ReportKind]
    rows: list[list[ReportCell]]
    complete: bool
    branches: list[BranchSync]


class SummaryRebuild(Model):
    """What `report rebuild` did, per branch: the days rewritten from the stored sales."""

    branches: dict[str, int]
    events: int
