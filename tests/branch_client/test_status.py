"""The till's status as one typed object, read from a real SQLite store; the CLI and the till show the same one."""

import json
from datetime import datetime, timezone

from typer.testing import CliRunner

from branch_client import cli
from branch_client import status as branch_status
from branch_client.sale_entry import parse_items
from branch_client.status import LastRefusal, UnsendableSale
from branch_client.till import core
from shared.models import Refusal

runner = CliRunner()


def test_status_reads_as_typed_fields_from_the_store(stocked, fake_cloud):
    stocked.save_identity(fake_cloud.identity())
    stocked.record_sale(parse_items(["SOAP=2"]))
    info = branch_status.read(stocked)
    assert (info.branch, info.enrolled, info.pending, info.sales_recorded, info.products) == (fake_cloud.branch, True,
                                                                                              1, 1, 4)
    assert info.last_number == "1" and info.total_paisa == 9000 and info.catalog_version == 4
    assert info.last_refusal is None and info.restored is None and info.unsendable == []
    assert not info.online  # never synced


def test_a_refusal_and_an_unsendable_sale_come_back_as_records_not_dicts(stocked, fake_cloud):
    stocked.save_identity(fake_cloud.identity())
    sale = stocked.record_sale(parse_items(["SOAP=1"]))
    stocked.save_refusal(Refusal(at=datetime(2026, 11, 28, 8, tzinfo=timezone.utc), code="cloned_till",
                                 reason="two PCs sync as dhaka-1", seq=1, sale_id=sale.sale_id))
    stocked.save_unsendable([{"seq": 1, "sale_id": sale.sale_id, "size": 70000, "reason": "too large"}])
    info = branch_status.read(stocked)
    assert isinstance(info.last_refusal, LastRefusal)
    assert (info.last_refusal.code, info.last_refusal.number, info.last_refusal.this_till) == ("cloned_till", "1", True)
    assert info.unsendable == [UnsendableSale(seq=1, sale_id=sale.sale_id, size=70000, reason="too large")]


def test_status_json_keeps_exactly_the_keys_the_store_reports(stocked):
    assert set(branch_status.read(stocked).as_json()) == set(stocked.status())


def test_a_key_a_newer_store_adds_is_left_out_rather_than_failing(stocked):
    facts = {**stocked.status(), "shift_open": True}
    assert branch_status.from_facts(facts) == branch_status.read(stocked)


def test_the_cli_and_the_till_show_the_same_status(stocked, fake_cloud):
    stocked.save_identity(fake_cloud.identity())
    stocked.record_sale(parse_items(["SOAP=1"]))
    stocked.record_error("cannot reach the cloud", datetime(2026, 11, 28, 9, tzinfo=timezone.utc))
    printed = json.loads(runner.invoke(cli.app, ["--home", str(stocked.home), "status", "--json"]).stdout)
    shown = core.status_view(branch_status.read(stocked), syncing=False, sync_note=None)
    assert {k: printed[k] for k in ("branch", "enrolled", "pending", "last_error", "products")} == \
        {k: shown[k] for k in ("branch", "enrolled", "pending", "last_error", "products")}
