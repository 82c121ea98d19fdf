"""`branchsync-admin report ...` in-process against the real dev host and Azurite.

The sales reach the dev host's tables through the cloud's own Service over the same Azurite
(what the queue function does with a message), so each test's figures are known exactly.
"""

import csv
import io
import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.table_store import TableStore
from headoffice import admin_cli
from shared.encoding import encode_batch, from_queue_text
from shared.enrollment import decode_code
from shared.models import EnrollRequest
from shared.signing import sign_request
from branchsync_cloud.http import pull_answer, read_signed
from tests.cloud.conftest import Clock
from tests.cloud.test_reports_summaries import mixed_events, v3_batch

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
runner = CliRunner()
SYNCED = datetime(2026, 12, 5, 4, tzinfo=timezone.utc)


def admin(env, *args, code=0):
    result = runner.invoke(admin_cli.app, ["--url", env["BRANCHSYNC_URL"], *args], env=env)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def env(admin_env, cloud):
    return {**admin_env, "BRANCHSYNC_URL": cloud.url, "COLUMNS": "80"}


@pytest.fixture
def branch(env, storage, branch_name):
    """A branch created with the CLI whose three days of sales the cloud applied, synced since with nothing pending."""
    code = admin(env, "branch", "add", branch_name).stdout.strip()
    clock = Clock()
    service = Service(TableStore(storage), Settings(storage=storage, admin_key="unused"), clock)
    secret = service.enroll(EnrollRequest(token=decode_code(code).token)).secret
    clock.now = SYNCED
    events = mixed_events()
    service.apply_message(from_queue_text(encode_batch(v3_batch(branch_name, events), secret)))
    query = {"cursor": "0", "pending": "0"}
    headers = sign_request(secret, branch_name, "GET", "/api/pull", query, b"", SYNCED.timestamp())
    pull_answer(service, read_signed(headers, "GET", "/api/pull", query))
    return branch_name, sum(e.total for e in events)


def sales(env, name, *more):
    return admin(env, "report", "sales", "--from", "2026-11-28", "--to", "2026-11-30", "--branch", name, *more)


def test_the_sales_report_by_day_fits_80_columns_and_says_it_is_complete(env, branch):
    name, net = branch
    out = sales(env, name).stdout
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    assert "2026-11-28" in out and "2026-11-30" in out and "money in taka" in out
    said = " ".join(sales(env, name).stderr.split())
    assert f"{name}: last sync 2026-12-05 04:00 UTC, 0 pending then; complete" in said and "3 rows" in said


def test_the_sales_report_in_csv_shows_taka_and_in_jsonl_paisa(env, branch):
    name, net = branch
    rows = list(csv.DictReader(io.StringIO(sales(env, name, "--by", "branch", "--format", "csv").stdout)))
    assert [(r["branch"], r["net_taka"], r["complete"]) for r in rows] == [(name, f"{net // 100}.{net % 100:02d}", "yes")]
    lines = [json.loads(x) for x in sales(env, name, "--by", "branch", "--format", "jsonl").stdout.splitlines()]
    assert lines[0]["net_paisa"] == net and lines[0]["pending_at_sync"] == 0


@pytest.mark.parametrize("by, key", [("day", "day"), ("product", "sku"), ("payment", "method"), ("cashier", "cashier"),
                                     ("vat", "vat_rate")])
def test_the_sales_report_groups_by_each_dimension(env, branch, by, key):
    name, net = branch
    rows = [json.loads(x) for x in sales(env, name, "--by", by, "--format", "jsonl").stdout.splitlines()]
    assert rows and all(key in r for r in rows)
    money = {"payment": "amount_paisa"}.get(by, "net_paisa")
    assert sum(r[money] for r in rows) == net
    assert "…" not in sales(env, name, "--by", by).stdout


