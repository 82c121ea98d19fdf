"""`branchsync doctor`: is this till healthy, and if not, what should the shop manager do?

Two halves. `gather` collects the facts (touches the disk, the database, the cloud and the
task scheduler; every failure becomes a fact, never an exception). The checks are pure
functions from those facts to a `Finding`: a level, what was found, and the fix in plain
words. `diagnose` runs them all; the CLI prints them and exits 1 when one needs action.

    level   meaning                                  exit code
    ok      fine                                     0
    warn    worth watching, nothing to do yet        0
    fail    needs action (the fix says what)         1
    n/a     does not apply here (e.g. no Windows)    0
"""

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path

from shared.errors import ErrorCode
from shared.limits import CLOCK_SKEW_SECONDS

from . import paths
from .status import LastRefusal, RestoreRecord, UnsendableSale

SKEW_WARN = timedelta(seconds=60)
SKEW_FAIL = timedelta(seconds=CLOCK_SKEW_SECONDS)  # the cloud refuses requests this far off
SYNC_WARN_AGE = timedelta(hours=2)
SYNC_FAIL_AGE = timedelta(hours=24)
BACKLOG_WARN_AGE = timedelta(hours=2)
BACKLOG_FAIL_AGE = timedelta(hours=24)
DISK_WARN_BYTES = 1024 ** 3            # 1 GiB
DISK_FAIL_BYTES = 200 * 1024 ** 2      # 200 MiB

# Cloud error codes that mean "these credentials are not accepted".
CREDENTIAL_CODES = frozenset({ErrorCode.UNAUTHENTICATED, ErrorCode.BAD_SIGNATURE, ErrorCode.UNKNOWN_BRANCH,
                              ErrorCode.FORBIDDEN})
# Head office shut this till out: the cloud answered, and no fix at the PC helps.
REVOKED = ErrorCode.BRANCH_REVOKED


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    NA = "n/a"


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    found: str
    fix: str | None = None


@dataclass
class PullOutcome:
    ok: bool
    code: str | None = None           # the error code when not ok (branch_client.errors / the cloud's)
    message: str | None = None
    server_time: datetime | None = None
    sent_at: datetime | None = None   # local clock just before and after the call
    received_at: datetime | None = None


@dataclass
class Facts:
    home: str
    now: datetime
    home_writable: bool = False
    home_problem: str | None = None
    db_exists: bool = False
    integrity: list[str] | None = None     # PRAGMA integrity_check rows; None when it could not run
    integrity_problem: str | None = None
    store_problem: str | None = None       # the database could not be opened at all
    enrolled: bool | None = None           # None: could not tell
    branch: str | None = None
    cloud_url: str | None = None
    pull: PullOutcome | None = None        # None: no pull tried (not enrolled or no database)
    task: str = "unknown"                  # present | missing | not_applicable | unknown
    task_problem: str | None = None
    last_sync_ok: datetime | None = None
    last_error: str | None = None
    pending: int | None = None
    oldest_pending: datetime | None = None
    free_bytes: int | None = None
    refusal: LastRefusal | None = None     # the cloud's latest refusal as the last sync stored it
    restored: RestoreRecord | None = None  # what the last restore did
    unsendable: list[UnsendableSale] = field(default_factory=list)  # sales the push set aside as too large
    backup_problem: dict | None = None     # the last backup problem {at, what, reason} (branch_client.backup)
    newest_backup: str | None = None       # file name of the newest backup, if any
    extra: dict = field(default_factory=dict)


# --- the checks (pure) -------------------------------------------------------------------------


def check_home(f: Facts) -> Finding:
    name = "data folder writable"
    if f.home_writable:
        return Finding(name, Level.OK, f.home)
    return Finding(name, Level.FAIL, f"cannot write in {f.home}: {f.home_problem or 'unknown reason'}",
                   "Ask whoever looks after this PC to give the till's Windows account permission to change "
                   f"the folder {f.home} (or free the disk if it is full), then run 'branchsync doctor' again.")


