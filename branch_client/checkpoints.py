"""Copying the branch database's WAL into the database file, on a thread of the store's own.

SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 pages:
a price day (1,000 prices and 100 deletes, about 1,650 pages) spent 30 of its 70 ms in it,
and whichever sale came next after a smaller pull paid for that pull's pages at the till.
The store's connections therefore never checkpoint in a commit (`wal_autocheckpoint = 0`,
set by the store on every connection); after each write the store tells its `Checkpointer`,
which waits until writes have been quiet for a moment and then runs a PASSIVE checkpoint:
it copies what it can without waiting for readers or writers, who go on meanwhile (SQLite
releases the GIL while it copies, so it runs beside the till's own work on another core).

A checkpoint that fails or cannot finish (a reader still on an old snapshot) is simply
tried again after the next write; the WAL keeps every committed page until then, so
nothing is lost, and when the store's last connection closes SQLite checkpoints the rest.
"""

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("branchsync.store")

# Seconds without a write before the checkpoint runs: a burst (a pull's pages, a push's marks)
# is copied once, after it. Writes that never pause are checkpointed every MAX_DELAY seconds.
QUIET = 0.05
MAX_DELAY = 2.0
CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"


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
