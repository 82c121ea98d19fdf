"""The data lake's core (no I/O): which business days to write, the rows of a day, the schema.

The lake holds every applied event once, as Parquet files that BI tools read directly
(docs/reporting.md, "Data lake"), hive-style per business day and branch:

    sales/date=YYYY-MM-DD/branch=NAME/part-0.parquet     a row per sale line, and per line a void or refund takes back
    payments/date=YYYY-MM-DD/branch=NAME/part-0.parquet  one row per payment (tender) of an event
    shifts/date=YYYY-MM-DD/branch=NAME/part-0.parquet    one row per shift close
    events/date=YYYY-MM-DD/branch=NAME/part-0.parquet    one row per applied event, its full record as JSON
    state/NAME.json                                      what the lake holds of that branch

`events` makes the lake a copy of record outside Table Storage: every event as the till
sent it (refused voids and refunds too, with their code), from which the figures can be
folded again. The other datasets are for BI and count what the export counts.

An event's business day is the date of its `recorded_at` in the business time zone. An
applied event never changes, so a day's files are a function of that day's events (and of
the sales its voids and refunds name, which never change either): rows in (generation, seq, line) order, written with fixed writer options and no
timestamps, so writing a day again gives the same bytes.

Which days to write: the branch's state keeps, per generation, the applied_through the
lake has read up to, and per day the lowest and highest seq of that day's events. A run
reads the events above the state's watermark up to the ledger's applied_through (only
those are final), and every day one of them falls on is rewritten whole, from the seq
range the state now keeps for it; a late sale for a closed day so rewrites that day
only. Refused voids and refunds count nowhere, as in the export.
"""

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.parquet as pq

from shared.models import PaymentMethod, Sale, SaleKind, sale_number

# The summaries' own rule for what a void or refund takes back, so the lake's rows and the
# day summaries agree line by line.
from .summaries import DaySummary, _taken_back as taken_back, business_day, fold_events

STATE_VERSION = 1
PART_NAME = "part-0.parquet"
TAKA = pa.decimal128(18, 2)


# --- where things are ------------------------------------------------------------------------


def part_path(dataset: str, day: date, branch: str) -> str:
    return f"{dataset}/date={day.isoformat()}/branch={branch}/{PART_NAME}"


def state_path(branch: str) -> str:
    return f"state/{branch}.json"


def business_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"BRANCHSYNC_BUSINESS_TIMEZONE {name!r} is not an IANA time zone such as Asia/Dhaka") from exc


# --- what the lake holds of a branch --------------------------------------------------------------


@dataclass
class LakeState:
    """Per generation, the applied_through read so far; per day and generation, the seq range of its events."""

    zone: str
    through: dict[int, int] = field(default_factory=dict)
    days: dict[date, dict[int, tuple[int, int]]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data = {"v": STATE_VERSION, "zone": self.zone,
                "through": {str(g): t for g, t in sorted(self.through.items())},
                "days": {d.isoformat(): {str(g): list(r) for g, r in sorted(gens.items())}
                         for d, gens in sorted(self.days.items())}}
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | None, zone: str) -> "LakeState":
        """The stored state, or an empty one (nothing written yet) for no or empty content."""
        if not raw:
            return cls(zone=zone)
        data = json.loads(raw)
        return cls(zone=data["zone"], through={int(g): int(t) for g, t in data["through"].items()},
                   days={date.fromisoformat(d): {int(g): (int(r[0]), int(r[1])) for g, r in gens.items()}
                         for d, gens in data["days"].items()})


def to_read(state: LakeState, applied_through: Mapping[int, int]) -> dict[int, tuple[int, int]]:
    """Per generation, the seqs (first, last) applied since the lake last read them."""
    return {g: (state.through.get(g, 0) + 1, t) for g, t in sorted(applied_through.items()) if t > state.through.get(g, 0)}


def advance(state: LakeState, generation: int, events: Iterable[Sale], through: int, zone: ZoneInfo) -> set[date]:
    """Record newly applied events of one generation (up to `through`) in `state`; the days they touch."""
    touched: set[date] = set()
    for sale in events:
        day = business_day(sale.recorded_at, zone)
        lo, hi = state.days.setdefault(day, {}).get(generation, (sale.seq, sale.seq))
        state.days[day][generation] = (min(lo, sale.seq), max(hi, sale.seq))
        touched.add(day)
    state.through[generation] = max(state.through.get(generation, 0), through)
    return touched


def ranges_of(state: LakeState, days: Iterable[date]) -> dict[int, tuple[int, int]]:
    """Per generation, one seq range covering the events of all these days (one read per generation)."""
    out: dict[int, tuple[int, int]] = {}
    for day in days:
        for g, (lo, hi) in state.days.get(day, {}).items():
            a, b = out.get(g, (lo, hi))
            out[g] = (min(a, lo), max(b, hi))
    return out


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """An applied event as the lake sees it: whose, which generation, the sale."""

    branch: str
    generation: int
    sale: Sale
    applied_at: datetime | None = None
    refused: str | None = None  # the refusal's code: kept for the record, counted nowhere