def check_database(f: Facts) -> Finding:
    name = "database integrity"
    if not f.db_exists:
        return Finding(name, Level.WARN, "no database yet (nothing recorded in this data folder)",
                       "If sales were recorded on this PC before, check that --home / BRANCHSYNC_HOME points at "
                       "the right folder; otherwise nothing to do.")
    if f.integrity is None:
        return Finding(name, Level.FAIL, f"could not check the database: {f.integrity_problem or 'unknown reason'}",
                       "Close other branchsync windows and run 'branchsync doctor' again; if it keeps failing, "
                       "call head office support before recording more sales.")
    if f.integrity == ["ok"]:
        return Finding(name, Level.OK, "PRAGMA integrity_check: ok")
    shown = "; ".join(f.integrity[:3]) + (f" (and {len(f.integrity) - 3} more)" if len(f.integrity) > 3 else "")
    return Finding(name, Level.FAIL, f"the database is damaged: {shown}",
                   "Stop recording sales on this PC and call head office support: the database must be restored "
                   "from a backup ('branchsync restore FILE'); sales already synced are safe in the cloud.")


def check_enrollment(f: Facts) -> Finding:
    name = "enrolled, credentials accepted"
    if f.enrolled is None:
        return Finding(name, Level.FAIL, f"cannot read the enrollment: {f.store_problem or 'unknown reason'}",
                       "Fix the data folder and database problems above first.")
    if not f.enrolled:
        lost = f.restored.lost_identity if f.restored else None
        if lost:  # a restore replaced an enrolled database: that one is kept, and is the way back
            return Finding(name, Level.FAIL, f"this PC is not enrolled: a restore replaced the database of branch "
                                             f"{lost} with a backup that is not that branch's",
                           f"Put the previous database back: 'branchsync restore {f.restored.safety_backup}'. "
                           "Enroll anew only if head office says so.")
        return Finding(name, Level.FAIL, "this PC is not enrolled",
                       "Ask head office for an enrollment code and run 'branchsync enroll CODE'.")
    p = f.pull
    if p is not None and p.code == REVOKED:
        return Finding(name, Level.FAIL, p.message or f"head office revoked branch {f.branch}",
                       "This PC can no longer sync. Call head office; the sales recorded here are kept on this PC.")
    if p is None or (not p.ok and p.code not in CREDENTIAL_CODES and p.code != ErrorCode.CLOCK_SKEW):
        return Finding(name, Level.WARN, f"enrolled as branch {f.branch}; the cloud could not confirm the "
                                         "credentials (see 'cloud reachable')",
                       "Fix the connection to the cloud, then run 'branchsync doctor' again.")
    if p.ok:
        return Finding(name, Level.OK, f"branch {f.branch}: a signed pull was accepted")
    if p.code == ErrorCode.CLOCK_SKEW:
        return Finding(name, Level.WARN, f"enrolled as branch {f.branch}; the cloud refused the PC's clock "
                                         "(see 'clock')", "Set the clock right first.")
    return Finding(name, Level.FAIL, f"the cloud does not accept this branch's credentials ({p.code}: {p.message})",
                   "Ask head office for a new enrollment code for this branch and run "
                   "'branchsync enroll CODE --force'. Recorded sales are kept.")


def check_cloud(f: Facts) -> Finding:
    name = "cloud reachable"
    p = f.pull
    if p is None:
        return Finding(name, Level.NA, "not checked (not enrolled)")
    if p.ok or p.code in CREDENTIAL_CODES or p.code in (ErrorCode.CLOCK_SKEW, REVOKED):
        return Finding(name, Level.OK, f"{f.cloud_url} answered")
    return Finding(name, Level.FAIL, f"{p.message or p.code}",
                   "Check that the shop's internet works (open any website on this PC). If it does, tell head "
                   "office the cloud is not answering. Sales are kept and sync when it is back.")


