"""Backups with SQLite's online backup API, retention, and a restore that never reuses a sale's identity."""

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from filelock import FileLock
from typer.testing import CliRunner

from branch_client import backup, cli
from branch_client.cloud_client import CloudClient
from branch_client.errors import BadInput, StoreError, SyncAlreadyRunning
from branch_client.sale_entry import ItemSpec
from branch_client.store import Store
from branch_client.sync import SyncEngine
from tests.branch_client.conftest import enroll_out_of_reach
from tests.branch_client.fakes import FakeCloud, product

runner = CliRunner()
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)


def run(home, *args):
    return runner.invoke(cli.app, ["--home", str(home), *args], env={"COLUMNS": "200"})


def sell(home, n: int = 1) -> list[int]:
    with Store(home) as store:
        return [store.record_sale([ItemSpec("SOAP", Decimal(1))], "cash").seq for _ in range(n)]


def sync(home, cloud: FakeCloud):
    with Store(home) as store, CloudClient.for_identity(store.identity(), transport=httpx.MockTransport(cloud.handler),
                                                        queue_sender=cloud.send, backoff=0) as client:
        return SyncEngine(store, client).run()


@pytest.fixture
def till(home, fake_cloud):
    """An enrolled till with the catalog pulled."""
    fake_cloud.put(product("SOAP", 4500))
    with Store(home) as store:
        store.save_identity(fake_cloud.identity())
    sync(home, fake_cloud)
    return home


def test_a_backup_is_a_consistent_copy_in_the_backups_folder(till):
    sell(till, 3)
    made = backup.backup(till, now=T0)
    assert made.parent == till / "backups" and made.name == "branchsync-20261128T090000000000Z.db"
    conn = sqlite3.connect(made)
    assert [r[0] for r in conn.execute("SELECT seq FROM sales ORDER BY seq")] == [1, 2, 3]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    assert not list((till / "backups").glob("*.part"))


def test_a_backup_leaves_only_its_own_file_in_the_backups_folder(till):
    sell(till, 2)
    made = backup.backup(till, now=T0)
    again = backup.backup(till, now=T0 + timedelta(seconds=1))
    assert sorted(p.name for p in (till / "backups").iterdir()) == [made.name, again.name]  # no -wal, -shm
    assert backup.restore(till, made)["last_seq"] == 2  # and it restores as before
    assert sorted(p.name for p in (till / "backups").iterdir() if not p.name.endswith(".db")) == []


def test_a_backup_holds_no_secret(till, fake_cloud):
    made = backup.backup(till, now=T0)
    assert fake_cloud.secret.encode() not in made.read_bytes()


def test_only_the_newest_backups_are_kept(till):
    for i in range(5):
        backup.backup(till, keep=3, now=T0 + timedelta(minutes=i))
    names = [p.name for p in backup.backups(till)]
    assert names == [f"branchsync-20261128T09{m:02d}00000000Z.db" for m in (2, 3, 4)]


def test_the_backup_command_prints_the_file_and_honours_keep(till):
    for _ in range(3):
        result = run(till, "backup", "--keep", "2")
        assert result.exit_code == 0, result.output
        assert "backup written:" in result.stdout
    assert len(backup.backups(till)) == 2


def numbers(home) -> list[str]:
    with Store(home) as store:
        return [r.number for r in reversed(store.recent_sales(100))]


def test_a_void_of_an_acknowledged_older_sale_goes_in_the_same_push_as_the_new_generation_s_sales(till, fake_cloud):
    sell(till, 3)                                  # 1, 2, 3: synced and acknowledged
    sync(till, fake_cloud)
    saved = backup.backup(till, now=T0)
    sync(till, fake_cloud)
    backup.restore(till, saved)
    sync(till, fake_cloud)                         # the pull acknowledges 1-3 again in the restored database
    with Store(till) as store:
        assert store.void("3").number == "2-1"     # its target's seq is no number of generation 2
        assert store.record([ItemSpec("SOAP", Decimal(1))]).number == "2-2"
    sync(till, fake_cloud)
    assert [s.seq for s in fake_cloud.by_generation[2].values()] == [1, 2]
    assert (fake_cloud.by_generation[2][1].voids_generation, fake_cloud.by_generation[2][1].voids) == (1, 3)


