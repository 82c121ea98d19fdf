"""`branchsync doctor`: the pure checks over gathered facts, the gathering, and one run against the real local cloud."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from branch_client import cli, doctor
from branch_client.cloud_client import CloudClient
from branch_client.doctor import Facts, Level, PullOutcome
from branch_client.identity import Identity
from branch_client.sale_entry import parse_items
from branch_client.status import LastRefusal, RestoreRecord, UnsendableSale
from branch_client.store import Store
from tests.branch_client.fakes import entry, page, product

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
TILL_SID = "S-1-5-21-3623811015-3361044348-30300820-1013"
SECURED_ACL = f"D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;{TILL_SID})"
runner = CliRunner()


def healthy(**changes) -> Facts:
    facts = Facts(home="/till", now=NOW, home_writable=True, db_exists=True, integrity=["ok"], enrolled=True,
                  branch="dhaka-1", cloud_url="https://cloud.example",
                  pull=PullOutcome(True, server_time=NOW, sent_at=NOW, received_at=NOW + timedelta(seconds=1)),
                  task="present", last_sync_ok=NOW - timedelta(minutes=10), pending=0, free_bytes=50 * 1024 ** 3,
                  extra={"acl": {"applies": True, "account": "shop-pc\\cashier", "sid": TILL_SID, "sddl": SECURED_ACL,
                                 "problem": None},
                         "files_writable": {"branchsync.db": None, "branchsync.db-wal": None}})
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def level(check, facts) -> Level:
    return check(facts).level


def test_a_healthy_till_needs_no_action():
    findings = doctor.diagnose(healthy())
    assert [f.level for f in findings] == [Level.OK] * len(doctor.CHECKS)
    assert not doctor.needs_action(findings)


def test_every_failure_carries_a_fix_in_plain_words():
    broken = healthy(home_writable=False, home_problem="Permission denied", integrity=["row 3 missing from index"],
                     pull=PullOutcome(False, "cloud_unreachable", "cannot reach the cloud"), task="missing",
                     last_sync_ok=NOW - timedelta(days=3), pending=5, oldest_pending=NOW - timedelta(days=2),
                     free_bytes=10 * 1024 ** 2)
    findings = doctor.diagnose(broken)
    failed = [f for f in findings if f.level == Level.FAIL]
    assert {f.check for f in failed} == {"data folder writable", "database integrity", "cloud reachable",
                                         "scheduled sync task", "last successful sync", "pending sales",
                                         "free disk space"}
    assert all(f.fix and len(f.fix) > 20 for f in failed)
    assert doctor.needs_action(findings)


def test_an_unwritable_folder_fails_and_names_the_folder():
    finding = doctor.check_home(healthy(home_writable=False, home_problem="Permission denied"))
    assert finding.level == Level.FAIL and "/till" in finding.found and "/till" in finding.fix


def test_database_integrity():
    assert level(doctor.check_database, healthy()) == Level.OK
    assert level(doctor.check_database, healthy(integrity=["*** in database main ***", "page 4 never used"])) == Level.FAIL
    assert level(doctor.check_database, healthy(integrity=None, integrity_problem="locked")) == Level.FAIL
    assert level(doctor.check_database, healthy(db_exists=False, integrity=None)) == Level.WARN


def test_enrollment_and_credentials():
    assert level(doctor.check_enrollment, healthy(enrolled=False, pull=None)) == Level.FAIL
    refused = doctor.check_enrollment(healthy(pull=PullOutcome(False, "bad_signature", "signature does not match")))
    assert refused.level == Level.FAIL and "enroll CODE --force" in refused.fix
    # Unreachable cloud: the credentials are unconfirmed, which the cloud check reports.
    assert level(doctor.check_enrollment, healthy(pull=PullOutcome(False, "cloud_unreachable", "down"))) == Level.WARN
    assert level(doctor.check_cloud, healthy(pull=PullOutcome(False, "cloud_unreachable", "down"))) == Level.FAIL
    assert level(doctor.check_cloud, healthy(pull=PullOutcome(False, "bad_signature", "no"))) == Level.OK
    assert level(doctor.check_cloud, healthy(enrolled=False, pull=None)) == Level.NA


def test_a_revoked_till_fails_enrollment_saying_to_call_head_office_and_the_cloud_counts_as_reachable():
    facts = healthy(pull=PullOutcome(False, "branch_revoked", "head office revoked this till (branch dhaka-1)"))
    finding = doctor.check_enrollment(facts)
    assert finding.level == Level.FAIL and "revoked this till" in finding.found and "head office" in finding.fix
    assert "enroll" not in finding.fix  # a new code for this name would not help
    assert level(doctor.check_cloud, facts) == Level.OK


@pytest.mark.parametrize("skew_seconds, expected", [(0, Level.OK), (-30, Level.OK), (90, Level.WARN),
                                                    (-200, Level.WARN), (301, Level.FAIL), (-3600, Level.FAIL)])
def test_clock_skew_is_measured_against_the_clouds_server_time(skew_seconds, expected):
    # The PC's clock reads NOW at the middle of the call; the cloud said NOW - skew.
    pull = PullOutcome(True, server_time=NOW - timedelta(seconds=skew_seconds),
                       sent_at=NOW - timedelta(seconds=1), received_at=NOW + timedelta(seconds=1))
    finding = doctor.check_clock(healthy(pull=pull))
    assert finding.level == expected
    assert f"{abs(skew_seconds)} s {'ahead of' if skew_seconds > 0 else 'behind'}" in finding.found or skew_seconds == 0


def test_a_pull_refused_for_clock_skew_fails_the_clock_check():
    facts = healthy(pull=PullOutcome(False, "clock_skew", "request time is 2 hours off"))
    assert level(doctor.check_clock, facts) == Level.FAIL
    assert level(doctor.check_cloud, facts) == Level.OK


def test_the_scheduled_task():
    assert level(doctor.check_task, healthy(task="not_applicable")) == Level.NA
    missing = doctor.check_task(healthy(task="missing"))
    assert missing.level == Level.FAIL and "branchsync schedule install" in missing.fix
    assert level(doctor.check_task, healthy(task="unknown", task_problem="timeout")) == Level.WARN


def test_the_task_is_asked_of_schtasks_on_windows_only():
    seen = []

    def fake_run(cmd):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: The system cannot find the file specified.")

    assert doctor.scheduled_task_state("linux", fake_run) == ("not_applicable", None)
    assert doctor.scheduled_task_state("win32", fake_run) == ("missing", None)
    assert seen == [["schtasks", "/Query", "/TN", "branchsync-sync", "/XML"]]
    assert doctor.scheduled_task_state("win32", lambda c: subprocess.CompletedProcess(c, 0, "<Task/>", "")) == ("present", None)


@pytest.mark.parametrize("age, expected", [(timedelta(minutes=5), Level.OK), (timedelta(hours=3), Level.WARN),
                                           (timedelta(days=2), Level.FAIL), (None, Level.WARN)])
def test_the_age_of_the_last_successful_sync(age, expected):
    assert level(doctor.check_last_sync, healthy(last_sync_ok=None if age is None else NOW - age)) == expected


@pytest.mark.parametrize("pending, age, expected", [(0, None, Level.OK), (3, timedelta(minutes=5), Level.OK),
                                                    (3, timedelta(hours=5), Level.WARN),
                                                    (3, timedelta(days=2), Level.FAIL)])
def test_the_pending_backlog(pending, age, expected):
    finding = doctor.check_backlog(healthy(pending=pending, oldest_pending=None if age is None else NOW - age))
    assert finding.level == expected and (pending == 0 or str(pending) in finding.found)


@pytest.mark.parametrize("this_till, expected", [(True, Level.FAIL), (None, Level.FAIL), (False, Level.WARN)])
def test_sales_the_cloud_refused_fail_the_till_that_sent_them_and_warn_the_other(this_till, expected):
    refusal = LastRefusal(at="2026-11-28T08:00:00Z", code="cloned_till", reason="two PCs sync as dhaka-1",
                          seq=4, sale_id="a" * 32, this_till=this_till)
    finding = doctor.check_refusal(healthy(refusal=refusal))
    assert finding.level == expected and "two PCs sync as dhaka-1" in finding.found
    assert finding.fix and ("new branch" in finding.fix or "another PC" in finding.fix)


def test_a_sale_too_large_to_send_fails_and_says_nothing_is_lost_and_whom_to_call():
    assert level(doctor.check_unsendable, healthy()) == Level.OK
    found = doctor.check_unsendable(healthy(unsendable=[UnsendableSale(seq=7, sale_id="a" * 32, size=70000,
                                                                    reason="sale 7 (200 items) cannot be sent")]))
    assert found.level == Level.FAIL and "sale 7 (200 items)" in found.found
    assert "Nothing is lost" in found.fix and "head office" in found.fix


def test_a_backup_that_failed_needs_action_and_old_backups_left_over_are_a_warning():
    assert doctor.check_backups(healthy(newest_backup="branchsync-20261128T080000000000Z-daily.db")).level == Level.OK
    failed = doctor.check_backups(healthy(backup_problem={"at": "2026-11-28T08:00:00+00:00", "what": "backup",
                                                          "reason": "the backup into /till/backups failed (disk full)"}))
    assert failed.level == Level.FAIL and "disk full" in failed.found and "branchsync backup" in failed.fix
    stuck = doctor.check_backups(healthy(backup_problem={"at": "2026-11-28T08:00:00+00:00", "what": "prune",
                                                         "reason": "the old backup x.db could not be deleted"}))
    assert stuck.level == Level.WARN and "was written" in stuck.found and "Close any program" in stuck.fix


@pytest.mark.parametrize("free, expected", [(50 * 1024 ** 3, Level.OK), (500 * 1024 ** 2, Level.WARN),
                                            (50 * 1024 ** 2, Level.FAIL), (None, Level.WARN)])
def test_free_disk_space(free, expected):
    assert level(doctor.check_disk, healthy(free_bytes=free)) == expected


# --- gathering -----------------------------------------------------------------------------------


def _factory(fake_cloud):
    return lambda identity: CloudClient.for_identity(identity, transport=httpx.MockTransport(fake_cloud.handler),
                                                     queue_sender=fake_cloud.send, backoff=0)


def test_gather_on_an_enrolled_store_makes_one_signed_pull_and_stores_nothing(home, fake_cloud):
    with Store(home) as store:
        store.save_identity(fake_cloud.identity())
        store.apply_catalog_page(page(entry(1, product("SOAP", 4500))), applied_through=0)
    fake_cloud.put(product("SOAP", 4500), product("SALT", 2500))
    facts = doctor.gather(home, client_factory=_factory(fake_cloud), task_state=lambda: ("not_applicable", None))
    assert facts.home_writable and facts.integrity == ["ok"] and facts.enrolled
    assert facts.pull.ok and facts.pull.server_time is not None
    assert len(fake_cloud.pulls) == 1
    with Store(home) as store:
        assert store.catalog_cursor() == 1 and store.get_product("SALT") is None
    findings = {f.check: f.level for f in doctor.diagnose(facts)}
    assert findings["enrolled, credentials accepted"] == Level.OK and findings["clock"] == Level.OK


def test_gather_with_credentials_the_cloud_does_not_know(home, fake_cloud):
    with Store(home) as store:
        store.save_identity(Identity(fake_cloud.branch, "https://cloud.example", "x" * 43))
    facts = doctor.gather(home, client_factory=_factory(fake_cloud), task_state=lambda: ("not_applicable", None))
    assert not facts.pull.ok
    assert doctor.check_enrollment(facts).level == Level.FAIL


def test_gather_never_creates_a_database(home):
    facts = doctor.gather(home, client_factory=lambda i: None, task_state=lambda: ("not_applicable", None))
    assert facts.enrolled is False and not (home / "branchsync.db").exists()


def test_a_damaged_database_fails_the_integrity_check(home):
    with Store(home) as store:
        store.apply_catalog_page(page(*[entry(i, product(f"SKU-{i:05d}", 100 + i, "x" * 200))
                                        for i in range(1, 1001)]), applied_through=0)
        store.engine.dispose()
    db = home / "branchsync.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db.read_bytes())
    for offset in range(8 * 4096, len(data) - 4096, 4096 * 7):  # scribble over some pages, not the header
        data[offset + 8: offset + 200] = b"\xff" * 192
    db.write_bytes(bytes(data))
    facts = doctor.gather(home, client_factory=lambda i: None, task_state=lambda: ("not_applicable", None))
    assert doctor.check_database(facts).level == Level.FAIL


# --- the command ---------------------------------------------------------------------------------


def test_doctor_json_lists_every_check_and_exits_1_when_not_enrolled(home):
    result = runner.invoke(cli.app, ["--home", str(home), "doctor", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["needs_action"] is True and len(report["findings"]) == len(doctor.CHECKS)
    enrolled = next(f for f in report["findings"] if f["check"] == "enrolled, credentials accepted")
    assert enrolled["level"] == "fail" and "branchsync enroll CODE" in enrolled["fix"]


@pytest.mark.azurite
@pytest.mark.e2e
def test_doctor_end_to_end_against_the_local_cloud(tmp_path, admin_env, cloud, branch_name):
    env = {**admin_env, "BRANCHSYNC_URL": cloud.url}
    bin_dir = Path(sys.executable).parent

    def run(*args, check=True):
        proc = subprocess.run([str(bin_dir / args[0]), *map(str, args[1:])], env=env, text=True,
                              capture_output=True, timeout=120)
        assert not check or proc.returncode == 0, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    code = run("branchsync-admin", "branch", "add", branch_name).stdout.strip()
    home = tmp_path / "till"
    run("branchsync", "--home", home, "enroll", code)
    run("branchsync", "--home", home, "sync")
    proc = run("branchsync", "--home", home, "doctor", "--json", check=False)
    report = json.loads(proc.stdout)
    levels = {f["check"]: f["level"] for f in report["findings"]}
    assert levels == {
        "data folder writable": "ok", "database integrity": "ok", "enrolled, credentials accepted": "ok",
        "cloud reachable": "ok", "clock": "ok", "scheduled sync task": "n/a" if sys.platform != "win32" else levels[
            "scheduled sync task"], "last successful sync": "ok", "pending sales": "ok",
        "sales refused by the cloud": "ok", "sales too large to send": "ok",
        "backups": "ok", "free disk space": levels["free disk space"], "restored database": "ok",
        "data folder permissions": "n/a" if sys.platform != "win32" else "ok",
        "branch files writable": "ok",
    }
    assert proc.returncode == (1 if report["needs_action"] else 0)
    text = run("branchsync", "--home", home, "doctor", check=False).stdout
    assert "[ OK ] cloud reachable" in text and "a signed pull was accepted" in text


# --- after a restore ---------------------------------------------------------------------------------------------


RESTORED = RestoreRecord(at="2026-11-28T09:00:00+00:00", source="/usb/branchsync.db", generation=2,
                         safety_backup="/till/backups/branchsync-20261128T090000000000Z-before-restore.db")


def test_a_restore_that_lost_nothing_is_reported_with_its_new_numbering():
    finding = doctor.check_restored(healthy(restored=RESTORED))
    assert finding.level == Level.OK and "2-1" in finding.found


def test_after_a_forced_restore_doctor_does_not_claim_the_cloud_has_every_sale():
    facts = healthy(restored=replace(RESTORED, lost_sales=["3", "4"]), pending=0)
    restored, backlog = doctor.check_restored(facts), doctor.check_backlog(facts)
    assert restored.level == Level.FAIL and "(3, 4)" in restored.found
    assert "before-restore" in restored.fix and "branchsync restore" in restored.fix
    assert backlog.level == Level.WARN and "cloud has every sale" not in backlog.found


def test_after_restoring_an_unenrolled_backup_doctor_points_back_to_the_previous_database():
    facts = healthy(restored=replace(RESTORED, lost_identity="dhaka-1"), enrolled=False)
    finding = doctor.check_enrollment(facts)
    assert finding.level == Level.FAIL and "dhaka-1" in finding.found
    assert "enrollment code" not in finding.fix and "before-restore" in finding.fix


def test_a_refused_void_is_a_warning_that_says_the_sale_still_counts():
    refusal = LastRefusal(code="void_twice", at="2026-11-28T09:00:00Z", reason="void 3 voids sale 1 a second time",
                          seq=3, number="2-3", this_till=True)
    finding = doctor.check_refusal(healthy(refusal=refusal))
    assert finding.level == Level.WARN and "void 2-3" in finding.fix and "takings still include" in finding.fix


# --- Windows permissions and the files other accounts made ------------------------------------------


def test_the_data_folder_permissions_are_judged_on_windows_only():
    assert level(doctor.check_home_access, healthy(extra={"acl": {"applies": False}})) == Level.NA
    assert level(doctor.check_home_access, healthy()) == Level.OK


def test_a_data_folder_every_local_user_can_read_fails_with_the_exact_icacls_command():
    inherited = "D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)"
    finding = doctor.check_home_access(healthy(extra={"acl": {"applies": True, "account": "shop-pc\\cashier",
                                                               "sid": TILL_SID, "sddl": inherited, "problem": None}}))
    assert finding.level == Level.FAIL and "S-1-5-32-545 can read it" in finding.found
    assert "icacls /till /inheritance:r" in finding.fix and f"*{TILL_SID}:(OI)(CI)M" in finding.fix


def test_permissions_that_cannot_be_read_only_warn():
    finding = doctor.check_home_access(healthy(extra={"acl": {"applies": True, "problem": "icacls /save failed"}}))
    assert finding.level == Level.WARN and "icacls /save failed" in finding.found


def test_a_database_or_wal_file_this_account_cannot_write_fails_and_names_it():
    finding = doctor.check_files_writable(healthy(extra={"files_writable": {
        "branchsync.db": None, "branchsync.db-wal": "Permission denied"}}))
    assert finding.level == Level.FAIL and "branchsync.db-wal: Permission denied" in finding.found
    assert "administrator" in finding.fix


def test_existing_database_and_wal_files_are_probed_for_writing_without_changing_them(home):
    from branch_client.store import Store

    with Store(home) as store:
        store.apply_catalog_page(page(entry(1, product("X"))), 0)
        store.record_sale(parse_items(["X=1@10:test"]), "cash")
        db, wal = home / "branchsync.db", home / "branchsync.db-wal"
        assert wal.exists()
        before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (db, wal)}
        found = doctor.probe_existing_files(home)
        assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (db, wal)} == before
    assert found["branchsync.db"] is None and found["branchsync.db-wal"] is None


def test_a_database_file_another_account_owns_is_reported_unwritable(tmp_path):
    # Run the probe as an account that does not own the file: as root (which may write anything)
    # through a child process as 'nobody'; otherwise make the file read-only for its owner.
    folder = Path(tempfile.mkdtemp(prefix="branchsync-perm-", dir="/tmp")) if os.name == "posix" else tmp_path
    try:
        folder.chmod(0o755)
        db = folder / "branchsync.db"
        db.write_bytes(b"SQLite format 3\x00")
        db.chmod(0o644)
        if os.name == "posix" and os.geteuid() == 0:
            found = _as_nobody(lambda: doctor.probe_existing_files(folder))
        else:
            db.chmod(0o444)
            found = doctor.probe_existing_files(folder)
        assert found["branchsync.db"] and "denied" in found["branchsync.db"].lower()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _as_nobody(probe):
    """Run `probe` in a forked child that has dropped root for the 'nobody' account; returns its result."""
    import pwd

    uid = pwd.getpwnam("nobody").pw_uid
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no exec, the modules are already imported
        try:
            os.setgid(pwd.getpwnam("nobody").pw_gid)
            os.setuid(uid)
            os.write(write, json.dumps(probe()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(data)
