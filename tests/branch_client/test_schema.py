"""Schema versions and the upgrade path, on real SQLite files."""

import sqlite3

import pytest

from branch_client.errors import StoreTooNew
from branch_client.sale_entry import parse_items
from branch_client.schema import MIGRATIONS
from branch_client.store import Store
from tests.branch_client.fakes import entry, page, product


def _version(db) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return row[0] if row else None


def _tables(db) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_an_empty_version_0_database_is_upgraded_to_the_current_schema(home):
    home.mkdir()
    sqlite3.connect(home / "branchsync.db").close()  # an existing, empty file
    with Store(home) as store:
        assert store.schema_upgrade == (0, len(MIGRATIONS))
    assert _version(home / "branchsync.db") == str(len(MIGRATIONS))
    assert {"meta", "products", "sales", "sync_state", "generations"} <= _tables(home / "branchsync.db")


def test_reopening_a_current_database_changes_nothing(home):
    with Store(home) as store:
        store.apply_catalog_page(page(entry(1, product("SOAP", 4500))), 0)
        store.record_sale(parse_items(["SOAP=2"]))
    with Store(home) as store:
        assert store.schema_upgrade == (len(MIGRATIONS), len(MIGRATIONS))
        assert store.status()["last_seq"] == 1 and store.get_product("SOAP").price == 4500


def test_an_older_database_is_upgraded_step_by_step_keeping_its_data(home):
    with Store(home) as store:
        store.apply_catalog_page(page(entry(1, product("SOAP", 4500))), 0)
        store.record_sale(parse_items(["SOAP=1"]))

    def v2_add_note(conn):
        conn.exec_driver_sql("ALTER TABLE sales ADD COLUMN note TEXT")

    with Store(home, migrations=[*MIGRATIONS, v2_add_note]) as store:
        assert store.schema_upgrade == (len(MIGRATIONS), len(MIGRATIONS) + 1)
        assert store.status()["sales_recorded"] == 1
    assert _version(home / "branchsync.db") == str(len(MIGRATIONS) + 1)
    with sqlite3.connect(home / "branchsync.db") as conn:
        assert "note" in [r[1] for r in conn.execute("PRAGMA table_info(sales)")]


def test_a_failing_upgrade_step_leaves_the_previous_version_untouched(home):
    Store(home).close()

    def v2_half_done(conn):
        conn.exec_driver_sql("CREATE TABLE half (x)")
        raise RuntimeError("step failed half way")

    with pytest.raises(RuntimeError):
        Store(home, migrations=[*MIGRATIONS, v2_half_done])
    assert _version(home / "branchsync.db") == str(len(MIGRATIONS)) and "half" not in _tables(home / "branchsync.db")


def test_a_database_from_a_newer_branchsync_is_refused_not_guessed_at(home):
    Store(home, migrations=[*MIGRATIONS, lambda conn: None]).close()
    with pytest.raises(StoreTooNew, match=f"schema version {len(MIGRATIONS) + 1}"):
        Store(home)


def test_the_search_index_is_built_for_a_catalog_stored_before_it_existed(home):
    from branch_client.schema import MIGRATIONS as ALL

    with Store(home, migrations=ALL[:1]):  # a till from before the search index
        pass
    conn = sqlite3.connect(home / "branchsync.db")  # its catalog, written as that version stored it
    with conn:
        conn.execute("INSERT INTO products (sku, name, price, barcode, unit, vat_rate, active, version) "
                     "VALUES ('RICE-5KG', 'চাল ৫ কেজি', 42000, '8901234567890', 'pcs', '0', 1, 1)")
    conn.close()
    with Store(home) as store:
        assert store.schema_upgrade == (1, len(ALL))
        assert [p.sku for p in store.search_products("চাল")] == ["RICE-5KG"]
        assert store.find_by_code("8901234567890").sku == "RICE-5KG"


def test_a_version_1_database_becomes_generation_1_keeping_every_number_and_void(home):
    with Store(home, migrations=MIGRATIONS[:1]) as store:
        assert store.schema_upgrade == (0, 1)
    conn = sqlite3.connect(home / "branchsync.db")
    body = '{"seq": %d, "sale_id": "%s", "kind": "%s", "voids": %s, "recorded_at": "2026-11-28T06:00:00Z", ' \
           '"lines": %s, "payment": {"method": "cash", "amount": %d}, "total": %d}'
    line = '[{"sku": "SOAP", "name": "Soap", "qty": "1", "unit_price": 4500, "list_price": 4500, "line_total": 4500}]'
    with conn:
        conn.execute("UPDATE sync_state SET applied_through = 1")
        for seq, kind, voids, lines, total in ((1, "sale", None, line, 4500), (2, "void", 1, "[]", -4500)):
            conn.execute("INSERT INTO sales (seq, sale_id, kind, voids, recorded_at, total, payment_method, body, "
                         "pushed_at, push_count) VALUES (?, ?, ?, ?, '2026-11-28T06:00:00+00:00', ?, 'cash', ?, "
                         "'2026-11-28T06:01:00+00:00', 1)",
                         (seq, f"{seq:032x}", kind, voids, total,
                          body % (seq, f"{seq:032x}", kind, "null" if voids is None else voids, lines, total, total)))
    conn.close()
    with Store(home) as store:
        assert store.schema_upgrade == (1, len(MIGRATIONS))
        assert store.generation() == 1 and store.status()["applied_through"] == 1
        assert [(r.number, r.voided_by, r.voids_number) for r in store.recent_sales()] == [("2", None, "1"),
                                                                                          ("1", "2", None)]


