"""The branch's SQLite store: catalog, sales, sync state and identity.

One file, `branchsync.db` in the data home, in WAL mode with synchronous=FULL (a sale
that was reported recorded survives a power cut) and a busy timeout (the till and a
scheduled sync may write at the same time). Every public method is one transaction.

Write transactions start with `BEGIN IMMEDIATE` (SQLAlchemy's SQLite recipe: the driver's
own transaction handling is switched off on connect and the `begin` event emits BEGIN),
so the write lock is taken before the next sale number is read: two processes can never
take the same number, and a number is only used if its sale is stored with it.
Reads use a deferred BEGIN and so see one consistent snapshot.
"""

import dataclasses
import json
import sqlite3
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from sqlalchemy import Connection, Engine, and_, create_engine, delete, event, func, insert, or_, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from shared.models import (CatalogPage, PaymentMethod, Product, RefundLine, Refusal, Sale, SaleKind, SaleRef, ShiftClose,
                           parse_sale_number, sale_number)

from . import cashiers as cashier_rules
from . import paths, sale_entry, settings as branch_settings, shifts as shift_rules
from .barcodes import BadLabel, parse_embedded
from .checkpoints import Checkpointer, checkpoint
from .errors import BadInput, BadSaleInput, NotEnrolled, StoreError
from .identity import Identity, read_secret, write_secret
from .sale_entry import DiscountSpec, ItemSpec, Match, PaymentSpec
from .schema import (GENERATION_KEY, MIGRATIONS, Migration, cashiers, generations, held_carts, meta, product_terms, products,
                     sales,
                     shifts, sign_in_lockouts, sync_state, upgrade)
from .settings import Settings

RESEND_AFTER = timedelta(minutes=10)
BUSY_TIMEOUT_MS = 15_000
ERROR_MAX_CHARS = 500

_WRITE = "branchsync_write"
# apply_catalog_page's `refusal` when the page brings none to keep (not the last page of a pull).
UNCHANGED = object()
# meta key: JSON of what the last restore did (shared by backup.restore, status and doctor).
RESTORED = "restored"
# meta key: JSON of the cloud's latest refusal of this branch's sales (shared.models.Refusal), as the last pull said.
LAST_REFUSAL = "last_refusal"
# meta key: while a first pull writes products without their search triggers and barcode index,
# JSON of the SQL that recreates them; its last page (or the next open) builds the index and them.
SEARCH_DEFERRED = "search_deferred"
_SCHEMA_SQL = text("SELECT name, sql FROM sqlite_master WHERE tbl_name = :table AND type IN ('trigger', 'index') "
                   "AND sql IS NOT NULL ORDER BY type DESC, name")
# A pulled product, inserted or replacing the one of its SKU (the search triggers follow it).
_INTO_PRODUCTS = "INSERT INTO products (sku, name, price, barcode, unit, vat_rate, active, version)"
_REPLACING_PRODUCT = ("ON CONFLICT (sku) DO UPDATE SET name = excluded.name, price = excluded.price, "
                      "barcode = excluded.barcode, unit = excluded.unit, vat_rate = excluded.vat_rate, "
                      "active = excluded.active, version = excluded.version")
_UPSERT_PRODUCT = f"{_INTO_PRODUCTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?) {_REPLACING_PRODUCT}"
_UPDATE_PRODUCT_KEEPING_KEYS = ("UPDATE products SET price = ?, unit = ?, vat_rate = ?, active = ?, version = ? "
                                "WHERE sku = ?")
# A product's search keys, as products' search triggers write them (bs_fold is `fold`), and
# the FTS index of the product_terms rows after an id.
_INTO_TERMS = "INSERT INTO product_terms (sku, sku_key, code_key, name_key)"
_LAST_PRODUCT_ROWID = "SELECT coalesce(max(rowid), 0) FROM products"
_INDEX_TERMS_AFTER = ("INSERT INTO product_search (rowid, sku_key, code_key, name_key) "
                      "SELECT id, sku_key, code_key, name_key FROM product_terms WHERE id > ?")
# Merges the FTS index into one b-tree after a first pull: without it the first price day
# after a first pull of 100,000 products took 0.34-0.36 s, with it 0.09-0.19 s.
_OPTIMIZE_FTS = "INSERT INTO product_search (product_search) VALUES ('optimize')"
# SQLite's automatic checkpoint runs in the commit that takes the WAL past this many pages
# (its default, set on every connection: a pull's page turns it off for its own commit, see
# _write); the WAL file is cut back to about that size when it starts over.
AUTOCHECKPOINT_PAGES = 1000
WAL_SIZE_LIMIT = 4 * 1024 * 1024
# How many of the FTS index's segments of one level FTS5 merges as it writes (its 'automerge'
# option, kept in the index's config table, so it commits with the page that sets it); 4 is
# FTS5's own default, what the index has outside a first pull.
_FTS_AUTOMERGE = "INSERT INTO product_search (product_search, rank) VALUES ('automerge', ?)"
FTS_AUTOMERGE = 4
# meta key: JSON list of sales the push set aside because one alone exceeds a queue message.
UNSENDABLE = "unsendable"
# meta key: "1" while a full resync runs (products kept from before it are at version 0 until
# the pull sends them again), "0" otherwise; its last page drops what is still at version 0.
# Absent only in a database no Store of this release has opened yet (see _know_unconfirmed).
UNCONFIRMED = "catalog_unconfirmed"
# meta key: the code of the last sync error (beside its words in sync_state), when it has one.
LAST_ERROR_CODE = "last_error_code"


class SaleState(StrEnum):
    """Where a recorded event is on its way to the cloud."""

    PENDING = "pending"    # never pushed
    PUSHED = "pushed"      # pushed, not yet acknowledged by a pull
    ACKED = "acked"        # at or below the cloud's applied_through


@dataclass(frozen=True)
class SaleRecord:
    sale: Sale
    state: SaleState
    pushed_at: str | None
    push_count: int
    acked_at: str | None
    voided_by: str | None  # the printed number of the void that voided this sale
    generation: int = 1
    reason: str | None = None       # why a void or refund was recorded (also on a v3 event)
    cashier: str | None = None      # who was signed in at the till
    price_reasons: tuple = ()       # per line, why its price was overridden (also on a v3 line)
    # Filled by get_sale: the refunds of this sale (printed numbers) and, per line position,
    # the quantity and paisa they returned.
    refunded_by: tuple[str, ...] = ()
    returned: dict | None = None

    @property
    def number(self) -> str:
        """The number printed on the receipt: `14`, or `2-14` after a restore (shared.models.sale_number)."""
        return sale_number(self.generation, self.sale.seq)

    @property
    def voids_number(self) -> str | None:
        if self.sale.voids is None:
            return None
        return sale_number(self.sale.voids_generation or self.generation, self.sale.voids)

    @property
    def refunds_number(self) -> str | None:
        ref = self.sale.refunds
        return None if ref is None else sale_number(ref.generation, ref.seq)


@dataclass(frozen=True)
class PushEvent:
    """An event due for a push, as its message carries it (`shared.encoding.WireEvent`), and what
    it refers to: `voids_generation`/`voids` of a void, `refunds_generation`/`refunds` of a refund."""

    seq: int
    json: str
    is_v3: bool
    voids_generation: int | None = None
    voids: int | None = None
    refunds_generation: int | None = None
    refunds: int | None = None

    @property
    def refers_to(self) -> tuple[int, int] | None:
        """(generation, seq) of the sale a void or refund refers to."""
        if self.voids is not None:
            return (self.voids_generation, self.voids)
        if self.refunds is not None:
            return (self.refunds_generation, self.refunds)
        return None


@dataclass(frozen=True)
class SyncPosition:
    """What a sync reads before it starts and after it ends (Store.sync_position)."""

    catalog_cursor: int
    applied_through: int  # the cloud's watermark of the generation new sales are numbered in
    pending: int          # events not yet acknowledged, pushed or not
    on_the_way: int       # of those, pushed


@dataclass(frozen=True)
class HeldCart:
    """A cart put aside at the till: its items as submitted, and how it looked when held."""

    id: int
    held_at: str
    cashier: str | None
    items: list[dict]
    total: int
    line_count: int
    first_name: str
    discount: dict | None = None  # the sale discount as submitted: {"kind", "value", "reason"}


