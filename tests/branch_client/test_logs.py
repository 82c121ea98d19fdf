"""The rotating log in the data home: one line per sync with its figures, every error with its reason, no secrets."""

import socket

import pytest
from typer.testing import CliRunner

from branch_client import cli, logs
from branch_client.identity import Identity
from branch_client.store import Store
from tests.branch_client.fakes import entry, page, product

runner = CliRunner()


def run(home, *args):
    return runner.invoke(cli.app, ["--home", str(home), *args], env={"COLUMNS": "200"})


def log_lines(home) -> list[str]:
    logs.close_log()  # flush and release the file, as the end of the process would
    return logs.log_path(home).read_text("utf-8").splitlines()


@pytest.fixture
def shop(home):
    with Store(home) as store:
        store.apply_catalog_page(page(entry(1, product("SOAP", 4500, "Lux Soap Bar"))), applied_through=0)
    return home


def test_a_sync_leaves_one_line_with_its_figures_and_no_secret(shop, plugged):
    with Store(shop) as store:
        store.save_identity(plugged.identity())
    plugged.put(product("SOAP", 4500, "Lux Soap Bar"), product("SALT", 2500))
    run(shop, "sale", "add", "SOAP=2")
    run(shop, "sale", "add", "SOAP=1")
    assert run(shop, "sync").exit_code == 0
    assert run(shop, "sync").exit_code == 0  # the second pull brings the acknowledgement

    lines = [line for line in log_lines(shop) if "sync ok" in line]
    assert len(lines) == 2
    first, second = lines
    assert "pulled 1 catalog entries in 1 pages (catalog version 2)" in first  # version 1 was seeded
    assert "pushed 2 sales in 1 messages" in first and "duration " in first and first.endswith("s")
    assert "applied_through 2, pending 0" in second and "pushed 0 sales" in second
    assert " INFO " in first and first[:4].isdigit() and first.split()[0].endswith("Z")
    assert plugged.secret not in logs.log_path(shop).read_text("utf-8")


def test_a_failed_sync_logs_its_reason_and_code_and_no_secret(shop, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Store(shop) as store:
        store.save_identity(Identity("dhaka-1", f"http://127.0.0.1:{port}", "k" * 43))
    monkeypatch.setattr(cli, "client_options", {"backoff": 0})
    assert run(shop, "sync").exit_code == 1
    (line,) = [line for line in log_lines(shop) if " ERROR " in line]
    assert "sync failed after" in line and "[cloud_unreachable]" in line and "cannot reach the cloud" in line
    assert "k" * 43 not in logs.log_path(shop).read_text("utf-8")


def test_bad_input_and_a_missing_enrollment_are_logged_with_their_reason(shop):
    assert run(shop, "sale", "void", "NOPE").exit_code == 2
    assert run(shop, "sync").exit_code == 3
    assert run(shop, "sale", "add", "SOAP=1").exit_code == 3
    lines = log_lines(shop)
    assert any("sale void failed" in line and "[bad_sale_input]" in line and "NOPE" in line for line in lines)
    assert any("sync failed" in line and "[not_enrolled]" in line for line in lines)
    assert any("sale add failed" in line and "[not_enrolled]" in line for line in lines)


def test_the_log_rotates_and_keeps_a_bounded_number_of_files(tmp_path):
    log = logs.open_log(tmp_path, max_bytes=2_000, backups=3)
    for i in range(500):
        log.info(f"sync ok: line {i:04d} " + "x" * 40)
    logs.close_log()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["branchsync.log", "branchsync.log.1", "branchsync.log.2", "branchsync.log.3"]
    assert all((tmp_path / "logs" / f).stat().st_size <= 2_000 for f in files)
    assert "line 0499" in (tmp_path / "logs" / "branchsync.log").read_text("utf-8")


def test_the_defaults_are_a_few_megabytes_times_a_few_files():
    assert 1 << 20 <= logs.LOG_BYTES <= 10 << 20 and 2 <= logs.LOG_BACKUPS <= 10


@pytest.mark.parametrize("text, hidden", [
    ("queue refused https://q.example/sales?sv=2024&sig=AbC%2Bdef&se=x", "AbC%2Bdef"),
    ('header X-Branchsync-Signature=deadbeef0123 sent', "deadbeef0123"),
    ('body {"secret": "s3cr3tvalue"}', "s3cr3tvalue"),
])
def test_signatures_and_secrets_are_masked(text, hidden):
    masked = logs.redact(text)
    assert hidden not in masked and "***" in masked


def test_a_known_secret_is_masked_wherever_it_appears(tmp_path):
    log = logs.open_log(tmp_path)
    logs.forget_secret(log, "topsecretvalue")
    log.error("something echoed topsecretvalue back")
    assert "topsecretvalue" not in "\n".join(log_lines(tmp_path))


def test_an_unwritable_log_never_breaks_a_command(tmp_path):
    (tmp_path / "logs").write_text("a file where the log folder should be")
    log = logs.open_log(tmp_path)
    log.error("this line goes nowhere")
    logs.close_log()
