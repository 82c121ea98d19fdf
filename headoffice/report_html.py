"""`report sales --html FILE`: one self-contained page of charts from the sales report's views.

`render(views)` is pure: the report tables the cloud answered (per branch, per day of each
branch, per payment method, per product) in, HTML text out. The page needs nothing from the
network: its CSS is inline, its charts are SVG drawn here, and its Content-Security-Policy
forbids scripts and every fetch, so a hostile name from a branch can neither run nor call
out (every text is escaped as well). Money stays integer paisa until it is shown as ৳ with
two decimals; bar lengths are integer arithmetic on the same paisa.

`writing(report, path)` is the thin adapter `_report` calls with the table it read: it
asks the client for the other views and writes the file.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import typer

from shared.models import ReportTable

# Windows ships Vrinda and Nirmala UI for Bangla, Linux Lohit or Noto.
# Latin first: a browser takes each letter from the first font that has it, and Bengali fonts'
# Latin letters and digits are poor; Bangla then comes from the first Bengali font the PC has.
FONTS = ('"Segoe UI", "Noto Sans", "DejaVu Sans", "Noto Sans Bengali", "Lohit Bengali", "Vrinda", "Nirmala UI", '
         '"Mukti", sans-serif')
# One colour per branch, distinct for the common kinds of colour blindness (Okabe and Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
METHODS = {"cash": "Cash", "card": "Card", "mobile": "bKash / Nagad", "bkash": "bKash", "nagad": "Nagad"}
TOP_PRODUCTS = 10
# A branch name or product name in a chart is cut here (whole in its tooltip and the tables).
LABEL_CHARS = 36


@dataclass(frozen=True)
class SalesViews:
    """What the page shows: the report `--by branch`, `--by day` per branch, `--by payment`, `--by product`."""

    by_branch: ReportTable
    days: dict[str, ReportTable]  # branch -> its report --by day
    payment: ReportTable
    product: ReportTable


def records(table: ReportTable) -> list[dict]:
    return [dict(zip(table.columns, row)) for row in table.rows]


def taka(paisa: int) -> str:
    """12345678 -> '৳123,456.78', exactly (no float on the way)."""
    sign = "-" if paisa < 0 else ""
    whole, frac = divmod(abs(paisa), 100)
    return f"{sign}৳{whole:,}.{frac:02d}"


def share(part: int, whole: int) -> str:
    """part of whole as a percentage with one decimal, rounded half up in integers."""
    if whole <= 0:
        return "-"
    tenths = (part * 2000 // whole + 1) // 2
    return f"{tenths // 10}.{tenths % 10}%"


def _e(text) -> str:
    return escape(str(text), quote=True)


def _cut(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1] + "…"


def _length(value: int, most: int, room: int) -> int:
    """A bar's length in pixels: its share of the largest value (a negative figure draws no bar)."""
    return 0 if most <= 0 or value <= 0 else max(1, value * room // most)


# --- charts ------------------------------------------------------------------------------

def hbars(chart: str, items: Sequence[tuple[str, int, str]], colour: str = PALETTE[0], label_width: int = 200,
          room: int = 230) -> str:
    """Horizontal bars, one per (label, paisa, note), the exact amount (and the note) written after each bar."""
    row, value_width = 30, 170
    width = label_width + room + value_width
    most = max((v for _, v, _ in items), default=0)
    parts = [f'<svg class="chart" data-chart="{_e(chart)}" role="img" width="{width}" height="{row * len(items) + 8}" '
             f'viewBox="0 0 {width} {row * len(items) + 8}" xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value, note) in enumerate(items):
        y = 4 + i * row
        bar = _length(value, most, room)
        extra = f' <tspan class="note">{_e(note)}</tspan>' if note else ""
        parts.append(
            f'<g class="bar" data-label="{_e(label)}" data-paisa="{value}"><title>{_e(label)}: {taka(value)}</title>'
            f'<text class="label" x="{label_width - 8}" y="{y + 19}" text-anchor="end">{_e(_cut(label))}</text>'
            f'<rect x="{label_width}" y="{y + 4}" width="{bar}" height="{row - 8}" rx="3" fill="{colour}"/>'
            f'<text class="value" x="{label_width + bar + 6}" y="{y + 19}">{taka(value)}{extra}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


# Room above the tallest bar of a grouped chart for its amount, written upwards.
LABEL_ROOM = 78


def grouped_bars(chart: str, groups: Sequence[str], series: Sequence[tuple[str, Sequence[int], Sequence[bool]]]) -> str:
    """Vertical bars per group (a day), one per series (a branch) in its colour, with a legend.

    A series is (name, paisa per group, complete per group); a bar whose figure is not
    complete yet is drawn pale. Each bar's exact amount is its tooltip and, while the bars
    are wide enough to carry it, written upwards above the bar.
    """
    height, bottom, left = 330, 30, 12
    bar = max(4, min(40, 900 // max(1, len(groups) * max(1, len(series)))))
    gap = max(12, bar)
    group_width = bar * len(series) + gap
    width = max(480, left * 2 + group_width * len(groups))
    most = max((v for _, values, _ in series for v in values), default=0)
    labelled = bar >= 14
    room = height - bottom - (LABEL_ROOM if labelled else 8)
    parts = [f'<svg class="chart" data-chart="{_e(chart)}" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" y2="{height - bottom}" class="axis"/>']
    for g, day in enumerate(groups):
        x0 = left + gap // 2 + g * group_width
        parts.append(f'<text class="tick" x="{x0 + bar * len(series) // 2}" y="{height - bottom + 18}" '
                     f'text-anchor="middle">{_e(day)}</text>')
        for s, (name, values, complete) in enumerate(series):
            value, done = values[g], complete[g]
            h = _length(value, most, room)
            x, y = x0 + s * bar, height - bottom - h
            state = "" if done else " (not complete yet)"
            parts.append(f'<g class="bar{"" if done else " incomplete"}" data-label="{_e(name)} {_e(day)}" '
                         f'data-paisa="{value}"><title>{_e(name)}, {_e(day)}: {taka(value)}{state}</title>'
                         f'<rect x="{x + 1}" y="{y}" width="{bar - 2}" height="{h}" fill="{PALETTE[s % len(PALETTE)]}"/>')
            if labelled:
                cx = x + bar // 2 + 4
                parts.append(f'<text class="value small" x="{cx}" y="{y - 4}" transform="rotate(-90 {cx} {y - 4})">'
                             f'{taka(value)}</text>')
            parts.append("</g>")
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{PALETTE[s % len(PALETTE)]}"></i>{_e(name)}</span>'
                     for s, (name, _, _) in enumerate(series))
    if any(not done for _, _, complete in series for done in complete):
        legend += '<span class="key"><i class="pale"></i>pale: the branch has not synced since that day ended</span>'
    return "".join(parts) + f'<div class="legend">{legend}</div>'


# --- the page ----------------------------------------------------------------------------

# More branches than this: the largest keep their bars, the others share one.
MOST_SERIES = 8


def _net_per_day(views: SalesViews, branches: list[str]) -> str:
    days = sorted({r["day"] for t in views.days.values() for r in records(t)})
    per = {b: {r["day"]: r for r in records(views.days[b])} if b in views.days else {} for b in branches}
    if len(days) <= 1:  # one day: a bar per branch says it better than one group of bars
        items = [(b, sum(r["net"] for r in per[b].values()),
                  "" if all(r["complete"] == "yes" for r in per[b].values()) else "not complete") for b in branches]
        return hbars("net-per-branch", items)
    series = [(b, [per[b][d]["net"] if d in per[b] else 0 for d in days],
               [d in per[b] and per[b][d]["complete"] == "yes" for d in days]) for b in branches]
    if len(series) > MOST_SERIES:  # branches come largest net first
        rest = series[MOST_SERIES - 1:]
        series = [*series[:MOST_SERIES - 1], (f"{len(rest)} other branches", [sum(v) for v in zip(*(r[1] for r in rest))],
                                              [all(c) for c in zip(*(r[2] for r in rest))])]
    return grouped_bars("net-per-day", [d[5:] for d in days], series)


def _payment_mix(views: SalesViews) -> str:
    rows = records(views.payment)
    whole = sum(max(0, r["amount"]) for r in rows)
    items = [(METHODS.get(r["method"], r["method"]), r["amount"], share(r["amount"], whole)) for r in rows]
    return hbars("payments", items, PALETTE[2], label_width=200) if items else '<p class="none">No payments.</p>'


def _top_products(views: SalesViews) -> str:
    rows = records(views.product)[:TOP_PRODUCTS]
    items = [(r["name"] or r["sku"], r["net"], "") for r in rows]
    return hbars("products", items, PALETTE[1], label_width=290, room=180) if items else '<p class="none">No products sold.</p>'


def _sync_table(views: SalesViews) -> str:
    """Each branch's last sync, what it still held then, and the days its figures are not complete for."""
    out = ['<table class="sync"><thead><tr><th>Branch</th><th>Last sync (UTC)</th><th>Pending then</th>'
           '<th>Complete through</th><th>Days not complete</th></tr></thead><tbody>']
    shown = []
    for b in views.by_branch.branches:
        waiting = [r["day"] for r in records(views.days[b.branch]) if r["complete"] != "yes"] if b.branch in views.days else []
        shown.append((bool(waiting) or b.complete_through is None or b.complete_through < views.by_branch.last, b, waiting))
    for behind, b, waiting in sorted(shown, key=lambda x: (not x[0], x[1].branch)):  # the ones behind first
        state = '<span class="badge late">behind</span>' if behind else '<span class="badge ok">up to date</span>'
        out.append(f'<tr class="{"behind" if behind else "ok"}" data-branch="{_e(b.branch)}"><td>{state} {_e(b.branch)}</td>'
                   f'<td>{f"{b.last_pull:%Y-%m-%d %H:%M}" if b.last_pull else "never"}</td>'
                   f'<td class="num">{"-" if b.pending is None else b.pending}</td>'
                   f'<td>{b.complete_through or "-"}</td>'
                   f'<td>{_e(", ".join(waiting)) if waiting else "none"}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


TOTALS = ("sales", "gross", "discounts", "refunds", "voids", "net", "vat")


def _totals_table(views: SalesViews) -> tuple[str, dict[str, int]]:
    rows = records(views.by_branch)
    total = {c: sum(r[c] for r in rows) for c in TOTALS}
    head = "".join(f"<th>{c.upper() if c == 'vat' else c.capitalize()}</th>" for c in TOTALS)
    out = [f'<table class="totals"><thead><tr><th>Branch</th>{head}<th>Complete</th></tr></thead><tbody>']
    for r in rows:
        cells = "".join(f'<td class="num">{r[c] if c == "sales" else taka(r[c])}</td>' for c in TOTALS)
        out.append(f'<tr><td>{_e(r["branch"])}</td>{cells}<td>{_e(r["complete"])}</td></tr>')
    cells = "".join(f'<td class="num">{total[c] if c == "sales" else taka(total[c])}</td>' for c in TOTALS)
    out.append(f'</tbody><tfoot><tr><th>All branches</th>{cells}<td></td></tr></tfoot></table>')
    return "".join(out), total


CSS = f"""
:root {{ color-scheme: light; }}
body {{ font-family: {FONTS}; margin: 24px 32px; color: #1d2733; background: #f5f6f8; font-size: 15px; }}
h1 {{ font-size: 24px; margin: 0 0 4px; }}
h2 {{ font-size: 17px; margin: 0 0 12px; }}
.sub {{ color: #55606e; margin-bottom: 16px; }}
.banner {{ padding: 10px 14px; border-radius: 6px; margin-bottom: 18px; font-weight: 600; }}
.banner.ok {{ background: #e3f4ea; color: #14532d; }}
.banner.late {{ background: #fdecea; color: #8a1c13; }}
.tiles {{ display: flex; gap: 14px; flex-wrap: wrap; margin-bottom: 18px; }}
.tile {{ background: #fff; border-radius: 8px; padding: 12px 16px; min-width: 150px; box-shadow: 0 1px 2px #0002; }}
.tile b {{ display: block; font-size: 22px; margin-top: 4px; font-variant-numeric: tabular-nums; }}
.tile span {{ color: #55606e; font-size: 13px; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(640px, 1fr)); gap: 18px; align-items: start; }}
section.wide {{ grid-column: 1 / -1; }}
section {{ background: #fff; border-radius: 8px; padding: 16px 18px; box-shadow: 0 1px 2px #0002; overflow-x: auto; }}
svg.chart {{ display: block; max-width: 100%; height: auto; font-family: {FONTS}; font-size: 13px; }}
svg .label, svg .tick {{ fill: #1d2733; }}
svg .value {{ fill: #1d2733; font-variant-numeric: tabular-nums; }}
svg .small {{ font-size: 11px; }}
svg .axis {{ stroke: #9aa3ad; }}
.legend {{ margin-top: 6px; }}
.key {{ margin-right: 16px; white-space: nowrap; }}
.key i.pale {{ background: #b8c4d0; opacity: .6; }}
g.incomplete rect {{ opacity: .4; }}
svg .note {{ fill: #55606e; }}
.key i {{ display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ padding: 6px 10px; border-bottom: 1px solid #e3e6ea; text-align: left; white-space: nowrap; }}
td.num, tfoot td {{ text-align: right; }}
tfoot th, tfoot td {{ border-top: 2px solid #1d2733; font-weight: 700; }}
.badge {{ display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }}
.badge.ok {{ background: #e3f4ea; color: #14532d; }}
.badge.late {{ background: #fdecea; color: #8a1c13; }}
.none {{ color: #55606e; }}
footer {{ color: #55606e; font-size: 12px; margin-top: 18px; }}
"""

# No script, no fetch, no font or image from anywhere: the page is complete as it is.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render(views: SalesViews) -> str:
    table = views.by_branch
    branches = [r["branch"] for r in records(table)]
    totals_html, total = _totals_table(views)
    span = str(table.first) if table.first == table.last else f"{table.first} to {table.last}"
    behind = [b.branch for b in table.branches
              if b.complete_through is None or b.complete_through < table.last]
    banner = ('<div class="banner ok">Complete: every branch has synced since the last day ended, nothing pending.</div>'
              if table.complete else
              f'<div class="banner late">NOT complete: waiting on {_e(", ".join(behind))} '
              "(they have not synced since the day ended, or still held sales then).</div>")
    tiles = "".join(f'<div class="tile" data-figure="{key}"><span>{title}</span><b>{value}</b></div>' for key, title, value in (
        ("net", "Net sales", taka(total["net"])), ("sales", "Sales", str(total["sales"])),
        ("discounts", "Discounts", taka(total["discounts"])),
        ("refunds", "Refunds and voids", taka(total["refunds"] + total["voids"])), ("vat", "VAT", taka(total["vat"]))))
    title = f"Sales {span}" + (f" · {table.branch}" if table.branch else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<div class="sub">{len(branches)} branches · business days in {_e(table.zone)} · from the day summaries the cloud keeps</div>
{banner}
<div class="tiles">{tiles}</div>
<div class="grid">
<section id="net" class="wide"><h2>Net sales per {"branch" if table.first == table.last else "day and branch"}</h2>{_net_per_day(views, branches)}</section>
<section id="payments"><h2>Payment mix</h2>{_payment_mix(views)}</section>
<section id="products"><h2>Top products by net</h2>{_top_products(views)}</section>
<section id="sync" class="wide"><h2>Branches behind on sync</h2>{_sync_table(views)}</section>
<section id="totals" class="wide"><h2>Totals</h2>{totals_html}</section>
</div>
<footer>Amounts in taka (৳) as the summaries hold them, to the paisa; times UTC. Net = gross − discounts − refunds − voids.</footer>
</body></html>
"""


# --- the adapter the CLI calls -----------------------------------------------------------

def collect(report: Callable[..., ReportTable], table: ReportTable) -> SalesViews:
    """The views the page needs, through the client's `report` (the one already read is reused)."""
    def view(by: str) -> ReportTable:
        return table if table.by == by else report("sales", str(table.first), str(table.last), table.branch, by)

    by_branch = view("branch")
    names = [r["branch"] for r in records(by_branch)]
    days = {name: report("sales", str(table.first), str(table.last), name, "day") for name in names}
    return SalesViews(by_branch, days, view("payment"), view("product"))


def writing(report: Callable[..., ReportTable], path: Path) -> Callable[[ReportTable], ReportTable]:
    """What `_report` runs on the table it read: write the page to `path`, hand the table on unchanged."""
    def write(table: ReportTable) -> ReportTable:
        page = render(collect(report, table))
        try:
            Path(path).write_text(page, encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(f"cannot write {path}: {exc.strerror}; give a file in a folder you can write",
                                     param_hint="--html") from None
        typer.echo(f"the HTML report is in {path}", err=True)
        return table
    return write
