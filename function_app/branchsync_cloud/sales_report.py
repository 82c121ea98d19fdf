"""Head office's reports as tables, from day summaries alone (pure; reports.py reads them).

Every table says how complete it is: a branch's figures for a day are complete once the
branch synced after that day ended with nothing pending (its `complete_through`). A day
row names the branches still waiting; a branch row carries its last sync and pending count.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from shared.models import BranchSync

from .summaries import CASHIER_FIELDS, DaySummary, business_day

BY = ("day", "branch", "product", "payment", "cashier", "vat")
# The money columns every figure of a day has.
FIGURES = ("sales", "gross", "discounts", "refunds", "voids", "net", "vat")
FIGURE_KINDS = ("int", "paisa", "paisa", "paisa", "paisa", "paisa", "paisa")

Table = tuple[list[str], list[str], list[list]]  # columns, kinds, rows


def complete_through(last_pull: datetime | None, pending: int | None, zone: ZoneInfo) -> date | None:
    """The last business day a branch's figures are complete for: it synced after the day ended, nothing pending."""
    if last_pull is None or pending:
        return None
    return business_day(last_pull, zone) - timedelta(days=1)


def is_complete(sync: BranchSync, day: date) -> bool:
    return sync.complete_through is not None and sync.complete_through >= day


def _figures(s: DaySummary) -> list[int]:
    return [s.sales, s.gross, s.discounts, s.refunded, s.voided, s.net, sum(v for _, v in s.vat.values())]


def _add(into: list[int], more: Iterable[int]) -> None:
    for i, v in enumerate(more):
        into[i] += v


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def sales_table(summaries: Sequence[DaySummary], by: str, first: date, last: date,
                syncs: Mapping[str, BranchSync]) -> Table:
    """The sales report grouped `by` one of BY; `syncs`: every branch the report covers."""
    all_complete = all(is_complete(s, last) for s in syncs.values())
    if by == "day":
        per_day: dict[date, list[int]] = {}
        for s in summaries:
            _add(per_day.setdefault(s.day, [0] * len(FIGURES)), _figures(s))
        rows = []
        day = first
        while day <= last:
            waiting = sorted(name for name, sync in syncs.items() if not is_complete(sync, day))
            rows.append([day.isoformat(), *per_day.get(day, [0] * len(FIGURES)), _yes(not waiting), " ".join(waiting)])
            day += timedelta(days=1)
        return ["day", *FIGURES, "complete", "waiting_on"], ["date", *FIGURE_KINDS, "text", "text"], rows
    if by == "branch":
        per_branch: dict[str, list[int]] = {name: [0] * len(FIGURES) for name in syncs}
        for s in summaries:
            _add(per_branch.setdefault(s.branch, [0] * len(FIGURES)), _figures(s))
        rows = []
        for name, figures in sorted(per_branch.items(), key=lambda kv: (-kv[1][5], kv[0])):
            sync = syncs.get(name) or BranchSync(branch=name)
            rows.append([name, *figures, sync.last_pull.isoformat() if sync.last_pull else None, sync.pending,
                         _yes(is_complete(sync, last))])
        return (["branch", *FIGURES, "last_sync", "pending_at_sync", "complete"],
                ["text", *FIGURE_KINDS, "time", "int", "text"], rows)
    done = _yes(all_complete)
    if by == "product":
        products: dict[str, list] = {}
        for s in summaries:
            for sku, (name, qty, net, vat) in s.products.items():
                held = products.setdefault(sku, [name, Decimal(0), 0, 0])
                held[1] += qty
                held[2] += net
                held[3] += vat
        rows = [[sku, name, _qty(qty), net, vat, done]
                for sku, (name, qty, net, vat) in sorted(products.items(), key=lambda kv: (-kv[1][2], kv[0]))]
        return ["sku", "name", "qty", "net", "vat", "complete"], ["text", "text", "qty", "paisa", "paisa", "text"], rows
    if by == "payment":
        methods: dict[str, int] = {}
        for s in summaries:
            for method, amount in s.payments.items():
                methods[method] = methods.get(method, 0) + amount
        rows = [[m, a, done] for m, a in sorted(methods.items(), key=lambda kv: (-kv[1], kv[0]))]
        return ["method", "amount", "complete"], ["text", "paisa", "text"], rows
    if by == "cashier":
        cashiers: dict[tuple[str, str], list[int]] = {}
        for s in summaries:
            for name, figures in s.cashiers.items():
                _add(cashiers.setdefault((s.branch, name), [0] * len(CASHIER_FIELDS)), (figures[f] for f in CASHIER_FIELDS))
        cols = ["sales", "net", "voids", "voided", "refunds", "refunded", "discounts", "discounted"]
        rows = [[branch, name, *(f[CASHIER_FIELDS.index(c)] for c in cols),
                 _yes(is_complete(syncs.get(branch) or BranchSync(branch=branch), last))]
                for (branch, name), f in sorted(cashiers.items(), key=lambda kv: (-kv[1][1], kv[0]))]
        return (["branch", "cashier", *cols, "complete"],
                ["text", "text", "int", "paisa", "int", "paisa", "int", "paisa", "int", "paisa", "text"], rows)
    if by == "vat":
        rates: dict[str, list[int]] = {}
        for s in summaries:
            for rate, figures in s.vat.items():
                _add(rates.setdefault(rate, [0, 0]), figures)
        rows = [[rate, net, vat, done] for rate, (net, vat) in sorted(rates.items(), key=lambda kv: Decimal(kv[0]))]
        return ["vat_rate", "net", "vat", "complete"], ["text", "paisa", "paisa", "text"], rows
    raise ValueError(f"by is one of {', '.join(BY)}")


