"""The `branchsync` command line, through typer's CliRunner on real data homes.

Offline commands run as they are. Where a command talks to the cloud, the fake cloud is
plugged in at the client seam (`cli.client_options`), or the cloud is simply not there.
"""

import subprocess
import json
from datetime import datetime, timezone

import pytest
from filelock import FileLock
from typer.testing import CliRunner

from branch_client import cli
from branch_client.identity import Identity
from branch_client.sale_entry import parse_items
from branch_client.store import Store
from shared.enrollment import encode_code
from shared.models import Refusal
from tests.branch_client.conftest import enroll_out_of_reach
from tests.branch_client.fakes import bulky_products, bulky_sale, entry, insert_as_an_older_version, page, product

runner = CliRunner()


def run(home, *args, env=None):
    return runner.invoke(cli.app, ["--home", str(home), *args], env={"COLUMNS": "200", **(env or {})})


@pytest.fixture
def shop(home):
    """An enrolled data home (its cloud out of reach) with a small catalog, seeded directly in the store."""
    with Store(home) as store:
        store.save_identity(Identity("dhaka-1", "http://127.0.0.1:9", "k" * 43))
        store.apply_catalog_page(page(
            entry(1, product("RICE-5KG", 42000, "চাল ৫ কেজি", barcode="8901234567890", unit="bag")),
            entry(2, product("DAL-1KG", 14050, "মসুর ডাল ১ কেজি", unit="kg")),
            entry(3, product("SOAP", 4500, "Lux Soap Bar")),
            entry(4, product("ATTA", 6500, "আটা (খোলা)", barcode="2012345000001", unit="kg")),
        ), applied_through=0)
    return home


def _enroll_directly(home, fake_cloud):
    with Store(home) as store:
        store.save_identity(fake_cloud.identity())


