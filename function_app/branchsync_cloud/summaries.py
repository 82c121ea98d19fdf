"""Per-branch, per-business-day figures folded from sale events, as pure functions (no I/O).

The queue function folds each applied batch into its branch's day summaries in the very
transaction that stores the sales and moves the watermark (apply.plan_transactions), so a
redelivered or replayed message never counts twice. `report rebuild` and the data lake
fold stored events with the same functions, so every path gives the same figures.

What a day holds (all money integer paisa):
- `sales`, `gross` (line totals before discounts), `discounts` (line and sale discounts);
  `refunds` / `refunded`, `voids` / `voided`: how many and how much they took back;
  `net` = gross - discounts - refunded - voided, which is the sum of the counted events' totals;
- VAT by rate (`vat`: rate -> [net, vat]), totals per payment method (`payments`), per
  cashier (`cashiers`: sales, net and the exceptions they made), per product (`products`:
  sku -> [name, quantity, net, vat]) and the shifts closed that day (`shifts`).

An event counts on the business day it was recorded (its `recorded_at` in the cloud's
business time zone, Asia/Dhaka unless configured): a void or a refund takes back on its own
day what it takes back, with the products and VAT of the sale it names. v1/v2 events carry
one payment and no cashier ("unknown") and their lines no VAT (rate 0, VAT 0). A shift
close counts no sale; it is kept for `report shifts`. Refused voids and refunds count
nowhere: callers pass counted events only.
"""

import functools
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import deflate
import pydantic_core

from shared.models import Sale, SaleKind
from shared.money import line_total, vat_part

DEFAULT_ZONE = "Asia/Dhaka"
UNKNOWN_CASHIER = "unknown"
# (generation, seq): a sale's identity within its branch (as apply.SaleKey).
SaleKey = tuple[int, int]
# Per cashier: how many and how much.
CASHIER_FIELDS = ("sales", "net", "voids", "voided", "refunds", "refunded", "discounts", "discounted",
                  "overrides", "overridden")


# An apply asks the day of each event several times (its days, its chunk pieces, its fold):
# converting to the zone is the costly part, so each (time, zone) is converted once.
@functools.lru_cache(maxsize=50_000)
def business_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


@dataclass
class DaySummary:
    branch: str
    day: date
    events: int = 0  # counted events folded (shift closes included)
    sales: int = 0
    gross: int = 0
    discounts: int = 0
    refunds: int = 0
    refunded: int = 0
    voids: int = 0
    voided: int = 0
    net: int = 0
    vat: dict[str, list[int]] = field(default_factory=dict)  # rate ("7.50") -> [net, vat]
    payments: dict[str, int] = field(default_factory=dict)  # method -> paisa (refunds and voids negative)
    cashiers: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> CASHIER_FIELDS
    products: dict[str, list] = field(default_factory=dict)  # sku -> [name, Decimal qty, net, vat]
    shifts: list[dict] = field(default_factory=list)
    etag: str | None = field(default=None, compare=False)  # as read; None: not stored yet

    # --- the stored form (JSON-ready; the store packs it) ---------------------------------

    def figures(self) -> dict:
        """Everything but the products and the keys, JSON-ready."""
        return {"events": self.events, "sales": self.sales, "gross": self.gross, "discounts": self.discounts,
                "refunds": self.refunds, "refunded": self.refunded, "voids": self.voids, "voided": self.voided,
                "net": self.net, "vat": self.vat, "payments": self.payments, "cashiers": self.cashiers,
                "shifts": self.shifts}

    def product_rows(self) -> list[list]:
        """[[sku, name, "qty", net, vat], ...] in sku order."""
        # The skus sorted alone: sorting the (sku, row) items took 60% longer, at every apply's pack.
        rows = []
        for sku in sorted(self.products):
            name, qty, net, vat = self.products[sku]
            rows.append([sku, name, str(qty), net, vat])
        return rows

    @classmethod
    def from_stored(cls, branch: str, day: date, figures: Mapping, products: Iterable[list],
                    etag: str | None = None) -> "DaySummary":
        return cls(branch=branch, day=day, etag=etag, products={p[0]: [p[1], _quantity(p[2]), p[3], p[4]] for p in products},
                   **{k: _copy(v) for k, v in figures.items() if k in _FIGURE_FIELDS})

    def copy(self) -> "DaySummary":
        """A copy that folding changes apart from this one: an apply copies each day it touches.

        The product rows are shared: the fold replaces a product's row, never changes it, so a
        day of thousands of products is copied in one dict copy rather than a list per product.
        """
        return DaySummary(branch=self.branch, day=self.day, etag=self.etag, products=dict(self.products),
                          **{k: _copy(v) for k, v in self.figures().items()})

    def same_figures(self, other: "DaySummary") -> bool:
        return (self.branch, self.day, self.figures(), self.product_rows()) == \
            (other.branch, other.day, other.figures(), other.product_rows())


