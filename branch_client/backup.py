"""Backups of the branch database, and restoring one.

`backup` copies the live database with SQLite's online backup API
(`sqlite3.Connection.backup`): a consistent copy even while the till records sales or a
sync runs, WAL included. Copies go to `backups/branchsync-<UTC time>.db` in the data home,
are checked with PRAGMA integrity_check before they count, and only the newest `keep`
are kept. A copy is switched from WAL to a rollback journal before it is closed, so each
backup is one self-contained file with no -wal or -shm beside it. The branch secret is not in the database and never in a backup.

`restore` checks the file (a branchsync database of a schema this program knows, intact,
of the same branch), takes the sync lock, saves the current database as a backup first,
and copies the file into the live database with the same backup API (so WAL and readers
stay consistent). The restored store is marked: the cloud may already hold sales numbered
above the backup's last one (recorded after the backup was taken). The next pull tells the
branch the cloud's `applied_through`; sales recorded since the restore are then renumbered
above it, in the same transaction that stores it (see Store.apply_catalog_page), and new
numbers continue from there. No sale number the cloud already has is used again.
"""

import json
import logging
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from . import paths
from .errors import BadInput, StoreError, SyncAlreadyRunning
from .logs import LOGGER_NAME
from .schema import MIGRATIONS, SCHEMA_VERSION_KEY

BACKUP_DIR = "backups"
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


def restore(home: Path, source: Path, *, force: bool = False, keep: int = DEFAULT_KEEP) -> dict:
    """Replace the live database's content with `source`. Returns facts about the restore."""
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
        safety = None
        if db.exists():
            current = _check(db)
            if current["branch"] and found["branch"] and current["branch"] != found["branch"] and not force:
                raise BadInput(f"{source} is a backup of branch {found['branch']}, but this data home is branch "
                               f"{current['branch']}; use --force only if that is really what you want")
            safety = backup(home, keep=keep + 1, label="before-restore")
        try:
            src, dst = _connect(source, read_only=True), _connect(db)
            try:
                src.backup(dst)
            finally:
                dst.close()
                src.close()
        except sqlite3.Error as exc:
            raise StoreError(f"restoring {source} failed ({exc}); the database before the restore is saved as "
                             f"{safety}") from exc
    finally:
        lock.release()
    return {**found, "safety_backup": str(safety) if safety else None}
