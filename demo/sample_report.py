"""A week of three branches' day summaries, reported as the cloud reports them, for the HTML
report's screenshot and its browser test.

`report_of(summaries, syncs)` answers like `AdminClient.report` does, from the cloud's own
pure report code (branchsync_cloud.sales_report) over the given DaySummary rows, so the
page is built from tables of exactly the shape the route answers.
"""

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from branchsync_cloud.sales_report import is_complete, sales_table
from branchsync_cloud.summaries import DaySummary
from headoffice import report_html
from shared.models import BranchSync, ReportTable

ZONE = "Asia/Dhaka"
FIRST, LAST = date(2026, 11, 24), date(2026, 11, 30)
PRODUCTS = [
    ("RICE-MINI-5", "চাল মিনিকেট ৫ কেজি", 42000), ("OIL-TEER-2L", "তীর সয়াবিন তেল ২ লিটার", 38500),
    ("FISH-RUI", "রুই মাছ (কেজি)", 55000), ("DAL-1KG", "মসুর ডাল ১ কেজি", 14050),
    ("TEA-ISP-400", "ইস্পাহানি চা পাতা ৪০০ গ্রাম", 21000), ("EGG-12", "ডিম ১ ডজন", 15600),
    ("MILK-1L", "Aarong Dairy Milk 1L", 9000), ("SUGAR-1KG", "চিনি ১ কেজি", 13500),
    ("POTATO", "আলু (খোলা)", 4500), ("SOAP-LUX", "Lux Soap Bar", 6500), ("ATTA-2KG", "আটা ২ কেজি", 13000),
    ("ONION", "পেঁয়াজ (খোলা)", 11000),
]
BRANCHES = {"dhaka-gulshan": 1.0, "chattogram-gec": 0.7, "sylhet-zindabazar": 0.45}


def week() -> tuple[list[DaySummary], dict[str, BranchSync]]:
    """Seeded figures; sylhet-zindabazar last synced on the 29th with 4 sales still pending."""
    rng = random.Random(7)
    summaries = []
    for branch, size in BRANCHES.items():
        for i in range((LAST - FIRST).days + 1):
            day = FIRST + timedelta(days=i)
            if branch == "sylhet-zindabazar" and day == LAST:
                continue  # nothing of the last day reached the cloud yet
            s = DaySummary(branch=branch, day=day)
            for _ in range(int(rng.randint(60, 90) * size)):
                sku, name, price = rng.choice(PRODUCTS)
                qty = rng.randint(1, 3)
                net = qty * price
                held = s.products.setdefault(sku, [name, Decimal(0), 0, 0])
                held[1] += qty
                held[2] += net
                s.sales += 1
                s.gross += net
                method = rng.choices(["cash", "card", "mobile"], [6, 2, 3])[0]
                s.payments[method] = s.payments.get(method, 0) + net
            s.discounts = s.gross // 40
            s.payments["cash"] -= s.discounts
            s.net = s.gross - s.discounts
            s.vat = {"5": [s.net, s.net * 5 // 105]}
            summaries.append(s)
    synced = datetime(2026, 12, 1, 2, 30, tzinfo=timezone.utc)
    syncs = {"dhaka-gulshan": BranchSync(branch="dhaka-gulshan", last_pull=synced, pending=0, complete_through=LAST),
             "chattogram-gec": BranchSync(branch="chattogram-gec", last_pull=synced + timedelta(minutes=12), pending=0,
                                          complete_through=LAST),
             "sylhet-zindabazar": BranchSync(branch="sylhet-zindabazar", last_pull=datetime(2026, 11, 30, 15, 5,
                                                                                            tzinfo=timezone.utc),
                                             pending=4, complete_through=date(2026, 11, 29))}
    return summaries, syncs


def report_of(summaries: list[DaySummary], syncs: dict[str, BranchSync]):
    """A stand-in for AdminClient.report over these summaries (what GET manage/reports/sales answers)."""
    def report(name: str, first: str, last: str, branch: str | None = None, by: str | None = None) -> ReportTable:
        lo, hi = date.fromisoformat(first), date.fromisoformat(last)
        covered = {k: v for k, v in syncs.items() if branch is None or k == branch}
        mine = [s for s in summaries if (branch is None or s.branch == branch) and lo <= s.day <= hi]
        columns, kinds, rows = sales_table(mine, by or "day", lo, hi, covered)
        return ReportTable(report=name, first=lo, last=hi, by=by, branch=branch, zone=ZONE, columns=columns,
                           kinds=kinds, rows=rows, complete=all(is_complete(s, hi) for s in covered.values()),
                           branches=sorted(covered.values(), key=lambda s: s.branch))
    return report


def sample_views(first: date = FIRST, last: date = LAST) -> report_html.SalesViews:
    report = report_of(*week())
    return report_html.collect(report, report("sales", str(first), str(last), None, "branch"))
