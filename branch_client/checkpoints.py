"""Copying the branch database's WAL into the database file, on a thread of the store's own.

SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 pages: a
price day (1,000 prices and 100 deletes, about 1,650 pages) spent 30 of its 70 ms in it. So
a pull's page commits without it (the store turns `wal_autocheckpoint` off for that one
transaction) and tells its `Checkpointer`, which at once runs a PASSIVE checkpoint on a
thread of its own: it copies what it can without waiting for readers or writers, who go on
meanwhile (SQLite releases the GIL while it copies, so it runs beside the till's own work on
another core). Sales and every other write keep SQLite's own rule, so a sale is recorded
exactly as before.

A passive checkpoint never lets the WAL start over while writes keep coming (the next write
appends instead of starting again at the front): a first pull's pages, back to back, grew
it to 80 MB. So when the WAL file is larger than `size_limit` after a passive pass, a
TRUNCATE follows: it holds new writers back while it copies what came meanwhile (a few
pages after the passive pass) and waits for readers on the WAL, at most TRUNCATE_WAIT_MS,
so no writer is held longer; then it cuts the WAL file to nothing, here. (RESTART, which
leaves the cutting to the next write, made that write pay for it: a price day right after
a first pull took 0.105 s instead of 0.087 s, its first commit cutting back the 44 MB
the pull's WAL had grown to.)

A checkpoint that fails or cannot finish (a reader still on an old snapshot) is simply
tried again after the next pull's page, and the next commit past 1,000 pages runs SQLite's
own; the WAL keeps every committed page until then, so nothing is lost.
"""

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("branchsync.store")

# Seconds without a pull's page before the checkpoint runs. 0: it starts as soon as a page
# has committed, since the sync's next commit (its last-sync time) would otherwise find the WAL
# past 1,000 pages and run SQLite's own checkpoint of them after all (with 50 ms it did, and
# the price day was no sooner); with this one under way SQLite skips its own, as a passive
# checkpoint never waits. Writes that never pause are checkpointed every MAX_DELAY seconds.
QUIET = 0.0
MAX_DELAY = 2.0
# The longest a TRUNCATE checkpoint may hold a writer back waiting for readers.
TRUNCATE_WAIT_MS = 50


def checkpoint(conn: sqlite3.Connection, wal: Path, size_limit: int) -> None:
    """Copy the WAL into the database file without waiting for anyone; then, if the WAL file
    is over `size_limit` bytes, copy the rest and empty it (see the module's docstring)."""
    cur = conn.cursor()
    try:
        cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        try:
            grown = wal.stat().st_size > size_limit
        except FileNotFoundError:
            return
        if grown:
            waited = cur.execute("PRAGMA busy_timeout").fetchone()[0]
            cur.execute(f"PRAGMA busy_timeout = {TRUNCATE_WAIT_MS}")
            try:
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                cur.execute(f"PRAGMA busy_timeout = {int(waited)}")
    finally:
        cur.close()


class Checkpointer:
    """Runs `checkpoint` on a daemon thread once writes (`wrote`) have been quiet for `quiet` seconds."""

    def __init__(self, checkpoint: Callable[[], None], quiet: float = QUIET, max_delay: float = MAX_DELAY):
        self._checkpoint = checkpoint
        self._quiet, self._max_delay = quiet, max_delay
        self._cv = threading.Condition()
        self._pending = False   # a write since the last checkpoint began
        self._running = False   # a checkpoint (or the quiet wait before it) is under way
        self._closed = False
        self._thread: threading.Thread | None = None
        self.checkpoints = 0    # checkpoints run, for tests and diagnostics

    def wrote(self) -> None:
        """A write transaction committed: its pages are in the WAL until the next checkpoint."""
        with self._cv:
            if self._closed:
                return
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="branchsync-checkpoint", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every write so far is checkpointed (or `timeout` passes); True if it was."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._pending or self._running:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return False
                self._cv.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the checkpoint under way, if any); later writes are not checkpointed here."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if self._closed:
                    self._cv.notify_all()
                    return
                self._running = True
                began = time.monotonic()
                # Until a whole quiet period passes with no write (a write notifies and sets _pending again).
                while self._pending and not self._closed and time.monotonic() - began < self._max_delay:
                    self._pending = False
                    self._cv.wait(self._quiet)
            try:
                self._checkpoint()
                self.checkpoints += 1
            except Exception as exc:  # the WAL keeps the pages; the next write tries again
                log.warning("checkpoint of the branch database failed: %s", exc)
            finally:
                with self._cv:
                    self._running = False
                    self._cv.notify_all()
