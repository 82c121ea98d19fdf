"""Backups of the branch database, and restoring one.

`backup` copies the live database with SQLite's online backup API
(`sqlite3.Connection.backup`): a consistent copy even while the till records sales or a
sync runs, WAL included. Copies go to `backups/branchsync-<UTC time>.db` in the data home,
are checked with PRAGMA integrity_check before they count, and only the newest `keep`
are kept. A copy is switched from WAL to a rollback journal before it is closed, so each
backup is one self-contained file with no -wal or -shm beside it. The branch secret is not in the database and never in a backup.

`restore` checks the file (a branchsync database of a schema this program knows, intact),
upgrades a staged copy of it, and then, holding the sync lock and the live database's
write lock for the whole of it (so no sale can be recorded in between, by the CLI or the
till page: both record through Store.record), checks what the restore would lose, saves
the current database as a backup, and replaces the live content with the staged one in
one SQLite transaction. A sale is therefore recorded before the restore (and is in the
safety copy) or after it (and is in the restored database), never in neither.

The restored database numbers new sales in a new generation, one above every generation
this till's databases and backups know: `2-1`, `2-2`, ... after a first restore. The
sales the backup holds keep their numbers and are pushed under their own generation, so
a message of the lost database still in the queue, for days, applies under the old
generation and can never collide with a sale rung up after the restore. No number the
till has printed ever changes.

A restore is refused, unless forced, when it would lose the till's identity (the backup
is not enrolled, or is another branch's) or sales the cloud has not acknowledged that
the backup does not hold and that were never pushed (a pushed one is safe in the queue); forced, it says what it loses, and status and doctor keep
saying it (meta `restored`).
"""

import json
import logging
import re
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from . import paths
from .errors import BadInput, StoreError, SyncAlreadyRunning
from .logs import LOGGER_NAME
from .schema import MIGRATIONS, SCHEMA_VERSION_KEY

BACKUP_DIR = "backups"
# How long a restore waits for a sale being recorded to finish before it takes the database.
BUSY_TIMEOUT_S = 15
DEFAULT_KEEP = 10
# The last backup problem, for `doctor`: {at, what: "backup" | "prune", reason}; gone after a clean backup.
PROBLEM_FILE = "backup-problem.json"
_NAME = re.compile(r"^branchsync-\d{8}T\d{6}(\d{6})?Z(-[a-z-]+)?\.db$")
_STAMP = re.compile(r"^branchsync-(\d{8}T\d{6})(\d{6})?Z")


def backup_dir(home: Path) -> Path:
    return Path(home) / BACKUP_DIR


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=15)
    return sqlite3.connect(path, timeout=15)


def _check(path: Path) -> dict:
    """What the database at `path` is (schema version, branch, last sale number); BadInput if it is not usable."""
    try:
        conn = _connect(path, read_only=True)
    except sqlite3.Error as exc:
        raise BadInput(f"cannot open {path} as a database ({exc}); choose a file from the backups folder") from exc
    try:
        result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if result != ["ok"]:
            raise BadInput(f"{path} is damaged ({'; '.join(result[:2])}); choose another backup")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        last_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM sales").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{path} is not a branchsync database ({exc}); choose a file from the backups folder") from exc
    finally:
        conn.close()
    version = int(meta.get(SCHEMA_VERSION_KEY, 0))
    if not 1 <= version <= len(MIGRATIONS):
        raise BadInput(f"{path} has database schema version {version}, which this branchsync cannot use "
                       f"(it knows 1 to {len(MIGRATIONS)})")
    return {"schema_version": version, "branch": meta.get("branch"), "last_seq": last_seq}