_FIGURE_FIELDS = frozenset(DaySummary("", date.min).figures())
# A stored day's quantities are a few hundred texts over thousands of products, read back at
# every apply: each text is turned into its Decimal once (bounded; Decimals are immutable).
_quantity = functools.lru_cache(maxsize=8192)(Decimal)


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# --- folding -----------------------------------------------------------------------------------


def fold_events(branch: str, generation: int, events: Iterable[Sale], originals: Mapping[SaleKey, Sale],
                zone: ZoneInfo, into: dict[date, DaySummary] | None = None) -> dict[date, DaySummary]:
    """Fold one generation's counted events of `branch` into day summaries (`into`, changed in place, or new ones).

    `originals`: the sales the voids and refunds among `events` name, by (generation, seq);
    a sale among `events` itself may be left out of it. Raises ValueError when one is missing
    (a void's products and VAT come from the sale it voids).
    """
    days = {} if into is None else into
    earlier: dict[int, Sale] = {}
    for event in events:
        day = business_day(event.recorded_at, zone)
        summary = days.get(day)
        if summary is None:
            summary = days[day] = DaySummary(branch, day)
        original = None
        if event.kind in (SaleKind.VOID, SaleKind.REFUND):
            key = _named(generation, event)
            original = earlier.get(key[1]) if key[0] == generation else None
            original = original or originals.get(key)
            if original is None:
                raise ValueError(f"{event.kind} {generation}-{event.seq} of {branch} names sale {key[0]}-{key[1]}, "
                                 "which was not given")
        fold_event(summary, event, original)
        if event.kind == SaleKind.SALE:
            earlier[event.seq] = event
    return days


def _named(generation: int, event: Sale) -> SaleKey:
    if event.kind == SaleKind.REFUND:
        return (event.refunds.generation, event.refunds.seq)
    return (event.voids_generation or generation, event.voids)


def fold_event(day: DaySummary, event: Sale, original: Sale | None = None) -> None:
    """Add one counted event to its day; `original`: the sale a void or refund names."""
    day.events += 1
    cashier = _cashier_of(day, event.cashier or UNKNOWN_CASHIER)
    for p in event.payments if event.payments is not None else [event.payment]:
        day.payments[str(p.method)] = day.payments.get(str(p.method), 0) + p.amount
    day.net += event.total
    cashier["net"] += event.total
    if event.kind == SaleKind.SALE:
        gross = sum(line.line_total for line in event.lines)
        day.sales += 1
        day.gross += gross
        day.discounts += gross - event.total
        cashier["sales"] += 1
        if gross != event.total:
            cashier["discounts"] += 1
            cashier["discounted"] += gross - event.total
        for line in event.lines:
            _add_line(day, line.sku, line.name, line.qty, *_line_net_vat(line))
            if line.unit_price != line.list_price:
                cashier["overrides"] += 1
                cashier["overridden"] += line_total(line.qty, line.list_price) - line.line_total
    elif event.kind in (SaleKind.VOID, SaleKind.REFUND):
        count, paisa = ("voids", "voided") if event.kind == SaleKind.VOID else ("refunds", "refunded")
        setattr(day, count, getattr(day, count) + 1)
        setattr(day, paisa, getattr(day, paisa) - event.total)
        cashier[count] += 1
        cashier[paisa] -= event.total
        for sku, name, qty, net, rate, vat in _taken_back(event, original):
            _add_line(day, sku, name, -qty, -net, rate, -vat)
    elif event.kind == SaleKind.SHIFT_CLOSE:
        s = event.shift
        day.shifts.append({"cashier": event.cashier or UNKNOWN_CASHIER, "shift_id": s.shift_id,
                           "opened_at": s.opened_at.isoformat(), "closed_at": event.recorded_at.isoformat(),
                           "opening_float": s.opening_float, "expected_cash": s.expected_cash,
                           "counted_cash": s.counted_cash, "difference": s.counted_cash - s.expected_cash})
        day.shifts.sort(key=lambda shift: (shift["closed_at"], shift["shift_id"]))  # whatever order messages came in


