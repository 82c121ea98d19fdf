"""What a store's reads cost in SQLite virtual machine steps (a cost that does not move with the
machine's load), and acknowledged sales piling up under them."""

from datetime import datetime

from sqlalchemy import event

from branch_client.sale_entry import parse_items
from branch_client.store import Store
from tests.branch_client.fakes import page


def sqlite_steps(store: Store, *calls) -> int:
    """The steps `calls` (reads) take on `store`'s connections, from any thread (a progress handler counting every step).

    The store's checkpoint thread must not run while a counting handler is set: it takes its
    connections from the same pool, and a checkpoint on a counted connection calls the handler
    (Python, so it needs the GIL) while holding that connection's mutex, which clearing the
    handler waits for holding the GIL: a deadlock no test timeout can break. So the thread is
    waited for before the handlers are set and again before they are cleared (a wait lets the
    GIL go, so a checkpoint under way can finish).
    """
    store._checkpointer.wait_idle()  # the writes before (a pull's page starts a checkpoint)
    steps, counted = [], set()

    def count_steps(conn, *_args):
        dbapi = conn.connection.dbapi_connection
        dbapi.set_progress_handler(lambda: steps.append(1), 1)
        counted.add(dbapi)

    event.listen(store.engine, "before_cursor_execute", count_steps)
    try:
        for call in calls:
            call()
    finally:
        event.remove(store.engine, "before_cursor_execute", count_steps)
        store._checkpointer.wait_idle()
        for dbapi in counted:
            dbapi.set_progress_handler(None, 1)
    return len(steps)


def sell_and_acknowledge(store: Store, count: int, through: int, now: datetime, sku: str = "SOAP") -> list[int]:
    """`count` sales of `sku`, pushed at `now`; then the cloud acknowledges up to `through`. Their seqs."""
    seqs = [store.record_sale(parse_items([f"{sku}=1"])).seq for _ in range(count)]
    store.mark_pushed(seqs, now)
    store.apply_catalog_page(page(next_cursor=store.sync_position().catalog_cursor), applied_through=through)
    return seqs
