"""The lake written into Azurite's blob service and read back as BI tools read it (DuckDB, azure extension).

The sales are applied by the real Service on TableStore (Azurite's tables), the lake goes
through BlobLake to Azurite's blobs, and DuckDB reads it over the azure extension with
Azurite's connection string (in Azure, the credential chain; docs/reporting.md).
"""

import io
import json
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import duckdb_ext
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import ContainerClient

from branchsync_cloud import lake
from branchsync_cloud.lake_blob import BlobLake
from branchsync_cloud.lake_writer import LakeWriter
from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.summaries import DaySummary
from headoffice.sales_rows import COLUMNS, sale_rows
from shared.errors import ContractError, ErrorCode
from shared.models import Payment, SalesBatch
from tests.builders import (
    T0, make_batch, make_line, make_line3, make_refund, make_sale, make_sale3, make_shift_close, make_void, make_void3,
)
from tests.cloud.conftest import ADMIN_KEY
from tests.cloud.test_service import enroll, push

pytestmark = pytest.mark.azurite

DHAKA = lake.business_zone("Asia/Dhaka")
DAY1 = date(2026, 11, 28)  # T0 is 12:00 in Dhaka
DAY2 = DAY1 + timedelta(days=1)
EVENING = T0 + timedelta(hours=11, minutes=59)  # 23:59 in Dhaka, still DAY1
NEXT = T0 + timedelta(hours=12)  # 00:00 in Dhaka: DAY2
# duckdb-ext-azure ships the extension built for this DuckDB version, one folder per platform.
[AZURE_EXTENSION] = Path(duckdb_ext.__path__[0]).glob(f"extensions/v{duckdb.__version__}/*/azure.duckdb_extension")


@pytest.fixture
def cloud(storage, table_store, table_prefix, clock):
    settings = Settings(storage=storage, admin_key=ADMIN_KEY, public_url="https://cloud.example", table_prefix=table_prefix)
    return Service(table_store, settings, clock)


@pytest.fixture
def container() -> str:
    return "lake-" + uuid.uuid4().hex[:12]


@pytest.fixture
def blobs(storage, container) -> BlobLake:
    return BlobLake(storage, container)


def at(sale, moment):
    return sale.model_copy(update={"recorded_at": moment})


def two_days_of_two_branches(cloud) -> dict[str, str]:
    """Every kind of event, over the midnight between DAY1 and DAY2 in Dhaka, in two branches; their secrets."""
    secrets = {}
    for branch in ("dhaka-1", "ctg-1"):
        secret = secrets[branch] = enroll(cloud, branch)
        old = at(make_sale(1, [make_line("RICE-5KG", "2.5", 8_000), make_line("SALT", "1", 3_500)]), EVENING)
        push(cloud, make_batch(branch, [old, at(make_sale(2, total=12_345, method="card"), EVENING),
                                        at(make_void(3, make_sale(2, total=12_345, method="card")), NEXT)]), secret)
        sale = at(make_sale3(4, [make_line3(qty="2", discount=("percent", "10")),
                                 make_line3("OIL-1L", qty="1.5", unit_price=18_000, vat_rate="15")],
                             discount=("amount", 333)), EVENING)
        split = [Payment(method="card", amount=20_000),
                 Payment(method="mobile", amount=22_000, wallet="nagad", txn_id="7K3M9P2Q1Z")]
        v3 = SalesBatch.of(branch, 1, T0, [
            sale, at(make_sale3(5, [make_line3()], payments=split, cashier="karim"), NEXT),
            at(make_refund(6, sale, [(2, "0.5", 8_000)]), NEXT), at(make_void3(7, make_sale3(5)), NEXT),
            at(make_shift_close(8), NEXT)])
        push(cloud, v3, secret)
    return secrets


def exported(cloud) -> list[dict]:
    """Every row of `sales export` (the CSV the admin CLI writes), page by page."""
    out, after = [], None
    while True:
        page = cloud.export_sales(after=after, limit=3)
        out += [dict(zip(COLUMNS, row)) for applied in page.sales for row in sale_rows(applied)]
        if page.next is None:
            return out
        after = page.next


def duck(storage: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"LOAD '{AZURE_EXTENSION}'")
    con.execute(f"CREATE SECRET azurite (TYPE azure, CONNECTION_STRING '{storage}')")
    return con


def export_totals(rows: list[dict]) -> dict:
    """Per (branch, business day) from the export's rows: takings, events, line totals, discounts, VAT, tenders."""
    out = defaultdict(lambda: defaultdict(int))
    for r in rows:
        t = out[(r["branch"], lake.business_day(datetime.fromisoformat(r["recorded_at"]), DHAKA))]
        first = r["total_paisa"] != ""  # an event's first row carries its total
        if r["kind"] == "shift_close":
            continue  # counts no sale, pays nothing: the lake keeps it in shifts/
        if not r["cashier"]:  # v1/v2: one row, its lines as JSON, the one payment
            lines = json.loads(r["lines"])
            t["line_total"] += sum(line["line_total"] for line in lines)
            t["tender " + r["payment"]] += r["total_paisa"]
        else:
            t["line_total"] += int(r["line_total_paisa"] or 0)
            t["discount"] += int(r["discount_paisa"] or 0) + (int(r["sale_discount_paisa"] or 0) if first else 0)
            t["vat"] += int(r["vat_paisa"] or 0)
            if first and r["payments"]:
                for part in r["payments"].split("; "):
                    method, amount = part.split(" ")[0].split(":")
                    t["tender " + method.split("/")[0]] += int(amount)
        if first:
            t["takings"] += r["total_paisa"]
            t["events"] += 1
    return {k: dict(v) for k, v in out.items()}