def test_a_version_4_database_gains_held_carts_cashiers_and_a_cashier_per_sale_keeping_its_sales(home):
    from tests.builders import make_sale

    with Store(home, migrations=MIGRATIONS[:4]) as store:
        store.apply_catalog_page(page(entry(1, product("SOAP", 4500))), 0)
    old = make_sale(1)
    with sqlite3.connect(home / "branchsync.db") as conn:
        conn.execute("INSERT INTO sales (generation, seq, sale_id, kind, recorded_at, total, payment_method, body) "
                     "VALUES (1, 1, ?, 'sale', '2026-11-28T06:00:00.000000+00:00', ?, 'cash', ?)",
                     (old.sale_id, old.total, old.model_dump_json()))
    assert {"held_carts", "cashiers"}.isdisjoint(_tables(home / "branchsync.db"))
    with Store(home) as store:
        assert store.schema_upgrade == (4, len(MIGRATIONS))
        assert store.get_sale(1).sale == old and store.get_sale(1).cashier is None
        store.add_cashier("Rahim", "1234")
        assert store.record(parse_items(["SOAP=1"]), cashier="Rahim").number == "2"
        assert store.get_sale(2).cashier == "Rahim"
        store.hold_cart(parse_items(["SOAP=2"]), [{"sku": "SOAP", "qty": "2"}])
        assert [c.total for c in store.held_carts()] == [9000]


def test_a_version_6_database_gains_refunds_and_shifts_keeping_its_sales_their_numbers_and_voids(home):
    from tests.builders import make_line, make_sale, make_void

    with Store(home, migrations=MIGRATIONS[:6]) as store:
        store.apply_catalog_page(page(entry(1, product("SOAP", 4500))), 0)
    first, second = make_sale(1), make_sale(2, [make_line("SOAP", "2", 4500)])
    void = make_void(3, first)
    with sqlite3.connect(home / "branchsync.db") as conn:
        for event, voids, cashier in ((first, None, None), (second, None, "Rahim"), (void, 1, None)):
            conn.execute("INSERT INTO sales (generation, seq, sale_id, kind, voids_generation, voids, recorded_at, "
                         "total, payment_method, body, cashier) VALUES (1, ?, ?, ?, ?, ?, "
                         "'2026-11-28T06:00:00.000000+00:00', ?, 'cash', ?, ?)",
                         (event.seq, event.sale_id, event.kind.value, voids and 1, voids, event.total,
                          event.model_dump_json(), cashier))
    assert "shifts" not in _tables(home / "branchsync.db")
    with Store(home) as store:
        assert store.schema_upgrade == (6, len(MIGRATIONS))
        assert store.get_sale(1).voided_by == "3" and store.get_sale(2).sale == second
        assert store.get_sale(2).cashier == "Rahim"
        assert store.refund("2", [(1, "1")]).sale.total == -4500
        store.open_shift("Rahim", 0)
        assert store.close_shift(0).number == "5"


def test_the_status_tallies_over_all_sales_read_a_covering_index_not_the_sale_rows(home):
    from sqlalchemy import event

    with Store(home) as store:
        seen = []
        event.listen(store.engine, "before_cursor_execute",
                     lambda _c, _cur, statement, params, *_: seen.append((statement, params)))
        store.status()
        statement, params = next((s, p) for s, p in seen if "sum(sales.total)" in s)
        with store.engine.connect() as conn:
            plan = " ".join(r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
    assert "COVERING INDEX sales_status" in plan, plan


def test_a_version_7_database_gains_the_sign_in_lockouts_keeping_its_cashiers(home):
    with Store(home, migrations=MIGRATIONS[:7]) as store:
        store.add_cashier("Rahim", "4821")
    assert "sign_in_lockouts" not in _tables(home / "branchsync.db")
    with Store(home) as store:
        assert store.schema_upgrade == (7, len(MIGRATIONS)) == (7, 8)
        assert store.sign_in("Rahim", "0000") is None and store.sign_in_tries("Rahim").wrong == 1
        assert store.sign_in("Rahim", "4821") == "Rahim"