@dataclass(frozen=True)
class Recorded:
    """A sale or void just stored, with the generation it was numbered in."""

    sale: Sale
    generation: int

    @property
    def number(self) -> str:
        return sale_number(self.generation, self.sale.seq)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def time_text(moment: datetime) -> str:
    """One fixed spelling for stored times, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("times must carry a zone")
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def fold(value: str | None) -> str | None:
    """Case- and form-insensitive search key: NFKC, casefold, NFKC again (casefolding can leave a
    string unnormalised); Bangla has no case, but composed and decomposed forms both occur.
    Stored keys and queries are folded by this one function."""
    if value is None:
        return None
    if value.isascii():  # the same key, at a fraction of the cost (most SKUs and barcodes)
        return value.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


# Search: queries of fewer characters than a trigram fall back to a prefix match on the keys.
TRIGRAM = 3
# A broad query ("rice") matches thousands of products; the ranking looks at this many matches
# (taken in index order, so the query stops there) after the exact ones. Typing on narrows it.
SEARCH_WINDOW = 200
_KEY_END = chr(0x10FFFF)  # above every character, so [key, key + _KEY_END) is "starts with key"
_EXACT = """SELECT t.sku, t.sku_key, t.name_key FROM product_terms t WHERE t.code_key = :key
            UNION SELECT t.sku, t.sku_key, t.name_key FROM product_terms t WHERE t.sku_key = :key"""
_FTS = """SELECT t.sku, t.sku_key, t.name_key FROM product_search f JOIN product_terms t ON t.id = f.rowid
          WHERE product_search MATCH :match LIMIT :window"""
_PREFIX = """SELECT t.sku, t.sku_key, t.name_key FROM product_terms t
             WHERE (t.sku_key >= :key AND t.sku_key < :end) OR (t.code_key >= :key AND t.code_key < :end)
                OR (t.name_key >= :key AND t.name_key < :end) LIMIT :window"""


def _ranked(matches: str) -> str:
    """Exact code hits first, then SKU prefixes, then by name, over the exact hits and `matches`."""
    return f"""SELECT p.* FROM (
        SELECT c.sku, c.name_key, 1 AS exact, 1 AS sku_prefix FROM ({_EXACT}) c
        UNION
        SELECT c.sku, c.name_key, 0, substr(c.sku_key, 1, length(:key)) = :key FROM ({matches}) c
    ) r JOIN products p ON p.sku = r.sku
    GROUP BY p.sku ORDER BY max(r.exact) DESC, max(r.sku_prefix) DESC, r.name_key, p.sku LIMIT :limit"""


_SEARCH_FTS = text(_ranked(_FTS))
_SEARCH_PREFIX = text(_ranked(_PREFIX))
_BY_CODE = text("""SELECT p.* FROM product_terms t JOIN products p ON p.sku = t.sku
                   WHERE t.code_key = :key OR t.sku_key = :key ORDER BY t.code_key = :key DESC, p.sku LIMIT 2""")


# Rows per INSERT of many (below SQLite's limit on a statement's parameters, 32,766 by default).
ROWS_PER_INSERT = 2_000


def _insert_rows(conn: Connection, into: str, rows: Sequence[tuple], tail: str = "") -> None:
    """`into VALUES (...), (...), ... tail`: ROWS_PER_INSERT rows a statement.

    executemany steps SQLite once per row, and the driver gives the GIL up and takes it back at
    every step; while the pull-ahead thread validates the next page, each take waits for that
    thread to let go (up to Python's 5 ms switch interval). A statement of many rows is one step:
    10,000 products took 13-26 ms this way and 20-35 ms through executemany alone, 50-70 ms
    against 80-180 ms with a page validated beside them (this machine, two loaded cores).
    """
    if not rows:
        return
    width = len(rows[0])
    per = max(1, min(ROWS_PER_INSERT, conn.connection.dbapi_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    one = "(" + ", ".join("?" * width) + ")"
    for i in range(0, len(rows), per):
        part = rows[i: i + per]
        conn.exec_driver_sql(f"{into} VALUES {', '.join([one] * len(part))} {tail}", tuple(v for r in part for v in r))


def one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= ERROR_MAX_CHARS else line[: ERROR_MAX_CHARS - 3] + "..."


class Store:
    """The branch database in `home`; opening it creates or upgrades the schema."""

    def __init__(self, home: str | Path, *, migrations: Sequence[Migration] = MIGRATIONS,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        self.home = Path(home)
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data home {self.home} ({exc.strerror}); "
                             "choose another with --home or BRANCHSYNC_HOME") from exc
        self.path = paths.db_path(self.home)
        self.engine: Engine = create_engine(URL.create("sqlite", database=str(self.path)))
        self._busy_timeout_ms = busy_timeout_ms
        event.listen(self.engine, "connect", self._on_connect)
        event.listen(self.engine, "begin", self._on_begin)
        self._writer = self.engine.execution_options(**{_WRITE: True})
        self._checkpointer = Checkpointer(self._checkpoint)
        with self._write() as conn:
            self.schema_upgrade = upgrade(conn, migrations)
            if self._search_deferred(conn):  # a first pull stopped between pages
                self._build_search(conn)
            self._know_unconfirmed(conn)

    # --- connection plumbing ---------------------------------------------------------------

    def _on_connect(self, dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _on_begin)
        dbapi_conn.create_function("bs_fold", 1, fold, deterministic=True)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        # A pull's pages grow the WAL past its usual size (see _write); when it starts over
        # after a checkpoint, the file is cut back to this.
        cur.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        # 64 MiB of page cache (SQLite's default is 2 MiB): a new sale lands on a random page of
        # the sale_id index, and with a million sales that index no longer fits in 2 MiB.
        cur.execute("PRAGMA cache_size = -65536")
        cur.close()

    @staticmethod
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    @contextmanager
    def _write(self, *, checkpoint_after: bool = False) -> Iterator[Connection]:
        """A write transaction. `checkpoint_after` (a pull's page): its commit does not run
        SQLite's automatic checkpoint, however many pages it wrote; the store's checkpoint
        thread copies them right after instead (checkpoints.py), so the pull is done sooner.
        Every other commit keeps SQLite's own rule (a checkpoint at 1,000 pages)."""
        try:
            with self._writer.connect() as conn:
                driver = conn.connection.driver_connection
                if checkpoint_after:
                    driver.execute("PRAGMA wal_autocheckpoint = 0")
                try:
                    with conn.begin():
                        yield conn
                finally:
                    if checkpoint_after:  # before the connection goes back to the pool
                        driver.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        except DBAPIError as exc:
            raise StoreError(f"the branch database {self.path} failed: {one_line(exc.orig)}; "
                             "try again, and if it persists check the disk") from exc
        if checkpoint_after:
            self._checkpointer.wrote()

    def _checkpoint(self) -> None:
        raw = self.engine.raw_connection()
        try:
            checkpoint(raw.driver_connection, self.path.with_name(self.path.name + "-wal"), WAL_SIZE_LIMIT)
        finally:
            raw.close()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise StoreError(f"the branch database {self.path} failed: {one_line(exc.orig)}") from exc

    def close(self) -> None:
        self._checkpointer.close()
        self.engine.dispose()  # the last connection to close checkpoints what is left

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- identity ----------------------------------------------------------------------------

    def identity(self) -> Identity:
        """The enrolled identity, or NotEnrolled."""
        with self._read() as conn:
            values = dict(conn.execute(select(meta.c.key, meta.c.value).where(meta.c.key.in_(("branch", "cloud_url")))).all())
        secret = read_secret(paths.secret_path(self.home))
        if not values.get("branch") or not values.get("cloud_url") or not secret:
            raise NotEnrolled()
        return Identity(branch=values["branch"], cloud_url=values["cloud_url"], secret=secret)

    def branch_name(self) -> str | None:
        """The branch this till is enrolled as (None before enrollment): one row, for receipts' headers."""
        with self._read() as conn:
            return conn.execute(select(meta.c.value).where(meta.c.key == "branch")).scalar()

    def is_enrolled(self) -> bool:
        try:
            self.identity()
        except NotEnrolled:
            return False
        return True

    def save_identity(self, identity: Identity, now: datetime | None = None) -> None:
        write_secret(paths.secret_path(self.home), identity.secret)
        with self._write() as conn:
            for key, value in (("branch", identity.branch), ("cloud_url", identity.cloud_url),
                               ("enrolled_at", time_text(now or utcnow()))):
                self._set_meta(conn, key, value)

    def save_secret(self, secret: str) -> None:
        """Replace the branch secret (head office rotated it); atomic, so a crash leaves the old or the new one."""
        write_secret(paths.secret_path(self.home), secret)

    # --- sales -------------------------------------------------------------------------------

    def record_sale(self, items: Sequence[ItemSpec], payment: PaymentMethod | str = PaymentMethod.CASH,
                    now: datetime | None = None, client_key: str | None = None, **options) -> Sale:
        return self.record(items, payment, now, client_key, **options).sale

    def record(self, items: Sequence[ItemSpec], payment: PaymentMethod | str = PaymentMethod.CASH,
               now: datetime | None = None, client_key: str | None = None, *, confirmed: bool = False,
               cashier: str | None = None, payments: Sequence[PaymentSpec] | None = None,
               discount: DiscountSpec | None = None) -> Recorded:
        """Price `items` from the catalog and store the sale under the next number, atomically.

        Any problem raises BadSaleInput and stores nothing (the number is not used up); an item
        no product has names the closest matches; a very large quantity needs `confirmed`. A
        restore holds the database's write lock from its safety copy to its last write, so
        a sale is recorded either before it (and kept in the safety copy) or after it.
        `client_key` is the submitter's id for this sale (the till page makes one per cart): it is
        stored with the sale, and a second submission with the same key returns the sale stored
        by the first instead of recording another one.

        The sale is the complete record (v3): `cashier` (DEFAULT_CASHIER when None), the
        items' line discounts and `discount` on the sale, and `payments`, which must add up
        to the total; without them, one payment of the whole total by `payment` (cash, card,
        or a wallet with the customer's transaction id: `bkash:TXNID`). A sale
        recorded while a shift is open belongs to it (its Z report).
        """
        if payments is None:  # one payment of the whole total: a method, or a wallet with its id (bkash:TXNID)
            payments = [sale_entry.parse_pay(str(payment))]
        with self._write() as conn:
            if (earlier := self._submitted(conn, client_key)) is not None:
                return earlier
            priced = self._price(conn, items, discount, confirmed)
            paid = sale_entry.settle(priced.total, payments)
            gen = self._generation(conn)
            sale = sale_entry.new_sale(self._next_seq(conn, gen), uuid.uuid4().hex, now or utcnow(), priced, paid,
                                       cashier or sale_entry.DEFAULT_CASHIER)
            reasons = [i.price_reason if i.price is not None else None for i in items]
            self._insert_sale(conn, gen, sale, client_key=client_key, cashier=sale.cashier,
                              price_reasons=reasons if any(reasons) else None)
        return Recorded(sale, gen)

    def quote(self, items: Sequence[ItemSpec], discount: DiscountSpec | None = None,
              confirmed: bool = True) -> sale_entry.Priced:
        """The cart priced as `record` would price it now (lines, discounts, VAT, total); stores nothing."""
        with self._read() as conn:
            return self._price(conn, items, discount, confirmed)

    def _price(self, conn: Connection, items: Sequence[ItemSpec], discount: DiscountSpec | None,
               confirmed: bool) -> sale_entry.Priced:
        matches = self._matches(conn, items)
        lines = sale_entry.build_lines(items, matches, confirmed=confirmed)
        return sale_entry.price(lines, [m.product for m in matches], [i.discount for i in items], discount,
                                [i.price_reason for i in items])

    def _matches(self, conn: Connection, items: Sequence[ItemSpec]) -> list[Match]:
        rule = self._settings(conn).embedded_rule
        found = []
        for item in items:
            match = self._match(conn, item.sku, rule)
            if match is None:
                raise sale_entry.unknown_item(item, self._search(conn, item.sku, 3))
            found.append(match)
        return found

    def _match(self, conn: Connection, code: str, rule) -> Match | None:
        """What a typed or scanned code names: a SKU exactly, else a barcode or SKU in any case,
        else a scale label (EAN-13 under the shop's in-store prefixes) by its item code."""
        code = code.strip()
        exact = self._products_by_sku(conn, [code])
        if exact:
            return Match(exact[0])
        by_code = self._by_code(conn, code)
        if by_code is not None:
            return Match(by_code)
        try:
            label = parse_embedded(code, rule)
        except BadLabel as exc:
            raise BadSaleInput(str(exc)) from None
        if label is None:
            return None
        for candidate in label.lookup_codes:
            product = self._by_code(conn, candidate)
            if product is not None:
                return Match(product, label)
        raise BadSaleInput(f"scale label {code}: no product has item code {label.item} "
                           f"(barcode {label.lookup_codes[0]} or {label.lookup_codes[1]}); check the scale's product "
                           "list, or sync to get the latest catalog")

    def lookup(self, code: str) -> Match | None:
        """The product a scanned or typed code names, with its scale label if it is one; None
        when nothing does. A misread or unknown scale label raises BadSaleInput."""
        with self._read() as conn:
            return self._match(conn, code, self._settings(conn).embedded_rule)

    def quantity(self, code: str, text: str) -> tuple[Match, Decimal]:
        """The quantity `text` of the product `code` names, checked by its unit as a sale checks it."""
        with self._read() as conn:
            match = self._match(conn, code, self._settings(conn).embedded_rule)
            if match is None:
                raise sale_entry.unknown_item(ItemSpec(code, None), self._search(conn, code, 3))
        try:
            qty = sale_entry.parse_qty(text)
        except ValueError as exc:
            raise BadSaleInput(str(exc)) from None
        item = ItemSpec(code, qty, text=f"{code}={text.strip()}")
        return match, sale_entry.quantity_of(item, Match(match.product))[0]

    def void_sale(self, number: int | str, now: datetime | None = None, reason: str | None = None) -> Sale:
        return self.void(number, now, reason).sale

    def void(self, number: int | str, now: datetime | None = None, reason: str | None = None,
             cashier: str | None = None) -> Recorded:
        """Record the void of sale `number` (as printed: 14, 2-14) as a new event of the current generation.

        Refused for an unknown, void or already voided number, and for a sale refunded in part
        (refund the rest instead; the cloud refuses such a void too). The cloud checks it
        again: this database may be a restored backup that does not know an earlier void.
        `reason` is kept with the void on this PC and sent with a v3 void (a v1/v2 one has no field for it).
        """
        target_gen, seq, shown = self._number(number)
        with self._write() as conn:
            voided = self._target(conn, target_gen, seq, shown, "voided")
            earlier = conn.execute(select(sales.c.generation, sales.c.seq).where(
                sales.c.voids_generation == target_gen, sales.c.voids == seq)).first()
            if earlier is not None:
                raise BadSaleInput(f"sale {shown} was already voided by number {sale_number(*earlier)}; nothing to do")
            refund = conn.execute(select(sales.c.generation, sales.c.seq).where(
                sales.c.refunds_generation == target_gen, sales.c.refunds == seq)).first()
            if refund is not None:
                raise BadSaleInput(f"sale {shown} was refunded in part by number {sale_number(*refund)}, so it cannot "
                                   f"be voided; refund what is left of it instead ('branchsync sale refund {shown} ...')")
            gen = self._generation(conn)
            void = sale_entry.new_void(self._next_seq(conn, gen), uuid.uuid4().hex, now or utcnow(), voided,
                                       voided_generation=None if target_gen == gen else target_gen,
                                       cashier=cashier or sale_entry.DEFAULT_CASHIER, reason=reason)
            self._insert_sale(conn, gen, void, reason=reason, cashier=cashier or void.cashier)
        return Recorded(void, gen)

    def refund(self, number: int | str, returns: Sequence[tuple[int, str]],
               payments: Sequence[PaymentSpec] | None = None, *, cashier: str | None = None,
               reason: str | None = None, now: datetime | None = None, client_key: str | None = None) -> Recorded:
        """Record a refund of sale `number`: `returns` are (line position from 1, quantity) pairs.

        At most what was sold less what earlier refunds of it returned; amounts by
        sale_entry.refund_lines; paid back by `payments` (default: cash). Refused for a voided
        sale or a number that is not a sale. `reason` is kept on this PC and sent. `client_key`, as
        for a sale, makes a retried submission return the refund the first one stored.
        """
        target_gen, seq, shown = self._number(number)
        with self._write() as conn:
            if (earlier := self._submitted(conn, client_key)) is not None:
                return earlier
            lines = self._refund_lines(conn, target_gen, seq, shown, returns)
            gen = self._generation(conn)
            refund = sale_entry.new_refund(self._next_seq(conn, gen), uuid.uuid4().hex, now or utcnow(),
                                           SaleRef(generation=target_gen, seq=seq), lines,
                                           payments or [], cashier or sale_entry.DEFAULT_CASHIER, reason)
            self._insert_sale(conn, gen, refund, client_key=client_key, reason=reason, cashier=refund.cashier)
        return Recorded(refund, gen)

    def refund_quote(self, number: int | str, returns: Sequence[tuple[int, str]]) -> list[RefundLine]:
        """What `refund` with these returns would pay back now, per line (stores nothing)."""
        target_gen, seq, shown = self._number(number)
        with self._read() as conn:
            return self._refund_lines(conn, target_gen, seq, shown, returns)

    def _refund_lines(self, conn: Connection, target_gen: int, seq: int, shown: str,
                      returns: Sequence[tuple[int, str]]) -> list[RefundLine]:
        sold = self._target(conn, target_gen, seq, shown, "refunded")
        voider = conn.execute(select(sales.c.generation, sales.c.seq).where(
            sales.c.voids_generation == target_gen, sales.c.voids == seq)).first()
        if voider is not None:
            raise BadSaleInput(f"sale {shown} was voided by number {sale_number(*voider)}; "
                               "there is nothing left to refund")
        return sale_entry.refund_lines(sold, returns, self._returned(conn, target_gen, seq))

    @staticmethod
    def _submitted(conn: Connection, client_key: str | None) -> Recorded | None:
        """The event a submission with this key stored already (a retried or double-clicked submit)."""
        if client_key is None:
            return None
        row = conn.execute(select(sales.c.body, sales.c.generation).where(sales.c.client_key == client_key)).first()
        return None if row is None else Recorded(Sale.model_validate_json(row.body), row.generation)

    @staticmethod
    def _number(number: int | str) -> tuple[int, int, str]:
        try:
            gen, seq = parse_sale_number(str(number))
        except ValueError as exc:
            raise BadSaleInput(str(exc)) from None
        return gen, seq, sale_number(gen, seq)

    @staticmethod
    def _target(conn: Connection, generation: int, seq: int, shown: str, what: str) -> Sale:
        row = conn.execute(select(sales.c.body).where(sales.c.generation == generation, sales.c.seq == seq)).first()
        if row is None:
            raise BadSaleInput(f"there is no sale number {shown}; see 'branchsync sale list'")
        found = Sale.model_validate_json(row.body)
        if found.kind != SaleKind.SALE:
            raise BadSaleInput(f"number {shown} is a {found.kind.value.replace('_', ' ')}; only a sale can be {what}")
        return found

    @staticmethod
    def _returned(conn: Connection, generation: int, seq: int) -> dict[int, tuple[Decimal, int]]:
        """Per line position of sale (generation, seq): the quantity and paisa its refunds returned."""
        out: dict[int, tuple[Decimal, int]] = {}
        for body in conn.execute(select(sales.c.body).where(sales.c.refunds_generation == generation,
                                                            sales.c.refunds == seq)).scalars():
            for r in Sale.model_validate_json(body).returns:
                qty, amount = out.get(r.line, (Decimal(0), 0))
                out[r.line] = (qty + r.qty, amount + r.amount)
        return out

    # --- shifts ----------------------------------------------------------------------------------

    def open_shift(self, cashier: str | None, opening_float: int, now: datetime | None = None) -> shift_rules.Shift:
        """Open a shift with the float counted into the drawer; refused while one is open."""
        if not isinstance(opening_float, int) or isinstance(opening_float, bool) or opening_float < 0:
            raise BadSaleInput("the opening float is a whole number of paisa, 0 or more")
        with self._write() as conn:
            found = self._open_shift(conn)
            if found is not None:
                raise BadSaleInput(f"a shift is open already ({found.cashier}'s, since {found.opened_at}); "
                                   "close it first ('branchsync shift close --counted TAKA')")
            shift = shift_rules.Shift(id=uuid.uuid4().hex, cashier=cashier or sale_entry.DEFAULT_CASHIER,
                                      opened_at=time_text(now or utcnow()), opening_float=opening_float)
            conn.execute(insert(shifts).values(id=shift.id, cashier=shift.cashier, opened_at=shift.opened_at,
                                               opening_float=opening_float))
        return shift

    def current_shift(self) -> shift_rules.Shift | None:
        with self._read() as conn:
            return self._open_shift(conn)

    @staticmethod
    def _open_shift(conn: Connection) -> shift_rules.Shift | None:
        row = conn.execute(select(shifts).where(shifts.c.closed_at.is_(None))).first()
        return None if row is None else shift_rules.Shift(row.id, row.cashier, row.opened_at, row.opening_float)

    def close_shift(self, counted_cash: int, cashier: str | None = None,
                    now: datetime | None = None) -> shift_rules.ZReport:
        """Close the open shift with the cash counted in the drawer: its Z report, and a
        shift_close event carrying its figures, in one transaction."""
        if not isinstance(counted_cash, int) or isinstance(counted_cash, bool) or counted_cash < 0:
            raise BadSaleInput("the counted cash is a whole number of paisa, 0 or more")
        moment = now or utcnow()
        with self._write() as conn:
            shift = self._open_shift(conn)
            if shift is None:
                raise BadSaleInput("no shift is open; open one with 'branchsync shift open --float TAKA'")
            events = [Sale.model_validate_json(b) for b in conn.execute(
                select(sales.c.body).where(sales.c.shift_id == shift.id).order_by(sales.c.generation, sales.c.seq))
                .scalars()]
            report = shift_rules.z_report(shift, events, counted_cash, time_text(moment))
            gen = self._generation(conn)
            close = sale_entry.new_shift_close(
                self._next_seq(conn, gen), uuid.uuid4().hex, moment,
                ShiftClose(shift_id=shift.id, opened_at=datetime.fromisoformat(shift.opened_at),
                           opening_float=shift.opening_float, counted_cash=counted_cash,
                           expected_cash=report.expected_cash, by_method=report.by_method),
                cashier or shift.cashier)
            report = report.numbered(sale_number(gen, close.seq))
            self._insert_sale(conn, gen, close, cashier=close.cashier)
            conn.execute(update(shifts).where(shifts.c.id == shift.id).values(
                closed_at=report.closed_at, counted_cash=counted_cash, close_generation=gen, close_seq=close.seq,
                report=json.dumps(report.as_json(), ensure_ascii=False)))
        return report

    def shift_report(self, shift_id: str) -> shift_rules.ZReport | None:
        """The Z report of a closed shift, as it was printed (for a reprint); None if unknown or still open."""
        with self._read() as conn:
            stored = conn.execute(select(shifts.c.report).where(shifts.c.id == shift_id)).scalar()
        return None if stored is None else shift_rules.ZReport.from_json(json.loads(stored))

    @staticmethod
    def _generation(conn: Connection) -> int:
        return int(conn.execute(select(meta.c.value).where(meta.c.key == GENERATION_KEY)).scalar() or 1)

    def generation(self) -> int:
        """The generation new sales are numbered in: 1, and one more after every restore."""
        with self._read() as conn:
            return self._generation(conn)

    @staticmethod
    def _next_seq(conn: Connection, generation: int) -> int:
        """The next number of `generation`: gap-free from 1; a restore starts a new generation, never reuses one."""
        last = conn.execute(select(func.coalesce(func.max(sales.c.seq), 0))
                            .where(sales.c.generation == generation)).scalar_one()
        return last + 1

    @staticmethod
    def _insert_sale(conn: Connection, generation: int, sale: Sale, client_key: str | None = None,
                     reason: str | None = None, cashier: str | None = None,
                     price_reasons: list | None = None) -> None:
        voids_gen = None if sale.voids is None else (sale.voids_generation or generation)
        shift = Store._open_shift(conn)
        conn.execute(insert(sales).values(
            generation=generation, seq=sale.seq, sale_id=sale.sale_id, kind=sale.kind.value,
            voids_generation=voids_gen, voids=sale.voids,
            refunds_generation=sale.refunds.generation if sale.refunds else None,
            refunds=sale.refunds.seq if sale.refunds else None,
            recorded_at=time_text(sale.recorded_at), total=sale.total, payment_method=sale_entry.method_text(sale),
            body=sale.model_dump_json(), pushed_at=None, push_count=0, acked_at=None,
            client_key=client_key, reason=reason, cashier=cashier, shift_id=shift.id if shift else None,
            price_reasons=json.dumps(price_reasons, ensure_ascii=False) if price_reasons else None))

    def get_sale(self, number: int | str) -> SaleRecord | None:
        """The sale with this printed number (`14` is generation 1, `2-14` generation 2)."""
        try:
            gen, seq = parse_sale_number(str(number))
        except ValueError:
            return None
        with self._read() as conn:
            rows = self._sale_records(conn, and_(sales.c.generation == gen, sales.c.seq == seq), limit=1)
            if not rows:
                return None
            refunds = conn.execute(select(sales.c.generation, sales.c.seq).where(
                sales.c.refunds_generation == gen, sales.c.refunds == seq).order_by(sales.c.generation, sales.c.seq)).all()
            returned = self._returned(conn, gen, seq)
        return dataclasses.replace(rows[0], refunded_by=tuple(sale_number(g, s) for g, s in refunds), returned=returned)

    def recent_sales(self, limit: int = 20) -> list[SaleRecord]:
        """The newest `limit` events, newest first, with their sync state."""
        with self._read() as conn:
            return self._sale_records(conn, None, limit=limit)

    def oldest_unacknowledged(self, limit: int = 3) -> list[SaleRecord]:
        """The oldest events the cloud has not acknowledged, oldest first."""
        with self._read() as conn:
            return self._sale_records(conn, sales.c.acked_at.is_(None), limit=limit, oldest_first=True)

    @staticmethod
    def _sale_records(conn: Connection, where, limit: int, oldest_first: bool = False) -> list[SaleRecord]:
        voider = sales.alias("voider")
        order = ((sales.c.generation.asc(), sales.c.seq.asc()) if oldest_first
                 else (sales.c.generation.desc(), sales.c.seq.desc()))
        query = (select(sales.c.generation, sales.c.body, sales.c.pushed_at, sales.c.push_count, sales.c.acked_at,
                        voider.c.generation.label("voider_generation"), voider.c.seq.label("voided_by"), sales.c.reason,
                        sales.c.cashier, sales.c.price_reasons)
                 .outerjoin(voider, and_(voider.c.voids_generation == sales.c.generation,
                                         voider.c.voids == sales.c.seq))
                 .order_by(*order).limit(limit))
        if where is not None:
            query = query.where(where)
        out = []
        for row in conn.execute(query):
            state = (SaleState.ACKED if row.acked_at else SaleState.PUSHED if row.pushed_at else SaleState.PENDING)
            voided_by = sale_number(row.voider_generation, row.voided_by) if row.voided_by is not None else None
            out.append(SaleRecord(Sale.model_validate_json(row.body), state, row.pushed_at, row.push_count,
                                  row.acked_at, voided_by, row.generation, row.reason, row.cashier,
                                  price_reasons=tuple(json.loads(row.price_reasons)) if row.price_reasons else ()))
        return out

    # --- settings ------------------------------------------------------------------------------

    @staticmethod
    def _settings(conn: Connection) -> Settings:
        rows = conn.execute(select(meta.c.key, meta.c.value)
                            .where(meta.c.key.startswith(branch_settings.META_PREFIX, autoescape=True))).all()
        return Settings.from_meta(dict(rows))

    def settings(self) -> Settings:
        """This branch's settings (branch_client.settings): what is set, else the defaults."""
        with self._read() as conn:
            return self._settings(conn)

    def set_setting(self, name: str, value: str | None) -> Settings:
        """Set one setting (None: back to its default); refused with BadInput when the value,
        or the scale-label rule it makes, cannot be used."""
        key = branch_settings.META_PREFIX + name
        with self._write() as conn:
            if value is None:
                branch_settings.check(name, branch_settings.SETTINGS[name].default if name in branch_settings.SETTINGS
                                      else "")
                conn.execute(delete(meta).where(meta.c.key == key))
            else:
                stored = branch_settings.check(name, value)
                self._set_meta(conn, key, stored)
            now = self._settings(conn)
            problem = now.embedded_rule.problem()
            if problem:
                raise BadInput(f"that makes the scale-label rule unusable: {problem}")  # rolled back
        return now

    # --- held carts ------------------------------------------------------------------------------

    def hold_cart(self, items: Sequence[ItemSpec], raw: list[dict], cashier: str | None = None,
                  now: datetime | None = None, discount: DiscountSpec | None = None,
                  raw_discount: dict | None = None) -> HeldCart:
        """Put a cart aside: its items as submitted (`raw`) and the sale discount as submitted
        (`raw_discount`), priced now (`discount` included) for the list of held carts."""
        with self._write() as conn:
            priced = self._price(conn, items, discount, confirmed=True)
            kept = {"lines": raw, "discount": raw_discount} if raw_discount is not None else raw
            values = dict(held_at=time_text(now or utcnow()), cashier=cashier, items=json.dumps(kept, ensure_ascii=False),
                          total=priced.total, line_count=len(priced.lines), first_name=priced.lines[0].name)
            held_id = conn.execute(insert(held_carts).values(**values)).inserted_primary_key[0]
        return HeldCart(id=held_id, **{**values, "items": raw, "discount": raw_discount})

    @staticmethod
    def _held(row) -> HeldCart:
        # The items column holds the lines' list, or {"lines", "discount"} when the cart had a sale discount.
        kept = json.loads(row.items)
        lines, discount = (kept["lines"], kept["discount"]) if isinstance(kept, dict) else (kept, None)
        return HeldCart(id=row.id, held_at=row.held_at, cashier=row.cashier, items=lines, total=row.total,
                        line_count=row.line_count, first_name=row.first_name, discount=discount)

    def held_carts(self) -> list[HeldCart]:
        with self._read() as conn:
            rows = conn.execute(select(held_carts).order_by(held_carts.c.id)).all()
        return [self._held(r) for r in rows]

    def take_held_cart(self, held_id: int) -> HeldCart:
        """Take a held cart back to ring it up: it leaves the held list in the same transaction."""
        with self._write() as conn:
            row = conn.execute(select(held_carts).where(held_carts.c.id == held_id)).first()
            if row is None:
                raise BadSaleInput("that held cart is gone (resumed already, perhaps at another till window)")
            conn.execute(delete(held_carts).where(held_carts.c.id == held_id))
        return self._held(row)

    # --- cashiers --------------------------------------------------------------------------------

    def add_cashier(self, name: str, pin: str, now: datetime | None = None, *, replace: bool = False) -> str:
        """Create a cashier (or, with `replace`, give one a new PIN); the PIN is kept only as a salted hash."""
        name = cashier_rules.check_name(name)
        digest = cashier_rules.hash_pin(pin)
        with self._write() as conn:
            found = conn.execute(select(cashiers.c.name).where(cashiers.c.name == name)).scalar()
            if found is not None and not replace:
                raise BadInput(f"there is already a cashier {found}; to give them a new PIN add --new-pin")
            if found is None and replace:
                raise BadInput(f"there is no cashier {name}; add them without --new-pin")
            if found is None:
                conn.execute(insert(cashiers).values(name=name, pin_hash=digest, created_at=time_text(now or utcnow())))
            else:
                conn.execute(update(cashiers).where(cashiers.c.name == name).values(pin_hash=digest))
        return found or name

    def remove_cashier(self, name: str) -> None:
        with self._write() as conn:
            if not conn.execute(delete(cashiers).where(cashiers.c.name == " ".join(name.split()))).rowcount:
                raise BadInput(f"there is no cashier {name}; see 'branchsync cashier list'")

    def cashier_names(self) -> list[str]:
        with self._read() as conn:
            return list(conn.execute(select(cashiers.c.name).order_by(cashiers.c.name)).scalars())

    def sign_in(self, name: str, pin: str, now: datetime | None = None) -> str | None:
        """The cashier's name as stored when `pin` is theirs, else None (a wrong PIN counted).

        Raises CashierLocked while the name is locked after too many wrong PINs (cashiers.Tries),
        the right PIN included; a name nobody has is counted and locked the same way."""
        now = now or utcnow()
        typed = " ".join(str(name).split())
        with self._read() as conn:
            row = conn.execute(select(cashiers.c.name, cashiers.c.pin_hash).where(cashiers.c.name == typed)).first()
            tries = self._tries(conn, typed)
        if tries.locked(now):
            raise cashier_rules.CashierLocked(row.name if row else typed, tries.locked_until)
        # A name nobody has is checked against a dummy hash: as slow as a real check.
        ok = cashier_rules.pin_matches(pin, row.pin_hash if row else cashier_rules.DUMMY_HASH) and row is not None
        with self._write() as conn:
            if ok:
                conn.execute(delete(sign_in_lockouts).where(sign_in_lockouts.c.name == typed))
            else:
                after = self._tries(conn, typed).after_wrong_pin(now)
                values = dict(wrong=after.wrong, locked_until=time_text(after.locked_until) if after.locked_until else None)
                conn.execute(sqlite_insert(sign_in_lockouts).values(name=typed, **values)
                             .on_conflict_do_update(index_elements=[sign_in_lockouts.c.name], set_=values))
        return row.name if ok else None

    def sign_in_tries(self, name: str) -> cashier_rules.Tries:
        """Wrong PINs in a row for `name`, and until when it is locked."""
        with self._read() as conn:
            return self._tries(conn, " ".join(str(name).split()))

    @staticmethod
    def _tries(conn: Connection, name: str) -> cashier_rules.Tries:
        row = conn.execute(select(sign_in_lockouts).where(sign_in_lockouts.c.name == name)).first()
        if row is None:
            return cashier_rules.Tries()
        return cashier_rules.Tries(row.wrong, datetime.fromisoformat(row.locked_until) if row.locked_until else None)

    def unlock_cashier(self, name: str, now: datetime | None = None) -> datetime | None:
        """The manager's unlock: the name's wrong PINs are forgotten; returns until when it was locked (None: it was not)."""
        typed = " ".join(str(name).split())
        with self._write() as conn:
            found = conn.execute(select(cashiers.c.name).where(cashiers.c.name == typed)).scalar()
            if found is None:
                raise BadInput(f"there is no cashier {typed}; see 'branchsync cashier list'")
            tries = self._tries(conn, typed)
            conn.execute(delete(sign_in_lockouts).where(sign_in_lockouts.c.name == typed))
        return tries.locked_until if tries.locked(now or utcnow()) else None

    # --- catalog -----------------------------------------------------------------------------

    @staticmethod
    def _product(row) -> Product:
        return Product(sku=row.sku, name=row.name, price=row.price, barcode=row.barcode, unit=row.unit,
                       vat_rate=Decimal(row.vat_rate), active=bool(row.active))

    def _products_by_sku(self, conn: Connection, skus: Iterable[str]) -> list[Product]:
        skus = list(skus)
        if not skus:
            return []
        return [self._product(r) for r in conn.execute(select(products).where(products.c.sku.in_(skus)))]

    def get_product(self, sku: str) -> Product | None:
        with self._read() as conn:
            found = self._products_by_sku(conn, [sku])
        return found[0] if found else None

    def search_products(self, text: str, limit: int = 20) -> list[Product]:
        """Products whose SKU, barcode or name contains `text`, ignoring case and Unicode form.

        Through the FTS5 trigram index (product_search); a query shorter than a trigram
        matches the start of a SKU, barcode or name instead. Exact SKU or barcode matches come
        first, then SKU prefixes, then the rest by name; a broad query ranks its first
        SEARCH_WINDOW matches only, so it answers as fast as a narrow one.
        """
        with self._read() as conn:
            return self._search(conn, text, limit)

    def _search(self, conn: Connection, text: str, limit: int) -> list[Product]:
        key = fold(" ".join(text.split())) or ""
        if not key:
            return []
        params = {"key": key, "limit": max(1, limit), "window": SEARCH_WINDOW}
        if len(key) >= TRIGRAM:
            query, params["match"] = _SEARCH_FTS, '"' + key.replace('"', '""') + '"'
        else:
            query, params["end"] = _SEARCH_PREFIX, key + _KEY_END
        return [self._product(r) for r in conn.execute(query, params)]

    def find_by_code(self, code: str) -> Product | None:
        """The product whose barcode (or else SKU) is exactly `code`, ignoring case: what a scanner sends."""
        with self._read() as conn:
            return self._by_code(conn, code)

    def _by_code(self, conn: Connection, code: str) -> Product | None:
        key = fold(code.strip()) or ""
        if not key:
            return None
        row = conn.execute(_BY_CODE, {"key": key}).first()
        return self._product(row) if row else None

    def apply_catalog_page(self, page: CatalogPage, applied_through: int, now: datetime | None = None,
                           acks: dict[int, int] | None = None, refusal: Refusal | None | object = UNCHANGED) -> int:
        """Store a pulled page, its cursor, the acks and the pull time in ONE transaction.

        Entries are upserted (a tombstone deletes). The last page of a pull (`more` false)
        also drops products kept unconfirmed since a full resync. Sales of generation 1 up
        to `applied_through`, and of each later generation up to its entry in `acks`, are
        marked acknowledged. `refusal`, when given, is kept as `save_refusal` keeps it (the
        last page of a pull brings it, in the same commit). Returns the number of entries applied.
        """
        now_text = time_text(now or utcnow())
        marks = {**(acks or {}), 1: applied_through}
        with self._write(checkpoint_after=True) as conn:
            deferred = self._search_deferred(conn) or self._defer_search_for_first_pull(conn)
            self._apply_entries(conn, page, index=deferred)
            if not page.more:
                self._drop_unconfirmed(conn)
                if deferred:
                    self._finish_search(conn)
            self._save_cursor(conn, page.next_cursor, applied_through, now_text)
            if refusal is not UNCHANGED:
                self._save_refusal(conn, refusal)
            for gen, through in sorted(marks.items()):
                conn.execute(sqlite_insert(generations).values(generation=gen, applied_through=through)
                             .on_conflict_do_update(index_elements=[generations.c.generation],
                                                    set_={"applied_through": through}))
                self._mark_acked(conn, gen, through, now_text)
            self._leave_a_taken_generation(conn)
        return len(page.entries)

    # A first pull writes 100,000 products; the search triggers would fold and index each one
    # as it lands, row by row (most of the pull's time). Into an empty catalog the pull drops
    # them (and the barcode index) and writes each page's search keys in one statement beside
    # its products instead (the till waits for the cloud's next page meanwhile); its last page
    # puts the triggers and the index back and merges the search index into one b-tree. The
    # drop, the marker and each page commit together, and so do the recreated triggers and the
    # marker's removal: a commit never leaves products and search out of step without the
    # marker saying so, and a Store opened after a pull stopped between pages builds the whole
    # index again in one pass (_build_search) before it answers. Later pulls (and a full resync, whose kept products must stay
    # searchable while it runs) change few rows and keep the triggers. The pages still commit
    # with synchronous=FULL: 100,000 products are 100 commits, and switching the connection
    # to NORMAL for them saved at most about 0.1 s of 2 s (store alone, this machine) while
    # a connection handed back to the pool at NORMAL could commit a sale without its fsync.
    # The WAL: a page's commit leaves its checkpoint to the store's checkpoint thread (_write).
    # A price day of 1,000 prices and 100 deletes writes 1,653 pages (825 for the prices, 867
    # for the deletes: a deleted product leaves about nine b-trees); SQLite's own rule copied
    # them into the file inside the page's commit, 30 of its 70 ms.

    @staticmethod
    def _search_deferred(conn: Connection) -> bool:
        return conn.execute(select(meta.c.value).where(meta.c.key == SEARCH_DEFERRED)).first() is not None

    @staticmethod
    def _defer_search_for_first_pull(conn: Connection) -> bool:
        first = (conn.execute(select(sync_state.c.catalog_cursor)).scalar_one() == 0
                 and conn.execute(select(products.c.sku).limit(1)).first() is None)
        if first:
            # product_terms' own triggers (into the FTS index) and indexes too: each page's keys land
            # in the bare table, and the last page builds the rest in one pass.
            dropped = Store._drop_schema_of(conn, "products") + Store._drop_schema_of(conn, "product_terms")
            conn.execute(insert(meta).values(key=SEARCH_DEFERRED, value=json.dumps(dropped)))
            # No merging of the FTS index's segments page by page: the last page merges them all
            # at once (a first pull's CPU on the till 0.2-0.3 s less at 100,000 products).
            conn.exec_driver_sql(_FTS_AUTOMERGE, (0,))
        return first

    @staticmethod
    def _finish_search(conn: Connection) -> None:
        """The last page of a first pull: the triggers and indexes back, the FTS index merged into one b-tree."""
        dropped = json.loads(conn.execute(select(meta.c.value).where(meta.c.key == SEARCH_DEFERRED)).scalar_one())
        for stmt in dropped:
            conn.exec_driver_sql(stmt)
        conn.exec_driver_sql(_FTS_AUTOMERGE, (FTS_AUTOMERGE,))
        conn.exec_driver_sql(_OPTIMIZE_FTS)
        conn.execute(delete(meta).where(meta.c.key == SEARCH_DEFERRED))

    @staticmethod
    def _build_search(conn: Connection) -> None:
        """Fill product_terms and its FTS index in one pass, then put products' triggers and index back.

        product_terms' own triggers and indexes are dropped while it fills (so no row is
        indexed one at a time) and recreated from their own SQL; FTS5's 'rebuild' then reads
        the whole table once.
        """
        dropped = json.loads(conn.execute(select(meta.c.value).where(meta.c.key == SEARCH_DEFERRED)).scalar_one())
        own = Store._drop_schema_of(conn, "product_terms")
        conn.exec_driver_sql("DELETE FROM product_terms")
        conn.exec_driver_sql("""INSERT INTO product_terms (sku, sku_key, code_key, name_key)
            SELECT sku, bs_fold(sku), coalesce(bs_fold(barcode), ''), bs_fold(name) FROM products""")
        for stmt in own + dropped:
            conn.exec_driver_sql(stmt)
        conn.exec_driver_sql(_FTS_AUTOMERGE, (FTS_AUTOMERGE,))
        Store._rebuild_fts(conn)
        conn.execute(delete(meta).where(meta.c.key == SEARCH_DEFERRED))

    @staticmethod
    def _rebuild_fts(conn: Connection) -> None:
        conn.exec_driver_sql("INSERT INTO product_search (product_search) VALUES ('rebuild')")
        conn.exec_driver_sql(_OPTIMIZE_FTS)

    @staticmethod
    def _drop_schema_of(conn: Connection, table: str) -> list[str]:
        """Drop `table`'s triggers and explicit indexes; returns the SQL that creates them again."""
        found = conn.execute(_SCHEMA_SQL, {"table": table}).all()
        for name, sql in found:
            kind = "TRIGGER" if sql.lstrip().upper().startswith("CREATE TRIGGER") else "INDEX"
            conn.exec_driver_sql(f'DROP {kind} "{name}"')
        return [sql for _, sql in found]

    @staticmethod
    def _leave_a_taken_generation(conn: Connection) -> None:
        """After a restore: if the cloud already holds sales of the till's new generation, take a fresh one.

        A restore picks the generation above every one its databases and backups know; a
        database lost together with every backup made since its own restore may have used
        that generation already. The pull says so before this till has recorded (printed)
        anything in it, normally: then it simply moves on, and no number is ever reused.
        """
        gen = Store._generation(conn)
        held = Store._applied_through_of(conn, gen)
        if gen == 1 or held == 0 or Store._next_seq(conn, gen) > 1:
            return
        fresh = 1 + conn.execute(select(func.max(generations.c.generation))).scalar_one()
        conn.execute(update(meta).where(meta.c.key == GENERATION_KEY).values(value=str(fresh)))
        conn.execute(insert(generations).values(generation=fresh, applied_through=0))
        restored = conn.execute(select(meta.c.value).where(meta.c.key == RESTORED)).scalar()
        if restored:
            facts = {**json.loads(restored), "generation": fresh, "generation_taken": gen}
            conn.execute(update(meta).where(meta.c.key == RESTORED).values(value=json.dumps(facts)))

    @staticmethod
    def _apply_entries(conn: Connection, page: CatalogPage, index: bool = False) -> None:
        """Upsert the page's products and delete its tombstones; `index`: their search keys too
        (while a first pull has products' search triggers dropped)."""
        latest = {}
        for entry in page.entries:  # ascending versions; a repeated SKU keeps its latest
            latest[entry.sku] = entry
        gone = [e.sku for e in latest.values() if e.deleted]
        # Plain tuples through the driver: the page was validated as it was read (CatalogPage),
        # and SQLAlchemy's per-row parameter handling cost about as much as SQLite's insert.
        rows = [(e.sku, p.name, p.price, p.barcode, p.unit, str(p.vat_rate), int(p.active), e.version)
                for e in latest.values() if not e.deleted for p in (e.product,)]
        if gone:
            for i in range(0, len(gone), 500):
                conn.execute(delete(products).where(products.c.sku.in_(gone[i: i + 500])))
        if index:
            # Only a SKU the pull brought before has search keys to take out. An insert takes the
            # rowid after the largest (SQLite's rowid rule), so when the upsert added as many rows
            # as it was given, none of them was here: no look-up per SKU (in a first pull, most pages).
            before = conn.exec_driver_sql(_LAST_PRODUCT_ROWID).scalar_one()
            _insert_rows(conn, _INTO_PRODUCTS, rows, _REPLACING_PRODUCT)
            added = conn.exec_driver_sql(_LAST_PRODUCT_ROWID).scalar_one() - before
            Store._index_entries(conn, gone if added == len(rows) else list(latest), rows)
            return
        # A product whose name and barcode stay (a price day) is updated without touching them:
        # the upsert sets them too, which fires the search trigger (an UPDATE OF sku, barcode,
        # name fires whether or not the value changed) and rewrote its FTS entries for nothing.
        kept = {}
        for i in range(0, len(rows), 500):
            kept.update((sku, (name, barcode)) for sku, name, barcode in conn.execute(
                select(products.c.sku, products.c.name, products.c.barcode)
                .where(products.c.sku.in_([r[0] for r in rows[i: i + 500]]))))
        same = [(r[2], r[4], r[5], r[6], r[7], r[0]) for r in rows if kept.get(r[0]) == (r[1], r[3])]
        if same:
            conn.exec_driver_sql(_UPDATE_PRODUCT_KEEPING_KEYS, same)
        if len(same) < len(rows):
            conn.exec_driver_sql(_UPSERT_PRODUCT, [r for r in rows if kept.get(r[0]) != (r[1], r[3])])

    @staticmethod
    def _index_entries(conn: Connection, skus: list[str], rows: list[tuple]) -> None:
        """During a first pull (product_terms' triggers dropped): the search keys of a page's products.

        The keys of `skus` (those the pull brought before, changed again while it ran or
        deleted now) leave the FTS index first ('delete' wants the values it was indexed with);
        then the page's keys are added to product_terms and to the FTS index in one statement
        each: row by row, through the triggers, the FTS index took about 8 times as long.
        """
        for i in range(0, len(skus), 500):
            part = tuple(skus[i: i + 500])
            among = f"sku IN ({', '.join('?' * len(part))})"
            conn.exec_driver_sql("INSERT INTO product_search (product_search, rowid, sku_key, code_key, name_key) "
                                 f"SELECT 'delete', id, sku_key, code_key, name_key FROM product_terms WHERE {among}", part)
            conn.exec_driver_sql(f"DELETE FROM product_terms WHERE {among}", part)
        if not rows:
            return
        after = conn.execute(select(func.coalesce(func.max(product_terms.c.id), 0))).scalar_one()
        _insert_rows(conn, _INTO_TERMS, [(r[0], fold(r[0]), fold(r[3]) or "", fold(r[1])) for r in rows])
        conn.exec_driver_sql(_INDEX_TERMS_AFTER, (after,))

    @staticmethod
    def _save_cursor(conn: Connection, cursor: int, applied_through: int, now_text: str) -> None:
        conn.execute(update(sync_state).where(sync_state.c.id == 1).values(
            catalog_cursor=cursor, applied_through=applied_through, last_pull=now_text))

    @staticmethod
    def _mark_acked(conn: Connection, generation: int, applied_through: int, now_text: str) -> None:
        # Only a sale this till has pushed can be acknowledged by number: one it never pushed
        # (a copied database, or a restore) is pushed once first, so the cloud can check that
        # the sale it holds under that number is this very sale and refuse a cloned till.
        conn.execute(update(sales).where(and_(sales.c.generation == generation, sales.c.seq <= applied_through,
                                              sales.c.acked_at.is_(None), sales.c.pushed_at.is_not(None)))
                     .values(acked_at=now_text))

    def reset_catalog(self) -> None:
        """Start a full resync: cursor back to 0, every product kept but unconfirmed (version 0).

        Products stay sellable while the catalog is pulled again; the ones the cloud does not
        send again are dropped with the last page of that pull.
        """
        with self._write() as conn:
            conn.execute(update(products).values(version=0))
            conn.execute(update(sync_state).where(sync_state.c.id == 1).values(catalog_cursor=0))
            self._set_meta(conn, UNCONFIRMED, "1")

    # Only a full resync leaves products at version 0, and the column has no index: looking for
    # them at the end of every pull read the whole products table (10 ms of a price day's
    # 0.1 s at 100,000 products). The UNCONFIRMED marker, written with the reset, says when to.

    @staticmethod
    def _drop_unconfirmed(conn: Connection) -> None:
        """The last page of a pull: drop what a full resync kept and the cloud did not send again."""
        if conn.execute(select(meta.c.value).where(meta.c.key == UNCONFIRMED)).scalar() != "0":
            conn.execute(delete(products).where(products.c.version == 0))
            Store._set_meta(conn, UNCONFIRMED, "0")

    @staticmethod
    def _know_unconfirmed(conn: Connection) -> None:
        """On opening a database that has no UNCONFIRMED marker yet (new, or written by an earlier
        release, which may have stopped in a full resync), look once for products at version 0."""
        if conn.execute(select(meta.c.value).where(meta.c.key == UNCONFIRMED)).first() is None:
            kept = conn.execute(select(products.c.sku).where(products.c.version == 0).limit(1)).first()
            Store._set_meta(conn, UNCONFIRMED, "1" if kept else "0")

    @staticmethod
    def _applied_through_of(conn: Connection, generation: int) -> int:
        """The cloud's watermark of `generation` as the last pull said it (0 before any)."""
        return conn.execute(select(generations.c.applied_through)
                            .where(generations.c.generation == generation)).scalar() or 0

    @staticmethod
    def _set_meta(conn: Connection, key: str, value: str) -> None:
        conn.execute(sqlite_insert(meta).values(key=key, value=value)
                     .on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))

    def catalog_cursor(self) -> int:
        with self._read() as conn:
            return conn.execute(select(sync_state.c.catalog_cursor)).scalar_one()

    # --- push ----------------------------------------------------------------------------------

    @staticmethod
    def _due(now: datetime | None, resend_after: timedelta):
        """Unacknowledged, never pushed or pushed `resend_after` ago.

        A void or refund goes only with the sale it refers to (that sale due in the same push;
        the engine keeps the two in one message) or once that sale is acknowledged: the cloud counts a
        void only against a sale it holds, and the queue is unordered.
        """
        cutoff = time_text((now or utcnow()) - resend_after)
        due = and_(sales.c.acked_at.is_(None), or_(sales.c.pushed_at.is_(None), sales.c.pushed_at <= cutoff))

        def waits(gen_col, seq_col):  # the sale it refers to is not acknowledged and will not go with it
            target = sales.alias("referred")
            return (select(target.c.seq).where(
                target.c.generation == gen_col, target.c.seq == seq_col, target.c.acked_at.is_(None),
                or_(target.c.generation != sales.c.generation,  # another generation: never in the same message
                    and_(target.c.pushed_at.is_not(None), target.c.pushed_at > cutoff))).exists())

        return and_(due, or_(sales.c.voids.is_(None), ~waits(sales.c.voids_generation, sales.c.voids)),
                    or_(sales.c.refunds.is_(None), ~waits(sales.c.refunds_generation, sales.c.refunds)))

    def acknowledged(self, generation: int, seqs: Iterable[int]) -> set[int]:
        """Which of these sales of `generation` the cloud has acknowledged."""
        seqs = list(seqs)
        with self._read() as conn:
            return set(conn.execute(select(sales.c.seq).where(
                sales.c.generation == generation, sales.c.seq.in_(seqs), sales.c.acked_at.is_not(None))).scalars())

    def generations_to_push(self, now: datetime | None = None, resend_after: timedelta = RESEND_AFTER) -> list[int]:
        """The generations with events due, oldest first (a restored till may still owe the old one)."""
        with self._read() as conn:
            return list(conn.execute(select(sales.c.generation).where(self._due(now, resend_after))
                                     .group_by(sales.c.generation).order_by(sales.c.generation)).scalars())

    def sales_to_push(self, now: datetime | None = None, resend_after: timedelta = RESEND_AFTER,
                      limit: int | None = None, after_seq: int = 0, generation: int = 1) -> list[Sale]:
        """Events of `generation` due for a push (see `_due`); ascending seq."""
        return [Sale.model_validate_json(e.json) for e in self.events_to_push(now, resend_after, limit, after_seq, generation)]

    def events_to_push(self, now: datetime | None = None, resend_after: timedelta = RESEND_AFTER,
                       limit: int | None = None, after_seq: int = 0, generation: int = 1) -> list[PushEvent]:
        """Events of `generation` due for a push (see `_due`), ascending seq, as the push needs them:
        each event's stored JSON as it is.

        The body is the JSON `Sale.model_dump_json()` wrote when the till recorded the event,
        so the push sends it without validating and serialising it again; the record version
        is whether that JSON carries `payments` (SQLite's json_type, no parse in Python).
        """
        query = (select(sales.c.seq, sales.c.body, func.json_type(sales.c.body, "$.payments").is_not(None),
                        sales.c.voids_generation, sales.c.voids, sales.c.refunds_generation, sales.c.refunds)
                 .where(self._due(now, resend_after), sales.c.generation == generation, sales.c.seq > after_seq)
                 .order_by(sales.c.seq))
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [PushEvent(seq, body, bool(v3), *refers) for seq, body, v3, *refers in conn.execute(query)]

    def count_to_push(self, now: datetime | None = None, resend_after: timedelta = RESEND_AFTER) -> int:
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(sales).where(self._due(now, resend_after))).scalar_one()

    def mark_pushed(self, seqs: Iterable[int], now: datetime | None = None, generation: int = 1) -> None:
        now_text = time_text(now or utcnow())
        seqs = list(seqs)
        with self._write() as conn:
            for i in range(0, len(seqs), 500):
                conn.execute(update(sales).where(sales.c.generation == generation, sales.c.seq.in_(seqs[i: i + 500]))
                             .values(pushed_at=now_text, push_count=sales.c.push_count + 1))
            conn.execute(update(sync_state).where(sync_state.c.id == 1).values(last_push=now_text))

    def due_counts(self, now: datetime | None = None, resend_after: timedelta = RESEND_AFTER) -> dict[int, int]:
        """Events due for a push (see `_due`) per generation, oldest generation first: what
        `count_to_push` and `generations_to_push` say, in one read."""
        with self._read() as conn:
            return dict(conn.execute(select(sales.c.generation, func.count()).where(self._due(now, resend_after))
                                     .group_by(sales.c.generation).order_by(sales.c.generation)).all())

    # The counts a sync asks for before and after it, and after every acknowledgement ask, read
    # only the unacknowledged sales (from the sales_status index, whose first column is
    # acked_at); status() counts and sums every sale (0.13 s at a million) unless lifetime=False.

    def pending_count(self) -> int:
        with self._read() as conn:
            return self._unacked(conn)[0]

    def on_the_way_count(self) -> int:
        """Events pushed and not yet acknowledged (status' `pushed_unacked`)."""
        with self._read() as conn:
            return self._unacked(conn)[1]

    def sync_position(self) -> SyncPosition:
        """Where a sync stands, in one read: the catalog cursor, the watermark and what is unacknowledged."""
        with self._read() as conn:
            cursor = conn.execute(select(sync_state.c.catalog_cursor)).scalar_one()
            through = self._applied_through_of(conn, self._generation(conn))
            pending, on_the_way = self._unacked(conn)
        return SyncPosition(catalog_cursor=cursor, applied_through=through, pending=pending, on_the_way=on_the_way)

    @staticmethod
    def _unacked(conn: Connection) -> tuple[int, int]:
        """(events not acknowledged, of them pushed): a seek into the sales_status index, as long as the backlog."""
        return tuple(conn.execute(select(func.count(), func.count().filter(sales.c.pushed_at.is_not(None)))
                                  .select_from(sales).where(sales.c.acked_at.is_(None))).one())

    # --- sync state ------------------------------------------------------------------------------

    def record_error(self, text: str, now: datetime | None = None, code: str | None = None) -> None:
        """The last sync's error in words, and its code (branch_client.errors, the cloud's ErrorCode)
        when it has one, so the till can say it in its own language."""
        with self._write() as conn:
            conn.execute(update(sync_state).where(sync_state.c.id == 1).values(
                last_error=one_line(text) or "unknown error", last_error_at=time_text(now or utcnow())))
            conn.execute(delete(meta).where(meta.c.key == LAST_ERROR_CODE))
            if code:
                conn.execute(insert(meta).values(key=LAST_ERROR_CODE, value=code))

    def clear_error(self) -> None:
        with self._write() as conn:
            conn.execute(update(sync_state).where(sync_state.c.id == 1).values(last_error=None, last_error_at=None))
            conn.execute(delete(meta).where(meta.c.key == LAST_ERROR_CODE))

    def record_sync_ok(self, now: datetime | None = None) -> None:
        """A sync finished: clear the last error and remember when (meta `last_sync_ok`), in one transaction."""
        value = time_text(now or utcnow())
        with self._write() as conn:
            conn.execute(update(sync_state).where(sync_state.c.id == 1).values(last_error=None, last_error_at=None))
            conn.execute(delete(meta).where(meta.c.key == LAST_ERROR_CODE))
            self._set_meta(conn, "last_sync_ok", value)

    def save_refusal(self, refusal: Refusal | None) -> None:
        """Keep what the last pull said the cloud refused (None: nothing, or head office dealt with it)."""
        with self._write() as conn:
            self._save_refusal(conn, refusal)

    @staticmethod
    def _save_refusal(conn: Connection, refusal: Refusal | None) -> None:
        if refusal is None:
            conn.execute(delete(meta).where(meta.c.key == LAST_REFUSAL))
        else:
            Store._set_meta(conn, LAST_REFUSAL, refusal.model_dump_json())

    def save_unsendable(self, found: list[dict]) -> None:
        """Keep the sales the last full push walk could not send ({seq, sale_id, size, reason}); [] clears."""
        with self._write() as conn:
            if not found:
                conn.execute(delete(meta).where(meta.c.key == UNSENDABLE))
                return
            self._set_meta(conn, UNSENDABLE, json.dumps(found, ensure_ascii=False))

    @staticmethod
    def _refusal(conn: Connection, stored: str | None) -> dict | None:
        """The stored refusal, and whether the refused sale is this till's own (None: cannot tell)."""
        if not stored:
            return None
        refusal = Refusal.model_validate_json(stored)
        this_till = None
        gen = refusal.generation or 1
        if refusal.seq is not None and refusal.sale_id is not None:
            mine = conn.execute(select(sales.c.sale_id).where(sales.c.generation == gen,
                                                              sales.c.seq == refusal.seq)).scalar()
            this_till = mine == refusal.sale_id
        number = sale_number(gen, refusal.seq) if refusal.seq is not None else None
        return {**refusal.model_dump(mode="json"), "number": number, "this_till": this_till}

    def oldest_pending(self) -> str | None:
        """When the oldest event not yet acknowledged was recorded (stored time text), or None."""
        with self._read() as conn:
            return conn.execute(select(sales.c.recorded_at).where(sales.c.acked_at.is_(None))
                                .order_by(sales.c.recorded_at).limit(1)).scalar()

    def status(self, lifetime: bool = True) -> dict:
        """What is pending, what failed and why; never the secret.

        `lifetime=False` leaves out the sales recorded and the takings since the till began
        (None): they read every sale (about 0.13 s at a million), while what is pending is a
        seek into an index (`_unacked`). The till's sync line, read every 3 s, needs only that.
        """
        with self._read() as conn:
            state = conn.execute(select(sync_state)).one()
            info = dict(conn.execute(select(meta.c.key, meta.c.value)).all())
            gen = self._generation(conn)
            last_seq = self._next_seq(conn, gen) - 1
            through = self._applied_through_of(conn, gen)
            pending, pushed_unacked = self._unacked(conn)
            recorded, takings = (conn.execute(
                select(func.count(), func.coalesce(func.sum(sales.c.total), 0)).select_from(sales)).one()
                if lifetime else (None, None))
            product_count = conn.execute(select(func.count()).select_from(products)).scalar_one()
            refusal = self._refusal(conn, info.get(LAST_REFUSAL))
        return {
            "pending": pending,
            # The cloud's watermark of the generation this till numbers new sales in.
            "applied_through": through,
            "generation": gen,
            "catalog_version": state.catalog_cursor,
            "last_pull": state.last_pull,
            "last_push": state.last_push,
            "last_error": state.last_error,
            "last_error_at": state.last_error_at,
            "last_error_code": info.get(LAST_ERROR_CODE) if state.last_error else None,
            # The cloud's latest refusal of sales sent as this branch: {at, code, reason, seq, sale_id, this_till}.
            "last_refusal": refusal,
            "last_sync_ok": info.get("last_sync_ok"),
            # What the last restore did ({at, source, safety_backup, generation, lost_*}); None if never restored.
            "restored": json.loads(info[RESTORED]) if RESTORED in info else None,
            # Sales kept here that no push can carry (too large for one message): [{seq, sale_id, size, reason}].
            "unsendable": json.loads(info[UNSENDABLE]) if UNSENDABLE in info else [],
            "pushed_unacked": pushed_unacked,
            "never_pushed": pending - pushed_unacked,
            "sales_recorded": recorded,
            "last_seq": last_seq,
            "last_number": sale_number(gen, last_seq) if last_seq else None,
            # Takings in paisa: voids carry negative totals, so this is what head office should see.
            "total_paisa": takings,
            "products": product_count,
            "branch": info.get("branch"),
            "cloud_url": info.get("cloud_url"),
            "enrolled": bool(info.get("branch")) and paths.secret_path(self.home).exists(),
            "schema_version": int(info.get("schema_version", 0)),
            "home": str(self.home),
        }
