"""A pull's pages are copied from the WAL into the database file by the store's own thread, not in their commit.

The Checkpointer's waiting is tested with a recording function in place of SQLite's
checkpoint; the store's use of it on a real SQLite file, by reading the database file alone
(a copy without its -wal), which holds a commit's rows only once a checkpoint copied them.
"""

import shutil
import sqlite3
import time

from branch_client.checkpoints import TRUNCATE_WAIT_MS, Checkpointer, checkpoint
from branch_client.sale_entry import parse_items
from branch_client.store import WAL_SIZE_LIMIT, Store
from tests.branch_client.fakes import entry, page, product


def _file_alone(store: Store, tmp_path) -> sqlite3.Connection:
    """The database file as it is on disk, without the WAL beside it."""
    copy = tmp_path / "alone.db"
    shutil.copyfile(store.path, copy)
    return sqlite3.connect(copy)


def _prices(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT sku, price FROM products"))


# --- the store ---------------------------------------------------------------------------------


def _two_wide_pages(store: Store) -> None:
    """A first pull's two pages of 10,000 products: about 1,500 pages of WAL, 6 MB."""
    for at in (0, 10_000):
        store.apply_catalog_page(page(*[entry(at + i + 1, product(f"P{at + i:05d}", price=100 + i, name=f"পণ্য {i} product"))
                                        for i in range(10_000)], more=at == 0), 0)


def _wal_bytes(store: Store) -> int:
    return store.path.with_name(store.path.name + "-wal").stat().st_size


def test_a_pull_of_thousands_of_pages_leaves_them_in_the_wal_for_the_checkpointer(home, tmp_path):
    store = Store(home)
    store._checkpoint()  # the schema is in the file
    store._checkpointer.close()  # and nothing copies the WAL now: what reaches the file, a commit put there
    store._checkpointer = Checkpointer(lambda: None)
    _two_wide_pages(store)
    assert _wal_bytes(store) // (4096 + 24) > 1000  # SQLite's own rule would have checkpointed in the commit
    alone = _file_alone(store, tmp_path)
    try:
        assert _prices(alone) == {}
    finally:
        alone.close()
        store.close()


def test_a_pull_reaches_the_database_file_once_the_checkpointer_has_run(store, tmp_path):
    store.apply_catalog_page(page(entry(1, product("SOAP", price=4500)), entry(2, product("RICE", price=7000))), 0)
    assert store._checkpointer.wait_idle()
    alone = _file_alone(store, tmp_path)
    try:
        assert _prices(alone) == {"SOAP": 4500, "RICE": 7000}
    finally:
        alone.close()


def test_every_other_write_keeps_sqlites_own_checkpoint_at_1000_pages(store):
    store.apply_catalog_page(page(entry(1, product("SOAP", price=4500))), 0)
    store.record_sale(parse_items(["SOAP=1"]))
    with store._writer.connect() as conn:  # the pooled connection the pull's page used
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    assert store._checkpointer.checkpoints <= 1  # the sale asked for none


def test_after_a_wide_pull_the_checkpointer_empties_the_wal_so_no_write_has_to_cut_it_back(store):
    _two_wide_pages(store)
    assert _wal_bytes(store) > WAL_SIZE_LIMIT
    assert store._checkpointer.wait_idle()
    assert _wal_bytes(store) == 0
    store.record_sale(parse_items(["P00001=1"]))
    assert 0 < _wal_bytes(store) <= WAL_SIZE_LIMIT


def test_closing_the_store_stops_its_checkpoint_thread(home):
    store = Store(home)
    store.apply_catalog_page(page(entry(1, product("SOAP", price=4500))), 0)
    thread = store._checkpointer._thread
    assert thread is not None and thread.is_alive()
    store.close()
    assert not thread.is_alive()


# --- one checkpoint ------------------------------------------------------------------------------


def _wal_db(tmp_path, rows: int) -> tuple[sqlite3.Connection, list[str]]:
    db = tmp_path / "w.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("CREATE TABLE t (v TEXT)")
    writer.execute("BEGIN")
    writer.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * rows)
    writer.execute("COMMIT")
    checker = sqlite3.connect(db, isolation_level=None)
    checker.execute("PRAGMA busy_timeout = 5000")
    said: list[str] = []
    checker.set_trace_callback(said.append)
    return checker, said


def test_a_checkpoint_of_a_small_wal_only_copies_it_passively(tmp_path):
    conn, said = _wal_db(tmp_path, rows=10)
    checkpoint(conn, tmp_path / "w.db-wal", size_limit=4 * 1024 * 1024)
    assert [s for s in said if "wal_checkpoint" in s] == ["PRAGMA wal_checkpoint(PASSIVE)"]


def test_a_wal_over_the_limit_is_emptied_after_the_passive_pass_waiting_briefly(tmp_path):
    conn, said = _wal_db(tmp_path, rows=20_000)  # about 10 MB of WAL
    checkpoint(conn, tmp_path / "w.db-wal", size_limit=4 * 1024 * 1024)
    assert [s for s in said if "wal_checkpoint" in s] == ["PRAGMA wal_checkpoint(PASSIVE)", "PRAGMA wal_checkpoint(TRUNCATE)"]
    assert said.index(f"PRAGMA busy_timeout = {TRUNCATE_WAIT_MS}") < said.index("PRAGMA wal_checkpoint(TRUNCATE)")
    assert (tmp_path / "w.db-wal").stat().st_size == 0
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000  # put back


# --- the Checkpointer's waiting -------------------------------------------------------------------


class _Recorder:
    def __init__(self, fail_first: bool = False):
        self.calls, self.fail_first = 0, fail_first

    def __call__(self) -> None:
        self.calls += 1
        if self.fail_first and self.calls == 1:
            raise sqlite3.OperationalError("disk I/O error")


def test_a_burst_of_writes_is_checkpointed_once_after_it():
    done = _Recorder()
    cp = Checkpointer(done, quiet=0.5)
    try:
        for _ in range(50):
            cp.wrote()
        assert cp.wait_idle()
        assert done.calls == 1 and cp.checkpoints == 1
    finally:
        cp.close()


def test_writes_that_never_pause_are_still_checkpointed_every_max_delay():
    done = _Recorder()
    cp = Checkpointer(done, quiet=0.2, max_delay=0.3)
    try:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            cp.wrote()
            time.sleep(0.02)  # never quiet for 0.2 s
        assert done.calls >= 2
    finally:
        cp.close()


def test_nothing_is_checkpointed_before_anything_is_written():
    done = _Recorder()
    cp = Checkpointer(done, quiet=0.01)
    time.sleep(0.1)
    cp.close()
    assert done.calls == 0 and cp._thread is None


def test_a_failed_checkpoint_is_tried_again_after_the_next_write(caplog):
    done = _Recorder(fail_first=True)
    cp = Checkpointer(done, quiet=0.01)
    try:
        cp.wrote()
        assert cp.wait_idle()
        assert done.calls == 1 and cp.checkpoints == 0
        assert "checkpoint of the branch database failed: disk I/O error" in caplog.text
        cp.wrote()
        assert cp.wait_idle()
        assert done.calls == 2 and cp.checkpoints == 1
    finally:
        cp.close()


def test_after_close_writes_start_no_checkpoint():
    done = _Recorder()
    cp = Checkpointer(done, quiet=0.01)
    cp.close()
    cp.wrote()
    time.sleep(0.1)
    assert done.calls == 0 and cp._thread is None
