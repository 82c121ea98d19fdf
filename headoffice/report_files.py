"""A report table (shared.models.ReportTable) as csv, jsonl or an Excel workbook.

Money travels as integer paisa; csv and xlsx show it as taka with two decimals, jsonl keeps
paisa (its keys say so: `net_paisa`). In the workbook every figure is a number cell with a
number format (taka `#,##0.00`), never text, so sums and charts work; times are UTC.
A second sheet (csv and jsonl: the `complete` column and the lines on standard error) says
where each branch stood: its last sync, the pending count then, complete through which day.
"""

import json
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import IO
from zoneinfo import ZoneInfo

from shared.models import PriceDifference, ReportTable
from shared.money import format_taka

from .spreadsheet import SafeWriter

TAKA_FORMAT = "#,##0.00"
QTY_FORMAT = "#,##0.###"
DATE_FORMAT = "yyyy-mm-dd"
TIME_FORMAT = "yyyy-mm-dd hh:mm"


def header(table: ReportTable, paisa_suffix: str) -> list[str]:
    return [c + paisa_suffix if k == "paisa" else c for c, k in zip(table.columns, table.kinds)]


def write_csv(table: ReportTable, out: IO[str]) -> None:
    writer = SafeWriter(out)  # names, SKUs and cashiers came from branches
    writer.writerow(header(table, "_taka"))
    for row in table.rows:
        writer.writerow(["" if v is None else format_taka(v) if k == "paisa" else v for v, k in zip(row, table.kinds)])


def write_jsonl(table: ReportTable, out: IO[str]) -> None:
    keys = header(table, "_paisa")
    for row in table.rows:
        out.write(json.dumps(dict(zip(keys, row)), ensure_ascii=False) + "\n")


def _cell(value, kind: str):
    """What the workbook stores: numbers as numbers, dates as dates, text as text."""
    if value is None:
        return None
    if kind == "paisa":
        return Decimal(value).scaleb(-2)
    if kind == "qty":
        return Decimal(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "time":
        return datetime.fromisoformat(value).astimezone(timezone.utc).replace(tzinfo=None)
    return value


FORMATS = {"paisa": TAKA_FORMAT, "qty": QTY_FORMAT, "date": DATE_FORMAT, "time": TIME_FORMAT}


def write_xlsx(table: ReportTable, path) -> None:
    from openpyxl import Workbook  # only this format needs it

    book = Workbook()
    sheet = book.active
    sheet.title = table.report
    sheet.append([c + " (UTC)" if k == "time" else c for c, k in zip(table.columns, table.kinds)])
    for row in table.rows:
        sheet.append([_safe(_cell(v, k)) for v, k in zip(row, table.kinds)])
    for col, kind in enumerate(table.kinds, start=1):
        if kind in FORMATS:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=col, max_col=col):
                cell.number_format = FORMATS[kind]
    sheet.freeze_panes = "A2"
    sync = book.create_sheet("sync")
    sync.append(["branch", "last_sync (UTC)", "pending_at_sync", "complete_through", f"complete to {table.last}"])
    for b in table.branches:
        sync.append([b.branch, b.last_pull.astimezone(timezone.utc).replace(tzinfo=None) if b.last_pull else None,
                     b.pending, b.complete_through,
                     "yes" if b.complete_through is not None and b.complete_through >= table.last else "no"])
    for (cell,) in sync.iter_rows(min_row=2, min_col=2, max_col=2):
        cell.number_format = TIME_FORMAT
    for (cell,) in sync.iter_rows(min_row=2, min_col=4, max_col=4):
        cell.number_format = DATE_FORMAT
    book.save(path)


def _safe(value):
    """Text from branches never becomes a formula (openpyxl writes a string starting with = as one)."""
    if isinstance(value, str) and value.startswith("="):
        return "'" + value
    return value


def completeness_lines(table: ReportTable) -> list[str]:
    """Where each branch stood, for standard error under any format."""
    lines = []
    for b in table.branches:
        done = b.complete_through is not None and b.complete_through >= table.last
        synced = f"last sync {b.last_pull:%Y-%m-%d %H:%M} UTC, {b.pending or 0} pending then" if b.last_pull else "never synced"
        lines.append(f"{b.branch}: {synced}; " + ("complete" if done else
                     f"complete through {b.complete_through}" if b.complete_through else "not complete for any day"))
    return lines


def day_start(table: ReportTable) -> str:
    """When the report's first business day began, as a time with its zone (what `since` takes)."""
    return datetime.combine(table.first, time.min, ZoneInfo(table.zone)).isoformat()


def with_price_differences(table: ReportTable, found: list[PriceDifference]) -> ReportTable:
    """The exceptions report joined by the lines sold at another price than the catalog holds now.

    Per branch and kind (`catalog_price`, `catalog_deleted`, `catalog_unknown`): how many lines
    and by how much they differ (0 where the catalog has no price any more); the till does
    not say which cashier, so the cashier is `-`. Largest amount first, as the report is.
    """
    zone = ZoneInfo(table.zone)
    held: dict[tuple[str, str], list[int]] = {}
    for d in found:
        if d.recorded_at.astimezone(zone).date() > table.last:
            continue
        kind = {"price_differs": "catalog_price", "deleted": "catalog_deleted"}.get(d.status, "catalog_unknown")
        figures = held.setdefault((d.branch, kind), [0, 0])
        figures[0] += 1
        figures[1] += d.difference or 0
    rows = [*table.rows, *([branch, "-", kind, n, amount] for (branch, kind), (n, amount) in held.items())]
    rows.sort(key=lambda r: -abs(r[4]))
    return table.model_copy(update={"rows": rows})