def lake_totals(con, container: str) -> dict:
    out = defaultdict(dict)
    sales = (f"read_parquet('az://{container}/sales/*/*/*.parquet', hive_partitioning = true, "
             "hive_types = {'date': DATE, 'branch': VARCHAR})")
    # The export has line totals, discounts and VAT on sales only; the lake's voids and refunds take them back.
    for branch, day, events, net, line_total, discount, vat in con.sql(f"""
            SELECT branch, date, count(DISTINCT (generation, seq)), sum(net_paisa),
                   sum(line_total_paisa) FILTER (kind = 'sale'), sum(discount_paisa) FILTER (kind = 'sale'),
                   sum(vat_paisa) FILTER (kind = 'sale')
            FROM {sales} GROUP BY ALL""").fetchall():
        out[(branch, day)].update(events=events, takings=int(net), line_total=int(line_total), discount=int(discount),
                                  vat=int(vat))
    payments = f"read_parquet('az://{container}/payments/*/*/*.parquet')"
    for branch, day, method, amount in con.sql(f"""
            SELECT branch, business_date, method, sum(amount_paisa) FROM {payments} GROUP BY ALL""").fetchall():
        out[(branch, day)]["tender " + method] = int(amount)
    return dict(out)


def test_the_lake_read_with_duckdb_matches_the_sales_export_to_the_paisa(cloud, table_store, blobs, container, storage):
    two_days_of_two_branches(cloud)
    run = LakeWriter(table_store, blobs, "Asia/Dhaka").run()
    assert (run.branches, run.events, sorted(run.days)) == (2, 16, [(b, d) for b in ("ctg-1", "dhaka-1") for d in (DAY1, DAY2)])
    expected = export_totals(exported(cloud))
    assert set(expected) == {(b, d) for b in ("ctg-1", "dhaka-1") for d in (DAY1, DAY2)}
    con = duck(storage)
    got = lake_totals(con, container)
    assert got == expected
    # And the day summaries the apply kept, to the paisa: takings, VAT net of what voids and refunds took back, tenders.
    vat_net = dict(((b, d), int(v)) for b, d, v in con.sql(f"""SELECT branch, date, sum(vat_paisa)
        FROM read_parquet('az://{container}/sales/*/*/*.parquet', hive_partitioning = true) GROUP BY ALL""").fetchall())
    for (branch, day), totals in got.items():
        [summary] = table_store.read_summaries(branch, day, day)
        assert (summary.net, sum(vat for _, vat in summary.vat.values())) == (totals["takings"], vat_net[(branch, day)])
        assert {f"tender {m}": paisa for m, paisa in summary.payments.items() if paisa} == \
            {k: v for k, v in totals.items() if k.startswith("tender ") and v}
    assert con.sql(f"""SELECT branch, date, shift_id, over_short_paisa
        FROM read_parquet('az://{container}/shifts/*/*/*.parquet', hive_partitioning = true) ORDER BY branch""").fetchall() == [
        ("ctg-1", DAY2, "S-1", 0), ("dhaka-1", DAY2, "S-1", 0)]


def test_writing_the_lake_again_gives_the_same_bytes(cloud, table_store, blobs, storage, container):
    two_days_of_two_branches(cloud)
    LakeWriter(table_store, blobs, "Asia/Dhaka").run()
    first = {name: blobs.read(name) for name in blobs.list() if name.endswith(".parquet")}
    assert len(first) == 2 * 2 * 3 + 2  # sales, payments and events per branch and day, shifts on DAY2
    before = blobs.ops
    nothing_new = LakeWriter(table_store, blobs, "Asia/Dhaka").run()
    assert (nothing_new.events, nothing_new.files) == (0, 0)
    assert blobs.ops - before == 2  # one state read per branch, no hold taken
    again = LakeWriter(table_store, blobs, "Asia/Dhaka").run(rewrite=[DAY1, DAY2])
    assert again.files == len(first)
    assert {name: blobs.read(name) for name in first} == first
    # From nothing (the state gone too), as after losing the container: the same bytes again.
    other = BlobLake(storage, container + "x")
    LakeWriter(table_store, other, "Asia/Dhaka").run()
    assert {name: other.read(name) for name in first} == first