def backup(home: Path, *, keep: int = DEFAULT_KEEP, now: datetime | None = None, label: str = "") -> Path:
    """Copy the live database into backups/; keep the newest `keep` copies. Returns the new file."""
    home = Path(home)
    db = paths.db_path(home)
    if not db.exists():
        raise StoreError(f"there is no database in {home} to back up; check --home / BRANCHSYNC_HOME")
    folder = backup_dir(home)
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    name = f"branchsync-{moment.strftime('%Y%m%dT%H%M%S%f')}Z{'-' + label if label else ''}.db"
    target = folder / name
    tmp = folder / (name + ".part")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        src, dst = _connect(db, read_only=True), _connect(tmp)
        try:
            src.backup(dst)
            # The copy comes in WAL mode like the live database; a backup is one self-contained
            # file, and checking a WAL file read-only would leave -wal and -shm beside it.
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
            src.close()
        _check(tmp)
        tmp.replace(target)
    except (OSError, sqlite3.Error, BadInput) as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # the next backup removes it
            pass
        problem = StoreError(f"the backup into {folder} failed ({exc}); check the free disk space and try again")
        record_problem(home, "backup", str(problem), moment)
        raise problem from exc
    # The new backup is good whatever happens to the old ones: a file that cannot be deleted
    # (held open by another program on Windows) is reported, never a failed backup.
    try:
        prune(home, keep, now=moment)
    except StoreError as exc:
        record_problem(home, "prune", str(exc), moment)
        logging.getLogger(LOGGER_NAME).warning(f"backup written to {target}, but {exc}")
    else:
        clear_problem(home)
    return target


def _problem_path(home: Path) -> Path:
    return Path(home) / PROBLEM_FILE


def record_problem(home: Path, what: str, reason: str, now: datetime | None = None) -> None:
    """Remember the last backup problem for `doctor`; a failure to write it is only logged."""
    at = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="seconds")
    try:
        _problem_path(home).write_text(json.dumps({"at": at, "what": what, "reason": reason}, ensure_ascii=False),
                                       encoding="utf-8")
    except OSError as exc:
        logging.getLogger(LOGGER_NAME).warning(f"could not note the backup problem for doctor ({exc})")


def clear_problem(home: Path) -> None:
    try:
        _problem_path(home).unlink(missing_ok=True)
    except OSError:  # still there: doctor shows an old problem until the next clean backup
        pass