def test_a_restored_till_numbers_new_sales_in_a_new_generation_and_no_printed_number_changes(till, fake_cloud):
    sell(till, 2)                                  # 1, 2
    saved = backup.backup(till, now=T0)
    sell(till, 3)                                  # 3, 4, 5: synced, then the disk dies
    sync(till, fake_cloud)
    assert fake_cloud.applied_through == 5

    result = run(till, "restore", str(saved))
    assert result.exit_code == 0, result.output
    assert "new sales are numbered 2-1, 2-2" in result.stdout
    with Store(till) as store:
        assert store.generation() == 2 and store.status()["restored"]["generation"] == 2
        # Offline after the restore: the till keeps selling in its new generation...
        assert [store.record([ItemSpec("SOAP", Decimal(1))]).number for _ in range(2)] == ["2-1", "2-2"]
        assert store.void("2-2").number == "2-3"
        assert store.void("1").number == "2-4"     # a sale of before the restore, by its printed number
    printed = numbers(till)
    sync(till, fake_cloud)
    assert numbers(till) == printed == ["1", "2", "2-1", "2-2", "2-3", "2-4"]  # ...and nothing is renumbered
    assert fake_cloud.applied_through == 5 and fake_cloud.applied_through_of(2) == 3
    sync(till, fake_cloud)                         # the void of an old sale goes once the cloud acknowledged it
    assert fake_cloud.applied_through_of(2) == 4
    assert [(g, s.seq) for g, s in fake_cloud.all_applied()] == [(1, n) for n in range(1, 6)] + [(2, n) for n in range(1, 5)]
    void_of_old = fake_cloud.by_generation[2][4]
    assert (void_of_old.voids_generation, void_of_old.voids) == (1, 1)
    sync(till, fake_cloud)
    with Store(till) as store:
        assert store.pending_count() == 0


def test_a_second_restore_starts_yet_another_generation(till, fake_cloud):
    sell(till, 1)
    saved = backup.backup(till, now=T0)
    sync(till, fake_cloud)
    backup.restore(till, saved)
    assert sell(till, 1) == [1]                    # 2-1
    sync(till, fake_cloud)
    assert backup.restore(till, saved)["generation"] == 3
    with Store(till) as store:
        assert store.record([ItemSpec("SOAP", Decimal(1))]).number == "3-1"


def test_a_restore_that_cannot_know_a_used_generation_leaves_it_on_the_first_pull(till, fake_cloud, tmp_path):
    sell(till, 1)
    saved = tmp_path / "usb-stick.db"
    backup.backup(till, now=T0).replace(saved)
    sync(till, fake_cloud)
    backup.restore(till, saved)
    sell(till, 1)                                  # 2-1, synced
    sync(till, fake_cloud)
    sync(till, fake_cloud)
    for path in backup.backups(till):              # the disk fault again: only the copy on the USB stick survives
        path.unlink()
    (till / "branchsync.db").unlink()
    assert backup.restore(till, saved)["generation"] == 2
    sync(till, fake_cloud)                         # the cloud holds 2-1: this till moves on before selling
    with Store(till) as store:
        assert store.record([ItemSpec("SOAP", Decimal(1))]).number == "3-1"
        assert store.status()["restored"]["generation_taken"] == 2


def test_a_restore_that_would_lose_sales_never_sent_is_refused_unless_forced(till, fake_cloud):
    sell(till, 2)
    sync(till, fake_cloud)
    saved = backup.backup(till, now=T0)
    sell(till, 2)                                  # 3, 4: never pushed, not in the backup
    result = run(till, "restore", str(saved))
    assert result.exit_code == 2 and "2 sale(s) never sent to the cloud" in result.stderr
    assert "(3, 4)" in result.stderr and "Nothing was changed" in result.stderr
    assert numbers(till) == ["1", "2", "3", "4"]

    result = run(till, "restore", str(saved), "--force")
    assert result.exit_code == 0, result.output
    assert "not in this backup (3, 4)" in result.stderr
    with Store(till) as store:
        restored = store.status()["restored"]
    assert restored["lost_sales"] == ["3", "4"]
    conn = sqlite3.connect(restored["safety_backup"])     # kept, for head office to recover
    assert conn.execute("SELECT count(*) FROM sales WHERE pushed_at IS NULL").fetchone()[0] == 2
    conn.close()