def _status(home) -> dict:
    result = run(home, "status", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- sales -----------------------------------------------------------------------------------------


def test_sale_add_records_offline_and_prints_the_number_and_total_in_taka(shop):
    result = run(shop, "sale", "add", "RICE-5KG=2", "DAL-1KG=1.5@120.50:end of day", "--payment", "card")
    assert result.exit_code == 0, result.output
    assert "sale 1 recorded: total 1020.75 taka, 2 lines, paid by card" in result.stdout
    assert _status(shop)["pending"] == 1


def test_a_bad_item_exits_2_with_one_line_and_stores_nothing(shop):
    result = run(shop, "sale", "add", "RICE-5KG=2", "RICE-5KG=1@12.345")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "RICE-5KG=1@12.345" in result.stderr
    assert _status(shop)["sales_recorded"] == 0


def test_a_sale_too_large_to_send_exits_2_saying_to_split_it_and_stores_nothing(shop):
    bulky = bulky_products()
    with Store(shop) as store:
        store.apply_catalog_page(page(*[entry(4 + i, p) for i, p in enumerate(bulky)]), applied_through=0)
    result = run(shop, "sale", "add", *[f"{p.sku}=1" for p in bulky])
    assert result.exit_code == 2, result.output
    assert "too large to send" in result.stderr and "split it into two sales" in result.stderr
    assert _status(shop)["sales_recorded"] == 0
    assert run(shop, "sale", "add", *[f"{p.sku}=1" for p in bulky[:100]]).exit_code == 0  # half of it is fine


@pytest.mark.parametrize("item", ["SOAP=1@1e10000000", "SOAP=1e10000000", "SOAP=1@1E2"])
def test_a_price_or_quantity_in_scientific_notation_exits_2_saying_to_write_plain_digits(shop, item):
    result = run(shop, "sale", "add", item)
    assert result.exit_code == 2, result.output
    assert item in result.stderr and "scientific notation" in result.stderr and "plain digits" in result.stderr
    assert _status(shop)["sales_recorded"] == 0


@pytest.mark.parametrize("args", [["NOPE=1"], ["SOAP=0"], ["SOAP=1", "--payment", "cheque"]])
def test_unknown_products_zero_quantities_and_unknown_payments_are_bad_input(shop, args):
    result = run(shop, "sale", "add", *args)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert _status(shop)["sales_recorded"] == 0


def test_sale_add_takes_a_barcode_a_sku_in_any_case_and_a_scale_label(shop):
    result = run(shop, "sale", "add", "8901234567890=1", "soap=2", "2012345012509")
    assert result.exit_code == 0, result.output
    with Store(shop) as store:
        lines = store.get_sale(1).sale.lines
    assert [(ln.sku, str(ln.qty)) for ln in lines] == [("RICE-5KG", "1"), ("SOAP", "2"), ("ATTA", "1.25")]


def test_an_unknown_item_suggests_the_closest_matches(shop):
    result = run(shop, "sale", "add", "dal=1")
    assert result.exit_code == 2 and "did you mean DAL-1KG (মসুর ডাল ১ কেজি)?" in result.stderr


@pytest.mark.parametrize("item, says", [
    ("DAL-1KG=1,5", "write 1.5 with a dot"),
    ("SOAP=1e3", "scientific notation"),
    ("SOAP=1.5", "sold by the piece (pcs); give a whole number"),
    ("DAL-1KG=1.2345", "more than 3 decimals"),
])
def test_quantities_follow_the_products_unit_and_plain_digits(shop, item, says):
    result = run(shop, "sale", "add", item)
    assert result.exit_code == 2 and says in result.stderr, result.output
    assert _status(shop)["sales_recorded"] == 0


def test_a_very_large_quantity_needs_yes(shop):
    refused = run(shop, "sale", "add", "SOAP=500")
    assert refused.exit_code == 2 and "is a lot" in refused.stderr and "--yes" in refused.stderr
    assert run(shop, "sale", "add", "SOAP=500", "--yes").exit_code == 0
    assert _status(shop)["sales_recorded"] == 1


def test_sale_add_on_a_till_not_enrolled_says_so_and_exits_3(home):
    result = run(home, "sale", "add", "SOAP=1")
    assert result.exit_code == 3 and "not enrolled" in result.stderr and "branchsync enroll CODE" in result.stderr
    assert "catalog" not in result.stderr.split("enroll")[0].replace("no catalog to sell from", "")


def test_sale_list_says_which_time_zone_its_times_are_in(shop):
    with Store(shop) as store:
        store.record_sale(parse_items(["SOAP=1"]), now=datetime(2026, 11, 28, 18, 30, tzinfo=timezone.utc))
    assert "Time (Asia/Dhaka)" in run(shop, "sale", "list").stdout
    assert "2026-11-29 00:30:00" in run(shop, "sale", "list").stdout  # UTC+6
    assert run(shop, "config", "set", "time_zone", "UTC").exit_code == 0
    listed = run(shop, "sale", "list").stdout
    assert "Time (UTC)" in listed and "2026-11-28 18:30:00" in listed


def test_config_sets_the_receipt_header_and_refuses_what_it_cannot_use(shop):
    assert run(shop, "config", "set", "shop.name", "Shwapno Gulshan").stdout.strip() == "shop.name = Shwapno Gulshan"
    assert run(shop, "config", "set", "shop.bin", "000123456-0101").exit_code == 0
    shown = run(shop, "config", "show").stdout
    assert "Shwapno Gulshan" in shown and "000123456-0101" in shown and "barcode.prefixes" in shown
    bad = run(shop, "config", "set", "time_zone", "Mars/Olympus")
    assert bad.exit_code == 2 and "not known" in bad.stderr
    assert run(shop, "config", "set", "barcode.prefixes", "19").exit_code == 2
    assert run(shop, "config", "unset", "shop.name").stdout.strip() == "shop.name = (not set)"


def test_cashier_add_asks_for_the_pin_twice_and_never_prints_or_logs_it(shop):
    result = runner.invoke(cli.app, ["--home", str(shop), "cashier", "add", "Rahim"], input="4821\n4821\n")
    assert result.exit_code == 0, result.output
    assert "cashier Rahim added" in result.stdout and "4821" not in result.output
    with Store(shop) as store:
        assert store.sign_in("Rahim", "4821") == "Rahim"
    short = runner.invoke(cli.app, ["--home", str(shop), "cashier", "add", "Karim"], input="12\n12\n")
    assert short.exit_code == 2 and "4 to 8 digits" in short.stderr and "12" not in short.stderr.replace("to 8", "")
    assert "Rahim" in run(shop, "cashier", "list").stdout
    logs = "".join(p.read_text(encoding="utf-8") for p in (shop / "logs").glob("*.log*"))
    assert "4821" not in logs


def test_sale_void_records_a_void_event(shop):
    run(shop, "sale", "add", "SOAP=2")
    result = run(shop, "sale", "void", "1")
    assert result.exit_code == 0 and "sale 1 voided by number 2: -90.00 taka" in result.stdout
    again = run(shop, "sale", "void", "1")
    assert again.exit_code == 2 and "already voided" in again.stderr


def test_a_void_reason_given_at_the_command_line_is_kept_and_listed_like_the_tills(shop):
    run(shop, "sale", "add", "SOAP=2")
    assert run(shop, "sale", "void", "1", "--reason", "  wrong   item ").exit_code == 0
    with Store(shop) as store:
        assert store.get_sale(2).reason == "wrong item"
    assert "void of 1: wrong item" in run(shop, "sale", "list").stdout


def test_sale_list_shows_recent_events_with_their_sync_state(shop):
    run(shop, "sale", "add", "SOAP=2")
    run(shop, "sale", "add", "RICE-5KG=1")
    run(shop, "sale", "void", "1")
    result = run(shop, "sale", "list", "--limit", "2")
    assert result.exit_code == 0
    assert "void of 1" in result.stdout and "420.00" in result.stdout and "pending" in result.stdout
    assert "90.00" not in result.stdout.replace("-90.00", "")  # sale 1 itself is beyond the limit


# --- catalog and status ------------------------------------------------------------------------------


def test_catalog_search_finds_by_bangla_name_sku_or_barcode_with_prices_in_taka(shop):
    by_name = run(shop, "catalog", "search", "ডাল")
    assert by_name.exit_code == 0 and "DAL-1KG" in by_name.stdout and "140.50" in by_name.stdout
    assert "RICE-5KG" in run(shop, "catalog", "search", "8901234").stdout
    assert "Lux Soap Bar" in run(shop, "catalog", "search", "soap").stdout
    assert "no product matches" in run(shop, "catalog", "search", "zzz").stdout


def test_status_json_has_the_stable_keys_and_never_the_secret(shop, fake_cloud):
    _enroll_directly(shop, fake_cloud)
    run(shop, "sale", "add", "SOAP=1")
    result = run(shop, "status", "--json")
    info = json.loads(result.stdout)
    assert {"pending", "applied_through", "catalog_version", "last_pull", "last_push", "last_error"} <= set(info)
    assert (info["pending"], info["catalog_version"], info["branch"]) == (1, 4, fake_cloud.branch)
    assert fake_cloud.secret not in result.output
    assert fake_cloud.secret not in run(shop, "status").output


def test_the_home_can_come_from_the_environment(shop):
    result = runner.invoke(cli.app, ["sale", "add", "SOAP=1"], env={"BRANCHSYNC_HOME": str(shop)})
    assert result.exit_code == 0 and "sale 1 recorded" in result.stdout


def test_version_is_printed():
    result = runner.invoke(cli.app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("branchsync ")


# --- enroll ------------------------------------------------------------------------------------------


def test_enroll_stores_the_identity_from_the_code_and_refuses_to_repeat_without_force(home, plugged):
    plugged.enroll_tokens.update({"a" * 24, "b" * 24})
    result = run(home, "enroll", encode_code("https://cloud.example", "a" * 24))
    assert result.exit_code == 0 and f"enrolled as branch {plugged.branch}" in result.stdout
    assert plugged.secret not in result.output
    with Store(home) as store:
        assert store.identity() == Identity(plugged.branch, "https://cloud.example", plugged.secret)

    again = run(home, "enroll", encode_code("https://cloud.example", "b" * 24))
    assert again.exit_code == 2 and "--force" in again.stderr
    assert run(home, "enroll", "--force", encode_code("https://cloud.example", "b" * 24)).exit_code == 0


def test_enroll_pulls_the_catalog_at_once_so_the_till_sells_before_any_sync(home, plugged):
    plugged.put(product("SOAP", 4500, "Lux Soap Bar"), product("DAL-1KG", 14050, "মসুর ডাল ১ কেজি", unit="kg"))
    plugged.enroll_tokens.add("a" * 24)
    result = run(home, "enroll", encode_code("https://cloud.example", "a" * 24))
    assert result.exit_code == 0, result.output
    assert "catalog pulled: version 2" in result.stdout and "ready to sell" in result.stdout
    assert plugged.messages == []  # a pull only: nothing was there to push
    assert run(home, "sale", "add", "SOAP=2").exit_code == 0
    assert _status(home)["products"] == 2


def test_enrollment_stands_when_the_catalog_pull_fails_and_says_the_catalog_comes_with_the_first_sync(home, plugged):
    plugged.put(product("SOAP", 4500, "Lux Soap Bar"))
    plugged.enroll_tokens.add("a" * 24)
    plugged.pull_failures_after = 0  # the line drops right after the enrollment answer
    result = run(home, "enroll", encode_code("https://cloud.example", "a" * 24))
    assert result.exit_code == 0, result.output
    assert f"enrolled as branch {plugged.branch}" in result.stdout
    assert "catalog will come with the first sync" in result.stderr
    assert _status(home)["enrolled"] is True and _status(home)["products"] == 0
    plugged.pull_failures_after = None
    assert run(home, "sync").exit_code == 0 and _status(home)["products"] == 1


def test_enroll_with_no_catalog_only_enrolls(home, plugged):
    plugged.put(product("SOAP", 4500, "Lux Soap Bar"))
    plugged.enroll_tokens.add("a" * 24)
    result = run(home, "enroll", "--no-catalog", encode_code("https://cloud.example", "a" * 24))
    assert result.exit_code == 0 and "comes with the first sync" in result.stdout
    assert plugged.pulls == [] and _status(home)["enrolled"] is True


@pytest.mark.parametrize("code", ["BSE1.@@@", "BSE.eyJ1cmwiOiJodHRwczovL3gifQ",
                                  encode_code("https://cloud.example", "a" * 24)[:-9]])
def test_a_mistyped_enrollment_code_says_to_type_it_again_not_to_ask_head_office(home, code):
    result = run(home, "enroll", code)
    assert result.exit_code == 2, result.output
    assert "looks mistyped" in result.stderr and "type it again" in result.stderr
    assert "new code" not in result.stderr


def test_an_enrollment_code_of_deeply_nested_json_is_refused_as_mistyped(home):
    import base64

    result = run(home, "enroll", "BSE1." + base64.urlsafe_b64encode(b"[" * 1500).rstrip(b"=").decode())
    assert result.exit_code == 2 and "looks mistyped" in result.stderr


def test_a_code_the_cloud_refuses_exits_2_not_the_exit_code_that_means_sync_again_later(home, plugged):
    result = run(home, "enroll", encode_code("https://cloud.example", "c" * 24))
    assert result.exit_code == cli.EXIT_BAD_INPUT != cli.EXIT_FAILURE
    assert "enrollment_invalid" in result.stderr and "new code" in result.stderr
    assert _status(home)["enrolled"] is False


# --- sync --------------------------------------------------------------------------------------------


def test_sync_without_enrollment_exits_3(home):
    result = run(home, "sync")
    assert result.exit_code == 3 and "branchsync enroll CODE" in result.stderr


def test_sync_pulls_and_pushes_and_exits_0(shop, plugged):
    _enroll_directly(shop, plugged)
    plugged.put(product("RICE-5KG", 42000), product("DAL-1KG", 14050), product("SOAP", 4500),
                product("ATTA", 6500, unit="kg"))  # versions 1-4, as seeded
    plugged.put(product("SALT", 2500))
    run(shop, "sale", "add", "SOAP=2")
    result = run(shop, "sync")
    assert result.exit_code == 0, result.output
    assert "pushed 1 sales in 1 messages" in result.stdout and sorted(plugged.applied) == [1]
    assert "SALT" in run(shop, "catalog", "search", "salt").stdout


def test_a_sale_an_older_version_recorded_too_large_to_send_never_blocks_the_ones_behind_it(shop, plugged):
    _enroll_directly(shop, plugged)
    plugged.put(product("RICE-5KG", 42000), product("DAL-1KG", 14050), product("SOAP", 4500))
    run(shop, "sale", "add", "SOAP=1")
    with Store(shop) as store:
        insert_as_an_older_version(store, bulky_sale(2))
    run(shop, "sale", "add", "SOAP=2")

    result = run(shop, "sync")
    assert result.exit_code == 1 and "sale 2 (200 items)" in result.stderr and "cannot be sent" in result.stderr
    assert sorted(plugged.applied) == [1, 3]
    assert run(shop, "sync").exit_code == 1  # it keeps saying so, and keeps pushing the others
    info = _status(shop)
    assert [u["seq"] for u in info["unsendable"]] == [2]
    [waiting] = [s for s in info["stuck"] if s["seq"] == 2]
    assert waiting["state"] == "not sendable" and "tell head office" in waiting["next"]
    assert "cannot be sent" in run(shop, "status").stdout
    checked = run(shop, "doctor", "--json")
    [finding] = [f for f in json.loads(checked.stdout)["findings"] if f["check"] == "sales too large to send"]
    assert checked.exit_code == 1 and finding["level"] == "fail" and "Call head office" in finding["fix"]


def test_sync_with_the_cloud_out_of_reach_exits_1_with_one_line_and_keeps_the_sales(shop, monkeypatch):
    enroll_out_of_reach(shop, monkeypatch)
    run(shop, "sale", "add", "SOAP=1")
    result = run(shop, "sync")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "cannot reach the cloud" in result.stderr
    info = _status(shop)
    assert info["pending"] == 1 and "cannot reach the cloud" in info["last_error"]


def test_a_sync_of_a_revoked_till_exits_5_saying_head_office_revoked_it_and_keeps_the_sales(shop, plugged):
    _enroll_directly(shop, plugged)
    plugged.revoked = True
    run(shop, "sale", "add", "SOAP=1")
    result = run(shop, "sync")
    assert result.exit_code == 5 and result.stderr.count("\n") == 1
    assert "head office revoked this till" in result.stderr
    assert _status(shop)["pending"] == 1


def test_a_sync_that_receives_a_rotated_secret_never_prints_it(shop, plugged):
    _enroll_directly(shop, plugged)
    plugged.put(product("RICE-5KG", 42000), product("DAL-1KG", 14050), product("SOAP", 4500))
    new = plugged.rotate()
    run(shop, "sale", "add", "SOAP=1")  # pushed after the pull: signed with the new secret, which promotes it
    result = run(shop, "sync")
    assert result.exit_code == 0, result.output
    assert new not in result.output and plugged.secret == new
    assert new not in (shop / "logs" / "branchsync.log").read_text()


def test_a_second_sync_exits_4_at_once(shop, fake_cloud):
    _enroll_directly(shop, fake_cloud)
    with FileLock(shop / "sync.lock", timeout=0):
        result = run(shop, "sync")
    assert result.exit_code == 4 and "already running" in result.stderr


def _refused(plugged, seq: int, sale_id: str) -> None:
    plugged.refusal = Refusal(at=datetime.now(timezone.utc), code="cloned_till", seq=seq, sale_id=sale_id,
                              reason=f"sale {seq} of branch {plugged.branch} arrived with other contents")


def test_status_says_the_cloud_refused_this_till_s_sale_and_what_to_do(shop, plugged):
    _enroll_directly(shop, plugged)
    run(shop, "sale", "add", "SOAP=1")
    with Store(shop) as store:
        mine = store.get_sale(1).sale.sale_id
    _refused(plugged, 1, mine)
    # No waiting for an ack: the refusal is written as the cloud writes it, but the sale itself was
    # applied here, and a refused sale is never acknowledged.
    assert run(shop, "sync", "--ack-wait", "0").exit_code == 0
    run(shop, "sale", "add", "SOAP=2")
    info = _status(shop)
    assert info["last_refusal"]["code"] == "cloned_till" and info["last_refusal"]["this_till"] is True
    assert info["last_refusal"]["says"].startswith("the cloud refused sales from this till")
    assert "refused sales from this till" in info["stuck"][0]["why"] and "enroll --force" in info["stuck"][0]["next"]
    human = run(shop, "status").stdout
    assert "refused by the cloud" in human and "What to do:" in human


def test_status_tells_the_real_till_that_another_pc_s_sale_was_refused(shop, plugged):
    _enroll_directly(shop, plugged)
    run(shop, "sale", "add", "SOAP=1")
    _refused(plugged, 1, "f" * 32)  # the copy's sale under the same number
    run(shop, "sync")
    info = _status(shop)
    assert info["last_refusal"]["this_till"] is False
    assert "another PC syncing as this branch" in info["last_refusal"]["says"]
    assert all("refused" not in e["why"] for e in info["stuck"])  # this till's sale is the one counted


def test_a_refusal_head_office_dealt_with_is_no_longer_shown_after_the_next_sync(shop, plugged):
    _enroll_directly(shop, plugged)
    run(shop, "sale", "add", "SOAP=1")
    _refused(plugged, 1, "f" * 32)
    run(shop, "sync")
    plugged.refusal = None
    run(shop, "sync")
    assert _status(shop)["last_refusal"] is None
    assert "refused by the cloud" not in run(shop, "status").stdout


def test_status_explains_each_waiting_sale_and_what_happens_next(shop):
    run(shop, "sale", "add", "SOAP=1")
    info = _status(shop)
    [stuck] = info["stuck"]
    assert stuck["seq"] == 1 and stuck["state"] == "pending" and "next sync" in stuck["next"]
    human = run(shop, "status").stdout
    assert "sale 1 (pending)" in human and "next:" in human


def test_enroll_restricts_the_data_folder_before_the_secret_is_written(home, plugged, monkeypatch):
    # icacls cannot run here: the recorder stands in for it at the runner seam, as on Windows.
    from branch_client import permissions

    seen = []

    def record(command):
        seen.append((command, (home / "secret").exists()))
        if command[0] == "whoami":
            return subprocess.CompletedProcess(command, 0, '"shop-pc\\cashier","S-1-5-21-1-2-3-1013"', "")
        return subprocess.CompletedProcess(command, 0, "", "")

    real = permissions.secure_home
    monkeypatch.setattr(permissions, "secure_home", lambda home_dir: real(home_dir, run=record, platform="win32"))
    plugged.enroll_tokens.add("a" * 24)
    result = run(home, "enroll", encode_code("https://cloud.example", "a" * 24))
    assert result.exit_code == 0, result.output
    grant = permissions.grant_command(str(home), "S-1-5-21-1-2-3-1013")
    assert (grant, False) in seen  # granted while no secret was on disk yet
    assert (home / "secret").exists()


def test_enroll_still_succeeds_and_warns_when_the_folder_cannot_be_restricted(home, plugged, monkeypatch):
    from branch_client import permissions

    monkeypatch.setattr(permissions, "secure_home", lambda home_dir: "icacls refused: Access is denied.")
    plugged.enroll_tokens.add("a" * 24)
    result = run(home, "enroll", encode_code("https://cloud.example", "a" * 24))
    assert result.exit_code == 0
    assert "could not restrict who may open" in result.stderr and "branchsync doctor" in result.stderr


# --- the complete record at the command line ----------------------------------------------------------------


def test_sale_add_splits_payments_gives_change_and_takes_a_sale_discount_with_its_reason(shop):
    result = run(shop, "sale", "add", "RICE-5KG=1", "SOAP=2", "--discount", "10%:loyal customer",
                 "--pay", "bkash:9C7D2XK41Q=100", "--pay", "cash=500", "--cashier", "Rahim")
    assert result.exit_code == 0, result.output
    assert "total 459.00 taka" in result.stdout and "bkash 100.00 + cash 359.00" in result.stdout
    assert "change 141.00 taka" in result.stdout
    with Store(shop) as store:
        sale = store.get_sale("1").sale
    assert sale.cashier == "Rahim" and sale.discount.reason == "loyal customer"
    assert [(p.method, p.amount, p.txn_id) for p in sale.payments] == [("mobile", 10000, "9C7D2XK41Q"),
                                                                       ("cash", 35900, None)]


def test_without_cashier_a_sale_names_the_environments_cashier_or_manager(shop):
    assert run(shop, "sale", "add", "SOAP=1").exit_code == 0
    assert run(shop, "sale", "add", "SOAP=1", env={"BRANCHSYNC_CASHIER": "Karim"}).exit_code == 0
    with Store(shop) as store:
        assert [store.get_sale(n).sale.cashier for n in ("1", "2")] == ["manager", "Karim"]


@pytest.mark.parametrize("args, says", [
    (["--pay", "card=100"], "add up exactly"),
    (["--pay", "bkash=420"], "transaction id"),
    (["--pay", "cash=100"], "less than"),
    (["--pay", "card", "--payment", "cash"], "not both"),
    (["--payment", "mobile"], "name the wallet"),
    (["--discount", "10%"], "PERCENT%:REASON"),
])
def test_payments_or_discounts_that_do_not_work_exit_2_saying_why_and_store_nothing(shop, args, says):
    result = run(shop, "sale", "add", "RICE-5KG=1", *args)
    assert result.exit_code == 2 and says in result.stderr, result.output
    assert _status(shop)["sales_recorded"] == 0


def test_sale_refund_returns_lines_and_sale_show_lists_payments_discounts_and_what_came_back(shop):
    run(shop, "sale", "add", "SOAP=3", "RICE-5KG=1@400:torn bag", "--pay", "card")
    result = run(shop, "sale", "refund", "1", "1=2", "--pay", "card", "--reason", "wrong scent")
    assert result.exit_code == 0, result.output
    assert "sale 1 refunded by number 2: 90.00 taka back by card" in result.stdout
    bad = run(shop, "sale", "refund", "1", "1=2")
    assert bad.exit_code == 2 and "not yet returned" in bad.stderr
    assert run(shop, "sale", "refund", "1", "one=2").exit_code == 2
    shown = run(shop, "sale", "show", "1")
    assert shown.exit_code == 0, shown.output
    assert "400.00 (torn bag)" in shown.stdout and "refunded by: 2" in shown.stdout and "paid: card 535.00" in shown.stdout
    listed = run(shop, "sale", "list").stdout
    assert "refund of 1: wrong scent" in listed
    assert run(shop, "sale", "void", "1").exit_code == 2  # refunded in part: refund the rest instead


def test_a_shift_opens_with_a_float_and_closing_prints_the_z_report_with_the_difference(shop):
    assert run(shop, "shift", "open", "--float", "2000").exit_code == 0
    run(shop, "sale", "add", "RICE-5KG=1", "--pay", "cash=500")
    run(shop, "sale", "add", "SOAP=1", "--pay", "card")
    result = run(shop, "shift", "close", "--counted", "2419.50")
    assert result.exit_code == 0, result.output
    assert "Z report" in result.stdout and "expected cash" in result.stdout
    assert "2420.00" in result.stdout and "short" in result.stdout and "-0.50" in result.stdout
    assert run(shop, "shift", "close", "--counted", "0").exit_code == 2  # no shift open now
    assert run(shop, "shift", "open", "--float", "lots").exit_code == 2
    with Store(shop) as store:
        close = store.recent_sales(1)[0].sale
    again = run(shop, "shift", "z", close.shift.shift_id)
    assert again.exit_code == 0 and "2420.00" in again.stdout