def test_a_late_sale_for_a_closed_day_rewrites_that_day_only(cloud, table_store, blobs, storage, container):
    secrets = two_days_of_two_branches(cloud)
    writer = LakeWriter(table_store, blobs, "Asia/Dhaka")
    writer.run()
    raw = ContainerClient.from_connection_string(storage, container)
    etags = {b.name: b.etag for b in raw.list_blobs(name_starts_with="sales/")}
    # dhaka-1's till was offline: its next message carries a sale rung up on DAY1 evening.
    late = at(make_sale3(9, [make_line3("SUGAR-1KG", unit_price=13_000)]), EVENING - timedelta(hours=1))
    push(cloud, SalesBatch.of("dhaka-1", 1, T0, [late]), secrets["dhaka-1"])
    run = writer.run()
    assert (run.events, run.days) == (1, [("dhaka-1", DAY1)])
    changed = {b.name for b in raw.list_blobs(name_starts_with="sales/") if b.etag != etags[b.name]}
    assert changed == {lake.part_path("sales", DAY1, "dhaka-1")}
    con = duck(storage)  # kept: a connection dropped mid-expression closes before the fetch
    [(count, net)] = con.sql(f"""SELECT count(*), sum(net_paisa)
        FROM 'az://{container}/{lake.part_path("sales", DAY1, "dhaka-1")}' WHERE seq = 9""").fetchall()
    assert (count, net) == (1, late.total)


def test_a_branch_another_writer_holds_is_left_to_it_and_written_by_the_next_run(cloud, table_store, blobs, storage,
                                                                                  container):
    two_days_of_two_branches(cloud)
    other = BlobLake(storage, container)
    with other.branch("ctg-1") as held:
        assert held is not None
        run = LakeWriter(table_store, blobs, "Asia/Dhaka").run()
    assert run.busy == ["ctg-1"] and {b for b, _ in run.days} == {"dhaka-1"}
    assert {b for b, _ in LakeWriter(table_store, blobs, "Asia/Dhaka").run().days} == {"ctg-1"}


def test_a_long_backlog_is_written_over_several_runs_each_reading_a_bounded_number_of_sales(cloud, table_store, blobs):
    secret = enroll(cloud, "dhaka-1")
    push(cloud, make_batch("dhaka-1", [at(make_sale3(n), T0 + timedelta(minutes=n)) for n in range(1, 26)]), secret)
    writer = LakeWriter(table_store, blobs, "Asia/Dhaka", max_seqs=10)
    runs = [writer.run() for _ in range(3)]
    assert [(r.events, r.more) for r in runs] == [(10, ["dhaka-1"]), (10, ["dhaka-1"]), (5, [])]
    sales = lake.part_path("sales", DAY1, "dhaka-1")
    assert pq.read_table(io.BytesIO(blobs.read(sales))).column("seq").to_pylist() == list(range(1, 26))


def test_a_lake_written_in_one_time_zone_refuses_to_go_on_in_another(cloud, table_store, blobs):
    secret = enroll(cloud, "dhaka-1")
    push(cloud, make_batch("dhaka-1", [make_sale3(1)]), secret)
    LakeWriter(table_store, blobs, "Asia/Dhaka").run()
    push(cloud, make_batch("dhaka-1", [make_sale3(2)]), secret)
    with pytest.raises(ValueError, match="empty the lake container"):
        LakeWriter(table_store, blobs, "Asia/Kolkata").run()


def test_rebuilding_the_summaries_from_the_lake_gives_the_figures_the_apply_kept(cloud, table_store, blobs):
    two_days_of_two_branches(cloud)
    LakeWriter(table_store, blobs, "Asia/Dhaka").run()
    kept = {b: table_store.read_summaries(b, date.min, date.max) for b in ("ctg-1", "dhaka-1")}
    assert all(len(days) == 2 for days in kept.values())
    # The summaries lost (written empty): only the lake still knows the figures.
    for branch, days in kept.items():
        table_store.replace_summaries(table_store.get_ledger(branch), [DaySummary(branch, d.day) for d in days])
    result = LakeWriter(table_store, blobs, "Asia/Dhaka").rebuild_summaries()
    assert (result.branches, result.events) == ({"ctg-1": 2, "dhaka-1": 2}, 16)
    for branch, days in kept.items():
        rebuilt = table_store.read_summaries(branch, date.min, date.max)
        assert len(rebuilt) == len(days) and all(a.same_figures(b) for a, b in zip(rebuilt, days))


def test_a_rebuild_from_a_lake_behind_the_applied_sales_is_refused_until_the_lake_is_written(cloud, table_store, blobs):
    secrets = two_days_of_two_branches(cloud)
    writer = LakeWriter(table_store, blobs, "Asia/Dhaka")
    writer.run()
    push(cloud, SalesBatch.of("dhaka-1", 1, T0, [at(make_sale3(9), NEXT)]), secrets["dhaka-1"])
    with pytest.raises(ContractError, match="lake write") as refused:
        writer.rebuild_summaries("dhaka-1")
    assert refused.value.code == ErrorCode.CONFLICT
    writer.run()
    assert writer.rebuild_summaries("dhaka-1").events == 9
