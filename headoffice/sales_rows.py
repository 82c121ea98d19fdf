"""The sales export's CSV rows, one event at a time (no I/O).

A v1/v2 event is one row, its lines as JSON in `lines`, exactly as the export always
wrote it; the columns after `lines` are empty for it. A v3 sale is one row per line, a
refund one row per returned line (`net_paisa` negative), a void or a shift close one row.
`total_paisa` is written on an event's first row only, so summing the column over the
file gives the takings; `payments` reads `method[/wallet]:paisa` with
` tendered=T change=C` for cash and ` txn=ID` for mobile, joined by `; `. `reason` is a
void's or refund's reason (on each of its rows), `price_reason` a line's price override's.
"""

import json
from collections.abc import Iterator

from shared.models import AppliedSale, Payment, Sale, sale_number

COLUMNS = ["branch", "seq", "sale_id", "kind", "voids", "recorded_at", "applied_at", "payment", "total_paisa", "lines",
           # The complete sale record (v3); empty for older events.
           "cashier", "line", "sku", "qty", "line_total_paisa", "discount_paisa", "discount_reason", "net_paisa",
           "vat_rate", "vat_paisa", "sale_discount_paisa", "sale_discount_reason", "payments", "refunds", "shift",
           "reason", "price_reason",
           # Each line's product name and prices as sold (v3; a refund's rows name the sku only).
           "name", "unit_price_paisa", "list_price_paisa"]


def payments_cell(payments: list[Payment]) -> str:
    parts = []
    for p in payments:
        text = f"{p.method}{'/' + p.wallet if p.wallet else ''}:{p.amount}"
        if p.tendered is not None:
            text += f" tendered={p.tendered} change={p.change}"
        if p.txn_id:
            text += f" txn={p.txn_id}"
        parts.append(text)
    return "; ".join(parts)


def sale_rows(applied: AppliedSale) -> Iterator[list]:
    s, gen = applied.sale, applied.generation
    # The sale number as the receipt shows it: 14, or 2-14 for a till restored from a backup.
    voids = sale_number(s.voids_generation or gen, s.voids) if s.voids else ""
    head = [applied.branch, sale_number(gen, s.seq), s.sale_id, s.kind, voids, s.recorded_at.isoformat(),
            applied.applied_at.isoformat()]
    if not s.is_v3:
        yield head + [s.payment.method, s.total, json.dumps([l.model_dump(mode="json") for l in s.lines],
                                                            ensure_ascii=False)] + [""] * (len(COLUMNS) - 10)
        return
    methods = "+".join(dict.fromkeys(p.method for p in s.payments))
    tail = [_text(s.discount.amount if s.discount else None), s.discount.reason if s.discount else "",
            payments_cell(s.payments), sale_number(s.refunds.generation, s.refunds.seq) if s.refunds else "",
            s.shift.model_dump_json() if s.shift else "", s.reason or ""]
    # A refund's rows are returns: no price reasons, names or prices of their own.
    sold = [[l.price_reason or "", l.name, l.unit_price, l.list_price] for l in s.lines]
    for i, cells in enumerate(_line_cells(s) or [[""] * 9]):
        yield (head + [methods, s.total if i == 0 else "", "", s.cashier] + cells + tail
               + (sold[i] if i < len(sold) else [""] * 4))


def _line_cells(s: Sale) -> list[list]:
    """line, sku, qty, line_total_paisa, discount_paisa, discount_reason, net_paisa, vat_rate, vat_paisa."""
    if s.returns:
        return [[r.line, r.sku, str(r.qty), "", "", "", -r.amount, "", ""] for r in s.returns]
    return [[i, l.sku, str(l.qty), l.line_total, _text(l.discount.amount if l.discount else None),
             l.discount.reason if l.discount else "", l.net, str(l.vat_rate), l.vat]
            for i, l in enumerate(s.lines, 1)]


def _text(value) -> object:
    return "" if value is None else value