def _taka(paisa: int | None) -> Decimal | None:
    return None if paisa is None else Decimal(paisa).scaleb(-2)


def _head(day: date, e: Event) -> dict:
    s = e.sale
    return {"business_date": day, "branch": e.branch, "generation": e.generation, "seq": s.seq,
            "sale_number": sale_number(e.generation, s.seq), "sale_id": s.sale_id, "kind": str(s.kind),
            "recorded_at": s.recorded_at.astimezone(timezone.utc), "cashier": s.cashier}


def _money(row: dict, **paisa: int | None) -> dict:
    for name, value in paisa.items():
        row[f"{name}_paisa"] = value
        row[f"{name}_taka"] = _taka(value)
    return row


def sales_rows(day: date, e: Event, original: Sale | None = None) -> list[dict]:
    """A sale: a row per line. A void or refund: a row per line it takes back of `original` (the sale it
    names), qty, net and VAT negative, as the day summaries count it; one row with its total if not given."""
    s = e.sale
    if s.kind == SaleKind.SHIFT_CLOSE or e.refused:
        return []
    methods = "+".join(dict.fromkeys(str(p.method) for p in (s.payments if s.is_v3 else [s.payment])))
    base = {**_head(day, e), "payment_methods": methods, "refers_to": None, "line_no": None, "sku": None, "name": None,
            "qty": None, "discount_reason": s.discount.reason if s.discount else None, "vat_rate": None,
            "reason": s.reason, "price_reason": None}
    if s.kind in (SaleKind.VOID, SaleKind.REFUND):
        ref = sale_number(s.voids_generation or e.generation, s.voids) if s.kind == SaleKind.VOID else \
            sale_number(s.refunds.generation, s.refunds.seq)
        base["refers_to"] = ref
        if original is None:
            return [_money(base, unit_price=None, list_price=None, line_total=None, discount=None, net=s.total, vat=None)]
        positions = range(1, len(original.lines) + 1) if s.kind == SaleKind.VOID else [r.line for r in s.returns]
        rows = []
        for pos, (sku, name, qty, net, rate, vat) in zip(positions, taken_back(s, original)):
            gross = original.lines[pos - 1].line_total if s.kind == SaleKind.VOID else net
            rows.append(_money({**base, "line_no": pos, "sku": sku, "name": name, "qty": -qty, "vat_rate": Decimal(rate)},
                               unit_price=None, list_price=None, line_total=-gross, discount=net - gross, net=-net, vat=-vat))
        return rows
    rows = []
    for i, line in enumerate(s.lines, 1):
        net = line.net if line.net is not None else line.line_total  # v1/v2 lines carry no discounts
        reason = line.discount.reason if line.discount else base["discount_reason"]
        rows.append(_money({**base, "line_no": i, "sku": line.sku, "name": line.name, "qty": line.qty,
                            "discount_reason": reason, "vat_rate": line.vat_rate,
                            "price_reason": line.price_reason},
                           unit_price=line.unit_price, list_price=line.list_price, line_total=line.line_total,
                           discount=line.line_total - net, net=net, vat=line.vat))
    return rows


def payment_rows(day: date, e: Event) -> list[dict]:
    s = e.sale
    if e.refused:
        return []
    payments = s.payments if s.is_v3 else [s.payment]
    return [_money({**_head(day, e), "payment_no": i, "method": str(p.method), "wallet": str(p.wallet) if p.wallet else None,
                    "txn_id": p.txn_id}, amount=p.amount, tendered=p.tendered, change=p.change)
            for i, p in enumerate(payments, 1)]


def shift_rows(day: date, e: Event) -> list[dict]:
    shift = e.sale.shift
    if shift is None or e.refused:
        return []
    by = {m: shift.by_method.get(m, 0) for m in PaymentMethod}
    return [_money({**_head(day, e), "shift_id": shift.shift_id, "opened_at": shift.opened_at.astimezone(timezone.utc)},
                   opening_float=shift.opening_float, counted_cash=shift.counted_cash, expected_cash=shift.expected_cash,
                   over_short=shift.counted_cash - shift.expected_cash,
                   **{f"by_{m}": v for m, v in by.items()})]


def named(e: Event) -> tuple[int, int] | None:
    """(generation, seq) of the sale a void or refund takes back from; None for other events."""
    s = e.sale
    if s.kind == SaleKind.VOID:
        return (s.voids_generation or e.generation, s.voids)
    if s.kind == SaleKind.REFUND:
        return (s.refunds.generation, s.refunds.seq)
    return None


def event_rows(day: date, e: Event) -> list[dict]:
    return [{**_head(day, e), "applied_at": e.applied_at.astimezone(timezone.utc) if e.applied_at else None,
             "refused": e.refused, "record": e.sale.model_dump_json()}]