def test_a_restore_of_a_backup_that_is_not_enrolled_is_refused_unless_forced(till, tmp_path):
    empty = tmp_path / "empty"
    Store(empty).close()
    made = backup.backup(empty, now=T0)
    with pytest.raises(BadInput, match="identity .*not enrolled"):
        backup.restore(till, made)
    with Store(till) as store:
        assert store.is_enrolled()
    assert backup.restore(till, made, force=True)["lost_identity"] == "dhaka-1"


def test_a_sale_attempted_while_a_restore_runs_waits_for_it_and_is_never_lost(till, fake_cloud, monkeypatch):
    sell(till, 1)
    sync(till, fake_cloud)
    saved = backup.backup(till, now=T0)
    attempts = []
    real_backup = backup.backup

    def safety_copy_then_a_sale(*args, **kwargs):
        made = real_backup(*args, **kwargs)
        # Between the safety copy and the replace: the till tries to record a sale.
        try:
            with Store(till, busy_timeout_ms=200) as other:
                attempts.append(other.record([ItemSpec("SOAP", Decimal(1))]).number)
        except StoreError as exc:
            attempts.append(exc)
        return made

    monkeypatch.setattr(backup, "backup", safety_copy_then_a_sale)
    backup.restore(till, saved)
    [attempt] = attempts
    assert isinstance(attempt, StoreError)         # refused (the restore holds the database), not recorded and lost
    assert sell(till, 1) == [1]                    # after the restore: 2-1


def test_restore_saves_the_current_database_first(till):
    sell(till, 2)
    saved = backup.backup(till, now=T0)
    sell(till, 1)
    result = run(till, "restore", str(saved), "--force")
    assert "before-restore" in result.stdout
    safety = [p for p in backup.backups(till) if "before-restore" in p.name]
    assert len(safety) == 1
    conn = sqlite3.connect(safety[0])
    assert conn.execute("SELECT max(seq) FROM sales").fetchone()[0] == 3
    conn.close()


