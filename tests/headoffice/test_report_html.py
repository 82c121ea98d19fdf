"""The HTML sales report: its charts carry the summaries' figures exactly, names from branches
stay text, the page renders in a real browser with no network, and `report sales --html`
writes it from the real dev host.

The pure tests build their report tables with the cloud's own report code
(demo/sample_report.py runs branchsync_cloud.sales_report over DaySummary rows).
"""

from datetime import date, datetime, timezone
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from playwright.sync_api import expect

from branchsync_cloud.summaries import DaySummary
from demo.sample_report import LAST, report_of, sample_views, week
from headoffice import report_html
from headoffice.report_html import render, taka
from shared.models import BranchSync
from tests.headoffice.test_admin_reports import admin, branch, env, sales  # noqa: F401 (fixtures)

ONE_DAY = date(2026, 11, 30)
SYNCED = datetime(2026, 12, 1, 3, tzinfo=timezone.utc)


class Bars(HTMLParser):
    """Every chart bar of a page: (chart, data-label, data-paisa, the value text written beside it)."""

    def __init__(self, page: str):
        super().__init__()
        self.bars, self.scripts, self._chart, self._bar, self._in_value = [], 0, None, None, False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" or any(k.startswith("on") for k in a):
            self.scripts += 1
        if tag == "svg" and "data-chart" in a:
            self._chart = a["data-chart"]
        elif tag == "g" and "bar" in (a.get("class") or "").split():
            self._bar = [self._chart, a["data-label"], int(a["data-paisa"]), "", "incomplete" in a["class"]]
        elif tag == "text" and self._bar is not None and "value" in (a.get("class") or "").split():
            self._in_value = True

    def handle_endtag(self, tag):
        if tag == "text":
            self._in_value = False
        elif tag == "g" and self._bar is not None:
            self.bars.append(tuple(self._bar))
            self._bar = None

    def handle_data(self, data):
        if self._in_value:
            self._bar[3] += data

    def of(self, chart: str) -> list[tuple]:
        return [b for b in self.bars if b[0] == chart]


def one_day(products: dict[str, tuple[str, int]], branches=("dhaka-gulshan", "sylhet-zindabazar"), pending=0):
    """The views of one business day: each branch sold `products` (sku -> (name, net)) for cash."""
    summaries = []
    for name in branches:
        s = DaySummary(branch=name, day=ONE_DAY)
        for sku, (product, net) in products.items():
            s.products[sku] = [product, Decimal(1), net, 0]
            s.sales, s.gross, s.net = s.sales + 1, s.gross + net, s.net + net
        s.payments = {"cash": s.net}
        summaries.append(s)
    syncs = {name: BranchSync(branch=name, last_pull=SYNCED, pending=pending, complete_through=None if pending else ONE_DAY)
             for name in branches}
    report = report_of(summaries, syncs)
    return report_html.collect(report, report("sales", str(ONE_DAY), str(ONE_DAY), None, "branch"))


def rows(table) -> list[dict]:
    return report_html.records(table)


def test_taka_is_written_from_integer_paisa_with_two_decimals_and_thousands_exactly():
    assert taka(0) == "৳0.00" and taka(5) == "৳0.05" and taka(-12345) == "-৳123.45"
    assert taka(123456789012345678) == "৳1,234,567,890,123,456.78"  # past a float's 15 digits, still exact


def test_each_bar_of_net_per_day_and_branch_is_labelled_with_that_branch_and_days_summary_figure():
    views = sample_views()
    bars = Bars(render(views)).of("net-per-day")
    wanted = {(f"{b} {r['day'][5:]}", r["net"]) for b, t in views.days.items() for r in rows(t)}
    assert {(label, paisa) for _, label, paisa, _, _ in bars} >= wanted and len(wanted) > 15
    assert all(text == taka(paisa) for _, _, paisa, text, _ in bars)


def test_a_day_a_branch_has_not_synced_past_is_drawn_as_not_complete():
    bars = Bars(render(sample_views())).of("net-per-day")
    pale = {label for _, label, _, _, incomplete in bars if incomplete}
    assert pale == {f"sylhet-zindabazar {LAST:%m-%d}"}


def test_the_payment_mix_and_top_products_carry_the_reports_figures_largest_first():
    views = sample_views()
    page = Bars(render(views))
    payments = page.of("payments")
    assert [(p, t.split(" ")[0]) for _, _, p, t, _ in payments] == [(r["amount"], taka(r["amount"])) for r in rows(views.payment)]
    assert {label for _, label, *_ in payments} == {"Cash", "Card", "bKash / Nagad"}
    products = page.of("products")
    assert [(label, p) for _, label, p, _, _ in products] == [(r["name"], r["net"]) for r in rows(views.product)[:10]]
    assert [p for _, _, p, _, _ in products] == sorted((p for _, _, p, _, _ in products), reverse=True)


