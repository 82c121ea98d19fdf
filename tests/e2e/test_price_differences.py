"""A sale of a product head office deleted or repriced while the branch was offline: kept as sold, and reported."""

import csv
import io
import json

import pytest

from tests.e2e.test_console_scripts import cli, enrolled_branch, exported, wait_applied, write_catalog

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


def test_the_admin_report_shows_a_deleted_and_a_repriced_product_sold_offline(tmp_path, admin_env, cloud, branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    oil, dal = f"OIL-{branch_name}", f"DAL-{branch_name}"
    cli("branchsync-admin", "catalog", "import",
        write_catalog(tmp_path / "c.csv", [(oil, "সয়াবিন তেল", "180", "ltr"), (dal, "মসুর ডাল", "140.50", "kg")]), env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)
    cli("branchsync", "--home", home, "sale", "add", f"{oil}=2", f"{dal}=1.5", env=env)  # sold while offline
    cli("branchsync-admin", "catalog", "delete", oil, env=env)
    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "d.csv", [(dal, "মসুর ডাল", "150", "kg")]), env=env)
    cli("branchsync", "--home", home, "sync", env=env)
    wait_applied(branch_name, 1, env)

    assert [s["sale"]["total"] for s in exported(branch_name, env)] == [36000 + 21075]
    rows = [json.loads(line) for line in cli("branchsync-admin", "report", "price-differences", "--branch", branch_name,
                                             "--format", "jsonl", env=env).stdout.splitlines()]
    assert [(r["sku"], r["status"], r["sold_price"], r["current_price"], r["difference"]) for r in rows] == [
        (oil, "deleted", 18000, None, None), (dal, "price_differs", 14050, 15000, 21075 - 22500)]
    table = cli("branchsync-admin", "report", "price-differences", "--branch", branch_name,
                env={**env, "COLUMNS": "200"}).stdout
    assert oil in table and "deleted" in table and "-14.25" in table
    got = list(csv.DictReader(io.StringIO(cli("branchsync-admin", "report", "price-differences", "--branch", branch_name,
                                              "--format", "csv", env=env).stdout)))
    assert [(r["sku"], r["current_paisa"]) for r in got] == [(oil, ""), (dal, "15000")]


def test_csv_exports_write_branch_supplied_text_as_text_never_as_a_spreadsheet_formula(tmp_path, admin_env, cloud,
                                                                                        branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    sku, name = f"@OIL-{branch_name}", '=HYPERLINK("http://example.invalid","refund")'
    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "c.csv", [(sku, name, "180", "ltr")]), env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)
    cli("branchsync", "--home", home, "sale", "add", f"{sku}=2", env=env)
    cli("branchsync-admin", "catalog", "import", write_catalog(tmp_path / "d.csv", [(sku, name, "200", "ltr")]), env=env)
    cli("branchsync", "--home", home, "sync", env=env)
    wait_applied(branch_name, 1, env)

    [row] = list(csv.DictReader(io.StringIO(cli("branchsync-admin", "report", "price-differences", "--branch",
                                                branch_name, "--format", "csv", env=env).stdout)))
    assert row["name"] == "'" + name and row["sku"] == "'" + sku
    assert row["difference_paisa"] == "-4000" and row["sold_paisa"] == "18000"  # numbers stay numbers

    [sale] = list(csv.DictReader(io.StringIO(cli("branchsync-admin", "sales", "export", "--branch", branch_name,
                                                 "--format", "csv", env=env).stdout)))
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in sale.values())
    assert (sale["name"], sale["sku"]) == ("'" + name, "'" + sku)
    [applied] = exported(branch_name, env)
    assert applied["sale"]["lines"][0]["name"] == name  # the line itself is kept exactly as sold