def _taken_back(event: Sale, original: Sale) -> list[tuple[str, str, Decimal, int, str, int]]:
    """What a void or refund takes back of the sale it names: (sku, name, qty, net, VAT rate, VAT) per line."""
    if event.kind == SaleKind.VOID:
        return [(line.sku, line.name, line.qty, *_line_net_vat(line)) for line in original.lines]
    out = []
    for r in event.returns:
        line = original.lines[r.line - 1]
        rate = _line_net_vat(line)[1]
        out.append((line.sku, line.name, r.qty, r.amount, rate, vat_part(r.amount, Decimal(rate))))
    return out


def _cashier_of(day: DaySummary, name: str) -> dict[str, int]:
    figures = day.cashiers.get(name)
    if figures is None:
        figures = day.cashiers[name] = dict.fromkeys(CASHIER_FIELDS, 0)
    return figures


def _line_net_vat(line) -> tuple[int, str, int]:
    """What the customer paid for a line, its VAT rate as text ("0.00") and the VAT inside; v1/v2 lines: rate 0."""
    if line.net is None:
        return line.line_total, "0.00", 0
    return line.net, _rate_text(line.vat_rate), line.vat


# Formatting a Decimal costs more than the rest of a line's fold, and a branch sells at a few
# rates: each rate's text is kept (bounded). Equal rates format alike, except 0 and -0 ("-0.00").
_RATE_TEXTS: dict[Decimal, str] = {}


def _rate_text(rate: Decimal) -> str:
    text = None if rate.is_signed() else _RATE_TEXTS.get(rate)
    if text is None:
        text = f"{rate:.2f}"
        if not rate.is_signed() and len(_RATE_TEXTS) < 64:
            _RATE_TEXTS[rate] = text
    return text


def _add_line(day: DaySummary, sku: str, name: str, qty: Decimal, net: int, rate: str, vat: int) -> None:
    """A line's share of its product's row and of its VAT rate's (one call: it runs for every line folded)."""
    held = day.products.get(sku)
    # A row is replaced, never changed: copies of the day share their rows (DaySummary.copy).
    day.products[sku] = [name, qty, net, vat] if held is None else [held[0], held[1] + qty, held[2] + net, held[3] + vat]
    held = day.vat.get(rate)
    if held is None:
        day.vat[rate] = [net, vat]
    else:
        held[0] += net
        held[1] += vat


# --- the stored form: one row per branch and day, its products packed in it ---------------------

# A binary property holds 64 KiB; an entity 1 MiB. A day (its figures and every product sold)
# is one entity, so an apply writes one row per day it touches, whatever it sold. Part 0 is
# the zlib JSON of the figures alone, the parts after it the zlib JSON of the product rows, so
# a report that needs no products reads (and decodes) part 0 only.
PART_MAX_BYTES = 60 * 1024
PARTS_MAX = 15


# Every apply packs each day it touches again: libdeflate writes the zlib format zlib reads,
# at level 6 in 40% of zlib's time and about 6% smaller (2,400 products: 1.4 ms, 31 KB).
ZLIB_LEVEL = 6


def _zjson(value) -> bytes:
    # Compact UTF-8 JSON, as json.dumps(separators=(",", ":"), ensure_ascii=False) wrote it, in a quarter of the time.
    raw = pydantic_core.to_json(value)
    return bytes(deflate.zlib_compress(raw, ZLIB_LEVEL))  # a bytearray, which the Tables SDK refuses


def pack(summary: DaySummary) -> tuple[bytes, ...]:
    """The day as stored: (zlib of the figures, zlib of the product rows cut into PART_MAX_BYTES pieces...)."""
    figures, products = _zjson(summary.figures()), _zjson(summary.product_rows())
    parts = (figures, *(products[i:i + PART_MAX_BYTES] for i in range(0, len(products), PART_MAX_BYTES)))
    if len(figures) > PART_MAX_BYTES or len(parts) > PARTS_MAX:
        raise ValueError(f"the summary of {summary.branch} on {summary.day} packs to {len(figures) + len(products)} "
                         f"bytes, more than one row holds ({PARTS_MAX} x {PART_MAX_BYTES})")
    return parts


def unpack(branch: str, day: date, parts: Sequence[bytes], etag: str | None = None,
           products: bool = True) -> DaySummary:
    """A stored day; `products=False`: its figures only (part 0), the products left empty."""
    figures = json.loads(zlib.decompress(parts[0]))
    rows = json.loads(zlib.decompress(b"".join(parts[1:]))) if products and len(parts) > 1 else []
    return DaySummary.from_stored(branch, day, figures, rows, etag)


def days_of(events: Iterable[Sale], zone: ZoneInfo) -> set[date]:
    return {business_day(e.recorded_at, zone) for e in events}