def test_one_day_shows_a_bar_per_branch_and_the_totals_table_adds_up_to_the_paisa():
    views = one_day({"RICE": ("চাল ৫ কেজি", 4200033), "DAL": ("মসুর ডাল", 1405)})
    page = render(views)
    bars = Bars(page).of("net-per-branch")
    assert [(label, paisa, text) for _, label, paisa, text, _ in bars] == \
        [("dhaka-gulshan", 4201438, "৳42,014.38"), ("sylhet-zindabazar", 4201438, "৳42,014.38")]
    assert '<th>All branches</th><td class="num">4</td><td class="num">৳84,028.76</td>' in page
    assert "চাল ৫ কেজি" in page and "Complete: every branch" in page


def test_a_branch_with_sales_still_pending_makes_the_page_say_it_is_not_complete():
    page = render(one_day({"RICE": ("Rice", 100)}, pending=3))
    assert "NOT complete: waiting on dhaka-gulshan, sylhet-zindabazar" in page
    assert page.count('<span class="badge late">behind</span>') == 2
    assert [text for *_, text, _ in Bars(page).of("net-per-branch")] == ["৳1.00 not complete"] * 2


def test_a_hostile_product_name_stays_text_and_the_page_allows_no_script_at_all():
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>"\' onmouseover="alert(3)'
    page = render(one_day({"EVIL": (hostile, 500), "OK": ("ডিম", 400)}))
    parsed = Bars(page)
    assert parsed.scripts == 0 and "<script" not in page and "<img" not in page
    assert hostile in [label for _, label, *_ in parsed.of("products")]  # shown as typed, as text
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_more_than_eight_branches_keep_seven_bars_and_the_rest_share_one_with_their_sum():
    branches = tuple(f"b-{i:02d}" for i in range(10))
    summaries = [DaySummary(branch=b, day=day, sales=1, gross=100 * (i + 1), net=100 * (i + 1))
                 for i, b in enumerate(branches) for day in (date(2026, 11, 29), ONE_DAY)]
    syncs = {b: BranchSync(branch=b, last_pull=SYNCED, pending=0, complete_through=ONE_DAY) for b in branches}
    report = report_of(summaries, syncs)
    views = report_html.collect(report, report("sales", "2026-11-29", str(ONE_DAY), None, "day"))
    bars = Bars(render(views)).of("net-per-day")
    assert {label.rsplit(" ", 1)[0] for _, label, *_ in bars} == {*(f"b-{i:02d}" for i in range(9, 2, -1)),
                                                                  "3 other branches"}
    assert [p for _, label, p, _, _ in bars if label.startswith("3 other")] == [100 + 200 + 300] * 2


def test_collect_asks_the_client_for_each_view_once_and_reuses_the_table_already_read():
    summaries, syncs = week()
    answer = report_of(summaries, syncs)
    asked = []

    def report(*args):
        asked.append(args)
        return answer(*args)

    table = answer("sales", "2026-11-24", "2026-11-30", None, "payment")
    report_html.collect(report, table)
    assert [a[4] for a in asked] == ["branch", "day", "day", "day", "product"]
    assert sorted(a[3] for a in asked if a[4] == "day") == sorted(syncs)


# --- in a real browser -----------------------------------------------------------------------

def test_the_page_renders_in_chromium_from_a_file_with_no_network_bangla_and_charts_visible(browser, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(render(sample_views()), encoding="utf-8")
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    errors, outside = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def only_the_file(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()
    page.route("**/*", only_the_file)
    try:
        page.goto(path.as_uri())
        for chart in ("net-per-day", "payments", "products"):
            expect(page.locator(f'svg[data-chart="{chart}"]')).to_be_visible()
            assert page.locator(f'svg[data-chart="{chart}"] rect').first.bounding_box()["width"] > 0
        fish = page.locator('svg[data-chart="products"] text.label', has_text="রুই মাছ")
        expect(fish).to_be_visible()
        assert fish.bounding_box()["width"] > 20  # glyphs drawn, not an empty run
        expect(page.locator("#totals tfoot")).to_contain_text("All branches")
        expect(page.locator(".banner.late")).to_contain_text("sylhet-zindabazar")
    finally:
        context.close()
    assert errors == [] and outside == []


# --- through the command line, against the dev host and Azurite ------------------------------

@pytest.mark.e2e
@pytest.mark.azurite
def test_report_sales_html_prints_the_table_and_writes_the_page_with_the_branchs_figures(env, branch, tmp_path):
    name, net = branch
    path = tmp_path / "morning.html"
    result = sales(env, name, "--by", "branch", "--html", str(path))
    assert name in result.stdout and "money in taka" in result.stdout  # the table, as without --html
    assert f"the HTML report is in {path}" in " ".join(result.stderr.split())
    page = Bars(path.read_text(encoding="utf-8"))
    days = page.of("net-per-day")
    assert sum(p for _, _, p, _, _ in days) == net and {label.split(" ")[0] for _, label, *_ in days} == {name}
    assert page.of("payments") and page.of("products") and page.scripts == 0


@pytest.mark.e2e
@pytest.mark.azurite
def test_an_html_file_that_cannot_be_written_is_bad_input(env, branch, tmp_path):
    name, _ = branch
    result = admin(env, "report", "sales", "--from", "2026-11-28", "--to", "2026-11-30", "--branch", name,
                   "--html", str(tmp_path / "no-such-folder" / "r.html"), code=2)
    assert "cannot write" in result.output
