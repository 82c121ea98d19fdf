"""The WAL is copied into the database file by the store's own thread, never inside a commit.

The Checkpointer's waiting is tested with a recording function in place of SQLite's
checkpoint; the store's use of it on a real SQLite file, by reading the database file alone
(a copy without its -wal), which holds a commit's rows only once a checkpoint copied them.
"""

import shutil
import sqlite3
import threading
import time

from branch_client.checkpoints import Checkpointer
from branch_client.sale_entry import parse_items
from branch_client.store import Store
from tests.branch_client.fakes import entry, page, product


def _file_alone(store: Store, tmp_path) -> sqlite3.Connection:
    """The database file as it is on disk, without the WAL beside it."""
    copy = tmp_path / "alone.db"
    shutil.copyfile(store.path, copy)
    return sqlite3.connect(copy)


def _prices(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT sku, price FROM products"))


# --- the store ---------------------------------------------------------------------------------


def test_no_connection_of_the_store_checkpoints_inside_a_commit(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0


def test_a_commit_of_thousands_of_pages_leaves_them_in_the_wal_for_the_checkpointer(home, tmp_path):
    store = Store(home)
    assert store._checkpointer.wait_idle()  # the schema is in the file
    store._checkpointer.close()  # and nothing copies the WAL now: what reaches the file, a commit put there
    store._checkpointer = Checkpointer(lambda: None)
    for at in (0, 10_000):  # a first pull's two pages
        store.apply_catalog_page(page(*[entry(at + i + 1, product(f"P{at + i:05d}", price=100 + i, name=f"পণ্য {i} product"))
                                        for i in range(10_000)], more=at == 0), 0)
    frames = store.path.with_name(store.path.name + "-wal").stat().st_size // (4096 + 24)
    assert frames > 1000  # SQLite's own rule would have checkpointed in the commit
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


def test_a_sale_reaches_the_database_file_after_the_checkpoint_that_follows_it(store, tmp_path):
    store.apply_catalog_page(page(entry(1, product("SOAP", price=4500))), 0)
    sale = store.record_sale(parse_items(["SOAP=2"]))
    assert store._checkpointer.wait_idle()
    alone = _file_alone(store, tmp_path)
    try:
        assert alone.execute("SELECT sale_id FROM sales").fetchall() == [(sale.sale_id,)]
    finally:
        alone.close()


def test_closing_the_store_stops_its_checkpoint_thread(home):
    store = Store(home)  # opening it wrote its schema, so its thread runs
    assert any(t.name == "branchsync-checkpoint" for t in threading.enumerate())
    thread = store._checkpointer._thread
    store.close()
    assert thread is not None and not thread.is_alive()


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
