"""Shifts and the Z report, without I/O: what a shift's events add up to when it closes.

A shift opens with a counted float and closes with the cash counted in the drawer. Its
events are the ones recorded while it was open (the store tags each with the open shift;
an event outside any shift is in no Z report). The report:

- sales: how many, their gross (line totals before discounts), the discounts (line and
  sale) and their net (what the customer paid);
- refunds and voids: how many and how much they paid back (positive paisa);
- per payment method, what the shift took: sales less refunds and voids, each event by
  its own payments (a void of a sale rung up in an earlier shift comes out of this one's);
- expected cash = float + the cash parts of sales (change already given back: a cash
  part is tendered less change) - cash paid back by refunds and voids; counted; and the
  difference, counted - expected (positive: over, negative: short).
"""

from dataclasses import asdict, dataclass, replace
from collections.abc import Iterable

from shared.models import PaymentMethod, Sale, SaleKind


@dataclass(frozen=True)
class Shift:
    id: str
    cashier: str
    opened_at: str          # stored time text (UTC)
    opening_float: int      # paisa


@dataclass(frozen=True)
class ZReport:
    shift_id: str
    cashier: str
    opened_at: str
    closed_at: str
    opening_float: int
    sales: int
    gross: int
    discounts: int
    net: int
    refunds: int
    refunded: int
    voids: int
    voided: int
    by_method: dict[PaymentMethod, int]
    cash_in: int
    cash_out: int
    expected_cash: int
    counted_cash: int
    difference: int
    # The printed number of the shift_close event that carried it.
    number: str | None = None

    def numbered(self, number: str) -> "ZReport":
        return replace(self, number=number)

    def as_json(self) -> dict:
        data = asdict(self)
        data["by_method"] = {m.value: v for m, v in self.by_method.items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> "ZReport":
        return cls(**{**data, "by_method": {PaymentMethod(m): v for m, v in data["by_method"].items()}})


def _payments(event: Sale):
    return event.payments if event.payments is not None else [event.payment]


def z_report(shift: Shift, events: Iterable[Sale], counted_cash: int, closed_at: str) -> ZReport:
    """The Z report of `shift` from its events (shift closes among them are left out)."""
    counts = {SaleKind.SALE: 0, SaleKind.REFUND: 0, SaleKind.VOID: 0}
    gross = discounts = net = refunded = voided = cash_in = cash_out = 0
    by_method = {m: 0 for m in PaymentMethod}
    for event in events:
        if event.kind == SaleKind.SHIFT_CLOSE:
            continue
        counts[event.kind] += 1
        if event.kind == SaleKind.SALE:
            gross += sum(line.line_total for line in event.lines)
            net += event.total
        elif event.kind == SaleKind.REFUND:
            refunded -= event.total
        else:
            voided -= event.total
        for p in _payments(event):
            by_method[p.method] += p.amount
            if p.method == PaymentMethod.CASH:
                if p.amount >= 0:
                    cash_in += p.amount
                else:
                    cash_out -= p.amount
    discounts = gross - net
    expected = shift.opening_float + cash_in - cash_out
    return ZReport(shift_id=shift.id, cashier=shift.cashier, opened_at=shift.opened_at, closed_at=closed_at,
                   opening_float=shift.opening_float, sales=counts[SaleKind.SALE], gross=gross, discounts=discounts,
                   net=net, refunds=counts[SaleKind.REFUND], refunded=refunded, voids=counts[SaleKind.VOID],
                   voided=voided, by_method=by_method, cash_in=cash_in, cash_out=cash_out, expected_cash=expected,
                   counted_cash=counted_cash, difference=counted_cash - expected)