def events_of(data: bytes) -> list[Event]:
    """The events of one `events` file, as they were applied (the copy of record read back)."""
    return [Event(r["branch"], r["generation"], Sale.model_validate_json(r["record"]), r["applied_at"], r["refused"])
            for r in pq.read_table(io.BytesIO(data)).to_pylist()]


# --- schema ----------------------------------------------------------------------------------

# Money twice: integer paisa (exact, what every total is checked against) and decimal(18,2)
# taka, which Power BI loads as a fixed decimal number so reports need no divide-by-100 step.
_HEAD = [("business_date", pa.date32()), ("branch", pa.string()), ("generation", pa.int32()), ("seq", pa.int64()),
         ("sale_number", pa.string()), ("sale_id", pa.string()), ("kind", pa.string()),
         ("recorded_at", pa.timestamp("us", tz="UTC")), ("cashier", pa.string())]


def _money_fields(*names: str) -> list[tuple[str, pa.DataType]]:
    return [f for n in names for f in ((f"{n}_paisa", pa.int64()), (f"{n}_taka", TAKA))]


SCHEMAS = {
    "sales": pa.schema(_HEAD + [("payment_methods", pa.string()), ("refers_to", pa.string()), ("line_no", pa.int32()),
                                ("sku", pa.string()), ("name", pa.string()), ("qty", pa.decimal128(12, 3))]
                       + _money_fields("unit_price", "list_price", "line_total", "discount", "net")
                       + [("discount_reason", pa.string()), ("vat_rate", pa.decimal128(5, 2))] + _money_fields("vat")
                       # Why a void or refund was made, and why a line's price was changed (v3).
                       + [("reason", pa.string()), ("price_reason", pa.string())]),
    "payments": pa.schema(_HEAD + [("payment_no", pa.int32()), ("method", pa.string()), ("wallet", pa.string()),
                                   ("txn_id", pa.string())] + _money_fields("amount", "tendered", "change")),
    "shifts": pa.schema(_HEAD + [("shift_id", pa.string()), ("opened_at", pa.timestamp("us", tz="UTC"))]
                        + _money_fields("opening_float", "counted_cash", "expected_cash", "over_short",
                                        *(f"by_{m}" for m in PaymentMethod))),
    "events": pa.schema(_HEAD + [("applied_at", pa.timestamp("us", tz="UTC")), ("refused", pa.string()),
                                 ("record", pa.string())]),
}
_ROWS = {"sales": sales_rows, "payments": payment_rows, "shifts": shift_rows, "events": event_rows}


def day_files(day: date, branch: str, events: Iterable[Event],
              originals: Mapping[tuple[int, int], Sale] | None = None) -> dict[str, bytes]:
    """The Parquet files of one branch's business day, per dataset (a dataset with no rows has no file).

    `events`: every applied event of that day, refused ones marked; `originals`: by
    (generation, seq), the sales its voids and refunds name (see `named`). Rows sort by
    (generation, seq, line) whatever order the events came in.
    """
    ordered = sorted(events, key=lambda e: (e.generation, e.sale.seq))
    originals = originals or {}
    out = {}
    for dataset, rows_of in _ROWS.items():
        rows = [r for e in ordered if e.branch == branch
                for r in (sales_rows(day, e, originals.get(named(e))) if dataset == "sales" else rows_of(day, e))]
        if rows:
            out[dataset] = parquet_bytes(pa.Table.from_pylist(rows, schema=SCHEMAS[dataset]))
    return out


def parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic Parquet: one row group, fixed options; the writer puts no timestamp in the file."""
    buf = io.BytesIO()
    # snappy: the codec every reader in docs/reporting.md reads (Synapse serverless, Power BI, Fabric, DuckDB).
    pq.write_table(table, buf, compression="snappy", row_group_size=max(1, table.num_rows), write_statistics=True,
                   use_dictionary=True, store_schema=True)
    return buf.getvalue()


# --- the summaries again, from the lake ---------------------------------------------------------


def fold_summaries(branch: str, events: Iterable[Event], zone: ZoneInfo) -> tuple[dict[date, DaySummary], int]:
    """The branch's day summaries folded from the lake's events (its `events` dataset), and how many were counted.

    The same fold as the apply's and `report rebuild`'s (summaries.fold_events): generation
    by generation, in seq order, each sale the original of the voids and refunds after it.
    """
    by_generation: dict[int, list[Sale]] = {}
    for e in events:
        if e.branch == branch and not e.refused:
            by_generation.setdefault(e.generation, []).append(e.sale)
    days: dict[date, DaySummary] = {}
    originals: dict[tuple[int, int], Sale] = {}
    counted = 0
    for generation in sorted(by_generation):
        sales = sorted(by_generation[generation], key=lambda s: s.seq)
        fold_events(branch, generation, sales, originals, zone, into=days)
        originals.update({(generation, s.seq): s for s in sales if s.kind == SaleKind.SALE})
        counted += len(sales)
    return days, counted