def shifts_table(summaries: Sequence[DaySummary], syncs: Mapping[str, BranchSync]) -> Table:
    """Each closed shift: cashier, expected and counted cash, and the difference (over or short)."""
    rows = []
    for s in summaries:
        for shift in s.shifts:
            diff = shift["difference"]
            rows.append([s.branch, s.day.isoformat(), shift["cashier"], shift["shift_id"], shift["opened_at"],
                         shift["closed_at"], shift["opening_float"], shift["expected_cash"], shift["counted_cash"], diff,
                         "over" if diff > 0 else "short" if diff < 0 else "even"])
    rows.sort(key=lambda r: (r[0], r[5], r[3]))
    return (["branch", "day", "cashier", "shift", "opened_at", "closed_at", "opening_float", "expected_cash",
             "counted_cash", "difference", "over_short"],
            ["text", "date", "text", "text", "time", "time", "paisa", "paisa", "paisa", "paisa", "text"], rows)


# Exceptions: (kind shown, count field, paisa field) of a cashier's figures.
EXCEPTIONS = (("void", "voids", "voided"), ("refund", "refunds", "refunded"),
              ("discount", "discounts", "discounted"), ("price_override", "overrides", "overridden"))


def exceptions_table(summaries: Sequence[DaySummary]) -> Table:
    """Voids, refunds, discounts and price overrides per branch and cashier, largest amount first."""
    held: dict[tuple[str, str, str], list[int]] = {}
    for s in summaries:
        for name, figures in s.cashiers.items():
            for kind, count, paisa in EXCEPTIONS:
                if figures[count]:
                    _add(held.setdefault((s.branch, name, kind), [0, 0]), (figures[count], figures[paisa]))
    rows = [[branch, cashier, kind, n, amount]
            for (branch, cashier, kind), (n, amount) in sorted(held.items(), key=lambda kv: (-abs(kv[1][1]), kv[0]))]
    return ["branch", "cashier", "kind", "count", "amount"], ["text", "text", "text", "int", "paisa"], rows


def _qty(qty: Decimal) -> str:
    """An exact quantity as text without trailing zeros ("2", "1.25")."""
    text = format(qty.normalize(), "f")
    return "0" if text in ("-0", "") else text