def test_restore_refuses_a_file_that_is_not_a_branchsync_database(till, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    for path in (junk, other, tmp_path / "missing.db"):
        result = run(till, "restore", str(path))
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ")


def test_restore_refuses_a_backup_of_another_branch_unless_forced(till, tmp_path, fake_cloud):
    other_home = tmp_path / "other"
    with Store(other_home) as store:
        store.save_identity(FakeCloud(branch="khulna-9").identity())
    made = backup.backup(other_home, now=T0)
    with pytest.raises(BadInput, match="khulna-9"):
        backup.restore(till, made)
    assert backup.restore(till, made, force=True)["branch"] == "khulna-9"


def test_restore_waits_for_no_sync(till):
    saved = backup.backup(till, now=T0)
    with FileLock(str(till / "sync.lock"), timeout=0):
        with pytest.raises(SyncAlreadyRunning):
            backup.restore(till, saved)


# --- the daily backup every sync makes ------------------------------------------------------------


def test_a_backup_is_due_when_the_newest_is_a_day_old_or_there_is_none(tmp_path):
    assert backup.backup_due([], T0)
    fresh = [tmp_path / "branchsync-20261128T080000Z-daily.db", tmp_path / "branchsync-20261127T090000123456Z.db"]
    assert not backup.backup_due(fresh, T0)
    assert backup.backup_due(fresh, T0 + timedelta(hours=23))


def test_a_sync_before_enrollment_makes_no_backup_so_the_first_real_one_is_not_held_back(home, monkeypatch):
    with Store(home):
        pass
    result = run(home, "sync")
    assert result.exit_code == 3 and backup.backups(home) == []
    enroll_out_of_reach(home, monkeypatch)
    assert run(home, "sync").exit_code == 1  # the cloud is out of reach, the day's backup is still made
    [daily] = backup.backups(home)
    assert daily.name.endswith("-daily.db")


def _unlink_held_open_like_windows(monkeypatch):
    """Simulate Windows at the file-system seam: deleting a backup that another program (antivirus, a database
    viewer) holds open raises PermissionError. Linux would delete it, so Path.unlink is replaced for backups only."""
    real = Path.unlink

    def unlink(self, missing_ok=False):
        if self.parent.name == "backups" and self.name.endswith(".db"):
            raise PermissionError(13, "The process cannot access the file because it is being used by another process")
        return real(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)


def _old_backups(home, count):
    for day in range(count):
        backup.backup(home, now=T0 - timedelta(days=30 - day))


def test_an_old_backup_that_cannot_be_deleted_never_fails_a_sync_and_doctor_says_so(till, fake_cloud, monkeypatch):
    _old_backups(till, backup.DEFAULT_KEEP)
    _unlink_held_open_like_windows(monkeypatch)
    monkeypatch.setattr(cli, "client_options", {"transport": httpx.MockTransport(fake_cloud.handler),
                                                "queue_sender": fake_cloud.send, "backoff": 0})
    sell(till, 1)
    result = run(till, "sync")
    assert result.exit_code == 0, result.output
    assert sorted(fake_cloud.applied) == [1]
    assert len(backup.backups(till)) == backup.DEFAULT_KEEP + 1  # the new one is written, the oldest is still there
    assert "could not be deleted" in (till / "logs" / "branchsync.log").read_text(encoding="utf-8")
    report = json.loads(run(till, "doctor", "--json").stdout)
    [found] = [f for f in report["findings"] if f["check"] == "backups"]
    assert found["level"] == "warn" and "being used by another process" in found["found"]
    assert "Close any program" in found["fix"]

    monkeypatch.undo()  # the other program let go: the next backup deletes the old file and the problem is gone
    assert run(till, "backup").exit_code == 0
    assert len(backup.backups(till)) == backup.DEFAULT_KEEP and backup.last_problem(till) is None


def test_a_backup_that_fails_is_noted_for_doctor_and_the_sync_still_succeeds(till, fake_cloud, monkeypatch):
    (till / "backups").write_text("a file where the folder should be")  # the copy itself cannot be made
    monkeypatch.setattr(cli, "client_options", {"transport": httpx.MockTransport(fake_cloud.handler),
                                                "queue_sender": fake_cloud.send, "backoff": 0})
    assert run(till, "sync").exit_code == 0
    problem = backup.last_problem(till)
    assert problem["what"] == "backup" and "failed" in problem["reason"]
    report = json.loads(run(till, "doctor", "--json").stdout)
    [found] = [f for f in report["findings"] if f["check"] == "backups"]
    assert found["level"] == "fail" and "branchsync backup" in found["fix"]


def test_a_backup_named_in_the_future_does_not_count_as_recent(tmp_path):
    ahead = [tmp_path / "branchsync-20271128T090000000000Z-daily.db"]  # written while the clock was a year ahead
    assert backup.backup_due(ahead, T0)
    assert not backup.backup_due([*ahead, tmp_path / "branchsync-20261128T080000000000Z-daily.db"], T0)


def test_daily_backups_resume_after_the_clock_was_once_ahead_and_survive_the_pruning(till):
    for day in range(backup.DEFAULT_KEEP):  # ten days of daily backups with the clock a year ahead
        backup.backup_if_due(till, now=T0 + timedelta(days=365 + day))
    assert len(backup.backups(till)) == backup.DEFAULT_KEEP
    made = backup.backup_if_due(till, now=T0)  # the clock is right again
    assert made is not None and made in backup.backups(till)
    assert backup.backup_if_due(till, now=T0 + timedelta(hours=1)) is None  # once a day, as before
    later = backup.backup_if_due(till, now=T0 + timedelta(days=1))
    assert later is not None and {made, later} <= set(backup.backups(till))
    assert len(backup.backups(till)) == backup.DEFAULT_KEEP


def test_a_sync_makes_the_days_backup_even_with_the_cloud_out_of_reach_and_only_once(home, monkeypatch):
    enroll_out_of_reach(home, monkeypatch)
    assert run(home, "sync").exit_code == 1
    [daily] = backup.backups(home)
    assert daily.name.endswith("-daily.db")
    assert run(home, "sync").exit_code == 1
    assert backup.backups(home) == [daily]


def test_a_restore_that_fails_unexpectedly_says_so_in_one_line_and_logs_it_like_every_command(till):
    made = backup.backup(till)
    broken = sqlite3.connect(made)  # a backup with a table missing: a failure no check foresees
    broken.execute("DROP TABLE generations")
    broken.commit()
    broken.close()
    result = run(till, "restore", str(made))
    assert result.exit_code == cli.EXIT_FAILURE and not isinstance(result.exception, sqlite3.Error)
    assert result.stderr.startswith("error: unexpected OperationalError") and result.stderr.count("\n") == 1
    assert "restore failed" in (till / "logs" / "branchsync.log").read_text(encoding="utf-8")
    assert sell(till) == [1]  # the live database is untouched and still sells, in its own numbering