def last_problem(home: Path) -> dict | None:
    """The last backup problem ({at, what, reason}), or None; never raises."""
    try:
        found = json.loads(_problem_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and {"at", "what", "reason"} <= found.keys() else None


DAILY = timedelta(days=1)


def taken_at(path: Path) -> datetime | None:
    """When a backup was taken, read from its name (the name is written in UTC)."""
    match = _STAMP.match(path.name)
    if not match:
        return None
    return datetime.strptime(match.group(1) + (match.group(2) or "000000"), "%Y%m%dT%H%M%S%f").replace(tzinfo=timezone.utc)


def backup_due(existing: list[Path], now: datetime, every: timedelta = DAILY) -> bool:
    """A new backup is due when the newest one taken by `now` is `every` old, or there is none.

    A backup whose name lies in the future was taken while the clock was ahead: it does not
    count, or no daily backup would be made until real time caught up with its name.
    """
    times = [t for t in map(taken_at, existing) if t is not None and t <= now]
    return not times or now - max(times) >= every


def backup_if_due(home: Path, *, now: datetime | None = None, keep: int = DEFAULT_KEEP) -> Path | None:
    """The daily backup: run by every sync, so a till that syncs every few minutes backs up once a day."""
    now = now or datetime.now(timezone.utc)
    if not backup_due(backups(home), now):
        return None
    return backup(home, keep=keep, now=now, label="daily")


def backups(home: Path) -> list[Path]:
    """The backups in the data home, oldest first."""
    folder = backup_dir(home)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def _age_order(found: list[Path], now: datetime) -> list[Path]:
    """Oldest first; names in the future first of all: a clock that was ahead wrote them, and
    every backup taken since (named by the right clock) holds newer data."""
    def key(path: Path):
        moment = taken_at(path)
        return (moment is None or moment <= now, moment or datetime.min.replace(tzinfo=timezone.utc), path.name)

    return sorted(found, key=key)


def prune(home: Path, keep: int, now: datetime | None = None) -> list[Path]:
    """Delete all but the newest `keep` backups; returns what was deleted.

    Every old backup is tried; if some cannot be deleted (on Windows: PermissionError while
    another program holds the file open) StoreError names them once the rest are gone.
    """
    found = _age_order(backups(home), (now or datetime.now(timezone.utc)).astimezone(timezone.utc))
    gone, stuck = [], []
    for path in found[: max(0, len(found) - max(1, keep))]:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            stuck.append(f"{path.name} ({exc.strerror or exc})")
        else:
            gone.append(path)
    if stuck:
        raise StoreError(f"the old backup {', '.join(stuck)} could not be deleted: another program (a database "
                         "viewer, an antivirus scan) may have it open; close it and the next backup deletes it")
    return gone


def restore(home: Path, source: Path, *, force: bool = False, keep: int = DEFAULT_KEEP,
            now: datetime | None = None) -> dict:
    """Replace the live database's content with `source` in a new numbering generation. Returns what it did."""
    from .store import Store  # the store imports this module's neighbours; only a restore needs it here

    home, source = Path(home), Path(source)
    if not source.is_file():
        raise BadInput(f"there is no file {source}; list the backups in {backup_dir(home)}")
    found = _check(source)
    db = paths.db_path(home)
    lock = FileLock(paths.lock_path(home), timeout=0)
    try:
        home.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise SyncAlreadyRunning("a sync is running for this branch; wait for it to finish, then restore") from None
    try:
        with tempfile.TemporaryDirectory(dir=home, prefix=".restore-") as staging:
            staged = paths.db_path(Path(staging))
            _copy(source, staged)
            Store(Path(staging)).close()  # upgrade the copy to this program's schema
            if db.exists() and _intact(db):
                Store(home).close()  # and the live database, so both have the same tables
                return _replace(home, source, staged, found, force=force, keep=keep, now=now)
            return _replace_missing(home, source, staged, found, force=force, keep=keep, now=now)
    finally:
        lock.release()


# The tables a restore replaces, in an order that keeps foreign keys whole.
_TABLES = ("meta", "products", "sync_state", "generations", "sales")


def _replace(home: Path, source: Path, staged: Path, found: dict, *, force: bool, keep: int,
             now: datetime | None) -> dict:
    db = paths.db_path(home)
    from .store import fold

    conn = sqlite3.connect(db, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    # The product search triggers call bs_fold, which every Store connection registers.
    conn.create_function("bs_fold", 1, fold, deterministic=True)
    try:
        conn.execute("ATTACH DATABASE ? AS staged", (str(staged),))  # not allowed inside a transaction
        # The write lock from here to COMMIT: sale entry waits (or fails visibly), nothing slips in between.
        conn.execute("BEGIN IMMEDIATE")
        live_branch = _meta(conn, "main").get("branch")
        staged_meta = _meta(conn, "staged")
        lost = _lost_sales(conn)
        problems = _losses(live_branch, staged_meta.get("branch"), lost)
        if problems and not force:
            raise BadInput(f"restoring {source} would lose {'; and '.join(problems)}. Nothing was changed. Sync "
                           "first if the cloud is reachable, or choose a newer backup; use --force only to accept "
                           "that loss (the current database is then kept as a backup file)")
        safety = backup(home, keep=keep + 1, label="before-restore")
        generation = 1 + max([_generations(conn, "main"), _generations(conn, "staged"), *_backup_generations(home)])
        for table in _TABLES[::-1]:
            conn.execute(f"DELETE FROM main.{table}")
        for table in _TABLES:
            cols = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
            conn.execute(f"INSERT INTO main.{table} ({cols}) SELECT {cols} FROM staged.{table}")
        facts = _start_generation(conn, source, generation, now, safety=safety,
                                  lost_sales=lost if force else [],
                                  lost_identity=live_branch if force and live_branch != staged_meta.get("branch") else None)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return {**found, **facts}


def _replace_missing(home: Path, source: Path, staged: Path, found: dict, *, force: bool, keep: int,
                     now: datetime | None) -> dict:
    """No live database (a new disk), or a damaged one (kept aside, only with --force)."""
    db = paths.db_path(home)
    safety = None
    if db.exists():
        if not force:
            raise BadInput(f"the current database {db} is damaged, so this restore cannot tell what it would lose; "
                           "run 'branchsync doctor', then restore with --force to replace it (it is kept as a "
                           "backup file)")
        safety = backup_dir(home) / f"branchsync-{_stamp(now)}Z-damaged.db"
        safety.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{db}{suffix}").exists():
                Path(f"{db}{suffix}").replace(f"{safety}{suffix}")
    conn = sqlite3.connect(staged, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        generation = 1 + max([_generations(conn, "main"), *_backup_generations(home)])
        facts = _start_generation(conn, source, generation, now, safety=safety, lost_sales=[], lost_identity=None)
        conn.execute("COMMIT")
    finally:
        conn.close()
    _copy(staged, db)
    return {**found, **facts}


def _start_generation(conn: sqlite3.Connection, source: Path, generation: int, now: datetime | None, *,
                      safety: Path | None, lost_sales: list[str], lost_identity: str | None) -> dict:
    facts = {
        "at": (now or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="seconds"),
        "source": str(source), "safety_backup": str(safety) if safety else None, "generation": generation,
        "lost_sales": lost_sales, "lost_identity": lost_identity,
    }
    for key, value in (("generation", str(generation)), ("restored", json.dumps(facts))):
        conn.execute("INSERT INTO main.meta (key, value) VALUES (?, ?) "
                     "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))
    conn.execute("INSERT OR IGNORE INTO main.generations (generation, applied_through) VALUES (?, 0)", (generation,))
    return facts


def _losses(live_branch: str | None, staged_branch: str | None, lost: list[str]) -> list[str]:
    problems = []
    if live_branch and staged_branch != live_branch:
        problems.append(f"this till's identity (it is branch {live_branch}; the backup is "
                        + (f"branch {staged_branch})" if staged_branch else "not enrolled)"))
    if lost:
        shown = ", ".join(lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
        problems.append(f"{len(lost)} sale(s) never sent to the cloud that the backup does not hold ({shown})")
    return problems


def _lost_sales(conn: sqlite3.Connection) -> list[str]:
    """Printed numbers of the live database's events never pushed that the staged one lacks.

    Those only this database holds. A pushed one is safe in the queue even unacknowledged
    (the queue accepted it; the cloud applies it under its own generation, or dead-letters
    it with a reason), so a restore does not lose it.
    """
    from shared.models import sale_number

    rows = conn.execute("SELECT generation, seq FROM main.sales WHERE acked_at IS NULL AND pushed_at IS NULL "
                        "AND sale_id NOT IN (SELECT sale_id FROM staged.sales) ORDER BY generation, seq").fetchall()
    return [sale_number(g, s) for g, s in rows]


def _meta(conn: sqlite3.Connection, schema: str) -> dict:
    return dict(conn.execute(f"SELECT key, value FROM {schema}.meta"))


def _generations(conn: sqlite3.Connection, schema: str) -> int:
    """The highest generation a database knows: its own, one it holds sales of, or one the cloud acknowledged."""
    own = int(_meta(conn, schema).get("generation", 1))
    row = conn.execute(f"SELECT coalesce(max(generation), 1) FROM {schema}.generations").fetchone()
    held = conn.execute(f"SELECT coalesce(max(generation), 1) FROM {schema}.sales").fetchone()
    return max(own, row[0], held[0])


def _backup_generations(home: Path) -> list[int]:
    """The generations the backups in the data home know (an unreadable one counts as none)."""
    out = []
    for path in backups(home):
        try:
            conn = _connect(path, read_only=True)
        except sqlite3.Error:
            continue
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            known = [int(meta.get("generation", 1))]
            if "generations" in tables:
                known.append(conn.execute("SELECT coalesce(max(generation), 1) FROM generations").fetchone()[0])
            out.append(max(known))
        except (sqlite3.Error, ValueError):
            continue
        finally:
            conn.close()
    return out


def _intact(db: Path) -> bool:
    try:
        _check(db)
    except BadInput:
        return False
    return True


def _copy(source: Path, target: Path) -> None:
    src, dst = _connect(source, read_only=True), _connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
