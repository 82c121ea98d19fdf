"""Counting the SQLite virtual machine steps a store's reads take: a cost that does not move with the machine's load."""

from sqlalchemy import event

from branch_client.store import Store


def sqlite_steps(store: Store, *calls) -> int:
    """The steps `calls` take on `store`'s connections, from any thread (a progress handler counting every step)."""
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
        for dbapi in counted:
            dbapi.set_progress_handler(None, 1)
    return len(steps)