def check_clock(f: Facts) -> Finding:
    name = "clock"
    p = f.pull
    if p is not None and p.code == ErrorCode.CLOCK_SKEW:
        return Finding(name, Level.FAIL, f"the cloud refused the request: {p.message}",
                       "Set this PC's date, time and time zone right (Windows Settings > Time & language > "
                       "'Set time automatically'), then run 'branchsync doctor' again.")
    if p is None or not p.ok or p.server_time is None or p.sent_at is None or p.received_at is None:
        return Finding(name, Level.NA, "not checked (no answer from the cloud)")
    local = p.sent_at + (p.received_at - p.sent_at) / 2
    skew = local - p.server_time
    seconds = abs(skew.total_seconds())
    where = "ahead of" if skew > timedelta(0) else "behind"
    found = f"this PC is {seconds:.0f} s {where} the cloud"
    if abs(skew) >= SKEW_FAIL:
        return Finding(name, Level.FAIL, found, "Set this PC's date, time and time zone right (Windows Settings > "
                                                "Time & language > 'Set time automatically').")
    if abs(skew) >= SKEW_WARN:
        return Finding(name, Level.WARN, found, "Turn on 'Set time automatically' in Windows Settings > "
                                                "Time & language, before the difference grows.")
    return Finding(name, Level.OK, found)


def check_task(f: Facts) -> Finding:
    name = "scheduled sync task"
    if f.task == "not_applicable":
        return Finding(name, Level.NA, "not applicable (Windows Task Scheduler only)")
    if f.task == "present":
        return Finding(name, Level.OK, "branchsync-sync is registered")
    if f.task == "missing":
        return Finding(name, Level.FAIL, "no scheduled task: sales sync only when someone runs 'branchsync sync'",
                       "Open a command prompt as administrator and run 'branchsync schedule install'.")
    return Finding(name, Level.WARN, f"could not ask the Task Scheduler: {f.task_problem or 'unknown reason'}",
                   "Run 'branchsync schedule show' to see the task; install it with 'branchsync schedule install'.")


def check_last_sync(f: Facts) -> Finding:
    name = "last successful sync"
    if f.enrolled is False:
        return Finding(name, Level.NA, "not enrolled")
    if f.last_sync_ok is None:
        return Finding(name, Level.WARN, "never" + (f" (last error: {f.last_error})" if f.last_error else ""),
                       "Run 'branchsync sync' and read what it says.")
    age = f.now - f.last_sync_ok
    found = f"{_age(age)} ago ({f.last_sync_ok.isoformat(timespec='seconds')})"
    if f.last_error:
        found += f"; since then: {f.last_error}"
    if age >= SYNC_FAIL_AGE:
        return Finding(name, Level.FAIL, found, "Run 'branchsync sync' and follow what it says; check the "
                                                "internet connection and the scheduled task above.")
    if age >= SYNC_WARN_AGE:
        return Finding(name, Level.WARN, found, "Check the internet connection; the scheduled task will try again.")
    return Finding(name, Level.OK, found)


def check_backlog(f: Facts) -> Finding:
    name = "pending sales"
    if f.pending is None:
        return Finding(name, Level.NA, "not checked (no database)")
    if f.pending == 0:
        if f.restored is not None and f.restored.lost_sales:
            return Finding(name, Level.WARN, "none in this database, but sales recorded before the restore are "
                                             "missing from it (see 'restored database')",
                           "Follow the fix of 'restored database' below.")
        return Finding(name, Level.OK, "none: the cloud has every sale")
    age = f.now - f.oldest_pending if f.oldest_pending else timedelta(0)
    found = f"{f.pending} not yet acknowledged, the oldest from {_age(age)} ago"
    if age >= BACKLOG_FAIL_AGE:
        return Finding(name, Level.FAIL, found, "Get this PC online and run 'branchsync sync'; the sales are kept "
                                                "safely here until then. If they stay pending after a good sync, "
                                                "call head office.")
    if age >= BACKLOG_WARN_AGE:
        return Finding(name, Level.WARN, found, "They go with the next sync; check the internet connection.")
    return Finding(name, Level.OK, found + " (they go with the next sync)")


