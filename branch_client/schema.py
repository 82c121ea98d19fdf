"""The branch database: table definitions and the migration steps that build them.

`MIGRATIONS[i]` takes the database from schema version i to i+1; version 0 is an empty
file. Steps are frozen SQL (never derived from the table objects below, which describe
the newest version), applied in order by `upgrade` inside one `BEGIN IMMEDIATE`
transaction, so a failed step leaves the previous version intact and two processes
opening a fresh file cannot both migrate it. A database newer than this program knows
is refused rather than guessed at.
"""

from collections.abc import Callable, Sequence

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, Text, text

from .errors import StoreTooNew

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", String, primary_key=True),
    Column("value", Text, nullable=False),
)

products = Table(
    "products", metadata,
    Column("sku", String, primary_key=True),
    Column("name", Text, nullable=False),
    Column("price", Integer, nullable=False),          # paisa
    Column("barcode", String),
    Column("unit", String, nullable=False),
    Column("vat_rate", String, nullable=False),        # exact decimal as text
    Column("active", Integer, nullable=False),
    # The catalog version this row came with; 0 = kept from before a full resync, not yet confirmed.
    Column("version", Integer, nullable=False),
)

sales = Table(
    "sales", metadata,
    # The till's numbering generation (1, then one more per restore) and the number within it:
    # together the sale's identity, printed on the receipt as `14` or `2-14` (sale_number).
    Column("generation", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("sale_id", String, nullable=False, unique=True),
    Column("kind", String, nullable=False),
    Column("voids_generation", Integer),
    Column("voids", Integer),
    Column("recorded_at", String, nullable=False),
    Column("total", Integer, nullable=False),          # paisa, negative for a void
    Column("payment_method", String, nullable=False),
    Column("body", Text, nullable=False),              # JSON of shared.models.Sale
    Column("pushed_at", String),
    Column("push_count", Integer, nullable=False, default=0),
    Column("acked_at", String),
    # The till page's id for one submission: a retried or double-clicked submit finds its sale.
    Column("client_key", String, unique=True),
    # Why a void or refund was recorded (kept on this PC; the sales batch does not carry it).
    Column("reason", Text),
    # The cashier signed in when it was recorded (in the body too for a v3 event).
    Column("cashier", Text),
    # The sale a refund returns goods of (a sale is refunded any number of times, voided once).
    Column("refunds_generation", Integer),
    Column("refunds", Integer),
    # The shift open when it was recorded (None: outside any shift, in no Z report).
    Column("shift_id", String),
    # JSON list, per line, of why its price was overridden (or null); kept on this PC, the
    # sales batch has no field for it.
    Column("price_reasons", Text),
)

# A cashier's shift: opened with a counted float, closed with counted cash and a Z report.
shifts = Table(
    "shifts", metadata,
    Column("id", String, primary_key=True),
    Column("cashier", Text, nullable=False),
    Column("opened_at", String, nullable=False),
    Column("opening_float", Integer, nullable=False),   # paisa
    Column("closed_at", String),
    Column("counted_cash", Integer),                    # paisa
    Column("close_generation", Integer),                # the shift_close event
    Column("close_seq", Integer),
    Column("report", Text),                             # JSON of shifts.ZReport
)

# Carts put aside at the till, to be rung up later; their items as the till submits them.
held_carts = Table(
    "held_carts", metadata,
    Column("id", Integer, primary_key=True),
    Column("held_at", String, nullable=False),
    Column("cashier", Text),
    Column("items", Text, nullable=False),           # JSON list of {"sku", "qty"} or {"code"}
    Column("total", Integer, nullable=False),        # paisa, as priced when held
    Column("line_count", Integer, nullable=False),
    Column("first_name", Text, nullable=False),
)

# The till's cashiers: a PIN only as a salted hash (branch_client.cashiers); never synced.
cashiers = Table(
    "cashiers", metadata,
    Column("name", Text, primary_key=True),
    Column("pin_hash", Text, nullable=False),
    Column("created_at", String, nullable=False),
)

# Wrong PINs in a row per name typed at the till, and until when the name is locked.
sign_in_lockouts = Table(
    "sign_in_lockouts", metadata,
    Column("name", Text, primary_key=True),
    Column("wrong", Integer, nullable=False),
    Column("locked_until", String),
)

# The search keys of each product (NFKC + casefold, see store.fold), kept by triggers on
# products in the same transaction as every change; an FTS5 trigram index over them.
product_terms = Table(
    "product_terms", metadata,
    Column("id", Integer, primary_key=True),
    Column("sku", String, nullable=False, unique=True),
    Column("sku_key", Text, nullable=False),
    Column("code_key", Text, nullable=False),
    Column("name_key", Text, nullable=False),
)

sync_state = Table(
    "sync_state", metadata,
    Column("id", Integer, primary_key=True),
    Column("catalog_cursor", Integer, nullable=False),
    Column("applied_through", Integer, nullable=False),
    Column("last_pull", String),
    Column("last_push", String),
    Column("last_error", Text),
    Column("last_error_at", String),
)

# The cloud's watermark of each generation of this till, as the last pull said.
generations = Table(
    "generations", metadata,
    Column("generation", Integer, primary_key=True, autoincrement=False),
    Column("applied_through", Integer, nullable=False),
)

SCHEMA_VERSION_KEY = "schema_version"
# meta key: the generation new sales are numbered in.
GENERATION_KEY = "generation"


def _v1_initial(conn: Connection) -> None:
    for stmt in (
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE products (
            sku TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            price INTEGER NOT NULL CHECK (price >= 0),
            barcode TEXT,
            unit TEXT NOT NULL,
            vat_rate TEXT NOT NULL,
            active INTEGER NOT NULL,
            version INTEGER NOT NULL
        )""",
        "CREATE INDEX products_barcode ON products (barcode)",
        """CREATE TABLE sales (
            seq INTEGER PRIMARY KEY CHECK (seq >= 1),
            sale_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('sale', 'void')),
            voids INTEGER REFERENCES sales (seq),
            recorded_at TEXT NOT NULL,
            total INTEGER NOT NULL,
            payment_method TEXT NOT NULL,
            body TEXT NOT NULL,
            pushed_at TEXT,
            push_count INTEGER NOT NULL DEFAULT 0,
            acked_at TEXT
        )""",
        # A sale is voided at most once.
        "CREATE UNIQUE INDEX sales_one_void ON sales (voids) WHERE voids IS NOT NULL",
        "CREATE INDEX sales_unacked ON sales (seq) WHERE acked_at IS NULL",
        """CREATE TABLE sync_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            catalog_cursor INTEGER NOT NULL DEFAULT 0,
            applied_through INTEGER NOT NULL DEFAULT 0,
            last_pull TEXT,
            last_push TEXT,
            last_error TEXT,
            last_error_at TEXT
        )""",
        "INSERT INTO sync_state (id, catalog_cursor, applied_through) VALUES (1, 0, 0)",
    ):
        conn.exec_driver_sql(stmt)


def _v2_sale_key_and_reason(conn: Connection) -> None:
    for stmt in (
        "ALTER TABLE sales ADD COLUMN client_key TEXT",
        "ALTER TABLE sales ADD COLUMN reason TEXT",
        "CREATE UNIQUE INDEX sales_client_key ON sales (client_key) WHERE client_key IS NOT NULL",
    ):
        conn.exec_driver_sql(stmt)


def _v3_product_search(conn: Connection) -> None:
    """The search index: keys per product (their own table, so the FTS rowid is a stable
    INTEGER PRIMARY KEY) and an external-content FTS5 trigram table over them.

    The triggers call bs_fold, which every Store connection registers; the index is built
    here for the catalog already stored.
    """
    for stmt in (
        """CREATE TABLE product_terms (
            id INTEGER PRIMARY KEY,
            sku TEXT NOT NULL UNIQUE,
            sku_key TEXT NOT NULL,
            code_key TEXT NOT NULL,
            name_key TEXT NOT NULL
        )""",
        "CREATE INDEX product_terms_sku_key ON product_terms (sku_key)",
        "CREATE INDEX product_terms_code_key ON product_terms (code_key)",
        "CREATE INDEX product_terms_name_key ON product_terms (name_key)",
        """CREATE VIRTUAL TABLE product_search USING fts5(
            sku_key, code_key, name_key, content='product_terms', content_rowid='id',
            tokenize='trigram case_sensitive 1')""",
        """CREATE TRIGGER product_terms_ai AFTER INSERT ON product_terms BEGIN
            INSERT INTO product_search (rowid, sku_key, code_key, name_key)
            VALUES (new.id, new.sku_key, new.code_key, new.name_key);
        END""",
        """CREATE TRIGGER product_terms_ad AFTER DELETE ON product_terms BEGIN
            INSERT INTO product_search (product_search, rowid, sku_key, code_key, name_key)
            VALUES ('delete', old.id, old.sku_key, old.code_key, old.name_key);
        END""",
        """CREATE TRIGGER product_terms_au AFTER UPDATE ON product_terms BEGIN
            INSERT INTO product_search (product_search, rowid, sku_key, code_key, name_key)
            VALUES ('delete', old.id, old.sku_key, old.code_key, old.name_key);
            INSERT INTO product_search (rowid, sku_key, code_key, name_key)
            VALUES (new.id, new.sku_key, new.code_key, new.name_key);
        END""",
        """CREATE TRIGGER products_search_ai AFTER INSERT ON products BEGIN
            INSERT INTO product_terms (sku, sku_key, code_key, name_key)
            VALUES (new.sku, bs_fold(new.sku), coalesce(bs_fold(new.barcode), ''), bs_fold(new.name));
        END""",
        """CREATE TRIGGER products_search_ad AFTER DELETE ON products BEGIN
            DELETE FROM product_terms WHERE sku = old.sku;
        END""",
        """CREATE TRIGGER products_search_au AFTER UPDATE OF sku, barcode, name ON products BEGIN
            UPDATE product_terms SET sku = new.sku, sku_key = bs_fold(new.sku),
                code_key = coalesce(bs_fold(new.barcode), ''), name_key = bs_fold(new.name)
            WHERE sku = old.sku;
        END""",
        """INSERT INTO product_terms (sku, sku_key, code_key, name_key)
            SELECT sku, bs_fold(sku), coalesce(bs_fold(barcode), ''), bs_fold(name) FROM products""",
    ):
        conn.exec_driver_sql(stmt)


def _v4_generations(conn: Connection) -> None:
    """Sales are numbered per generation: (generation, seq) is the key; existing sales are generation 1.

    SQLite cannot change a primary key in place, so the table is rebuilt (its foreign key
    checked at commit, as the old and the new table both exist for a moment).
    """
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    for stmt in (
        """CREATE TABLE sales_v2 (
            generation INTEGER NOT NULL CHECK (generation >= 1),
            seq INTEGER NOT NULL CHECK (seq >= 1),
            sale_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('sale', 'void')),
            voids_generation INTEGER,
            voids INTEGER,
            recorded_at TEXT NOT NULL,
            total INTEGER NOT NULL,
            payment_method TEXT NOT NULL,
            body TEXT NOT NULL,
            pushed_at TEXT,
            push_count INTEGER NOT NULL DEFAULT 0,
            acked_at TEXT,
            client_key TEXT,
            reason TEXT,
            PRIMARY KEY (generation, seq),
            FOREIGN KEY (voids_generation, voids) REFERENCES sales_v2 (generation, seq),
            CHECK ((voids IS NULL) = (voids_generation IS NULL))
        )""",
        """INSERT INTO sales_v2 (generation, seq, sale_id, kind, voids_generation, voids, recorded_at, total,
                                 payment_method, body, pushed_at, push_count, acked_at, client_key, reason)
           SELECT 1, seq, sale_id, kind, CASE WHEN voids IS NULL THEN NULL ELSE 1 END, voids, recorded_at, total,
                  payment_method, body, pushed_at, push_count, acked_at, client_key, reason FROM sales""",
        "DROP TABLE sales",
        "ALTER TABLE sales_v2 RENAME TO sales",
        # A sale is voided at most once.
        "CREATE UNIQUE INDEX sales_one_void ON sales (voids_generation, voids) WHERE voids IS NOT NULL",
        "CREATE INDEX sales_unacked ON sales (generation, seq) WHERE acked_at IS NULL",
        # The till page's submission id: a retried submit records one sale.
        "CREATE UNIQUE INDEX sales_client_key ON sales (client_key) WHERE client_key IS NOT NULL",
        """CREATE TABLE generations (
            generation INTEGER PRIMARY KEY CHECK (generation >= 1),
            applied_through INTEGER NOT NULL DEFAULT 0
        )""",
        "INSERT INTO generations (generation, applied_through) SELECT 1, applied_through FROM sync_state",
        "INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT (key) DO NOTHING",
        # Renumbering after a restore is gone (a restore starts a new generation instead).
        "DELETE FROM meta WHERE key = 'restored_through'",
    ):
        conn.exec_driver_sql(stmt)


def _v5_held_carts_and_cashiers(conn: Connection) -> None:
    for stmt in (
        "ALTER TABLE sales ADD COLUMN cashier TEXT",
        """CREATE TABLE held_carts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            held_at TEXT NOT NULL,
            cashier TEXT,
            items TEXT NOT NULL,
            total INTEGER NOT NULL,
            line_count INTEGER NOT NULL CHECK (line_count >= 1),
            first_name TEXT NOT NULL
        )""",
        # Names compare without case: "rahim" signs in as "Rahim".
        """CREATE TABLE cashiers (
            name TEXT PRIMARY KEY COLLATE NOCASE,
            pin_hash TEXT NOT NULL,
            created_at TEXT NOT NULL
        )""",
    ):
        conn.exec_driver_sql(stmt)


def _v6_sales_status_index(conn: Connection) -> None:
    # Status (polled by the till page) counts, sums and tallies what is unacknowledged over every
    # sale: from this narrow index instead of the rows with their JSON bodies, about 5x faster.
    conn.exec_driver_sql("CREATE INDEX sales_status ON sales (acked_at, pushed_at, total, seq)")


def _v7_complete_record(conn: Connection) -> None:
    """Refunds and shift closes in the sales table, and the shifts.

    The kind CHECK names the new kinds, which SQLite cannot change in place: the table is
    rebuilt as in version 4, with the refunded sale, the shift and the price-override
    reasons as new columns. The copy is paid once, on the first open after the upgrade:
    22.3 s for 1,000,000 sales and 1.8 s for 100,000 on the development machine (2 loaded
    cores; v1 sale bodies inserted straight into a version 6 file, then one Store open).
    """
    conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    for stmt in (
        """CREATE TABLE sales_v7 (
            generation INTEGER NOT NULL CHECK (generation >= 1),
            seq INTEGER NOT NULL CHECK (seq >= 1),
            sale_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('sale', 'void', 'refund', 'shift_close')),
            voids_generation INTEGER,
            voids INTEGER,
            recorded_at TEXT NOT NULL,
            total INTEGER NOT NULL,
            payment_method TEXT NOT NULL,
            body TEXT NOT NULL,
            pushed_at TEXT,
            push_count INTEGER NOT NULL DEFAULT 0,
            acked_at TEXT,
            client_key TEXT,
            reason TEXT,
            cashier TEXT,
            refunds_generation INTEGER,
            refunds INTEGER,
            shift_id TEXT,
            price_reasons TEXT,
            PRIMARY KEY (generation, seq),
            FOREIGN KEY (voids_generation, voids) REFERENCES sales_v7 (generation, seq),
            FOREIGN KEY (refunds_generation, refunds) REFERENCES sales_v7 (generation, seq),
            CHECK ((voids IS NULL) = (voids_generation IS NULL)),
            CHECK ((refunds IS NULL) = (refunds_generation IS NULL))
        )""",
        """INSERT INTO sales_v7 (generation, seq, sale_id, kind, voids_generation, voids, recorded_at, total,
                                 payment_method, body, pushed_at, push_count, acked_at, client_key, reason, cashier)
           SELECT generation, seq, sale_id, kind, voids_generation, voids, recorded_at, total, payment_method, body,
                  pushed_at, push_count, acked_at, client_key, reason, cashier FROM sales""",
        "DROP TABLE sales",
        "ALTER TABLE sales_v7 RENAME TO sales",
        "CREATE UNIQUE INDEX sales_one_void ON sales (voids_generation, voids) WHERE voids IS NOT NULL",
        "CREATE INDEX sales_unacked ON sales (generation, seq) WHERE acked_at IS NULL",
        "CREATE UNIQUE INDEX sales_client_key ON sales (client_key) WHERE client_key IS NOT NULL",
        "CREATE INDEX sales_status ON sales (acked_at, pushed_at, total, seq)",
        "CREATE INDEX sales_refunds ON sales (refunds_generation, refunds) WHERE refunds IS NOT NULL",
        "CREATE INDEX sales_shift ON sales (shift_id) WHERE shift_id IS NOT NULL",
        """CREATE TABLE shifts (
            id TEXT PRIMARY KEY,
            cashier TEXT NOT NULL,
            opened_at TEXT NOT NULL,
            opening_float INTEGER NOT NULL CHECK (opening_float >= 0),
            closed_at TEXT,
            counted_cash INTEGER CHECK (counted_cash >= 0),
            close_generation INTEGER,
            close_seq INTEGER,
            report TEXT
        )""",
        # One shift open at a time on a till.
        "CREATE UNIQUE INDEX shifts_one_open ON shifts ((closed_at IS NULL)) WHERE closed_at IS NULL",
    ):
        conn.exec_driver_sql(stmt)


def _v8_sign_in_lockouts(conn: Connection) -> None:
    # Wrong PINs in a row per name typed at the till (cashiers.Tries), kept so a restart of
    # the till does not reset a lock; a table of its own, as nothing else reads it.
    conn.exec_driver_sql("""CREATE TABLE sign_in_lockouts (
        name TEXT PRIMARY KEY COLLATE NOCASE,
        wrong INTEGER NOT NULL CHECK (wrong >= 0),
        locked_until TEXT
    )""")


Migration = Callable[[Connection], None]

MIGRATIONS: list[Migration] = [_v1_initial, _v2_sale_key_and_reason, _v3_product_search, _v4_generations,
                               _v5_held_carts_and_cashiers, _v6_sales_status_index, _v7_complete_record,
                               _v8_sign_in_lockouts]


def current_version(conn: Connection) -> int:
    has_meta = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").first()
    if not has_meta:
        return 0
    row = conn.execute(text("SELECT value FROM meta WHERE key = :k"), {"k": SCHEMA_VERSION_KEY}).first()
    return int(row[0]) if row else 0


def upgrade(conn: Connection, migrations: Sequence[Migration] = MIGRATIONS) -> tuple[int, int]:
    """Apply the missing steps on `conn`, which is inside a write transaction. Returns (from, to)."""
    found = current_version(conn)
    target = len(migrations)
    if found > target:
        raise StoreTooNew(
            f"the branch database has schema version {found} but this branchsync knows only up to {target}; "
            "install the newer branchsync that wrote it")
    for version in range(found, target):
        migrations[version](conn)
        conn.exec_driver_sql(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (SCHEMA_VERSION_KEY, str(version + 1)))
    return found, target