def test_the_sales_report_in_xlsx_holds_numbers_with_a_taka_format_not_text(env, branch, tmp_path):
    name, net = branch
    path = tmp_path / "sales.xlsx"
    sales(env, name, "--by", "day", "--format", "xlsx", "--output", str(path))
    book = load_workbook(path)
    sheet = book["sales"]
    header = [c.value for c in sheet[1]]
    net_col = header.index("net") + 1
    cells = [sheet.cell(row=r, column=net_col) for r in range(2, sheet.max_row + 1)]
    assert all(isinstance(c.value, (int, float)) and c.number_format == "#,##0.00" for c in cells)
    assert round(sum(Decimal(str(c.value)) for c in cells) * 100) == net
    assert isinstance(sheet.cell(row=2, column=header.index("sales") + 1).value, int)
    assert sheet.cell(row=2, column=1).value.date().isoformat() == "2026-11-28"
    sync = book["sync"]
    assert [c.value for c in sync[2]][0] == name and sync.cell(row=2, column=3).value == 0


def test_xlsx_without_an_output_file_and_a_date_that_is_no_date_are_refused_before_anything_is_sent(env):
    assert "--output" in admin(env, "report", "sales", "--from", "2026-11-28", "--to", "2026-11-30",
                               "--format", "xlsx", code=2).output
    assert "not a date" in admin(env, "report", "sales", "--from", "28/11/2026", "--to", "2026-11-30", code=2).output


def test_the_shifts_report_shows_each_closed_shift_with_its_over_or_short(env, branch):
    name, _ = branch
    args = ("report", "shifts", "--from", "2026-11-28", "--to", "2026-11-30", "--branch", name)
    [row] = list(csv.DictReader(io.StringIO(admin(env, *args, "--format", "csv").stdout)))
    assert (row["cashier"], row["expected_cash_taka"], row["counted_cash_taka"], row["over_short"]) == \
        ("karim", "5746.00", "5746.00", "even")
    out = admin(env, *args).stdout
    assert "karim" in out and "…" not in out


def test_the_exceptions_report_lists_voids_refunds_and_discounts_by_cashier_largest_first(env, branch):
    name, _ = branch
    args = ("report", "exceptions", "--from", "2026-11-28", "--to", "2026-11-30", "--branch", name)
    rows = [json.loads(x) for x in admin(env, *args, "--format", "jsonl").stdout.splitlines()]
    assert {(r["cashier"], r["kind"]) for r in rows} == {("karim", "void"), ("rahim", "refund"), ("karim", "discount")}
    assert [r["amount_paisa"] for r in rows] == sorted((r["amount_paisa"] for r in rows), reverse=True)
    assert "void" in admin(env, *args).stdout


def test_report_rebuild_rewrites_the_days_and_the_report_stays_the_same(env, branch):
    name, _ = branch
    before = sales(env, name, "--format", "jsonl").stdout
    out = admin(env, "report", "rebuild", "--branch", name).stdout
    assert f"{name}: 3 days" in out and "from 6 applied events" in out
    assert sales(env, name, "--format", "jsonl").stdout == before


def test_the_exceptions_report_joins_the_lines_sold_at_another_price_than_the_catalog_holds_now(env, branch):
    name, _ = branch
    admin(env, "catalog", "import", str(_catalog_of(env, "RICE", "120")))  # RICE was sold at 100 taka
    args = ("report", "exceptions", "--from", "2026-11-28", "--to", "2026-11-30", "--branch", name,
            "--with-price-differences", "--format", "jsonl")
    rows = [json.loads(x) for x in admin(env, *args).stdout.splitlines()]
    [joined] = [r for r in rows if r["kind"] == "catalog_price"]
    # Sale 1 sold 2 RICE at 100 taka; sale 2's RICE was voided, so it differs from nothing.
    assert (joined["cashier"], joined["count"], joined["amount_paisa"]) == ("-", 1, (10000 - 12000) * 2)
    assert {r["kind"] for r in rows} >= {"void", "refund", "discount", "catalog_unknown"}  # OIL and DAL: not in it
    assert [abs(r["amount_paisa"]) for r in rows] == sorted((abs(r["amount_paisa"]) for r in rows), reverse=True)


def _catalog_of(env, sku, price):
    import tempfile

    path = Path(tempfile.mkdtemp()) / "catalog.csv"
    path.write_text(f"sku,name,price\n{sku},Rice,{price}\n", encoding="utf-8")
    return path