def check_refusal(f: Facts) -> Finding:
    name = "sales refused by the cloud"
    if f.refusal is None:
        return Finding(name, Level.NA if f.enrolled is False else Level.OK, "none")
    from .explain import refusal_advice  # only when there is one: it loads the store's modules

    from .explain import VOID_CODES

    found = f"{f.refusal.code} at {f.refusal.at}: {f.refusal.reason}"
    fix = refusal_advice(f.refusal, f.branch)
    fix = fix[0].upper() + fix[1:] + "."
    if f.refusal.this_till is False:  # another PC's sale: this till's are counted
        return Finding(name, Level.WARN, "another PC syncing as this branch: " + found, fix)
    if f.refusal.code in VOID_CODES:  # one void not counted; the sales behind it were
        return Finding(name, Level.WARN, "a void was not counted: " + found, fix)
    return Finding(name, Level.FAIL, found, fix)


def check_restored(f: Facts) -> Finding:
    name = "restored database"
    r = f.restored
    if r is None:
        return Finding(name, Level.OK, "never restored from a backup")
    found = (f"restored from {r.source} at {r.at}; new sales are numbered {r.generation}-1, "
             f"{r.generation}-2, ... (earlier numbers stay as printed)")
    lost = r.lost_sales
    if lost:
        shown = ", ".join(lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
        return Finding(name, Level.FAIL, f"{found}; {len(lost)} sale(s) recorded before it were never sent to the "
                                         f"cloud and are not in this database ({shown})",
                       f"They are kept in {r.safety_backup}. Call head office before selling on: restoring "
                       f"that file ('branchsync restore {r.safety_backup}', then 'branchsync sync') brings them "
                       "back and sends them; sales recorded since this restore would then be only in its own safety copy.")
    if r.lost_identity:
        return Finding(name, Level.FAIL, f"{found}; the database it replaced was branch {r.lost_identity}",
                       f"The previous database is kept in {r.safety_backup}; see 'enrolled, credentials accepted'.")
    return Finding(name, Level.OK, found)


def check_unsendable(f: Facts) -> Finding:
    name = "sales too large to send"
    if not f.unsendable:
        return Finding(name, Level.NA if f.enrolled is False else Level.OK, "none")
    numbers = ", ".join(str(u.seq) for u in f.unsendable)
    found = "; ".join(u.reason for u in f.unsendable[:3]) + (" (and more)" if len(f.unsendable) > 3 else "")
    return Finding(name, Level.FAIL, found,
                   f"Nothing is lost: sale {numbers} stays on this PC and the sales after it are sent and counted. "
                   "Call head office and give them the sale number and its total (see 'branchsync sale list') so "
                   "they can account for it by hand. New sales this large are refused at the till: split them.")


def check_backups(f: Facts) -> Finding:
    name = "backups"
    p = f.backup_problem
    if p is None:
        if f.newest_backup is None:
            return Finding(name, Level.NA if f.enrolled is False else Level.OK,
                           "none yet (every sync makes the day's backup)")
        return Finding(name, Level.OK, f"newest: {f.newest_backup}")
    folder = Path(f.home) / "backups"
    if p["what"] == "prune":
        return Finding(name, Level.WARN, f"the backup at {p['at']} was written, but {p['reason']}",
                       f"Close any program that has a file in {folder} open (a database viewer, an antivirus scan), "
                       "or restart the PC; the next backup deletes the old file. Nothing is lost.")
    return Finding(name, Level.FAIL, f"the last backup failed at {p['at']}: {p['reason']}",
                   f"Free space on this drive and check that the till's Windows account may write in {folder}, "
                   "then run 'branchsync backup'. The sales are safe in the database; only its copy failed, and "
                   "syncing goes on.")


def check_disk(f: Facts) -> Finding:
    name = "free disk space"
    if f.free_bytes is None:
        return Finding(name, Level.WARN, "could not measure", "Check the free space of the drive in Windows Explorer.")
    found = f"{f.free_bytes / 1024 ** 3:.1f} GiB free"
    if f.free_bytes < DISK_FAIL_BYTES:
        return Finding(name, Level.FAIL, found, "Free space on this drive now (empty the Recycle Bin, delete "
                                                "old downloads): sales cannot be saved on a full disk.")
    if f.free_bytes < DISK_WARN_BYTES:
        return Finding(name, Level.WARN, found, "Free some space on this drive soon (empty the Recycle Bin).")
    return Finding(name, Level.OK, found)


def check_home_access(f: Facts) -> Finding:
    """Windows: only SYSTEM, Administrators and the till's account may open the data home (see permissions)."""
    from . import permissions

    name = "data folder permissions"
    acl = f.extra.get("acl") or {}
    if not acl.get("applies"):
        return Finding(name, Level.NA, "not applicable (Windows access lists only)")
    if acl.get("problem") or not acl.get("sddl"):
        return Finding(name, Level.WARN, f"could not read the folder's permissions: {acl.get('problem') or 'unknown'}",
                       "Run 'branchsync doctor' from the till's Windows account.")
    problems = permissions.judge_acl(acl["sddl"], acl.get("sid"))
    command = subprocess.list2cmdline(permissions.grant_command(f.home, acl.get("sid") or "<the till account's SID>"))
    if problems:
        return Finding(name, Level.FAIL, f"{f.home}: " + "; ".join(problems),
                       "Open a command prompt as administrator and run: " + command +
                       " (it lets only SYSTEM, Administrators and this Windows account open the branch's files).")
    return Finding(name, Level.OK, f"only SYSTEM, Administrators and {acl.get('account') or acl.get('sid')} "
                                   "can open it")


def check_files_writable(f: Facts) -> Finding:
    """The existing database, its WAL and shared-memory files, the secret and the log: can THIS account write them?"""
    name = "branch files writable"
    files = f.extra.get("files_writable")
    if files is None:
        return Finding(name, Level.NA, "not checked")
    if not files:
        return Finding(name, Level.NA, "no files yet")
    blocked = {file: problem for file, problem in files.items() if problem}
    if blocked:
        shown = "; ".join(f"{file}: {problem}" for file, problem in sorted(blocked.items()))
        return Finding(name, Level.FAIL, f"this account cannot write {shown}",
                       "Another Windows account (an elevated prompt, or the scheduled task as SYSTEM) made these "
                       "files. Open a command prompt as administrator and reset the folder's permissions (see "
                       "'data folder permissions'), or run branchsync as the account that owns them.")
    return Finding(name, Level.OK, ", ".join(sorted(files)))


CHECKS: list[Callable[[Facts], Finding]] = [
    check_home, check_database, check_enrollment, check_cloud, check_clock, check_task, check_last_sync,
    check_backlog, check_refusal, check_unsendable, check_backups, check_disk, check_restored,
    check_home_access, check_files_writable,
]


def diagnose(facts: Facts) -> list[Finding]:
    return [check(facts) for check in CHECKS]


def needs_action(findings: list[Finding]) -> bool:
    return any(f.level == Level.FAIL for f in findings)


def as_json(findings: list[Finding]) -> list[dict]:
    return [{**asdict(f), "level": f.level.value} for f in findings]


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


# --- gathering the facts (I/O) -------------------------------------------------------------------


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def probe_home(home: Path) -> tuple[bool, str | None]:
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".doctor-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"ok")
        probe.unlink()
        return True, None
    except OSError as exc:
        return False, exc.strerror or str(exc)


# Files that already exist must be writable by this account, not only the folder: SQLite opens
# the database read-only (and fails on the first sale) when it cannot write the file or its -wal.
EXISTING_FILES = [paths.DB_FILE, paths.DB_FILE + "-wal", paths.DB_FILE + "-shm", paths.SECRET_FILE,
                  "logs/branchsync.log"]


def probe_existing_files(home: Path) -> dict[str, str | None]:
    """{file: None if this account can write it, else why not}, for each of EXISTING_FILES present.

    A real open for writing (no truncation, nothing written, so neither content nor time
    changes), not only os.access: on Windows os.access looks at the read-only attribute alone.
    """
    found: dict[str, str | None] = {}
    for name in EXISTING_FILES:
        path = home / name
        if not path.is_file():
            continue
        try:
            with open(path, "r+b"):
                pass
            found[name] = None
        except OSError as exc:
            found[name] = exc.strerror or type(exc).__name__
    return found


def integrity_check(db: Path) -> list[str]:
    """PRAGMA integrity_check on the database file, read-only; raises sqlite3.Error."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=15)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
    finally:
        conn.close()


def scheduled_task_state(platform: str | None = None,
                         run: Callable[[list[str]], subprocess.CompletedProcess] | None = None) -> tuple[str, str | None]:
    """("present" | "missing" | "not_applicable" | "unknown", problem)."""
    from . import schedule

    if (platform or sys.platform) != "win32":
        return "not_applicable", None
    run = run or (lambda cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=60))
    try:
        proc = run(schedule.query_command())
    except (OSError, subprocess.SubprocessError) as exc:
        return "unknown", str(exc)
    return ("present", None) if proc.returncode == 0 else ("missing", None)


def free_space(home: Path) -> int | None:
    probe = home
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def backup_state(home: Path) -> tuple[dict | None, str | None]:
    """(the last backup problem, the newest backup's file name); never raises."""
    from . import backup

    try:
        found = backup.backups(home)
    except OSError:
        found = []
    return backup.last_problem(home), (found[-1].name if found else None)


def gather(home: Path, *, client_factory: Callable, now: Callable[[], datetime] | None = None,
           task_state: Callable[[], tuple[str, str | None]] = scheduled_task_state) -> Facts:
    """Every fact the checks need; problems are recorded, never raised.

    `client_factory(identity)` returns a CloudClient (a context manager) for the signed pull.
    """
    from . import status as branch_status
    from .errors import BranchSyncError, NotEnrolled
    from .store import Store

    clock = now or (lambda: datetime.now(timezone.utc))
    facts = Facts(home=str(home), now=clock())
    facts.home_writable, facts.home_problem = probe_home(home)
    db = paths.db_path(home)
    facts.db_exists = db.exists()
    if facts.db_exists:
        try:
            facts.integrity = integrity_check(db)
        except sqlite3.Error as exc:
            facts.integrity_problem = " ".join(str(exc).split())
    facts.task, facts.task_problem = task_state()
    facts.free_bytes = free_space(home)
    facts.backup_problem, facts.newest_backup = backup_state(home)

    from . import permissions

    facts.extra["files_writable"] = probe_existing_files(home)
    facts.extra["acl"] = permissions.inspect_home(home)
    if not facts.db_exists:  # doctor never creates a database; without one nothing is enrolled
        facts.enrolled = False
        return facts
    try:
        with Store(home) as store:
            info = branch_status.read(store)
            facts.pending = info.pending
            facts.oldest_pending = _utc(store.oldest_pending())
            facts.last_error = info.last_error
            facts.refusal = info.last_refusal
            facts.restored = info.restored
            facts.unsendable = info.unsendable
            facts.last_sync_ok = _utc(info.last_sync_ok)
            facts.branch, facts.cloud_url = info.branch, info.cloud_url
            try:
                identity = store.identity()
            except NotEnrolled:
                facts.enrolled = False
                return facts
            facts.enrolled = True
            cursor = store.catalog_cursor()
            facts.pull = _signed_pull(identity, cursor, facts.pending, client_factory, clock)
    except BranchSyncError as exc:
        facts.store_problem = str(exc)
    return facts


def _signed_pull(identity, cursor: int, pending: int, client_factory, clock) -> PullOutcome:
    """One signed pull of at most one catalog entry; nothing is stored from it."""
    from .errors import BranchSyncError

    sent = clock()
    try:
        with client_factory(identity) as client:
            answer = client.pull(cursor, 1, pending)
    except BranchSyncError as exc:
        return PullOutcome(False, exc.code, exc.message, sent_at=sent, received_at=clock())
    except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
        return PullOutcome(False, "unexpected", f"{type(exc).__name__}: {exc}", sent_at=sent, received_at=clock())
    return PullOutcome(True, server_time=answer.server_time, sent_at=sent, received_at=clock())
