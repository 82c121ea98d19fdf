"""The sync lock: one sync (or restore) at a time per data home, and who holds it.

The lock itself is an OS file lock on `sync.lock` (filelock: fcntl on Linux, msvcrt on
Windows), which the OS drops when its process ends, however it ends. Beside it the holder
writes `sync.lock.owner`: its process identity (PID, creation time, boot id), its parent's,
whether it is the Python process of the one-file executable, and what it does. So:

- a holder that is gone left at most a stale owner file; the next `acquire` takes the
  lock (retrying for a few seconds: Windows may free a dead process's file locks late,
  as the LockFileEx documentation warns) and overwrites the file;
- a holder that is alive is named: "a sync is already running (process 4242, since ...)";
- a holder that is alive but orphaned is ended and the lock taken over. The one-file
  executable runs as two processes, and Task Scheduler's time limit may end only the
  first (PyInstaller's bootloader), leaving the Python process holding the lock for ever.
  Ending it is safe: a sync may stop at any point without losing or doubling a sale (the
  exactly-once design the fault suite checks by killing the branch mid-sync).

`backup.restore` takes the same `sync.lock` with filelock directly; both exclude each other.
"""

import json
import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from . import onefile, paths, processes
from .errors import SyncAlreadyRunning

OWNER_SUFFIX = ".owner"
RELEASE_WAIT = 5.0  # seconds to wait for the OS to free a dead or ended holder's lock
POLL = 0.1


def is_onefile_child() -> bool:
    """This is the Python process of a one-file PyInstaller build (its parent is the bootloader)."""
    return onefile.bundle_dir() is not None


def owner_record(purpose: str, now: datetime | None = None) -> dict:
    me = processes.identify()
    return {"purpose": purpose, "process": me.as_dict(), "parent": processes.identify(os.getppid()).as_dict(),
            "onefile": is_onefile_child(), "since": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")}


def judge(owner: dict | None, running=processes.is_running) -> str:
    """"gone", "running" or "orphaned" for an owner record (None or unreadable: "gone")."""
    try:
        holder = processes.ProcessId.from_dict(owner["process"])
    except (TypeError, KeyError, ValueError, AttributeError):
        return "gone"
    if not running(holder):
        return "gone"
    if owner.get("onefile"):
        try:
            parent = processes.ProcessId.from_dict(owner["parent"])
        except (TypeError, KeyError, ValueError, AttributeError):
            return "running"
        if not running(parent):
            return "orphaned"
    return "running"


class SyncLock:
    """`with SyncLock(home):` ... ; raises SyncAlreadyRunning (naming the holder) when a live sync has it."""

    def __init__(self, home: Path, purpose: str = "sync", *, release_wait: float = RELEASE_WAIT,
                 end_process=None):
        self.path = paths.lock_path(Path(home))
        self.owner_path = self.path.with_name(self.path.name + OWNER_SUFFIX)
        self.purpose = purpose
        self.release_wait = release_wait
        self._end = end_process or _end_process
        self._lock = FileLock(str(self.path), timeout=0)

    def read_owner(self) -> dict | None:
        try:
            return json.loads(self.owner_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = None
        while True:
            try:
                self._lock.acquire()
                break
            except Timeout:
                pass
            owner = self.read_owner()
            if owner is None:  # a holder that does not record itself (backup.restore, an older release)
                raise SyncAlreadyRunning()
            verdict = judge(owner)
            if verdict == "running":
                raise SyncAlreadyRunning(_running_message(owner))
            if verdict == "orphaned" and deadline is None:
                self._end(owner["process"]["pid"])
            if deadline is None:
                deadline = time.monotonic() + self.release_wait
            elif time.monotonic() > deadline:
                raise SyncAlreadyRunning(_running_message(owner))
            time.sleep(POLL)
        self._write_owner()

    def _write_owner(self) -> None:
        tmp = self.owner_path.with_name(self.owner_path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(owner_record(self.purpose)), encoding="utf-8")
        os.replace(tmp, self.owner_path)

    def release(self) -> None:
        try:
            self.owner_path.unlink()
        except OSError:
            pass  # a stale owner file is harmless: its process is gone
        self._lock.release()

    def __enter__(self) -> "SyncLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _running_message(owner: dict) -> str:
    what = owner.get("purpose") or "sync"
    process = owner.get("process")
    pid = process.get("pid") if isinstance(process, dict) else "unknown"
    return (f"a {what} is already running for this branch (process {pid}, since {owner.get('since')}); "
            "wait for it to finish (nothing to do)")


def _end_process(pid: int) -> None:
    """End an orphaned holder (TerminateProcess on Windows, SIGTERM elsewhere)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        pass  # already gone, or not ours to end: the wait for the lock decides
