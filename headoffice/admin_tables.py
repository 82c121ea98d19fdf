"""The admin CLI's tables, built to fit an 80-column terminal (no I/O).

Rich shrinks a table that is wider than the terminal; a column it may not wrap it cuts to
`appli…`. So only short values that are read as one token (numbers, money, sale numbers)
are kept on one line; names, reasons and times wrap at spaces and fold inside long words,
so every character stays on screen, just over more lines. Ratios give the room left to the
columns with the most to say (names, reasons).
"""

from collections.abc import Iterable

from rich.table import Column, Table
from rich.text import Text

from shared.access import AuditEntry, PersonInfo
from shared.models import BranchInfo, DeadLetterInfo, PriceDifference, ReportTable
from shared.money import format_taka


def _text(header: str, **options) -> Column:
    """A column that wraps at spaces and folds a word longer than its width."""
    return Column(header, overflow="fold", **options)


def _time(header: str, **options) -> Column:
    """A date and time: the date on one line and the time under it, when space is short."""
    return _text(header, **{"ratio": 1, **options})


def _number(header: str) -> Column:
    """A short figure: right-aligned and never split (its header wraps instead)."""
    return Column(header, justify="right", no_wrap=True)


def branches_table(branches: Iterable[BranchInfo]) -> Table:
    table = Table(_text("branch", ratio=2), _text("state", ratio=2), _number("applied"), _number("sales"),
                  _number("taka"), _time("last sync (UTC)", ratio=2), _text("last error", ratio=3), expand=True)
    for b in branches:
        table.add_row(b.branch, branch_state(b), str(b.applied_through), str(b.sales_applied),
                      format_taka(b.total_paisa), f"pull {when(b.last_pull)}\npush {when(b.last_push)}", b.last_error or "")
    return table


def dead_letters_table(letters: Iterable[DeadLetterInfo]) -> Table:
    table = Table(_text("id", ratio=1), _time("received (UTC)"), _text("branch", ratio=1), _text("code", ratio=1),
                  _text("reason", ratio=3), _text("bytes", ratio=1), _number("replays"), expand=True)
    for d in letters:
        table.add_row(d.id, d.received_at.strftime("%Y-%m-%d %H:%M:%S"), d.branch or "?", d.code, d.reason,
                      str(d.size) + (" (truncated)" if d.truncated else ""), str(d.replays))
    return table


def price_differences_table(found: Iterable[PriceDifference]) -> Table:
    """A sale's branch, number and time share one cell, a product's SKU and name another: ten
    columns side by side would leave each a few characters of an 80-column line."""
    table = Table(_time("sale (UTC)", ratio=1), _text("product", ratio=2), _number("qty"), _text("status", ratio=1),
                  _number("sold at"), _number("now"), _number("diff."), caption="prices in taka", expand=True)
    for d in found:
        table.add_row(f"{d.branch}\n{d.seq}/{d.line}\n{d.recorded_at:%Y-%m-%d %H:%M}", f"{d.sku}\n{d.name}",
                      str(d.qty), d.status.replace("_", " "), format_taka(d.sold_price),
                      "-" if d.current_price is None else format_taka(d.current_price),
                      "-" if d.difference is None else format_taka(d.difference))
    return table


def people_table(people: Iterable[PersonInfo]) -> Table:
    table = Table(_text("name", ratio=2), _text("roles", ratio=2), _time("created (UTC)", ratio=2),
                  _text("state", ratio=2), expand=True)
    for p in people:
        state = f"revoked {when(p.revoked_at)} by {p.revoked_by}" if p.revoked_at else "active"
        table.add_row(p.name, ", ".join(p.roles), f"{when(p.created_at)} by {p.created_by}", state)
    return table


def audit_table(entries: Iterable[AuditEntry]) -> Table:
    """The request's route over what it asked for; the result over the role the route needs."""
    table = Table(_time("when (UTC)", ratio=2), _text("who", ratio=2), _text("request", ratio=4),
                  _text("result", ratio=2), expand=True)
    for e in entries:
        table.add_row(when(e.at), f"{e.who}\n({e.via})", f"{e.method} {e.route}" + (f"\n{e.what}" if e.what else ""),
                      f"{e.status} {e.result}\nneeds {e.role}")
    return table


def branch_state(b: BranchInfo) -> str:
    if b.revoked_at:
        return f"revoked {when(b.revoked_at)}"
    if not b.enrolled:
        return "not enrolled"
    return "rotation pending" if b.rotation_pending else "enrolled"


def when(t) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "never"


# A report with more columns than this shows two of them stacked in each cell, so it fits 80 columns.
REPORT_MAX_COLUMNS = 6


def report_table(report: ReportTable) -> Table:
    """Any report of the day summaries: money in taka, figures right-aligned, neighbours stacked in pairs when many."""
    cols = list(zip(report.columns, report.kinds))
    groups = [[i] for i in range(len(cols))]
    if len(cols) > REPORT_MAX_COLUMNS:
        groups = [list(range(i, min(i + 2, len(cols)))) for i in range(0, len(cols), 2)]
    columns = []
    for group in groups:
        title = "\n".join(cols[i][0].replace("_", " ") for i in group)
        if all(cols[i][1] in ("int", "paisa", "qty") for i in group):
            columns.append(_number(title))
        elif any(cols[i][1] in ("date", "time") for i in group):
            columns.append(_text(title, ratio=1, min_width=10))  # a date never folds; a time wraps at its space
        else:
            columns.append(_text(title, ratio=1))
    caption = "money in taka; times UTC" + ("" if report.complete else "; INCOMPLETE: a branch has not synced since")
    table = Table(*columns, caption=caption, expand=True)
    for row in report.rows:
        # Text, not markup: names and cashiers come from branches ("[red]" stays as typed).
        table.add_row(*(Text("\n".join(_shown(row[i], cols[i][1]) for i in group)) for group in groups))
    return table


def _shown(value, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "paisa":
        return format_taka(value)
    if kind == "time":
        return value[:16].replace("T", " ")
    return str(value)
